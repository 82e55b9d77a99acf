//! The scheduled handler: one sweep, its figures logged as CloudWatch embedded metrics.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_domain::app::locations::LocationDirectory;
use oms_domain::app::sweep::{sweep, SweepPolicies, SweepReport, STUCK_AFTER_MINUTES};
use oms_domain::order::payments::PaymentPolicy;
use oms_domain::order::returns::policy::ReturnPolicy;
use oms_domain::ports::{InventoryStore, LocationStore, OrderStore, OrderTransactions};
use oms_domain::shipping::ShippingPolicy;
use serde::Serialize;

/// How many orders one run looks at: well inside the function's timeout at a few
/// milliseconds per order.
pub const SWEEP_BUDGET: usize = 500;

/// What the function needs, built once per cold start.
pub struct App<S> {
    pub store: S,
    pub payment: PaymentPolicy,
    pub shipping: ShippingPolicy,
    /// How long an approved return may take to arrive (`RETURN_POLICY_FILE`, or the bundled
    /// rules).
    pub returns: ReturnPolicy,
    /// Where stock is kept: a stuck reservation is planned over them.
    pub locations: LocationDirectory,
}

impl App<DynamoStore> {
    pub fn from_env() -> Result<Self, Error> {
        let shipping = config::shipping_policy_from_env()?;
        Ok(App {
            store: DynamoStore::from_env()?,
            payment: config::payment_policy_from_env()?,
            returns: config::return_policy_from_env()?,
            locations: config::location_directory_from_env(&shipping)?,
            shipping,
        })
    }
}

/// What a run answers (the schedule ignores it; the local stack's on-demand run shows it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepAnswer {
    pub examined: usize,
    pub expired: Vec<String>,
    pub reservations_redriven: Vec<String>,
    pub fulfillments_redriven: Vec<String>,
    /// Pre-orders moved to their SKU's new release date.
    pub releases_followed: Vec<String>,
    pub flagged: Vec<String>,
    /// Orders whose approved return never arrived: closed, their exchange released.
    pub returns_expired: Vec<String>,
    pub contended: Vec<String>,
    /// Orders it could not handle, with why.
    pub failed: Vec<FailedOrder>,
    pub more: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedOrder {
    pub order_id: String,
    pub error: String,
}

impl From<SweepReport> for SweepAnswer {
    fn from(report: SweepReport) -> Self {
        let ids = |ids: Vec<oms_domain::ids::OrderId>| ids.iter().map(|i| i.to_string()).collect();
        SweepAnswer {
            examined: report.examined,
            expired: ids(report.expired),
            reservations_redriven: ids(report.reservations_redriven),
            fulfillments_redriven: ids(report.fulfillments_redriven),
            releases_followed: ids(report.releases_followed),
            flagged: ids(report.flagged),
            returns_expired: ids(report.returns_expired),
            contended: ids(report.contended),
            failed: report
                .failed
                .into_iter()
                .map(|(id, error)| FailedOrder {
                    order_id: id.to_string(),
                    error,
                })
                .collect(),
            more: report.more,
        }
    }
}

/// How long before the function's deadline the sweep stops taking up orders: the order in hand
/// (its writes and the freed stock it hands on, a few seconds at most) finishes in it.
const STOP_SHORT_OF_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// When the sweep stops taking up orders: its invocation's deadline less the margin (`None`
/// where the runtime gives no deadline).
fn stop_by(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).ok()?;
    let left = std::time::Duration::from_millis(context.deadline.checked_sub(now_ms)?);
    Some(std::time::Instant::now() + left.saturating_sub(STOP_SHORT_OF_DEADLINE))
}

#[tracing::instrument(skip_all, fields(schedule = event.payload.id.as_deref().unwrap_or("-")))]
pub async fn handle<S: OrderStore + InventoryStore + OrderTransactions + LocationStore>(
    app: &App<S>,
    event: LambdaEvent<CloudWatchEvent>,
) -> Result<SweepAnswer, Error> {
    // Boxed, as the sweep is below: the store's read nests the SDK's futures deeply.
    let locations = Box::pin(app.locations.current(&app.store)).await?;
    let policies = SweepPolicies {
        payment: &app.payment,
        returns: &app.returns,
        shipping: &app.shipping,
        locations: &locations,
        stuck_after: chrono::Duration::minutes(STUCK_AFTER_MINUTES),
        stop_by: stop_by(&event.context),
    };
    // Boxed: the sweep's future nests its passes, the store's listings and the SDK's calls deeper
    // than the compiler lays out in one piece (a query-depth overflow in `main`).
    let report = Box::pin(sweep(&app.store, &policies, Utc::now(), SWEEP_BUDGET)).await?;
    // The sweep's figures, as embedded metrics: CloudWatch turns them into metrics without an
    // API call (SweepFailures is alarmed).
    for (metric, count) in [
        ("OrdersExpired", report.expired.len()),
        (
            "StuckOrdersRedriven",
            report.reservations_redriven.len() + report.fulfillments_redriven.len(),
        ),
        ("AuthorizationsNearDeadline", report.flagged.len()),
        ("ReturnsExpired", report.returns_expired.len()),
        ("SweepContended", report.contended.len()),
        (
            "SweepFailures",
            report.failed.len() + report.listings_failed.len(),
        ),
    ] {
        oms_adapters::metrics::emit_count(metric, count);
    }
    for (order_id, error) in &report.failed {
        tracing::error!(%order_id, %error, "the sweep could not handle an order");
    }
    for error in &report.listings_failed {
        tracing::error!(%error, "the sweep could not read a listing");
    }
    tracing::info!(
        failed = report.failed.len(),
        examined = report.examined,
        expired = report.expired.len(),
        reservations_redriven = report.reservations_redriven.len(),
        fulfillments_redriven = report.fulfillments_redriven.len(),
        releases_followed = report.releases_followed.len(),
        flagged = report.flagged.len(),
        contended = report.contended.len(),
        more = report.more,
        "sweep done"
    );
    Ok(report.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::fixtures;
    use oms_domain::memory::InMemoryStore;
    use oms_domain::order::OrderStatus;

    #[tokio::test]
    async fn a_scheduled_run_expires_an_unpaid_order() {
        let placed_at = Utc::now() - chrono::Duration::hours(1);
        let order = fixtures::sample_order("01JDEEEEEEEEEEEEEEEEEEEEEE", "customer-ada", placed_at);
        let store = InMemoryStore::default();
        store.insert_order(order.clone());
        let app = App {
            store,
            payment: PaymentPolicy::default(),
            shipping: ShippingPolicy::default_policy(),
            returns: ReturnPolicy::default_policy(),
            locations: LocationDirectory::demo(),
        };
        let event: CloudWatchEvent = fixtures::event("order-sweeper/scheduled.json");
        let answer = handle(&app, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        assert_eq!(answer.expired, [order.id.to_string()]);
        let stored = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(stored.status, OrderStatus::Cancelled);
    }
}
