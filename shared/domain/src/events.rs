//! Domain events, derived from state changes and carried as CloudEvents 1.0.
//!
//! Handlers never publish: they write the table, and the event publisher turns each change it
//! reads from the table's stream into at most one event with [`order_event`] or [`stock_event`].
//! An event's id is derived from the change (`<order id>-<version>`), so a change read twice
//! yields the same event twice, and consumers deduplicate on the id. Events carry no address,
//! e-mail or phone number: a consumer that needs them reads the order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ReturnId;
use crate::ids::{CustomerId, OrderId, Sku};
use crate::money::Money;
use crate::order::fulfillment::{FulfillmentStatus, Tracking};
use crate::order::payments::{PaymentStatus, PspRequest, RefundState};
use crate::order::refunds::Refund;
use crate::order::returns::ReturnStatus;
use crate::order::{Order, OrderStatus, Shortage, Totals};
use crate::quantity::Quantity;
use crate::shipping::{DeliveryEstimate, ShippingMethod};
use crate::stock::Product;

/// Every kind of event the system publishes. Subscribers filter on [`EventType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "oms.order.placed")]
    OrderPlaced,
    #[serde(rename = "oms.order.reserved")]
    OrderReserved,
    #[serde(rename = "oms.order.rejected")]
    OrderRejected,
    #[serde(rename = "oms.order.cancelled")]
    OrderCancelled,
    #[serde(rename = "oms.order.fulfillment-started")]
    FulfillmentStarted,
    #[serde(rename = "oms.order.shipped")]
    OrderShipped,
    #[serde(rename = "oms.order.delivered")]
    OrderDelivered,
    #[serde(rename = "oms.fulfillment.picked")]
    Picked,
    #[serde(rename = "oms.fulfillment.packed")]
    Packed,
    #[serde(rename = "oms.fulfillment.in-transit")]
    InTransit,
    #[serde(rename = "oms.fulfillment.out-for-delivery")]
    OutForDelivery,
    #[serde(rename = "oms.fulfillment.delivery-exception")]
    DeliveryException,
    /// Any other change of an order (a repeated carrier scan, say): every version of an order is
    /// an event, so consumers that follow an order's sequence numbers never wait on a gap.
    #[serde(rename = "oms.order.updated")]
    OrderUpdated,
    #[serde(rename = "oms.return.requested")]
    ReturnRequested,
    #[serde(rename = "oms.return.approved")]
    ReturnApproved,
    #[serde(rename = "oms.return.rejected")]
    ReturnRejected,
    #[serde(rename = "oms.return.received")]
    ReturnReceived,
    /// Money owed to a customer, for the payment system. Its subject is the refund, not the
    /// order, so it sits outside the order's sequence.
    #[serde(rename = "oms.refund.requested")]
    RefundRequested,
    #[serde(rename = "oms.inventory.low-stock")]
    LowStock,
    /// Never paid within the payment window: cancelled by the system, its stock released.
    #[serde(rename = "oms.order.expired")]
    OrderExpired,
    /// The money is held (or taken) for the first time: the customer hears "payment received",
    /// and a reserved order goes to the warehouse.
    #[serde(rename = "oms.payment.authorized")]
    PaymentAuthorized,
    /// What was held is taken.
    #[serde(rename = "oms.payment.captured")]
    PaymentCaptured,
    /// The authorization was declined: the customer hears what to do.
    #[serde(rename = "oms.payment.failed")]
    PaymentFailed,
    /// The hold was released.
    #[serde(rename = "oms.payment.voided")]
    PaymentVoided,
    /// The PSP paid a refund out: the customer hears "refund issued".
    #[serde(rename = "oms.payment.refund-issued")]
    RefundIssued,
    /// The PSP could not pay a refund out: it waits for staff.
    #[serde(rename = "oms.payment.refund-failed")]
    RefundFailed,
    /// Any other entry in the ledger (a mismatch, a failed capture, a repeat of a state).
    #[serde(rename = "oms.payment.updated")]
    PaymentUpdated,
    /// For the PSP: take the authorized amount. Outside the order's sequence, like refunds.
    #[serde(rename = "oms.psp.capture-requested")]
    CaptureRequested,
    /// For the PSP: release the authorization.
    #[serde(rename = "oms.psp.void-requested")]
    VoidRequested,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OrderPlaced => "oms.order.placed",
            Self::OrderReserved => "oms.order.reserved",
            Self::OrderRejected => "oms.order.rejected",
            Self::OrderCancelled => "oms.order.cancelled",
            Self::FulfillmentStarted => "oms.order.fulfillment-started",
            Self::OrderShipped => "oms.order.shipped",
            Self::OrderDelivered => "oms.order.delivered",
            Self::Picked => "oms.fulfillment.picked",
            Self::Packed => "oms.fulfillment.packed",
            Self::InTransit => "oms.fulfillment.in-transit",
            Self::OutForDelivery => "oms.fulfillment.out-for-delivery",
            Self::DeliveryException => "oms.fulfillment.delivery-exception",
            Self::OrderUpdated => "oms.order.updated",
            Self::ReturnRequested => "oms.return.requested",
            Self::ReturnApproved => "oms.return.approved",
            Self::ReturnRejected => "oms.return.rejected",
            Self::ReturnReceived => "oms.return.received",
            Self::RefundRequested => "oms.refund.requested",
            Self::LowStock => "oms.inventory.low-stock",
            Self::OrderExpired => "oms.order.expired",
            Self::PaymentAuthorized => "oms.payment.authorized",
            Self::PaymentCaptured => "oms.payment.captured",
            Self::PaymentFailed => "oms.payment.failed",
            Self::PaymentVoided => "oms.payment.voided",
            Self::RefundIssued => "oms.payment.refund-issued",
            Self::RefundFailed => "oms.payment.refund-failed",
            Self::PaymentUpdated => "oms.payment.updated",
            Self::CaptureRequested => "oms.psp.capture-requested",
            Self::VoidRequested => "oms.psp.void-requested",
        }
    }

    fn for_return(status: ReturnStatus) -> Self {
        match status {
            ReturnStatus::PendingApproval => Self::ReturnRequested,
            ReturnStatus::Approved => Self::ReturnApproved,
            ReturnStatus::Rejected => Self::ReturnRejected,
            ReturnStatus::Received => Self::ReturnReceived,
        }
    }

    fn for_status(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => Self::OrderPlaced,
            OrderStatus::Reserved => Self::OrderReserved,
            OrderStatus::Rejected => Self::OrderRejected,
            OrderStatus::Fulfilling => Self::FulfillmentStarted,
            OrderStatus::Shipped => Self::OrderShipped,
            OrderStatus::Delivered => Self::OrderDelivered,
            OrderStatus::Cancelled => Self::OrderCancelled,
        }
    }

    /// The event of a change of the payment status alone. Money that arrives for an order that
    /// was called off is only an update: the customer is not told "payment received" for an
    /// order that will not ship (its void or refund is asked for at once).
    fn for_payment(old: PaymentStatus, new: PaymentStatus, called_off: bool) -> Self {
        match new {
            PaymentStatus::Authorized | PaymentStatus::Paid if called_off => Self::PaymentUpdated,
            PaymentStatus::Authorized | PaymentStatus::Paid if old.is_unpaid() => {
                Self::PaymentAuthorized
            }
            PaymentStatus::Paid => Self::PaymentCaptured,
            PaymentStatus::Failed => Self::PaymentFailed,
            PaymentStatus::Voided => Self::PaymentVoided,
            _ => Self::PaymentUpdated,
        }
    }

    /// The event of a shipment step that does not change the order's status.
    fn for_fulfillment_step(status: FulfillmentStatus) -> Option<Self> {
        match status {
            FulfillmentStatus::Picked => Some(Self::Picked),
            FulfillmentStatus::Packed => Some(Self::Packed),
            FulfillmentStatus::InTransit => Some(Self::InTransit),
            FulfillmentStatus::OutForDelivery => Some(Self::OutForDelivery),
            FulfillmentStatus::DeliveryException => Some(Self::DeliveryException),
            _ => None,
        }
    }
}

