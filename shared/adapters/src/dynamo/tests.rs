//! The stored shapes, pinned, and what the item layout promises.

use super::*;

#[test]
fn a_cursor_only_opens_the_listing_it_came_from() {
    let last = HashMap::from([
        ("pk".to_owned(), s("ORDER#1")),
        ("sk".to_owned(), s("ORDER")),
        ("gsi1pk".to_owned(), s("CUSTOMER#alice")),
        ("gsi1sk".to_owned(), s("ORDER#1")),
    ]);
    let cursor = DynamoStore::encode_cursor(&last).unwrap();
    let decode = |index, partition| DynamoStore::decode_cursor(&cursor, index, partition);
    assert_eq!(decode("gsi1", "CUSTOMER#alice").unwrap(), last);
    assert_eq!(
        decode("gsi1", "CUSTOMER#mallory"),
        Err(StoreError::InvalidCursor)
    );
    assert_eq!(
        decode("gsi3", "CUSTOMER#alice"),
        Err(StoreError::InvalidCursor)
    );
    assert_eq!(
        DynamoStore::decode_cursor("not base64!", "gsi1", "CUSTOMER#alice"),
        Err(StoreError::InvalidCursor)
    );
}

/// The item as DynamoDB JSON (`{"S": ..}`, `{"N": ..}`, maps in key order), so a snapshot
/// shows each attribute's type as well as its name.
fn dynamo_json(value: &AttributeValue) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::L(items) => {
            json!({ "L": items.iter().map(dynamo_json).collect::<Vec<_>>() })
        }
        AttributeValue::M(map) => {
            let sorted: std::collections::BTreeMap<_, _> = map
                .iter()
                .map(|(k, v)| (k.clone(), dynamo_json(v)))
                .collect();
            json!({ "M": sorted.into_iter().collect::<Map<String, Value>>() })
        }
        other => json!({ "unexpected": format!("{other:?}") }),
    }
}

fn item_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    let sorted: std::collections::BTreeMap<_, _> = item
        .iter()
        .map(|(k, v)| (k.clone(), dynamo_json(v)))
        .collect();
    serde_json::to_value(sorted).unwrap()
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

/// The stored shape of an order is the table's, not the API's: a rename in the aggregate
/// that would change what is stored (and what every existing item holds) fails here first.
#[test]
fn the_stored_shape_of_an_order_is_pinned() {
    use oms_domain::fixtures::delivered_order;
    use oms_domain::order::returns::policy::ReturnPolicy;
    use oms_domain::request::returns::{ReceiptRequest, ReturnRequest};
    let delivered = delivered_order(
        "01JDAAAAAAAAAAAAAAAAAAAAAA",
        "customer-ada",
        at("2026-11-20T10:00:00Z"),
    );
    let sku = delivered.lines[0].sku.as_str().to_owned();
    let policy = ReturnPolicy::default_policy();
    let request = ReturnRequest::parse(&serde_json::json!({"lines": [
        {"sku": sku, "quantity": 1, "reason": "DAMAGED", "comment": "cracked"}
    ]}))
    .unwrap();
    let key = IdempotencyKey::parse("return-1").unwrap();
    let requested = delivered
        .request_return(&request, key, &[], &policy, at("2026-11-21T09:00:00Z"))
        .unwrap()
        .order;
    let rma = requested.returns[0].return_id.clone();
    let requested = if requested.returns[0].status
        == oms_domain::order::returns::ReturnStatus::PendingApproval
    {
        requested
            .decide_return(
                &rma,
                true,
                "admin staff-grace",
                None,
                at("2026-11-21T10:00:00Z"),
            )
            .unwrap()
            .order
    } else {
        requested
    };
    let receipt = ReceiptRequest::parse(&serde_json::json!({
        "lines": [{"sku": sku, "quantity": 1, "disposition": "RESTOCK"}],
        "note": "box dented"
    }))
    .unwrap();
    let received = requested
        .receive_return(
            &rma,
            &receipt,
            "warehouse packer-1",
            &policy,
            &oms_domain::shipping::ShippingPolicy::default_policy(),
            at("2026-11-25T08:00:00Z"),
        )
        .unwrap()
        .order;
    let item = to_item(&OrderItem::new(&received)).unwrap();
    insta::assert_json_snapshot!("order_item_returned", item_json(&item));
    // And it reads back as the same order.
    assert_eq!(from_item::<OrderItem>(item).unwrap().order, received);
}

