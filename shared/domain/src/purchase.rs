//! Purchase orders: stock ordered from a supplier, on its way to one location.
//!
//! ```text
//! OPEN ──(receive all)──► RECEIVED
//!   │ (receive some: still OPEN, fewer outstanding)
//!   └──(close)──► CLOSED (what had not come will not)
//! ```
//! Placing one records its units as **incoming** at its location ([`Product::incoming`]), which
//! a SKU's health counts with what is available, so stock already ordered is not suggested
//! again. Receiving puts what arrived into the location's available units and takes it out of
//! incoming, in one write with the history entry (a receipt that names the purchase order);
//! closing gives up on what has not come. A transfer in transit is incoming at its destination
//! the same way ([`crate::stock::Transfer`]). Each step bumps the purchase order's version, the
//! condition of the next, so two receipts of the same delivery cannot both count.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{IdempotencyKey, Sku};
use crate::stock::{AdjustmentReason, Product, StockAdjustment, StockError};

/// Where a purchase order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PurchaseStatus {
    /// Units still to come.
    Open,
    /// Everything ordered arrived.
    Received,
    /// Closed with units outstanding: they will not come.
    Closed,
}

/// Units of one SKU ordered from a supplier for one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseOrder {
    /// `PO-` and a ULID: purchase orders list newest first by it.
    pub id: String,
    pub sku: Sku,
    pub location: String,
    pub quantity: u32,
    /// Units that arrived so far.
    pub received: u32,
    pub status: PurchaseStatus,
    /// When the supplier said it arrives.
    pub expected_on: NaiveDate,
    /// The supplier's own number for the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub ordered_by: String,
    pub ordered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by each step: the stored one must still be the version a step was made from.
    pub version: u32,
}

/// What a placing's `Idempotency-Key` stands for, kept with the purchase order it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseKey {
    pub sku: Sku,
    pub key: IdempotencyKey,
    pub purchase_order_id: String,
    /// The request the key was first used with.
    pub fingerprint: String,
}

/// One step of a purchase order as one write: the product (its incoming units and, on a
/// receipt, its counters), the history entry of a receipt, and the purchase order as it now
/// stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseStep {
    pub product: Product,
    pub adjustment: Option<StockAdjustment>,
    pub order: PurchaseOrder,
    /// The orders waiting for the SKU that the delivery filled ([`crate::backorder`]), each
    /// written on its version in the same write.
    pub filled: Vec<crate::order::Order>,
}

/// Why a purchase order's step was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurchaseError {
    #[error("purchase order {0} is {1}: nothing more arrives on it")]
    NotOpen(String, &'static str),
    #[error("{outstanding} units are outstanding on the purchase order, not {quantity}; record more with a receipt")]
    MoreThanOutstanding { outstanding: u32, quantity: u32 },
    #[error(transparent)]
    Stock(#[from] StockError),
}

impl PurchaseStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Received => "RECEIVED",
            Self::Closed => "CLOSED",
        }
    }
}

/// What a placing is, for its `Idempotency-Key`.
pub struct Placing<'a> {
    pub location: &'a str,
    pub quantity: u32,
    pub expected_on: NaiveDate,
    pub supplier_reference: Option<String>,
    pub note: Option<String>,
}

impl Placing<'_> {
    /// The request a key stands for: all of it (where, how many, when, the supplier's number
    /// and the note), so the key with any other request is refused.
    pub fn fingerprint(&self) -> String {
        serde_json::json!([
            self.location,
            self.quantity,
            self.expected_on,
            self.supplier_reference,
            self.note
        ])
        .to_string()
    }
}

impl PurchaseOrder {
    /// Whether `id` has the shape of a purchase order's id (a path parameter).
    pub fn is_id(id: &str) -> bool {
        id.strip_prefix("PO-")
            .is_some_and(|ulid| ulid::Ulid::from_string(ulid).is_ok())
    }

    /// Units still to come.
    pub fn outstanding(&self) -> u32 {
        self.quantity.saturating_sub(self.received)
    }

    /// Orders `placing.quantity` units of `product` for `placing.location`: incoming there now.
    pub fn place(
        product: &Product,
        placing: Placing<'_>,
        by: &str,
        now: DateTime<Utc>,
    ) -> PurchaseStep {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or_default();
        let order = PurchaseOrder {
            id: format!(
                "PO-{}",
                ulid::Ulid::from_parts(ms, ulid::Ulid::new().random())
            ),
            sku: product.sku.clone(),
            location: placing.location.to_owned(),
            quantity: placing.quantity,
            received: 0,
            status: PurchaseStatus::Open,
            expected_on: placing.expected_on,
            supplier_reference: placing.supplier_reference,
            note: placing.note,
            ordered_by: by.to_owned(),
            ordered_at: now,
            updated_at: now,
            version: 1,
        };
        let mut next = product.next_version(now);
        next.add_incoming(&order.location, i64::from(order.quantity));
        PurchaseStep {
            product: next,
            adjustment: None,
            order,
            filled: Vec::new(),
        }
    }

