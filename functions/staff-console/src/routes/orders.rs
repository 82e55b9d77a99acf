//! The order queue, searching, an order's page and its cancellation.

use super::*;

#[derive(Debug, Default, Deserialize)]
pub(super) struct QueueQuery {
    status: Option<String>,
    #[serde(rename = "minAgeMinutes")]
    min_age_minutes: Option<String>,
    payment: Option<String>,
    hold: Option<String>,
    location: Option<String>,
    cursor: Option<String>,
}

impl QueueQuery {
    /// The view the query asks for; every filter left empty keeps every order.
    fn view(&self) -> Result<staff::QueueView, PageError> {
        let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        let status = match given(&self.status).as_deref() {
            None | Some("OPEN") => None,
            Some(s) => Some(
                OrderStatus::parse(s)
                    .ok_or_else(|| PageError::NotFound(format!("{s} is not an order status")))?,
            ),
        };
        let min_age: u32 = match given(&self.min_age_minutes) {
            None => 0,
            Some(m) => m.parse().map_err(|_| {
                PageError::Invalid(vec!["minAgeMinutes: a whole number of minutes".into()])
            })?,
        };
        let payment = given(&self.payment)
            .map(|p| {
                PaymentStatus::parse(&p).ok_or_else(|| {
                    PageError::Invalid(vec![format!("payment: {p} is not a payment status")])
                })
            })
            .transpose()?;
        let (held, waiting_for_stock) = match given(&self.hold).as_deref() {
            None => (None, false),
            Some("held") => (Some(true), false),
            Some("free") => (Some(false), false),
            Some("waiting") => (None, true),
            Some(other) => {
                return Err(PageError::Invalid(vec![format!(
                    "hold: {other} is none of held, free or waiting"
                )]))
            }
        };
        Ok(staff::QueueView {
            status,
            min_age: chrono::Duration::minutes(i64::from(min_age)),
            payment,
            held,
            location: given(&self.location),
            waiting_for_stock,
        })
    }
}

/// How many rows a console list shows at once.
pub(super) const PAGE_ROWS: u32 = 25;

pub(super) fn summaries(orders: &[oms_domain::order::Order]) -> Value {
    ser(orders
        .iter()
        .map(|o| {
            let mut row = serde_json::to_value(OrderSummary::from(o)).unwrap_or_default();
            row["statusSince"] = json!(o.status_since());
            row["payment"] = json!(o.payment_status());
            // Staff see who the customer is; the JSON listing carries no personal data.
            row["customerName"] = json!(o.shipping.address.name());
            row
        })
        .collect::<Vec<_>>())
}

pub(super) async fn orders<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Admin>,
    Query(query): Query<QueueQuery>,
) -> Result<Response, PageError> {
    let view = query.view()?;
    let found = staff::filtered_queue(
        &app.store,
        &staff.caller,
        &view,
        Utc::now(),
        PAGE_ROWS,
        query.cursor.as_deref(),
    )
    .await?;
    let locations = location_choices(&app).await?;
    let counts: Vec<_> = staff::open_counts(&app.store, &staff.caller)
        .await?
        .into_iter()
        .map(|(s, c)| json!({"status": s.as_str(), "count": c.count, "more": c.more}))
        .collect();
    staff.page(
        &app,
        "orders.html",
        context! {
            counts => ser(&counts),
            statuses => OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            payments => PaymentStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            locations => ser(&locations),
            status => view.status.map_or("OPEN", |s| s.as_str()),
            min_age => view.min_age.num_minutes(),
            payment => view.payment.map(|p| p.as_str()),
            hold => query.hold.as_deref().unwrap_or_default(),
            location => view.location.as_deref(),
            orders => summaries(&found.items),
            next_cursor => found.next_cursor,
        },
    )
}

/// Searching by a whole order id opens the order; anything else lists the orders found by it:
/// by a customer's e-mail address, the words of a recipient's name, the end of an order id, or
/// a customer id (their orders). The search is a POST so what staff type about a customer
/// never lands in a URL, a history or a log.
pub(super) async fn search<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let q = fields.text("q").unwrap_or_default();
    if let Ok(id) = OrderId::parse(q.to_ascii_uppercase()) {
        if app.store.get(&id).await?.is_some() {
            return Ok(Redirect::to(&format!("/console/orders/{id}")).into_response());
        }
    }
    let mut found = staff::search_orders(&app.store, &staff.caller, q).await?;
    if let Ok(customer) = CustomerId::parse(q) {
        let theirs = staff::order_queue(
            &app.store,
            &staff.caller,
            &QueueFilter::Customer(customer),
            Utc::now(),
            PAGE_ROWS,
            None,
        )
        .await?;
        for order in theirs.items {
            if !found.iter().any(|o| o.id == order.id) {
                found.push(order);
            }
        }
        found.sort_by(|a, b| b.id.cmp(&a.id));
    }
    page(
        &app,
        "orders.html",
        context! {
            me => staff.layout(None),
            statuses => OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            payments => PaymentStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            locations => ser(location_choices(&app).await?),
            status => "OPEN",
            hold => "",
            searched => q,
            orders => summaries(&found),
        },
    )
}

