//! What every `OrderStore` must do: create once, save on condition, and its listings.

use super::*;

/// `create` writes the order and its idempotency record together or neither: a used (customer,
/// key) is `KeyAlreadyUsed` and writes nothing; keys are per customer; an existing order id is
/// `ConditionFailed` and leaves the key unused. `save` replaces the order only at the expected
/// version: stale, ahead or absent is `ConditionFailed` and changes nothing.
pub async fn order_store<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let (ada, bob) = (customer(prefix, "ada"), customer(prefix, "bob"));
    let item = product(&sku(prefix, "OS"), 10, at);
    let k1 = key(prefix, "k1");

    let first = place(&ada, &[(&item, 1)], at);
    assert_eq!(stored(store, &first.id).await, None, "an unknown order");
    assert_eq!(
        store.idempotency_record(&ada, &k1).await,
        Ok(None),
        "an unused key"
    );
    assert_eq!(
        store.create(&first, &record(&first, &k1)).await,
        Ok(CreateOutcome::Created)
    );
    assert_eq!(
        stored(store, &first.id).await.as_ref(),
        Some(&first),
        "the created order reads back as written"
    );
    assert_eq!(
        store.idempotency_record(&ada, &k1).await,
        Ok(Some(record(&first, &k1))),
        "the idempotency record reads back as written"
    );

    // The same key again, for another order: nothing written.
    let second = place(&ada, &[(&item, 2)], at + seconds(1));
    assert_eq!(
        store.create(&second, &record(&second, &k1)).await,
        Ok(CreateOutcome::KeyAlreadyUsed),
        "a used key"
    );
    assert_eq!(
        stored(store, &second.id).await,
        None,
        "the order of a used key is not written"
    );
    assert_eq!(
        store.idempotency_record(&ada, &k1).await,
        Ok(Some(record(&first, &k1))),
        "a used key keeps its first record"
    );

    // Keys are per customer.
    let bobs = place(&bob, &[(&item, 1)], at + seconds(2));
    assert_eq!(
        store.create(&bobs, &record(&bobs, &k1)).await,
        Ok(CreateOutcome::Created),
        "another customer may use the same key"
    );

    // An order id that exists, under a fresh key: refused, the key stays unused.
    let k2 = key(prefix, "k2");
    assert_eq!(
        store.create(&first, &record(&first, &k2)).await,
        Err(StoreError::ConditionFailed),
        "creating an order id that exists"
    );
    assert_eq!(
        store.idempotency_record(&ada, &k2).await,
        Ok(None),
        "a refused create writes no idempotency record"
    );
    // Both taken: the key is what the caller hears of.
    assert_eq!(
        store.create(&first, &record(&first, &k1)).await,
        Ok(CreateOutcome::KeyAlreadyUsed),
        "a retry of the first create"
    );

    // Saves are conditioned on the stored version.
    let rejected = first
        .reject(vec![], at + seconds(3))
        .expect("a pending order can be rejected");
    assert_eq!(
        store.save(&rejected, first.version + 1).await,
        Err(StoreError::ConditionFailed),
        "a save expecting a version the order has not reached"
    );
    assert_eq!(stored(store, &first.id).await.as_ref(), Some(&first));
    assert_eq!(store.save(&rejected, first.version).await, Ok(()));
    assert_eq!(stored(store, &first.id).await.as_ref(), Some(&rejected));
    let cancelled = first
        .cancel("changed my mind".into(), "customer", at + seconds(4))
        .expect("a pending order can be cancelled")
        .order;
    assert_eq!(
        store.save(&cancelled, first.version).await,
        Err(StoreError::ConditionFailed),
        "a save from a stale read loses"
    );
    assert_eq!(
        stored(store, &first.id).await.as_ref(),
        Some(&rejected),
        "a lost save changes nothing"
    );

    // A save never creates.
    let ghost = place(&ada, &[(&item, 1)], at + seconds(5));
    let moved = ghost
        .reject(vec![], at + seconds(5))
        .expect("a pending order can be rejected");
    assert_eq!(
        store.save(&moved, ghost.version).await,
        Err(StoreError::ConditionFailed),
        "saving an order that was never created"
    );
    assert_eq!(stored(store, &ghost.id).await, None);
}

