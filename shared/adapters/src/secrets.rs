//! Secrets from AWS Secrets Manager, read on first use and cached.
//!
//! A webhook's shared secret is never an environment variable (it would show in the function's
//! configuration, to anyone who may read it, and in every deployment's history): the function is
//! given the secret's ARN and reads the value the first time it needs it. The value is kept for
//! [`SecretCache::ttl`] and then read again, so a rotated secret takes effect within that time
//! without a deployment; a PSP that signs with both secrets during the rotation is accepted
//! throughout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::aws_error::classify;
use crate::config::LazyClient;
use oms_domain::ports::StoreError;

/// One secret's value, cached.
pub struct SecretCache {
    client: LazyClient<aws_sdk_secretsmanager::Client>,
    secret_id: String,
    /// How long a value read is used before it is read again.
    pub ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Vec<u8>>)>>,
}

impl SecretCache {
    pub fn new(
        client: LazyClient<aws_sdk_secretsmanager::Client>,
        secret_id: String,
        ttl: Duration,
    ) -> Self {
        SecretCache {
            client,
            secret_id,
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The secret named by the environment variable `variable` (its ARN or name), cached for
    /// `SECRET_CACHE_SECONDS` (default 300).
    pub fn from_env(variable: &'static str) -> Result<Self, crate::config::ConfigError> {
        let secret_id = crate::config::required(variable)?;
        let ttl = std::env::var("SECRET_CACHE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        Ok(Self::new(
            LazyClient::new(aws_sdk_secretsmanager::Client::new),
            secret_id,
            Duration::from_secs(ttl),
        ))
    }

    /// The secret's current value: from the cache while it is fresh, else read.
    pub async fn value(&self) -> Result<Arc<Vec<u8>>, StoreError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, value)) = cached.as_ref() {
            if read_at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        let output = self
            .client
            .get()
            .await
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| classify("read a secret", e))?;
        let value = output
            .secret_string
            .map(String::into_bytes)
            .or_else(|| output.secret_binary.map(|b| b.into_inner()))
            .filter(|v| v.len() >= 16)
            .ok_or_else(|| {
                StoreError::Failed("the secret is empty or shorter than 16 bytes".into())
            })?;
        let value = Arc::new(value);
        *cached = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

/// Where a webhook's shared secret comes from: Secrets Manager in Lambda ([`SecretCache`]), a
/// value known up front in tests and tools ([`FixedSecret`]).
pub trait SecretSource: Send + Sync {
    fn value(&self) -> impl std::future::Future<Output = Result<Arc<Vec<u8>>, StoreError>> + Send;
}

impl SecretSource for SecretCache {
    async fn value(&self) -> Result<Arc<Vec<u8>>, StoreError> {
        SecretCache::value(self).await
    }
}

/// A secret known up front.
pub struct FixedSecret(pub Arc<Vec<u8>>);

impl FixedSecret {
    pub fn new(value: &[u8]) -> Self {
        FixedSecret(Arc::new(value.to_vec()))
    }
}

impl SecretSource for FixedSecret {
    async fn value(&self) -> Result<Arc<Vec<u8>>, StoreError> {
        Ok(self.0.clone())
    }
}