/// Where each line of `order`, stored and read back, has its units: its one allocation's
/// location.
fn read_back_at(store: &DynamoStore, order: &oms_domain::order::Order) -> Vec<String> {
    let read = store
        .order_from(to_item(&OrderItem::new(order)).unwrap())
        .unwrap();
    read.lines
        .iter()
        .map(|l| match l.allocations.as_slice() {
            [one] => one.location.clone(),
            other => panic!("one allocation per line, not {other:?}"),
        })
        .collect()
}

/// `order`'s item as it was stored when an order had one shipment: its `fulfillment`, without
/// a number or lines.
fn stored_before_shipments(order: &Order) -> HashMap<String, AttributeValue> {
    let mut json = serde_json::to_value(OrderItem::new(order)).unwrap();
    let object = json.as_object_mut().unwrap();
    if let Some(serde_json::Value::Array(mut shipments)) = object.remove("shipments") {
        let mut first = shipments.remove(0);
        let fields = first.as_object_mut().unwrap();
        fields.remove("number");
        fields.remove("lines");
        fields.remove("estimate");
        object.insert("fulfillment".into(), first);
    }
    serde_dynamo::to_item(json).unwrap()
}

/// An order stored with one shipment reads with it as its first, holding every line.
#[test]
fn an_order_stored_with_one_shipment_reads_it_as_its_first() {
    let delivered = oms_domain::fixtures::delivered_order(
        "01JDAAAAAAAAAAAAAAAAAAAAAB",
        "customer-ada",
        at("2026-11-20T10:00:00Z"),
    );
    let item = stored_before_shipments(&delivered);
    assert!(item.contains_key("fulfillment") && !item.contains_key("shipments"));
    let read = DynamoStore::lazy("orders").order_from(item).unwrap();
    assert_eq!(read.shipments.len(), 1);
    let first = &read.shipments[0];
    assert_eq!(first.number, 1);
    assert_eq!(first.lines.len(), delivered.lines.len());
    assert_eq!(
        first.units(),
        delivered
            .lines
            .iter()
            .map(|l| l.quantity.get())
            .sum::<u32>()
    );
    let written = item_json(&to_item(&OrderItem::new(&read)).unwrap()).to_string();
    assert!(
        !written.contains("\"fulfillment\""),
        "written back as shipments only"
    );
}

/// An order split over two locations before shipments were per location, stored with its one
/// shipment still in the warehouse: read as one shipment per location, each with the units
/// reserved there, so each leaves from the counters that hold them.
#[test]
fn a_split_order_stored_with_one_shipment_reads_as_one_per_location() {
    use oms_domain::routing::{Plan, PlannedShipment};
    let placed = oms_domain::fixtures::sample_order(
        "01JDAAAAAAAAAAAAAAAAAAAAAE",
        "customer-ada",
        at("2026-11-20T10:00:00Z"),
    );
    let shipment = |location: &str, line: usize| PlannedShipment {
        location: location.into(),
        lines: vec![(
            placed.lines[line].sku.clone(),
            placed.lines[line].quantity.get(),
        )],
        weight_grams: 0,
        cost: 0,
    };
    let plan = Plan {
        shipments: vec![shipment("BER-1", 0), shipment("AMS-1", 1)],
    };
    let now = at("2026-11-20T10:00:01Z");
    let fulfilling = placed
        .reserve(&plan, now)
        .unwrap()
        .authorized_for_test(now)
        .start_fulfillment("BER-1", now)
        .unwrap();
    let mut legacy = fulfilling.clone();
    legacy.shipments.truncate(1);
    legacy.shipments_made = 0;
    let read = DynamoStore::lazy("orders")
        .order_from(stored_before_shipments(&legacy))
        .unwrap();
    let at: Vec<_> = read
        .shipments
        .iter()
        .map(|s| (s.warehouse.as_str(), s.lines[0].sku.to_string(), s.units()))
        .collect();
    assert_eq!(
        at,
        [
            (
                "BER-1",
                placed.lines[0].sku.to_string(),
                placed.lines[0].quantity.get()
            ),
            (
                "AMS-1",
                placed.lines[1].sku.to_string(),
                placed.lines[1].quantity.get()
            )
        ]
    );
}

