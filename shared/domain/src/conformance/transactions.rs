//! What every `OrderTransactions` must do: an order and its stock moved together, all or none.

use super::*;

async fn stock_of<S: InventoryStore>(store: &S, sku: &Sku) -> (u32, u32, u64) {
    let product = stored_product(store, sku)
        .await
        .unwrap_or_else(|| panic!("product {sku} exists"));
    (
        product.stock.available(),
        product.stock.reserved(),
        product.version,
    )
}

async fn new_products<S: InventoryStore>(store: &S, products: &[&Product]) {
    for product in products {
        assert_eq!(
            store.save_product(product, None, None).await,
            Ok(()),
            "creating {}",
            product.sku
        );
    }
}

/// `reserve` takes every line or none: any short line is `Short` naming each short SKU (in line
/// order) with what was requested and what was available (0 for an unknown SKU), and moves no
/// stock and not the order; a reservation that fits moves exactly its lines from `available` to
/// `reserved`, bumps each product's version, and writes the order.
pub async fn reserve_all_or_nothing<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "reserver");
    let a = product(&sku(prefix, "RS-A"), 5, at);
    let b = product(&sku(prefix, "RS-B"), 1, at);
    let c = product(&sku(prefix, "RS-C"), 4, at);
    let unknown = product(&sku(prefix, "RS-X"), 9, at);
    new_products(store, &[&a, &b, &c]).await;
    let untouched = [a.clone(), b.clone(), c.clone()];
    let check_untouched = async |store: &S| {
        for p in &untouched {
            assert_eq!(
                stored_product(store, &p.sku).await.as_ref(),
                Some(p),
                "a refused reservation moves no stock"
            );
        }
    };

    // One line short.
    let one_short = place(&ada, &[(&a, 2), (&b, 2)], at);
    create(store, &one_short).await;
    assert_eq!(
        store
            .reserve(&one_short.reserve_all_at("BER-1", at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::Short(vec![Shortage {
            sku: b.sku.clone(),
            requested: 2,
            available: 1
        }])),
        "one line short"
    );
    check_untouched(store).await;
    assert_eq!(
        stored(store, &one_short.id).await.as_ref(),
        Some(&one_short),
        "a refused reservation leaves the order as it was"
    );

    // Several lines short, one fine, one unknown: every short one is named, in line order.
    let many_short = place(&ada, &[(&b, 3), (&c, 1), (&unknown, 1), (&a, 9)], at);
    create(store, &many_short).await;
    assert_eq!(
        store
            .reserve(&many_short.reserve_all_at("BER-1", at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::Short(vec![
            Shortage {
                sku: b.sku.clone(),
                requested: 3,
                available: 1
            },
            Shortage {
                sku: unknown.sku.clone(),
                requested: 1,
                available: 0
            },
            Shortage {
                sku: a.sku.clone(),
                requested: 9,
                available: 5
            },
        ])),
        "several lines short"
    );
    check_untouched(store).await;
    assert_eq!(
        stored_product(store, &unknown.sku).await,
        None,
        "nothing created"
    );
    assert_eq!(
        stored(store, &many_short.id).await.as_ref(),
        Some(&many_short)
    );

    // Lines that fit, one SKU on two lines: netted.
    let fits = place(&ada, &[(&a, 2), (&c, 4)], at + seconds(1));
    create(store, &fits).await;
    let reserved = fits
        .reserve_all_at("BER-1", at + seconds(2))
        .expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    assert_eq!(stock_of(store, &a.sku).await, (3, 2, 2), "A: 2 reserved");
    assert_eq!(
        stock_of(store, &c.sku).await,
        (0, 4, 2),
        "C: all 4 reserved"
    );
    assert_eq!(stock_of(store, &b.sku).await, (1, 0, 1), "B untouched");
    assert_eq!(stored(store, &fits.id).await.as_ref(), Some(&reserved));

    // Never below zero: C has nothing left.
    let more = place(&ada, &[(&c, 1)], at + seconds(3));
    create(store, &more).await;
    assert_eq!(
        store
            .reserve(&more.reserve_all_at("BER-1", at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::Short(vec![Shortage {
            sku: c.sku.clone(),
            requested: 1,
            available: 0
        }]))
    );
    assert_eq!(stock_of(store, &c.sku).await, (0, 4, 2));
}

/// An order write is conditioned on the stored order being the version before it: stale, ahead
/// or absent is `OrderChanged` (even when stock is also short) and writes nothing; an order it
/// creates must not exist (`ConditionFailed`, nothing written); a write taking more from
/// `reserved` than is there is refused and writes nothing.
pub async fn commit_conditions<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "committer");
    let a = product(&sku(prefix, "CC-A"), 5, at);
    let b = product(&sku(prefix, "CC-B"), 1, at);
    new_products(store, &[&a, &b]).await;

    // The stored order moved on (cancelled) since the reservation was computed.
    let order = place(&ada, &[(&a, 2)], at);
    create(store, &order).await;
    let cancelled = order
        .cancel("changed my mind".into(), "customer", at + seconds(1))
        .expect("cancelling")
        .order;
    let cancelled = save(store, &order, cancelled).await;
    assert_eq!(
        store
            .reserve(&order.reserve_all_at("BER-1", at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::OrderChanged),
        "a reservation computed from a stale order"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1), "no stock moved");
    assert_eq!(stored(store, &order.id).await.as_ref(), Some(&cancelled));

    // Stale and short: the order's change is what the caller hears of.
    let short = place(&ada, &[(&b, 2)], at);
    create(store, &short).await;
    let rejected = short.reject(vec![], at).expect("rejecting");
    let rejected = save(store, &short, rejected).await;
    assert_eq!(
        store
            .reserve(&short.reserve_all_at("BER-1", at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::OrderChanged),
        "stale and short"
    );
    assert_eq!(stored(store, &short.id).await.as_ref(), Some(&rejected));

    // A write two versions ahead of the stored order.
    let ahead = place(&ada, &[(&a, 1)], at);
    create(store, &ahead).await;
    let two_ahead = in_fulfillment(&ahead, &format!("{prefix}-WHX"), at);
    assert_eq!(
        store
            .commit(&OrderChange {
                moves: ahead.stock_moves(StockMovement::Reserve),
                order: two_ahead,
                created: None,
                linked: None,
                stock_history: Vec::new(),
            })
            .await,
        Ok(CommitOutcome::OrderChanged),
        "a write two versions ahead"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1));
    assert_eq!(stored(store, &ahead.id).await.as_ref(), Some(&ahead));

    // An order that was never created.
    let ghost = place(&ada, &[(&a, 1)], at);
    assert_eq!(
        store
            .reserve(&ghost.reserve_all_at("BER-1", at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::OrderChanged),
        "reserving an order that is not stored"
    );
    assert_eq!(
        stored(store, &ghost.id).await,
        None,
        "the write created nothing"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1));

    // Releasing what is not reserved: refused, nothing written.
    let pending = place(&ada, &[(&a, 1)], at);
    create(store, &pending).await;
    let reserved = pending.reserve_all_at("BER-1", at).expect("reserving");
    let result = store
        .commit(&OrderChange {
            moves: reserved.stock_moves(StockMovement::Release),
            order: reserved,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Corrupt(_))),
        "releasing units that are not reserved: {result:?}"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1), "no stock moved");
    assert_eq!(stored(store, &pending.id).await.as_ref(), Some(&pending));

    // A created order: written with the change, or (if it exists) neither.
    let original = place(&ada, &[(&a, 1)], at);
    create(store, &original).await;
    let replacement = place(&ada, &[(&a, 1)], at + seconds(1));
    let write = OrderChange {
        created: Some(replacement.clone()),
        linked: None,
        ..OrderChange::with_lines(
            original.reserve_all_at("BER-1", at).expect("reserving"),
            StockMovement::Reserve,
        )
    };
    assert_eq!(store.commit(&write).await, Ok(CommitOutcome::Committed));
    assert_eq!(
        stored(store, &original.id).await.as_ref(),
        Some(&write.order)
    );
    assert_eq!(
        stored(store, &replacement.id).await.as_ref(),
        Some(&replacement),
        "the created order is written with the change"
    );
    assert_eq!(stock_of(store, &a.sku).await, (4, 1, 2));
    let again = place(&ada, &[(&a, 1)], at);
    create(store, &again).await;
    let clash = OrderChange {
        created: Some(replacement.clone()),
        linked: None,
        ..OrderChange::with_lines(
            again.reserve_all_at("BER-1", at).expect("reserving"),
            StockMovement::Reserve,
        )
    };
    assert_eq!(
        store.commit(&clash).await,
        Err(StoreError::ConditionFailed),
        "creating an order that exists"
    );
    assert_eq!(stored(store, &again.id).await.as_ref(), Some(&again));
    assert_eq!(
        stored(store, &replacement.id).await.as_ref(),
        Some(&replacement)
    );
    assert_eq!(stock_of(store, &a.sku).await, (4, 1, 2), "no stock moved");

    // A linked order: written with the change on its version, or (changed since) neither.
    let main = place(&ada, &[(&a, 1)], at);
    create(store, &main).await;
    let other = place(&ada, &[(&a, 1)], at);
    create(store, &other).await;
    let other_next = other.reject(vec![], at).expect("rejecting");
    let write = OrderChange {
        linked: Some(other_next.clone()),
        ..OrderChange::with_lines(
            main.reserve_all_at("BER-1", at).expect("reserving"),
            StockMovement::Reserve,
        )
    };
    let mut ahead = other_next.clone();
    ahead.version += 1;
    let stale = OrderChange {
        linked: Some(ahead),
        ..write.clone()
    };
    assert_eq!(
        store.commit(&stale).await,
        Ok(CommitOutcome::OrderChanged),
        "a linked order two versions ahead"
    );
    let itself = OrderChange {
        linked: Some(write.order.clone()),
        ..write.clone()
    };
    assert!(
        matches!(store.commit(&itself).await, Err(StoreError::Corrupt(_))),
        "an order linked to itself"
    );
    assert_eq!(stored(store, &main.id).await.as_ref(), Some(&main));
    assert_eq!(stored(store, &other.id).await.as_ref(), Some(&other));
    assert_eq!(stock_of(store, &a.sku).await, (4, 1, 2), "no stock moved");
    assert_eq!(store.commit(&write).await, Ok(CommitOutcome::Committed));
    assert_eq!(stored(store, &main.id).await.as_ref(), Some(&write.order));
    assert_eq!(stored(store, &other.id).await.as_ref(), Some(&other_next));
    assert_eq!(stock_of(store, &a.sku).await, (3, 2, 3));
}

