//! The SQS handler: every message on its own, failures reported per message.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::sns::NotificationPublisher;
use oms_adapters::sqs::{
    for_each_message, order_event, receive_count, QueueRedelivery, Redelivery,
};
use oms_domain::app::notify::{notify, NotifyError, NotifyResult, PASS_GAP_ON_DELIVERY};
use oms_domain::notifications::Renderer;
use oms_domain::ports::{NotificationSink, NotificationStore, TurnQueue};

/// What the function needs, built once per cold start.
pub struct App<S, K, R> {
    pub store: S,
    pub sink: K,
    pub renderer: Renderer,
    /// Holds an event that waits for its turn for less than the queue's visibility timeout,
    /// and wakes it when its turn comes.
    pub redelivery: R,
}

/// The message being handled, on its queue: held by changing its visibility, its receipt handle
/// the token that wakes it.
struct Delivery<'a, R> {
    redelivery: &'a R,
    message: &'a SqsMessage,
}

impl<R: Redelivery> TurnQueue for Delivery<'_, R> {
    async fn hold(&self, delay: std::time::Duration) -> Option<String> {
        match self.redelivery.redeliver_after(self.message, delay).await {
            Ok(()) => self.message.receipt_handle.clone(),
            Err(why) => {
                tracing::warn!(%why, "could not hold the event for its turn");
                None
            }
        }
    }

    async fn wake(&self, token: &str) {
        // A message received again since it left the token has a new handle; it needs no wake.
        if let Err(why) = self.redelivery.wake(token).await {
            tracing::info!(%why, "the next event was not woken");
        }
    }
}

/// How long the link in a message opens its order's page: the default return window (30 days
/// after delivery) past an order's usual delivery, and no longer.
const ORDER_LINK_DAYS: i64 = 45;

/// The key the messages' links to their order's page are signed with.
async fn order_links() -> Result<oms_adapters::web::OrderLinks, Error> {
    let secret = oms_adapters::secrets::SecretCache::from_env("SHOP_SECRET_ARN")?;
    let key = oms_adapters::secrets::SecretSource::value(&secret).await?;
    Ok(oms_adapters::web::OrderLinks::from_secret(&key)?)
}

impl App<DynamoStore, NotificationPublisher, QueueRedelivery> {
    pub async fn from_env() -> Result<Self, Error> {
        let topic = config::required("CUSTOMER_NOTIFICATIONS_TOPIC_ARN")?;
        let queue = config::required("NOTIFIER_QUEUE_URL")?;
        // Links in messages (a return label, the order's page) point at the public API.
        let api_url = std::env::var("PUBLIC_API_URL").unwrap_or_default();
        let mut renderer = Renderer::new()
            .with_api_url(&api_url)
            .with_payment_window(config::payment_policy_from_env()?.authorization_window);
        // The order's page, by its signed link: the key is read once per cold start (a rotated
        // key signs from the next; the pages accept every key the secret still holds).
        // A key that cannot be read sends the messages without the link (an error in the log),
        // never no message at all.
        if std::env::var("SHOP_SECRET_ARN").is_ok_and(|arn| !arn.is_empty()) {
            match order_links().await {
                Ok(links) => {
                    let base = api_url.trim_end_matches('/').to_owned();
                    renderer = renderer.with_order_pages(move |order| {
                        let expires = chrono::Utc::now() + chrono::Duration::days(ORDER_LINK_DAYS);
                        let token = links.token(&order.to_string(), expires.timestamp());
                        format!("{base}/shop/orders/{order}?t={token}")
                    });
                }
                Err(error) => tracing::error!(
                    %error,
                    "the order pages' key cannot be read: messages go out without their link"
                ),
            }
        }
        Ok(App {
            store: DynamoStore::from_env()?,
            sink: NotificationPublisher::lazy(topic),
            renderer,
            redelivery: QueueRedelivery::lazy(queue),
        })
    }
}

type MessageError = oms_adapters::app::MessageError<NotifyError>;

pub async fn handle<S: NotificationStore, K: NotificationSink, R: Redelivery>(
    app: &App<S, K, R>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(for_each_message(&event.payload, |message| process(app, message)).await)
}

