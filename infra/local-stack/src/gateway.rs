//! The HTTP API, as API Gateway serves it: the template's routes, its JWT authorizer, and the
//! payload format 2.0 events it sends the functions. Ahead of the routes it serves its own
//! endpoints: `/_local/...`, and the development OpenID Connect issuer at `/oidc` (see
//! [`crate::oidc`]).
//!
//! One known difference: API Gateway's built-in JWT authorizer answers a missing or bad token
//! with `401 {"message":"Unauthorized"}`; HTTP APIs cannot change that body. Locally the same
//! refusal comes as `application/problem+json`, like every other error of the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::jwt::Verifier;
use crate::lambda::Invoker;
use crate::oidc;
use crate::schedules::{Scheduler, Trigger};

/// API Gateway's request payload limit.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// One route: method, path template split into segments, and the binary that serves it.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub binary: String,
    /// Whether the JWT authorizer guards the route.
    pub authorize: bool,
}

impl Route {
    /// The path parameters if `path` matches this route's template.
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let template: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut parameters = BTreeMap::new();
        for (index, segment) in template.iter().enumerate() {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                parameters.insert(name.to_owned(), actual.get(index..)?.join("/"));
                return Some(parameters);
            }
            let value = actual.get(index)?;
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !value.is_empty() => {
                    parameters.insert(name.to_owned(), percent_decode(value));
                }
                Some(_) => return None,
                None if segment == value => {}
                None => return None,
            }
        }
        (template.len() == actual.len()).then_some(parameters)
    }
}

/// A path segment or query value with its `%XX` escapes decoded (as API Gateway hands them to a
/// function); bytes that are not UTF-8 become U+FFFD, and a `%` not followed by two hex digits
/// stays as it is.
fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

/// What the gateway needs.
pub struct Gateway {
    pub routes: Vec<Route>,
    pub verifier: Verifier,
    pub invoker: Invoker,
    /// The template's scheduled functions, run on demand at `/_local/schedules/`.
    pub scheduler: Arc<Scheduler>,
    /// The development OpenID Connect issuer the staff console signs in with.
    pub oidc: oidc::Issuer,
    pub ready: std::sync::atomic::AtomicBool,
    /// Requests to lose on the way, as a network or an endpoint that is down loses them.
    pub losses: Losses,
}

/// The loss switch (`POST /_local/faults/lose` with a text as its body): every later request to
/// the template's routes whose body holds that text is answered `503` without reaching its
/// function — as a webhook is lost to an endpoint that is down — so a test can drop one
/// payment's webhooks and watch the system recover them, while the tests beside it go on.
/// `GET /_local/faults` counts what was lost.
#[derive(Default)]
pub struct Losses {
    markers: std::sync::Mutex<Vec<String>>,
    lost: std::sync::atomic::AtomicUsize,
}

impl Losses {
    /// Loses every later request whose body holds `marker` (at least 8 characters, so a marker
    /// cannot take every request with it).
    pub fn add(&self, marker: &str) -> Result<(), String> {
        if marker.chars().count() < 8 {
            return Err("a marker of at least 8 characters".into());
        }
        let mut markers = self.markers.lock().expect("not poisoned");
        if !markers.iter().any(|m| m == marker) {
            markers.push(marker.to_owned());
        }
        Ok(())
    }

    /// Whether `body` is to be lost; counted if it is.
    pub fn takes(&self, body: &[u8]) -> bool {
        let markers = self.markers.lock().expect("not poisoned");
        if markers.is_empty() {
            return false;
        }
        let text = String::from_utf8_lossy(body);
        let taken = markers.iter().any(|m| text.contains(m.as_str()));
        if taken {
            self.lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        taken
    }

    pub fn lost(&self) -> usize {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The problems the gateway answers itself, instead of a function. Their types are ones the API
/// documents; a test checks them against `infra/openapi.yaml`.
#[derive(Debug, Clone, Copy)]
enum GatewayProblem {
    NotFound,
    MethodNotAllowed,
    Unauthenticated,
    PayloadTooLarge,
    FunctionFailed,
}

impl GatewayProblem {
    #[cfg(test)]
    const ALL: [Self; 5] = [
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthenticated,
        Self::PayloadTooLarge,
        Self::FunctionFailed,
    ];

    /// The status, the problem type's slug and the title.
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Body too large",
            ),
            Self::FunctionFailed => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal Server Error",
            ),
        }
    }
}

