//! A location's pick list, one shipment found by its id, and the pick, pack and ship forms.

use super::*;
use oms_domain::app::fulfillment::StepConditions;
use oms_domain::ids::ShipmentId;
use oms_domain::order::fulfillment::Fulfillment;
use oms_domain::order::returns::{Disposition, Return, ReturnStatus};
use oms_domain::order::Order;

#[derive(Debug, Default, Deserialize)]
pub(super) struct WarehouseQuery {
    /// One shipment, by its id or its order's (a packer scanning a pick slip), or a return by
    /// its number (from its label).
    order: Option<String>,
    /// The location whose work is shown: the default location unless named.
    location: Option<String>,
    /// One step's next page: the step and its cursor.
    status: Option<String>,
    cursor: Option<String>,
}

/// One shipment as its location's staff work on it: its own units and its own version.
pub(super) fn shipment_row(order: &Order, shipment: &Fulfillment) -> serde_json::Value {
    json!({
        "shipmentId": shipment.id(order).to_string(),
        "orderId": order.id,
        "number": order.parcel_position(shipment.number),
        "of": order.shipments.len(),
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
    let location = match query.location.as_deref().map(str::trim) {
        None | Some("") => here.default_location().id.clone(),
        Some(id) => here
            .get(id)
            .map(|l| l.id.clone())
            .ok_or_else(|| PageError::NotFound(format!("There is no location {id}.")))?,
    };
    let mut sections = Vec::new();
    let mut returns = Vec::new();
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
                .filter_map(|o| o.shipment_at(&location).map(|s| shipment_row(o, s)))
                .collect();
            sections.push(json!({
                "status": step.as_str(),
                "orders": rows,
                "more": found.next_cursor.is_some(),
                "nextCursor": found.next_cursor,
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
            dispositions => Disposition::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            order => query.order,
            location => location,
            locations => ser(&locations),
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