/// The stock an order's life moves: reserving takes from `available` into `reserved`, shipping
/// takes it out of `reserved` (and the building), cancelling gives it back; each write bumps the
/// product's version once and a repeated write is `OrderChanged`.
pub async fn commit_moves_stock<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "mover");
    let a = product(&sku(prefix, "MV-A"), 5, at);
    let b = product(&sku(prefix, "MV-B"), 3, at);
    new_products(store, &[&a, &b]).await;

    let order = place(&ada, &[(&a, 2), (&b, 1)], at);
    create(store, &order).await;
    let reserved = order.reserve_all_at("BER-1", at).expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    assert_eq!(
        store.reserve(&reserved).await,
        Ok(ReserveOutcome::OrderChanged),
        "the same reservation twice"
    );
    assert_eq!(stock_of(store, &a.sku).await, (3, 2, 2));
    assert_eq!(stock_of(store, &b.sku).await, (2, 1, 2));
    let fulfilling = reserved
        .authorized_for_test(at)
        .start_fulfillment(&format!("{prefix}-WHM"), at)
        .expect("to the warehouse");
    let fulfilling = save(store, &reserved, fulfilling).await;
    let picked = save(store, &fulfilling, picked(&fulfilling, at)).await;
    let packed = save(store, &picked, packed(&picked, at)).await;
    let shipped = shipped(&packed, at + seconds(1));
    assert_eq!(store.ship(&shipped, 1).await, Ok(ShipOutcome::Shipped));
    assert_eq!(
        stock_of(store, &a.sku).await,
        (3, 0, 3),
        "A: 2 left the building"
    );
    assert_eq!(
        stock_of(store, &b.sku).await,
        (2, 0, 3),
        "B: 1 left the building"
    );
    assert_eq!(stored(store, &order.id).await.as_ref(), Some(&shipped));
    assert_eq!(
        store.ship(&shipped, 1).await,
        Ok(ShipOutcome::OrderChanged),
        "the same shipment twice"
    );
    assert_eq!(stock_of(store, &a.sku).await, (3, 0, 3));

    // A cancellation gives back what was reserved.
    let other = place(&ada, &[(&a, 3)], at);
    create(store, &other).await;
    let reserved = other.reserve_all_at("BER-1", at).expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    assert_eq!(stock_of(store, &a.sku).await, (0, 3, 4));
    let step = reserved
        .cancel("changed my mind".into(), "customer", at + seconds(2))
        .expect("cancelling");
    let write = OrderChange {
        order: step.order,
        moves: step.moves,
        created: step.created,
        linked: None,
        stock_history: Vec::new(),
    };
    assert_eq!(store.commit(&write).await, Ok(CommitOutcome::Committed));
    assert_eq!(stock_of(store, &a.sku).await, (3, 0, 5), "released");
    assert_eq!(stored(store, &other.id).await.as_ref(), Some(&write.order));
}

