//! The HTTP edge shared by every API function.
//!
//! - [`caller`]: who is calling, from the claims API Gateway's JWT authorizer passed on. The
//!   authorizer has already checked the token; a request without claims can only be a
//!   misconfiguration, and is refused rather than trusted.
//! - [`json_body`]: the request body as JSON, with its size, media type and syntax checked.
//! - [`ApiError`] and [`problem`]: the one mapping from every error to an
//!   `application/problem+json` response (RFC 9457) with a stable `type`, one of the closed set
//!   [`ProblemType`]. 4xx bodies say what is wrong; 5xx bodies say nothing internal, and the log
//!   says everything.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use oms_domain::app::caller::Caller;
use oms_domain::app::fulfillment::FulfillmentAppError;
use oms_domain::app::intake::IntakeError;
use oms_domain::app::inventory::InventoryError;
use oms_domain::app::payments::PaymentAppError;
use oms_domain::app::queries::QueryError;
use oms_domain::app::returns::ReturnsAppError;
use oms_domain::app::staff::StaffError;
use oms_domain::ids::{CustomerId, IdempotencyKey};
use oms_domain::order::cancellation::CancelError;
use oms_domain::order::edits::EditError;
use oms_domain::order::refunds::RefundRetryError;
use oms_domain::order::returns::ReturnError;
use oms_domain::ports::{Page, ProviderError, StoreError};
use oms_domain::stock::TransferError;
use oms_domain::validation::ValidationErrors;
use serde::Serialize;

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The largest request body any route accepts. A 99-line order is about 10 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Defines [`ProblemType`] from one table: variant, slug, status, title.
macro_rules! problem_types {
    ($($variant:ident => $slug:literal, $status:ident, $title:literal;)*) => {
        /// Every problem `type` the API answers: the closed set `infra/openapi.yaml` documents
        /// (a test checks that the two agree). Each has one status and a default title.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $(#[doc = concat!("`/problems/", $slug, "`: ", $title, ".")] $variant,)*
        }

        impl ProblemType {
            /// Every problem type.
            pub const ALL: &'static [ProblemType] = &[$(Self::$variant),*];

            /// The slug, `malformed-json`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $slug,)*
                }
            }

            /// The `type` URI a problem body carries, `/problems/malformed-json`.
            pub const fn uri(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("/problems/", $slug),)*
                }
            }

            /// The status a problem of this type is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }

            /// The title, unless the error names a more specific one.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)*
                }
            }
        }
    };
}

problem_types! {
    MalformedJson => "malformed-json", BAD_REQUEST, "Malformed JSON";
    MissingIdempotencyKey => "missing-idempotency-key", BAD_REQUEST, "Idempotency-Key required";
    InvalidIdempotencyKey => "invalid-idempotency-key", BAD_REQUEST, "Invalid Idempotency-Key";
    InvalidQuery => "invalid-query", BAD_REQUEST, "Invalid query parameter";
    InvalidCursor => "invalid-cursor", BAD_REQUEST, "Invalid cursor";
    InvalidIfMatch => "invalid-if-match", BAD_REQUEST, "Invalid If-Match";
    Unauthenticated => "unauthenticated", UNAUTHORIZED, "Authentication required";
    InvalidSignature => "invalid-signature", UNAUTHORIZED, "Invalid signature";
    Forbidden => "forbidden", FORBIDDEN, "Missing scope";
    NotFound => "not-found", NOT_FOUND, "Not found";
    // Answered by the local gateway only; API Gateway answers an unserved method itself.
    MethodNotAllowed => "method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed";
    ValidationError => "validation-error", UNPROCESSABLE_ENTITY, "Invalid request";
    IdempotencyKeyReused => "idempotency-key-reused", CONFLICT, "Idempotency-Key reused";
    IdempotencyKeyInProgress => "idempotency-key-in-progress", CONFLICT, "Request in progress";
    InsufficientStock => "insufficient-stock", CONFLICT, "Stock change refused";
    ConcurrentModification => "concurrent-modification", CONFLICT, "Concurrent modification";
    InvalidFulfillmentStep => "invalid-fulfillment-step", CONFLICT, "Step not allowed now";
    NotCancellable => "not-cancellable", CONFLICT, "Cannot be cancelled";
    NotEditable => "not-editable", CONFLICT, "Cannot be edited";
    ReturnInstead => "return-instead", CONFLICT, "Already shipped";
    NotReturnable => "not-returnable", CONFLICT, "Not returnable";
    InvalidReturnStep => "invalid-return-step", CONFLICT, "Step not allowed now";
    ReturnAlreadyReceived => "return-already-received", CONFLICT, "Return already received";
    TransferAlreadyReceived => "transfer-already-received", CONFLICT, "Transfer already received";
    PurchaseOrderNotOpen => "purchase-order-not-open", CONFLICT, "Purchase order not open";
    LabelNotIssued => "label-not-issued", CONFLICT, "No label yet";
    PaymentNotRecorded => "payment-not-recorded", CONFLICT, "Payment event not recorded";
    RefundNotRetryable => "refund-not-retryable", CONFLICT, "Refund cannot be asked again";
    PaymentNotNeeded => "payment-not-needed", CONFLICT, "No payment due";
    PreconditionFailed => "precondition-failed", PRECONDITION_FAILED, "Stale If-Match";
    PreconditionRequired => "precondition-required", PRECONDITION_REQUIRED, "If-Match required";
    PayloadTooLarge => "payload-too-large", PAYLOAD_TOO_LARGE, "Body too large";
    UnsupportedMediaType => "unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type";
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, "Service busy, retry later";
    InternalError => "internal-error", INTERNAL_SERVER_ERROR, "Internal error";
}