/// The locations a filter offers, by id and name.
async fn location_choices<S: Store, K>(app: &Console<S, K>) -> Result<Vec<Value>, PageError> {
    Ok(app
        .locations()
        .await?
        .all()
        .iter()
        .map(|l| ser(json!({"id": l.id, "name": l.name})))
        .collect())
}

pub(super) fn order_id(raw: &str) -> Result<OrderId, PageError> {
    OrderId::parse(raw).map_err(|_| PageError::NotFound("No such order.".into()))
}

/// How many of the customer's other orders the order page lists.
const OTHER_ORDERS: usize = 10;

pub(super) async fn order<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Admin>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let order = queries::get_order(&app.store, &staff.caller, &order_id(&id)?).await?;
    let view = OrderView::for_caller(&order, true);
    // Whether the cancel form is offered: the rule itself, tried on the order as read.
    let cancellable = order.cancel("-".into(), "console", Utc::now()).is_ok();
    // Where a shipment still awaiting pick may be moved: every other location that ships.
    let ships_from: Vec<_> = app
        .locations()
        .await?
        .all()
        .iter()
        .filter(|l| l.capabilities.ships)
        .map(|l| json!({"id": l.id, "name": l.name}))
        .collect();
    // The customer's other orders, the newest first: what customer service asks about next.
    let theirs = staff::order_queue(
        &app.store,
        &staff.caller,
        &QueueFilter::Customer(order.customer_id.clone()),
        Utc::now(),
        OTHER_ORDERS as u32 + 2,
        None,
    )
    .await?;
    let mut others: Vec<_> = theirs
        .items
        .into_iter()
        .filter(|o| o.id != order.id)
        .collect();
    let more_orders = others.len() > OTHER_ORDERS || theirs.next_cursor.is_some();
    others.truncate(OTHER_ORDERS);
    // The units of each line that can still be called off, for the cancel-units form.
    let unit_lines: Vec<_> = order
        .cancellable_units()
        .into_iter()
        .filter(|(_, open)| *open > 0)
        .map(|(sku, open)| json!({"sku": sku.as_str(), "open": open}))
        .collect();
    let movable: Vec<u32> = order
        .shipments
        .iter()
        .filter(|s| order.can_move(s.number))
        .map(|s| s.number)
        .collect();
    staff.page(
        &app,
        "order.html",
        context! {
            order => ser(&view),
            status_since => order.status_since().to_rfc3339(),
            payment_due_by => order.payment_due_by(&app.payments).map(|at| at.to_rfc3339()),
            other_orders => summaries(&others),
            more_orders,
            cancellable,
            editable => order.editable().is_ok(),
            // The edit waiting for its payment replaces one whose money was taken.
            replaces_taken => order.awaiting_edit().is_some_and(|e| order.replaces_taken(e)),
            methods => ["STANDARD", "EXPRESS", "OVERNIGHT"],
            unit_lines => ser(&unit_lines),
            form_key => format!("console-{}", OrderId::generate(Utc::now())),
            today => crate::pages::today().to_string(),
            ships_from => ser(&ships_from),
            movable => movable,
            // Every reason the money needs staff (the view shows the oldest), and what staff
            // acknowledged before: an acknowledgment closes all it was shown.
            attentions => ser(order.payment_attentions()),
            acknowledgments => ser(&order.payment.acknowledgments),
            dispositions => oms_domain::order::returns::Disposition::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        },
    )
}

/// Moves one of the order's shipments, whole, to another location before it is picked.
pub(super) async fn move_shipment<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path((id, number)): Path<(String, u32)>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let order = order_id(&id)?;
    let shipment = oms_domain::ids::ShipmentId::new(order.clone(), number);
    let version = form.version()?;
    let request = oms_domain::app::fulfillment::MoveShipment::parse(
        &json!({ "to": form.fields.get("to").unwrap_or_default() }),
    )
    .map_err(ApiError::Invalid)?;
    oms_domain::app::fulfillment::move_shipment(
        &app.store,
        &*app.locations().await?,
        &staff.caller,
        &shipment,
        &request,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(shipment_id = %shipment, to = %request.to, "console: shipment moved");
    Ok(done(&format!("/console/orders/{order}"), "moved"))
}

