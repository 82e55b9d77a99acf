//! The shipment inside an order: the warehouse's steps and the carrier's.
//!
//! ```text
//! AWAITING_PICK ─pick─► PICKED ─pack─► PACKED ─ship─► SHIPPED ─► IN_TRANSIT ─► OUT_FOR_DELIVERY ─► DELIVERED
//!                                                         └──────────┴──────────────┴──► DELIVERY_EXCEPTION ─┘
//! ```
//! An order ships as one parcel from one warehouse, so the fulfillment lives inside the order
//! item: every step is an order transition, conditioned on the order's version like every other,
//! and the order's version is the fulfillment's entity tag. Warehouse steps must follow each
//! other; carrier events may arrive in any order once the parcel has shipped (carriers do not
//! promise order), each recorded once by its event id, and nothing follows delivery.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::order::history::OrderEvent;
use crate::order::payments::CaptureMode;
use crate::order::{Order, OrderStatus};
use crate::shipping::DeliveryEstimate;

/// Where the shipment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FulfillmentStatus {
    AwaitingPick,
    Picked,
    Packed,
    Shipped,
    InTransit,
    OutForDelivery,
    DeliveryException,
    Delivered,
}

impl FulfillmentStatus {
    pub const ALL: [FulfillmentStatus; 8] = [
        Self::AwaitingPick,
        Self::Picked,
        Self::Packed,
        Self::Shipped,
        Self::InTransit,
        Self::OutForDelivery,
        Self::DeliveryException,
        Self::Delivered,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AwaitingPick => "AWAITING_PICK",
            Self::Picked => "PICKED",
            Self::Packed => "PACKED",
            Self::Shipped => "SHIPPED",
            Self::InTransit => "IN_TRANSIT",
            Self::OutForDelivery => "OUT_FOR_DELIVERY",
            Self::DeliveryException => "DELIVERY_EXCEPTION",
            Self::Delivered => "DELIVERED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether the parcel has left the warehouse and is not yet delivered.
    fn in_carrier_hands(&self) -> bool {
        matches!(
            self,
            Self::Shipped | Self::InTransit | Self::OutForDelivery | Self::DeliveryException
        )
    }

    /// Whether the warehouse still has work on it: the statuses of the pick list.
    pub fn is_warehouse_work(&self) -> bool {
        matches!(self, Self::AwaitingPick | Self::Picked | Self::Packed)
    }
}

/// The packed parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parcel {
    pub weight_grams: u32,
    pub length_cm: u32,
    pub width_cm: u32,
    pub height_cm: u32,
}

/// Who carries the parcel and where to follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracking {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: String,
}

/// What a carrier reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CarrierEventKind {
    InTransit,
    OutForDelivery,
    Delivered,
    DeliveryException,
}

impl CarrierEventKind {
    pub const ALL: [CarrierEventKind; 4] = [
        Self::InTransit,
        Self::OutForDelivery,
        Self::Delivered,
        Self::DeliveryException,
    ];

    pub fn as_str(&self) -> &'static str {
        self.status().as_str()
    }

    fn status(&self) -> FulfillmentStatus {
        match self {
            Self::InTransit => FulfillmentStatus::InTransit,
            Self::OutForDelivery => FulfillmentStatus::OutForDelivery,
            Self::Delivered => FulfillmentStatus::Delivered,
            Self::DeliveryException => FulfillmentStatus::DeliveryException,
        }
    }
}

/// One step of the shipment, with who or what made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentStep {
    pub status: FulfillmentStatus,
    pub at: DateTime<Utc>,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The order's shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfillment {
    pub warehouse: String,
    pub status: FulfillmentStatus,
    /// When the warehouse received the work: the pick list is oldest first by it.
    pub queued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parcel: Option<Parcel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Tracking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    pub steps: Vec<FulfillmentStep>,
    /// Carrier event ids already applied, so a repeated webhook changes nothing.
    #[serde(default)]
    pub carrier_event_ids: Vec<String>,
}

