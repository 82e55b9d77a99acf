//! Returns waiting for staff, a return's label, and the forms that decide and receive one.

use super::*;

pub(super) async fn returns<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Admin>,
) -> Result<Response, PageError> {
    let (waiting, _) = pending_returns(&app.store, PAGE_ROWS, None).await?;
    let rows: Vec<_> = waiting
        .iter()
        .map(|r| {
            let mut row = serde_json::to_value(r).unwrap_or_default();
            row["orderId"] = json!(r.return_id.order_id());
            row
        })
        .collect();
    staff.page(
        &app,
        "returns.html",
        context! {
            returns => ser(&rows),
        },
    )
}

/// The return's printable label (a PDF to download and print), once the return is approved:
/// for the staff who send a replacement label or receive the parcel.
pub(super) async fn return_label<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    _: Holding<AdminOrWarehouse>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = ReturnId::parse(&id).map_err(|_| PageError::NotFound("No such return.".into()))?;
    let order = app
        .store
        .get(id.order_id())
        .await?
        .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
    let rma = order
        .find_return(&id)
        .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
    if !oms_adapters::label::is_issued(rma) {
        return Err(PageError::Conflict(format!(
            "The return is {}; its label is issued once it is approved.",
            rma.status.as_str()
        )));
    }
    let pdf = oms_adapters::label::render(&order, rma, &app.returns.return_address)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.pdf\""),
            ),
        ],
        pdf,
    )
        .into_response())
}

/// Approve, reject or receive a return. The form names the version of the order it showed.
/// The note of a decision on a return (approve, reject, close), as the API validates it.
fn decision_note(fields: &Fields) -> Result<Option<String>, PageError> {
    let DecisionRequest { note } = DecisionRequest::parse(&match fields.text("note") {
        Some(note) => json!({ "note": note }),
        None => json!({}),
    })
    .map_err(ApiError::Invalid)?;
    Ok(note)
}

pub(super) async fn decide<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path((id, decision)): Path<(String, String)>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let (staff, fields) = (&form.staff, &form.fields);
    let id = ReturnId::parse(&id).map_err(|_| PageError::NotFound("No such return.".into()))?;
    let version = form.version()?;
    // Read for the receipt's lines; whether the page's version is still the order's is decided
    // by the store's conditional write.
    let order = app
        .store
        .get(id.order_id())
        .await?
        .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
    let now = Utc::now();
    let word = match decision.as_str() {
        "approve" | "reject" => {
            staff.require(SCOPE_ADMIN)?;
            let note = decision_note(fields)?;
            let approved = decision == "approve";
            decide_return(
                &app.store,
                &staff.caller,
                &id,
                approved,
                note,
                Some(version),
                now,
            )
            .await?;
            if approved {
                "approved"
            } else {
                "rejected"
            }
        }
        "close" => {
            staff.require(SCOPE_ADMIN)?;
            let note = decision_note(fields)?;
            close_return(
                &app.store,
                &app.locations,
                &staff.caller,
                &id,
                note,
                Some(version),
                now,
            )
            .await?;
            "return-closed"
        }
        "receive" => {
            staff.require(SCOPE_WAREHOUSE)?;
            let rma = order
                .find_return(&id)
                .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
            // One line per returned SKU: the quantity that arrived and what becomes of it.
            let lines: Vec<serde_json::Value> = rma
                .lines
                .iter()
                .map(|line| {
                    let sku = line.sku.as_str();
                    let quantity = fields
                        .get(&format!("quantity-{sku}"))
                        .and_then(|q| q.trim().parse::<u64>().ok());
                    json!({
                        "sku": sku,
                        "quantity": quantity.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null),
                        "disposition": fields.get(&format!("disposition-{sku}")).unwrap_or_default(),
                    })
                })
                .filter(|l| l["quantity"] != json!(0))
                .collect();
            let mut body = json!({ "lines": lines });
            if let Some(note) = fields.text("note") {
                body["note"] = json!(note);
            }
            let receipt = ReceiptRequest::parse(&body).map_err(ApiError::Invalid)?;
            receive_return(
                &app.store,
                &app.returns,
                &app.locations,
                &staff.caller,
                &id,
                &receipt,
                Some(version),
                now,
            )
            .await?;
            "received"
        }
        _ => return Err(PageError::NotFound("There is no such action.".into())),
    };
    tracing::info!(return_id = %id, decision = word, "console: return changed");
    // A receipt made at the warehouse screen goes back there (a packer may not open the order).
    if fields.get("back") == Some("warehouse") {
        let mut back = format!("/console/warehouse?order={id}");
        // The location the packer works at, if the form names a well-formed one (a location id
        // needs no escaping).
        if let Some(location) = fields
            .get("location")
            .filter(|l| oms_domain::location::Locations::is_id(l))
        {
            back.push_str(&format!("&location={location}"));
        }
        return Ok(done(&back, word));
    }
    Ok(done(&format!("/console/orders/{}", id.order_id()), word))
}
