//! What needs staff: stuck orders, money, dead-letter queues and their redrive.

use super::*;

pub(super) async fn exceptions<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<Admin>,
) -> Result<Response, PageError> {
    let found = staff::exceptions(&app.store, &staff.caller, Utc::now()).await?;
    let stuck: Vec<_> = found
        .stuck
        .iter()
        .map(|s| {
            json!({
                "status": s.rule.status.as_str(),
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
