//! What every `InventoryStore` must do: stock counters, the catalog and the adjustment trail.

use super::*;

use crate::fixtures::DEFAULT_LOCATION;
use crate::stock::Stock;

/// `stock` with `delta` units more (or fewer) free at the default location.
fn adjusted(stock: &Stock, delta: i64) -> Stock {
    let mut next = stock.clone();
    let level = stock
        .at(DEFAULT_LOCATION)
        .adjust(delta)
        .expect("a stock change");
    next.set(DEFAULT_LOCATION, level);
    next
}

fn adjustment(before: &Product, after: &Product, reason: AdjustmentReason) -> StockAdjustment {
    StockAdjustment {
        sku: after.sku.clone(),
        id: format!(
            "{}-{}",
            after.updated_at.format("%Y%m%dT%H%M%S%.3fZ"),
            after.version
        ),
        reason,
        note: Some("conformance".into()),
        location: Some(DEFAULT_LOCATION.into()),
        before: before.stock.at(DEFAULT_LOCATION),
        after: after.stock.at(DEFAULT_LOCATION),
        actor: "conformance".into(),
        at: after.updated_at,
        key: None,
    }
}

fn sorted(mut adjustments: Vec<StockAdjustment>) -> Vec<StockAdjustment> {
    adjustments.sort_by(|a, b| a.id.cmp(&b.id));
    adjustments
}

/// `save_product` creates only when `expected_version` is `None` and the SKU is new, replaces
/// only at the expected version otherwise, and writes the adjustment with the product or neither;
/// `product`/`products` read back what was written, unknown SKUs simply absent.
pub async fn inventory_store<S: InventoryStore, L: AdjustmentLog>(
    store: &S,
    log: &L,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let (a_sku, b_sku, unknown) = (
        sku(prefix, "INV-A"),
        sku(prefix, "INV-B"),
        sku(prefix, "INV-X"),
    );
    let a = product(&a_sku, 5, at);
    let b = product(&b_sku, 0, at);

    assert_eq!(stored_product(store, &a_sku).await, None, "an unknown SKU");
    assert_eq!(
        store.products(&[a_sku.clone(), unknown.clone()]).await,
        Ok(vec![]),
        "unknown SKUs are absent"
    );
    assert_eq!(store.save_product(&a, None, None).await, Ok(()), "creating");
    assert_eq!(
        store
            .products(&[a_sku.clone(), unknown.clone(), a_sku.clone()])
            .await
            .map(|found| found.into_iter().map(|p| p.sku).collect::<Vec<_>>()),
        Ok(vec![a_sku.clone()]),
        "a SKU asked for twice is read once (a batch read refuses a repeated key)"
    );
    let renamed = Product {
        name: "Renamed".into(),
        ..a.clone()
    };
    assert_eq!(
        store.save_product(&renamed, None, None).await,
        Err(StoreError::ConditionFailed),
        "creating a SKU that exists"
    );
    assert_eq!(
        stored_product(store, &a_sku).await.as_ref(),
        Some(&a),
        "a refused create changes nothing"
    );
    assert_eq!(store.save_product(&b, None, None).await, Ok(()));
    let mut found = store
        .products(&[b_sku.clone(), unknown.clone(), a_sku.clone()])
        .await
        .expect("reading products");
    found.sort_by(|x, y| x.sku.cmp(&y.sku));
    assert_eq!(found, [a.clone(), b.clone()], "the known SKUs, as written");

    // A versioned update with its adjustment.
    let a2 = Product {
        stock: adjusted(&a.stock, 3),
        version: 2,
        updated_at: at + seconds(1),
        ..a.clone()
    };
    let received = adjustment(&a, &a2, AdjustmentReason::Receipt);
    assert_eq!(
        store.save_product(&a2, Some(1), Some(&received)).await,
        Ok(())
    );
    assert_eq!(stored_product(store, &a_sku).await.as_ref(), Some(&a2));
    assert_eq!(
        log.recorded_adjustments(&a_sku).await,
        std::slice::from_ref(&received),
        "the adjustment is written with the product"
    );

    // Stale, ahead: refused, and the adjustment with it.
    let a3 = Product {
        stock: adjusted(&a2.stock, -1),
        version: 3,
        updated_at: at + seconds(2),
        ..a2.clone()
    };
    let damaged = adjustment(&a2, &a3, AdjustmentReason::Damage);
    for expected in [1, 3] {
        assert_eq!(
            store
                .save_product(&a3, Some(expected), Some(&damaged))
                .await,
            Err(StoreError::ConditionFailed),
            "a save expecting version {expected} of a product at 2"
        );
    }
    assert_eq!(
        store.save_product(&a3, None, Some(&damaged)).await,
        Err(StoreError::ConditionFailed),
        "a create of a SKU that exists, with an adjustment"
    );
    assert_eq!(
        stored_product(store, &a_sku).await.as_ref(),
        Some(&a2),
        "refused saves change nothing"
    );
    assert_eq!(
        log.recorded_adjustments(&a_sku).await,
        std::slice::from_ref(&received),
        "a refused save writes no adjustment"
    );
    assert_eq!(
        store.save_product(&a3, Some(2), Some(&damaged)).await,
        Ok(())
    );
    assert_eq!(
        sorted(log.recorded_adjustments(&a_sku).await),
        sorted(vec![received.clone(), damaged.clone()])
    );

    // An update without an adjustment (a price change) writes none.
    let a4 = Product {
        unit_price: Money::new(2600, Currency::parse("EUR").expect("EUR")).expect("a price"),
        version: 4,
        updated_at: at + seconds(3),
        ..a3.clone()
    };
    assert_eq!(store.save_product(&a4, Some(3), None).await, Ok(()));
    assert_eq!(stored_product(store, &a_sku).await.as_ref(), Some(&a4));
    assert_eq!(log.recorded_adjustments(&a_sku).await.len(), 2);

    // An update never creates.
    let ghost = product(&unknown, 3, at);
    let counted = adjustment(&ghost, &ghost, AdjustmentReason::Count);
    assert_eq!(
        store.save_product(&ghost, Some(1), Some(&counted)).await,
        Err(StoreError::ConditionFailed),
        "a versioned save of a SKU that does not exist"
    );
    assert_eq!(stored_product(store, &unknown).await, None);
    assert_eq!(log.recorded_adjustments(&unknown).await, []);
}