/// Two orders racing for the last unit: exactly one gets it, the other is `Short` with none
/// available, and the counters never go below zero.
pub async fn last_unit_goes_once<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let item = product(&sku(prefix, "LAST"), 1, at);
    new_products(store, &[&item]).await;
    let first = place(&customer(prefix, "first"), &[(&item, 1)], at);
    let second = place(&customer(prefix, "second"), &[(&item, 1)], at);
    create(store, &first).await;
    create(store, &second).await;
    let (r1, r2) = (
        first.reserve_all_at("BER-1", at).expect("reserving"),
        second.reserve_all_at("BER-1", at).expect("reserving"),
    );
    let (o1, o2) = both(store.reserve(&r1), store.reserve(&r2)).await;
    let none_left = ReserveOutcome::Short(vec![Shortage {
        sku: item.sku.clone(),
        requested: 1,
        available: 0,
    }]);
    let outcomes = [o1.expect("reserving"), o2.expect("reserving")];
    assert!(
        outcomes == [ReserveOutcome::Reserved, none_left.clone()]
            || outcomes == [none_left, ReserveOutcome::Reserved],
        "one wins, one is short: {outcomes:?}"
    );
    assert_eq!(stock_of(store, &item.sku).await, (0, 1, 2));
}

/// Counters per location: a product with stock in two places reads back as written; one write
/// takes units from both (the SKU's one item touched once); a location short of what the write
/// takes fails the whole write with that location's count, however much the other holds; and
/// giving the units back returns each to the location it came from.
pub async fn stock_per_location<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "split");
    let mut a = product(&sku(prefix, "LOC-A"), 2, at);
    a.stock
        .set("AMS-1", StockLevel::new(3).expect("a stock level"));
    new_products(store, &[&a]).await;
    assert_eq!(
        stored_product(store, &a.sku).await.as_ref(),
        Some(&a),
        "both locations' counters read back"
    );

    let order = place(&ada, &[(&a, 4)], at);
    create(store, &order).await;
    let plan = |here: u32, there: u32| crate::routing::Plan {
        shipments: [("BER-1", here), ("AMS-1", there)]
            .into_iter()
            .map(|(location, n)| crate::routing::PlannedShipment {
                location: location.into(),
                lines: vec![(a.sku.clone(), n)],
                weight_grams: 0,
                cost: 0,
            })
            .collect(),
    };
    // Berlin holds 2: a plan taking 3 there fails whole, and says how many Berlin had.
    let greedy = order.reserve(&plan(3, 1), at).expect("reserving");
    assert_eq!(
        store.reserve(&greedy).await,
        Ok(ReserveOutcome::Short(vec![Shortage {
            sku: a.sku.clone(),
            requested: 3,
            available: 2,
        }]))
    );
    let level = |p: &Product, location: &str| {
        let l = p.stock.at(location);
        (l.available(), l.reserved())
    };
    let now = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(
        (level(&now, "BER-1"), level(&now, "AMS-1")),
        ((2, 0), (3, 0))
    );

    let split = order.reserve(&plan(2, 2), at).expect("reserving");
    assert_eq!(store.reserve(&split).await, Ok(ReserveOutcome::Reserved));
    let now = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(
        (level(&now, "BER-1"), level(&now, "AMS-1")),
        ((0, 2), (1, 2))
    );
    assert_eq!(now.version, a.version + 1, "one write of the SKU's item");
    let day = crate::replenishment::day_of(at);
    let demand = |p: &Product| (p.demand.at("BER-1", day), p.demand.at("AMS-1", day));
    assert_eq!(
        demand(&now),
        (2, 2),
        "the units reserved are the day's demand where they were reserved, in the same write"
    );

    let cancelled = split
        .cancel("changed my mind".into(), "customer", at + seconds(1))
        .expect("cancelling");
    assert_eq!(store.commit(&cancelled).await, Ok(CommitOutcome::Committed));
    let now = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(
        (level(&now, "BER-1"), level(&now, "AMS-1")),
        ((2, 0), (3, 0)),
        "each unit back where it was reserved"
    );
    assert_eq!(demand(&now), (2, 2), "the customer asked for them that day");
    // A whole product's write keeps the days it is given, and reads them back.
    let mut rewritten = Product {
        version: now.version + 1,
        ..now.clone()
    };
    let earlier = day.pred_opt().expect("a day before");
    rewritten.demand.record("AMS-1", earlier, 7);
    // Days before the window: one a reservation clears, one too old for it to name.
    let back = |days: u64| {
        day.checked_sub_days(chrono::Days::new(days))
            .expect("a day")
    };
    rewritten.demand.record("AMS-1", back(32), 50);
    rewritten.demand.record("AMS-1", back(40), 60);
    assert_eq!(
        store
            .save_product(&rewritten, Some(now.version), None)
            .await,
        Ok(())
    );
    assert_eq!(
        stored_product(store, &a.sku).await.as_ref(),
        Some(&rewritten)
    );
    let again = place(&ada, &[(&a, 1)], at + seconds(2));
    create(store, &again).await;
    let amsterdam = crate::routing::Plan {
        shipments: vec![crate::routing::PlannedShipment {
            location: "AMS-1".into(),
            lines: vec![(a.sku.clone(), 1)],
            weight_grams: 0,
            cost: 0,
        }],
    };
    let reserved = again
        .reserve(&amsterdam, at + seconds(2))
        .expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    let now = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(
        demand(&now),
        (2, 2 + 1 + 7),
        "added to the day's demand; the window reads the day before as well"
    );
    let kept: Vec<_> = now
        .demand
        .entries()
        .map(|(l, d, u)| (l.to_owned(), d, u))
        .collect();
    assert_eq!(
        kept,
        [
            ("AMS-1".to_owned(), back(40), 60),
            ("AMS-1".to_owned(), earlier, 7),
            ("AMS-1".to_owned(), day, 3),
            ("BER-1".to_owned(), day, 2),
        ],
        "the week before the window cleared at the location reserved at"
    );
}

