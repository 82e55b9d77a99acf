//! What every `NotificationStore` must do: preferences, and the cursor's claims, tokens and gaps.

use super::*;

/// Preferences are upserts; the notification context reads the cursor, the order and the
/// preferences together. The cursor starts at 1; a claim holds while it is live (of two
/// deliveries one wins) and may be taken over after `NOTIFICATION_CLAIM_SECONDS`, keeping the
/// channels sent; `mark_sent` and `advance` hold only at the cursor; `advance` drops the claim
/// and its channels.
pub async fn notification_store<S: OrderStore + NotificationStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "notified");
    let item = product(&sku(prefix, "NT"), 5, at);
    let order = place(&ada, &[(&item, 1)], at);
    create(store, &order).await;
    let ghost = place(&customer(prefix, "ghost"), &[(&item, 1)], at);

    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor::default())
    );
    assert_eq!(store.preferences(&ada).await, Ok(None));
    assert_eq!(
        store.notification_context(&order.id, &ada).await,
        Ok((NotificationCursor::default(), Some(order.clone()), None))
    );
    assert_eq!(
        store
            .notification_context(&ghost.id, &ghost.customer_id)
            .await,
        Ok((NotificationCursor::default(), None, None)),
        "nothing stored"
    );
    let quiet = Preferences {
        email: true,
        sms: false,
        webhook: false,
    };
    let loud = Preferences {
        email: true,
        sms: true,
        webhook: true,
    };
    assert_eq!(store.save_preferences(&ada, &quiet, at).await, Ok(()));
    assert_eq!(store.preferences(&ada).await, Ok(Some(quiet)));
    assert_eq!(store.save_preferences(&ada, &loud, at).await, Ok(()));
    assert_eq!(store.preferences(&ada).await, Ok(Some(loud)), "overwritten");
    assert_eq!(
        store.notification_context(&order.id, &ada).await,
        Ok((
            NotificationCursor::default(),
            Some(order.clone()),
            Some(loud)
        ))
    );

    // Before any claim.
    assert_eq!(
        store.mark_sent(&order.id, 1, Channel::Email).await,
        Err(StoreError::ConditionFailed),
        "marking a send of an event nobody claimed"
    );
    assert_eq!(
        store.claim(&order.id, 2, at).await,
        Err(StoreError::ConditionFailed),
        "claiming event 2 while the cursor is at 1"
    );

    // One claim wins.
    assert_eq!(store.claim(&order.id, 1, at).await, Ok(()));
    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor {
            next: 1,
            claimed_at: Some(at),
            sent: vec![],
            skipped: Vec::new(),
            ..NotificationCursor::default()
        })
    );
    let live = at + Duration::milliseconds(NOTIFICATION_CLAIM_SECONDS * 1000 - 1);
    for when in [at, at + seconds(1), live] {
        assert_eq!(
            store.claim(&order.id, 1, when).await,
            Err(StoreError::ConditionFailed),
            "claiming while another claim is live ({} ms in)",
            (when - at).num_milliseconds()
        );
    }
    assert_eq!(
        store.advance(&order.id, 2).await,
        Err(StoreError::ConditionFailed),
        "advancing from where the cursor is not"
    );
    assert_eq!(
        store.mark_sent(&order.id, 2, Channel::Webhook).await,
        Err(StoreError::ConditionFailed),
        "marking a send of an event that is not the cursor's"
    );
    assert_eq!(store.mark_sent(&order.id, 1, Channel::Email).await, Ok(()));
    assert_eq!(
        store.cursor(&order.id).await.map(|c| c.sent),
        Ok(vec![Channel::Email])
    );

    // Taken over once it ran out; what was sent stays recorded.
    let later = at + Duration::milliseconds(NOTIFICATION_CLAIM_SECONDS * 1000 + 1);
    assert_eq!(store.claim(&order.id, 1, later).await, Ok(()), "a takeover");
    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor {
            next: 1,
            claimed_at: Some(later),
            sent: vec![Channel::Email],
            skipped: Vec::new(),
            ..NotificationCursor::default()
        })
    );
    assert_eq!(store.mark_sent(&order.id, 1, Channel::Sms).await, Ok(()));
    assert_eq!(
        store.notification_context(&order.id, &ada).await,
        Ok((
            NotificationCursor {
                next: 1,
                claimed_at: Some(later),
                sent: vec![Channel::Email, Channel::Sms],
                skipped: Vec::new(),
                ..NotificationCursor::default()
            },
            Some(order.clone()),
            Some(loud)
        ))
    );

    // Moving on drops the claim and its sends.
    assert_eq!(store.advance(&order.id, 1).await, Ok(None));
    assert_eq!(
        store.advance(&order.id, 1).await,
        Err(StoreError::ConditionFailed),
        "advancing twice from the same event"
    );
    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor {
            next: 2,
            ..NotificationCursor::default()
        })
    );
    assert_eq!(
        store.claim(&order.id, 1, later).await,
        Err(StoreError::ConditionFailed),
        "claiming an event already handled"
    );
    assert_eq!(
        store.claim(&order.id, 2, later).await,
        Ok(()),
        "the next event is free at once"
    );
    assert_eq!(store.advance(&order.id, 2).await, Ok(None));
    assert_eq!(
        store.advance(&order.id, 3).await,
        Ok(None),
        "an event without a claim just moves on"
    );
    assert_eq!(store.cursor(&order.id).await.map(|c| c.next), Ok(4));

    // A fresh order's cursor moves on from 1 without a claim.
    assert_eq!(store.advance(&ghost.id, 1).await, Ok(None));
    assert_eq!(store.cursor(&ghost.id).await.map(|c| c.next), Ok(2));

    // Events waiting for their turn leave wake tokens; the event that moves the cursor onto one
    // takes it off, and the others stay.
    assert_eq!(
        store.wait_for_turn(&order.id, 3, 5, "token-5").await,
        Err(StoreError::ConditionFailed),
        "a token while the cursor is not where the event saw it"
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 5, "stale-5").await,
        Ok(())
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 5, "token-5").await,
        Ok(()),
        "replaced"
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 6, "token-6").await,
        Ok(())
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 9, "token-9").await,
        Ok(())
    );
    assert_eq!(
        store.cursor(&order.id).await.map(|c| c.waiting),
        Ok([
            (5, "token-5".into()),
            (6, "token-6".into()),
            (9, "token-9".into())
        ]
        .into())
    );
    let fresh = place(&customer(prefix, "fresh"), &[(&item, 1)], at);
    assert_eq!(
        store.wait_for_turn(&fresh.id, 1, 2, "fresh-2").await,
        Ok(()),
        "on an order whose cursor does not exist yet"
    );
    assert_eq!(
        store.cursor(&fresh.id).await.map(|c| (c.next, c.waiting)),
        Ok((1, [(2, "fresh-2".into())].into()))
    );
    assert_eq!(
        store.advance(&fresh.id, 1).await,
        Ok(Some("fresh-2".into()))
    );

    // A gap passed over: from 4 to 7, with 4, 5 and 6 recorded, the claim dropped, and the
    // tokens up to 7 gone (nobody wakes them now); never past a live claim.
    assert_eq!(store.claim(&order.id, 4, later).await, Ok(()));
    assert_eq!(
        store.skip_to(&order.id, 4, 7, later + seconds(1)).await,
        Err(StoreError::ConditionFailed),
        "skipping an event a live delivery is sending"
    );
    let ran_out = later + Duration::milliseconds(NOTIFICATION_CLAIM_SECONDS * 1000);
    assert_eq!(
        store.skip_to(&order.id, 3, 7, ran_out).await,
        Err(StoreError::ConditionFailed),
        "skipping from where the cursor is not"
    );
    assert_eq!(store.skip_to(&order.id, 4, 7, ran_out).await, Ok(()));
    let skipped = store.cursor(&order.id).await.unwrap();
    assert_eq!(
        (skipped.next, skipped.claimed_at, skipped.skipped.clone()),
        (7, None, vec![4, 5, 6])
    );
    assert_eq!(skipped.waiting, [(9, "token-9".into())].into());
    assert_eq!(
        store.wait_for_turn(&order.id, 7, 8, "token-8").await,
        Ok(())
    );
    assert_eq!(
        store.advance(&order.id, 7).await,
        Ok(Some("token-8".into())),
        "the waiting successor's token"
    );
    assert_eq!(
        store
            .cursor(&order.id)
            .await
            .map(|c| (c.skipped, c.waiting)),
        Ok((vec![4, 5, 6], [(9, "token-9".into())].into())),
        "moving on keeps the gap recorded and the later tokens"
    );
    assert_eq!(store.take_skipped(&order.id, 5).await, Ok(()));
    assert_eq!(
        store.take_skipped(&order.id, 5).await,
        Err(StoreError::ConditionFailed),
        "a late event is taken once"
    );
    assert_eq!(
        store.take_skipped(&order.id, 8).await,
        Err(StoreError::ConditionFailed),
        "an event never skipped"
    );
    // A late telling that failed puts its event back, once.
    assert_eq!(store.restore_skipped(&order.id, 5).await, Ok(()));
    assert_eq!(
        store.restore_skipped(&order.id, 5).await,
        Ok(()),
        "recorded already"
    );
    assert_eq!(
        store.cursor(&order.id).await.map(|c| c.skipped),
        Ok(vec![4, 6, 5])
    );
    assert_eq!(store.take_skipped(&order.id, 5).await, Ok(()));
    assert_eq!(
        store.cursor(&order.id).await.map(|c| (c.next, c.skipped)),
        Ok((8, vec![4, 6]))
    );
}

/// A claim is live for less than `NOTIFICATION_CLAIM_SECONDS` (as
/// [`NotificationCursor::claimed_by_another`] says): exactly that long after it, another delivery
/// may take it over.
pub async fn claim_runs_out_after_exactly_the_claim_seconds<S: NotificationStore>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let order = OrderId::generate(at);
    assert_eq!(store.claim(&order, 1, at).await, Ok(()));
    let expiry = at + seconds(NOTIFICATION_CLAIM_SECONDS);
    let cursor = store.cursor(&order).await.expect("reading the cursor");
    assert!(
        !cursor.claimed_by_another(expiry),
        "the domain says the claim has run out"
    );
    assert_eq!(
        store.claim(&order, 1, expiry).await,
        Ok(()),
        "a takeover exactly {NOTIFICATION_CLAIM_SECONDS} s after the claim"
    );
}
