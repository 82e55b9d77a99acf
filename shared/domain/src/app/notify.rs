//! Telling customers: the consumer of every order event.
//!
//! **In order.** Every change of an order is an event whose sequence number is the order's
//! version, so an order's events number 1, 2, 3… without gaps. The notifier keeps a cursor per
//! order and handles an event only when it is the next one: a later event that arrives first
//! waits for its predecessor, which wakes it (below). Events of no interest to customers (picked,
//! packed) just move the cursor on. **Once.** An event below the cursor was handled: acknowledged, nothing sent. A
//! delivery claims the event on the cursor before it sends (one conditional write: of two
//! deliveries of the same event, one wins), records each channel it sent when more follow, and
//! moves the cursor on after the last; a delivery that takes over a crashed one's claim sends only
//! what had not gone out.
//!
//! **Soon.** An event that must wait for its predecessor is woken by it: the waiting delivery
//! is held away from the queue for a little while ([`retry_delay`]: a second, then two, four,
//! then every [`MAX_RETRY_DELAY_SECONDS`]) and leaves a wake token on the cursor; the delivery
//! that moves the cursor onto it takes the token off and makes it visible at once. Leaving the
//! token is conditional on the cursor not having moved, so a predecessor that finishes meanwhile
//! is seen and the event handled right away — no wake is missed; the short hold only matters
//! when a wake is lost (a crash between the two writes). So a message reaches the customer
//! within about a second of its step whatever order the queue hands the events over in, rather
//! than a poll interval later per event waiting in a chain. A customer-facing event costs one
//! read (cursor, order and preferences together), two writes and its messages; an event that
//! waits, one more write and two visibility changes.

use chrono::{DateTime, Utc};

