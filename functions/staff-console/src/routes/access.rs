//! Who is asking: the signed-in staff member of a page, and what every form needs before it
//! changes anything (the session, the console's own origin, the CSRF token, and the version the
//! page showed).

use super::*;

/// The signed-in staff member, the keys of the session, and the caller the application layer
/// checks.
pub(super) struct Staff {
    pub(super) session: Session,
    pub(super) keys: SessionKeys,
    pub(super) caller: Caller,
}

impl Staff {
    pub(super) fn require(&self, scope: &'static str) -> Result<(), PageError> {
        if self.session.has_scope(scope) {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "You are signed in as {} without the scope {scope}, which this needs.",
                self.session.sub
            )))
        }
    }

    pub(super) fn require_any(&self, scopes: &[&'static str]) -> Result<(), PageError> {
        if scopes.iter().any(|s| self.session.has_scope(s)) {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "You are signed in as {} without any of the scopes {}, which this needs.",
                self.session.sub,
                scopes.join(", ")
            )))
        }
    }

    /// What every page's layout needs: who is signed in, which screens they may open, the CSRF
    /// token for the forms, and the banner.
    pub(super) fn layout(&self, done: Option<&str>) -> Value {
        ser(json!({
            "sub": self.session.sub,
            "admin": self.session.has_scope(SCOPE_ADMIN),
            "warehouse": self.session.has_scope(SCOPE_WAREHOUSE),
            "csrf": self.keys.csrf_token(&self.session.nonce),
            "done": done.and_then(banner),
        }))
    }
}

/// Where a staff member starts, and where an error page leads them back to: the order queue
/// for administrators, the pick list for the warehouse, else the inventory (which both read).
pub(super) fn home(session: &Session) -> &'static str {
    if session.has_scope(SCOPE_ADMIN) {
        "/console/orders"
    } else if session.has_scope(SCOPE_WAREHOUSE) {
        "/console/warehouse"
    } else {
        "/console/inventory"
    }
}

/// The banner of a `done` word a form's redirect carries; unknown words show none.
pub(super) fn banner(done: &str) -> Option<String> {
    // A bulk pick's outcome: how many of the selected shipments were picked.
    if let Some(counts) = done.strip_prefix("bulk-picked-") {
        let (picked, of) = counts.split_once("-of-")?;
        let (picked, of): (u32, u32) = (picked.parse().ok()?, of.parse().ok()?);
        return Some(if picked == of {
            format!("Picked all {of} selected shipments.")
        } else {
            format!(
                "Picked {picked} of the {of} selected shipments; the others changed since the \
                 page was loaded (picked by someone else, moved or cancelled) and are shown as \
                 they are now."
            )
        });
    }
    Some(String::from(match done {
        "cancelled" => "The order was cancelled and its stock released.",
        "units-cancelled" => "The units were cancelled: their stock is released, the totals follow and the money with them (a smaller capture, or a refund of what was taken); the customer is told.",
        "selling-saved" => "The selling policy was saved; checkouts follow it from now on.",
        "approved" => "The return was approved; its label is issued.",
        "rejected" => "The return was rejected.",
        "received" => "The return was received.",
        "return-closed" => "The return was closed before anything arrived; its exchange is released and the customer told.",
        "adjusted" => "The stock adjustment was recorded.",
        "dispatched" => "The transfer was sent; its units are in transit.",
        "arrived" => "The transfer arrived; its units are available at their new location.",
        "ordered" => "The purchase order was recorded; its units are incoming until they arrive.",
        "delivered" => "The delivery was recorded; its units are available.",
        "closed" => "The purchase order was closed; what had not arrived is no longer incoming.",
        "picked" => "Picked.",
        "packed" => "Packed.",
        "shipped" => "Shipped: the customer is told.",
        "moved" => "The shipment was moved; its units are reserved at their new location.",
        "edited" => "The change was saved and the customer told. If it costs more while the money is only held, the order waits for the customer to authorize the new total before it is packed.",
        "redriven" => "The dead-letter queue's messages are moving back to their queue.",
        "discarded" => "The message was discarded; it will not be tried again.",
        "acknowledged" => "Acknowledged: the order's money is off the attention list until something new needs staff.",
        "location-saved" => "The location was saved; every function routes by it within a minute.",
        "location-added" => "The location was added; within a minute every function knows it: stock can be received there and orders are routed to it.",
        _ => return None,
    }))
}

