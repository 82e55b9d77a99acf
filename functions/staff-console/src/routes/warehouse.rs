//! A location's pick list, one shipment found by its id, and the pick, pack and ship forms.

use super::*;
use oms_domain::app::fulfillment::StepConditions;
use oms_domain::ids::ShipmentId;
use oms_domain::order::fulfillment::Fulfillment;
use oms_domain::order::returns::{Disposition, Return, ReturnStatus};
use oms_domain::order::Order;

#[derive(Debug, Default, Deserialize)]
pub(super) struct WarehouseQuery {
    /// A step whose shipments are shown already ticked for a bulk action ("select all").
    select: Option<String>,
    /// One shipment, by its id or its order's (a packer scanning a pick slip), or a return by
    /// its number (from its label).
    order: Option<String>,
    /// The location whose work is shown: the default location unless named.
    location: Option<String>,
    /// One step's next page: the step and its cursor.
    status: Option<String>,
    cursor: Option<String>,
    /// The next page of the returns on their way.
    arriving: Option<String>,
}

/// One shipment as its location's staff work on it: its own units and its own version.
pub(super) fn shipment_row(order: &Order, shipment: &Fulfillment) -> serde_json::Value {
    json!({
        "shipmentId": shipment.id(order).to_string(),
        "orderId": order.id,
        "number": order.parcel_position(shipment.number),
        "of": order.parcels_expected(),
        "location": shipment.warehouse,
        "version": shipment.version(),
        "lines": shipment.lines.iter().map(|l| json!({"sku": l.sku, "name": order.line_name(&l.sku), "quantity": l.quantity})).collect::<Vec<_>>(),
        "method": order.shipping.method,
        "country": order.shipping.address.country(),
        "queuedAt": shipment.queued_at,
    })
}

/// A return as the warehouse receives it: what the customer sends back and why, in their
/// words, what staff decided, and the order's version for the receipt's form.
fn return_card(order: &Order, rma: &Return) -> serde_json::Value {
    json!({
        "returnId": rma.return_id,
        "orderId": order.id,
        "status": rma.status,
        "version": order.version,
        "lines": rma.lines.iter().map(|l| json!({
            "sku": l.sku,
            "name": l.name,
            "quantity": l.quantity,
            "reason": l.reason,
            "comment": l.comment,
            "exchange": l.exchange.as_ref().map(|e| &e.sku),
        })).collect::<Vec<_>>(),
        "decision": rma.decision,
    })
}

/// The location a warehouse page is of: the one asked for, else the default location.
fn location_asked(
    here: &oms_domain::location::Locations,
    asked: Option<&str>,
) -> Result<String, PageError> {
    match asked.map(str::trim) {
        None | Some("") => Ok(here.default_location().id.clone()),
        Some(id) => here
            .get(id)
            .map(|l| l.id.clone())
            .ok_or_else(|| PageError::NotFound(format!("There is no location {id}."))),
    }
}

fn shipment_id(raw: &str) -> Result<ShipmentId, PageError> {
    ShipmentId::parse(raw).map_err(|_| PageError::NotFound("No such shipment.".into()))
}

