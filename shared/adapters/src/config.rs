//! Typed configuration, read from the environment once per cold start.
//!
//! Reading it makes no network call and builds no AWS client: clients are [`LazyClient`]s, built
//! with the SDK configuration on their first request, so a cold start pays for nothing it does
//! not need yet.

use std::env;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use oms_domain::location::{LocationError, Locations};
use oms_domain::order::payments::{CaptureMode, PaymentPolicy};
use oms_domain::order::returns::policy::ReturnPolicy;
use oms_domain::order::OrderLimits;
use oms_domain::replenishment::HealthPolicy;
use oms_domain::shipping::{PolicyError, ShippingPolicy};

/// A configuration problem, found at cold start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("environment variable {0} must be {1}")]
    Invalid(&'static str, &'static str),
    #[error("cannot read the policy file {path}: {source}")]
    PolicyFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the locations are not valid: {0}")]
    Locations(LocationError),
    #[error("the return policy is not valid: {0}")]
    ReturnPolicy(#[from] serde_json::Error),
}

/// A variable that must be set and not empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// The table every function works on (`TABLE_NAME`).
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub table_name: String,
}

impl TableConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("TABLE_NAME")?,
        })
    }
}

/// The topic domain events go to (`ORDER_EVENTS_TOPIC_ARN`).
#[derive(Debug, Clone)]
pub struct TopicConfig {
    pub topic_arn: String,
}

impl TopicConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            topic_arn: required("ORDER_EVENTS_TOPIC_ARN")?,
        })
    }
}

/// The shipping rate table: the file named by `SHIPPING_POLICY_FILE`, or the bundled default.
pub fn shipping_policy_from_env() -> Result<ShippingPolicy, ConfigError> {
    Ok(match policy_file("SHIPPING_POLICY_FILE")? {
        Some(json) => ShippingPolicy::from_json(&json)?,
        None => ShippingPolicy::default_policy(),
    })
}

/// The contents of the policy file named by `variable`, if one is named.
fn policy_file(variable: &str) -> Result<Option<String>, ConfigError> {
    match env::var(variable) {
        Ok(path) if !path.is_empty() => std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|source| ConfigError::PolicyFile { path, source }),
        _ => Ok(None),
    }
}

/// The business's locations: the file named by `LOCATIONS_FILE`, or the bundled three, checked
/// against `shipping` (their zones, its warehouse as the default location).
pub fn locations_from_env(shipping: &ShippingPolicy) -> Result<Locations, ConfigError> {
    let json = policy_file("LOCATIONS_FILE")?;
    Locations::from_json(json.as_deref().unwrap_or(Locations::BUNDLED), shipping)
        .map_err(ConfigError::Locations)
}

/// The locations as functions read them: the list staff keep, the file's
/// ([`locations_from_env`]) until they first change it, read again every
/// `LOCATIONS_CACHE_SECONDS` (60 by default).
pub fn location_directory_from_env(
    shipping: &ShippingPolicy,
) -> Result<oms_domain::app::locations::LocationDirectory, ConfigError> {
    let seconds = match env::var("LOCATIONS_CACHE_SECONDS") {
        Ok(v) if !v.is_empty() => {
            v.parse::<u64>()
                .ok()
                .filter(|s| *s <= 3600)
                .ok_or(ConfigError::Invalid(
                    "LOCATIONS_CACHE_SECONDS",
                    "a whole number from 0 to 3600",
                ))?
        }
        _ => 60,
    };
    Ok(oms_domain::app::locations::LocationDirectory::new(
        locations_from_env(shipping)?,
        shipping.clone(),
        std::time::Duration::from_secs(seconds),
    ))
}

/// The return rules: the file named by `RETURN_POLICY_FILE`, or the bundled default.
pub fn return_policy_from_env() -> Result<ReturnPolicy, ConfigError> {
    Ok(match policy_file("RETURN_POLICY_FILE")? {
        Some(json) => ReturnPolicy::from_json(&json)?,
        None => ReturnPolicy::default_policy(),
    })
}

/// What one order may hold: `MAX_UNITS_PER_LINE` (default 20) units of one SKU.
pub fn order_limits_from_env() -> Result<OrderLimits, ConfigError> {
    match env::var("MAX_UNITS_PER_LINE") {
        Ok(v) if !v.is_empty() => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=999).contains(n))
            .map(|max_units_per_line| OrderLimits { max_units_per_line })
            .ok_or(ConfigError::Invalid(
                "MAX_UNITS_PER_LINE",
                "a whole number from 1 to 999",
            )),
        _ => Ok(OrderLimits::default()),
    }
}

