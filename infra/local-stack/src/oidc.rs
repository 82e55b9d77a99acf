//! A development OpenID Connect issuer at `/oidc` on the gateway's own port, so the staff console
//! signs staff in locally as it does in the cloud (authorization code with PKCE, S256) without an
//! identity provider: its sign-in page takes any staff identity and a role, with no password.
//!
//! - `GET /oidc/.well-known/openid-configuration`: the discovery document;
//! - `GET /oidc/authorize`: the sign-in page, for a request that names the console's client
//!   (the template's `ConsoleClientId`) and a redirect URI on the gateway's own origin;
//! - `POST /oidc/authorize`: the page's form; answers `303` to the redirect URI with a one-time
//!   code, good for [`CODE_LIFETIME`];
//! - `POST /oidc/token`: the code and its PKCE verifier for an access token the gateway's JWT
//!   authorizer accepts (the local secret, issuer and audience) and an ID token;
//! - `GET /oidc/jwks`: an empty key set. An HS256 key is a shared secret and is never published;
//!   the URI is there because OpenID Connect discovery requires one.
//!
//! A request the issuer cannot check is refused on a page of its own, never redirected: an
//! unchecked redirect URI would make the issuer an open redirector.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

/// How long a code may wait for its token request (RFC 6749 §4.1.2 advises at most ten minutes).
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// The lifetime of the tokens it issues.
const TOKEN_SECONDS: u64 = 3600;
/// The largest form either endpoint reads: its fields are a few hundred bytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// The longest value any one parameter may have.
const MAX_PARAMETER_CHARS: usize = 2048;
/// The identity the sign-in page proposes.
const DEFAULT_SUBJECT: &str = "staff-ada";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The roles the sign-in page offers, each with the scopes its tokens carry.
const ROLES: [Role; 3] = [
    Role {
        value: "admin",
        label: "Administrator — oms:admin oms:warehouse",
        scope: "oms:admin oms:warehouse",
    },
    Role {
        value: "warehouse",
        label: "Packer — oms:warehouse",
        scope: "oms:warehouse",
    },
    Role {
        value: "customer",
        label: "Customer — no staff scope",
        scope: "",
    },
];

#[derive(Debug, Clone, Copy, Serialize)]
struct Role {
    value: &'static str,
    label: &'static str,
    #[serde(skip)]
    scope: &'static str,
}

/// Whether `path` is the issuer's: the gateway hands these to [`Issuer::serve`] before it
/// matches the template's routes.
pub fn handles(path: &str) -> bool {
    path == "/oidc" || path.starts_with("/oidc/")
}

/// What the issuer is given.
pub struct Config {
    /// The gateway's own URL, `http://127.0.0.1:<port>`: the issuer is `<base>/oidc`, and
    /// redirect URIs must be on this origin.
    pub base: String,
    /// The one client it serves: the template's `ConsoleClientId`.
    pub client_id: String,
    /// The secret the gateway's JWT authorizer checks tokens with.
    pub jwt_secret: String,
    /// The issuer and audience the JWT authorizer expects of an access token.
    pub access_issuer: String,
    pub access_audience: String,
}

/// The issuer: its configuration, its page templates and the codes handed out and not yet used.
pub struct Issuer {
    config: Config,
    issuer: String,
    /// The origins a redirect URI may have: the gateway's, by its address and as `localhost`.
    origins: Vec<String>,
    templates: minijinja::Environment<'static>,
    codes: Mutex<HashMap<String, Grant>>,
    code_lifetime: Duration,
}

/// What a code stands for until it is exchanged.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    subject: String,
    scope: String,
    nonce: Option<String>,
    expires: Instant,
}

