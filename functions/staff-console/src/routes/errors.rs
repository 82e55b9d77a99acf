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
    /// A form larger than the console takes.
    TooLarge,
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
            ApiError::PreconditionFailed { .. } => PageError::Stale(
                "This changed since your page was loaded, so nothing was changed: open the page \
                 again to see it as it is now, and try again there."
                    .into(),
            ),
            ApiError::Unavailable(detail) => PageError::Unavailable(detail),
            ApiError::Internal(detail) => PageError::Internal(detail),
            // Stock that changed since the page showed it (a receipt or count from another
            // tab, a purchase order's units received meanwhile): the page was out of date, and
            // its stock figures are not put back to be sent again by one click.
            ApiError::Conflict {
                problem: oms_adapters::http::ProblemType::ConcurrentModification,
                detail,
                ..
            } => PageError::Stale(detail),
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
    oms_domain::app::payments::PaymentAppError,
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
            PageError::Stale(m) => (StatusCode::CONFLICT, STALE_TITLE, vec![m]),
            PageError::Invalid(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please correct the form",
                m,
            ),
            PageError::Conflict(m) => (StatusCode::CONFLICT, "Refused", vec![m]),
            PageError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Refused",
                vec!["The form is larger than the console takes; nothing was done.".into()],
            ),
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
        // The page itself is rendered once, by [`with_navigation`] (which wraps every route):
        // for the signed-in staff member who asked, with what they typed, or without the
        // navigation for someone not signed in. The title is the body until then.
        let mut response = (status, html_headers(), title).into_response();
        response.extensions_mut().insert(ErrorPage { title, lines });
        response
    }
}

/// `path` without its `done` word: going back shows the page, not the banner of an earlier
/// form.
fn without_banner(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("done="))
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// What an error page says, kept on its response for [`with_navigation`].
#[derive(Debug, Clone)]
pub(super) struct ErrorPage {
    title: &'static str,
    lines: Vec<String>,
}

/// The form fields a page's error does not show back as typed: the form's own machinery (its
/// hidden fields), by name or, ending in `-`, by prefix.
const NOT_TYPED: [&str; 8] = [
    "csrf", "version", "key", "back", "location", "handle", "onHand-", "form",
];

/// A refused form, shown again on the page it came from: which form (its `form` field), what
/// was typed into it, why it was refused (each reason by its field where it names one), so
/// the page puts the values back and the reasons next to them.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Refill {
    form: String,
    values: std::collections::BTreeMap<String, String>,
    errors: std::collections::BTreeMap<String, String>,
    title: &'static str,
    lines: Vec<String>,
    /// The page changed since it was shown: it now shows what is current.
    stale: bool,
}

/// The title of a refusal for a page that changed since it was shown.
const STALE_TITLE: &str = "The page was out of date";

/// The stock forms (and each purchase order's `po-<id>` receipt), whose units a stale refusal
/// shows rather than puts back: a receipt sent from a second tab must be entered again on
/// purpose, not sent again by one click.
const STOCK_FORMS: [&str; 4] = ["receipt", "count", "write-off", "transfer"];

/// What the navigation middleware needs: the console, and its pages without the middleware
/// (to render the page a refused form came from again).
pub(super) struct Navigation<S, K> {
    pub(super) app: App<S, K>,
    pub(super) pages: Router,
}

// By hand: the console behind the `Arc` needs no `Clone` of its own.
impl<S, K> Clone for Navigation<S, K> {
    fn clone(&self) -> Self {
        Navigation {
            app: self.app.clone(),
            pages: self.pages.clone(),
        }
    }
}

/// A request that found no live session is sent to sign in with the page to come back to: the
/// page it asked for, or for a form the page it was sent from (what was typed into it is not
/// kept: it went out with the request). `None` for any other answer.
fn to_sign_in(
    response: &Response,
    asked: &axum::http::Uri,
    is_form: bool,
    headers: &HeaderMap,
    origin: &str,
) -> Option<Response> {
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    if !response.status().is_redirection() || location != "/console/sign-in" {
        return None;
    }
    // Without the word of an earlier action's banner: the one that asked was not done.
    let back = if is_form {
        headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|referer| referer.strip_prefix(origin))
            .map(without_banner)?
    } else {
        without_banner(
            asked
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or_default(),
        )
    };
    crate::session::returnable(&back).then(|| {
        let query = serde_urlencoded::to_string([("next", back.as_str())]).unwrap_or_default();
        Redirect::to(&format!("/console/sign-in?{query}")).into_response()
    })
}

/// The most of a form's body kept to show back on its error page.
const FORM_BYTES: usize = 64 * 1024;

