//! Reading orders: `GET /orders/{id}` and `GET /orders`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::Caller;
use crate::ids::{CustomerId, OrderId};
use crate::order::fulfillment::FulfillmentStatus;
use crate::order::payments::PaymentStatus;
use crate::order::{Order, OrderStatus, Totals};
use crate::ports::{OrderStore, Page, StoreError};

/// An order as listings show it: enough to pick one, without addresses or contact details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    /// Why the order is not in the warehouse's hands although it could be: `AWAITING_PAYMENT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<&'static str>,
    /// The locations its units come from, the one it leaves from first (from the reservation on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ships_from: Vec<String>,
    /// Where its shipments are, one per location, from the moment the warehouses have them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<ShipmentProgress>,
    pub line_count: usize,
    pub totals: Totals,
    /// Units it waits for stock for (backordered or pre-ordered).
    #[serde(skip_serializing_if = "is_zero")]
    pub backordered: u32,
    /// When the last of them is expected, if every one has a date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_on: Option<chrono::NaiveDate>,
    /// What an edit awaiting its payment costs more: the amount due before it is packed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit_due: Option<crate::money::Money>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn is_zero(units: &u32) -> bool {
    *units == 0
}

/// A shipment's step, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentProgress {
    pub shipment_id: crate::ids::ShipmentId,
    pub warehouse: String,
    pub status: FulfillmentStatus,
}

impl From<&Order> for OrderSummary {
    fn from(order: &Order) -> Self {
        OrderSummary {
            order_id: order.id.clone(),
            customer_id: order.customer_id.clone(),
            status: order.status,
            payment_status: order.payment_status(),
            hold: order.hold(),
            ships_from: order.locations().into_iter().map(str::to_owned).collect(),
            shipments: order
                .shipments
                .iter()
                .map(|f| ShipmentProgress {
                    shipment_id: f.id(order),
                    warehouse: f.warehouse.clone(),
                    status: f.status,
                })
                .collect(),
            line_count: order.lines.len(),
            totals: order.totals,
            backordered: order.backordered(),
            promised_on: {
                let waiting = || order.lines.iter().filter(|l| l.backordered() > 0);
                waiting()
                    .map(|l| l.promised_on)
                    .collect::<Option<Vec<_>>>()
                    .and_then(|dates| dates.into_iter().max())
                    .filter(|_| waiting().count() > 0)
            },
            edit_due: order.awaiting_edit().and_then(|e| {
                crate::money::Money::new(e.difference(), order.totals.total.currency()).ok()
            }),
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// The most orders a page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Absent, or another customer's: the two are indistinguishable to the caller on purpose.
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The most orders one page may hold.
pub const MAX_PAGE_SIZE: u32 = 100;

/// One order, if the caller may see it: its own customer, or an administrator.
pub async fn get_order<O: OrderStore>(
    orders: &O,
    caller: &Caller,
    id: &OrderId,
) -> Result<Order, QueryError> {
    match orders.get(id).await? {
        Some(order) if order.customer_id == caller.customer_id || caller.is_admin() => Ok(order),
        _ => Err(QueryError::NotFound),
    }
}

/// The caller's own orders, newest first.
pub async fn list_orders<O: OrderStore>(
    orders: &O,
    caller: &Caller,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Order>, QueryError> {
    Ok(orders
        .list_for_customer(&caller.customer_id, limit.clamp(1, MAX_PAGE_SIZE), cursor)
        .await?)
}
