//! Money owed back to the customer: recorded on the order by a cancellation or a return's
//! receipt, and announced to the payment system as an `oms.refund.requested` event whose id is
//! the refund's, so the payment system can deduplicate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ReturnId, Sku};
use crate::money::Money;
use crate::order::Order;
use crate::quantity::Quantity;

/// What a refund gives back money for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundReason {
    Cancellation,
    Return,
}

/// One refunded line: units times the price paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub amount: Money,
}

/// Money the business owes the customer, announced to the payment system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    /// `<order id>-REFUND-<n>`: unique, and the id of its `oms.refund.requested` event.
    pub refund_id: String,
    pub reason: RefundReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<ReturnId>,
    pub lines: Vec<RefundLine>,
    /// The part of `amount` that is the order's shipping charge.
    pub shipping: Money,
    pub amount: Money,
    pub requested_at: DateTime<Utc>,
}

impl Order {
    pub(crate) fn next_refund_id(&self) -> String {
        format!("{}-REFUND-{}", self.id, self.refunds.len() + 1)
    }

    /// What has been refunded so far.
    pub(crate) fn refunded(&self) -> (i64, bool) {
        let total = self.refunds.iter().map(|r| r.amount.minor_units()).sum();
        let shipping = self.refunds.iter().any(|r| r.shipping.minor_units() > 0);
        (total, shipping)
    }

    /// The refund of everything the order cost: every line and the shipping charge.
    pub(crate) fn full_refund(&self, now: DateTime<Utc>) -> Refund {
        Refund {
            refund_id: self.next_refund_id(),
            reason: RefundReason::Cancellation,
            return_id: None,
            lines: self
                .lines
                .iter()
                .map(|l| RefundLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    amount: l.line_total,
                })
                .collect(),
            shipping: self.totals.shipping,
            amount: self.totals.total,
            requested_at: now,
        }
    }
}