/// `list_for_customer`: a customer's orders and no one else's, newest first, in pages that
/// together hold them all; a cursor only opens the listing it came from (another customer's, or
/// garbage, is `InvalidCursor`).
pub async fn customer_listing<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let (ada, bob, nobody) = (
        customer(prefix, "ada"),
        customer(prefix, "bob"),
        customer(prefix, "nobody"),
    );
    let item = product(&sku(prefix, "CL"), 10, at);
    let mut adas = Vec::new();
    for i in 0..5 {
        let order = place(&ada, &[(&item, 1)], at + seconds(i));
        create(store, &order).await;
        adas.push(order.id.clone());
    }
    let bobs = place(&bob, &[(&item, 1)], at + seconds(10));
    create(store, &bobs).await;
    let newest_first: Vec<OrderId> = adas.iter().rev().cloned().collect();

    let whole = store
        .list_for_customer(&ada, 10, None)
        .await
        .expect("listing");
    assert_eq!(ids(&whole.items), newest_first, "newest first, only hers");
    assert_eq!(whole.next_cursor, None, "one page held them all");

    let (ada_ref, bob_ref) = (&ada, &bob);
    let pages =
        all_pages(
            |cursor| async move { store.list_for_customer(ada_ref, 2, cursor.as_deref()).await },
        )
        .await;
    assert_eq!(
        pages,
        [
            newest_first[0..2].to_vec(),
            newest_first[2..4].to_vec(),
            newest_first[4..].to_vec()
        ],
        "pages of two, newest first"
    );
    let pages =
        all_pages(
            |cursor| async move { store.list_for_customer(ada_ref, 5, cursor.as_deref()).await },
        )
        .await;
    assert_eq!(
        pages,
        std::slice::from_ref(&newest_first),
        "a page exactly full"
    );

    let empty = store
        .list_for_customer(&nobody, 10, None)
        .await
        .expect("listing");
    assert_eq!(
        (empty.items.len(), empty.next_cursor),
        (0, None),
        "a customer without orders"
    );
    let pages =
        all_pages(
            |cursor| async move { store.list_for_customer(bob_ref, 1, cursor.as_deref()).await },
        )
        .await;
    assert_eq!(pages, [vec![bobs.id.clone()]], "only his own");

    let first = store
        .list_for_customer(&ada, 2, None)
        .await
        .expect("listing");
    let cursor = first.next_cursor.expect("more than one page");
    assert_eq!(
        store.list_for_customer(&bob, 2, Some(&cursor)).await,
        Err(StoreError::InvalidCursor),
        "another customer's cursor"
    );
    assert_eq!(
        store.list_for_customer(&ada, 2, Some(GARBAGE_CURSOR)).await,
        Err(StoreError::InvalidCursor),
        "a cursor the store never handed out"
    );
}

const WAREHOUSE_STATUSES: [FulfillmentStatus; 3] = [
    FulfillmentStatus::AwaitingPick,
    FulfillmentStatus::Picked,
    FulfillmentStatus::Packed,
];

/// Every status in which `warehouse`'s listing holds `id`.
async fn listed_in<S: OrderStore>(
    store: &S,
    warehouse: &str,
    id: &OrderId,
) -> Vec<FulfillmentStatus> {
    let mut statuses = Vec::new();
    for status in FulfillmentStatus::ALL {
        let pages = all_pages(|cursor| async move {
            store
                .list_fulfillments(warehouse, status, 100, cursor.as_deref())
                .await
        })
        .await;
        if pages.iter().flatten().any(|listed| listed == id) {
            statuses.push(status);
        }
    }
    statuses
}

async fn pick_list_of<S: OrderStore>(
    store: &S,
    warehouse: &str,
    status: FulfillmentStatus,
    limit: u32,
) -> Vec<Vec<OrderId>> {
    all_pages(|cursor| async move {
        store
            .list_fulfillments(warehouse, status, limit, cursor.as_deref())
            .await
    })
    .await
}

