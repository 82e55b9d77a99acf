//! Why a page or a form could not be answered as asked: the one mapping of errors to pages.

use super::*;

/// Why a page or a form could not be answered as asked; each becomes a page with its status.
#[derive(Debug)]
pub enum PageError {
    /// No session, or one that ran out: to the sign-in.
    SignIn,
    Forbidden(String),
    NotFound(String),
    /// The page was stale: what it showed changed since.
    Stale(String),
    Invalid(Vec<String>),
    Conflict(String),
    Unavailable(String),
    Internal(String),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Forbidden(scope) => {
                PageError::Forbidden(format!("This needs the scope {scope}."))
            }
            ApiError::NotFound(what) => PageError::NotFound(what),
            ApiError::Invalid(errors) => PageError::Invalid(
                errors
                    .0
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect(),
            ),
            ApiError::PreconditionFailed { current } => PageError::Stale(format!(
                "This changed since your page was loaded (it is now at version {current}). \
                 Nothing was changed: reload the page and try again."
            )),
            ApiError::Unavailable(detail) => PageError::Unavailable(detail),
            ApiError::Internal(detail) => PageError::Internal(detail),
            other @ (ApiError::Conflict { .. } | ApiError::BadRequest { .. }) => {
                PageError::Conflict(other.to_string())
            }
            other => PageError::Internal(other.to_string()),
        }
    }
}

/// Every application error converts as the JSON API converts it, so a refusal reads the same.
macro_rules! page_error_from {
    ($($error:ty),*) => {$(
        impl From<$error> for PageError {
            fn from(error: $error) -> Self {
                ApiError::from(error).into()
            }
        }
    )*};
}
page_error_from!(
    oms_domain::app::fulfillment::FulfillmentAppError,
    oms_domain::app::returns::ReturnsAppError,
    oms_domain::app::inventory::InventoryError,
    oms_domain::app::locations::LocationAppError,
    oms_domain::app::staff::StaffError,
    oms_domain::app::queries::QueryError,
    oms_domain::ports::StoreError
);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, lines) = match self {
            PageError::SignIn => {
                return Redirect::to("/console/sign-in").into_response();
            }
            PageError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", vec![m]),
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", vec![m]),
            PageError::Stale(m) => (StatusCode::CONFLICT, "The page was out of date", vec![m]),
            PageError::Invalid(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please correct the form",
                m,
            ),
            PageError::Conflict(m) => (StatusCode::CONFLICT, "Refused", vec![m]),
            PageError::Unavailable(m) => {
                tracing::warn!(error = %m, "console: a dependency is busy");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    vec!["The system is busy; try again in a moment.".into()],
                )
            }
            PageError::Internal(m) => {
                tracing::error!(error = %m, "console: internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    vec!["The error was logged; nothing was changed.".into()],
                )
            }
        };
        let html = Pages::new()
            .render(
                "message.html",
                context! { title, lines, status => status.as_u16() },
            )
            .unwrap_or_else(|_| title.to_owned());
        (status, html_headers(), html).into_response()
    }
}

pub(super) fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}