pub(super) async fn cancel<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(id): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let id = order_id(&id)?;
    let version = form.version()?;
    let CancelRequest { reason } =
        CancelRequest::parse(&json!({ "reason": fields.get("reason").unwrap_or_default() }))
            .map_err(ApiError::Invalid)?;
    // The store's conditional write decides whether the page's version is still the order's.
    let order = cancel_order(
        &app.store,
        &app.locations,
        &staff.caller,
        &id,
        reason,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, "console: order cancelled");
    Ok(done(&format!("/console/orders/{id}"), "cancelled"))
}

/// Calls off some units of the order's lines (`units-<sku>`, how many of each), once per form
/// shown (its key): the same form sent twice changes the order once.
pub(super) async fn cancel_units<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(id): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let id = order_id(&id)?;
    let version = form.version()?;
    let key = fields
        .get("key")
        .and_then(|k| oms_domain::ids::IdempotencyKey::parse(k).ok())
        .ok_or_else(|| PageError::Stale("The form is out of date: open the page again.".into()))?;
    let lines: Vec<_> = fields
        .0
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("units-")?, value.trim())))
        .filter(|(_, value)| !value.is_empty() && *value != "0")
        .map(|(sku, value)| {
            json!({"sku": sku, "quantity": value.parse::<u64>().map(serde_json::Value::from).unwrap_or_else(|_| value.into())})
        })
        .collect();
    let request = oms_domain::request::staff::UnitCancelRequest::parse(&json!({
        "lines": lines,
        "reason": fields.get("reason").unwrap_or_default(),
    }))
    .map_err(ApiError::Invalid)?;
    let order = oms_domain::app::returns::cancel_units(
        &app.store,
        &app.locations,
        &staff.caller,
        &id,
        &request,
        &key,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, "console: units cancelled");
    Ok(done(&format!("/console/orders/{id}"), "units-cancelled"))
}

/// Changes where or how the order ships (the address as the form holds it, the method chosen)
/// and adds an item if one is named, once per form shown (its key), on the page's version. The money follows as the API's edit
/// does: a dearer total while the money is held waits for the customer's new authorization.
pub(super) async fn edit<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(id): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let id = order_id(&id)?;
    let version = form.version()?;
    let key = fields
        .get("key")
        .and_then(|k| oms_domain::ids::IdempotencyKey::parse(k).ok())
        .ok_or_else(|| PageError::Stale("The form is out of date: open the page again.".into()))?;
    let text = |name: &str| fields.text(name).map(str::to_owned);
    let mut address = serde_json::Map::new();
    for name in [
        "name",
        "line1",
        "line2",
        "city",
        "region",
        "postalCode",
        "country",
    ] {
        if let Some(value) = text(name) {
            address.insert(name.to_owned(), value.into());
        }
    }
    let mut body = json!({
        "shippingAddress": address,
        "shippingMethod": fields.get("method").unwrap_or_default(),
        "reason": fields.get("reason").unwrap_or_default(),
    });
    // What is in stock sent ahead of the backordered units, if ticked.
    if fields.get("ship-ahead").is_some() {
        body["shipComplete"] = json!(false);
    }
    // An item to add, if one is named (its quantity as typed: the parser names a bad one).
    if let Some(sku) = text("add-sku") {
        let quantity = text("add-quantity").unwrap_or_else(|| "1".into());
        body["addLines"] = json!([{
            "sku": sku,
            "quantity": quantity.parse::<u64>().map(serde_json::Value::from).unwrap_or_else(|_| quantity.into()),
        }]);
    }
    let request =
        oms_domain::request::staff::OrderEditRequest::parse(&body).map_err(ApiError::Invalid)?;
    let order = oms_domain::app::returns::edit_order(
        &app.store,
        &app.locations,
        &staff.caller,
        &id,
        &request,
        &key,
        version,
        app.payments.authorization_window,
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, "console: order edited");
    Ok(done(&format!("/console/orders/{id}"), "edited"))
}

/// Staff acknowledge what the order's money needs, saying how they dealt with it (a mismatch
/// voided at the PSP, a second payment refunded there): it leaves the attention list.
pub(super) async fn acknowledge_payment<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(id): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let order = order_id(&id)?;
    let version = form.version()?;
    let note = form
        .fields
        .text("note")
        .filter(|n| n.chars().count() <= 500)
        .ok_or_else(|| {
            PageError::Invalid(vec![
                "note: say how it was dealt with (up to 500 characters)".into(),
            ])
        })?
        .to_owned();
    oms_domain::app::payments::acknowledge_attention(
        &app.store,
        &staff.caller,
        &order,
        note,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order, "console: payment attention acknowledged");
    Ok(done(&format!("/console/orders/{order}"), "acknowledged"))
}