/// `list_fulfillments`: a warehouse's shipments in one status, oldest queued first (not by order
/// id), in pages; a sparse listing: an order is in it only while the warehouse has work on it
/// (awaiting pick, picked, packed), in exactly the status it is in, and neither once shipped nor
/// once cancelled; other warehouses' orders never.
pub async fn pick_list<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let (warehouse, elsewhere) = (format!("{prefix}-WH"), format!("{prefix}-WH2"));
    let ada = customer(prefix, "picker");
    let item = product(&sku(prefix, "PL"), 10, at);

    // Placed 0, 1, 2; queued in the warehouse 2, 1, 0: the pick list follows the queue.
    let mut queue = Vec::new();
    for i in 0..3 {
        let placed = place(&ada, &[(&item, 1)], at + seconds(i));
        let order = in_fulfillment(&placed, &warehouse, at + seconds(20 - i));
        create(store, &order).await;
        queue.insert(0, order);
    }
    let other = in_fulfillment(&place(&ada, &[(&item, 1)], at), &elsewhere, at);
    create(store, &other).await;
    let reserved = place(&ada, &[(&item, 1)], at)
        .reserve_all_at("BER-1", at)
        .expect("reserving");
    create(store, &reserved).await;
    let queued = ids(&queue);

    assert_eq!(
        pick_list_of(store, &warehouse, FulfillmentStatus::AwaitingPick, 100).await,
        std::slice::from_ref(&queued),
        "awaiting pick, oldest queued first"
    );
    assert_eq!(
        pick_list_of(store, &warehouse, FulfillmentStatus::AwaitingPick, 2).await,
        [queued[0..2].to_vec(), queued[2..].to_vec()],
        "in pages of two"
    );
    for status in [FulfillmentStatus::Picked, FulfillmentStatus::Packed] {
        assert_eq!(
            pick_list_of(store, &warehouse, status, 100).await,
            [Vec::<OrderId>::new()],
            "nothing is {}",
            status.as_str()
        );
    }
    assert_eq!(
        pick_list_of(store, &elsewhere, FulfillmentStatus::AwaitingPick, 100).await,
        [vec![other.id.clone()]],
        "another warehouse's list"
    );
    assert_eq!(
        listed_in(store, &warehouse, &reserved.id).await,
        [],
        "an order not yet in fulfillment"
    );

    // The oldest moves through the warehouse and out.
    let first = queue[0].clone();
    let step_at = at + seconds(30);
    let first = save(store, &first, picked(&first, step_at)).await;
    assert_eq!(
        listed_in(store, &warehouse, &first.id).await,
        [FulfillmentStatus::Picked],
        "picked: only in the picked list"
    );
    assert_eq!(
        pick_list_of(store, &warehouse, FulfillmentStatus::AwaitingPick, 100).await,
        [queued[1..].to_vec()],
        "the rest still await pick"
    );
    let first = save(store, &first, packed(&first, step_at)).await;
    assert_eq!(
        listed_in(store, &warehouse, &first.id).await,
        [FulfillmentStatus::Packed],
        "packed: only in the packed list"
    );
    let first = save(store, &first, shipped(&first, step_at)).await;
    assert_eq!(
        listed_in(store, &warehouse, &first.id).await,
        [],
        "shipped: off every list (in no status at all)"
    );

    // A cancellation takes the shipment off the list wherever it had got to.
    let second = save(store, &queue[1], picked(&queue[1], step_at)).await;
    let cancelled = second
        .cancel("out of stock".into(), "admin", step_at)
        .expect("a picked order can be cancelled")
        .order;
    save(store, &second, cancelled).await;
    assert_eq!(
        listed_in(store, &warehouse, &second.id).await,
        [],
        "a cancelled order is off the pick list"
    );
    let third = &queue[2];
    let cancelled = third
        .cancel("out of stock".into(), "admin", step_at)
        .expect("an order awaiting pick can be cancelled")
        .order;
    save(store, third, cancelled).await;
    assert_eq!(
        listed_in(store, &warehouse, &third.id).await,
        [],
        "a cancelled order is off the pick list"
    );

    for status in WAREHOUSE_STATUSES {
        assert_eq!(
            store
                .list_fulfillments(&warehouse, status, 10, Some(GARBAGE_CURSOR))
                .await,
            Err(StoreError::InvalidCursor),
            "a cursor the store never handed out"
        );
    }
}