/// `catalog` lists every product once, in SKU order, across pages; `adjustments` lists one SKU's
/// adjustments newest first, across pages, and a cursor of one SKU's history opens no other's.
pub async fn catalog_and_history<S: InventoryStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let skus: Vec<Sku> = ["CAT-C", "CAT-A", "CAT-B"]
        .iter()
        .map(|name| sku(prefix, name))
        .collect();
    for sku in &skus {
        assert_eq!(
            store.save_product(&product(sku, 4, at), None, None).await,
            Ok(())
        );
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let page = store
            .catalog(100, cursor.as_deref())
            .await
            .expect("listing the catalog");
        listed.extend(page.items.into_iter().map(|p| p.sku));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the catalog ends");
    let mut in_order = listed.clone();
    in_order.sort();
    in_order.dedup();
    assert_eq!(
        listed, in_order,
        "the catalog is in SKU order, each SKU once"
    );
    let mut expected = skus.clone();
    expected.sort();
    let found: Vec<Sku> = listed.into_iter().filter(|s| skus.contains(s)).collect();
    assert_eq!(found, expected, "every product is in the catalog");

    // A product's variants: the SKUs that begin with a prefix, in order, no more than asked.
    let stem = format!("{}-CAT-", prefix.to_uppercase());
    let variants = |limit| store.catalog_starting_with(&stem, limit);
    let skus_of = |products: Vec<Product>| products.into_iter().map(|p| p.sku).collect::<Vec<_>>();
    assert_eq!(skus_of(variants(10).await.expect("variants")), expected);
    assert_eq!(skus_of(variants(2).await.expect("variants")), expected[..2]);
    let none = store
        .catalog_starting_with(&format!("{}-NOT-", prefix.to_uppercase()), 10)
        .await
        .expect("no variants");
    assert!(none.is_empty(), "no SKU begins so");

    // Three adjustments of one SKU, one of another.
    let (a, b) = (&skus[1], &skus[2]);
    let mut current = product(a, 4, at);
    let mut written = Vec::new();
    for step in 1..=3 {
        let next = Product {
            stock: adjusted(&current.stock, 1),
            version: current.version + 1,
            updated_at: at + seconds(step),
            ..current.clone()
        };
        let received = adjustment(&current, &next, AdjustmentReason::Receipt);
        assert_eq!(
            store
                .save_product(&next, Some(current.version), Some(&received))
                .await,
            Ok(())
        );
        written.push(received);
        current = next;
    }
    let other = product(b, 4, at);
    let other_next = Product {
        stock: adjusted(&other.stock, -1),
        version: 2,
        updated_at: at + seconds(9),
        ..other.clone()
    };
    let damaged = adjustment(&other, &other_next, AdjustmentReason::Damage);
    assert_eq!(
        store
            .save_product(&other_next, Some(1), Some(&damaged))
            .await,
        Ok(())
    );

    let first = store.adjustments(a, 2, None).await.expect("a first page");
    let ids_of =
        |page: &Page<StockAdjustment>| page.items.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids_of(&first),
        [written[2].id.clone(), written[1].id.clone()],
        "newest first"
    );
    let cursor = first.next_cursor.expect("a second page");
    let second = store
        .adjustments(a, 2, Some(&cursor))
        .await
        .expect("a second page");
    assert_eq!(
        second.items,
        [written[0].clone()],
        "the oldest last, as written"
    );
    assert_eq!(
        store.adjustments(b, 2, Some(&cursor)).await,
        Err(StoreError::InvalidCursor),
        "a cursor of one SKU's history opens no other's"
    );
    assert_eq!(
        store.adjustments(b, 10, None).await.map(|p| p.items),
        Ok(vec![damaged]),
        "each SKU has its own history"
    );
    assert_eq!(
        store
            .adjustments(&sku(prefix, "CAT-X"), 10, None)
            .await
            .map(|p| p.items),
        Ok(vec![]),
        "an unknown SKU has none"
    );
}

