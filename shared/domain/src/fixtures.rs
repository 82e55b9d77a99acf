//! Fixtures for handler tests: the sample events in `events/` (the same files `cargo lambda
//! invoke --data-file` takes), and orders made from them by the domain's own operations, so a
//! test never hand-writes an order the domain could not have produced.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::ids::{CustomerId, OrderId, Sku};
use crate::money::{Currency, Money};
use crate::order::Order;
use crate::request::OrderRequest;
use crate::shipping::ShippingPolicy;
use crate::stock::{Product, Stock, StockLevel};

/// The repository's `events/` folder.
pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// The text of `events/<path>`.
pub fn event_text(path: &str) -> String {
    let full = events_dir().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `events/<path>`, parsed.
pub fn event<T: serde::de::DeserializeOwned>(path: &str) -> T {
    serde_json::from_str(&event_text(path)).unwrap_or_else(|e| panic!("events/{path}: {e}"))
}

/// The default location of the demo's locations, where fixture stock is kept.
pub const DEFAULT_LOCATION: &str = "BER-1";

/// A catalog product at `unit_price` euro cents, 300 g, with `stock` units.
pub fn product(sku: &str, unit_price: i64, stock: u32) -> Product {
    Product {
        sku: Sku::parse(sku).expect("a fixture SKU"),
        name: sku.to_owned(),
        unit_price: Money::new(unit_price, Currency::parse("EUR").expect("EUR")).expect("a price"),
        weight_grams: 300,
        active: true,
        low_stock_threshold: 1,
        stock: Stock::at_one(
            DEFAULT_LOCATION,
            StockLevel::new(stock).expect("a stock level"),
        ),
        version: 1,
        updated_at: Utc::now(),
    }
}

/// The order request in `events/order-intake/place-order.json`.
pub fn sample_request() -> OrderRequest {
    let event: serde_json::Value = event("order-intake/place-order.json");
    let body: serde_json::Value =
        serde_json::from_str(event["body"].as_str().expect("a body")).expect("JSON");
    OrderRequest::parse(&body).expect("a valid sample order")
}

/// The sample order, placed as `id` for `customer` at `at`, priced 25.00 a unit.
pub fn sample_order(id: &str, customer: &str, at: DateTime<Utc>) -> Order {
    let request = sample_request();
    let catalog: Vec<Product> = request
        .lines
        .iter()
        .map(|l| product(l.sku.as_str(), 2500, 10))
        .collect();
    Order::place(
        OrderId::parse(id).expect("a fixture order id"),
        CustomerId::parse(customer).expect("a fixture customer"),
        &request,
        &catalog,
        &ShippingPolicy::default_policy(),
        at,
    )
    .expect("the sample order is valid")
}

/// The sample order taken through reservation, the warehouse and the carrier by the domain's own
/// steps, delivered at `delivered_at`.
pub fn delivered_order(id: &str, customer: &str, delivered_at: DateTime<Utc>) -> Order {
    use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate};
    let at = delivered_at - chrono::Days::new(2);
    let packed = sample_order(id, customer, at)
        .reserve_all_at("BER-1", at)
        .expect("a sample order can be reserved")
        .authorized_for_test(at)
        .start_fulfillment("BER-1", at)
        .and_then(|o| o.pick(1, "picker", at))
        .and_then(|o| o.pack(1, parcel(), "packer", at))
        .expect("the reserved sample order can be picked and packed");
    let shipped = packed
        .ship(1, tracking(), packed.shipping.estimate, "packer", at)
        .expect("the packed sample order ships");
    match shipped
        .carrier_event(
            1,
            "fixture-1",
            CarrierEventKind::Delivered,
            None,
            delivered_at,
            delivered_at,
        )
        .expect("the shipped sample order can be delivered")
    {
        CarrierUpdate::Applied(order) => *order,
        CarrierUpdate::Duplicate | CarrierUpdate::Superseded => {
            unreachable!("a first carrier event")
        }
    }
}

/// A packed parcel of 900 g, 30 × 20 × 10 cm.
pub fn parcel() -> crate::order::fulfillment::Parcel {
    crate::order::fulfillment::Parcel {
        weight_grams: 900,
        length_cm: 30,
        width_cm: 20,
        height_cm: 10,
    }
}

/// A DHL tracking number and its link.
pub fn tracking() -> crate::order::fulfillment::Tracking {
    crate::order::fulfillment::Tracking {
        carrier: "DHL".into(),
        tracking_number: "JJD000390007".into(),
        tracking_url: "https://www.dhl.com/track?id=JJD000390007".into(),
    }
}

/// The fields a problem+json body's `errors` name, in its order.
pub fn error_fields(body: &serde_json::Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