/// The issuer's answer to a request on one of its paths.
pub enum Answer {
    Served(Response),
    /// No endpoint at this path.
    NoEndpoint,
    /// The endpoint exists; these methods are the ones it serves.
    WrongMethod(&'static str),
}

/// Why an authorization request is refused: the parameter and what is wrong with it.
#[derive(Debug)]
struct Refusal {
    parameter: &'static str,
    reason: String,
}

impl Refusal {
    fn new(parameter: &'static str, reason: impl Into<String>) -> Self {
        Refusal {
            parameter,
            reason: reason.into(),
        }
    }
}

/// A checked authorization request.
#[derive(Debug)]
struct AuthorizeRequest {
    client_id: String,
    /// As given: the token request must give the same (RFC 6749 §4.1.3), and parsing may
    /// normalise it.
    redirect_uri: String,
    /// As parsed: where the code is sent.
    redirect_url: Url,
    state: String,
    code_challenge: String,
    scope: String,
    nonce: Option<String>,
}

/// The ID token's claims (OpenID Connect Core §2): the issuer's URL, the client as audience.
#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// A form or query string's parameters, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(bytes: &[u8]) -> Self {
        Params(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The parameter `name`: none, or its one value. A parameter given twice is an error
    /// (RFC 6749 §3.1), as is one longer than any real value.
    fn get(&self, name: &'static str) -> Result<Option<&str>, Refusal> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let value = values.next();
        if values.next().is_some() {
            return Err(Refusal::new(name, "it is given more than once."));
        }
        match value {
            Some(v) if v.chars().count() > MAX_PARAMETER_CHARS => Err(Refusal::new(
                name,
                format!("it is longer than {MAX_PARAMETER_CHARS} characters."),
            )),
            Some(v) => Ok(Some(v.as_str())),
            None => Ok(None),
        }
    }

    /// The parameter `name`, which must be given and not empty.
    fn required(&self, name: &'static str) -> Result<&str, Refusal> {
        match self.get(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(Refusal::new(name, "it is empty.")),
            None => Err(Refusal::new(name, "it is missing.")),
        }
    }
}

impl Issuer {
    pub fn new(config: Config) -> Result<Self, String> {
        Self::with_code_lifetime(config, CODE_LIFETIME)
    }

    fn with_code_lifetime(config: Config, code_lifetime: Duration) -> Result<Self, String> {
        let base = Url::parse(&config.base)
            .map_err(|e| format!("the gateway's URL {}: {e}", config.base))?;
        let port = base
            .port_or_known_default()
            .ok_or_else(|| format!("the gateway's URL {} has no port", config.base))?;
        let origins = vec![
            base.origin().ascii_serialization(),
            format!("{}://localhost:{port}", base.scheme()),
        ];
        let mut templates = minijinja::Environment::new();
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in [
            ("layout.html", include_str!("oidc/layout.html")),
            ("sign-in.html", include_str!("oidc/sign-in.html")),
            ("refused.html", include_str!("oidc/refused.html")),
        ] {
            templates
                .add_template(name, source)
                .map_err(|e| format!("the development sign-in page {name}: {e}"))?;
        }
        Ok(Issuer {
            issuer: format!("{}/oidc", config.base.trim_end_matches('/')),
            config,
            origins,
            templates,
            codes: Mutex::new(HashMap::new()),
            code_lifetime,
        })
    }