/// Everything an API call can fail with, each mapped to one status and problem type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// A signed webhook whose signature is missing, malformed, stale or wrong.
    #[error("{0}")]
    InvalidSignature(String),
    #[error("this call needs the scope {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("the request has invalid fields")]
    Invalid(ValidationErrors),
    /// A 400: `problem` is one whose status is 400.
    #[error("{detail}")]
    BadRequest {
        problem: ProblemType,
        detail: String,
    },
    /// A 409: `problem` is one whose status is 409. `title`, if given, replaces the type's own
    /// where the refusal has a more specific name.
    #[error("{detail}")]
    Conflict {
        problem: ProblemType,
        title: Option<&'static str>,
        detail: String,
    },
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    #[error("the resource changed since the caller read it: its ETag is now \"v{current}\"")]
    PreconditionFailed { current: u64 },
    #[error("this call needs If-Match with the resource's current ETag")]
    PreconditionRequired,
    #[error("the service is busy: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [oms_domain::validation::FieldError]>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ProblemType, &'static str) {
        let problem = match self {
            Self::Unauthenticated => ProblemType::Unauthenticated,
            Self::InvalidSignature(_) => ProblemType::InvalidSignature,
            Self::Forbidden(_) => ProblemType::Forbidden,
            Self::NotFound(_) => ProblemType::NotFound,
            Self::Invalid(_) => ProblemType::ValidationError,
            Self::BadRequest { problem, .. } => *problem,
            Self::Conflict { problem, .. } => *problem,
            Self::PayloadTooLarge => ProblemType::PayloadTooLarge,
            Self::UnsupportedMediaType => ProblemType::UnsupportedMediaType,
            Self::PreconditionFailed { .. } => ProblemType::PreconditionFailed,
            Self::PreconditionRequired => ProblemType::PreconditionRequired,
            Self::Unavailable(_) => ProblemType::Unavailable,
            Self::Internal(_) => ProblemType::InternalError,
        };
        let status = match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            _ => problem.status(),
        };
        debug_assert_eq!(
            status,
            problem.status(),
            "{problem:?} answered with {status}"
        );
        let title = match self {
            Self::Conflict {
                title: Some(title), ..
            } => title,
            _ => problem.title(),
        };
        (status, problem, title)
    }
}