/// An order stored before there were locations (its lines name none) reads as reserved whole at
/// the store's default location, so its shipment, cancellation and returns move those counters
/// as they always did; an order never reserved reads with none.
#[test]
fn an_order_from_before_locations_reads_as_allocations_the_default_location() {
    let delivered = oms_domain::fixtures::delivered_order(
        "01JDAAAAAAAAAAAAAAAAAAAAAB",
        "customer-ada",
        at("2026-11-20T10:00:00Z"),
    );
    let mut legacy = delivered.clone();
    for line in &mut legacy.lines {
        line.allocations.clear();
    }
    let item = stored_before_shipments(&legacy);
    assert!(!item_json(&item).to_string().contains("allocations"));
    let store = DynamoStore::lazy("orders").with_default_location("BER-9");
    let read = store.order_from(item).unwrap();
    for line in &read.lines {
        assert_eq!(line.allocations.len(), 1);
        assert_eq!(
            line.allocations[0].location, "BER-1",
            "its shipment's warehouse"
        );
        assert_eq!(line.allocations[0].quantity, line.quantity);
    }
    // Reserved and not yet in the warehouse's hands: at the default location.
    let mut reserved = oms_domain::fixtures::sample_order(
        "01JDAAAAAAAAAAAAAAAAAAAAAD",
        "customer-ada",
        at("2026-11-20T10:00:00Z"),
    )
    .reserve_all_at("BER-1", at("2026-11-20T10:00:01Z"))
    .unwrap();
    for line in &mut reserved.lines {
        line.allocations.clear();
    }
    assert_eq!(read_back_at(&store, &reserved), ["BER-9", "BER-9"]);
    // A replacement opened straight in the warehouse's hands, before there were locations: at
    // its shipment's warehouse.
    let mut replacement = legacy.clone();
    replacement
        .timeline
        .retain(|e| e.status != oms_domain::order::OrderStatus::Reserved);
    if let Some(f) = replacement.shipments.first_mut() {
        f.warehouse = "AMS-1".into();
    }
    assert_eq!(read_back_at(&store, &replacement), ["AMS-1", "AMS-1"]);
    let pending = oms_domain::fixtures::sample_order(
        "01JDAAAAAAAAAAAAAAAAAAAAAC",
        "customer-ada",
        at("2026-11-20T10:00:00Z"),
    );
    let read = store
        .order_from(to_item(&OrderItem::new(&pending)).unwrap())
        .unwrap();
    assert!(read.lines.iter().all(|l| l.allocations.is_empty()));
}

/// A product's counters: the default location's at the item's top level (as every product
/// written before there were locations holds its one warehouse's), the others under
/// `locations`; both read back, and an item without `locations` has stock at the default only.
#[test]
fn a_product_keeps_its_default_location_at_the_top_and_the_others_beside() {
    use oms_domain::stock::StockLevel;
    let mut product = oms_domain::fixtures::product("MUG", 1200, 4);
    product
        .stock
        .set("AMS-1", StockLevel::from_counters(2, 1).unwrap());
    let item = to_item(&ProductItem::new(&product, "BER-1")).unwrap();
    let shape = item_json(&item);
    assert_eq!(shape["available"], serde_json::json!({"N": "4"}));
    assert_eq!(
        shape["locations"]["M"]["AMS-1"]["M"]["reserved"],
        serde_json::json!({"N": "1"})
    );
    let store = DynamoStore::lazy("orders");
    assert_eq!(store.product_from(item.clone()).unwrap(), product);
    let mut legacy = item;
    legacy.remove("locations");
    let read = store.product_from(legacy).unwrap();
    assert_eq!(read.stock.locations().count(), 1);
    assert_eq!(read.stock.at("BER-1").available(), 4);
}

