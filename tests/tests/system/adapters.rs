//! The DynamoDB adapters against the emulator's real DynamoDB protocol: the conditions the domain
//! relies on hold on the wire, not just in memory. Each test works in a scratch table of its own
//! (the orders table's keys and indexes, no stream), so the running system does not react.

use chrono::Utc;
use oms_adapters::dynamo::DynamoStore;
use oms_domain::app::inventory::put_product;
use oms_domain::app::Caller;
use oms_domain::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use oms_domain::order::Order;
use oms_domain::ports::{
    CreateOutcome, IdempotencyRecord, InventoryStore, OrderStore, OrderTransactions,
    ReserveOutcome, StoreError,
};
use oms_domain::request::OrderRequest;
use oms_domain::shipping::ShippingPolicy;
use oms_system_tests::{order_body, unique, Stack};
use serde_json::json;

async fn store(stack: &Stack) -> DynamoStore {
    DynamoStore::from_config(&stack.sdk().await, stack.scratch_table().await)
}

fn admin() -> Caller {
    Caller {
        customer_id: CustomerId::parse("staff").unwrap(),
        scopes: vec!["oms:admin".into()],
    }
}

async fn sku(store: &DynamoStore, on_hand: u32) -> Sku {
    let sku = Sku::parse(unique("SKU").to_uppercase()).unwrap();
    let body = json!({"name": "Test", "unitPrice": {"amount": 1000, "currency": "EUR"}, "weightGrams": 500, "onHand": on_hand});
    put_product(
        store,
        &ShippingPolicy::default_policy(),
        &oms_domain::location::Locations::default_locations(),
        &admin(),
        &sku,
        &body,
        Utc::now(),
    )
    .await
    .unwrap();
    sku
}

async fn stock(store: &DynamoStore, sku: &Sku) -> (u32, u32) {
    let product = store.product(sku).await.unwrap().unwrap();
    (product.stock.available(), product.stock.reserved())
}

async fn order_for(store: &DynamoStore, customer: &str, lines: &[(&Sku, u32)]) -> Order {
    let skus: Vec<Sku> = lines.iter().map(|(s, _)| (*s).clone()).collect();
    let catalog = store.products(&skus).await.unwrap();
    let named: Vec<(&str, u32)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    let request = OrderRequest::parse(&order_body(&named)).unwrap();
    let now = Utc::now();
    Order::place(
        OrderId::generate(now),
        CustomerId::parse(customer).unwrap(),
        &request,
        &catalog,
        &ShippingPolicy::default_policy(),
        now,
    )
    .unwrap()
}

fn record(order: &Order, key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        customer_id: order.customer_id.clone(),
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: "f".into(),
        order_id: order.id.clone(),
        response: "{}".into(),
        created_at: order.created_at,
    }
}

#[tokio::test]
async fn create_is_once_per_key_and_save_is_conditional_on_the_version() {
    let stack = Stack::connect().await;
    let store = store(&stack).await;
    let sku = sku(&store, 5).await;
    let first = order_for(&store, "ada", &[(&sku, 1)]).await;
    let second = order_for(&store, "ada", &[(&sku, 1)]).await;
    assert_eq!(
        store.create(&first, &record(&first, "k")).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.create(&second, &record(&second, "k")).await.unwrap(),
        CreateOutcome::KeyAlreadyUsed
    );
    assert!(
        store.get(&second.id).await.unwrap().is_none(),
        "the losing create wrote nothing"
    );
    let stored = store
        .idempotency_record(&first.customer_id, &IdempotencyKey::parse("k").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.order_id, first.id);
    assert_eq!(
        store.get(&first.id).await.unwrap().unwrap(),
        first,
        "an order round-trips through serde_dynamo"
    );

    let rejected = first.reject(vec![], Utc::now()).unwrap();
    store.save(&rejected, first.version).await.unwrap();
    assert_eq!(
        store.save(&rejected, first.version).await,
        Err(StoreError::ConditionFailed),
        "a stale version loses"
    );
    assert_eq!(store.get(&first.id).await.unwrap().unwrap(), rejected);
}