/// Renders every error page again inside the console's layout for the staff member who asked:
/// the navigation of the screens they may open, a way back to the page the form came from (its
/// own origin only), their home screen, and what they typed into the refused form — so a
/// stale or invalid form strands no one and loses nothing.
pub(super) async fn with_navigation<S: Store, K: SecretSource + 'static>(
    State(Navigation { app, pages }): State<Navigation<S, K>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers().clone();
    let asked = request.uri().clone();
    let is_form = request.method() == axum::http::Method::POST
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (response, typed) = if is_form {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, FORM_BYTES).await {
            // Refused unread, inside the layout like any other refusal.
            Err(_) => (PageError::TooLarge.into_response(), Vec::new()),
            Ok(bytes) => {
                let typed: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
                let request =
                    axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
                (next.run(request).await, typed)
            }
        }
    } else {
        (next.run(request).await, Vec::new())
    };
    if let Some(to_sign_in) = to_sign_in(&response, &asked, is_form, &headers, &app.origin) {
        return to_sign_in;
    }
    let Some(error) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let Ok(staff) = staff(&app, &headers).await else {
        // Not signed in (or no longer): the message alone.
        let html = app.pages.render(
            "message.html",
            context! { title => error.title, lines => error.lines, status => response.status().as_u16() },
        );
        return with_page(response, html);
    };
    let form = typed
        .iter()
        .find(|(name, _)| name == "form")
        .map(|(_, value)| value.clone());
    let sent = typed.clone();
    let typed: Vec<_> = typed
        .into_iter()
        .filter(|(name, value)| {
            let hidden = NOT_TYPED
                .iter()
                .any(|h| name == h || (h.ends_with('-') && name.starts_with(h)));
            !hidden && !value.trim().is_empty()
        })
        .collect();
    // Back to the page the form was on, if the browser says and it is the console's own.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|referer| referer.strip_prefix(app.origin.as_str()))
        .filter(|path| path.starts_with("/console/"))
        .map(without_banner);
    // A form refused for what it said (invalid) or for what changed since its page was
    // shown (stale, refused): its own page again, as it is now, with what was typed put back
    // and the reasons beside it.
    let refillable = matches!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
    );
    if let (Some(form), Some(path), true) = (form, back.as_deref(), refillable) {
        let stale = error.title == STALE_TITLE;
        let mut lines = error.lines.clone();
        // Every field as sent but the form's tokens (a page writes its own afresh) — except
        // a stale stock form's: its units may be what the other tab already recorded, so they
        // are shown, not put back to be sent again by one click.
        let mut values: std::collections::BTreeMap<String, String> = sent
            .into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "csrf" | "version" | "key" | "form"))
            .collect();
        let stock_form = STOCK_FORMS.contains(&form.as_str()) || form.starts_with("po-");
        if stale && stock_form {
            // A receipt's or a count's reason is the form's own, not typed.
            let preset = matches!(form.as_str(), "receipt" | "count");
            lines.push(format!(
                "You entered: {}. Check the figures now shown before you enter it again.",
                typed
                    .iter()
                    .filter(|(name, _)| !(preset && name == "reason"))
                    .map(|(name, value)| format!("{name} {value}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            values.clear();
        }
        let refill = Refill {
            form,
            values,
            // Each reason under the field's whole name (`shippingAddress.country`,
            // `addLines[0].sku`, as the forms name their fields) and under its last part
            // (`country`, for a form whose field is named so).
            errors: error
                .lines
                .iter()
                .filter_map(|line| {
                    let (field, why) = line.split_once(": ")?;
                    (!field.contains(' ')).then_some((field, why))
                })
                .flat_map(|(field, why)| {
                    let last = field.rsplit('.').next().unwrap_or(field);
                    [field, last].map(|name| (name.to_owned(), why.to_owned()))
                })
                .collect(),
            title: error.title,
            lines,
            stale,
        };
        if let Some(html) = page_again(pages, path, &headers, refill).await {
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, axum::body::Body::from(html));
        }
    }
    let html = app.pages.render(
        "message.html",
        context! {
            me => staff.layout(None),
            title => error.title,
            lines => error.lines,
            status => response.status().as_u16(),
            home => home(&staff.session),
            back => back,
            typed => typed,
        },
    );
    with_page(response, html)
}

/// The error `response` with `html` as its page, or as it was if the page could not be
/// rendered (logged).
fn with_page<E: std::fmt::Display>(response: Response, html: Result<String, E>) -> Response {
    match html {
        Ok(html) => {
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, axum::body::Body::from(html))
        }
        Err(e) => {
            tracing::error!(error = %e, "console: rendering an error page");
            response
        }
    }
}

/// The page at `path` rendered again for the staff member who sent `headers`, with `refill`:
/// `None` if it does not answer a page (then the refusal is a page of its own).
async fn page_again(
    pages: Router,
    path: &str,
    headers: &HeaderMap,
    refill: Refill,
) -> Option<Vec<u8>> {
    use tower::ServiceExt;
    let mut request = axum::extract::Request::get(path)
        .body(axum::body::Body::empty())
        .ok()?;
    for cookie in headers.get_all(header::COOKIE) {
        request.headers_mut().append(header::COOKIE, cookie.clone());
    }
    request.extensions_mut().insert(refill);
    let response = pages.oneshot(request).await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let body = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
        .await
        .ok()?;
    Some(body.to_vec())
}

pub(super) fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}