/// The payment rules: `PAYMENT_CAPTURE` (`on-shipment`, the default, or `immediately`),
/// `PAYMENT_WINDOW_SECONDS` (how long an order may wait for its authorization; 1800),
/// `AUTHORIZATION_VALID_DAYS` (how long the PSP keeps an authorization capturable; 7) and
/// `AUTHORIZATION_DEADLINE_MARGIN_HOURS` (how long before that staff are told; 24) and
/// `CAPTURE_CONFIRMATION_SECONDS` (how long a capture asked of the PSP may go unconfirmed before
/// staff are told; 3600).
pub fn payment_policy_from_env() -> Result<PaymentPolicy, ConfigError> {
    let defaults = PaymentPolicy::default();
    let number = |name: &'static str| -> Result<Option<i64>, ConfigError> {
        match env::var(name) {
            Ok(v) if !v.is_empty() => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or(ConfigError::Invalid(name, "a whole number above 0")),
            _ => Ok(None),
        }
    };
    let capture = match env::var("PAYMENT_CAPTURE").as_deref() {
        Ok("") | Err(_) | Ok("on-shipment") => CaptureMode::OnShipment,
        Ok("immediately") => CaptureMode::Immediately,
        Ok(_) => {
            return Err(ConfigError::Invalid(
                "PAYMENT_CAPTURE",
                "on-shipment or immediately",
            ))
        }
    };
    Ok(PaymentPolicy {
        capture,
        authorization_window: number("PAYMENT_WINDOW_SECONDS")?
            .map_or(defaults.authorization_window, chrono::Duration::seconds),
        authorization_lifetime: number("AUTHORIZATION_VALID_DAYS")?
            .map_or(defaults.authorization_lifetime, chrono::Duration::days),
        deadline_margin: number("AUTHORIZATION_DEADLINE_MARGIN_HOURS")?
            .map_or(defaults.deadline_margin, chrono::Duration::hours),
        capture_confirmation: number("CAPTURE_CONFIRMATION_SECONDS")?
            .map_or(defaults.capture_confirmation, chrono::Duration::seconds),
    })
}

/// The business's stock targets: `OVERSTOCK_COVER_DAYS` (more days of cover is overstock; 90)
/// and `REORDER_COVER_DAYS` (a reorder brings a SKU up to its reorder point plus this many days
/// of demand; 30).
pub fn health_policy_from_env() -> Result<HealthPolicy, ConfigError> {
    let defaults = HealthPolicy::default();
    let days = |name: &'static str, max: u32, default: u32| -> Result<u32, ConfigError> {
        match env::var(name) {
            Ok(v) if !v.is_empty() => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(ConfigError::Invalid(
                    name,
                    "a whole number of days from 1 up",
                )),
            _ => Ok(default),
        }
    };
    Ok(HealthPolicy {
        overstock_cover_days: days("OVERSTOCK_COVER_DAYS", 3650, defaults.overstock_cover_days)?,
        reorder_cover_days: days("REORDER_COVER_DAYS", 365, defaults.reorder_cover_days)?,
    })
}

/// How long an order may wait for stock before it is put in front of staff:
/// `BACKORDER_ALERT_DAYS` (14).
pub fn backorder_alert_from_env() -> Result<chrono::Duration, ConfigError> {
    match env::var("BACKORDER_ALERT_DAYS") {
        Ok(v) if !v.is_empty() => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=365).contains(n))
            .map(chrono::Duration::days)
            .ok_or(ConfigError::Invalid(
                "BACKORDER_ALERT_DAYS",
                "a whole number of days from 1 to 365",
            )),
        _ => Ok(chrono::Duration::days(
            oms_domain::app::staff::DEFAULT_BACKORDER_ALERT_DAYS,
        )),
    }
}

/// The longest one SDK call may take, its own retries included: the functions' timeouts are
/// reckoned from it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// The AWS SDK configuration: region, credentials and endpoint from the standard sources
/// (`AWS_REGION`, `AWS_ENDPOINT_URL`, …), and timeouts well inside the functions' own, so a hung
/// call fails as retryable instead of running the function out of time. Loaded once per process,
/// on first use.
pub async fn aws_config() -> &'static aws_config::SdkConfig {
    static CONFIG: OnceCell<aws_config::SdkConfig> = OnceCell::const_new();
    CONFIG
        .get_or_init(|| async {
            let timeouts = aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(OPERATION_TIMEOUT)
                .build();
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .timeout_config(timeouts);
            // Every request names the function that made it (in its user agent), so a trace, a
            // log of requests or the benchmark's cost count can tell the functions apart.
            if let Some(name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .ok()
                .and_then(|name| aws_config::AppName::new(name).ok())
            {
                loader = loader.app_name(name);
            }
            loader.load().await
        })
        .await
}

/// An AWS service client built on first use. Building one loads the SDK configuration and the
/// TLS trust store (the system's root certificates), several milliseconds that a cold start
/// would otherwise spend before it can take its first event; deferred, they are paid once by the
/// first request that needs the client.
pub struct LazyClient<C> {
    cell: Arc<OnceCell<C>>,
    build: fn(&aws_config::SdkConfig) -> C,
}

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell.clone(),
            build: self.build,
        }
    }
}

impl<C> LazyClient<C> {
    /// A client that `build` makes from the shared configuration when it is first needed.
    pub fn new(build: fn(&aws_config::SdkConfig) -> C) -> Self {
        Self {
            cell: Arc::new(OnceCell::new()),
            build,
        }
    }

    /// A client built already (tests and tools with a configuration of their own).
    pub fn ready(client: C) -> Self {
        Self {
            cell: Arc::new(OnceCell::new_with(Some(client))),
            build: |_| unreachable!("a ready client is never built"),
        }
    }

    pub async fn get(&self) -> &C {
        self.cell
            .get_or_init(|| async { (self.build)(aws_config().await) })
            .await
    }
}
