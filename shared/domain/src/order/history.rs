//! What each change of an order did, recorded by the change itself.
//!
//! Every change goes through [`Order::record`], which takes what happened as an [`OrderEvent`]
//! — a closed list, one per kind of change — and stores it in the order item as its [`Change`],
//! beside the version it made. The table's stream carries the item, so the event publisher maps
//! the recorded change to its CloudEvents directly ([`crate::events`]), with no comparison of
//! the old and new images: a new kind of change is a new variant here, decided where the
//! change is made.
//!
//! A change also records what the aggregate saw of itself while it changed (the status it left,
//! the refund it added or settled, the return it moved, what the PSP said, and what it asked of
//! the payment system), so one write that does several things announces each of them.

use serde::{Deserialize, Serialize};

use crate::ids::ReturnId;
use crate::order::fulfillment::FulfillmentStatus;
use crate::order::payments::{PaymentStatus, PspRequestKind, RefundState};
use crate::order::returns::ReturnStatus;
use crate::order::{Order, OrderStatus};

/// What happened to an order: one per version, the order's event in its sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderEvent {
    /// Placed by a customer, waiting for its stock.
    Placed,
    /// Its stock is held.
    Reserved,
    /// Its stock fell short.
    Rejected,
    /// In the warehouse's hands: sent there, resumed there after a new payment, or created
    /// there (an exchange's replacement).
    FulfillmentStarted,
    Picked,
    Packed,
    Shipped,
    InTransit,
    OutForDelivery,
    DeliveryException,
    Delivered,
    /// Called off before packing.
    Cancelled,
    /// Some units of some lines called off before packing.
    UnitsCancelled,
    /// Stock arrived for the last of its backordered units: it goes to the warehouse.
    BackorderFilled,
    /// When its waiting units of `sku` are expected changed: a delivery was ordered, closed
    /// short or came in part ([`Order::revise_promise`]).
    #[serde(rename_all = "camelCase")]
    PromiseRevised {
        sku: crate::ids::Sku,
    },
    /// The business moved the release date of its pre-ordered `sku`
    /// ([`Order::follow_release`]).
    #[serde(rename_all = "camelCase")]
    ReleaseMoved {
        sku: crate::ids::Sku,
    },
    /// Where or how it ships changed ([`crate::order::edits`]).
    #[serde(rename_all = "camelCase")]
    Edited {
        edit_id: String,
    },
    /// The PSP holds the new total of an edit that waited for it: back to the warehouse.
    #[serde(rename_all = "camelCase")]
    EditPaid {
        edit_id: String,
    },
    /// An edit whose new total was never authorized is undone.
    #[serde(rename_all = "camelCase")]
    EditUndone {
        edit_id: String,
    },
    /// Never paid for within the payment window.
    Expired,
    #[serde(rename_all = "camelCase")]
    ReturnRequested {
        return_id: ReturnId,
    },
    #[serde(rename_all = "camelCase")]
    ReturnApproved {
        return_id: ReturnId,
    },
    #[serde(rename_all = "camelCase")]
    ReturnRejected {
        return_id: ReturnId,
    },
    #[serde(rename_all = "camelCase")]
    ReturnReceived {
        return_id: ReturnId,
    },
    /// An approved return nothing arrived for in time is closed.
    #[serde(rename_all = "camelCase")]
    ReturnExpired {
        return_id: ReturnId,
    },
    /// The money is held or taken for the first time.
    PaymentAuthorized,
    /// What was held is taken.
    PaymentCaptured,
    /// The authorization was declined.
    PaymentFailed,
    /// The PSP released the hold (an order in the warehouse goes back to wait for a new payment).
    PaymentVoided,
    /// Any other PSP event recorded in the ledger.
    PaymentUpdated,
    #[serde(rename_all = "camelCase")]
    RefundIssued {
        refund_id: String,
    },
    #[serde(rename_all = "camelCase")]
    RefundFailed {
        refund_id: String,
    },
    /// Any other change (a repeated carrier scan, a flag for staff, a refund asked again).
    Updated,
}

impl OrderEvent {
    /// The event of a return whose status is now `status`.
    pub fn for_return(return_id: ReturnId, status: ReturnStatus) -> Self {
        match status {
            ReturnStatus::PendingApproval => Self::ReturnRequested { return_id },
            ReturnStatus::Approved => Self::ReturnApproved { return_id },
            ReturnStatus::Rejected => Self::ReturnRejected { return_id },
            ReturnStatus::Received => Self::ReturnReceived { return_id },
            ReturnStatus::Expired => Self::ReturnExpired { return_id },
        }
    }

    /// The event of a shipment that moved to `to` (from `from`).
    pub fn for_shipment(from: FulfillmentStatus, to: FulfillmentStatus) -> Self {
        match to {
            _ if from == to => Self::Updated,
            // Announced per parcel: the customer hears of each one that leaves or arrives.
            FulfillmentStatus::Shipped => Self::Shipped,
            FulfillmentStatus::Delivered => Self::Delivered,
            FulfillmentStatus::Picked => Self::Picked,
            FulfillmentStatus::Packed => Self::Packed,
            FulfillmentStatus::InTransit => Self::InTransit,
            FulfillmentStatus::OutForDelivery => Self::OutForDelivery,
            FulfillmentStatus::DeliveryException => Self::DeliveryException,
            _ => Self::Updated,
        }
    }

