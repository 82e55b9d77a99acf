//! Signing staff in with the API's own identity provider: OpenID Connect authorization code
//! with PKCE (S256), a public client (no client secret in the console).
//!
//! The provider's endpoints come from its discovery document
//! (`<issuer>/.well-known/openid-configuration`), read on the first sign-in and kept; its
//! `issuer` must be the one configured. The access token comes straight from the token endpoint
//! over the connection the console opened, so its claims are taken as the provider's (OpenID
//! Connect Core 3.1.3.7): the subject, the scopes and the expiry become the session.

use chrono::{DateTime, Duration, Utc};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::session::{PendingSignIn, Session, MAX_SESSION_SECONDS};

/// The scopes the console asks for: what decides its screens.
pub const SCOPES: [&str; 3] = ["openid", "oms:admin", "oms:warehouse"];

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the identity provider cannot be reached or answered badly: {0}")]
    Provider(String),
    #[error("the sign-in was not started here, or took too long; start again")]
    StateMismatch,
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

/// The provider's two endpoints.
#[derive(Debug, Clone)]
struct Endpoints {
    authorize: AuthUrl,
    token: TokenUrl,
}

/// The console's side of the code flow.
pub struct SignIn {
    issuer: String,
    client_id: String,
    redirect: RedirectUrl,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
}

/// How long a started sign-in may take before its callback is refused.
pub const SIGN_IN_SECONDS: i64 = 600;

impl SignIn {
    /// `console_url` is the console's own public URL (`https://…/console`); the provider sends
    /// the browser back to `<console_url>/auth/callback`.
    pub fn new(issuer: &str, client_id: &str, console_url: &str) -> Result<Self, String> {
        let redirect = RedirectUrl::new(format!(
            "{}/auth/callback",
            console_url.trim_end_matches('/')
        ))
        .map_err(|e| format!("CONSOLE_URL: {e}"))?;
        let http = reqwest::Client::builder()
            // The token endpoint answers; a redirect from it is not followed (RFC 9700 §4.11).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(8))
            .build()
            .map_err(|e| format!("an HTTP client: {e}"))?;
        Ok(SignIn {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            redirect,
            http,
            endpoints: OnceCell::new(),
        })
    }

    async fn endpoints(&self) -> Result<&Endpoints, SignInError> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let discovery: Discovery = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| SignInError::Provider(format!("discovery: {e}")))?
                    .json()
                    .await
                    .map_err(|e| SignInError::Provider(format!("discovery: {e}")))?;
                if discovery.issuer.trim_end_matches('/') != self.issuer {
                    return Err(SignInError::Provider(format!(
                        "the discovery document names the issuer {}, not {}",
                        discovery.issuer, self.issuer
                    )));
                }
                Ok(Endpoints {
                    authorize: AuthUrl::new(discovery.authorization_endpoint).map_err(|e| {
                        SignInError::Provider(format!("authorization endpoint: {e}"))
                    })?,
                    token: TokenUrl::new(discovery.token_endpoint)
                        .map_err(|e| SignInError::Provider(format!("token endpoint: {e}")))?,
                })
            })
            .await
    }

    /// Starts a sign-in: the URL to send the browser to, and what the callback checks.
    pub async fn start(&self, now: DateTime<Utc>) -> Result<(String, PendingSignIn), SignInError> {
        let endpoints = self.endpoints().await?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(endpoints.authorize.clone())
            .set_redirect_uri(self.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url.to_string(),
            PendingSignIn {
                state: state.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                started_at: now,
                next: None,
            },
        ))
    }

    /// Finishes a sign-in: checks the state, exchanges the code with the PKCE verifier, and
    /// makes the session of the token's subject and scopes.
    pub async fn finish(
        &self,
        pending: Option<PendingSignIn>,
        code: &str,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<Session, SignInError> {
        let pending = pending
            .filter(|p| p.state == state)
            .filter(|p| now - p.started_at <= Duration::seconds(SIGN_IN_SECONDS))
            .ok_or(SignInError::StateMismatch)?;
        let endpoints = self.endpoints().await?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(endpoints.token.clone())
            .set_redirect_uri(self.redirect.clone());
        let client_of_requests = self.http.clone();
        let http = move |request: oauth2::HttpRequest| {
            let client = client_of_requests.clone();
            async move { send(&client, request).await }
        };
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&http)
            .await
            .map_err(|e| SignInError::Refused(e.to_string()))?;
        let claims = claims_of(token.access_token().secret())
            .ok_or_else(|| SignInError::Refused("the access token has no subject".into()))?;
        let scopes = match (claims.scope, token.scopes()) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(granted)) => granted.iter().map(|s| s.to_string()).collect(),
            (None, None) => Vec::new(),
        };
        let lifetime = claims
            .exp
            .and_then(|exp| DateTime::from_timestamp(exp, 0))
            .unwrap_or(now + Duration::hours(1));
        Ok(Session {
            sub: claims.sub,
            scopes,
            expires_at: lifetime.min(now + Duration::seconds(MAX_SESSION_SECONDS)),
            nonce: CsrfToken::new_random().secret().clone(),
        })
    }
}

#[derive(Deserialize)]
struct AccessClaims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
}

/// The claims of a JWT access token (its middle part).
fn claims_of(token: &str) -> Option<AccessClaims> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// oauth2's HTTP requests, sent with the console's client.
async fn send(
    client: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut answer = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(answer.body(body).expect("a response from its own parts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_come_from_the_tokens_payload() {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"staff-ada","scope":"oms:admin oms:warehouse","exp":2000000000}"#);
        let claims = claims_of(&format!("h.{payload}.s")).unwrap();
        assert_eq!(claims.sub, "staff-ada");
        assert_eq!(claims.scope.as_deref(), Some("oms:admin oms:warehouse"));
        assert!(claims_of("not a token").is_none());
    }

    #[tokio::test]
    async fn a_callback_without_its_started_sign_in_is_refused_before_any_request() {
        let signin = SignIn::new(
            "http://127.0.0.1:1/oidc",
            "oms-console",
            "http://127.0.0.1:1/console",
        )
        .unwrap();
        let now = Utc::now();
        let pending = PendingSignIn {
            state: "s1".into(),
            pkce_verifier: "v".into(),
            started_at: now,
            next: None,
        };
        for (pending, state, at) in [
            (None, "s1", now),
            (Some(pending.clone()), "s2", now),
            (
                Some(pending),
                "s1",
                now + Duration::seconds(SIGN_IN_SECONDS + 1),
            ),
        ] {
            assert!(matches!(
                signin.finish(pending, "code", state, at).await,
                Err(SignInError::StateMismatch)
            ));
        }
    }
}