/// The warehouse's three steps, the oldest shipment first, a page of each; or one step's next
/// page; or one shipment found by its id or its order's, with the order's returns waiting to
/// arrive; or one return found by its number.
pub(super) async fn warehouse<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Warehouse>,
    Query(query): Query<WarehouseQuery>,
) -> Result<Response, PageError> {
    let steps = [
        FulfillmentStatus::AwaitingPick,
        FulfillmentStatus::Picked,
        FulfillmentStatus::Packed,
    ];
    let here = app.locations().await?;
    let location = location_asked(&here, query.location.as_deref())?;
    let mut sections = Vec::new();
    let mut returns = Vec::new();
    let mut arriving = Vec::new();
    let mut arriving_next = None;
    if let Some(raw) = query
        .order
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let raw = raw.to_ascii_uppercase();
        if let Ok(rma) = ReturnId::parse(&raw) {
            // A return's number (from its label): the return, whatever it has come to.
            let order = app
                .store
                .get(rma.order_id())
                .await?
                .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
            let found = order
                .find_return(&rma)
                .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
            returns.push(return_card(&order, found));
        } else {
            let id = shipment_id(&raw)?;
            let order = app
                .store
                .get(id.order_id())
                .await?
                .ok_or_else(|| PageError::NotFound("No such shipment.".into()))?;
            // The order's approved returns, waiting for their goods to arrive.
            returns = order
                .returns
                .iter()
                .filter(|r| r.status == ReturnStatus::Approved)
                .map(|r| return_card(&order, r))
                .collect();
            // The order id alone finds the order's shipment at this location, else its first.
            let named = raw.contains('-');
            let shipment = match (named, order.shipment_at(&location)) {
                (false, Some(here)) => Some(here),
                (false, None) => order.shipments.first(),
                (true, _) => order.shipment(id.number()).ok(),
            }
            .ok_or_else(|| PageError::NotFound("No such shipment.".into()))?;
            let status = shipment.status;
            let warehouse_work = steps.contains(&status);
            if order.status == OrderStatus::Reserved {
                return Err(PageError::Conflict(format!(
                    "Order {} is held: the payment provider released its payment, so it waits \
                     for the customer to pay again (its shipment stays {} until then, and the \
                     order expires if no payment comes).",
                    order.id,
                    status.as_str()
                )));
            }
            if warehouse_work && shipment.warehouse != location {
                return Err(PageError::Conflict(format!(
                    "Shipment {} leaves from {}, which holds its units, not from {location}: \
                     switch to {} to work on it.",
                    shipment.id(&order),
                    shipment.warehouse,
                    shipment.warehouse
                )));
            }
            if !warehouse_work && returns.is_empty() {
                return Err(PageError::Conflict(format!(
                    "Shipment {} has no warehouse work left: it is {}.",
                    shipment.id(&order),
                    status.as_str()
                )));
            }
            if warehouse_work {
                // Only the step the shipment is at: the other steps are not empty, only not
                // shown while one shipment is.
                sections.push(json!({
                    "status": status.as_str(),
                    "orders": vec![shipment_row(&order, shipment)],
                    "more": false,
                }));
            }
        }
    } else {
        // What customers are sending back, approved: found here by its number when it arrives.
        let (expected, next) = oms_domain::app::returns::arriving_returns(
            &app.store,
            PAGE_ROWS,
            query.arriving.as_deref(),
        )
        .await?;
        arriving_next = next;
        arriving = expected
            .iter()
            .map(|rma| {
                json!({
                    "returnId": rma.return_id,
                    "orderId": rma.return_id.order_id(),
                    "units": rma.lines.iter().map(|l| l.quantity.get()).sum::<u32>(),
                    "approvedAt": rma.approved_at(),
                })
            })
            .collect();
        let only = match query.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                FulfillmentStatus::parse(s)
                    .filter(|s| steps.contains(s))
                    .ok_or_else(|| PageError::NotFound(format!("{s} is not a warehouse step")))?,
            ),
        };
        for step in steps {
            if only.is_some_and(|o| o != step) {
                continue;
            }
            let cursor = if only.is_some() {
                query.cursor.as_deref()
            } else {
                None
            };
            let found =
                fulfillment::pick_list(&app.store, &location, step, PAGE_ROWS, cursor).await?;
            let rows: Vec<_> = found
                .items
                .iter()
                .filter_map(|o| o.shipment_in(&location, step).map(|s| shipment_row(o, s)))
                .collect();
            sections.push(json!({
                "status": step.as_str(),
                "orders": rows,
                "more": found.next_cursor.is_some(),
                "nextCursor": found.next_cursor,
                "cursor": cursor,
            }));
        }
    }
    let locations: Vec<_> = here
        .all()
        .iter()
        .map(|l| json!({"id": l.id, "name": l.name}))
        .collect();
    staff.page(
        &app,
        "warehouse.html",
        context! {
            sections => ser(&sections),
            returns => ser(&returns),
            arriving => ser(&arriving),
            arriving_next => arriving_next,
            dispositions => Disposition::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            order => query.order,
            location => location,
            locations => ser(&locations),
            selected => query.select,
        },
    )
}

/// The most shipments one bulk action takes: a page of the pick list (each pick is a
/// conditional write of its own, one after another, well inside the function's time).
const MAX_BULK: usize = PAGE_ROWS as usize;

/// How many shipments the printed pick list of a whole location holds at most.
const MAX_PICK_LIST: u32 = 100;

/// The shipments ticked in a bulk form, each with the version its row showed
/// (`<shipment id>@<version>`).
fn ticked(fields: &Fields) -> Result<Vec<(ShipmentId, u64)>, PageError> {
    let mut found = Vec::new();
    for value in fields.all("shipment") {
        let (id, version) = value
            .split_once('@')
            .and_then(|(id, v)| Some((ShipmentId::parse(id).ok()?, v.parse().ok()?)))
            .ok_or_else(|| {
                PageError::Invalid(vec![format!("shipment: {value} names no shipment")])
            })?;
        if !found.iter().any(|(f, _)| f == &id) {
            found.push((id, version));
        }
    }
    if found.is_empty() {
        return Err(PageError::Invalid(vec![
            "shipment: tick at least one shipment".into(),
        ]));
    }
    if found.len() > MAX_BULK {
        return Err(PageError::Invalid(vec![format!(
            "shipment: at most {MAX_BULK} shipments at once"
        )]));
    }
    Ok(found)
}