/// A SKU kept only at another location reads back as the in-memory store holds it: no
/// counters at the default location (whose zero attributes every item has), so its health counts
/// no safety stock there; one that ran out at the default location keeps its zero counters
/// there, and an item written before the marker keeps them too.
#[test]
fn a_sku_kept_only_elsewhere_has_no_counters_at_the_default_location() {
    use oms_domain::stock::{Stock, StockLevel};
    let store = DynamoStore::lazy("orders");
    let today = chrono::Utc::now().date_naive();
    let policy = oms_domain::replenishment::HealthPolicy::default();
    let mut elsewhere = oms_domain::fixtures::product("LAMP", 1200, 0);
    elsewhere.stock = Stock::at_one("AMS-1", StockLevel::from_counters(15, 0).unwrap());
    elsewhere.replenishment.safety_stock = 10;
    let item = to_item(&ProductItem::new(&elsewhere, "BER-1")).unwrap();
    let read = store.product_from(item.clone()).unwrap();
    assert_eq!(read, elsewhere);
    assert!(!read.kept_at("BER-1"));
    assert_eq!(read.health(today, policy), elsewhere.health(today, policy));
    assert!(!read.health_at("BER-1", today, policy).reorder);
    let mut legacy = item;
    legacy.remove("homeKept");
    assert!(store.product_from(legacy).unwrap().kept_at("BER-1"));
    // Ran out at the default location, stocked elsewhere too: still kept there.
    let mut ran_out = elsewhere.clone();
    ran_out
        .stock
        .set("BER-1", StockLevel::from_counters(0, 0).unwrap());
    let read = store
        .product_from(to_item(&ProductItem::new(&ran_out, "BER-1")).unwrap())
        .unwrap();
    assert_eq!(read, ran_out);
    assert!(read.kept_at("BER-1"));
}

/// The attribute the template's table expires items by.
fn ttl_attribute() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    let template: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    template["Resources"]["OrdersTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"]
        .as_str()
        .expect("the orders table names a TTL attribute")
        .to_owned()
}

/// Idempotency records hold a first answer with the customer's name, address and contact:
/// they must carry the attribute the table's TTL reads, as a number of epoch seconds, or
/// they are kept forever.
#[test]
fn idempotency_records_carry_the_attribute_the_table_expires_by() {
    let created = at("2026-11-20T10:00:00Z");
    let record = IdempotencyRecord {
        customer_id: CustomerId::parse("customer-ada").unwrap(),
        key: IdempotencyKey::parse("k-1").unwrap(),
        fingerprint: "f".into(),
        order_id: OrderId::parse("01JDAAAAAAAAAAAAAAAAAAAAAA").unwrap(),
        response: "{}".into(),
        created_at: created,
    };
    let item = to_item(&IdempotencyItem::new(&record)).unwrap();
    let ttl = ttl_attribute();
    let expires = created + chrono::Duration::days(IDEMPOTENCY_TTL_DAYS);
    assert_eq!(
        item.get(&ttl),
        Some(&AttributeValue::N(expires.timestamp().to_string())),
        "the idempotency record must carry {ttl}"
    );
    // A record written under the old name still reads.
    let mut old = item.clone();
    let value = old.remove(&ttl).unwrap();
    old.insert("expires_at".into(), value);
    assert_eq!(from_item::<IdempotencyItem>(old).unwrap().record, record);
}