    /// `quantity` units arrived: available at the location, no longer incoming; the order is
    /// received once nothing is outstanding.
    pub fn receive(
        &self,
        product: &Product,
        quantity: u32,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<PurchaseStep, PurchaseError> {
        self.open()?;
        if quantity > self.outstanding() {
            return Err(PurchaseError::MoreThanOutstanding {
                outstanding: self.outstanding(),
                quantity,
            });
        }
        let before = product.stock.at(&self.location);
        let after = before.adjust(i64::from(quantity))?;
        let mut next = product.next_version(now);
        next.stock.set(&self.location, after);
        next.add_incoming(&self.location, -i64::from(quantity));
        let received = self.received + quantity;
        let order = PurchaseOrder {
            received,
            status: if received == self.quantity {
                PurchaseStatus::Received
            } else {
                PurchaseStatus::Open
            },
            ..self.next_version(now)
        };
        let note = match &self.supplier_reference {
            Some(reference) => format!("purchase order {} ({reference})", self.id),
            None => format!("purchase order {}", self.id),
        };
        let adjustment = StockAdjustment::of_write(
            &next,
            &self.location,
            AdjustmentReason::Receipt,
            Some(note),
            before,
            after,
            by,
        );
        Ok(PurchaseStep {
            product: next,
            adjustment: Some(adjustment),
            order,
            filled: Vec::new(),
        })
    }

    /// What has not come will not: no longer incoming, the order closed.
    pub fn close(
        &self,
        product: &Product,
        now: DateTime<Utc>,
    ) -> Result<PurchaseStep, PurchaseError> {
        self.open()?;
        let mut next = product.next_version(now);
        next.add_incoming(&self.location, -i64::from(self.outstanding()));
        Ok(PurchaseStep {
            product: next,
            adjustment: None,
            order: PurchaseOrder {
                status: PurchaseStatus::Closed,
                ..self.next_version(now)
            },
            filled: Vec::new(),
        })
    }

    fn open(&self) -> Result<(), PurchaseError> {
        match self.status {
            PurchaseStatus::Open => Ok(()),
            other => Err(PurchaseError::NotOpen(self.id.clone(), other.as_str())),
        }
    }

    fn next_version(&self, now: DateTime<Utc>) -> PurchaseOrder {
        PurchaseOrder {
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::product;

    fn placing(quantity: u32) -> Placing<'static> {
        Placing {
            location: "BER-1",
            quantity,
            expected_on: "2026-12-20".parse().unwrap(),
            supplier_reference: Some("ACME-77".into()),
            note: None,
        }
    }

    #[test]
    fn units_ordered_are_incoming_until_they_arrive_and_a_receipt_counts_them_once() {
        let mug = product("MUG-1", 1200, 4);
        let now = Utc::now();
        let placed = PurchaseOrder::place(&mug, placing(10), "staff-1", now);
        assert!(PurchaseOrder::is_id(&placed.order.id));
        assert_eq!(placed.product.incoming_at("BER-1"), 10);
        assert_eq!(placed.product.stock.available(), 4, "nothing has arrived");
        assert_eq!(placed.product.version, mug.version + 1);

        let some = placed
            .order
            .receive(&placed.product, 6, "packer-1", now)
            .unwrap();
        assert_eq!(some.product.stock.at("BER-1").available(), 10);
        assert_eq!(some.product.incoming_at("BER-1"), 4);
        assert_eq!(
            (some.order.status, some.order.received),
            (PurchaseStatus::Open, 6)
        );
        let entry = some.adjustment.as_ref().unwrap();
        assert_eq!(entry.reason, AdjustmentReason::Receipt);
        assert_eq!(
            entry.note.as_deref(),
            Some(format!("purchase order {} (ACME-77)", placed.order.id).as_str())
        );

        assert_eq!(
            some.order.receive(&some.product, 5, "packer-1", now),
            Err(PurchaseError::MoreThanOutstanding {
                outstanding: 4,
                quantity: 5
            })
        );
        let rest = some
            .order
            .receive(&some.product, 4, "packer-1", now)
            .unwrap();
        assert_eq!(rest.order.status, PurchaseStatus::Received);
        assert_eq!(rest.product.incoming_at("BER-1"), 0);
        assert_eq!(rest.product.stock.at("BER-1").on_hand(), 14);
        assert!(matches!(
            rest.order.receive(&rest.product, 1, "packer-1", now),
            Err(PurchaseError::NotOpen(_, "RECEIVED"))
        ));
    }

    #[test]
    fn closing_gives_up_on_what_has_not_come() {
        let mug = product("MUG-1", 1200, 0);
        let now = Utc::now();
        let placed = PurchaseOrder::place(&mug, placing(10), "staff-1", now);
        let some = placed
            .order
            .receive(&placed.product, 3, "packer-1", now)
            .unwrap();
        let closed = some.order.close(&some.product, now).unwrap();
        assert_eq!(closed.order.status, PurchaseStatus::Closed);
        assert_eq!(closed.product.incoming_at("BER-1"), 0);
        assert_eq!(closed.product.stock.available(), 3);
        assert!(closed.order.close(&closed.product, now).is_err());
    }
}