/// What the warehouse does to several shipments at once: pick them (each on the version its
/// row showed, so one that changed meanwhile is left as it is now), or print their pick list
/// or their packing slips.
pub(super) async fn bulk<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_WAREHOUSE)?;
    let named = form.fields.text("location").unwrap_or_default();
    let location = app
        .locations()
        .await?
        .get(named)
        .map(|l| l.id.clone())
        .ok_or_else(|| {
            PageError::Invalid(vec![format!("location: there is no location {named}")])
        })?;
    let selected = ticked(&form.fields)?;
    match form.fields.get("do") {
        Some("pick") => {
            let mut picked = 0;
            for (id, version) in &selected {
                let step = fulfillment::warehouse_step(
                    &app.store,
                    &app.shipping,
                    &staff.caller,
                    id,
                    WarehouseAction::Pick,
                    StepConditions {
                        if_match: Some(*version),
                        location: Some(location.clone()),
                    },
                    Utc::now(),
                )
                .await;
                match step.map_err(ApiError::from) {
                    Ok(_) => picked += 1,
                    // Changed since the page was read (picked, moved, cancelled): left for the
                    // page to show as it is now.
                    Err(
                        e @ (ApiError::PreconditionFailed { .. }
                        | ApiError::Conflict { .. }
                        | ApiError::NotFound(_)),
                    ) => {
                        tracing::info!(shipment_id = %id, error = %e, "console: bulk pick left one")
                    }
                    // Anything else (the store busy, a scope): stop, and say what was done.
                    Err(e) => {
                        tracing::warn!(picked, error = %e, "console: bulk pick stopped");
                        return Err(match PageError::from(e) {
                            PageError::Unavailable(m) => PageError::Unavailable(format!(
                                "{m} ({picked} of the ticked shipments were picked before it stopped)"
                            )),
                            other => other,
                        });
                    }
                }
            }
            tracing::info!(picked, selected = selected.len(), "console: bulk pick");
            Ok(done(
                &format!("/console/warehouse?location={location}"),
                &format!("bulk-picked-{picked}-of-{}", selected.len()),
            ))
        }
        Some("pick-list") => {
            let orders = orders_of(&app, &selected).await?;
            pick_list_page(&app, &staff.layout(None), &location, &orders, &selected)
        }
        Some("slips") => {
            let orders = orders_of(&app, &selected).await?;
            let slips: Vec<_> = selected
                .iter()
                .filter_map(|(id, _)| {
                    let order = orders.iter().find(|o| &o.id == id.order_id())?;
                    let shipment = order.shipment(id.number()).ok()?;
                    Some(json!({
                        "shipment": shipment_row(order, shipment),
                        "address": order.shipping.address,
                    }))
                })
                .collect();
            page(
                &app,
                "slips.html",
                context! {
                    me => staff.layout(None),
                    slips => ser(&slips),
                    location,
                    printed_at => Utc::now().to_rfc3339(),
                },
            )
        }
        _ => Err(PageError::Invalid(vec![
            "do: pick, pick-list or slips".into()
        ])),
    }
}

/// The orders of the ticked shipments, each read once.
async fn orders_of<S: Store, K>(
    app: &Console<S, K>,
    selected: &[(ShipmentId, u64)],
) -> Result<Vec<Order>, PageError> {
    let mut orders: Vec<Order> = Vec::new();
    for (id, _) in selected {
        if orders.iter().any(|o| &o.id == id.order_id()) {
            continue;
        }
        if let Some(order) = app.store.get(id.order_id()).await? {
            orders.push(order);
        }
    }
    Ok(orders)
}

/// The pick list of every shipment waiting to be picked at a location (the oldest first, up
/// to a hundred), to print and walk the shelves with.
pub(super) async fn pick_list<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Warehouse>,
    Query(query): Query<WarehouseQuery>,
) -> Result<Response, PageError> {
    let here = app.locations().await?;
    let location = location_asked(&here, query.location.as_deref())?;
    let waiting = fulfillment::pick_list(
        &app.store,
        &location,
        FulfillmentStatus::AwaitingPick,
        MAX_PICK_LIST,
        None,
    )
    .await?;
    let selected: Vec<(ShipmentId, u64)> = waiting
        .items
        .iter()
        .filter_map(|o| {
            let s = o.shipment_in(&location, FulfillmentStatus::AwaitingPick)?;
            Some((s.id(o), s.version()))
        })
        .collect();
    pick_list_page(
        &app,
        &staff.layout(None),
        &location,
        &waiting.items,
        &selected,
    )
}