/// A CloudEvents 1.0 envelope in its JSON format, with a `sequence` extension that orders the
/// events of one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<T> {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub datacontenttype: String,
    pub sequence: u64,
    pub data: T,
}

impl<T> CloudEvent<T> {
    fn new(
        event_type: EventType,
        source: &str,
        subject: String,
        sequence: u64,
        time: DateTime<Utc>,
        data: T,
    ) -> Self {
        CloudEvent {
            specversion: "1.0".into(),
            id: format!("{subject}-{sequence}"),
            source: source.into(),
            event_type,
            time,
            subject,
            datacontenttype: "application/json".into(),
            sequence,
            data,
        }
    }
}

/// A line as events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// What an order event says: the order's state after the change, without personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEventData {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<OrderStatus>,
    /// Where the order's money is after the change (events published before payments existed
    /// carry none: pending).
    #[serde(default)]
    pub payment_status: PaymentStatus,
    pub lines: Vec<EventLine>,
    pub totals: Totals,
    pub shipping_method: ShippingMethod,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    pub estimate: DeliveryEstimate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_status: Option<FulfillmentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Tracking>,
    /// What the last step said (a carrier's exception reason, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The return this change is about, and where it now is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<ReturnId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_status: Option<ReturnStatus>,
    /// The amount of a refund this change requested (a cancellation, a received return) or
    /// settled (issued or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Money>,
    /// The refund this change settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// Why the PSP declined, for a failed payment or refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reason: Option<String>,
    /// The order that ships this return's exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_order_id: Option<OrderId>,
}

