//! Placing an order: `POST /orders`.
//!
//! The order and its idempotency record are written in one atomic write conditioned on neither
//! existing, so however many times (and however concurrently) a client retries with the same
//! `Idempotency-Key`, exactly one order is created and every retry gets the first answer.

use chrono::{DateTime, Utc};

use crate::app::Caller;
use crate::ids::{IdempotencyKey, OrderId, Sku};
use crate::location::Locations;
use crate::order::{Order, OrderLimits};
use crate::ports::{CreateOutcome, IdempotencyRecord, InventoryStore, OrderStore, StoreError};
use crate::request::OrderRequest;
use crate::shipping::ShippingPolicy;
use crate::validation::ValidationErrors;

/// The answer to an accepted order: its JSON body, and whether it replays an earlier answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub order_id: OrderId,
    pub body: String,
    pub replayed: bool,
}

/// Why an order was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("this Idempotency-Key was already used for a different request")]
    KeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The business's rules an order is placed under.
#[derive(Debug, Clone, Copy)]
pub struct IntakePolicies<'a> {
    /// What shipping costs and how long it takes.
    pub shipping: &'a ShippingPolicy,
    /// What one order may hold.
    pub limits: &'a OrderLimits,
    /// Where an in-store pickup may be collected.
    pub locations: &'a Locations,
}