impl Fulfillment {
    /// A shipment the warehouse has just received, awaiting pick.
    pub(crate) fn queued(warehouse: &str, note: Option<String>, now: DateTime<Utc>) -> Self {
        Fulfillment {
            warehouse: warehouse.to_owned(),
            status: FulfillmentStatus::AwaitingPick,
            queued_at: now,
            parcel: None,
            tracking: None,
            shipped_at: None,
            delivered_at: None,
            steps: vec![FulfillmentStep {
                status: FulfillmentStatus::AwaitingPick,
                at: now,
                by: "system".into(),
                note,
            }],
            carrier_event_ids: Vec::new(),
        }
    }
}

/// A step the shipment's state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FulfillmentError {
    #[error("the order is {0}, not in fulfillment")]
    NotInFulfillment(&'static str),
    /// Reserved, but its payment is neither authorized nor paid: held as awaiting payment.
    #[error("the order waits for its payment (it is {0})")]
    AwaitingPayment(&'static str),
    #[error("the shipment is {actual}; this step needs it {expected}")]
    OutOfOrder {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("the parcel has not shipped yet (it is {0})")]
    NotShipped(&'static str),
    #[error("the parcel was already delivered")]
    AlreadyDelivered,
    #[error("the shipment has recorded {MAX_CARRIER_EVENTS} carrier events, the most it keeps")]
    TooManyCarrierEvents,
}

/// The result of a carrier event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierUpdate {
    Applied(Box<Order>),
    /// This event id was applied before: acknowledged, nothing changes.
    Duplicate,
    /// The event happened before the latest one applied (carriers do not promise order: a late
    /// "in transit" after "delivered"): acknowledged, nothing changes.
    Superseded,
}

/// The most carrier events one shipment records: what the order item keeps per event is
/// bounded, and an item holds at most 400 KB.
pub const MAX_CARRIER_EVENTS: usize = 50;

/// One move of the shipment: to `status`, by whom, and what the order becomes with it.
struct ShipmentMove<'a> {
    status: FulfillmentStatus,
    by: &'a str,
    note: Option<String>,
    /// When it happened (a carrier's time), if not now.
    at: Option<DateTime<Utc>>,
    /// The order's own status after the move, if it changes.
    order_status: Option<OrderStatus>,
}

impl Order {
    fn fulfillment_status(&self) -> Option<FulfillmentStatus> {
        self.fulfillment.as_ref().map(|f| f.status)
    }

    /// The shipment, for an order the warehouse or a carrier is working on.
    fn shipment(&self) -> Result<&Fulfillment, FulfillmentError> {
        self.fulfillment
            .as_ref()
            .ok_or(FulfillmentError::NotInFulfillment(self.status.as_str()))
    }

    /// The order with its shipment moved, a step recorded in the shipment and the order
    /// recorded through [`Order::record`]; `edit` fills in what the step brings (the parcel, the
    /// tracking), and `then` what it changes in the order besides.
    fn move_shipment(
        &self,
        step: ShipmentMove<'_>,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut Fulfillment),
        then: impl FnOnce(&mut Order),
    ) -> Result<Order, FulfillmentError> {
        let mut fulfillment = self.shipment()?.clone();
        let from = fulfillment.status;
        fulfillment.status = step.status;
        fulfillment.steps.push(FulfillmentStep {
            status: step.status,
            at: step.at.unwrap_or(now),
            by: step.by.to_owned(),
            note: step.note.clone(),
        });
        edit(&mut fulfillment);
        let label = step.status.as_str().to_lowercase().replace('_', " ");
        let note = Some(match step.note {
            Some(detail) => format!("{label}: {detail}"),
            None => label,
        });
        Ok(self.record(now, note, |next| {
            next.fulfillment = Some(fulfillment);
            if let Some(status) = step.order_status {
                next.status = status;
            }
            then(next);
            OrderEvent::for_shipment(from, step.status, next.status != self.status)
        }))
    }