/// A pick-list cursor stays good while the warehouse works: the order it was handed out after
/// may move on (be picked) before the next page is asked for, as on DynamoDB, whose cursor is a
/// position in the index rather than an item that must still be there.
pub async fn pick_list_cursor_outlives_its_order<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let warehouse = format!("{prefix}-WHC");
    let ada = customer(prefix, "cursor");
    let item = product(&sku(prefix, "PC"), 10, at);
    let mut queue = Vec::new();
    for i in 0..3 {
        let order = in_fulfillment(&place(&ada, &[(&item, 1)], at), &warehouse, at + seconds(i));
        create(store, &order).await;
        queue.push(order);
    }
    let page = store
        .list_fulfillments(&warehouse, FulfillmentStatus::AwaitingPick, 1, None)
        .await
        .expect("listing");
    assert_eq!(ids(&page.items), [queue[0].id.clone()]);
    let cursor = page.next_cursor.expect("more to come");
    save(store, &queue[0], picked(&queue[0], at + seconds(10))).await;
    let next = store
        .list_fulfillments(
            &warehouse,
            FulfillmentStatus::AwaitingPick,
            1,
            Some(&cursor),
        )
        .await;
    assert_eq!(
        next.map(|p| ids(&p.items)),
        Ok(vec![queue[1].id.clone()]),
        "the next page after the picked order"
    );
}

/// A cursor is `InvalidCursor` in any listing but the one that handed it out, even where the
/// order it was handed out after is listed too (ports: "a pagination cursor that this store did
/// not hand out for this query").
pub async fn cursors_belong_to_their_query<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let warehouse = format!("{prefix}-WHQ");
    let ada = customer(prefix, "query");
    let item = product(&sku(prefix, "CQ"), 10, at);
    for i in 0..2 {
        let order = in_fulfillment(
            &place(&ada, &[(&item, 1)], at + seconds(i)),
            &warehouse,
            at + seconds(i),
        );
        create(store, &order).await;
    }
    let mine = store
        .list_for_customer(&ada, 1, None)
        .await
        .expect("listing")
        .next_cursor
        .expect("two orders, pages of one");
    let picks = store
        .list_fulfillments(&warehouse, FulfillmentStatus::AwaitingPick, 1, None)
        .await
        .expect("listing")
        .next_cursor
        .expect("two orders, pages of one");
    assert_eq!(
        store
            .list_fulfillments(&warehouse, FulfillmentStatus::AwaitingPick, 1, Some(&mine))
            .await,
        Err(StoreError::InvalidCursor),
        "a customer-listing cursor in the pick list"
    );
    assert_eq!(
        store
            .list_fulfillments(&warehouse, FulfillmentStatus::Picked, 1, Some(&picks))
            .await,
        Err(StoreError::InvalidCursor),
        "one status's cursor in another's"
    );
    assert_eq!(
        store.list_for_customer(&ada, 1, Some(&picks)).await,
        Err(StoreError::InvalidCursor),
        "a pick-list cursor in the customer listing"
    );
    assert_eq!(
        store.list_pending_returns(1, Some(&mine)).await,
        Err(StoreError::InvalidCursor),
        "a customer-listing cursor in the approval queue"
    );
}