/// Transfers: a dispatch writes the product, its history entry and the transfer together, on
/// the product's version and only once; a receipt only while the transfer is in transit; the
/// SKU's transfers list newest first.
pub async fn transfers_between_locations<S: InventoryStore>(store: &S, prefix: &str) {
    use crate::stock::{Transfer, TransferStatus};
    check_prefix(prefix);
    let at = base_time();
    let a = product(&sku(prefix, "TR-A"), 5, at);
    assert_eq!(store.save_product(&a, None, None).await, Ok(()));
    let sent = Transfer::dispatch(&a, DEFAULT_LOCATION, "AMS-1", 3, None, "staff", at)
        .expect("dispatching");
    let key = crate::stock::TransferKey {
        sku: a.sku.clone(),
        key: crate::ids::IdempotencyKey::parse(format!("{prefix}-send")).expect("a key"),
        transfer_id: sent.transfer.id.clone(),
        fingerprint: "BER-1>AMS-1:3".into(),
    };
    assert_eq!(store.save_transfer(&sent, Some(&key), &[]).await, Ok(()));
    assert_eq!(
        store.save_transfer(&sent, None, &[]).await,
        Err(StoreError::ConditionFailed),
        "the same dispatch twice"
    );
    assert_eq!(
        store.transfer_key(&a.sku, &key.key).await,
        Ok(Some(key.clone())),
        "the key is kept with the transfer it made"
    );
    let stored = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(stored, sent.product);
    assert_eq!(
        store.transfer(&a.sku, &sent.transfer.id).await,
        Ok(Some(sent.transfer.clone()))
    );

    let arrived = sent
        .transfer
        .receive(&stored, "staff", at + seconds(1))
        .expect("receiving");
    assert_eq!(store.save_transfer(&arrived, None, &[]).await, Ok(()));
    let stored = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(stored.stock.at("AMS-1").available(), 3);
    assert_eq!(stored.stock.at(DEFAULT_LOCATION).available(), 2);
    // A second receipt computed from the first's product is refused by the transfer's status
    // even where the product's version would let it through.
    let mut twice = arrived.clone();
    twice.product.version += 1;
    assert_eq!(
        store.save_transfer(&twice, None, &[]).await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(
        stored_product(store, &a.sku).await.expect("stored").stock,
        stored.stock,
        "nothing written"
    );

    // A SKU kept only at another location has no counters at the default one (zero or not,
    // as a store may hold them: its health counts no safety stock there) until stock is moved
    // there; from then on, run out or not, it is kept there.
    let mut b = product(&sku(prefix, "TR-B"), 0, at);
    b.stock = Stock::at_one(
        "AMS-1",
        crate::stock::StockLevel::from_counters(4, 0).expect("counters"),
    );
    assert_eq!(store.save_product(&b, None, None).await, Ok(()));
    let stored_b = stored_product(store, &b.sku).await.expect("stored");
    assert_eq!(stored_b, b);
    assert!(!stored_b.kept_at(DEFAULT_LOCATION));
    let home = Transfer::dispatch(&stored_b, "AMS-1", DEFAULT_LOCATION, 4, None, "staff", at)
        .expect("dispatching");
    assert_eq!(store.save_transfer(&home, None, &[]).await, Ok(()));
    let stored_b = stored_product(store, &b.sku).await.expect("stored");
    assert_eq!(stored_b, home.product);
    let landed = home
        .transfer
        .receive(&stored_b, "staff", at + seconds(1))
        .expect("receiving");
    assert_eq!(store.save_transfer(&landed, None, &[]).await, Ok(()));
    let stored_b = stored_product(store, &b.sku).await.expect("stored");
    assert_eq!(stored_b, landed.product);
    assert!(stored_b.kept_at(DEFAULT_LOCATION));

    let later = Transfer::dispatch(
        &stored_product(store, &a.sku).await.expect("stored"),
        "AMS-1",
        DEFAULT_LOCATION,
        1,
        Some("back".into()),
        "staff",
        at + seconds(2),
    )
    .expect("dispatching");
    assert_eq!(store.save_transfer(&later, None, &[]).await, Ok(()));
    let listed = store.transfers(&a.sku, 10, None).await.expect("listing");
    let ids: Vec<_> = listed
        .items
        .iter()
        .map(|t| (t.id.as_str(), t.status))
        .collect();
    assert_eq!(
        ids,
        [
            (later.transfer.id.as_str(), TransferStatus::InTransit),
            (sent.transfer.id.as_str(), TransferStatus::Received)
        ]
    );
}

/// An adjustment saved with an `Idempotency-Key` is found by it, and the key makes a second
/// save fail its condition, however the product changed in between.
pub async fn adjustment_keys<S: InventoryStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let sku = sku(prefix, "KEYED");
    let first = product(&sku, 5, at);
    assert_eq!(store.save_product(&first, None, None).await, Ok(()));
    let form = key(prefix, "receipt-form");
    assert_eq!(store.adjustment_by_key(&sku, &form).await, Ok(None));
    let later = |before: &Product, n: i64| Product {
        stock: adjusted(&before.stock, 3),
        version: before.version + 1,
        updated_at: at + seconds(n),
        ..before.clone()
    };
    let second = later(&first, 1);
    let received = StockAdjustment {
        key: Some(form.clone()),
        ..adjustment(&first, &second, AdjustmentReason::Receipt)
    };
    assert_eq!(
        store
            .save_product(&second, Some(first.version), Some(&received))
            .await,
        Ok(())
    );
    assert_eq!(
        store.adjustment_by_key(&sku, &form).await,
        Ok(Some(received.clone()))
    );
    let third = later(&second, 2);
    let again = StockAdjustment {
        key: Some(form.clone()),
        ..adjustment(&second, &third, AdjustmentReason::Receipt)
    };
    assert_eq!(
        store
            .save_product(&third, Some(second.version), Some(&again))
            .await,
        Err(StoreError::ConditionFailed),
        "the same key twice"
    );
    assert_eq!(
        stored_product(store, &sku).await.map(|p| p.version),
        Some(second.version),
        "nothing written"
    );
}