use crate::events::{CloudEvent, OrderEventData};
use crate::notifications::{is_customer_facing, Preferences, RenderError, Renderer};
use crate::ports::{NotificationSink, NotificationStore, StoreError, TurnQueue};

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyResult {
    /// This many messages went out.
    Sent(usize),
    /// Not customer-facing, or nobody to tell: the cursor moved on.
    Nothing,
    /// Handled before: a duplicate delivery.
    AlreadyHandled,
    /// An event passed over in a gap, told late: this many messages went out.
    Late(usize),
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

/// The delivery on which an event that still waits for its predecessor passes it over, the gap
/// recorded: by then it has waited 1 + 2 + 4 + 5 × 40 = 207 s, three claim lifetimes and three
/// visibility timeouts — a predecessor that crashed was taken over long since, one still missing
/// was lost on the way or dead-lettered. A predecessor that arrives after all is still told,
/// once, late rather than never. (The notifier queue's `maxReceiveCount` lies above it: a test
/// reads both.)
pub const PASS_GAP_ON_DELIVERY: u32 = 44;

/// The longest an event waits for its turn between two deliveries.
pub const MAX_RETRY_DELAY_SECONDS: u64 = 5;

/// How long an event that failed with `error` on its `receive_count`-th delivery should stay
/// away before the queue hands it over again; `None` for the queue's own visibility timeout
/// (a store that is down, a broken template: no reason to hurry).
pub fn retry_delay(error: &NotifyError, receive_count: u32) -> Option<std::time::Duration> {
    match error {
        NotifyError::OutOfOrder { .. } | NotifyError::InProgress => {
            let doubled = 1u64 << receive_count.clamp(1, 16).saturating_sub(1);
            Some(std::time::Duration::from_secs(
                doubled.min(MAX_RETRY_DELAY_SECONDS),
            ))
        }
        _ => None,
    }
}

/// How often a delivery that found its turn come while it was leaving its wake token tries
/// again at once before it waits for a wake or its hold.
const TURN_ATTEMPTS: u32 = 3;

/// Handles one order event: notifies the customer if it is their business, in order, once. An
/// event that must wait is held on `queue` and left to be woken; the answer is then its
/// retryable error.
#[allow(clippy::too_many_arguments)]
pub async fn notify<S: NotificationStore, K: NotificationSink, Q: TurnQueue>(
    store: &S,
    sink: &K,
    renderer: &Renderer,
    event: &CloudEvent<OrderEventData>,
    delivery: u32,
    now: DateTime<Utc>,
    queue: &Q,
) -> Result<NotifyResult, NotifyError> {
    let mut attempt = 1;
    loop {
        let error = match notify_in_turn(store, sink, renderer, event, delivery, now, queue).await {
            Err(error) => error,
            answer => return answer,
        };
        let Some(delay) = retry_delay(&error, delivery) else {
            return Err(error);
        };
        let token = queue.hold(delay).await;
        let (NotifyError::OutOfOrder { expected, got }, Some(token)) = (&error, token) else {
            return Err(error);
        };
        match store
            .wait_for_turn(&event.data.order_id, *expected, *got, &token)
            .await
        {
            // Its predecessor moves the cursor on and wakes it.
            Ok(()) => return Err(error),
            // The cursor moved meanwhile: its turn may have come.
            Err(StoreError::ConditionFailed) if attempt < TURN_ATTEMPTS => attempt += 1,
            // Without a token it still comes back when its hold runs out.
            Err(StoreError::ConditionFailed) => return Err(error),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn notify_in_turn<S: NotificationStore, K: NotificationSink, Q: TurnQueue>(
    store: &S,
    sink: &K,
    renderer: &Renderer,
    event: &CloudEvent<OrderEventData>,
    delivery: u32,
    now: DateTime<Utc>,
    queue: &Q,
) -> Result<NotifyResult, NotifyError> {
    let order_id = &event.data.order_id;
    let facing = is_customer_facing(event.event_type);
    let (mut cursor, order, preferences) = if facing {
        store
            .notification_context(order_id, &event.data.customer_id)
            .await?
    } else {
        (store.cursor(order_id).await?, None, None)
    };
    if event.sequence < cursor.next {
        if !cursor.skipped.contains(&event.sequence) {
            return Ok(NotifyResult::AlreadyHandled);
        }
        return tell_late(store, sink, renderer, event, order, preferences).await;
    }
    if event.sequence > cursor.next {
        // Never past a predecessor that a live delivery is sending right now.
        if delivery < PASS_GAP_ON_DELIVERY || cursor.claimed_by_another(now) {
            return Err(NotifyError::OutOfOrder {
                expected: cursor.next,
                got: event.sequence,
            });
        }
        match store
            .skip_to(order_id, cursor.next, event.sequence, now)
            .await
        {
            Ok(()) => {}
            // The predecessor went through or was claimed meanwhile: wait for this one's turn.
            Err(StoreError::ConditionFailed) => {
                return Err(NotifyError::OutOfOrder {
                    expected: cursor.next,
                    got: event.sequence,
                })
            }
            Err(e) => return Err(e.into()),
        }
        cursor = crate::ports::NotificationCursor {
            next: event.sequence,
            skipped: (cursor.next..event.sequence)
                .chain(cursor.skipped)
                .collect(),
            ..Default::default()
        };
    }
    let mut sent = 0;
    if facing {
        if cursor.claimed_by_another(now) {
            return Err(NotifyError::InProgress);
        }
        let order = order.ok_or(NotifyError::OrderNotFound)?;
        let pending: Vec<_> = renderer
            .render(event, &order, &preferences.unwrap_or_default())?
            .into_iter()
            .filter(|n| !cursor.sent.contains(&n.channel))
            .collect();
        if !pending.is_empty() {
            match store.claim(order_id, cursor.next, now).await {
                Ok(()) => {}
                // Another delivery claimed or finished the event since it was read.
                Err(StoreError::ConditionFailed) => return Err(NotifyError::InProgress),
                Err(e) => return Err(e.into()),
            }
        }
        for (i, notification) in pending.iter().enumerate() {
            sink.send(notification).await?;
            sent += 1;
            // The last one is recorded by moving the cursor on.
            if i + 1 < pending.len() {
                store
                    .mark_sent(order_id, cursor.next, notification.channel)
                    .await?;
            }
        }
    }
    match store.advance(order_id, cursor.next).await {
        // The next event waits: it is woken now rather than when its hold runs out.
        Ok(Some(token)) => queue.wake(&token).await,
        Ok(None) => {}
        // Another delivery of the same event finished first (it sent nothing this one did
        // not), or a later event passed this one over meanwhile: this one is told now, so it
        // leaves the record of skipped events and a repeat of it is a duplicate.
        Err(StoreError::ConditionFailed) => match store.take_skipped(order_id, cursor.next).await {
            Ok(()) | Err(StoreError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    Ok(if sent > 0 {
        NotifyResult::Sent(sent)
    } else {
        NotifyResult::Nothing
    })
}

/// An event passed over in a gap that arrived after all: one delivery takes it off the record
/// and tells it, late rather than never.
async fn tell_late<S: NotificationStore, K: NotificationSink>(
    store: &S,
    sink: &K,
    renderer: &Renderer,
    event: &CloudEvent<OrderEventData>,
    order: Option<crate::order::Order>,
    preferences: Option<Preferences>,
) -> Result<NotifyResult, NotifyError> {
    let order_id = &event.data.order_id;
    // Rendered before the event is taken off the record, so a template or an order that fails
    // leaves it there for the retries (and, after them, the dead-letter queue).
    let notifications = if is_customer_facing(event.event_type) {
        let order = order.ok_or(NotifyError::OrderNotFound)?;
        renderer.render(event, &order, &preferences.unwrap_or_default())?
    } else {
        Vec::new()
    };
    // Taken once: of two deliveries one tells it.
    match store.take_skipped(order_id, event.sequence).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Ok(NotifyResult::AlreadyHandled),
        Err(e) => return Err(e.into()),
    }
    if notifications.is_empty() {
        return Ok(NotifyResult::Nothing);
    }
    for notification in &notifications {
        if let Err(failed) = sink.send(notification).await {
            // Back on the record, so that the event's next delivery tells it: a channel that
            // went out already goes again — late and twice rather than never.
            store.restore_skipped(order_id, event.sequence).await?;
            return Err(failed.into());
        }
    }
    Ok(NotifyResult::Late(notifications.len()))
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

    /// A queue that cannot hold or wake a delivery: every wait is the queue's own timeout.
    struct Unheld;

    impl TurnQueue for Unheld {
        async fn hold(&self, _delay: std::time::Duration) -> Option<String> {
            None
        }
        async fn wake(&self, _token: &str) {}
    }

    /// [`super::notify`] for tests that are not about waiting.
    async fn notify<S: NotificationStore, K: NotificationSink>(
        store: &S,
        sink: &K,
        renderer: &Renderer,
        event: &CloudEvent<OrderEventData>,
        delivery: u32,
        now: DateTime<Utc>,
    ) -> Result<NotifyResult, NotifyError> {
        super::notify(store, sink, renderer, event, delivery, now, &Unheld).await
    }

    /// A queue that records its holds and wakes; its delivery's token is `token`, and `on_hold`
    /// runs when it is held (a predecessor finishing at that very moment).
    struct Recorded<'a> {
        token: &'static str,
        holds: Mutex<Vec<u64>>,
        woken: Mutex<Vec<String>>,
        on_hold: Option<(&'a InMemoryStore, &'a crate::ids::OrderId, u64)>,
    }

    impl<'a> Recorded<'a> {
        fn new(token: &'static str) -> Self {
            Self {
                token,
                holds: Mutex::default(),
                woken: Mutex::default(),
                on_hold: None,
            }
        }
    }

    impl TurnQueue for Recorded<'_> {
        async fn hold(&self, delay: std::time::Duration) -> Option<String> {
            self.holds.lock().unwrap().push(delay.as_secs());
            if let Some((store, order, from)) = self.on_hold {
                if self.holds.lock().unwrap().len() == 1 {
                    store.advance(order, from).await.unwrap();
                }
            }
            Some(self.token.to_owned())
        }
        async fn wake(&self, token: &str) {
            self.woken.lock().unwrap().push(token.to_owned());
        }
    }

    #[tokio::test]
    async fn an_event_that_waits_is_woken_by_its_predecessor() {
        let (store, order, first, second) = placed_and_reserved();
        let (outbox, renderer) = (Outbox::default(), Renderer::new());
        let waiting = Recorded::new("receipt-of-reserved");
        let early =
            super::notify(&store, &outbox, &renderer, &second, 1, Utc::now(), &waiting).await;
        assert!(
            matches!(
                early,
                Err(NotifyError::OutOfOrder {
                    expected: 1,
                    got: 2
                })
            ),
            "{early:?}"
        );
        assert_eq!(*waiting.holds.lock().unwrap(), [1], "held a second at most");
        assert_eq!(
            store.cursor(&order.id).await.unwrap().waiting,
            [(2, "receipt-of-reserved".to_owned())].into(),
            "its token is left on the cursor"
        );

        let predecessor = Recorded::new("receipt-of-placed");
        let sent = super::notify(
            &store,
            &outbox,
            &renderer,
            &first,
            1,
            Utc::now(),
            &predecessor,
        )
        .await;
        assert_eq!(sent.unwrap(), NotifyResult::Sent(1));
        assert_eq!(
            *predecessor.woken.lock().unwrap(),
            ["receipt-of-reserved"],
            "the waiting event is woken"
        );
        assert!(predecessor.holds.lock().unwrap().is_empty());
        let cursor = store.cursor(&order.id).await.unwrap();
        assert_eq!(
            (cursor.next, cursor.waiting.len()),
            (2, 0),
            "the token is taken off"
        );

        let woken =
            super::notify(&store, &outbox, &renderer, &second, 2, Utc::now(), &waiting).await;
        assert_eq!(woken.unwrap(), NotifyResult::Sent(1));
        assert!(
            waiting.woken.lock().unwrap().is_empty(),
            "nothing waits for the last event"
        );
    }

    /// The predecessor finishes between the waiting delivery's read of the cursor and its token:
    /// the token is refused, and the event is handled at once instead of waiting for a wake
    /// that will never come.
    #[tokio::test]
    async fn an_event_whose_turn_comes_while_it_leaves_its_token_is_handled_at_once() {
        let (store, order, _first, second) = placed_and_reserved();
        let (outbox, renderer) = (Outbox::default(), Renderer::new());
        let mut racing = Recorded::new("receipt-of-reserved");
        racing.on_hold = Some((&store, &order.id, 1));
        let answer =
            super::notify(&store, &outbox, &renderer, &second, 1, Utc::now(), &racing).await;
        assert_eq!(answer.unwrap(), NotifyResult::Sent(1));
        assert_eq!(*racing.holds.lock().unwrap(), [1]);
        let cursor = store.cursor(&order.id).await.unwrap();
        assert_eq!((cursor.next, cursor.waiting.len()), (3, 0));
    }

    #[test]
    fn an_early_event_comes_back_soon_and_then_every_few_seconds() {
        let early = NotifyError::OutOfOrder {
            expected: 3,
            got: 4,
        };
        let delays: Vec<u64> = (1..=8)
            .map(|n| retry_delay(&early, n).unwrap().as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 5, 5, 5, 5, 5]);
        assert_eq!(
            retry_delay(&NotifyError::InProgress, 0).unwrap().as_secs(),
            1
        );
        assert_eq!(retry_delay(&NotifyError::OrderNotFound, 1), None);
    }
    use crate::memory::InMemoryStore;
    use crate::notifications::{Channel, Notification};
    use crate::order::tests::{placed, product};
    use std::sync::Mutex;

    /// The messages sent; a channel named in `failing` refuses its next message.
    #[derive(Default)]
    struct Outbox(Mutex<Vec<Notification>>, Mutex<Option<Channel>>);

    impl NotificationSink for Outbox {
        async fn send(&self, notification: &Notification) -> Result<(), StoreError> {
            if self
                .1
                .lock()
                .unwrap()
                .take_if(|c| *c == notification.channel)
                .is_some()
            {
                return Err(StoreError::Retryable("the topic is unavailable".into()));
            }
            self.0.lock().unwrap().push(notification.clone());
            Ok(())
        }
    }

    fn channels(outbox: &Outbox) -> Vec<Channel> {
        outbox.0.lock().unwrap().iter().map(|n| n.channel).collect()
    }

    /// A placed order whose customer wants e-mail and webhooks, and its first event.
    async fn two_channel_order() -> (InMemoryStore, CloudEvent<OrderEventData>) {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(
            serde_json::json!([{"sku": "A", "quantity": 1}]),
            &store.catalog(),
        );
        store.insert_order(order.clone());
        let both = Preferences {
            email: true,
            sms: false,
            webhook: true,
        };
        store
            .save_preferences(&order.customer_id, &both, Utc::now())
            .await
            .unwrap();
        (store, order_event(None, Some(&order)).unwrap())
    }

    #[tokio::test]
    async fn a_delivery_that_failed_halfway_is_finished_later_without_sending_twice() {
        let (store, event) = two_channel_order().await;
        let (outbox, renderer) = (Outbox::default(), Renderer::new());
        *outbox.1.lock().unwrap() = Some(Channel::Webhook);
        let now = Utc::now();

        let failed = notify(&store, &outbox, &renderer, &event, 1, now).await;
        assert!(matches!(failed, Err(NotifyError::Store(_))), "{failed:?}");
        assert_eq!(channels(&outbox), [Channel::Email]);
        let order = &event.data.order_id;
        let cursor = store.cursor(order).await.unwrap();
        assert_eq!(
            (cursor.next, cursor.sent.as_slice()),
            (1, &[Channel::Email][..])
        );

        // The claim is live: a redelivery now waits for it rather than sending beside it.
        let early = notify(&store, &outbox, &renderer, &event, 1, now).await;
        assert!(matches!(early, Err(NotifyError::InProgress)), "{early:?}");

        // Once the claim has run out, the next delivery sends only what had not gone out.
        let later = now + chrono::Duration::seconds(crate::ports::NOTIFICATION_CLAIM_SECONDS + 1);
        let finished = notify(&store, &outbox, &renderer, &event, 1, later)
            .await
            .unwrap();
        assert_eq!(finished, NotifyResult::Sent(1));
        assert_eq!(channels(&outbox), [Channel::Email, Channel::Webhook]);
        assert_eq!(
            store.cursor(order).await.unwrap(),
            crate::ports::NotificationCursor {
                next: 2,
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn of_two_deliveries_of_one_event_only_the_claimant_sends() {
        let (store, event) = two_channel_order().await;
        let (outbox, renderer) = (Outbox::default(), Renderer::new());
        let now = Utc::now();
        // Another delivery read the cursor at the same moment and claimed the event first.
        store.claim(&event.data.order_id, 1, now).await.unwrap();
        let second = notify(&store, &outbox, &renderer, &event, 1, now).await;
        assert!(matches!(second, Err(NotifyError::InProgress)), "{second:?}");
        assert!(channels(&outbox).is_empty());
        assert!(store.claim(&event.data.order_id, 1, now).await.is_err());
    }

    /// A store holding a reserved order, and the order's first two events (placed, reserved).
    fn placed_and_reserved() -> (
        InMemoryStore,
        crate::order::Order,
        CloudEvent<OrderEventData>,
        CloudEvent<OrderEventData>,
    ) {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(
            serde_json::json!([{"sku": "A", "quantity": 1}]),
            &store.catalog(),
        );
        let reserved = order.reserve_all_at("BER-1", Utc::now()).unwrap();
        store.insert_order(reserved.clone());
        let first = order_event(None, Some(&order)).unwrap();
        let second = order_event(Some(&order), Some(&reserved)).unwrap();
        (store, order, first, second)
    }

    /// An event whose predecessor never comes (dead-lettered, lost) passes it over on its
    /// `PASS_GAP_ON_DELIVERY`-th delivery instead of stranding every later message; the predecessor, should it
    /// come after all, is told once, late.
    #[tokio::test]
    async fn a_gap_heals_and_a_late_predecessor_is_told_once() {
        let (store, order, first, second) = placed_and_reserved();
        let (outbox, renderer) = (Outbox::default(), Renderer::new());

        for delivery in 1..PASS_GAP_ON_DELIVERY {
            let early = notify(&store, &outbox, &renderer, &second, delivery, Utc::now()).await;
            assert!(
                matches!(early, Err(NotifyError::OutOfOrder { .. })),
                "delivery {delivery}"
            );
        }
        assert_eq!(
            notify(
                &store,
                &outbox,
                &renderer,
                &second,
                PASS_GAP_ON_DELIVERY,
                Utc::now()
            )
            .await
            .unwrap(),
            NotifyResult::Sent(1),
            "the gap is passed over"
        );
        let cursor = store.cursor(&order.id).await.unwrap();
        assert_eq!((cursor.next, cursor.skipped.clone()), (3, vec![1]));

        assert_eq!(
            notify(&store, &outbox, &renderer, &first, 1, Utc::now())
                .await
                .unwrap(),
            NotifyResult::Late(1),
            "the late predecessor is told"
        );
        assert_eq!(
            notify(&store, &outbox, &renderer, &first, 2, Utc::now())
                .await
                .unwrap(),
            NotifyResult::AlreadyHandled,
            "once"
        );
        let sent: Vec<_> = outbox
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.event_type.as_str())
            .collect();
        assert_eq!(sent, ["oms.order.reserved", "oms.order.placed"]);
        assert!(store.cursor(&order.id).await.unwrap().skipped.is_empty());
    }

    /// A late telling whose send fails is put back on the record, and told on the next delivery.
    #[tokio::test]
    async fn a_late_predecessor_whose_send_fails_is_told_on_its_next_delivery() {
        let (store, order, first, second) = placed_and_reserved();
        let (outbox, renderer) = (Outbox::default(), Renderer::new());
        let passed = notify(
            &store,
            &outbox,
            &renderer,
            &second,
            PASS_GAP_ON_DELIVERY,
            Utc::now(),
        )
        .await;
        assert_eq!(passed.unwrap(), NotifyResult::Sent(1));
        *outbox.1.lock().unwrap() = Some(Channel::Email);
        let failed = notify(&store, &outbox, &renderer, &first, 1, Utc::now()).await;
        assert!(matches!(failed, Err(NotifyError::Store(_))), "{failed:?}");
        assert_eq!(
            store.cursor(&order.id).await.unwrap().skipped,
            [1],
            "back on the record"
        );
        assert_eq!(
            notify(&store, &outbox, &renderer, &first, 2, Utc::now())
                .await
                .unwrap(),
            NotifyResult::Late(1)
        );
        assert!(store.cursor(&order.id).await.unwrap().skipped.is_empty());
        assert_eq!(
            channels(&outbox),
            [Channel::Email, Channel::Email],
            "reserved, then placed late"
        );
    }

    #[tokio::test]
    async fn in_order_once_and_only_to_wanted_channels() {
        let (store, order, first, second) = placed_and_reserved();
        let (outbox, renderer) = (Outbox::default(), Renderer::new());

        let early = notify(&store, &outbox, &renderer, &second, 1, Utc::now()).await;
        assert!(matches!(
            early,
            Err(NotifyError::OutOfOrder {
                expected: 1,
                got: 2
            })
        ));
        assert_eq!(
            notify(&store, &outbox, &renderer, &first, 1, Utc::now())
                .await
                .unwrap(),
            NotifyResult::Sent(1)
        );
        assert_eq!(
            notify(&store, &outbox, &renderer, &first, 1, Utc::now())
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
            notify(&store, &outbox, &renderer, &second, 1, Utc::now())
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
