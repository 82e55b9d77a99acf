//! Money owed back to the customer: recorded on the order by a cancellation or a return's
//! receipt, and announced to the payment system as an `oms.refund.requested` event whose id is
//! the refund's, so the payment system can deduplicate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ReturnId, Sku};
use crate::money::Money;
use crate::order::history::OrderEvent;
use crate::order::Order;
use crate::quantity::Quantity;

/// What a refund gives back money for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundReason {
    /// The whole order called off.
    Cancellation,
    /// Some units called off before they were packed ([`crate::order::cancellation`]).
    UnitsCancelled,
    /// An edit made the order cheaper after its money was taken ([`crate::order::edits`]).
    OrderEdited,
    /// An edit made the order dearer after its money was taken: a new payment of the whole new
    /// total was taken, and what was taken under the payment it replaced is given back.
    PaymentReplaced,
    Return,
}

impl RefundReason {
    /// It gives back what the customer paid beyond what the order now costs (the order itself
    /// goes on): units called off, or an edit that made it cheaper.
    pub fn gives_back_a_difference(&self) -> bool {
        matches!(
            self,
            Self::UnitsCancelled | Self::OrderEdited | Self::PaymentReplaced
        )
    }
}

/// One refunded line: units times the price paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub amount: Money,
}

/// Why a refund cannot be asked again. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRetryError {
    #[error("the order has no such refund")]
    NoSuchRefund,
    #[error("only a refund the payment provider could not pay out is asked again")]
    NotFailed,
    #[error("this refund was asked again already")]
    AlreadyRetried,
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
    /// The refund staff asked for in its place after the PSP could not pay this one out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_as: Option<String>,
    /// Owed, but the money it gives back is not taken yet (the capture the order asked for is
    /// not confirmed): it is asked of the PSP, and announced, once the capture is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_capture: bool,
    /// The PSP's payment it gives back from, named when it is asked of the PSP: the one that
    /// had the order's money then — or the payment a dearer edit's new one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_payment: Option<String>,
}

impl Order {
    pub(crate) fn next_refund_id(&self) -> String {
        format!("{}-REFUND-{}", self.id, self.refunds.len() + 1)
    }

    /// What has been refunded so far (a refund asked again counts once).
    pub(crate) fn refunded(&self) -> (i64, bool) {
        let owed = || self.refunds.iter().filter(|r| r.retried_as.is_none());
        let total = owed().map(|r| r.amount.minor_units()).sum();
        // Units called off may have given back part of the shipping charge (it was re-quoted
        // lower); the charge that is left is still the customer's to be refunded.
        let shipping = owed()
            .filter(|r| !r.reason.gives_back_a_difference())
            .any(|r| r.shipping.minor_units() > 0);
        (total, shipping)
    }

    /// Staff ask the PSP again for a refund it could not pay out: a new refund of the same lines
    /// and amount, with an id of its own (the PSP's idempotency key), announced as the first
    /// was; the failed one stays in the record, marked as asked again, and off the attention list.
    pub fn retry_refund(
        &self,
        refund_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, RefundRetryError> {
        let failed = self
            .refunds
            .iter()
            .find(|r| r.refund_id == refund_id)
            .ok_or(RefundRetryError::NoSuchRefund)?;
        if failed.retried_as.is_some() {
            return Err(RefundRetryError::AlreadyRetried);
        }
        if self.refund_state(refund_id) != crate::order::payments::RefundState::Failed {
            return Err(RefundRetryError::NotFailed);
        }
        // Asked of the payment the failed one was asked of (a payment that replaced it since
        // did not take that money).
        let asked_of = failed.from_payment.clone().or_else(|| {
            self.payment
                .ledger
                .iter()
                .rfind(|e| e.refund_id.as_deref() == Some(refund_id))
                .and_then(|e| e.psp_reference.clone())
        });
        let again = Refund {
            refund_id: self.next_refund_id(),
            requested_at: now,
            retried_as: None,
            from_payment: asked_of,
            ..failed.clone()
        };
        let note = format!("refund {refund_id} asked again as {}", again.refund_id);
        Ok(self.record(now, Some(note), |next| {
            if let Some(failed) = next.refunds.iter_mut().find(|r| r.refund_id == refund_id) {
                failed.retried_as = Some(again.refund_id.clone());
            }
            next.refunds.push(again);
            OrderEvent::Updated
        }))
    }

    /// The refunds asked of the PSP (none still waiting for its capture), each once: a refund
    /// asked again counts as the one that replaced it.
    pub(crate) fn asked_refunds(&self) -> impl Iterator<Item = &Refund> {
        self.refunds
            .iter()
            .filter(|r| r.retried_as.is_none() && !r.awaiting_capture)
    }

    /// Whether a refund of `amount` must wait: money is given back only once it was taken — no
    /// capture still on its way (the PSP may yet fail it), and no more given back in all than
    /// was taken. Released by the capture's confirmation
    /// ([`Order::request_what_is_due`](crate::order::Order)).
    pub(crate) fn refund_waits_for_capture(&self, amount: i64) -> bool {
        if self.totals.total.minor_units() == 0 {
            return false;
        }
        let taken: i64 = self.payment.captured_minor();
        let given: i64 = self.asked_refunds().map(|r| r.amount.minor_units()).sum();
        !self.payment.unanswered_captures().is_empty() || given + amount > taken
    }

    /// What the order's refunds for units called off (or a cheaper edit) gave back (a refund asked again counts
    /// once): money the customer paid beyond what the order now costs.
    pub(crate) fn refunded_for_units(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.retried_as.is_none() && r.reason.gives_back_a_difference())
            .map(|r| r.amount.minor_units())
            .sum()
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
            retried_as: None,
            awaiting_capture: false,
            from_payment: None,
        }
    }
}
