//! What needs staff: stuck orders, money, dead-letter queues and their redrive.

use super::*;

pub(super) async fn exceptions<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Admin>,
) -> Result<Response, PageError> {
    let found =
        staff::exceptions(&app.store, &staff.caller, app.backorder_alert, Utc::now()).await?;
    let stuck: Vec<_> = found
        .stuck
        .iter()
        .map(|s| {
            json!({
                "status": s.rule.status.as_str(),
                // Two rules watch RESERVED orders: those waiting for stock are told apart.
                "id": if s.rule.backordered == Some(true) {
                    format!("{}-BACKORDERED", s.rule.status.as_str())
                } else {
                    s.rule.status.as_str().to_owned()
                },
                "afterMinutes": s.rule.after.num_minutes(),
                "meaning": s.rule.meaning,
                "orders": summaries(&s.orders),
                "more": s.more,
            })
        })
        .collect();
    let payments: Vec<_> = found
        .payments
        .iter()
        .filter_map(PaymentAttentionView::of)
        .collect();
    let queues = match &app.dead_letters {
        Some(dead_letters) => Some(dead_letters.list().await?),
        None => None,
    };
    staff.page(
        &app,
        "exceptions.html",
        context! {
            stuck => ser(&stuck),
            payments => ser(&payments),
            more_payments => found.more_payments,
            queues => ser(&queues),
        },
    )
}

pub(super) async fn redrive<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(name): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    form.require(SCOPE_ADMIN)?;
    let dead_letters = app
        .dead_letters
        .as_ref()
        .ok_or_else(|| PageError::NotFound("No dead-letter queues are configured.".into()))?;
    dead_letters
        .redrive(&name)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no dead-letter queue {name}.")))?;
    Ok(done("/console/exceptions", "redriven"))
}

fn dead_letters<S, K>(app: &Console<S, K>) -> Result<&DeadLetters, PageError> {
    app.dead_letters
        .as_ref()
        .ok_or_else(|| PageError::NotFound("No dead-letter queues are configured.".into()))
}

/// A dead-letter queue's messages, to read before deciding: redrive the queue, or discard a
/// message that will never succeed. Reading holds them from other readers for a minute, so a
/// link from another site may not read them (it would hide them from the staff on duty).
pub(super) async fn dead_letter_queue<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    if access::from_another_site(&headers) {
        return Err(PageError::Forbidden(
            "Dead letters are read from the console's own exceptions page, not from a link elsewhere."
                .into(),
        ));
    }
    let letters = dead_letters(&app)?
        .read(&name)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no dead-letter queue {name}.")))?;
    staff.page(
        &app,
        "dead-letters.html",
        context! {
            name => name,
            letters => ser(&letters),
            hold_seconds => oms_adapters::dead_letters::READ_HOLD_SECONDS,
        },
    )
}

/// Discards one dead-lettered message: it will not be tried again.
pub(super) async fn discard<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(name): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    form.require(SCOPE_ADMIN)?;
    let handle = form
        .fields
        .get("handle")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            PageError::Stale("The message is no longer held for you: read the queue again.".into())
        })?;
    dead_letters(&app)?
        .discard(&name, handle)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no dead-letter queue {name}.")))?;
    Ok(done(
        &format!("/console/exceptions/dead-letters/{name}"),
        "discarded",
    ))
}