fn problem(problem: GatewayProblem, detail: &str) -> Response {
    let (status, kind, title) = problem.parts();
    let body = json!({"type": format!("/problems/{kind}"), "title": title, "status": status.as_u16(), "detail": detail});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Serves every request: local endpoints first, then the template's routes.
pub async fn serve(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/_local/health" {
        return if gateway.ready.load(std::sync::atomic::Ordering::SeqCst) {
            (StatusCode::OK, "ready").into_response()
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
        };
    }
    if path == "/_local/invocations" {
        return axum::Json(gateway.invoker.counts()).into_response();
    }
    if path == "/_local/faults" {
        let mut faults = gateway.invoker.faults();
        faults["lostRequests"] = gateway.losses.lost().into();
        return axum::Json(faults).into_response();
    }
    if path == "/_local/faults/lose" {
        if request.method() != axum::http::Method::POST {
            return problem(
                GatewayProblem::MethodNotAllowed,
                "POST the text whose requests to lose",
            );
        }
        let marker = match to_bytes(request.into_body(), 1024).await {
            Ok(body) => String::from_utf8_lossy(&body).trim().to_owned(),
            Err(_) => return problem(GatewayProblem::PayloadTooLarge, "a marker of at most 1 KB"),
        };
        return match gateway.losses.add(&marker) {
            Ok(()) => (StatusCode::NO_CONTENT, "").into_response(),
            Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
        };
    }
    if path == "/_local/schedules" {
        return axum::Json(list_schedules(&gateway.scheduler)).into_response();
    }
    if let Some(function) = path.strip_prefix("/_local/schedules/") {
        let event = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("event="))
                .map(percent_decode)
        });
        return run_schedule(&gateway, request.method(), function, event.as_deref()).await;
    }
    if oidc::handles(&path) {
        return serve_oidc(&gateway.oidc, request).await;
    }
    let method = request.method().clone();
    // The methods the path is served with, for the `Allow` header of a 405 (RFC 9110 §15.5.6).
    let mut allowed: Vec<&str> = Vec::new();
    let mut found = None;
    for route in &gateway.routes {
        if let Some(parameters) = route.matches(&path) {
            if route.method == method.as_str() || route.method == "ANY" {
                found = Some((route.clone(), parameters));
                break;
            }
            if !allowed.contains(&route.method.as_str()) {
                allowed.push(route.method.as_str());
            }
        }
    }
    let Some((route, parameters)) = found else {
        return if allowed.is_empty() {
            problem(
                GatewayProblem::NotFound,
                &format!("no route for {method} {path}"),
            )
        } else {
            allowed.sort_unstable();
            let mut response = problem(
                GatewayProblem::MethodNotAllowed,
                &format!("{method} is not served on {path}"),
            );
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        };
    };

    let claims = match authorize(&gateway.verifier, request.headers()) {
        _ if !route.authorize => None,
        Ok(claims) => Some(claims),
        Err(detail) => return problem(GatewayProblem::Unauthenticated, &detail),
    };

    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_PAYLOAD_BYTES).await {
        Ok(body) => body,
        Err(_) => return problem(GatewayProblem::PayloadTooLarge, "the body exceeds 10 MB"),
    };
    if gateway.losses.takes(&body) {
        tracing::info!(%path, "request lost on purpose (/_local/faults/lose)");
        return (StatusCode::SERVICE_UNAVAILABLE, "lost on the way").into_response();
    }
    let event = api_gateway_event(
        &route,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
        parameters,
        claims,
    );
    match gateway.invoker.invoke(&route.binary, &event).await {
        Ok(payload) => function_response(&payload),
        Err(error) => {
            tracing::error!(binary = %route.binary, %error, "invocation failed");
            problem(GatewayProblem::FunctionFailed, "the function failed")
        }
    }
}

/// A request to the development issuer: its answer, or the gateway's own problem for a path or
/// method it does not serve.
async fn serve_oidc(issuer: &oidc::Issuer, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, oidc::MAX_FORM_BYTES).await else {
        return problem(
            GatewayProblem::PayloadTooLarge,
            &format!(
                "the sign-in endpoints read at most {} KB",
                oidc::MAX_FORM_BYTES / 1024
            ),
        );
    };
    let path = parts.uri.path();
    match issuer.serve(
        &parts.method,
        path,
        parts.uri.query(),
        &parts.headers,
        &body,
    ) {
        oidc::Answer::Served(response) => response,
        oidc::Answer::NoEndpoint => problem(
            GatewayProblem::NotFound,
            &format!("the development OpenID Connect issuer has no endpoint {path}"),
        ),
        oidc::Answer::WrongMethod(allow) => {
            let mut response = problem(
                GatewayProblem::MethodNotAllowed,
                &format!(
                    "{} is not served on {path} (it serves {allow})",
                    parts.method
                ),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            response
        }
    }
}