/// The event for an order's change from `old` to `new`, if the change is one the business
/// cares about (a new order, or a new status).
pub fn order_event(old: Option<&Order>, new: Option<&Order>) -> Option<CloudEvent<OrderEventData>> {
    let new = new?;
    let previous_status = old.map(|o| o.status);
    let step = |o: &Order| o.fulfillment.as_ref().map(|f| f.status);
    // The return whose status this change set (a new return counts as changed).
    let changed_return = old.and_then(|old| {
        new.returns
            .iter()
            .rev()
            .find(|r| old.find_return(&r.return_id).map(|o| o.status) != Some(r.status))
    });
    // The refund whose settlement this change recorded.
    let settled_refund = old.and_then(|old| {
        new.refunds.iter().find(|r| {
            let state = new.refund_state(&r.refund_id);
            matches!(state, RefundState::Issued | RefundState::Failed)
                && old.refund_state(&r.refund_id) != state
        })
    });
    let new_payment = new.payment_status();
    let expired = new.cancellation.as_ref().is_some_and(|c| c.expired);
    let event_type = match old {
        // A replacement is created in the warehouse: its first event is its status.
        None if new.status != OrderStatus::Pending => EventType::for_status(new.status),
        None => EventType::OrderPlaced,
        Some(old) if old.version == new.version => return None,
        Some(old) if old.status != new.status && expired => EventType::OrderExpired,
        // Held back from the warehouse because the PSP released the hold: a payment event.
        Some(old)
            if old.status == OrderStatus::Fulfilling && new.status == OrderStatus::Reserved =>
        {
            EventType::PaymentVoided
        }
        Some(old) if old.status != new.status => EventType::for_status(new.status),
        Some(_) if changed_return.is_some() => {
            EventType::for_return(changed_return.expect("checked").status)
        }
        Some(old) if step(old) != step(new) => step(new)
            .and_then(EventType::for_fulfillment_step)
            .unwrap_or(EventType::OrderUpdated),
        Some(_) if settled_refund.is_some() => {
            match new.refund_state(&settled_refund.expect("checked").refund_id) {
                RefundState::Issued => EventType::RefundIssued,
                _ => EventType::RefundFailed,
            }
        }
        Some(old) if old.payment_status() != new_payment => EventType::for_payment(
            old.payment_status(),
            new_payment,
            matches!(new.status, OrderStatus::Cancelled | OrderStatus::Rejected),
        ),
        Some(old) if old.payment.ledger.len() != new.payment.ledger.len() => {
            EventType::PaymentUpdated
        }
        Some(_) => EventType::OrderUpdated,
    };
    // What the PSP said with the entry this change recorded, if it gave a reason.
    let payment_reason = old
        .filter(|old| old.payment.ledger.len() < new.payment.ledger.len())
        .and_then(|_| new.payment.ledger.last())
        .and_then(|e| e.reason.clone());
    let data = OrderEventData {
        order_id: new.id.clone(),
        customer_id: new.customer_id.clone(),
        status: new.status,
        previous_status,
        payment_status: new_payment,
        lines: new
            .lines
            .iter()
            .map(|l| EventLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect(),
        totals: new.totals,
        shipping_method: new.shipping.method,
        shortages: new.shortages.clone(),
        estimate: new.shipping.estimate,
        fulfillment_status: step(new),
        tracking: new.fulfillment.as_ref().and_then(|f| f.tracking.clone()),
        note: match (&new.cancellation, changed_return) {
            (Some(cancellation), _) if new.status == OrderStatus::Cancelled => {
                Some(cancellation.reason.clone())
            }
            (_, Some(rma)) => rma.decision.as_ref().and_then(|d| d.note.clone()),
            _ => new
                .fulfillment
                .as_ref()
                .and_then(|f| f.steps.last())
                .and_then(|s| s.note.clone()),
        },
        return_id: changed_return.map(|r| r.return_id.clone()),
        return_status: changed_return.map(|r| r.status),
        refund: new
            .refunds
            .get(old.map_or(0, |o| o.refunds.len()))
            .or(settled_refund)
            .map(|r| r.amount),
        refund_id: settled_refund.map(|r| r.refund_id.clone()),
        payment_reason,
        replacement_order_id: changed_return.and_then(|r| r.replacement_order_id.clone()),
    };
    Some(CloudEvent::new(
        event_type,
        "urn:oms:orders",
        new.id.to_string(),
        new.version,
        new.updated_at,
        data,
    ))
}

/// What a refund event says: the refund, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundEventData {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// The PSP's payment to refund, from its authorization or capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psp_reference: Option<String>,
    #[serde(flatten)]
    pub refund: Refund,
}

