//! Tokens as the local HTTP API's JWT authorizer checks them: HS256 signed with a shared secret,
//! with the issuer, audience and expiry API Gateway's JWT authorizer would check.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims a local token carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Signs a token for `sub` with `scope` (space-separated), valid for `ttl_seconds`.
pub fn sign(
    secret: &str,
    issuer: &str,
    audience: &str,
    sub: &str,
    scope: Option<&str>,
    ttl_seconds: u64,
) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        iat: now,
        exp: now + ttl_seconds,
        scope: scope.filter(|s| !s.is_empty()).map(str::to_owned),
    };
    sign_claims(secret, &claims)
}

/// Signs `claims` as they are, HS256 with `secret`: for tokens whose claims are not a local
/// token's, such as the development issuer's ID tokens (the client as audience, the nonce).
pub fn sign_claims(secret: &str, claims: &impl Serialize) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing of plain claims with a byte secret cannot fail")
}

/// Checks tokens: signature, expiry, issuer and audience.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(secret: &str, issuer: &str, audiences: &[String]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        Verifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The token's claims, as strings the way API Gateway passes them to a function.
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let data = decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| e.to_string())?;
        Ok(data
            .claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, serde_json::Value::String(text))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_signature_issuer_audience_and_expiry() {
        let verifier = Verifier::new("s3cret", "oms-local", &["oms".to_owned()]);
        let good = sign("s3cret", "oms-local", "oms", "ada", Some("oms:admin"), 60);
        let claims = verifier.verify(&good).unwrap();
        assert_eq!(claims["sub"], "ada");
        assert_eq!(claims["scope"], "oms:admin");
        assert!(verifier
            .verify(&sign("other", "oms-local", "oms", "ada", None, 60))
            .is_err());
        assert!(verifier
            .verify(&sign("s3cret", "someone", "oms", "ada", None, 60))
            .is_err());
        assert!(verifier
            .verify(&sign("s3cret", "oms-local", "other", "ada", None, 60))
            .is_err());
        let mut expired = Claims {
            sub: "ada".into(),
            iss: "oms-local".into(),
            aud: "oms".into(),
            iat: 1,
            exp: 2,
            scope: None,
        };
        expired.exp = jsonwebtoken::get_current_timestamp() - 1;
        let token = encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(verifier.verify(&token).is_err());
    }
}