/// The problem+json response for an error. Server errors are logged in full and answered with
/// nothing internal.
pub fn problem(error: &ApiError) -> Response<Body> {
    let (status, kind, title) = error.parts();
    let detail = if status.is_server_error() {
        tracing::error!(%error, "request failed");
        match error {
            ApiError::Unavailable(_) => {
                "The service is busy. Retry the same request shortly.".to_owned()
            }
            _ => "An internal error occurred. It has been logged.".to_owned(),
        }
    } else {
        tracing::info!(
            problem = kind.as_str(),
            status = status.as_u16(),
            "request refused"
        );
        match error {
            ApiError::Invalid(errors) => format!("{}", errors),
            other => other.to_string(),
        }
    };
    let errors = match error {
        ApiError::Invalid(errors) => Some(errors.0.as_slice()),
        _ => None,
    };
    let body = Problem {
        kind: kind.uri(),
        title,
        status: status.as_u16(),
        detail,
        errors,
    };
    let mut response = json_response(status, &body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The response for a handler's result: its own on success, a problem on error.
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(|error| problem(&error))
}

/// A JSON response.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(json) => raw_json_response(status, json),
        Err(error) => problem(&ApiError::Internal(format!(
            "cannot encode the response: {error}"
        ))),
    }
}

/// A response whose JSON body is already encoded (a replayed answer, say).
pub fn raw_json_response(status: StatusCode, json: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(json));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

/// Every answer of this API is about one customer's orders or one business's stock: orders
/// carry names, addresses and contacts, so no cache on the way may keep any of them.
pub const NO_STORE: &str = "no-store";

/// The caller, from the JWT claims the API's authorizer passed on: `sub` is the customer id,
/// `scope` (space-separated) the scopes.
pub fn caller(request: &Request) -> Result<Caller, ApiError> {
    let jwt = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            context.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
        }
        _ => None,
    }
    .ok_or(ApiError::Unauthenticated)?;
    let customer_id = jwt
        .claims
        .get("sub")
        .and_then(|sub| CustomerId::parse(sub.as_str()).ok())
        .ok_or(ApiError::Unauthenticated)?;
    let mut scopes: Vec<String> = jwt.scopes.clone().unwrap_or_default();
    if let Some(scope) = jwt.claims.get("scope") {
        scopes.extend(scope.split_whitespace().map(str::to_owned));
    }
    Ok(Caller {
        customer_id,
        scopes,
    })
}

/// Refuses a caller without `scope`.
pub fn require_scope(caller: &Caller, scope: &'static str) -> Result<(), ApiError> {
    if caller.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(scope))
    }
}

/// The request body as JSON: at most [`MAX_BODY_BYTES`], `application/json` if a type is given,
/// and well-formed.
pub fn json_body(request: &Request) -> Result<serde_json::Value, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            problem: ProblemType::MalformedJson,
            detail: "the body is empty".into(),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest {
        problem: ProblemType::MalformedJson,
        detail: format!("the body is not valid JSON: {e}"),
    })
}

/// The API route that matched, as API Gateway names it (`GET /orders/{id}`): functions that serve
/// several routes dispatch on it.
pub fn route_key(request: &Request) -> Option<&str> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.route_key.as_deref(),
        _ => None,
    }
}

/// The problem for a route this function does not serve: a deployment mistake, not a client's.
pub fn unknown_route(request: &Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// The entity tag of a resource at `version`.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"v{version}\"")).expect("a version is a valid header value")
}

/// The version an `If-Match` header names (`"v7"`, weak or strong), if the request has one.
pub fn if_match(request: &Request) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or(ApiError::BadRequest {
            problem: ProblemType::InvalidIfMatch,
            detail: "If-Match must be an ETag this API returned, such as \"v3\"".into(),
        })
}

/// The `limit` query parameter of a listing: 1 to the largest page, the default page if absent.
pub fn page_limit(request: &Request) -> Result<u32, ApiError> {
    use oms_domain::app::queries::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
    match request
        .query_string_parameters_ref()
        .and_then(|q| q.first("limit"))
    {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                problem: ProblemType::InvalidQuery,
                detail: format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"),
            }),
    }
}

