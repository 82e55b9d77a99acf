//! Telling customers: the consumer of every order event.
//!
//! **In order.** Every change of an order is an event whose sequence number is the order's
//! version, so an order's events number 1, 2, 3… without gaps. The notifier keeps a cursor per
//! order and handles an event only when it is the next one: a later event that arrives first is
//! refused as retryable and comes back after the queue's visibility timeout, by when its
//! predecessor has gone out. Events of no interest to customers (picked, packed) just move the
//! cursor on. **Once.** An event below the cursor was handled: acknowledged, nothing sent. Within
//! an event, each channel is claimed with a conditional write before it is sent and marked sent
//! after, so a retry after a partial failure sends only what had not gone out.

use chrono::{DateTime, Utc};

use crate::events::{CloudEvent, OrderEventData};
use crate::notifications::{is_customer_facing, Preferences, RenderError, Renderer};
use crate::ports::{Claim, NotificationSink, NotificationStore, OrderStore, StoreError};

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyResult {
    /// This many messages went out.
    Sent(usize),
    /// Not customer-facing, or nobody to tell: the cursor moved on.
    Nothing,
    /// Handled before: a duplicate delivery.
    AlreadyHandled,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("event {got} of the order arrived before event {expected}; it waits")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("another delivery of this event is sending it")]
    InProgress,
    #[error("the order of this event does not exist")]
    OrderNotFound,
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NotifyError {
    /// Whether the message should come back later (all but a missing order and a broken
    /// template, which go to the dead-letter queue after the queue's retries anyway).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::OutOfOrder { .. } | Self::InProgress => true,
            Self::Store(e) => e.is_retryable(),
            Self::OrderNotFound | Self::Render(_) => false,
        }
    }
}

/// Handles one order event: notifies the customer if it is their business, in order, once.
pub async fn notify<S: OrderStore + NotificationStore, K: NotificationSink>(
    store: &S,
    sink: &K,
    renderer: &Renderer,
    event: &CloudEvent<OrderEventData>,
    now: DateTime<Utc>,
) -> Result<NotifyResult, NotifyError> {
    let order_id = &event.data.order_id;
    let expected = store.next_sequence(order_id).await?;
    if event.sequence < expected {
        return Ok(NotifyResult::AlreadyHandled);
    }
    if event.sequence > expected {
        return Err(NotifyError::OutOfOrder {
            expected,
            got: event.sequence,
        });
    }
    let mut sent = 0;
    if is_customer_facing(event.event_type) {
        let order = store
            .get(order_id)
            .await?
            .ok_or(NotifyError::OrderNotFound)?;
        let preferences = store
            .preferences(&order.customer_id)
            .await?
            .unwrap_or_default();
        for notification in renderer.render(event, &order, &preferences)? {
            match store.claim(&event.id, notification.channel, now).await? {
                Claim::AlreadySent => continue,
                Claim::InProgress => return Err(NotifyError::InProgress),
                Claim::Claimed => {
                    sink.send(&notification).await?;
                    store
                        .mark_sent(&event.id, notification.channel, now)
                        .await?;
                    sent += 1;
                }
            }
        }
    }
    match store.advance_sequence(order_id, expected).await {
        // Another delivery of the same event finished first: it sent nothing this one did not.
        Ok(()) | Err(StoreError::ConditionFailed) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(if sent > 0 {
        NotifyResult::Sent(sent)
    } else {
        NotifyResult::Nothing
    })
}

/// A customer's channel choices, or the defaults.
pub async fn preferences<S: NotificationStore>(
    store: &S,
    customer: &crate::ids::CustomerId,
) -> Result<Preferences, StoreError> {
    Ok(store.preferences(customer).await?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::order_event;
    use crate::memory::InMemoryStore;
    use crate::notifications::{Channel, Notification};
    use crate::order::tests::{placed, product};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Outbox(Mutex<Vec<Notification>>);

    impl NotificationSink for Outbox {
        async fn send(&self, notification: &Notification) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(notification.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn in_order_once_and_only_to_wanted_channels() {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(
            serde_json::json!([{"sku": "A", "quantity": 1}]),
            &store.catalog(),
        );
        let reserved = order.reserve(Utc::now()).unwrap();
        store.insert_order(reserved.clone());
        let first = order_event(None, Some(&order)).unwrap();
        let second = order_event(Some(&order), Some(&reserved)).unwrap();
        let (outbox, renderer) = (Outbox::default(), Renderer::new());

        let early = notify(&store, &outbox, &renderer, &second, Utc::now()).await;
        assert!(matches!(
            early,
            Err(NotifyError::OutOfOrder {
                expected: 1,
                got: 2
            })
        ));
        assert_eq!(
            notify(&store, &outbox, &renderer, &first, Utc::now())
                .await
                .unwrap(),
            NotifyResult::Sent(1)
        );
        assert_eq!(
            notify(&store, &outbox, &renderer, &first, Utc::now())
                .await
                .unwrap(),
            NotifyResult::AlreadyHandled
        );

        // Opting out of e-mail stops the next one.
        let none = Preferences {
            email: false,
            sms: false,
            webhook: true,
        };
        store
            .save_preferences(&order.customer_id, &none, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            notify(&store, &outbox, &renderer, &second, Utc::now())
                .await
                .unwrap(),
            NotifyResult::Sent(1)
        );
        let sent: Vec<_> = outbox
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|n| (n.event_type.as_str(), n.channel))
            .collect();
        assert_eq!(
            sent,
            [
                ("oms.order.placed", Channel::Email),
                ("oms.order.reserved", Channel::Webhook)
            ]
        );
    }
}