/// Validates, prices and stores an order exactly once per (customer, key).
pub async fn place_order<O: OrderStore, I: InventoryStore>(
    orders: &O,
    inventory: &I,
    policies: IntakePolicies<'_>,
    caller: &Caller,
    key: &IdempotencyKey,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Accepted, IntakeError> {
    let request = OrderRequest::parse(body)?;
    policies.limits.check(&request)?;
    if let Some(store) = &request.pickup_location {
        let hands_over = policies
            .locations
            .get(store)
            .is_some_and(|l| l.capabilities.pickup);
        if !hands_over {
            let stores: Vec<&str> = policies
                .locations
                .all()
                .iter()
                .filter(|l| l.capabilities.pickup)
                .map(|l| l.id.as_str())
                .collect();
            return Err(ValidationErrors::one(
                "pickupLocation",
                format!(
                    "must be a store that hands orders over: {}",
                    stores.join(", ")
                ),
            )
            .into());
        }
    }
    let fingerprint = request.fingerprint();

    // A retry after a success is the common case of a repeated key: answer it without pricing.
    if let Some(record) = orders.idempotency_record(&caller.customer_id, key).await? {
        return replay(record, &fingerprint);
    }

    let skus: Vec<Sku> = request.lines.iter().map(|l| l.sku.clone()).collect();
    let catalog = inventory.products(&skus).await?;
    let order = Order::place(
        OrderId::generate(now),
        caller.customer_id.clone(),
        &request,
        &catalog,
        policies.shipping,
        now,
    )?;
    // Charged and promised what the routing plan delivers from the stock now (the reservation
    // plans again from fresh counts; the price stays what the customer agreed to).
    let demand: Vec<crate::routing::Demand> = order
        .lines
        .iter()
        .map(|l| crate::routing::Demand {
            sku: l.sku.clone(),
            quantity: l.quantity.get(),
            unit_weight_grams: l.unit_weight_grams,
        })
        .collect();
    let order = match policies.locations.quote(
        policies.shipping,
        order.shipping.method,
        order.shipping.address.country(),
        &demand,
        &crate::location::availability(&catalog),
        now,
    ) {
        Some(quote) => order.priced_by(quote)?,
        None => order,
    };
    let body = serde_json::to_string(&crate::app::views::OrderView::for_customer(&order))
        .map_err(|e| StoreError::Failed(e.to_string()))?;
    let record = IdempotencyRecord {
        customer_id: caller.customer_id.clone(),
        key: key.clone(),
        fingerprint: fingerprint.clone(),
        order_id: order.id.clone(),
        response: body.clone(),
        created_at: now,
    };

    match orders.create(&order, &record).await? {
        CreateOutcome::Created => Ok(Accepted {
            order_id: order.id,
            body,
            replayed: false,
        }),
        // A concurrent request with the same key won; its record is committed, so read it.
        CreateOutcome::KeyAlreadyUsed => {
            match orders.idempotency_record(&caller.customer_id, key).await? {
                Some(record) => replay(record, &fingerprint),
                None => Err(IntakeError::InProgress),
            }
        }
    }
}

fn replay(record: IdempotencyRecord, fingerprint: &str) -> Result<Accepted, IntakeError> {
    if record.fingerprint != fingerprint {
        return Err(IntakeError::KeyReused);
    }
    Ok(Accepted {
        order_id: record.order_id,
        body: record.response,
        replayed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CustomerId;
    use crate::memory::InMemoryStore;
    use crate::order::tests::product;
    use serde_json::json;

    /// `POST /orders` of `body` by `customer` under `key`, with the default shipping policy and
    /// locations and `limits`.
    async fn place(
        store: &InMemoryStore,
        limits: &OrderLimits,
        customer: &str,
        key: &IdempotencyKey,
        body: &serde_json::Value,
    ) -> Result<Accepted, IntakeError> {
        let policies = IntakePolicies {
            shipping: &ShippingPolicy::default_policy(),
            limits,
            locations: &Locations::default_locations(),
        };
        place_order(
            store,
            store,
            policies,
            &caller(customer),
            key,
            body,
            Utc::now(),
        )
        .await
    }

    fn caller(id: &str) -> Caller {
        Caller {
            customer_id: CustomerId::parse(id).unwrap(),
            scopes: vec![],
        }
    }

    fn body(quantity: u32) -> serde_json::Value {
        json!({
            "lines": [{"sku": "A", "quantity": quantity}],
            "shippingMethod": "STANDARD",
            "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
            "contact": {"email": "ada@example.com"}
        })
    }

    #[tokio::test]
    async fn the_same_key_and_body_gets_the_same_answer_and_one_order() {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let key = IdempotencyKey::parse("k1").unwrap();
        let first = place(&store, &OrderLimits::default(), "c1", &key, &body(1))
            .await
            .unwrap();
        let second = place(&store, &OrderLimits::default(), "c1", &key, &body(1))
            .await
            .unwrap();
        assert_eq!(
            (first.body, first.order_id, first.replayed),
            (second.body, second.order_id, !second.replayed)
        );
        assert_eq!(store.order_count(), 1);
    }

    #[tokio::test]
    async fn the_same_key_with_another_body_is_refused() {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let key = IdempotencyKey::parse("k1").unwrap();
        place(&store, &OrderLimits::default(), "c1", &key, &body(1))
            .await
            .unwrap();
        let again = place(&store, &OrderLimits::default(), "c1", &key, &body(2)).await;
        assert!(matches!(again, Err(IntakeError::KeyReused)));
        // Keys are per customer: another customer may use the same one.
        place(&store, &OrderLimits::default(), "c2", &key, &body(2))
            .await
            .unwrap();
        assert_eq!(store.order_count(), 2);
    }

    #[tokio::test]
    async fn an_invalid_request_writes_nothing() {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let key = IdempotencyKey::parse("k1").unwrap();
        let result = place(&store, &OrderLimits::default(), "c1", &key, &body(0)).await;
        assert!(matches!(result, Err(IntakeError::Invalid(_))));
        assert_eq!(store.order_count(), 0);
    }

    #[tokio::test]
    async fn more_units_of_one_item_than_the_business_allows_is_refused_and_writes_nothing() {
        let store = InMemoryStore::with_products([product("A", 100, 1000)]);
        let key = IdempotencyKey::parse("k1").unwrap();
        let limits = OrderLimits {
            max_units_per_line: 20,
        };
        let result = place(&store, &limits, "c1", &key, &body(21)).await;
        let Err(IntakeError::Invalid(errors)) = result else {
            panic!("accepted: {result:?}")
        };
        assert_eq!(errors.0[0].field, "lines[0].quantity");
        assert!(errors.0[0].message.contains("at most 20"));
        assert_eq!(store.order_count(), 0);
        assert!(place(&store, &limits, "c1", &key, &body(20)).await.is_ok());
    }
}