/// One `oms.refund.requested` event per refund the change added. Refunds are never changed once
/// recorded, so each is announced once (and consumers deduplicate on its id).
pub fn refund_events(old: Option<&Order>, new: Option<&Order>) -> Vec<CloudEvent<RefundEventData>> {
    let Some(new) = new else {
        return Vec::new();
    };
    // A refund is announced when it is asked of the PSP: when a change adds it, or, if it
    // waited for the capture, when the change that confirmed the capture released it.
    let announced_before = |index: usize| {
        old.and_then(|o| o.refunds.get(index))
            .is_some_and(|r| !r.awaiting_capture)
    };
    new.refunds
        .iter()
        .enumerate()
        .filter(|(index, refund)| !refund.awaiting_capture && !announced_before(*index))
        .map(|(_, refund)| {
            let mut event = CloudEvent::new(
                EventType::RefundRequested,
                "urn:oms:refunds",
                refund.refund_id.clone(),
                1,
                refund.requested_at,
                RefundEventData {
                    order_id: new.id.clone(),
                    customer_id: new.customer_id.clone(),
                    psp_reference: new.payment.psp_reference().map(str::to_owned),
                    refund: refund.clone(),
                },
            );
            event.id = refund.refund_id.clone();
            event
        })
        .collect()
}

/// What a capture or void request says: the request, the PSP's payment and whose order it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PspRequestEventData {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    #[serde(flatten)]
    pub request: PspRequest,
}

/// One `oms.psp.capture-requested` or `oms.psp.void-requested` event per request the change
/// added; its id is the request's, the PSP's idempotency key.
pub fn psp_request_events(
    old: Option<&Order>,
    new: Option<&Order>,
) -> Vec<CloudEvent<PspRequestEventData>> {
    use crate::order::payments::PspRequestKind;
    let Some(new) = new else {
        return Vec::new();
    };
    let known = old.map_or(0, |o| o.payment.requests.len());
    new.payment
        .requests
        .iter()
        .skip(known)
        .map(|request| {
            let event_type = match request.kind {
                PspRequestKind::Capture => EventType::CaptureRequested,
                PspRequestKind::Void => EventType::VoidRequested,
            };
            let mut event = CloudEvent::new(
                event_type,
                "urn:oms:payments",
                request.request_id.clone(),
                1,
                request.requested_at,
                PspRequestEventData {
                    order_id: new.id.clone(),
                    customer_id: new.customer_id.clone(),
                    request: request.clone(),
                },
            );
            event.id = request.request_id.clone();
            event
        })
        .collect()
}