    /// The event of a change of the payment status alone. Money that arrives for an order that
    /// was called off is only an update: the customer is not told "payment received" for an
    /// order that will not ship (its void or refund is asked for at once).
    pub fn for_payment(old: PaymentStatus, new: PaymentStatus, called_off: bool) -> Self {
        match new {
            _ if old == new => Self::PaymentUpdated,
            PaymentStatus::Authorized | PaymentStatus::PartiallyPaid | PaymentStatus::Paid
                if called_off =>
            {
                Self::PaymentUpdated
            }
            PaymentStatus::Authorized | PaymentStatus::PartiallyPaid | PaymentStatus::Paid
                if old.is_unpaid() =>
            {
                Self::PaymentAuthorized
            }
            PaymentStatus::PartiallyPaid | PaymentStatus::Paid => Self::PaymentCaptured,
            PaymentStatus::Failed => Self::PaymentFailed,
            PaymentStatus::Voided => Self::PaymentVoided,
            _ => Self::PaymentUpdated,
        }
    }
}

/// What a change asked of the payment system: announced outside the order's sequence, each
/// under its own id (the PSP's idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Announcement {
    /// A refund asked of the PSP (added, or released once its capture was confirmed).
    #[serde(rename_all = "camelCase")]
    RefundRequested { refund_id: String },
    #[serde(rename_all = "camelCase")]
    CaptureRequested { request_id: String },
    #[serde(rename_all = "camelCase")]
    VoidRequested { request_id: String },
}

/// The change that made the order's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The version it made: the change belongs to the item only while they match.
    pub version: u64,
    /// The status the order left (none for its first version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    pub event: OrderEvent,
    /// What it asked of the payment system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced: Vec<Announcement>,
    /// The return whose status it set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<ReturnId>,
    /// The first refund it added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_added: Option<String>,
    /// The refund whose settlement (issued or failed) it recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_settled: Option<String>,
    /// Why the PSP declined, for the entry it recorded in the ledger, if it gave a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reason: Option<String>,
    /// The shipment (its number) a step moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<u32>,
}

impl Change {
    /// The first version of an order.
    pub(crate) fn opened(order: &Order) -> Self {
        Change {
            version: order.version,
            from: None,
            event: match order.status {
                OrderStatus::Pending => OrderEvent::Placed,
                // An exchange's replacement with a difference to pay: held for its payment.
                OrderStatus::Reserved => OrderEvent::Reserved,
                _ => OrderEvent::FulfillmentStarted,
            },
            announced: Vec::new(),
            return_id: None,
            refund_added: None,
            refund_settled: None,
            payment_reason: None,
            shipment: None,
        }
    }

    /// The change from `before` to `after`, whose event is `event`: what else it did is read off
    /// the two versions here, inside the aggregate, once.
    pub(crate) fn between(before: &Order, after: &Order, event: OrderEvent) -> Self {
        let mut announced = Vec::new();
        let asked_before = |index: usize| {
            before
                .refunds
                .get(index)
                .is_some_and(|r| !r.awaiting_capture)
        };
        for (index, refund) in after.refunds.iter().enumerate() {
            if !refund.awaiting_capture && !asked_before(index) {
                announced.push(Announcement::RefundRequested {
                    refund_id: refund.refund_id.clone(),
                });
            }
        }
        for request in after
            .payment
            .requests
            .iter()
            .skip(before.payment.requests.len())
        {
            let request_id = request.request_id.clone();
            announced.push(match request.kind {
                PspRequestKind::Capture => Announcement::CaptureRequested { request_id },
                PspRequestKind::Void => Announcement::VoidRequested { request_id },
            });
        }
        let return_id = after
            .returns
            .iter()
            .rev()
            .find(|r| before.find_return(&r.return_id).map(|o| o.status) != Some(r.status))
            .map(|r| r.return_id.clone());
        let refund_settled = after
            .refunds
            .iter()
            .find(|r| {
                let state = after.refund_state(&r.refund_id);
                matches!(state, RefundState::Issued | RefundState::Failed)
                    && before.refund_state(&r.refund_id) != state
            })
            .map(|r| r.refund_id.clone());
        let payment_reason = (before.payment.ledger.len() < after.payment.ledger.len())
            .then(|| after.payment.ledger.last())
            .flatten()
            .and_then(|e| e.reason.clone());
        Change {
            version: after.version,
            from: Some(before.status),
            event,
            announced,
            return_id,
            refund_added: after
                .refunds
                .get(before.refunds.len())
                .map(|r| r.refund_id.clone()),
            refund_settled,
            payment_reason,
            shipment: after
                .shipments
                .iter()
                .find(|s| {
                    before
                        .shipments
                        .iter()
                        .find(|b| b.number == s.number)
                        .is_some_and(|b| b.steps.len() != s.steps.len())
                })
                .map(|s| s.number),
        }
    }
}
