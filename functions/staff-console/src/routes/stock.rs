//! The catalog's availability, a SKU's page and its stock forms.

use super::*;
use oms_domain::ids::IdempotencyKey;

#[derive(Debug, Default, Deserialize)]
pub(super) struct CatalogQuery {
    q: Option<String>,
    sort: Option<String>,
    /// The location whose figures a health order reads (all of them when absent or unknown).
    location: Option<String>,
    cursor: Option<String>,
}

pub(super) async fn inventory_list<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<AdminOrWarehouse>,
    Query(query): Query<CatalogQuery>,
) -> Result<Response, PageError> {
    let now = Utc::now();
    let here = app.locations().await?;
    let location = query
        .location
        .as_deref()
        .and_then(|id| here.get(id))
        .map(|l| l.id.clone());
    let reading = HealthReading {
        today: day_of(now),
        policy: app.health,
        location: location.clone(),
    };
    // An unknown order is the SKU order, as the select's first choice says.
    let (sort, order) = match query.sort.as_deref() {
        Some("lowStock") => ("lowStock", CatalogOrder::LowStockFirst),
        Some("reorder") => ("reorder", CatalogOrder::ReorderFirst(reading.clone())),
        Some("cover") => ("cover", CatalogOrder::LeastCoverFirst(reading.clone())),
        Some("overstock") => ("overstock", CatalogOrder::OverstockFirst(reading)),
        _ => ("sku", CatalogOrder::Sku),
    };
    // A location chosen stays chosen whatever the order: its rows show its counters and
    // health; the health orders sort by them, the others by SKU or the SKUs' totals.
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let found = staff::catalog(
        &app.store,
        &staff.caller,
        order,
        search,
        PAGE_ROWS,
        query.cursor.as_deref(),
    )
    .await?;
    let rows: Vec<_> = found
        .items
        .iter()
        .map(|p| ProductView::for_staff(p, now, app.health))
        .collect();
    staff.page(
        &app,
        "inventory.html",
        context! {
            products => ser(&rows),
            q => search,
            sort,
            location,
            locations => ser(&here.all().iter().map(|l| json!({"id": l.id, "name": l.name})).collect::<Vec<_>>()),
            overstock_days => app.health.overstock_cover_days,
            next_cursor => found.next_cursor,
        },
    )
}

pub(super) fn sku_of(raw: &str) -> Result<Sku, PageError> {
    Sku::parse(raw).map_err(|_| PageError::NotFound(format!("SKU {raw} does not exist.")))
}

/// Where a SKU's page reads each of its lists from: the newest page, or the one a "older"
/// link's cursor names (each list pages on its own; the others show their newest).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ProductQuery {
    transfers: Option<String>,
    purchases: Option<String>,
    history: Option<String>,
}

pub(super) async fn product<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<AdminOrWarehouse>,
    Path(sku): Path<String>,
    Query(query): Query<ProductQuery>,
) -> Result<Response, PageError> {
    let sku = sku_of(&sku)?;
    let product = ProductView::for_staff(
        &inventory::get_product(&app.store, &sku).await?,
        Utc::now(),
        app.health,
    );
    let cursor = |c: &Option<String>| c.as_deref().filter(|c| !c.is_empty()).map(str::to_owned);
    let (history_at, transfers_at, purchases_at) = (
        cursor(&query.history),
        cursor(&query.transfers),
        cursor(&query.purchases),
    );
    let history = staff::sku_history(&staff.caller, PAGE_ROWS, |n| {
        app.store.adjustments(&sku, n, history_at.as_deref())
    })
    .await?;
    let history_next = history.next_cursor.clone();
    let here = app.locations().await?;
    let default = &here.default_location().id;
    let history: Vec<_> = history
        .items
        .iter()
        .map(|a| AdjustmentView::of(a, default))
        .collect();
    let transfers = staff::sku_history(&staff.caller, PAGE_ROWS, |n| {
        app.store.transfers(&sku, n, transfers_at.as_deref())
    })
    .await?;
    let purchase_orders = staff::sku_history(&staff.caller, PAGE_ROWS, |n| {
        app.store.purchase_orders(&sku, n, purchases_at.as_deref())
    })
    .await?;
    let locations: Vec<_> = here
        .all()
        .iter()
        .map(|l| json!({"id": l.id, "name": l.name, "default": &l.id == default}))
        .collect();
    staff.page(
        &app,
        "product.html",
        context! {
            product => ser(&product),
            locations => ser(&locations),
            transfers => ser(&transfers.items),
            transfers_next => transfers.next_cursor,
            transfers_older => transfers_at.is_some(),
            purchase_orders => ser(&purchase_orders.items),
            purchases_next => purchase_orders.next_cursor,
            purchases_older => purchases_at.is_some(),
            history_next,
            history_older => history_at.is_some(),
            today => crate::pages::today().to_string(),
            form_key => format!("console-{}", oms_domain::ids::OrderId::generate(Utc::now())),
            low => product.available < product.low_stock_threshold,
            history => ser(&history),
        },
    )
}