/// `GET /_local/schedules`: every schedule the stack runs.
fn list_schedules(scheduler: &Scheduler) -> Value {
    scheduler
        .schedules()
        .iter()
        .map(|s| {
            json!({"function": s.function, "event": s.event, "expression": s.expression,
                   "enabled": s.enabled, "rule": s.rule_arn})
        })
        .collect()
}

/// `POST /_local/schedules/{FunctionLogicalId}[?event=Name]`: one run now, answered with the
/// function's result, or `502` with its error.
async fn run_schedule(
    gateway: &Gateway,
    method: &Method,
    function: &str,
    event: Option<&str>,
) -> Response {
    if method != Method::POST {
        let mut response = problem(
            GatewayProblem::MethodNotAllowed,
            "a schedule is run with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let function = percent_decode(function);
    let Some(schedule) = gateway.scheduler.find(&function, event) else {
        return problem(
            GatewayProblem::NotFound,
            &format!(
                "{function} has no schedule event{} (GET /_local/schedules lists them)",
                event.map(|e| format!(" {e}")).unwrap_or_default()
            ),
        );
    };
    if !gateway.ready.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response();
    }
    match gateway.scheduler.run(schedule, Trigger::OnDemand).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({"function": schedule.function, "event": schedule.event, "error": error.to_string()})),
        )
            .into_response(),
    }
}

fn authorize(
    verifier: &Verifier,
    headers: &HeaderMap,
) -> Result<serde_json::Map<String, Value>, String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("an Authorization header with a bearer token is required")?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value)
        .trim();
    verifier
        .verify(token)
        .map_err(|e| format!("the token was refused: {e}"))
}