    /// Answers a request on one of the issuer's paths (see [`handles`]), with its body read.
    pub fn serve(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        let Some(endpoint) = path.strip_prefix("/oidc") else {
            return Answer::NoEndpoint;
        };
        let answer = match (endpoint, method.as_str()) {
            ("/.well-known/openid-configuration", "GET") => self.discovery(),
            ("/jwks", "GET") => no_store(
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"keys":[]}"#,
                )
                    .into_response(),
            ),
            ("/authorize", "GET") => {
                self.sign_in_page(&Params::parse(query.unwrap_or_default().as_bytes()))
            }
            ("/authorize", "POST") => match form(headers, body) {
                Ok(params) => self.sign_in(&params),
                Err(reason) => self.refused(&Refusal::new("Content-Type", reason)),
            },
            ("/token", "POST") => self.token(headers, body),
            ("/.well-known/openid-configuration" | "/jwks", _) => {
                return Answer::WrongMethod("GET")
            }
            ("/authorize", _) => return Answer::WrongMethod("GET, POST"),
            ("/token", _) => return Answer::WrongMethod("POST"),
            _ => return Answer::NoEndpoint,
        };
        Answer::Served(answer)
    }

    /// The discovery document (OpenID Connect Discovery 1.0 §3).
    fn discovery(&self) -> Response {
        let issuer = &self.issuer;
        axum::Json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "oms:admin", "oms:warehouse"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256"],
        }))
        .into_response()
    }

    /// Checks what both the sign-in page and its form carry. The client and the redirect URI
    /// come first: the page names where it sends the person back.
    fn authorize_request(&self, params: &Params) -> Result<AuthorizeRequest, Refusal> {
        let client_id = params.required("client_id")?;
        if client_id != self.config.client_id {
            return Err(Refusal::new(
                "client_id",
                format!(
                    "{client_id:?} is not a client of this issuer; it serves only the staff console, {:?} (the template's ConsoleClientId).",
                    self.config.client_id
                ),
            ));
        }
        let redirect_uri = params.required("redirect_uri")?;
        let redirect_url = self.redirect_uri(redirect_uri)?;
        let response_type = params.required("response_type")?;
        if response_type != "code" {
            return Err(Refusal::new(
                "response_type",
                format!("{response_type:?} is not supported; only \"code\" is (the authorization code flow)."),
            ));
        }
        match params.required("code_challenge_method")? {
            "S256" => {}
            other => {
                return Err(Refusal::new(
                    "code_challenge_method",
                    format!("{other:?} is not supported; only \"S256\" is."),
                ))
            }
        }
        let code_challenge = params.required("code_challenge")?;
        if code_challenge.len() != 43 || !code_challenge.bytes().all(is_base64url) {
            return Err(Refusal::new(
                "code_challenge",
                "it must be BASE64URL(SHA256(code_verifier)) without padding: 43 characters of A-Z, a-z, 0-9, - and _.",
            ));
        }
        let state = params.required("state")?;
        Ok(AuthorizeRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            redirect_url,
            state: state.to_owned(),
            code_challenge: code_challenge.to_owned(),
            scope: params.get("scope")?.unwrap_or_default().to_owned(),
            nonce: params.get("nonce")?.map(str::to_owned),
        })
    }

    /// A redirect URI on the gateway's own origin, with no fragment (RFC 6749 §3.1.2).
    fn redirect_uri(&self, value: &str) -> Result<Url, Refusal> {
        let refuse = |reason: String| Refusal::new("redirect_uri", reason);
        let url = Url::parse(value)
            .map_err(|e| refuse(format!("{value:?} is not an absolute URL ({e}).")))?;
        let origin = url.origin().ascii_serialization();
        if !self.origins.contains(&origin) || !url.username().is_empty() || url.password().is_some()
        {
            return Err(refuse(format!(
                "{value:?} is not on the local gateway's own origin, {}.",
                self.origins.join(" or ")
            )));
        }
        if url.fragment().is_some() {
            return Err(refuse(format!(
                "{value:?} has a fragment, which a redirect URI may not have."
            )));
        }
        Ok(url)
    }

    /// `GET /oidc/authorize`: the sign-in page, or the refusal.
    fn sign_in_page(&self, params: &Params) -> Response {
        match self.authorize_request(params) {
            Ok(request) => self.page(
                StatusCode::OK,
                &request,
                DEFAULT_SUBJECT,
                "admin",
                None,
                None,
            ),
            Err(refusal) => self.refused(&refusal),
        }
    }

    /// `POST /oidc/authorize`: the form checked again, then a code and the way back.
    fn sign_in(&self, params: &Params) -> Response {
        let request = match self.authorize_request(params) {
            Ok(request) => request,
            Err(refusal) => return self.refused(&refusal),
        };
        let (subject, role) = match (params.get("subject"), params.get("role")) {
            (Ok(subject), Ok(role)) => (subject.unwrap_or_default(), role.unwrap_or_default()),
            (Err(refusal), _) | (_, Err(refusal)) => return self.refused(&refusal),
        };
        let subject_error = (!valid_subject(subject)).then_some(
            "The staff identity must be 1 to 64 characters, each a letter, a digit, a dot, an underscore, an at sign or a hyphen.",
        );
        let chosen = ROLES.iter().find(|r| r.value == role);
        let role_error = chosen.is_none().then_some("Choose one of the roles.");
        let Some(chosen) = chosen.filter(|_| subject_error.is_none()) else {
            return self.page(
                StatusCode::BAD_REQUEST,
                &request,
                subject,
                chosen.map_or("", |r| r.value),
                subject_error,
                role_error,
            );
        };
        let code = new_code();
        let grant = Grant {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri,
            code_challenge: request.code_challenge,
            subject: subject.to_owned(),
            scope: chosen.scope.to_owned(),
            nonce: request.nonce,
            expires: Instant::now() + self.code_lifetime,
        };
        {
            let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            codes.retain(|_, g| g.expires > now);
            codes.insert(code.clone(), grant);
        }
        tracing::info!(subject, role = chosen.value, "development sign-in");
        let mut location = request.redirect_url;
        location
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &request.state);
        let mut response = StatusCode::SEE_OTHER.into_response();
        match HeaderValue::from_str(location.as_str()) {
            Ok(value) => {
                response.headers_mut().insert(header::LOCATION, value);
            }
            // A parsed URL is ASCII with no control characters; this cannot happen.
            Err(_) => {
                return self.refused(&Refusal::new(
                    "redirect_uri",
                    "it cannot be sent in a Location header.",
                ))
            }
        }
        no_store(response)
    }

    /// The sign-in page for `request`, with what was entered and what is wrong with it.
    fn page(
        &self,
        status: StatusCode,
        request: &AuthorizeRequest,
        subject: &str,
        role: &str,
        subject_error: Option<&str>,
        role_error: Option<&str>,
    ) -> Response {
        let redirect_origin = request.redirect_url.origin().ascii_serialization();
        let context = minijinja::context! {
            client_id => request.client_id.as_str(),
            redirect_uri => request.redirect_uri.as_str(),
            redirect_origin => redirect_origin.as_str(),
            state => request.state.as_str(),
            code_challenge => request.code_challenge.as_str(),
            scope => request.scope.as_str(),
            nonce => request.nonce.as_deref(),
            subject => subject,
            role => role,
            roles => minijinja::Value::from(minijinja::value::Serde(&ROLES)),
            subject_error => subject_error,
            role_error => role_error,
        };
        // The form posts here and is answered with a redirect to the console, which
        // form-action must allow too.
        let policy = format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {redirect_origin}; frame-ancestors 'none'; base-uri 'none'"
        );
        self.html(status, "sign-in.html", context, &policy)
    }

    /// The page refusing a request, with the parameter that is wrong.
    fn refused(&self, refusal: &Refusal) -> Response {
        tracing::info!(parameter = refusal.parameter, reason = %refusal.reason, "development sign-in refused");
        let context = minijinja::context! {
            parameter => refusal.parameter,
            reason => refusal.reason.as_str(),
        };
        self.html(
            StatusCode::BAD_REQUEST,
            "refused.html",
            context,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        )
    }

    fn html(
        &self,
        status: StatusCode,
        template: &str,
        context: minijinja::Value,
        policy: &str,
    ) -> Response {
        let rendered = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(context));
        let body = match rendered {
            Ok(body) => body,
            Err(error) => {
                // The templates are the crate's own and tested: this is a bug, not bad input.
                tracing::error!(template, %error, "the development sign-in page failed to render");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the development sign-in page {template} failed to render: {error}"),
                )
                    .into_response();
            }
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(policy) = HeaderValue::from_str(policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        // The page's URL carries the state and the challenge: no Referer takes them elsewhere.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        no_store(response)
    }

    /// `POST /oidc/token` (RFC 6749 §4.1.3, RFC 7636 §4.5): a code, once, for tokens.
    fn token(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let params = match form(headers, body) {
            Ok(params) => params,
            Err(reason) => return token_error("invalid_request", &reason),
        };
        let parameter = |name: &'static str| {
            params
                .required(name)
                .map_err(|r| token_error("invalid_request", &format!("{name}: {}", r.reason)))
        };
        let fields = (|| {
            let grant_type = parameter("grant_type")?;
            if grant_type != "authorization_code" {
                return Err(token_error(
                    "unsupported_grant_type",
                    &format!("{grant_type:?} is not supported; only \"authorization_code\" is."),
                ));
            }
            Ok((
                parameter("code")?,
                parameter("redirect_uri")?,
                parameter("client_id")?,
                parameter("code_verifier")?,
            ))
        })();
        let (code, redirect_uri, client_id, verifier) = match fields {
            Ok(fields) => fields,
            Err(response) => return response,
        };
        // Taken out before anything else is checked: a code is good for one attempt, right or
        // wrong, so a verifier cannot be guessed at.
        let grant = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code);
        let Some(grant) = grant else {
            return token_error("invalid_grant", "the code is unknown or was already used.");
        };
        if grant.expires <= Instant::now() {
            return token_error("invalid_grant", "the code has expired; sign in again.");
        }
        if client_id != grant.client_id {
            return token_error("invalid_grant", "the code was issued to another client.");
        }
        if redirect_uri != grant.redirect_uri {
            return token_error(
                "invalid_grant",
                "redirect_uri is not the one the code was issued for.",
            );
        }
        if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
            return token_error(
                "invalid_request",
                "code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, -, ., _ and ~.",
            );
        }
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !same(challenge.as_bytes(), grant.code_challenge.as_bytes()) {
            return token_error(
                "invalid_grant",
                "code_verifier does not match the code_challenge of the sign-in.",
            );
        }
        self.tokens(&grant)
    }

    /// The token response (RFC 6749 §5.1) for a grant that checked out.
    fn tokens(&self, grant: &Grant) -> Response {
        let access_token = crate::jwt::sign(
            &self.config.jwt_secret,
            &self.config.access_issuer,
            &self.config.access_audience,
            &grant.subject,
            Some(&grant.scope),
            TOKEN_SECONDS,
        );
        let now = jsonwebtoken::get_current_timestamp();
        let id_token = crate::jwt::sign_claims(
            &self.config.jwt_secret,
            &IdClaims {
                iss: &self.issuer,
                sub: &grant.subject,
                aud: &grant.client_id,
                iat: now,
                exp: now + TOKEN_SECONDS,
                auth_time: now,
                nonce: grant.nonce.as_deref(),
            },
        );
        let mut response = axum::Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
            "scope": grant.scope,
            "id_token": id_token,
        }))
        .into_response();
        response
            .headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        no_store(response)
    }
}