/// Purchase orders: placed with the product's incoming units in one write and its key once;
/// each later step written on the order's version it was made from (a receipt sent twice
/// counts once), with its history entry; listed newest first.
pub async fn purchase_orders<S: InventoryStore>(store: &S, prefix: &str) {
    use crate::purchase::{Placing, PurchaseKey, PurchaseOrder, PurchaseStatus};
    check_prefix(prefix);
    let at = base_time();
    let a = product(&sku(prefix, "PO-A"), 1, at);
    assert_eq!(store.save_product(&a, None, None).await, Ok(()));
    let placing = |quantity: u32| Placing {
        location: "AMS-1",
        quantity,
        expected_on: at.date_naive(),
        supplier_reference: Some("S-1".into()),
        note: None,
    };
    let placed = PurchaseOrder::place(&a, placing(5), "conformance", at);
    let key = |order: &PurchaseOrder| PurchaseKey {
        sku: a.sku.clone(),
        key: IdempotencyKey::parse(format!("{prefix}-po-1")).expect("a key"),
        purchase_order_id: order.id.clone(),
        fingerprint: placing(5).fingerprint(),
    };
    assert_eq!(
        store
            .save_purchase_order(&placed, Some(&key(&placed.order)))
            .await,
        Ok(())
    );
    assert_eq!(
        stored_product(store, &a.sku).await.as_ref(),
        Some(&placed.product)
    );
    assert_eq!(
        stored_product(store, &a.sku)
            .await
            .map(|p| p.incoming_at("AMS-1")),
        Some(5)
    );
    assert_eq!(
        store.purchase_order(&a.sku, &placed.order.id).await,
        Ok(Some(placed.order.clone()))
    );
    assert_eq!(
        store.purchase_key(&a.sku, &key(&placed.order).key).await,
        Ok(Some(key(&placed.order)))
    );

    // The same key again, on the current product: refused, nothing written.
    let twin = PurchaseOrder::place(&placed.product, placing(5), "conformance", at + seconds(1));
    assert_eq!(
        store
            .save_purchase_order(&twin, Some(&key(&twin.order)))
            .await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(store.purchase_order(&a.sku, &twin.order.id).await, Ok(None));
    assert_eq!(
        stored_product(store, &a.sku).await.as_ref(),
        Some(&placed.product)
    );

    // Two units arrive: available at AMS-1 (its first counters), three still incoming.
    let some = placed
        .order
        .receive(&placed.product, 2, "conformance", at + seconds(2))
        .expect("a receipt");
    assert_eq!(store.save_purchase_order(&some, None).await, Ok(()));
    let now = stored_product(store, &a.sku).await.expect("stored");
    assert_eq!(
        (now.stock.at("AMS-1").available(), now.incoming_at("AMS-1")),
        (2, 3)
    );
    let history = store.adjustments(&a.sku, 10, None).await.expect("history");
    assert_eq!(
        history.items.first(),
        some.adjustment.as_ref(),
        "the receipt's entry"
    );
    // The same delivery recorded again from the order as it was: refused.
    let again = placed
        .order
        .receive(&now, 2, "conformance", at + seconds(3))
        .expect("a receipt");
    assert_eq!(
        store.save_purchase_order(&again, None).await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(stored_product(store, &a.sku).await.as_ref(), Some(&now));

    let closed = some.order.close(&now, at + seconds(4)).expect("closing");
    assert_eq!(store.save_purchase_order(&closed, None).await, Ok(()));
    let stored = store.purchase_order(&a.sku, &placed.order.id).await;
    assert_eq!(
        stored.map(|o| o.map(|o| (o.status, o.received))),
        Ok(Some((PurchaseStatus::Closed, 2)))
    );
    assert_eq!(
        stored_product(store, &a.sku)
            .await
            .map(|p| p.incoming_total()),
        Some(0)
    );

    let later = PurchaseOrder::place(&closed.product, placing(1), "conformance", at + seconds(5));
    assert_eq!(store.save_purchase_order(&later, None).await, Ok(()));
    let listed = store
        .purchase_orders(&a.sku, 10, None)
        .await
        .expect("listed");
    let ids: Vec<&str> = listed.items.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        ids,
        [later.order.id.as_str(), placed.order.id.as_str()],
        "newest first"
    );
}