/// `list_pending_returns`: orders with a return waiting for staff, longest-waiting first, in
/// pages; sparse: an order leaves it once its return is decided, and a delivered order without a
/// waiting return is never in it. `list_arriving_returns`: the approved ones, whose goods are on
/// their way.
pub async fn pending_returns<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "returner");
    let item = product(&sku(prefix, "PR"), 10, at);
    let warehouse = format!("{prefix}-WHR");
    let mut orders = Vec::new();
    for i in 0..4 {
        let order = delivered(
            &in_fulfillment(&place(&ada, &[(&item, 2)], at + seconds(i)), &warehouse, at),
            at + seconds(i),
        );
        create(store, &order).await;
        orders.push(order);
    }
    // Requested 1, 0, 2 (the 4th order is kept): the queue follows the requests.
    let mut waiting = Vec::new();
    for (i, index) in [1usize, 0, 2].into_iter().enumerate() {
        let order = &orders[index];
        let next = with_pending_return(order, at + seconds(60 + i as i64));
        waiting.push(save(store, order, next).await);
    }
    let ours_all = ids(&orders);
    let queue = |pages: &[Vec<OrderId>]| ours(pages, &ours_all);
    let pages =
        all_pages(|cursor| async move { store.list_pending_returns(100, cursor.as_deref()).await })
            .await;
    assert_eq!(queue(&pages), ids(&waiting), "longest-waiting first");
    let pages =
        all_pages(|cursor| async move { store.list_pending_returns(2, cursor.as_deref()).await })
            .await;
    assert_eq!(queue(&pages), ids(&waiting), "in pages of two");
    assert!(
        pages.iter().all(|p| p.len() <= 2),
        "no page holds more than asked: {pages:?}"
    );

    // Deciding takes an order off the queue, approved or rejected.
    let approve = &waiting[0];
    let return_id = approve.returns[0].return_id.clone();
    let approved = approve
        .decide_return(&return_id, true, "staff", None, at + seconds(90))
        .expect("a waiting return can be approved")
        .order;
    save(store, approve, approved).await;
    let reject = &waiting[2];
    let return_id = reject.returns[0].return_id.clone();
    let rejected = reject
        .decide_return(&return_id, false, "staff", None, at + seconds(91))
        .expect("a waiting return can be rejected")
        .order;
    save(store, reject, rejected).await;
    let pages =
        all_pages(|cursor| async move { store.list_pending_returns(1, cursor.as_deref()).await })
            .await;
    assert_eq!(
        queue(&pages),
        [waiting[1].id.clone()],
        "decided returns leave the queue"
    );
    // The approved one is expected back at the warehouse; the rejected one is not, nor an
    // order whose return still waits for staff, nor one without a return.
    let pages =
        all_pages(|cursor| async move { store.list_arriving_returns(1, cursor.as_deref()).await })
            .await;
    assert_eq!(
        queue(&pages),
        [approve.id.clone()],
        "an approved return is on its way"
    );
    // Another return of the same order, waiting for staff: the order is in the approval queue
    // until that one is decided, then on its way again.
    let stored = store
        .get(&approve.id)
        .await
        .expect("reading the order")
        .expect("the order");
    let second = with_another_pending_return(&stored, "second", at + seconds(95));
    let waiting_again = save(store, &stored, second).await;
    let arriving =
        all_pages(|cursor| async move { store.list_arriving_returns(10, cursor.as_deref()).await })
            .await;
    let pending =
        all_pages(|cursor| async move { store.list_pending_returns(10, cursor.as_deref()).await })
            .await;
    assert!(queue(&arriving).is_empty(), "in the approval queue instead");
    assert!(queue(&pending).contains(&approve.id));
    let return_id = waiting_again.returns[1].return_id.clone();
    let decided = waiting_again
        .decide_return(&return_id, false, "staff", None, at + seconds(96))
        .expect("a waiting return can be rejected")
        .order;
    save(store, &waiting_again, decided).await;
    let arriving =
        all_pages(|cursor| async move { store.list_arriving_returns(10, cursor.as_deref()).await })
            .await;
    assert_eq!(queue(&arriving), [approve.id.clone()], "on its way again");
    assert_eq!(
        store.list_arriving_returns(1, Some(GARBAGE_CURSOR)).await,
        Err(StoreError::InvalidCursor),
        "a cursor the store never handed out"
    );
    assert_eq!(
        store.list_pending_returns(1, Some(GARBAGE_CURSOR)).await,
        Err(StoreError::InvalidCursor),
        "a cursor the store never handed out"
    );
}