/// The payload format 2.0 event API Gateway sends for this request.
fn api_gateway_event(
    route: &Route,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    path_parameters: BTreeMap<String, String>,
    claims: Option<serde_json::Map<String, Value>>,
) -> Value {
    let mut header_map = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(value.split(';').map(|c| Value::String(c.trim().to_owned())));
            continue;
        }
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let mut query = serde_json::Map::new();
    // `application/x-www-form-urlencoded`, as API Gateway reads a query string: `+` is a space.
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let now = chrono::Utc::now();
    let route_key = format!("{} {}", route.method, route.path);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "oms-local",
            "domainName": headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "localhost",
            "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": user_agent},
            "requestId": request_id(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": encoded
    });
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    if !body.is_empty() {
        event["body"] = Value::String(body);
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = json!(path_parameters);
    }
    event
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "local-{}-{}",
        chrono::Utc::now().timestamp_millis(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The HTTP response for a function's payload format 2.0 answer.
fn function_response(payload: &Value) -> Response {
    let Some(status) = payload["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
    else {
        // A payload without a status code is the body itself, with 200 (API Gateway's rule).
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            payload.to_string(),
        )
            .into_response();
    };
    let body = payload["body"].as_str().unwrap_or_default();
    let body = if payload["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(map) = payload["headers"].as_object() {
        for (name, value) in map {
            if let (Ok(name), Some(Ok(value))) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    if let Some(map) = payload["multiValueHeaders"].as_object() {
        for (name, values) in map {
            for value in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    if !headers.contains_key(&name) {
                        headers.append(name, value);
                    }
                }
            }
        }
    }
    for cookie in payload["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route {
            method: method.into(),
            path: path.into(),
            binary: "b".into(),
            authorize: true,
        }
    }

    #[test]
    fn matches_templates_with_parameters() {
        let r = route("GET", "/orders/{id}");
        assert_eq!(r.matches("/orders/01ABC").unwrap()["id"], "01ABC");
        assert!(r.matches("/orders").is_none());
        assert!(r.matches("/orders/1/x").is_none());
        assert!(route("GET", "/orders")
            .matches("/orders")
            .unwrap()
            .is_empty());
        assert_eq!(
            route("POST", "/inventory/{sku}/adjustments")
                .matches("/inventory/A%2DB/adjustments")
                .unwrap()["sku"],
            "A-B"
        );
    }

    #[test]
    fn escapes_decode_whatever_follows_them() {
        let sku =
            |path: &str| route("GET", "/inventory/{sku}").matches(path).unwrap()["sku"].clone();
        // A multi-byte character right after `%` (it used to be sliced mid-character).
        assert_eq!(sku("/inventory/%é1"), "%é1");
        assert_eq!(sku("/inventory/%C3%A9"), "é");
        assert_eq!(sku("/inventory/A%41"), "AA", "an escape at the very end");
        assert_eq!(sku("/inventory/%ZZ%"), "%ZZ%");
        assert_eq!(sku("/inventory/%FF"), "\u{FFFD}");
    }

    #[test]
    fn builds_the_payload_format_2_event() {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_static("k1"));
        let uri: axum::http::Uri = "/orders?limit=2&cursor=abc".parse().unwrap();
        let claims = serde_json::Map::from_iter([("sub".to_owned(), Value::String("ada".into()))]);
        let event = api_gateway_event(
            &route("GET", "/orders"),
            &Method::GET,
            &uri,
            &headers,
            b"",
            BTreeMap::new(),
            Some(claims),
        );
        assert_eq!(event["routeKey"], "GET /orders");
        assert_eq!(event["queryStringParameters"]["limit"], "2");
        assert_eq!(
            event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"],
            "ada"
        );
        assert_eq!(event["headers"]["idempotency-key"], "k1");
    }

    /// A gateway with one route and no functions, and the development issuer.
    fn bare_gateway() -> Arc<Gateway> {
        let invoker = Invoker::new("http://127.0.0.1:9".into(), 1);
        Arc::new(Gateway {
            routes: vec![route("GET", "/orders")],
            verifier: Verifier::new("s3cret", "oms-local", &["oms".to_owned()]),
            scheduler: Arc::new(Scheduler::new(
                &[],
                "oms-local",
                "us-east-1",
                "123456789012",
                invoker.clone(),
            )),
            invoker,
            oidc: oidc::Issuer::new(oidc::Config {
                base: "http://127.0.0.1:3000".into(),
                client_id: "oms-console".into(),
                jwt_secret: "s3cret".into(),
                access_issuer: "oms-local".into(),
                access_audience: "oms".into(),
            })
            .unwrap(),
            ready: true.into(),
            losses: Default::default(),
        })
    }

    #[tokio::test]
    async fn the_development_issuer_answers_ahead_of_the_routes() {
        let gateway = bare_gateway();
        let request = |method: Method, uri: &str| {
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap()
        };
        let discovery = serve(
            State(gateway.clone()),
            request(Method::GET, "/oidc/.well-known/openid-configuration"),
        )
        .await;
        assert_eq!(discovery.status(), StatusCode::OK);
        let body = to_bytes(discovery.into_body(), usize::MAX).await.unwrap();
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["issuer"], "http://127.0.0.1:3000/oidc");

        let refused = serve(
            State(gateway.clone()),
            request(Method::GET, "/oidc/authorize"),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));

        let missing = serve(
            State(gateway.clone()),
            request(Method::GET, "/oidc/userinfo"),
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let wrong = serve(State(gateway.clone()), request(Method::GET, "/oidc/token")).await;
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong.headers()[header::ALLOW], "POST");
        // The template's routes are still the gateway's.
        let unauthenticated = serve(State(gateway.clone()), request(Method::GET, "/orders")).await;
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
        // A method the path is not served with names the ones it is (RFC 9110's `Allow`).
        let undeclared = serve(State(gateway), request(Method::TRACE, "/orders")).await;
        assert_eq!(undeclared.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(undeclared.headers()[header::ALLOW], "GET");
    }

    #[test]
    fn answers_only_problem_types_the_api_documents() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let document: serde_yaml::Value = serde_yaml::from_str(&text).expect("openapi.yaml parses");
        let documented: Vec<&str> = document["components"]["schemas"]["Problem"]["properties"]
            ["type"]["enum"]
            .as_sequence()
            .expect("the Problem schema's type has an enum")
            .iter()
            .filter_map(serde_yaml::Value::as_str)
            .collect();
        for answered in GatewayProblem::ALL {
            let uri = format!("/problems/{}", answered.parts().1);
            assert!(
                documented.contains(&uri.as_str()),
                "{answered:?} answers {uri}, which openapi.yaml does not list"
            );
        }
    }

    #[test]
    fn the_loss_switch_takes_only_the_requests_naming_its_marker() {
        let losses = Losses::default();
        assert!(
            !losses.takes(b"{\"id\": \"pi_12345678\"}"),
            "off until a marker"
        );
        assert!(
            losses.add("pi_1").is_err(),
            "too short: it would take too much"
        );
        losses.add("pi_12345678").unwrap();
        assert!(losses.takes(b"{\"id\": \"pi_12345678\"}"));
        assert!(!losses.takes(b"{\"id\": \"pi_87654321\"}"));
        assert_eq!(losses.lost(), 1);
    }
}