pub(super) async fn keys<S, K: SecretSource>(
    app: &Console<S, K>,
) -> Result<SessionKeys, PageError> {
    let secret = app.secret.value().await?;
    SessionKeys::derive(&secret, crate::session::KEYS_PURPOSE)
        .map_err(|e| PageError::Internal(e.into()))
}

pub(super) fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The session of the request, if it has a live one.
pub(super) async fn staff<S, K: SecretSource>(
    app: &Console<S, K>,
    headers: &HeaderMap,
) -> Result<Staff, PageError> {
    let keys = keys(app).await?;
    let session: Session = keys
        .read(&cookie_header(headers), SESSION_COOKIE)
        .filter(|s: &Session| s.expires_at > Utc::now())
        .ok_or(PageError::SignIn)?;
    let caller = session.caller().ok_or(PageError::SignIn)?;
    Ok(Staff {
        session,
        keys,
        caller,
    })
}

/// A scope a page needs, as a type: a handler that takes [`Holding`] of it runs only for staff
/// who hold it.
pub(super) trait Scope {
    /// Whether `staff` may open the page: a refusal names the scope (or scopes) it lacks.
    fn check(staff: &Staff) -> Result<(), PageError>;
}

/// `oms:admin`: customer service and the managers.
pub(super) enum Admin {}

impl Scope for Admin {
    fn check(staff: &Staff) -> Result<(), PageError> {
        staff.require(SCOPE_ADMIN)
    }
}

/// `oms:warehouse`: picking, packing, shipping and receiving.
pub(super) enum Warehouse {}

impl Scope for Warehouse {
    fn check(staff: &Staff) -> Result<(), PageError> {
        staff.require(SCOPE_WAREHOUSE)
    }
}

/// `oms:admin` or `oms:warehouse`: any staff member.
pub(super) enum AdminOrWarehouse {}

impl Scope for AdminOrWarehouse {
    fn check(staff: &Staff) -> Result<(), PageError> {
        staff.require_any(&[SCOPE_ADMIN, SCOPE_WAREHOUSE])
    }
}

/// A page's staff member who holds the scope `P`; anyone else is refused before the page's
/// handler runs. With them, the `done` word of the form that led here, for the page's banner.
pub(super) struct Holding<P> {
    staff: Staff,
    done: Option<String>,
    /// A refused form of this page, shown again with what was typed.
    refill: Option<Refill>,
    scope: std::marker::PhantomData<P>,
}

impl<P> Holding<P> {
    /// The page `name` shows this staff member: `context`, with what the layout needs as `me`.
    pub(super) fn page<S, K>(
        &self,
        app: &Console<S, K>,
        name: &str,
        context: Value,
    ) -> Result<Response, PageError> {
        let me = self.staff.layout(self.done.as_deref());
        let refill = self.refill.as_ref().map(ser);
        page(app, name, context! { me, refill, ..context })
    }
}

impl<P> std::ops::Deref for Holding<P> {
    type Target = Staff;

    fn deref(&self) -> &Staff {
        &self.staff
    }
}

/// A form's fields, as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct Fields(pub(super) Vec<(String, String)>);

impl Fields {
    /// Every value of a field sent more than once (the boxes ticked in a list).
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's text, trimmed, `None` when blank.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A field as the JSON body's number, for the request reader to check: the number typed,
    /// the text as typed if it is none (the reader names it), or null when blank.
    pub(super) fn number(&self, name: &str) -> serde_json::Value {
        match self.text(name).map(str::parse::<i64>) {
            Some(Ok(n)) => json!(n),
            Some(Err(_)) => json!(self.get(name)),
            None => serde_json::Value::Null,
        }
    }