/// A move's entries in its SKUs' stock histories are written with it, and only on the counters
/// they were computed from: a change of those counters in between makes the write
/// `OrderChanged`, nothing written; read again, it writes the order, the stock and both entries.
pub async fn commit_records_a_move_in_the_stock_history<S, L>(store: &S, log: &L, prefix: &str)
where
    S: OrderStore + InventoryStore + OrderTransactions,
    L: AdjustmentLog,
{
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "history");
    let mut a = product(&sku(prefix, "HI-A"), 5, at);
    a.stock
        .set("AMS-1", StockLevel::new(3).expect("a stock level"));
    new_products(store, &[&a]).await;
    let order = place(&ada, &[(&a, 2)], at);
    create(store, &order).await;
    let reserved = order.reserve_all_at("BER-1", at).expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    let fulfilling = reserved
        .authorized_for_test(at)
        .start_fulfillment("BER-1", at)
        .expect("to the warehouse");
    let fulfilling = save(store, &reserved, fulfilling).await;
    let reasons = (
        AdjustmentReason::ShipmentMoveOut,
        AdjustmentReason::ShipmentMoveIn,
    );
    let moved = |read: &Product| {
        fulfilling
            .move_units(1, "AMS-1", None, "staff", at + seconds(1))
            .expect("a move")
            .with_stock_history(std::slice::from_ref(read), reasons, "moved", "staff")
            .expect("enough at AMS-1")
    };
    let read = stored_product(store, &a.sku).await.expect("the product");
    let change = moved(&read);
    // Amsterdam is counted after the read: one unit more.
    let mut counted = read.clone();
    counted
        .stock
        .set("AMS-1", StockLevel::new(4).expect("a stock level"));
    counted.version += 1;
    assert_eq!(
        store.save_product(&counted, Some(read.version), None).await,
        Ok(())
    );
    assert_eq!(
        store.commit(&change).await,
        Ok(CommitOutcome::OrderChanged),
        "entries computed from counters that changed"
    );
    let moves = |adjustments: Vec<StockAdjustment>| -> Vec<_> {
        let mut moves: Vec<_> = adjustments
            .into_iter()
            .filter(|x| reasons.0 == x.reason || reasons.1 == x.reason)
            .map(|x| {
                (
                    x.reason.as_str(),
                    x.location.expect("a location"),
                    (x.before.available(), x.before.reserved()),
                    (x.after.available(), x.after.reserved()),
                )
            })
            .collect();
        moves.sort();
        moves
    };
    assert_eq!(moves(log.recorded_adjustments(&a.sku).await), []);
    assert_eq!(stored(store, &order.id).await.as_ref(), Some(&fulfilling));

    let read = stored_product(store, &a.sku).await.expect("the product");
    let change = moved(&read);
    assert_eq!(store.commit(&change).await, Ok(CommitOutcome::Committed));
    assert_eq!(
        moves(log.recorded_adjustments(&a.sku).await),
        [
            ("SHIPMENT_MOVE_IN", "AMS-1".to_owned(), (4, 0), (2, 2)),
            ("SHIPMENT_MOVE_OUT", "BER-1".to_owned(), (3, 2), (5, 0)),
        ]
    );
    let now = stored_product(store, &a.sku).await.expect("the product");
    assert_eq!(
        (
            now.stock.at("AMS-1").reserved(),
            now.stock.at("BER-1").reserved()
        ),
        (2, 0)
    );
}