/// Copies the form's text fields `names` that are filled in into the JSON API's `body`.
fn with_texts(body: &mut serde_json::Value, fields: &Fields, names: &[&str]) {
    for name in names {
        if let Some(text) = fields.text(name) {
            body[*name] = json!(text);
        }
    }
}

/// A receipt, a count or a write-off, as the JSON API's adjustment body.
pub(super) async fn adjust<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(sku): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let sku = sku_of(&sku)?;
    let reason = fields.get("reason").unwrap_or_default();
    let number = |name: &str| fields.number(name);
    let mut body = match reason {
        "COUNT" => json!({ "reason": reason, "countedOnHand": number("countedOnHand") }),
        // A write-off is entered as the units lost; the stock moves down by them.
        "DAMAGE" | "SHRINKAGE" => json!({
            "reason": reason,
            "delta": match number("units") { serde_json::Value::Number(n) => json!(-n.as_i64().unwrap_or(0)), other => other },
        }),
        _ => json!({ "reason": reason, "delta": number("units") }),
    };
    with_texts(&mut body, fields, &["note", "location"]);
    let (store, at) = (&app.store, Utc::now());
    let here = app.locations().await?;
    // What the page showed on hand at the chosen location (none shown: none there): a second
    // tab's form, sent after the first changed the stock, is refused instead of applied twice.
    let location = fields
        .text("location")
        .unwrap_or(&here.default_location().id)
        .to_owned();
    body["expectedOnHand"] = match fields.number(&format!("onHand-{location}")) {
        serde_json::Value::Null => json!(0),
        shown => shown,
    };
    let key = form_key(fields)?;
    inventory::adjust_stock(store, &here, &staff.caller, &sku, &body, Some(&key), at).await?;
    tracing::info!(sku = %sku, reason, "console: stock adjusted");
    Ok(done(&format!("/console/inventory/{sku}"), "adjusted"))
}

/// The form's key, made when its page was shown: the same form sent twice (a double click, a
/// second tab) changes the stock once.
fn form_key(fields: &Fields) -> Result<IdempotencyKey, PageError> {
    fields
        .get("key")
        .and_then(|k| IdempotencyKey::parse(k).ok())
        .ok_or_else(|| PageError::Stale("The form is out of date: open the page again.".into()))
}

/// Sends units to another location, as the JSON API's transfer body.
pub(super) async fn dispatch_transfer<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(sku): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let sku = sku_of(&sku)?;
    let mut body = json!({
        "from": fields.get("from").unwrap_or_default(),
        "to": fields.get("to").unwrap_or_default(),
        "quantity": fields.number("quantity"),
    });
    with_texts(&mut body, fields, &["note"]);
    let key = form_key(fields)?;
    let (store, here, at) = (&app.store, app.locations().await?, Utc::now());
    let sent =
        inventory::dispatch_transfer(store, &here, &staff.caller, &sku, &key, &body, at).await?;
    let id = &sent.transfer.id;
    tracing::info!(sku = %sku, transfer = %id, "console: transfer dispatched");
    Ok(done(&format!("/console/inventory/{sku}"), "dispatched"))
}