/// The pick list of `selected` at `location`: every item to take from the shelves with its
/// units in all (by SKU), and each shipment's own items to sort them into. A shipment no
/// longer waiting to be picked there is named apart.
fn pick_list_page<S, K>(
    app: &Console<S, K>,
    me: &Value,
    location: &str,
    orders: &[Order],
    selected: &[(ShipmentId, u64)],
) -> Result<Response, PageError> {
    let mut shipments = Vec::new();
    let mut gone = Vec::new();
    let mut items: std::collections::BTreeMap<String, (String, u32, Vec<String>)> =
        std::collections::BTreeMap::new();
    for (id, _) in selected {
        let found = orders
            .iter()
            .find(|o| &o.id == id.order_id())
            .and_then(|o| Some((o, o.shipment(id.number()).ok()?)));
        match found {
            Some((order, shipment))
                if shipment.status == FulfillmentStatus::AwaitingPick
                    && shipment.warehouse == location =>
            {
                let row = shipment_row(order, shipment);
                for line in &shipment.lines {
                    let entry = items
                        .entry(line.sku.to_string())
                        .or_insert_with(|| (order.line_name(&line.sku).to_string(), 0, Vec::new()));
                    entry.1 += line.quantity.get();
                    entry.2.push(format!(
                        "{} ×{}",
                        row["shipmentId"].as_str().unwrap_or_default(),
                        line.quantity.get()
                    ));
                }
                shipments.push(row);
            }
            _ => gone.push(id.to_string()),
        }
    }
    let items: Vec<_> = items
        .into_iter()
        .map(|(sku, (name, units, into))| json!({"sku": sku, "name": name, "units": units, "into": into}))
        .collect();
    let units: u32 = items
        .iter()
        .filter_map(|i| i["units"].as_u64())
        .map(|u| u as u32)
        .sum();
    page(
        app,
        "pick-list.html",
        context! {
            me => me.clone(),
            location,
            items => ser(&items),
            shipments => ser(&shipments),
            units,
            gone,
            printed_at => Utc::now().to_rfc3339(),
        },
    )
}

pub(super) async fn warehouse_step<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path((id, step)): Path<(String, String)>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let staff = form.require(SCOPE_WAREHOUSE)?;
    let fields = &form.fields;
    let id = shipment_id(&id)?;
    let version = form.version()?;
    let location = fields.get("location").filter(|l| !l.is_empty());
    let number = |name: &str| fields.number(name);
    let (action, word) = match step.as_str() {
        "pick" => (WarehouseAction::Pick, "picked"),
        "pack" => (
            WarehouseAction::pack(&json!({
                "weightGrams": number("weightGrams"),
                "lengthCm": number("lengthCm"),
                "widthCm": number("widthCm"),
                "heightCm": number("heightCm"),
            }))
            .map_err(ApiError::Invalid)?,
            "packed",
        ),
        "ship" => (
            WarehouseAction::ship(&json!({
                "carrier": fields.get("carrier").unwrap_or_default(),
                "trackingNumber": fields.get("trackingNumber").unwrap_or_default(),
                "trackingUrl": fields.get("trackingUrl").unwrap_or_default(),
            }))
            .map_err(ApiError::Invalid)?,
            "shipped",
        ),
        _ => return Err(PageError::NotFound("There is no such step.".into())),
    };
    let order = fulfillment::warehouse_step(
        &app.store,
        &app.shipping,
        &staff.caller,
        &id,
        action,
        StepConditions {
            if_match: Some(version),
            location: location.map(str::to_owned),
        },
        Utc::now(),
    )
    .await?;
    tracing::info!(shipment_id = %id, step = word, "console: warehouse step");
    // Back to the same shipment, showing its next step's form; once shipped, to the pick list
    // of the location it left.
    let at = order
        .shipment(id.number())
        .map(|s| format!("location={}", s.warehouse))
        .unwrap_or_default();
    Ok(if word == "shipped" {
        done(&format!("/console/warehouse?{at}"), word)
    } else {
        done(&format!("/console/warehouse?order={id}&{at}"), word)
    })
}

/// A shipment's packing slip, to print and put in the parcel: where it goes, what is in it, and
/// which parcel of the order it is. Printed on one A4 page (the stylesheet's print rules hide
/// the console around it).
pub(super) async fn packing_slip<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Warehouse>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = shipment_id(&id.to_ascii_uppercase())?;
    let order = app
        .store
        .get(id.order_id())
        .await?
        .ok_or_else(|| PageError::NotFound("No such shipment.".into()))?;
    let shipment = order
        .shipment(id.number())
        .map_err(|_| PageError::NotFound("No such shipment.".into()))?;
    staff.page(
        &app,
        "slip.html",
        context! {
            shipment => ser(shipment_row(&order, shipment)),
            address => ser(order.shipping.address.clone()),
            printed_at => Utc::now().to_rfc3339(),
        },
    )
}