/// The header that makes a create safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request's `Idempotency-Key`, which `route` requires.
pub fn idempotency_key(request: &Request, route: &str) -> Result<IdempotencyKey, ApiError> {
    request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| ApiError::BadRequest {
            problem: ProblemType::MissingIdempotencyKey,
            detail: format!(
                "{route} needs an Idempotency-Key header, unique per thing the client means to create"
            ),
        })?
        .to_str()
        .ok()
        .and_then(|k| IdempotencyKey::parse(k).ok())
        .ok_or(ApiError::BadRequest {
            problem: ProblemType::InvalidIdempotencyKey,
            detail: "the Idempotency-Key must be 1 to 128 printable ASCII characters other than '#'"
                .into(),
        })
}

/// The request's `Idempotency-Key`, where `route` takes one but does not require it.
pub fn optional_idempotency_key(
    request: &Request,
    route: &str,
) -> Result<Option<IdempotencyKey>, ApiError> {
    if request.headers().contains_key(IDEMPOTENCY_KEY) {
        idempotency_key(request, route).map(Some)
    } else {
        Ok(None)
    }
}

/// A path parameter the route declares.
pub fn path_parameter(request: &Request, name: &str) -> Result<String, ApiError> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::NotFound(format!("no {name} in the path")))
}

/// The identifier in the path parameter `name`, parsed by `parse`. A malformed identifier names
/// nothing, so it answers the same 404 as one that names nothing stored (`not_found` says what).
pub fn path_id<T, E>(
    request: &Request,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
    not_found: impl FnOnce(&str) -> String,
) -> Result<T, ApiError> {
    let raw = path_parameter(request, name)?;
    parse(&raw).map_err(|_| ApiError::NotFound(not_found(&raw)))
}