/// What the SKU does when orders ask for more than is available (`policy`: DENY, BACKORDER
/// with `limit`, PRE_ORDER with `releaseOn` and `cap`), on the product as the page showed it
/// (`version`): the rest of the product is written back as it is.
pub(super) async fn set_selling<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(sku): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let sku = sku_of(&sku)?;
    let product = inventory::get_product(&app.store, &sku).await?;
    if fields.get("version").and_then(|v| v.parse::<u64>().ok()) != Some(product.version) {
        return Err(PageError::Stale(
            "The SKU changed since the page was shown: look at it again.".into(),
        ));
    }
    let selling = match fields.get("policy").unwrap_or_default() {
        "BACKORDER" => json!({"policy": "BACKORDER", "limit": fields.number("limit")}),
        "PRE_ORDER" => json!({"policy": "PRE_ORDER", "cap": fields.number("cap"),
            "releaseOn": fields.get("releaseOn").unwrap_or_default()}),
        other => json!({"policy": other}),
    };
    let body = json!({
        "name": product.name,
        "unitPrice": product.unit_price,
        "weightGrams": product.weight_grams,
        "active": product.active,
        "lowStockThreshold": product.low_stock_threshold,
        "leadTimeDays": product.replenishment.lead_time_days,
        "safetyStock": product.replenishment.safety_stock,
        "selling": selling,
    });
    let (store, here, at) = (&app.store, app.locations().await?, Utc::now());
    inventory::put_product(store, &app.shipping, &here, &staff.caller, &sku, &body, at).await?;
    tracing::info!(sku = %sku, "console: selling policy set");
    Ok(done(&format!("/console/inventory/{sku}"), "selling-saved"))
}

/// Records units ordered from a supplier, as the JSON API's purchase order body.
pub(super) async fn place_purchase_order<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(sku): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let fields = &form.fields;
    let sku = sku_of(&sku)?;
    let mut body = json!({
        "quantity": fields.number("quantity"),
        "expectedOn": fields.get("expectedOn").unwrap_or_default(),
    });
    with_texts(
        &mut body,
        fields,
        &["location", "supplierReference", "note"],
    );
    let key = form_key(fields)?;
    let (store, here, at) = (&app.store, app.locations().await?, Utc::now());
    let placed =
        inventory::place_purchase_order(store, &here, &staff.caller, &sku, &key, &body, at).await?;
    tracing::info!(sku = %sku, purchase_order = %placed.order.id, "console: purchase order placed");
    Ok(done(&format!("/console/inventory/{sku}"), "ordered"))
}

/// A delivery on a purchase order (`receive`: its units, `oms:admin` or `oms:warehouse`), or
/// the order closed (`close`: the rest will not come, `oms:admin`).
pub(super) async fn step_purchase_order<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path((sku, id, step)): Path<(String, String, String)>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let sku = sku_of(&sku)?;
    let missing = || PageError::NotFound(format!("Purchase order {id} does not exist."));
    if !oms_domain::purchase::PurchaseOrder::is_id(&id) {
        return Err(missing());
    }
    let (staff, receipt, word) = match step.as_str() {
        "receive" => (
            form.require_any(&[SCOPE_ADMIN, SCOPE_WAREHOUSE])?,
            Some(json!({
                "quantity": form.fields.number("quantity"),
                "expectedReceived": form.fields.number("received"),
            })),
            "delivered",
        ),
        "close" => (form.require(SCOPE_ADMIN)?, None, "closed"),
        _ => return Err(missing()),
    };
    let at = Utc::now();
    let here = app.locations.current(&app.store).await?;
    let order = inventory::step_purchase_order(
        &app.store,
        &here,
        &staff.caller,
        &sku,
        &id,
        receipt.as_ref(),
        at,
    )
    .await?;
    tracing::info!(sku = %sku, purchase_order = %id, status = order.status.as_str(), "console: purchase order step");
    Ok(done(&format!("/console/inventory/{sku}"), word))
}

/// The transfer's units arrived at its destination.
pub(super) async fn receive_transfer<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path((sku, id)): Path<(String, String)>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require_any(&[SCOPE_ADMIN, SCOPE_WAREHOUSE])?;
    let sku = sku_of(&sku)?;
    if !oms_domain::stock::Transfer::is_id(&id) {
        return Err(PageError::NotFound(format!(
            "Transfer {id} does not exist."
        )));
    }
    let here = app.locations.current(&app.store).await?;
    inventory::receive_transfer(&app.store, &here, &staff.caller, &sku, &id, Utc::now()).await?;
    tracing::info!(sku = %sku, transfer = %id, "console: transfer received");
    Ok(done(&format!("/console/inventory/{sku}"), "arrived"))
}