async fn process<S: NotificationStore, K: NotificationSink, R: Redelivery>(
    app: &App<S, K, R>,
    message: &SqsMessage,
) -> Result<(), MessageError> {
    let event = match order_event(message) {
        Ok(event) => event,
        Err(error) => {
            // Not an order event, and never going to be one: back in a second, so its receives run
            // out (the queue allows many, for events that wait) and it reaches the dead-letter
            // queue within a minute rather than an hour.
            if let Err(why) = app
                .redelivery
                .redeliver_after(message, std::time::Duration::from_secs(1))
                .await
            {
                tracing::warn!(%why, "could not bring a poison message back at once");
            }
            return Err(MessageError::Poison(error));
        }
    };
    let delivery = receive_count(message);
    let queue = Delivery {
        redelivery: &app.redelivery,
        message,
    };
    let result = notify(
        &app.store,
        &app.sink,
        &app.renderer,
        &event,
        delivery,
        chrono::Utc::now(),
        &queue,
    )
    .await?;
    let order_id = &event.data.order_id;
    let event_type = event.event_type.as_str();
    match result {
        NotifyResult::Sent(count) if delivery >= PASS_GAP_ON_DELIVERY => {
            tracing::warn!(%order_id, event_type, sequence = event.sequence, count, delivery, "customer notified, a gap before it passed over")
        }
        NotifyResult::Sent(count) => {
            tracing::info!(%order_id, event_type, sequence = event.sequence, count, "customer notified")
        }
        NotifyResult::Nothing => {
            tracing::debug!(%order_id, event_type, sequence = event.sequence, "nothing to tell")
        }
        NotifyResult::Late(count) => {
            tracing::warn!(%order_id, event_type, sequence = event.sequence, count, "told late: its gap had been passed over")
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

    /// The redeliveries asked for (message id, delay in seconds), and the receipt handles woken.
    #[derive(Default)]
    struct Redeliveries(Mutex<Vec<(String, u64)>>, Mutex<Vec<String>>);

    impl Redelivery for Redeliveries {
        async fn redeliver_after(
            &self,
            message: &SqsMessage,
            delay: std::time::Duration,
        ) -> Result<(), String> {
            let id = message.message_id.clone().unwrap_or_default();
            self.0.lock().unwrap().push((id, delay.as_secs()));
            Ok(())
        }

        async fn wake(&self, receipt_handle: &str) -> Result<(), String> {
            self.1.lock().unwrap().push(receipt_handle.to_owned());
            Ok(())
        }
    }

    fn app() -> App<InMemoryStore, Outbox, Redeliveries> {
        App {
            store: InMemoryStore::default(),
            sink: Outbox::default(),
            renderer: Renderer::new(),
            redelivery: Redeliveries::default(),
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
        .reserve_all_at("BER-1", chrono::Utc::now())
        .unwrap()
    }

    async fn run(app: &App<InMemoryStore, Outbox, Redeliveries>, name: &str) -> Vec<String> {
        let event = LambdaEvent::new(fixture(name), lambda_runtime::Context::default());
        oms_adapters::sqs::failed_message_ids(&handle(app, event).await.unwrap())
    }

    #[tokio::test]
    async fn events_out_of_order_wait_and_duplicates_send_nothing() {
        let app = app();
        app.store.insert_order(order());
        assert_eq!(
            run(&app, "reserved-before-placed").await,
            ["reserved-2"],
            "the later event waits"
        );
        assert_eq!(
            *app.redelivery.0.lock().unwrap(),
            [("reserved-2".to_owned(), 1)],
            "for a second, not the queue's whole visibility timeout"
        );
        assert_eq!(
            *app.redelivery.1.lock().unwrap(),
            ["AQEBreserved-2"],
            "and woken by its predecessor once that was sent"
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
        let app = app();
        app.store.insert_order(order());
        assert_eq!(run(&app, "batch-with-poison").await, ["poison-1"]);
        assert_eq!(app.sink.0.lock().unwrap().len(), 1);
        assert_eq!(
            *app.redelivery.0.lock().unwrap(),
            [("poison-1".to_owned(), 1)],
            "a poison message comes back in a second, to run out its receives soon"
        );
    }
}
