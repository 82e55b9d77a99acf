//! The SQS handler: every message on its own, failures reported per message.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config::TableConfig;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::sns::NotificationPublisher;
use oms_adapters::sqs::{for_each_message, order_event};
use oms_domain::app::notify::{notify, NotifyError, NotifyResult};
use oms_domain::notifications::Renderer;
use oms_domain::ports::{NotificationSink, NotificationStore};

/// What the function needs, built once per cold start.
pub struct App<S, K> {
    pub store: S,
    pub sink: K,
    pub renderer: Renderer,
}

impl App<DynamoStore, NotificationPublisher> {
    pub async fn from_env() -> Result<Self, Error> {
        let table = TableConfig::from_env()?;
        let topic = std::env::var("CUSTOMER_NOTIFICATIONS_TOPIC_ARN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or("environment variable CUSTOMER_NOTIFICATIONS_TOPIC_ARN must be set")?;
        // Links in messages (a return label) point at the public API.
        let api_url = std::env::var("PUBLIC_API_URL").unwrap_or_default();
        Ok(App {
            store: DynamoStore::lazy(table.table_name),
            sink: NotificationPublisher::lazy(topic),
            renderer: Renderer::new().with_api_url(&api_url),
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum MessageError {
    #[error("the message is not an order event: {0}")]
    Poison(serde_json::Error),
    #[error("{0} (retryable: {retryable})", retryable = .0.is_retryable())]
    Notify(#[from] NotifyError),
}

pub async fn handle<S: NotificationStore, K: NotificationSink>(
    app: &App<S, K>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(for_each_message(&event.payload, |message| process(app, message)).await)
}

async fn process<S: NotificationStore, K: NotificationSink>(
    app: &App<S, K>,
    message: &SqsMessage,
) -> Result<(), MessageError> {
    let event = order_event(message).map_err(MessageError::Poison)?;
    let result = notify(
        &app.store,
        &app.sink,
        &app.renderer,
        &event,
        chrono::Utc::now(),
    )
    .await?;
    let order_id = &event.data.order_id;
    let event_type = event.event_type.as_str();
    match result {
        NotifyResult::Sent(count) => {
            tracing::info!(%order_id, event_type, sequence = event.sequence, count, "customer notified")
        }
        NotifyResult::Nothing => {
            tracing::debug!(%order_id, event_type, sequence = event.sequence, "nothing to tell")
        }
        NotifyResult::AlreadyHandled => {
            tracing::info!(%order_id, event_type, sequence = event.sequence, "duplicate acknowledged")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use oms_domain::memory::InMemoryStore;

    use oms_domain::notifications::Notification;
    use oms_domain::order::Order;
    use oms_domain::ports::StoreError;

    use std::sync::Mutex;

    #[derive(Default)]
    struct Outbox(Mutex<Vec<Notification>>);

    impl NotificationSink for Outbox {
        async fn send(&self, notification: &Notification) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(notification.clone());
            Ok(())
        }
    }

    fn fixture(name: &str) -> SqsEvent {
        oms_domain::fixtures::event(&format!("notifier/{name}.json"))
    }

    /// The order the fixtures name, reserved.
    fn order() -> Order {
        oms_domain::fixtures::sample_order(
            "01KAZ3Q6W8T2Y7X9V5N4M3K2J1",
            "customer-ada",
            chrono::Utc::now(),
        )
        .reserve(chrono::Utc::now())
        .unwrap()
    }

    async fn run(app: &App<InMemoryStore, Outbox>, name: &str) -> Vec<String> {
        let response = handle(
            app,
            LambdaEvent::new(fixture(name), lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    #[tokio::test]
    async fn events_out_of_order_wait_and_duplicates_send_nothing() {
        let app = App {
            store: InMemoryStore::default(),
            sink: Outbox::default(),
            renderer: Renderer::new(),
        };
        app.store.insert_order(order());
        assert_eq!(
            run(&app, "reserved-before-placed").await,
            ["reserved-2"],
            "the later event waits"
        );
        assert!(
            run(&app, "reserved-before-placed").await.is_empty(),
            "its turn came"
        );
        assert!(
            run(&app, "reserved-before-placed").await.is_empty(),
            "duplicates are acknowledged"
        );
        let sent: Vec<_> = app
            .sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.event_type.as_str())
            .collect();
        assert_eq!(
            sent,
            ["oms.order.placed", "oms.order.reserved"],
            "in order, once each"
        );
    }

    #[tokio::test]
    async fn a_poison_message_fails_alone() {
        let app = App {
            store: InMemoryStore::default(),
            sink: Outbox::default(),
            renderer: Renderer::new(),
        };
        app.store.insert_order(order());
        assert_eq!(run(&app, "batch-with-poison").await, ["poison-1"]);
        assert_eq!(app.sink.0.lock().unwrap().len(), 1);
    }
}