/// Backorders ([`crate::backorder`]): a reservation backorders what is short in the write that
/// reserves the rest, on condition that the SKU's limit leaves room (refused as short,
/// nothing moved, when it does not), recording the order among those waiting; a release gives
/// the room back and the entry goes; a whole product's write (a receipt) keeps the waiting
/// orders, and writes the orders it filled on their versions, all or nothing.
pub async fn backorders<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    use crate::backorder::{waiting_key, SellingPolicy};
    use crate::order::Backordered;
    check_prefix(prefix);
    let at = base_time();
    let mut a = product(&sku(prefix, "BACK-A"), 1, at);
    a.backorders.policy = SellingPolicy::Backorder { limit: 3 };
    new_products(store, &[&a]).await;
    let ada = customer(prefix, "back");
    let plan = |n: u32| crate::routing::Plan {
        shipments: vec![crate::routing::PlannedShipment {
            location: "BER-1".into(),
            lines: vec![(a.sku.clone(), n)],
            weight_grams: 0,
            cost: 0,
        }],
    };
    let waits = |units: u32| Backordered {
        sku: a.sku.clone(),
        units,
        location: "BER-1".into(),
        promised_on: None,
    };
    // 1 reserved, 2 backordered.
    let first = place(&ada, &[(&a, 3)], at);
    create(store, &first).await;
    let reserved = first
        .reserve_backordering(&plan(1), &[waits(2)], at)
        .expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    let stored = stored_product(store, &a.sku).await.expect("the product");
    assert_eq!(
        (
            stored.stock.available(),
            stored.stock.reserved(),
            stored.backorders.backordered
        ),
        (0, 1, 2)
    );
    let first_key = waiting_key(first.created_at, &first.id);
    assert_eq!(
        stored.backorders.waiting.get(&first_key),
        Some(&2),
        "the order is among those waiting, with its units"
    );
    // Two more would pass the limit of 3: short, nothing moved, the order not written.
    let second = place(&ada, &[(&a, 2)], at + seconds(1));
    create(store, &second).await;
    let greedy = second
        .reserve_backordering(&plan(0), &[waits(2)], at + seconds(1))
        .expect("reserving");
    assert_eq!(
        store.reserve(&greedy).await,
        Ok(ReserveOutcome::Short(vec![Shortage {
            sku: a.sku.clone(),
            requested: 2,
            available: 1,
        }]))
    );
    assert_eq!(
        store
            .get(&second.id)
            .await
            .expect("reading")
            .map(|o| o.status),
        Some(OrderStatus::Pending)
    );
    // One fits.
    let second = place(&ada, &[(&a, 1)], at + seconds(2));
    create(store, &second).await;
    let fits = second
        .reserve_backordering(&plan(0), &[waits(1)], at + seconds(2))
        .expect("reserving");
    assert_eq!(store.reserve(&fits).await, Ok(ReserveOutcome::Reserved));
    // Wholly waiting, it reads back with nothing reserved anywhere.
    let read = store
        .get(&second.id)
        .await
        .expect("reading")
        .expect("the order");
    assert!(read.lines[0].allocations.is_empty(), "{:?}", read.lines[0]);
    assert_eq!(read.lines[0].backordered(), 1);
    let stored = stored_product(store, &a.sku).await.expect("the product");
    assert_eq!(stored.backorders.backordered, 3);
    assert_eq!(stored.backorders.room_left(), 0);
    // Giving back more backordered units than wait is refused, nothing written.
    let over = OrderChange {
        moves: vec![crate::stock::StockMove {
            sku: a.sku.clone(),
            location: "BER-1".into(),
            quantity: crate::quantity::Quantity::new(4).expect("units"),
            movement: StockMovement::ReleaseBackorder,
        }],
        ..OrderChange::order_only(
            read.cancel("too many".into(), "conformance", at + seconds(2))
                .expect("cancelling")
                .order,
        )
    };
    let result = store.commit(&over).await;
    assert!(
        matches!(result, Err(StoreError::Corrupt(_))),
        "giving back more than waits: {result:?}"
    );
    assert_eq!(
        stored_product(store, &a.sku).await.as_ref(),
        Some(&stored),
        "nothing written"
    );
    assert_eq!(
        store.get(&second.id).await.expect("reading").as_ref(),
        Some(&read)
    );

    // A receipt of 2: the whole product written with the two orders it filled, oldest first.
    let mut received = stored.clone();
    received.version += 1;
    received.updated_at = at + seconds(3);
    received
        .stock
        .set("BER-1", StockLevel::from_counters(0, 3).expect("counters"));
    let filled = reserved
        .fill_backorder(&a.sku, 2, at + seconds(3))
        .expect("filling");
    received.backorders.record(&first_key, 0, -2);
    // A fill written on a stale version of its order: nothing is written.
    let mut stale = filled.clone();
    stale.version += 1;
    assert_eq!(
        store
            .save_product_filling(&received, Some(stored.version), None, &[stale])
            .await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(
        stored_product(store, &a.sku).await.map(|p| p.version),
        Some(stored.version)
    );
    assert_eq!(
        store
            .save_product_filling(&received, Some(stored.version), None, &[filled.clone()])
            .await,
        Ok(())
    );
    let stored = stored_product(store, &a.sku).await.expect("the product");
    assert_eq!(
        (
            stored.stock.reserved(),
            stored.backorders.backordered,
            stored.backorders.room_left()
        ),
        (3, 1, 2)
    );
    assert_eq!(stored.backorders.waiting.len(), 1, "the second still waits");
    assert_eq!(
        store
            .get(&first.id)
            .await
            .expect("reading")
            .map(|o| o.backordered()),
        Some(0)
    );

    // The second is called off: its waiting unit goes, the room comes back.
    let cancelled = fits
        .cancel("no".into(), "customer", at + seconds(4))
        .expect("cancel");
    assert_eq!(store.commit(&cancelled).await, Ok(CommitOutcome::Committed));
    let stored = stored_product(store, &a.sku).await.expect("the product");
    assert_eq!(
        (
            stored.backorders.backordered,
            stored.backorders.room_left(),
            stored.backorders.waiting.len()
        ),
        (0, 3, 0)
    );
    assert_eq!(
        stored.stock.on_hand(),
        stored.stock.available() + stored.stock.reserved()
    );
}