/// The form in `body`, if the request says it is one.
fn form(headers: &HeaderMap, body: &[u8]) -> Result<Params, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
        return Err(format!(
            "the body must be a form ({FORM_CONTENT_TYPE}), not {:?}.",
            content_type
        ));
    }
    Ok(Params::parse(body))
}

/// A token endpoint error (RFC 6749 §5.2).
fn token_error(error: &str, description: &str) -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A new code: 160 random bits (two ULIDs' random parts, from a cryptographic generator).
fn new_code() -> String {
    let mut bytes = [0u8; 20];
    for chunk in bytes.chunks_mut(10) {
        chunk.copy_from_slice(&ulid::Ulid::new().random().to_be_bytes()[6..]);
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

fn valid_subject(subject: &str) -> bool {
    (1..=64).contains(&subject.len())
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// RFC 7636's unreserved characters, those of a code verifier.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)
}

/// Equality that takes as long whatever the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Verifier;

    const SECRET: &str = "s3cret";
    const BASE: &str = "http://127.0.0.1:3000";
    const CALLBACK: &str = "http://127.0.0.1:3000/console/callback";
    /// RFC 7636 appendix B's verifier and its S256 challenge.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn issuer_with(code_lifetime: Duration) -> Issuer {
        Issuer::with_code_lifetime(
            Config {
                base: BASE.into(),
                client_id: "oms-console".into(),
                jwt_secret: SECRET.into(),
                access_issuer: "oms-local".into(),
                access_audience: "oms".into(),
            },
            code_lifetime,
        )
        .unwrap()
    }

    fn issuer() -> Issuer {
        issuer_with(CODE_LIFETIME)
    }

    fn encode(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn authorize_pairs(redirect_uri: &str) -> Vec<(&str, &str)> {
        vec![
            ("response_type", "code"),
            ("client_id", "oms-console"),
            ("redirect_uri", redirect_uri),
            ("scope", "openid oms:admin"),
            ("state", "st&te=1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("nonce", "n-0S6_WzA2Mj"),
        ]
    }

    fn form_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(FORM_CONTENT_TYPE),
        );
        headers
    }

    fn served(answer: Answer) -> Response {
        match answer {
            Answer::Served(response) => response,
            Answer::NoEndpoint => panic!("no endpoint"),
            Answer::WrongMethod(allow) => panic!("wrong method; allowed: {allow}"),
        }
    }

    fn get(issuer: &Issuer, path: &str, query: Option<&str>) -> Response {
        served(issuer.serve(&Method::GET, path, query, &HeaderMap::new(), b""))
    }

    fn post(issuer: &Issuer, path: &str, pairs: &[(&str, &str)]) -> Response {
        served(issuer.serve(
            &Method::POST,
            path,
            None,
            &form_headers(),
            encode(pairs).as_bytes(),
        ))
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn json_of(response: Response) -> serde_json::Value {
        serde_json::from_str(&text(response).await).unwrap()
    }

    /// Signs in through the form as `subject` with `role`; the code and state it redirects with.
    fn sign_in(issuer: &Issuer, redirect_uri: &str, subject: &str, role: &str) -> (String, String) {
        let mut pairs = authorize_pairs(redirect_uri);
        pairs.extend([("subject", subject), ("role", role)]);
        let response = post(issuer, "/oidc/authorize", &pairs);
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let location = Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(redirect_uri), "{location}");
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        (query["code"].clone(), query["state"].clone())
    }

    fn exchange(issuer: &Issuer, code: &str, verifier: &str) -> Response {
        exchange_for(issuer, code, CALLBACK, verifier)
    }

    fn exchange_for(issuer: &Issuer, code: &str, redirect_uri: &str, verifier: &str) -> Response {
        post(
            issuer,
            "/oidc/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", "oms-console"),
                ("code_verifier", verifier),
            ],
        )
    }

    #[tokio::test]
    async fn discovery_names_the_endpoints_on_the_gateway() {
        let response = get(&issuer(), "/oidc/.well-known/openid-configuration", None);
        assert_eq!(response.status(), StatusCode::OK);
        let document = json_of(response).await;
        assert_eq!(document["issuer"], "http://127.0.0.1:3000/oidc");
        assert_eq!(
            document["authorization_endpoint"],
            "http://127.0.0.1:3000/oidc/authorize"
        );
        assert_eq!(
            document["token_endpoint"],
            "http://127.0.0.1:3000/oidc/token"
        );
        assert_eq!(document["response_types_supported"], json!(["code"]));
        assert_eq!(
            document["grant_types_supported"],
            json!(["authorization_code"])
        );
        assert_eq!(
            document["code_challenge_methods_supported"],
            json!(["S256"])
        );
        assert_eq!(
            document["token_endpoint_auth_methods_supported"],
            json!(["none"])
        );
        assert_eq!(
            document["scopes_supported"],
            json!(["openid", "oms:admin", "oms:warehouse"])
        );
        assert_eq!(document["subject_types_supported"], json!(["public"]));
        assert_eq!(
            document["id_token_signing_alg_values_supported"],
            json!(["HS256"])
        );
        let keys = get(&issuer(), "/oidc/jwks", None);
        assert_eq!(json_of(keys).await, json!({"keys": []}));
    }

    #[tokio::test]
    async fn the_sign_in_page_carries_the_request_in_its_form() {
        let query = encode(&authorize_pairs(CALLBACK));
        let response = get(&issuer(), "/oidc/authorize", Some(&query));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(
            policy.contains("form-action 'self' http://127.0.0.1:3000"),
            "{policy}"
        );
        let page = text(response).await;
        assert!(
            page.contains("<h1>Development sign-in (local stack only)</h1>"),
            "{page}"
        );
        assert!(page.contains(r#"<form method="post" action="/oidc/authorize">"#));
        assert!(page.contains(r#"id="subject" name="subject" value="staff-ada""#));
        assert!(page.contains(r#"<label for="subject">Staff identity</label>"#));
        assert!(page
            .contains(r#"<input type="radio" id="role-admin" name="role" value="admin" checked>"#));
        assert!(page.contains(r#"id="role-warehouse" name="role" value="warehouse">"#));
        assert!(page.contains(r#"id="role-customer" name="role" value="customer">"#));
        assert!(page.contains("Administrator — oms:admin oms:warehouse"));
        assert!(page.contains("Packer — oms:warehouse"));
        assert!(page.contains("Customer — no staff scope"));
        assert!(page.contains(r#"<button type="submit" id="sign-in">Sign in</button>"#));
        // Hidden fields are escaped: the state's & arrives as an entity.
        assert!(
            page.contains(r#"name="state" value="st&amp;te=1""#),
            "{page}"
        );
        assert!(page.contains(&format!(r#"name="code_challenge" value="{CHALLENGE}""#)));
        assert!(!page.contains("<script"));
    }

    #[tokio::test]
    async fn the_code_flow_gives_tokens_the_authorizer_accepts() {
        let issuer = issuer();
        let (code, state) = sign_in(&issuer, CALLBACK, "staff-grace", "admin");
        assert_eq!(state, "st&te=1");
        assert!(code.len() >= 22, "{code}: at least 128 bits");
        let response = exchange(&issuer, &code, VERIFIER);
        let status = response.status();
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let tokens = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["scope"], "oms:admin oms:warehouse");
        let verifier = Verifier::new(SECRET, "oms-local", &["oms".to_owned()]);
        let claims = verifier
            .verify(tokens["access_token"].as_str().unwrap())
            .unwrap();
        assert_eq!(claims["sub"], "staff-grace");
        assert_eq!(claims["scope"], "oms:admin oms:warehouse");
        let id = Verifier::new(
            SECRET,
            "http://127.0.0.1:3000/oidc",
            &["oms-console".to_owned()],
        )
        .verify(tokens["id_token"].as_str().unwrap())
        .unwrap();
        assert_eq!(id["sub"], "staff-grace");
        assert_eq!(id["nonce"], "n-0S6_WzA2Mj");

        let (code, _) = sign_in(&issuer, CALLBACK, "packer-1", "warehouse");
        let tokens = json_of(exchange(&issuer, &code, VERIFIER)).await;
        assert_eq!(tokens["scope"], "oms:warehouse");
        let (code, _) = sign_in(&issuer, CALLBACK, "ada@example.com", "customer");
        let tokens = json_of(exchange(&issuer, &code, VERIFIER)).await;
        assert_eq!(tokens["scope"], "");
        let claims = verifier
            .verify(tokens["access_token"].as_str().unwrap())
            .unwrap();
        assert!(!claims.contains_key("scope"));
    }

    #[tokio::test]
    async fn a_redirect_uri_keeps_its_query_and_is_matched_as_given() {
        let issuer = issuer();
        let with_query = "http://localhost:3000/console/cb?from=%2Forders";
        let (code, state) = sign_in(&issuer, with_query, "staff-ada", "admin");
        assert_eq!(state, "st&te=1");
        let response = exchange_for(&issuer, &code, with_query, VERIFIER);
        assert_eq!(response.status(), StatusCode::OK);
        // Parsing would add a slash; the token request gives the URI as the sign-in did.
        let bare = "http://127.0.0.1:3000";
        let mut pairs = authorize_pairs(bare);
        pairs.extend([("subject", "staff-ada"), ("role", "admin")]);
        let response = post(&issuer, "/oidc/authorize", &pairs);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("http://127.0.0.1:3000/?code="),
            "{location}"
        );
        let code = Url::parse(location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let response = exchange_for(&issuer, &code, bare, VERIFIER);
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_wrong_verifier_is_refused_and_spends_the_code() {
        let issuer = issuer();
        let (code, _) = sign_in(&issuer, CALLBACK, "staff-ada", "admin");
        let response = exchange(&issuer, &code, &"x".repeat(43));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_of(response).await["error"], "invalid_grant");
        let response = exchange(&issuer, &code, VERIFIER);
        assert_eq!(json_of(response).await["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn a_code_is_good_once() {
        let issuer = issuer();
        let (code, _) = sign_in(&issuer, CALLBACK, "staff-ada", "admin");
        assert_eq!(exchange(&issuer, &code, VERIFIER).status(), StatusCode::OK);
        let again = exchange(&issuer, &code, VERIFIER);
        assert_invalid_grant(again, "already used").await;
    }

    /// A 400 `invalid_grant` whose description says `why`.
    async fn assert_invalid_grant(response: Response, why: &str) {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error = json_of(response).await;
        assert_eq!(error["error"], "invalid_grant");
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{description}");
    }

    #[tokio::test]
    async fn an_expired_code_is_refused() {
        let issuer = issuer_with(Duration::ZERO);
        let (code, _) = sign_in(&issuer, CALLBACK, "staff-ada", "admin");
        let response = exchange(&issuer, &code, VERIFIER);
        assert_invalid_grant(response, "expired").await;
    }

    #[tokio::test]
    async fn a_foreign_redirect_uri_is_refused_without_a_redirect() {
        for (uri, why) in [
            ("https://evil.example/cb", "own origin"),
            ("http://127.0.0.1:3001/console/cb", "own origin"),
            ("http://user@127.0.0.1:3000/cb", "own origin"),
            ("http://127.0.0.1:3000/cb#x", "fragment"),
            ("/console/cb", "not an absolute URL"),
        ] {
            let issuer = issuer();
            let query = encode(&authorize_pairs(uri));
            let response = get(&issuer, "/oidc/authorize", Some(&query));
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert!(response.headers().get(header::LOCATION).is_none());
            let page = text(response).await;
            assert!(page.contains("<code>redirect_uri</code>"), "{uri}: {page}");
            assert!(page.contains(why), "{uri}: {page}");
            // The form is checked again, so a page's fields altered before posting fare no better.
            let mut pairs = authorize_pairs(uri);
            pairs.extend([("subject", "staff-ada"), ("role", "admin")]);
            let response = post(&issuer, "/oidc/authorize", &pairs);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert!(response.headers().get(header::LOCATION).is_none());
        }
    }

    #[tokio::test]
    async fn each_wrong_parameter_is_named() {
        let cases: [(&str, Option<&str>); 8] = [
            ("response_type", Some("token")),
            ("code_challenge_method", Some("plain")),
            ("code_challenge_method", None),
            ("code_challenge", None),
            ("code_challenge", Some("short")),
            ("state", None),
            ("client_id", Some("someone-else")),
            ("client_id", None),
        ];
        for (name, value) in cases {
            let mut pairs: Vec<(&str, &str)> = authorize_pairs(CALLBACK)
                .into_iter()
                .filter(|(k, _)| *k != name)
                .collect();
            if let Some(value) = value {
                pairs.push((name, value));
            }
            let response = get(&issuer(), "/oidc/authorize", Some(&encode(&pairs)));
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{name}={value:?}"
            );
            let page = text(response).await;
            assert!(
                page.contains(&format!("<code>{name}</code>")),
                "{name}: {page}"
            );
        }
        let mut twice = authorize_pairs(CALLBACK);
        twice.push(("state", "other"));
        let page = text(get(&issuer(), "/oidc/authorize", Some(&encode(&twice)))).await;
        assert!(page.contains("more than once"), "{page}");
        let page = text(get(&issuer(), "/oidc/authorize", None)).await;
        assert!(page.contains("<code>client_id</code>"), "{page}");
    }

    #[tokio::test]
    async fn a_bad_identity_or_role_shows_the_form_again() {
        let issuer = issuer();
        for (subject, role, error) in [
            ("", "admin", "1 to 64 characters"),
            ("ada lovelace", "admin", "1 to 64 characters"),
            (&"a".repeat(65), "admin", "1 to 64 characters"),
            ("staff-ada", "root", "Choose one of the roles"),
        ] {
            let mut pairs = authorize_pairs(CALLBACK);
            pairs.extend([("subject", subject), ("role", role)]);
            let response = post(&issuer, "/oidc/authorize", &pairs);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert!(response.headers().get(header::LOCATION).is_none());
            let page = text(response).await;
            assert!(page.contains(error), "{subject:?} {role:?}: {page}");
            assert!(page.contains(r#"id="sign-in""#));
        }
        assert!(issuer.codes.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn token_requests_get_the_errors_rfc_6749_names() {
        let issuer = issuer();
        let (code, _) = sign_in(&issuer, CALLBACK, "staff-ada", "admin");
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", "oms-console"),
            ("code_verifier", VERIFIER),
        ];
        let error = json_of(post(&issuer, "/oidc/token", &pairs)).await;
        assert_eq!(error["error"], "unsupported_grant_type");
        pairs[0].1 = "authorization_code";
        pairs.remove(4);
        let error = json_of(post(&issuer, "/oidc/token", &pairs)).await;
        assert_eq!(error["error"], "invalid_request");
        pairs.push(("code_verifier", VERIFIER));
        pairs[2].1 = "http://127.0.0.1:3000/console/elsewhere";
        let error = json_of(post(&issuer, "/oidc/token", &pairs)).await;
        assert_eq!(error["error"], "invalid_grant");
        let not_a_form =
            served(issuer.serve(&Method::POST, "/oidc/token", None, &HeaderMap::new(), b"{}"));
        assert_eq!(not_a_form.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_of(not_a_form).await["error"], "invalid_request");
    }

    #[test]
    fn other_paths_and_methods_are_left_to_the_gateway() {
        let issuer = issuer();
        let headers = HeaderMap::new();
        assert!(matches!(
            issuer.serve(&Method::GET, "/oidc/userinfo", None, &headers, b""),
            Answer::NoEndpoint
        ));
        assert!(matches!(
            issuer.serve(&Method::GET, "/oidc/token", None, &headers, b""),
            Answer::WrongMethod("POST")
        ));
        assert!(matches!(
            issuer.serve(&Method::DELETE, "/oidc/authorize", None, &headers, b""),
            Answer::WrongMethod("GET, POST")
        ));
        assert!(handles("/oidc/token") && handles("/oidc") && !handles("/oidcx"));
    }
}