    /// A warehouse step by `by` to `status`, which must follow `expected`.
    fn warehouse_step(
        &self,
        expected: FulfillmentStatus,
        status: FulfillmentStatus,
        by: &str,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut Fulfillment),
    ) -> Result<Order, FulfillmentError> {
        self.expect_step(expected)?;
        self.move_shipment(
            ShipmentMove {
                status,
                by,
                note: None,
                at: None,
                order_status: None,
            },
            now,
            edit,
            |_| {},
        )
    }

    /// The reserved order goes to the warehouse: `RESERVED → FULFILLING`, awaiting pick.
    pub fn start_fulfillment(
        &self,
        warehouse: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        let payment = self.payment_status();
        if self.status == OrderStatus::Reserved && !payment.allows_fulfillment() {
            return Err(FulfillmentError::AwaitingPayment(payment.as_str()));
        }
        // An order held back when the PSP released its hold resumes its shipment where it got
        // to, at the warehouse that had it.
        if let Some(held) = self.fulfillment.as_ref() {
            let note = format!("paid again: back to warehouse {}", held.warehouse);
            let mut resumed = held.clone();
            resumed.steps.push(FulfillmentStep {
                status: held.status,
                at: now,
                by: "system".into(),
                note: Some("paid again".into()),
            });
            return self
                .transition(
                    OrderStatus::Fulfilling,
                    &[OrderStatus::Reserved],
                    now,
                    Some(note),
                    |next| {
                        next.fulfillment = Some(resumed);
                        OrderEvent::FulfillmentStarted
                    },
                )
                .map_err(|e| FulfillmentError::NotInFulfillment(e.from.as_str()));
        }
        self.transition(
            OrderStatus::Fulfilling,
            &[OrderStatus::Reserved],
            now,
            Some(format!("sent to warehouse {warehouse}")),
            |next| {
                next.fulfillment = Some(Fulfillment::queued(warehouse, None, now));
                OrderEvent::FulfillmentStarted
            },
        )
        .map_err(|e| FulfillmentError::NotInFulfillment(e.from.as_str()))
    }

    fn expect_step(&self, expected: FulfillmentStatus) -> Result<(), FulfillmentError> {
        // Held back from the warehouse: the PSP released its hold and it waits for a new payment.
        if self.status == OrderStatus::Reserved && self.fulfillment.is_some() {
            return Err(FulfillmentError::AwaitingPayment(
                self.payment_status().as_str(),
            ));
        }
        if self.status != OrderStatus::Fulfilling {
            return Err(FulfillmentError::NotInFulfillment(self.status.as_str()));
        }
        match self.fulfillment_status() {
            None => Err(FulfillmentError::NotInFulfillment(self.status.as_str())),
            Some(actual) if actual == expected => Ok(()),
            Some(actual) => Err(FulfillmentError::OutOfOrder {
                expected: expected.as_str(),
                actual: actual.as_str(),
            }),
        }
    }

    /// The items are taken from the shelves.
    pub fn pick(&self, by: &str, now: DateTime<Utc>) -> Result<Order, FulfillmentError> {
        self.warehouse_step(
            FulfillmentStatus::AwaitingPick,
            FulfillmentStatus::Picked,
            by,
            now,
            |_| {},
        )
    }

    /// The items are in a parcel of known weight and size.
    pub fn pack(
        &self,
        parcel: Parcel,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        self.warehouse_step(
            FulfillmentStatus::Picked,
            FulfillmentStatus::Packed,
            by,
            now,
            |f| f.parcel = Some(parcel),
        )
    }

    /// The parcel leaves with a carrier: `FULFILLING → SHIPPED`, with the estimate recomputed
    /// from the ship date. The store moves the shipped units out of `reserved` in the same write.
    pub fn ship(
        &self,
        tracking: Tracking,
        estimate: DeliveryEstimate,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        self.expect_step(FulfillmentStatus::Packed)?;
        // The goods leave only against money held or taken (the PSP may have released a hold
        // since the order was picked).
        let payment = self.payment_status();
        if !payment.allows_fulfillment() {
            return Err(FulfillmentError::AwaitingPayment(payment.as_str()));
        }
        let note = format!("{} {}", tracking.carrier, tracking.tracking_number);
        self.move_shipment(
            ShipmentMove {
                status: FulfillmentStatus::Shipped,
                by,
                note: Some(note),
                at: None,
                order_status: Some(OrderStatus::Shipped),
            },
            now,
            |f| {
                f.tracking = Some(tracking);
                f.shipped_at = Some(now);
            },
            |next| {
                next.shipping.estimate = estimate;
                // The goods leave: the money held for them is taken.
                next.request_what_is_due(CaptureMode::OnShipment, now);
            },
        )
    }

    /// Applies a carrier's event, once per event id.
    pub fn carrier_event(
        &self,
        event_id: &str,
        kind: CarrierEventKind,
        detail: Option<String>,
        occurred_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CarrierUpdate, FulfillmentError> {
        let fulfillment = self.shipment()?;
        if fulfillment
            .carrier_event_ids
            .iter()
            .any(|id| id == event_id)
        {
            return Ok(CarrierUpdate::Duplicate);
        }
        // The latest carrier event wins: what happened before it changes nothing.
        let latest = fulfillment
            .steps
            .iter()
            .filter(|s| s.by == "carrier")
            .map(|s| s.at)
            .max();
        if latest.is_some_and(|latest| occurred_at < latest) {
            return Ok(CarrierUpdate::Superseded);
        }
        if fulfillment.status == FulfillmentStatus::Delivered {
            return Err(FulfillmentError::AlreadyDelivered);
        }
        if !fulfillment.status.in_carrier_hands() {
            return Err(FulfillmentError::NotShipped(fulfillment.status.as_str()));
        }
        if fulfillment.carrier_event_ids.len() >= MAX_CARRIER_EVENTS {
            return Err(FulfillmentError::TooManyCarrierEvents);
        }
        let status = kind.status();
        let delivered = status == FulfillmentStatus::Delivered;
        let next = self.move_shipment(
            ShipmentMove {
                status,
                by: "carrier",
                note: detail,
                at: Some(occurred_at),
                order_status: delivered.then_some(OrderStatus::Delivered),
            },
            now,
            |f| {
                f.carrier_event_ids.push(event_id.to_owned());
                if delivered {
                    f.delivered_at = Some(occurred_at);
                }
            },
            |_| {},
        )?;
        Ok(CarrierUpdate::Applied(Box::new(next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{parcel, tracking};
    use crate::order::tests::{placed, product};
    use serde_json::json;

    fn fulfilling() -> Order {
        let order = placed(
            json!([{"sku": "A", "quantity": 2}]),
            &[product("A", 100, 5)],
        );
        order
            .reserve_all_at("BER-1", Utc::now())
            .unwrap()
            .authorized_for_test(Utc::now())
            .start_fulfillment("BER-1", Utc::now())
            .unwrap()
    }

    /// The order the carrier's event made, which must have applied.
    fn applied(update: Result<CarrierUpdate, FulfillmentError>) -> Order {
        match update {
            Ok(CarrierUpdate::Applied(order)) => *order,
            other => panic!("not applied: {other:?}"),
        }
    }

    fn shipped() -> Order {
        let order = fulfilling()
            .pick("picker", Utc::now())
            .unwrap()
            .pack(parcel(), "packer", Utc::now())
            .unwrap();
        let estimate = order.shipping.estimate;
        order
            .ship(tracking(), estimate, "packer", Utc::now())
            .unwrap()
    }

    #[test]
    fn warehouse_steps_follow_each_other() {
        let order = fulfilling();
        assert_eq!(
            (order.status, order.fulfillment_status()),
            (
                OrderStatus::Fulfilling,
                Some(FulfillmentStatus::AwaitingPick)
            )
        );
        assert!(
            matches!(
                order.pack(parcel(), "p", Utc::now()),
                Err(FulfillmentError::OutOfOrder { .. })
            ),
            "pack before pick"
        );
        let picked = order.pick("p", Utc::now()).unwrap();
        assert!(picked.pick("p", Utc::now()).is_err(), "pick twice");
        assert!(
            picked
                .ship(tracking(), order.shipping.estimate, "p", Utc::now())
                .is_err(),
            "ship before pack"
        );
        let packed = picked.pack(parcel(), "p", Utc::now()).unwrap();
        assert!(
            packed.pack(parcel(), "p", Utc::now()).is_err(),
            "pack twice"
        );
        let shipped = packed
            .ship(tracking(), order.shipping.estimate, "p", Utc::now())
            .unwrap();
        assert_eq!(shipped.status, OrderStatus::Shipped);
        assert_eq!(shipped.version, order.version + 3);
        assert_eq!(
            shipped.payment.requests.len(),
            1,
            "shipping asks for the capture"
        );
        let notes: Vec<_> = shipped
            .timeline
            .iter()
            .filter_map(|t| t.note.as_deref())
            .collect();
        assert_eq!(
            notes,
            [
                "stock held; awaiting payment",
                "payment: authorization.succeeded 7.40 EUR",
                "sent to warehouse BER-1",
                "picked",
                "packed",
                "shipped: DHL JJD000390007"
            ]
        );
    }

    #[test]
    fn carrier_events_apply_once_and_nothing_follows_delivery() {
        let order = shipped();
        let in_transit = applied(order.carrier_event(
            "e1",
            CarrierEventKind::InTransit,
            None,
            Utc::now(),
            Utc::now(),
        ));
        assert_eq!(
            in_transit.carrier_event(
                "e1",
                CarrierEventKind::InTransit,
                None,
                Utc::now(),
                Utc::now()
            ),
            Ok(CarrierUpdate::Duplicate)
        );
        let delivered = applied(in_transit.carrier_event(
            "e2",
            CarrierEventKind::Delivered,
            None,
            Utc::now(),
            Utc::now(),
        ));
        assert_eq!(delivered.status, OrderStatus::Delivered);
        assert_eq!(
            delivered.carrier_event(
                "e3",
                CarrierEventKind::InTransit,
                None,
                Utc::now(),
                Utc::now()
            ),
            Err(FulfillmentError::AlreadyDelivered)
        );
    }

    #[test]
    fn the_latest_carrier_event_wins() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let now = Utc::now();
        let delivered = applied(shipped().carrier_event(
            "d",
            CarrierEventKind::Delivered,
            None,
            at("2026-11-20T10:00:00Z"),
            now,
        ));
        // A late "in transit" that happened before the delivery changes nothing.
        assert_eq!(
            delivered.carrier_event(
                "t",
                CarrierEventKind::InTransit,
                None,
                at("2026-11-19T08:00:00Z"),
                now
            ),
            Ok(CarrierUpdate::Superseded)
        );
        let out = applied(shipped().carrier_event(
            "o",
            CarrierEventKind::OutForDelivery,
            None,
            at("2026-11-20T09:00:00Z"),
            now,
        ));
        assert_eq!(
            out.carrier_event(
                "t",
                CarrierEventKind::InTransit,
                None,
                at("2026-11-20T07:00:00Z"),
                now
            ),
            Ok(CarrierUpdate::Superseded)
        );
        assert_eq!(
            out.fulfillment.as_ref().unwrap().status,
            FulfillmentStatus::OutForDelivery
        );
    }

    #[test]
    fn a_shipment_keeps_a_bounded_number_of_carrier_events() {
        let mut order = shipped();
        let start = Utc::now();
        for i in 0..MAX_CARRIER_EVENTS {
            let at = start + chrono::Duration::seconds(i as i64);
            let next = applied(order.carrier_event(
                &format!("e{i}"),
                CarrierEventKind::InTransit,
                None,
                at,
                at,
            ));
            order = next;
        }
        let later = start + chrono::Duration::hours(1);
        assert_eq!(
            order.carrier_event("one-more", CarrierEventKind::InTransit, None, later, later),
            Err(FulfillmentError::TooManyCarrierEvents)
        );
    }

    #[test]
    fn a_carrier_cannot_deliver_an_unshipped_parcel() {
        let result = fulfilling().carrier_event(
            "e1",
            CarrierEventKind::Delivered,
            None,
            Utc::now(),
            Utc::now(),
        );
        assert_eq!(result, Err(FulfillmentError::NotShipped("AWAITING_PICK")));
    }
}