/// One page of a listing as every API answers it: `{"items": [...], "nextCursor": "..."}`
/// (no `nextCursor` on the last page).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T: Serialize> Listing<T> {
    /// The page's items as `view` shows them (an item it shows as `None` is left out).
    pub fn of<'a, U>(page: &'a Page<U>, view: impl FnMut(&'a U) -> Option<T>) -> Self {
        Listing {
            items: page.items.iter().filter_map(view).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }

    /// The page as a `200` answer.
    pub fn response(&self) -> Response<Body> {
        json_response(StatusCode::OK, self)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Retryable(message) => ApiError::Unavailable(message),
            StoreError::InvalidCursor => ApiError::BadRequest {
                problem: ProblemType::InvalidCursor,
                detail: "the cursor was not issued for this listing".into(),
            },
            StoreError::ConditionFailed => ApiError::Conflict {
                problem: ProblemType::ConcurrentModification,
                title: None,
                detail: "the resource changed while the request was processed; retry it".into(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<StaffError> for ApiError {
    fn from(error: StaffError) -> Self {
        match error {
            StaffError::Forbidden(scope) => ApiError::Forbidden(scope),
            StaffError::InvalidQuery(detail) => ApiError::BadRequest {
                problem: ProblemType::InvalidQuery,
                detail,
            },
            StaffError::Store(error) => error.into(),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(error: IntakeError) -> Self {
        match error {
            IntakeError::Invalid(errors) => ApiError::Invalid(errors),
            IntakeError::KeyReused => ApiError::Conflict {
                problem: ProblemType::IdempotencyKeyReused,
                title: None,
                detail: "this Idempotency-Key was already used with a different request body"
                    .into(),
            },
            IntakeError::InProgress => ApiError::Conflict {
                problem: ProblemType::IdempotencyKeyInProgress,
                title: None,
                detail:
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
            },
            IntakeError::Store(error) => error.into(),
        }
    }
}

impl From<FulfillmentAppError> for ApiError {
    fn from(error: FulfillmentAppError) -> Self {
        match error {
            FulfillmentAppError::NotFound => {
                ApiError::NotFound("no shipment for this order".into())
            }
            FulfillmentAppError::PreconditionFailed { current } => {
                ApiError::PreconditionFailed { current }
            }
            FulfillmentAppError::PreconditionRequired => ApiError::PreconditionRequired,
            FulfillmentAppError::NotAllowed(step) => ApiError::Conflict {
                problem: ProblemType::InvalidFulfillmentStep,
                title: None,
                detail: step.to_string(),
            },
            FulfillmentAppError::Invalid(errors) => ApiError::Invalid(errors),
            FulfillmentAppError::Contended => {
                ApiError::Unavailable("the shipment kept changing".into())
            }
            error @ FulfillmentAppError::Short(_) => ApiError::Conflict {
                problem: ProblemType::InsufficientStock,
                title: None,
                detail: error.to_string(),
            },
            FulfillmentAppError::Store(error) => error.into(),
        }
    }
}

impl From<ReturnsAppError> for ApiError {
    fn from(error: ReturnsAppError) -> Self {
        let conflict = |problem, detail: String| ApiError::Conflict {
            problem,
            title: None,
            detail,
        };
        match error {
            ReturnsAppError::NotFound(what) => ApiError::NotFound(format!("no such {what}")),
            ReturnsAppError::Cancel(e @ CancelError::Shipped) => {
                conflict(ProblemType::ReturnInstead, e.to_string())
            }
            ReturnsAppError::Cancel(CancelError::Units(errors)) => ApiError::Invalid(errors),
            ReturnsAppError::Cancel(e) => conflict(ProblemType::NotCancellable, e.to_string()),
            ReturnsAppError::Edit(EditError::Fields(errors)) => ApiError::Invalid(errors),
            ReturnsAppError::Edit(e) => conflict(ProblemType::NotEditable, e.to_string()),
            ReturnsAppError::Return(e @ ReturnError::NotDelivered(_)) => {
                conflict(ProblemType::NotReturnable, e.to_string())
            }
            ReturnsAppError::Return(e @ ReturnError::AlreadyReceived) => {
                conflict(ProblemType::ReturnAlreadyReceived, e.to_string())
            }
            ReturnsAppError::Return(e) => conflict(ProblemType::InvalidReturnStep, e.to_string()),
            ReturnsAppError::Invalid(errors) => ApiError::Invalid(errors),
            ReturnsAppError::KeyReused => conflict(
                ProblemType::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request body".into(),
            ),
            // Not a stock change the caller asked for: the title says which stock was short.
            e @ ReturnsAppError::ExchangeUnavailable(_) => ApiError::Conflict {
                problem: ProblemType::InsufficientStock,
                title: Some("Exchange not in stock"),
                detail: e.to_string(),
            },
            ReturnsAppError::Contended => ApiError::Unavailable("the order kept changing".into()),
            ReturnsAppError::Stale { current } => ApiError::PreconditionFailed { current },
            ReturnsAppError::Store(error) => error.into(),
        }
    }
}

impl From<PaymentAppError> for ApiError {
    fn from(error: PaymentAppError) -> Self {
        match error {
            PaymentAppError::NotFound => ApiError::NotFound("no such order".into()),
            PaymentAppError::NotAllowed(e) => ApiError::Conflict {
                problem: ProblemType::PaymentNotRecorded,
                title: None,
                detail: e.to_string(),
            },
            PaymentAppError::Refund(RefundRetryError::NoSuchRefund) => {
                ApiError::NotFound("the order has no such refund".into())
            }
            PaymentAppError::Refund(e) => ApiError::Conflict {
                problem: ProblemType::RefundNotRetryable,
                title: None,
                detail: e.to_string(),
            },
            error @ PaymentAppError::Acknowledge(_) => ApiError::Conflict {
                problem: ProblemType::ConcurrentModification,
                title: Some("Nothing to acknowledge"),
                detail: error.to_string(),
            },
            PaymentAppError::PreconditionFailed { current } => {
                ApiError::PreconditionFailed { current }
            }
            PaymentAppError::Forbidden(scope) => ApiError::Forbidden(scope),
            PaymentAppError::NotPayable(detail) => ApiError::Conflict {
                problem: ProblemType::PaymentNotNeeded,
                title: None,
                detail,
            },
            PaymentAppError::Provider(ProviderError::Unavailable(detail)) => {
                ApiError::Unavailable(detail)
            }
            // A refusal of a payment the system opens is its own configuration's fault (a key,
            // an account): logged in full, answered as an internal error.
            PaymentAppError::Provider(
                error @ (ProviderError::Refused(_)
                | ProviderError::UnknownPayment(_)
                | ProviderError::NotConfigured(_)),
            ) => ApiError::Internal(error.to_string()),
            PaymentAppError::Contended => ApiError::Unavailable("the order kept changing".into()),
            PaymentAppError::Store(error) => error.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::NotFound => ApiError::NotFound("no such order".into()),
            QueryError::Store(error) => error.into(),
        }
    }
}

impl From<InventoryError> for ApiError {
    fn from(error: InventoryError) -> Self {
        match error {
            InventoryError::Invalid(errors) => ApiError::Invalid(errors),
            InventoryError::NotFound(sku) => {
                ApiError::NotFound(format!("SKU {sku} does not exist"))
            }
            InventoryError::Stock(error) => ApiError::Conflict {
                problem: ProblemType::InsufficientStock,
                title: None,
                detail: error.to_string(),
            },
            InventoryError::KeyReused => ApiError::Conflict {
                problem: ProblemType::IdempotencyKeyReused,
                title: None,
                detail: "this Idempotency-Key was already used with a different request body"
                    .into(),
            },
            InventoryError::TransferNotFound(id) => {
                ApiError::NotFound(format!("transfer {id} does not exist"))
            }
            InventoryError::Transfer(error @ TransferError::SameLocation(_)) => {
                ApiError::Invalid(ValidationErrors::one("to", error.to_string()))
            }
            InventoryError::Transfer(error) => ApiError::Conflict {
                problem: ProblemType::TransferAlreadyReceived,
                title: None,
                detail: error.to_string(),
            },
            InventoryError::PurchaseNotFound(id) => {
                ApiError::NotFound(format!("purchase order {id} does not exist"))
            }
            InventoryError::Purchase(error) => ApiError::Conflict {
                problem: ProblemType::PurchaseOrderNotOpen,
                title: None,
                detail: error.to_string(),
            },
            error @ (InventoryError::NotAsSeen { .. }
            | InventoryError::DeliveryNotAsSeen { .. }) => ApiError::Conflict {
                problem: ProblemType::ConcurrentModification,
                title: None,
                detail: error.to_string(),
            },
            InventoryError::Contended => ApiError::Unavailable("the SKU kept changing".into()),
            InventoryError::Store(error) => error.into(),
        }
    }
}

impl From<oms_domain::app::locations::LocationAppError> for ApiError {
    fn from(error: oms_domain::app::locations::LocationAppError) -> Self {
        use oms_domain::app::locations::LocationAppError;
        match error {
            LocationAppError::Invalid(errors) => ApiError::Invalid(errors),
            LocationAppError::PreconditionFailed { current } => {
                ApiError::PreconditionFailed { current }
            }
            // The list as a whole refused the location (the most a business may list).
            LocationAppError::Refused(error) => {
                ApiError::Invalid(ValidationErrors::one("id", error.to_string()))
            }
            LocationAppError::Contended => {
                ApiError::Unavailable("the locations kept changing".into())
            }
            LocationAppError::Store(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn validation_errors_name_each_field() {
        let response = problem(&ApiError::Invalid(ValidationErrors::one(
            "lines[0].quantity",
            "must be 1 to 999",
        )));
        assert_eq!(response.status(), 422);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = body_of(&response);
        assert_eq!(body["type"], "/problems/validation-error");
        assert_eq!(body["errors"][0]["field"], "lines[0].quantity");
    }

    #[test]
    fn no_answer_may_be_cached_on_the_way() {
        let ok = json_response(StatusCode::OK, &serde_json::json!({"name": "Ada"}));
        let refused = problem(&ApiError::NotFound("no such order".into()));
        for response in [ok, refused] {
            assert_eq!(
                response
                    .headers()
                    .get(header::CACHE_CONTROL)
                    .map(|v| v.to_str().unwrap()),
                Some("no-store")
            );
        }
    }

    #[test]
    fn server_errors_say_nothing_internal() {
        let response = problem(&ApiError::Internal(
            "table oms-orders: AccessDenied for role x".into(),
        ));
        assert_eq!(response.status(), 500);
        assert!(!body_of(&response).to_string().contains("AccessDenied"));
        let busy = problem(&StoreError::Retryable("ThrottlingException".into()).into());
        assert_eq!(busy.status(), 503);
        assert!(busy.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn the_problem_types_are_exactly_the_ones_the_api_documents() {
        use std::collections::BTreeSet;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let document: serde_yaml::Value = serde_yaml::from_str(&text).expect("openapi.yaml parses");
        let listed: Vec<&str> = document["components"]["schemas"]["Problem"]["properties"]["type"]
            ["enum"]
            .as_sequence()
            .expect("the Problem schema's type has an enum")
            .iter()
            .map(|uri| uri.as_str().expect("each problem type is a string"))
            .collect();
        let documented: BTreeSet<&str> = listed.iter().copied().collect();
        let answered: BTreeSet<&str> = ProblemType::ALL.iter().map(|p| p.uri()).collect();
        assert_eq!(
            listed.len(),
            documented.len(),
            "openapi.yaml lists a type twice"
        );
        assert_eq!(
            ProblemType::ALL.len(),
            answered.len(),
            "two types share a URI"
        );
        let undocumented: Vec<_> = answered.difference(&documented).collect();
        let unanswered: Vec<_> = documented.difference(&answered).collect();
        assert!(
            undocumented.is_empty() && unanswered.is_empty(),
            "answered but not documented: {undocumented:?}; documented but not a ProblemType: {unanswered:?}"
        );
    }
    /// The request readers take an explicit `null` for an absent optional field (`Fields::get`),
    /// so the document must call every optional field of a caller's request `nullable`: else a
    /// client generated from it cannot send `null`, and a `null` the server accepts is one the
    /// document calls invalid. The signed webhooks carry their senders' formats and are left out.
    #[test]
    fn every_optional_field_of_a_callers_request_is_nullable() {
        use serde_yaml::Value;
        fn walk(
            schemas: &Value,
            schema: &Value,
            path: &str,
            seen: &mut Vec<String>,
            missing: &mut Vec<String>,
        ) {
            if let Some(name) = schema["$ref"].as_str() {
                let name = name.rsplit('/').next().unwrap_or(name).to_owned();
                if !seen.contains(&name) {
                    seen.push(name.clone());
                    walk(schemas, &schemas[name.as_str()], &name, seen, missing);
                }
                return;
            }
            for key in ["allOf", "oneOf", "anyOf"] {
                for part in schema[key].as_sequence().into_iter().flatten() {
                    walk(schemas, part, path, seen, missing);
                }
            }
            let required: Vec<&str> = schema["required"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (name, property) in schema["properties"].as_mapping().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !required.contains(&name) && property["nullable"].as_bool() != Some(true) {
                    missing.push(format!("{path}.{name}"));
                }
                walk(schemas, property, &format!("{path}.{name}"), seen, missing);
            }
            if !schema["items"].is_null() {
                walk(
                    schemas,
                    &schema["items"],
                    &format!("{path}[]"),
                    seen,
                    missing,
                );
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let document: Value = serde_yaml::from_str(&text).expect("openapi.yaml parses");
        let schemas = &document["components"]["schemas"];
        let (mut seen, mut missing, mut bodies) = (Vec::new(), Vec::new(), 0);
        for (route, item) in document["paths"].as_mapping().expect("paths") {
            let route = route.as_str().unwrap_or_default();
            for (method, operation) in item.as_mapping().expect("a path item") {
                let signed = operation["parameters"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|p| {
                        p["name"]
                            .as_str()
                            .is_some_and(|n| n.ends_with("-Signature"))
                    });
                let body = &operation["requestBody"]["content"]["application/json"]["schema"];
                if signed || body.is_null() {
                    continue;
                }
                bodies += 1;
                let name = format!(
                    "{} {route}",
                    method.as_str().unwrap_or_default().to_uppercase()
                );
                walk(schemas, body, &name, &mut seen, &mut missing);
            }
        }
        assert!(bodies >= 15, "only {bodies} request bodies found");
        assert!(missing.is_empty(), "optional but not nullable: {missing:?}");
    }
}