#[tokio::test]
async fn a_reservation_is_all_lines_or_none_and_reports_what_was_available() {
    let stack = Stack::connect().await;
    let store = store(&stack).await;
    let (a, b) = (sku(&store, 5).await, sku(&store, 1).await);
    let order = order_for(&store, "ada", &[(&a, 2), (&b, 2)]).await;
    store.create(&order, &record(&order, "k")).await.unwrap();
    let outcome = store
        .reserve(&order.reserve_all_at("BER-1", Utc::now()).unwrap())
        .await
        .unwrap();
    let ReserveOutcome::Short(shortages) = outcome else {
        panic!("expected a shortage, got {outcome:?}")
    };
    assert_eq!(
        (shortages.len(), &shortages[0].sku, shortages[0].available),
        (1, &b, 1)
    );
    assert_eq!(stock(&store, &a).await, (5, 0), "nothing moved");
    assert_eq!(
        store.get(&order.id).await.unwrap().unwrap().status,
        order.status,
        "the order did not move either"
    );

    let fine = order_for(&store, "ada", &[(&a, 2)]).await;
    store.create(&fine, &record(&fine, "k2")).await.unwrap();
    let mut stale = fine.reserve_all_at("BER-1", Utc::now()).unwrap();
    stale.version += 5;
    assert_eq!(
        store.reserve(&stale).await.unwrap(),
        ReserveOutcome::OrderChanged
    );
    assert_eq!(stock(&store, &a).await, (5, 0));
    assert_eq!(
        store
            .reserve(&fine.reserve_all_at("BER-1", Utc::now()).unwrap())
            .await
            .unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(stock(&store, &a).await, (3, 2));
}

#[tokio::test]
async fn listings_page_newest_first_through_the_customer_index() {
    let stack = Stack::connect().await;
    let store = store(&stack).await;
    let sku = sku(&store, 5).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let order = order_for(&store, "ada", &[(&sku, 1)]).await;
        store
            .create(&order, &record(&order, &format!("k{i}")))
            .await
            .unwrap();
        ids.push(order.id);
    }
    let customer = CustomerId::parse("ada").unwrap();
    let first = store.list_for_customer(&customer, 2, None).await.unwrap();
    assert_eq!(
        first.items.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        [ids[2].clone(), ids[1].clone()]
    );
    let second = store
        .list_for_customer(&customer, 2, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|o| o.id.clone())
            .collect::<Vec<_>>(),
        [ids[0].clone()]
    );
    let other = CustomerId::parse("mallory").unwrap();
    assert_eq!(
        store
            .list_for_customer(&other, 2, first.next_cursor.as_deref())
            .await,
        Err(StoreError::InvalidCursor)
    );
}

#[tokio::test]
async fn the_intake_operation_runs_against_dynamodb() {
    let stack = Stack::connect().await;
    let store = store(&stack).await;
    let sku = sku(&store, 3).await;
    let caller = Caller {
        customer_id: CustomerId::parse("ada").unwrap(),
        scopes: vec![],
    };
    let key = IdempotencyKey::parse("op-key").unwrap();
    let body = order_body(&[(sku.as_str(), 1)]);
    let policy = ShippingPolicy::default_policy();
    let limits = oms_domain::order::OrderLimits::default();
    let locations = oms_domain::location::Locations::default_locations();
    let place = || {
        oms_domain::app::intake::place_order(
            &store,
            &store,
            oms_domain::app::intake::IntakePolicies {
                shipping: &policy,
                limits: &limits,
                locations: &locations,
            },
            &caller,
            &key,
            &body,
            Utc::now(),
        )
    };
    let first = place().await.unwrap();
    let again = place().await.unwrap();
    assert_eq!((first.order_id, first.body), (again.order_id, again.body));
    assert!(again.replayed);
}

