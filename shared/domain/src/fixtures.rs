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
        replenishment: Default::default(),
        demand: Default::default(),
        incoming: Default::default(),
        backorders: Default::default(),
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

/// A payment service provider for tests, as far as they need one: it opens a payment per
/// idempotency key (`pi_<key>`), captures whatever it is asked of any payment it holds, holds
/// every payment but `pi_unknown` (another provider's), refuses captures of `pi_declined`, and
/// remembers every idempotency key it was asked under. `unavailable` makes it answer nothing but
/// [`ProviderError::Unavailable`](crate::ports::ProviderError::Unavailable); `events` are what
/// it lists to the reconciliation.
#[derive(Default)]
pub struct FakePsp {
    pub asked: std::sync::Mutex<Vec<String>>,
    pub unavailable: bool,
    pub events: std::sync::Mutex<Vec<crate::request::payments::PspEvent>>,
    /// For each capture asked: whether more followed, and what the ledger showed taken.
    pub captures: std::sync::Mutex<Vec<(bool, i64)>>,
}

impl FakePsp {
    /// The idempotency keys asked so far, in order.
    pub fn keys(&self) -> Vec<String> {
        self.asked.lock().expect("not poisoned").clone()
    }

    fn ask(&self, reference: &str, key: &str) -> Result<(), crate::ports::ProviderError> {
        use crate::ports::ProviderError;
        if self.unavailable {
            return Err(ProviderError::Unavailable("429 Too Many Requests".into()));
        }
        self.asked
            .lock()
            .expect("not poisoned")
            .push(key.to_owned());
        if reference == "pi_unknown" {
            return Err(ProviderError::UnknownPayment(reference.into()));
        }
        Ok(())
    }
}

impl crate::ports::PaymentProvider for FakePsp {
    async fn create_payment_intent(
        &self,
        _order: &OrderId,
        amount: Money,
        key: &str,
    ) -> Result<crate::ports::PaymentIntent, crate::ports::ProviderError> {
        self.ask("", key)?;
        Ok(crate::ports::PaymentIntent {
            payment_intent_id: format!("pi_{key}"),
            client_secret: format!("pi_{key}_secret_x"),
            amount,
            status: "requires_payment_method".into(),
        })
    }

    async fn capture(
        &self,
        reference: &str,
        ask: &crate::ports::CaptureAsk,
    ) -> Result<crate::ports::ProviderAnswer, crate::ports::ProviderError> {
        self.ask(reference, &ask.idempotency_key)?;
        self.captures
            .lock()
            .expect("not poisoned")
            .push((ask.more_follow, ask.taken_minor));
        let amount = ask.amount;
        if reference == "pi_declined" {
            return Err(crate::ports::ProviderError::Refused(
                "expired authorization".into(),
            ));
        }
        Ok(crate::ports::ProviderAnswer {
            state_id: format!("stripe:{reference}:succeeded"),
            kind: Some(crate::order::payments::PaymentEventKind::CaptureSucceeded),
            amount,
            reason: None,
        })
    }

    async fn cancel(
        &self,
        reference: &str,
        key: &str,
    ) -> Result<crate::ports::ProviderAnswer, crate::ports::ProviderError> {
        self.ask(reference, key)?;
        Err(crate::ports::ProviderError::Refused(format!(
            "{reference} cannot be cancelled"
        )))
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Money,
        _order: &OrderId,
        refund_id: &str,
    ) -> Result<crate::ports::ProviderAnswer, crate::ports::ProviderError> {
        self.ask(reference, refund_id)?;
        Ok(crate::ports::ProviderAnswer {
            state_id: format!("stripe:re_{refund_id}:succeeded"),
            kind: Some(crate::order::payments::PaymentEventKind::RefundSucceeded),
            amount,
            reason: None,
        })
    }

    async fn events(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<crate::request::payments::PspEvent>, crate::ports::ProviderError> {
        if self.unavailable {
            return Err(crate::ports::ProviderError::Unavailable("503".into()));
        }
        let events = self.events.lock().expect("not poisoned");
        Ok(events
            .iter()
            .filter(|e| (since..=until).contains(&e.event.occurred_at))
            .cloned()
            .collect())
    }
}
