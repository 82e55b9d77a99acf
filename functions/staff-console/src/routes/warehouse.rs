//! The pick list, one shipment found by its order, and the pick, pack and ship forms.

use super::*;

#[derive(Debug, Default, Deserialize)]
pub(super) struct WarehouseQuery {
    /// One shipment, by its order id (a packer scanning a pick slip).
    order: Option<String>,
    /// One step's next page: the step and its cursor.
    status: Option<String>,
    cursor: Option<String>,
}

pub(super) fn shipment_row(o: &oms_domain::order::Order) -> serde_json::Value {
    json!({
        "orderId": o.id,
        "version": o.version,
        "lines": o.lines.iter().map(|l| json!({"sku": l.sku, "name": l.name, "quantity": l.quantity})).collect::<Vec<_>>(),
        "method": o.shipping.method,
        "country": o.shipping.address.country(),
        "queuedAt": o.fulfillment.as_ref().map(|f| f.queued_at),
    })
}

/// The warehouse's three steps, the oldest shipment first, a page of each; or one step's next
/// page; or one shipment found by its order id.
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
    let mut sections = Vec::new();
    if let Some(raw) = query
        .order
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let id = order_id(&raw.to_ascii_uppercase())?;
        let order = fulfillment::get_fulfillment(&app.store, &id).await?;
        let status = order.fulfillment.as_ref().map(|f| f.status);
        if order.status == OrderStatus::Reserved {
            return Err(PageError::Conflict(format!(
                "Order {id} is held: the payment provider released its payment, so it waits for \
                 the customer to pay again (its shipment stays {} until then, and the order \
                 expires if no payment comes).",
                status.map(|s| s.as_str()).unwrap_or("not started")
            )));
        }
        for step in steps {
            let here = status == Some(step);
            sections.push(json!({
                "status": step.as_str(),
                "orders": if here { vec![shipment_row(&order)] } else { vec![] },
                "more": false,
            }));
        }
        if !steps.iter().any(|s| Some(*s) == status) {
            return Err(PageError::Conflict(format!(
                "Order {id} has no warehouse work left: its shipment is {}.",
                status.map(|s| s.as_str()).unwrap_or("not started")
            )));
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
            let found = fulfillment::pick_list(
                &app.store,
                app.shipping.warehouse(),
                step,
                PAGE_ROWS,
                cursor,
            )
            .await?;
            sections.push(json!({
                "status": step.as_str(),
                "orders": found.items.iter().map(shipment_row).collect::<Vec<_>>(),
                "more": found.next_cursor.is_some(),
                "nextCursor": found.next_cursor,
            }));
        }
    }
    staff.page(
        &app,
        "warehouse.html",
        context! {
            sections => ser(&sections),
            order => query.order,
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
    let id = order_id(&id)?;
    let version = form.version()?;
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
    fulfillment::warehouse_step(
        &app.store,
        &app.shipping,
        &staff.caller,
        &id,
        action,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %id, step = word, "console: warehouse step");
    // Back to the same shipment, showing its next step's form; once shipped, to the pick list.
    Ok(if word == "shipped" {
        done("/console/warehouse", word)
    } else {
        done(&format!("/console/warehouse?order={id}"), word)
    })
}