    /// The order version the page showed (its ETag).
    pub(super) fn version(&self) -> Result<u64, PageError> {
        self.get("version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                PageError::Invalid(vec![
                    "version: the form lost its version; go back to the page and send it again"
                        .into(),
                ])
            })
    }
}

/// Whether the browser says the request came from another site (`Sec-Fetch-Site`): a link or
/// form elsewhere, which may not make the console do anything.
pub(super) fn from_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site" || site == "same-site")
}

/// A form may change something only if it came from the console's own pages: the browser's
/// `Origin` (and `Sec-Fetch-Site`, where sent) name this origin, and it carries the session's
/// CSRF token.
pub(super) async fn form_staff<S, K: SecretSource>(
    app: &Console<S, K>,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<Staff, PageError> {
    let cross_site = from_another_site(headers);
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin != app.origin);
    if cross_site || foreign_origin {
        tracing::warn!("console: a form from another origin was refused");
        return Err(PageError::Forbidden(
            "This form was not sent from the console's own pages, so nothing was done.".into(),
        ));
    }
    let staff = staff(app, headers).await?;
    let token = fields.get("csrf").unwrap_or_default();
    if !staff.keys.csrf_valid(&staff.session.nonce, token) {
        tracing::warn!("console: a form without its session's CSRF token was refused");
        return Err(PageError::Forbidden(
            "This form's security token is missing or belongs to another session, so nothing was done: go back to the page and send it again."
                .into(),
        ));
    }
    Ok(staff)
}

/// A page's staff member: the request's live session (else to the sign-in).
impl<S: Store, K: SecretSource + 'static> FromRequestParts<App<S, K>> for Staff {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &App<S, K>) -> Result<Self, PageError> {
        staff(app, &parts.headers).await
    }
}

/// A page's staff member holding the page's scope: a live session (else to the sign-in), then
/// the scope (else forbidden), then the banner's `done` word.
impl<S: Store, K: SecretSource + 'static, P: Scope> FromRequestParts<App<S, K>> for Holding<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App<S, K>) -> Result<Self, Response> {
        let staff = staff(app, &parts.headers)
            .await
            .map_err(IntoResponse::into_response)?;
        P::check(&staff).map_err(IntoResponse::into_response)?;
        let Query(Banner { done }) =
            Query::try_from_uri(&parts.uri).map_err(IntoResponse::into_response)?;
        Ok(Holding {
            staff,
            done,
            refill: parts.extensions.get::<Refill>().cloned(),
            scope: std::marker::PhantomData,
        })
    }
}

/// What every form needs before it changes anything, checked before its handler runs: a live
/// session, the console's own origin, and the session's CSRF token ([`form_staff`]); then the
/// fields, with the scope ([`StaffForm::require`]) and the version the page showed
/// ([`StaffForm::version`]) for the forms that change an order.
pub(super) struct StaffForm {
    pub(super) staff: Staff,
    pub(super) fields: Fields,
}

impl StaffForm {
    /// The signed-in staff member, if they hold `scope`.
    pub(super) fn require(&self, scope: &'static str) -> Result<&Staff, PageError> {
        self.staff.require(scope)?;
        Ok(&self.staff)
    }

    /// The signed-in staff member, if they hold one of `scopes`.
    pub(super) fn require_any(&self, scopes: &[&'static str]) -> Result<&Staff, PageError> {
        self.staff.require_any(scopes)?;
        Ok(&self.staff)
    }

    /// The order version the page showed: the application layer writes on condition that it
    /// is still the order's.
    pub(super) fn version(&self) -> Result<u64, PageError> {
        self.fields.version()
    }
}

impl<S: Store, K: SecretSource + 'static> FromRequest<App<S, K>> for StaffForm {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        app: &App<S, K>,
    ) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let Form(fields) = Form::<Fields>::from_request(request, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let staff = form_staff(app, &headers, &fields)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(StaffForm { staff, fields })
    }
}