/// What a stock event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockEventData {
    pub sku: Sku,
    pub available: u32,
    pub reserved: u32,
    pub on_hand: u32,
    pub low_stock_threshold: u32,
}

/// A low-stock alert when a SKU's `available` falls below its threshold (once per crossing).
pub fn stock_event(
    old: Option<&Product>,
    new: Option<&Product>,
) -> Option<CloudEvent<StockEventData>> {
    let new = new?;
    let low = |p: &Product| p.stock.available() < p.low_stock_threshold;
    if !new.active || !low(new) || old.is_some_and(low) {
        return None;
    }
    let data = StockEventData {
        sku: new.sku.clone(),
        available: new.stock.available(),
        reserved: new.stock.reserved(),
        on_hand: new.stock.on_hand(),
        low_stock_threshold: new.low_stock_threshold,
    };
    Some(CloudEvent::new(
        EventType::LowStock,
        "urn:oms:inventory",
        new.sku.to_string(),
        new.version,
        new.updated_at,
        data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{placed, product};
    use crate::quantity::Quantity;
    use serde_json::json;

    #[test]
    fn a_new_order_is_placed_and_each_status_change_is_one_event() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 1)],
        );
        let placed_event = order_event(None, Some(&order)).unwrap();
        assert_eq!(placed_event.event_type, EventType::OrderPlaced);
        assert_eq!(placed_event.id, format!("{}-1", order.id));
        assert_eq!(placed_event.sequence, 1);

        let reserved = order.reserve(Utc::now()).unwrap();
        let event = order_event(Some(&order), Some(&reserved)).unwrap();
        assert_eq!(event.event_type, EventType::OrderReserved);
        assert_eq!(event.data.previous_status, Some(OrderStatus::Pending));
        assert_eq!(event.sequence, 2);

        assert!(order_event(Some(&reserved), Some(&reserved)).is_none());
        assert!(order_event(Some(&reserved), None).is_none());

        let fulfilling = reserved
            .authorized_for_test(Utc::now())
            .start_fulfillment("BER-1", Utc::now())
            .unwrap();
        let picked = fulfilling.pick("picker", Utc::now()).unwrap();
        assert_eq!(
            order_event(Some(&reserved), Some(&fulfilling))
                .unwrap()
                .event_type,
            EventType::FulfillmentStarted
        );
        let event = order_event(Some(&fulfilling), Some(&picked)).unwrap();
        assert_eq!(
            (event.event_type, event.data.fulfillment_status),
            (EventType::Picked, Some(FulfillmentStatus::Picked))
        );
    }

    #[test]
    fn events_carry_no_personal_data() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 1)],
        );
        let json = serde_json::to_string(&order_event(None, Some(&order)).unwrap()).unwrap();
        assert!(!json.contains("ada@example.com"));
        assert!(!json.contains("Main St"));
        assert!(json.contains("\"type\":\"oms.order.placed\""));
    }

    #[test]
    fn low_stock_is_raised_once_per_crossing() {
        let full = product("A", 100, 3);
        let low = Product {
            stock: full.stock.reserve(Quantity::new(2).unwrap()).unwrap(),
            version: 2,
            ..full.clone()
        };
        let lower = Product {
            stock: low.stock.reserve(Quantity::new(1).unwrap()).unwrap(),
            version: 3,
            ..full.clone()
        };
        assert!(stock_event(None, Some(&full)).is_none());
        let event = stock_event(Some(&full), Some(&low)).unwrap();
        assert_eq!(
            (event.event_type, event.data.available),
            (EventType::LowStock, 1)
        );
        assert!(stock_event(Some(&low), Some(&lower)).is_none());
    }
}
