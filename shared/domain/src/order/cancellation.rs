//! Calling an order off before it is packed.
//!
//! ```text
//! PENDING | RESERVED | FULFILLING (awaiting pick or picked) ──► CANCELLED
//! ```
//! A cancellation releases what was reserved in the same transaction ([`OrderChange`]) and asks
//! the payment service provider to give the money back: a void of an authorization, a refund of
//! what was captured ([`crate::order::payments`]). Once packed the parcel is about to leave; once shipped
//! the way back is a return.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::order::fulfillment::FulfillmentStatus;
use crate::order::history::OrderEvent;
use crate::order::payments::CaptureMode;
use crate::order::{Order, OrderChange, OrderStatus};
use crate::stock::StockMovement;

/// Why an order was called off, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    pub reason: String,
    /// `customer` or `admin`.
    pub by: String,
    pub at: DateTime<Utc>,
    /// Called off by the system because it was never paid for within the payment window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// A cancellation the order's state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error(
        "the order has shipped; return it instead (POST /orders/{{id}}/returns once delivered)"
    )]
    Shipped,
    #[error("the parcel is packed and about to ship; it can no longer be cancelled")]
    Packed,
    #[error("the order is {0} and cannot be cancelled")]
    Final(&'static str),
}

impl Order {
    /// Calls the order off before it is packed, releasing what it reserved, and asks for a void
    /// of what is authorized or a refund of what was paid.
    pub fn cancel(
        &self,
        reason: String,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, CancelError> {
        let releases = match self.status {
            OrderStatus::Pending => false,
            OrderStatus::Reserved => true,
            OrderStatus::Fulfilling => {
                // Every parcel must still be before packing.
                let unpacked = self.shipments.iter().all(|f| {
                    matches!(
                        f.status,
                        FulfillmentStatus::AwaitingPick | FulfillmentStatus::Picked
                    )
                });
                if !unpacked || self.shipments.is_empty() {
                    return Err(CancelError::Packed);
                }
                true
            }
            OrderStatus::PartiallyShipped
            | OrderStatus::Shipped
            | OrderStatus::PartiallyDelivered
            | OrderStatus::Delivered => return Err(CancelError::Shipped),
            status @ (OrderStatus::Rejected | OrderStatus::Cancelled) => {
                return Err(CancelError::Final(status.as_str()))
            }
        };
        let next = self
            .transition(
                OrderStatus::Cancelled,
                &[
                    OrderStatus::Pending,
                    OrderStatus::Reserved,
                    OrderStatus::Fulfilling,
                ],
                now,
                Some(format!("cancelled by {by}: {reason}")),
                |next| {
                    next.cancellation = Some(Cancellation {
                        reason,
                        by: by.to_owned(),
                        at: now,
                        expired: false,
                    });
                    // Called off, so the capture mode does not matter: what is held is voided,
                    // what was taken is refunded.
                    next.request_what_is_due(CaptureMode::OnShipment, now);
                    OrderEvent::Cancelled
                },
            )
            .map_err(|e| CancelError::Final(e.from.as_str()))?;
        Ok(if releases {
            OrderChange::with_lines(next, StockMovement::Release)
        } else {
            OrderChange::order_only(next)
        })
    }
}