/// `list_by_status` and `list_payment_watch`, the scheduled sweep's views: orders in one status
/// last changed before a time, oldest first; orders whose money needs staff, and authorizations
/// waiting for their capture, each on its own list and only while they are.
pub async fn sweep_listings<S: OrderStore>(store: &S, prefix: &str) {
    use crate::order::payments::{PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentUpdate};
    use crate::ports::PaymentWatch;
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "sweeper");
    let item = product(&sku(prefix, "SW"), 10, at);
    let mut orders = Vec::new();
    for i in 0..3 {
        let order = place(&ada, &[(&item, 1)], at + seconds(i));
        create(store, &order).await;
        orders.push(order);
    }
    let all = ids(&orders);
    let pages = all_pages(|cursor| async move {
        store
            .list_by_status(
                OrderStatus::Pending,
                at + seconds(2),
                100,
                cursor.as_deref(),
            )
            .await
    })
    .await;
    assert_eq!(
        ours(&pages, &all),
        ids(&orders[..2]),
        "changed before the bound, oldest first"
    );
    assert!(
        ours(
            &all_pages(|cursor| async move {
                store
                    .list_by_status(
                        OrderStatus::Reserved,
                        at + seconds(60),
                        100,
                        cursor.as_deref(),
                    )
                    .await
            })
            .await,
            &all
        )
        .is_empty(),
        "another status is another list"
    );

    // One authorized (waits for its capture), one with a mismatched amount (needs staff).
    let authorized = save(
        store,
        &orders[0],
        orders[0].authorized_for_test(at + seconds(10)),
    )
    .await;
    let mismatch = PaymentEvent {
        event_id: format!("{prefix}-mismatch"),
        kind: PaymentEventKind::AuthorizationSucceeded,
        amount: crate::money::Money::new(1, orders[1].totals.total.currency())
            .expect("a positive amount"),
        occurred_at: at + seconds(11),
        psp_reference: None,
        refund_id: None,
        request_id: None,
        reason: None,
    };
    let PaymentUpdate::Recorded(mismatched) = orders[1]
        .record_payment(&mismatch, &PaymentPolicy::default(), at + seconds(11))
        .expect("a payment event can be recorded")
    else {
        panic!("a new event id is recorded")
    };
    let mismatched = save(store, &orders[1], *mismatched).await;
    let watch = |watch: PaymentWatch, before: Option<DateTime<Utc>>| {
        let all = all.clone();
        async move {
            ours(
                &all_pages(|cursor| async move {
                    store
                        .list_payment_watch(watch, before, 1, cursor.as_deref())
                        .await
                })
                .await,
                &all,
            )
        }
    };
    assert_eq!(
        watch(PaymentWatch::AwaitingCapture, None).await,
        [authorized.id.clone()]
    );
    assert_eq!(
        watch(PaymentWatch::Attention, None).await,
        [mismatched.id.clone()]
    );
    assert!(
        watch(PaymentWatch::AwaitingCapture, Some(at + seconds(10)))
            .await
            .is_empty(),
        "authorized at the bound, not before it"
    );
    assert_eq!(
        watch(PaymentWatch::AwaitingCapture, Some(at + seconds(11))).await,
        [authorized.id.clone()]
    );

    // Captured, it waits no more.
    let captured = authorized.captured_for_test(at + seconds(20));
    save(store, &authorized, captured).await;
    assert!(watch(PaymentWatch::AwaitingCapture, None).await.is_empty());
    assert_eq!(
        store
            .list_payment_watch(PaymentWatch::Attention, None, 1, Some(GARBAGE_CURSOR))
            .await,
        Err(StoreError::InvalidCursor)
    );
}

/// A status's count grows with the orders that enter it, and stops at the cap, saying there
/// are more.
pub async fn status_counts<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "counted");
    let item = product(&sku(prefix, "CNT"), 10, at);
    let count = |cap| store.count_by_status(OrderStatus::Pending, cap);
    let before = count(10_000).await.expect("counting");
    assert!(!before.more);
    for i in 0..3 {
        create(store, &place(&ada, &[(&item, 1)], at + seconds(i))).await;
    }
    let after = count(10_000).await.expect("counting");
    assert_eq!(after.count, before.count + 3, "three more pending");
    let capped = count(2).await.expect("counting");
    assert_eq!((capped.count, capped.more), (2, true), "two, and more");
}

