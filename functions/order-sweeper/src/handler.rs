//! The scheduled handler: one sweep, its figures logged as CloudWatch embedded metrics.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_domain::app::payments::{sweep, SweepReport};
use oms_domain::order::payments::PaymentPolicy;
use oms_domain::ports::{OrderStore, OrderTransactions};
use serde::Serialize;

/// How many orders one run looks at: well inside the function's timeout at a few
/// milliseconds per order.
pub const SWEEP_BUDGET: usize = 500;

/// What the function needs, built once per cold start.
pub struct App<S> {
    pub store: S,
    pub policy: PaymentPolicy,
}

impl App<DynamoStore> {
    pub fn from_env() -> Result<Self, Error> {
        Ok(App {
            store: DynamoStore::from_env()?,
            policy: config::payment_policy_from_env()?,
        })
    }
}

/// What a run answers (the schedule ignores it; the local stack's on-demand run shows it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepAnswer {
    pub examined: usize,
    pub expired: Vec<String>,
    pub flagged: Vec<String>,
    pub contended: Vec<String>,
    pub more: bool,
}

impl From<SweepReport> for SweepAnswer {
    fn from(report: SweepReport) -> Self {
        let ids = |ids: Vec<oms_domain::ids::OrderId>| ids.iter().map(|i| i.to_string()).collect();
        SweepAnswer {
            examined: report.examined,
            expired: ids(report.expired),
            flagged: ids(report.flagged),
            contended: ids(report.contended),
            more: report.more,
        }
    }
}

#[tracing::instrument(skip_all, fields(schedule = event.payload.id.as_deref().unwrap_or("-")))]
pub async fn handle<S: OrderStore + OrderTransactions>(
    app: &App<S>,
    event: LambdaEvent<CloudWatchEvent>,
) -> Result<SweepAnswer, Error> {
    let report = sweep(&app.store, &app.policy, Utc::now(), SWEEP_BUDGET).await?;
    // One embedded-metric-format line: CloudWatch turns it into metrics without an API call.
    println!(
        "{}",
        serde_json::json!({
            "_aws": {
                "Timestamp": Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "OMS",
                    "Dimensions": [[]],
                    "Metrics": [
                        {"Name": "OrdersExpired", "Unit": "Count"},
                        {"Name": "AuthorizationsNearDeadline", "Unit": "Count"},
                        {"Name": "SweepContended", "Unit": "Count"}
                    ]
                }]
            },
            "OrdersExpired": report.expired.len(),
            "AuthorizationsNearDeadline": report.flagged.len(),
            "SweepContended": report.contended.len(),
        })
    );
    tracing::info!(
        examined = report.examined,
        expired = report.expired.len(),
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
            policy: PaymentPolicy::default(),
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