#[tokio::test]
async fn the_notification_cursor_is_claimed_once_and_moves_on_in_order() {
    use oms_domain::notifications::{Channel, Preferences};
    use oms_domain::ports::{NotificationCursor, NotificationStore, NOTIFICATION_CLAIM_SECONDS};

    let stack = Stack::connect().await;
    let store = store(&stack).await;
    let sku = sku(&store, 5).await;
    let order = order_for(&store, "grace", &[(&sku, 1)]).await;
    store.create(&order, &record(&order, "n")).await.unwrap();
    let wants = Preferences {
        email: true,
        sms: false,
        webhook: true,
    };
    store
        .save_preferences(&order.customer_id, &wants, Utc::now())
        .await
        .unwrap();

    // One read brings the cursor (none yet: at 1), the order and the preferences.
    let (cursor, read, preferences) = store
        .notification_context(&order.id, &order.customer_id)
        .await
        .unwrap();
    assert_eq!(cursor, NotificationCursor::default());
    assert_eq!(read.as_ref(), Some(&order));
    assert_eq!(preferences, Some(wants));

    // Of two claims on event 1, one wins; the cursor cannot move past another event.
    let now = Utc::now();
    store.claim(&order.id, 1, now).await.unwrap();
    assert_eq!(
        store.claim(&order.id, 1, now).await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(
        store.advance(&order.id, 2).await,
        Err(StoreError::ConditionFailed)
    );
    store.mark_sent(&order.id, 1, Channel::Email).await.unwrap();
    assert_eq!(
        store.mark_sent(&order.id, 2, Channel::Webhook).await,
        Err(StoreError::ConditionFailed),
        "only the claimed event records its sends"
    );

    // A claim that ran out is taken over, and what it sent stays recorded.
    let later = now + chrono::Duration::seconds(NOTIFICATION_CLAIM_SECONDS + 1);
    store.claim(&order.id, 1, later).await.unwrap();
    let cursor = store.cursor(&order.id).await.unwrap();
    assert_eq!(cursor.next, 1);
    assert_eq!(cursor.sent, [Channel::Email]);
    assert_eq!(
        cursor.claimed_at.map(|at| at.timestamp_millis()),
        Some(later.timestamp_millis())
    );

    // Moving on drops the claim and its record of sends.
    store.advance(&order.id, 1).await.unwrap();
    assert_eq!(
        store.advance(&order.id, 1).await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(
        store.cursor(&order.id).await.unwrap(),
        NotificationCursor {
            next: 2,
            ..NotificationCursor::default()
        }
    );
    // Events without a claim (of no interest to customers) just move it on.
    store.advance(&order.id, 2).await.unwrap();
    assert_eq!(store.cursor(&order.id).await.unwrap().next, 3);
}

/// The store conformance suite (`oms_domain::conformance`) against DynamoDB: the same checks the
/// in-memory store passes in the domain crate's tests. Needs only the emulator (run these with
/// `cargo test -p oms-system-tests --test adapters conformance`); each check works in a scratch
/// table of its own, with names of its own.
mod conformance {
    use oms_adapters::dynamo::DynamoStore;
    use oms_domain::conformance::{self as suite, AdjustmentLog};
    use oms_domain::ids::Sku;
    use oms_domain::stock::StockAdjustment;
    use oms_system_tests::{unique, Stack};

    /// A store on a fresh scratch table, the table's adjustments, and a prefix for names.
    async fn setup() -> (DynamoStore, Adjustments, String) {
        let stack = Stack::emulator_only().await;
        let sdk = stack.sdk().await;
        let table = stack.scratch_table().await;
        let adjustments = Adjustments {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            table: table.clone(),
        };
        (
            DynamoStore::from_config(&sdk, table),
            adjustments,
            unique("conf"),
        )
    }

    /// The stock adjustments of a table, read straight from their items (`SKU#<sku>` /
    /// `ADJUSTMENT#<id>`): no port reads them back.
    struct Adjustments {
        client: aws_sdk_dynamodb::Client,
        table: String,
    }

    impl AdjustmentLog for Adjustments {
        async fn recorded_adjustments(&self, sku: &Sku) -> Vec<StockAdjustment> {
            use aws_sdk_dynamodb::types::AttributeValue;
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :adjustment)")
                .expression_attribute_values(":pk", AttributeValue::S(format!("SKU#{sku}")))
                .expression_attribute_values(":adjustment", AttributeValue::S("ADJUSTMENT#".into()))
                .consistent_read(true)
                .send()
                .await
                .expect("querying adjustments");
            output
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|item| {
                    serde_dynamo::from_item(serde_dynamo::Item::from(item))
                        .expect("an adjustment item")
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn conformance_order_store() {
        let (store, _, prefix) = setup().await;
        suite::order_store(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_customer_listing() {
        let (store, _, prefix) = setup().await;
        suite::customer_listing(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_sweep_listings() {
        let (store, _, prefix) = setup().await;
        suite::sweep_listings(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_catalog_and_history() {
        let (store, _, prefix) = setup().await;
        suite::catalog_and_history(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_pick_list() {
        let (store, _, prefix) = setup().await;
        suite::pick_list(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_pick_list_cursor_outlives_its_order() {
        let (store, _, prefix) = setup().await;
        suite::pick_list_cursor_outlives_its_order(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_cursors_belong_to_their_query() {
        let (store, _, prefix) = setup().await;
        suite::cursors_belong_to_their_query(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_pending_returns() {
        let (store, _, prefix) = setup().await;
        suite::pending_returns(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_inventory_store() {
        let (store, adjustments, prefix) = setup().await;
        suite::inventory_store(&store, &adjustments, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_reserve_all_or_nothing() {
        let (store, _, prefix) = setup().await;
        suite::reserve_all_or_nothing(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_commit_conditions() {
        let (store, _, prefix) = setup().await;
        suite::commit_conditions(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_commit_moves_stock() {
        let (store, _, prefix) = setup().await;
        suite::commit_moves_stock(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_status_keyset() {
        let (store, _, prefix) = setup().await;
        suite::status_keyset(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_order_search() {
        let (store, _, prefix) = setup().await;
        suite::order_search(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_status_counts() {
        let (store, _, prefix) = setup().await;
        suite::status_counts(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_adjustment_keys() {
        let (store, _, prefix) = setup().await;
        suite::adjustment_keys(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_location_store() {
        let (store, _, _) = setup().await;
        suite::location_store(&store).await;
    }

    #[tokio::test]
    async fn conformance_commit_records_a_move_in_the_stock_history() {
        let (store, adjustments, prefix) = setup().await;
        suite::commit_records_a_move_in_the_stock_history(&store, &adjustments, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_transfers_between_locations() {
        let (store, _, prefix) = setup().await;
        suite::transfers_between_locations(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_purchase_orders() {
        let (store, _, prefix) = setup().await;
        suite::purchase_orders(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_stock_per_location() {
        let (store, _, prefix) = setup().await;
        suite::stock_per_location(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_backorders() {
        let (store, _, prefix) = setup().await;
        suite::backorders(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_last_unit_goes_once() {
        let (store, _, prefix) = setup().await;
        suite::last_unit_goes_once(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_notification_store() {
        let (store, _, prefix) = setup().await;
        suite::notification_store(&store, &prefix).await;
    }

    #[tokio::test]
    async fn conformance_claim_runs_out_after_exactly_the_claim_seconds() {
        let (store, _, prefix) = setup().await;
        suite::claim_runs_out_after_exactly_the_claim_seconds(&store, &prefix).await;
    }
}