/// `search` lists a created order under each of its search keys — its e-mail address, its
/// recipient's whole name and name words, the end of its id — and under nothing else.
pub async fn order_search<S: OrderStore>(store: &S, prefix: &str) {
    use crate::order::search::search_terms;
    check_prefix(prefix);
    let at = base_time();
    let item = product(&sku(prefix, "SRCH"), 10, at);
    // A word no other run's orders carry.
    let tag: String = prefix.chars().filter(char::is_ascii_alphanumeric).collect();
    let named = |name: &str, email: &str, at| {
        let mut order = place(&customer(prefix, "searched"), &[(&item, 1)], at);
        order.shipping.address = crate::contact::Address::checked(
            name.into(),
            "1 Test Street".into(),
            None,
            "Berlin".into(),
            None,
            "10115".into(),
            crate::contact::CountryCode::parse("DE").expect("a country"),
        );
        order.contact = crate::contact::Contact::checked(email.into(), None, None);
        order
    };
    let ada = named(&format!("Ada {tag}"), &format!("{tag}-ada@example.com"), at);
    let grace = named(
        &format!("Grace {tag}"),
        &format!("{tag}-grace@example.com"),
        at + seconds(1),
    );
    create(store, &ada).await;
    create(store, &grace).await;
    let found = |text: String| async move {
        let mut ids = Vec::new();
        for way in search_terms(&text) {
            let mut matching: Option<Vec<OrderId>> = None;
            for term in &way {
                let listed = store.search(term, 200).await.expect("searching");
                matching = Some(match matching {
                    None => listed,
                    Some(before) => before.into_iter().filter(|i| listed.contains(i)).collect(),
                });
            }
            for id in matching.unwrap_or_default() {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    };
    assert_eq!(
        found(format!("{tag}-ADA@example.com")).await,
        [ada.id.clone()],
        "by e-mail, in any case"
    );
    assert_eq!(
        found(format!("ada {tag}")).await,
        [ada.id.clone()],
        "by the whole name"
    );
    assert_eq!(
        found(tag.clone()).await,
        [grace.id.clone(), ada.id.clone()],
        "by a word both names share, the newest first"
    );
    let end = &ada.id.as_str()[20..];
    assert!(
        found(end.to_lowercase()).await.contains(&ada.id),
        "by the end of its id"
    );
    assert!(
        !found(end.to_owned()).await.contains(&grace.id),
        "not another order's"
    );
    assert!(found(format!("{tag}-nobody@example.com")).await.is_empty());
}

/// `status_cursor_after` resumes a status listing right after a position, whether or not an
/// order is at it: the orders after it in the listing, none before.
pub async fn status_keyset<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    // Long ago, so these sort before every order other runs leave in the listing.
    let base = DateTime::from_timestamp(631_152_000 + base_time().timestamp() % 86_400, 0)
        .expect("a time");
    let item = product(&sku(prefix, "KEYSET"), 10, base);
    let ada = customer(prefix, "keyset");
    let placed: Vec<Order> = (0..3)
        .map(|n| place(&ada, &[(&item, 1)], base + seconds(n)))
        .collect();
    for order in &placed {
        create(store, order).await;
    }
    let listed = |cursor: String| async move {
        store
            .list_by_status(
                OrderStatus::Pending,
                base + seconds(3600),
                100,
                Some(&cursor),
            )
            .await
            .expect("listing after a position")
            .items
            .into_iter()
            .map(|o| o.id)
            .collect::<Vec<_>>()
    };
    let after_first = listed(store.status_cursor_after(
        OrderStatus::Pending,
        placed[0].status_since(),
        &placed[0].id,
    ))
    .await;
    assert!(
        !after_first.contains(&placed[0].id),
        "not the position itself"
    );
    assert!(after_first.contains(&placed[1].id) && after_first.contains(&placed[2].id));
    // A position no order is at: half a second after the second.
    let between = listed(store.status_cursor_after(
        OrderStatus::Pending,
        placed[1].status_since() + chrono::Duration::milliseconds(500),
        &placed[1].id,
    ))
    .await;
    assert!(!between.contains(&placed[1].id) && between.contains(&placed[2].id));
}
