//! The shipments inside an order: the warehouses' steps and the carriers'.
//!
//! ```text
//! AWAITING_PICK ─pick─► PICKED ─pack─► PACKED ─ship─► SHIPPED ─► IN_TRANSIT ─► OUT_FOR_DELIVERY ─► DELIVERED
//!                                                         └──────────┴──────────────┴──► DELIVERY_EXCEPTION ─┘
//! ```
//! An order leaves as one shipment per location its units were reserved at (the routing plan's
//! parcels), each numbered (`<orderId>-<n>`) and holding that location's units. The shipments
//! live inside the order item: every step is an order transition, conditioned on the order's
//! version like every other, and each shipment's entity tag is its own step count, so the
//! packer of one parcel is not refused because another parcel of the order moved. Warehouse
//! steps must follow each other; carrier events may arrive in any order once the parcel has
//! shipped (carriers do not promise order), each recorded once by its event id, and nothing
//! follows delivery. The order's status follows its shipments: `FULFILLING` while none has
//! left, `PARTIALLY_SHIPPED` while some have and others are still in a warehouse, `SHIPPED`
//! once all have, `PARTIALLY_DELIVERED` once all have left and some have arrived, `DELIVERED`
//! once all have.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ShipmentId, Sku};
use crate::order::history::OrderEvent;
use crate::order::payments::CaptureMode;
use crate::order::{LocationUnits, Order, OrderChange, OrderStatus};
use crate::quantity::Quantity;
use crate::shipping::DeliveryEstimate;
use crate::stock::{StockMove, StockMovement};

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

/// Some units of one line in a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

fn first() -> u32 {
    1
}

/// One of the order's shipments: the units one location sends as one parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfillment {
    /// Its place among the order's shipments, from 1 (orders stored with one shipment carry
    /// none: theirs is the first).
    #[serde(default = "first")]
    pub number: u32,
    /// The location it leaves from, which holds its units' reservation.
    pub warehouse: String,
    /// Its units (read from the order's lines for an order stored before it had several).
    #[serde(default)]
    pub lines: Vec<ShipmentLine>,
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
    /// When this parcel is expected, from its ship date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<DeliveryEstimate>,
    pub steps: Vec<FulfillmentStep>,
    /// Carrier event ids already applied, so a repeated webhook changes nothing.
    #[serde(default)]
    pub carrier_event_ids: Vec<String>,
}

impl Fulfillment {
    /// A shipment the warehouse has just received, awaiting pick.
    pub(crate) fn queued(
        number: u32,
        warehouse: &str,
        lines: Vec<ShipmentLine>,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Fulfillment {
            number,
            warehouse: warehouse.to_owned(),
            lines,
            estimate: None,
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

    /// Its id: the order's and its number.
    pub fn id(&self, order: &Order) -> ShipmentId {
        ShipmentId::new(order.id.clone(), self.number)
    }

    /// Its entity tag: every change of a shipment adds a step, so the count of its steps
    /// changes whenever it does, and only then.
    pub fn version(&self) -> u64 {
        self.steps.len() as u64
    }

    /// How many units it holds.
    pub fn units(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity.get()).sum()
    }

    /// Whether it has left its location (shipped, on its way or delivered).
    pub fn has_left(&self) -> bool {
        !self.status.is_warehouse_work()
    }
}

/// A step the shipment's state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FulfillmentError {
    #[error("the order is {0}, not in fulfillment")]
    NotInFulfillment(&'static str),
    #[error("the order has no shipment {0}")]
    NoSuchShipment(u32),
    #[error("shipment {number} leaves from {holds}, which holds its units; not from {asked}")]
    WrongLocation {
        number: u32,
        holds: String,
        asked: String,
    },
    /// Reserved, but its payment is neither authorized nor paid: held as awaiting payment.
    #[error("the order waits for its payment (it is {0})")]
    AwaitingPayment(&'static str),
    /// Reserved, but some of its units wait for stock: it goes to the warehouse whole.
    #[error("{0} of the order's units wait for stock")]
    Backordered(u32),
    /// Reserved and paid, but pre-ordered: it goes to the warehouse on its release date.
    #[error("the order is pre-ordered: it leaves on its release date, {0}")]
    AwaitingRelease(chrono::NaiveDate),
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
    #[error("{0}")]
    CannotMove(String),
    #[error("another parcel of the order shipped under tracking number {0}")]
    DuplicateTracking(String),
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

/// One move of a shipment: to `status`, by whom, and when.
struct ShipmentMove<'a> {
    status: FulfillmentStatus,
    by: &'a str,
    note: Option<String>,
    /// When it happened (a carrier's time), if not now.
    at: Option<DateTime<Utc>>,
}

/// The statuses of an order whose shipments are in the warehouses' or the carriers' hands.
const IN_FULFILLMENT: [OrderStatus; 5] = [
    OrderStatus::Fulfilling,
    OrderStatus::PartiallyShipped,
    OrderStatus::Shipped,
    OrderStatus::PartiallyDelivered,
    OrderStatus::Delivered,
];

impl Order {
    /// The shipment numbered `number`, for an order the warehouse or a carrier is working on.
    pub fn shipment(&self, number: u32) -> Result<&Fulfillment, FulfillmentError> {
        if self.shipments.is_empty() {
            return Err(FulfillmentError::NotInFulfillment(self.status.as_str()));
        }
        self.shipments
            .iter()
            .find(|s| s.number == number)
            .ok_or(FulfillmentError::NoSuchShipment(number))
    }

    /// The shipment leaving from `location`: the one the location still works on (the first,
    /// if two are), else the last made there. An order has one per location, and another there
    /// only for stock that arrived for it once the first was picked.
    pub fn shipment_at(&self, location: &str) -> Option<&Fulfillment> {
        let there = || self.shipments.iter().filter(|s| s.warehouse == location);
        there()
            .find(|s| s.status.is_warehouse_work())
            .or_else(|| there().next_back())
    }

    /// Its shipment at `location` in `status`: a pick list's row (stock that arrived while
    /// the location's first parcel was picked or packed waits in a second one there).
    pub fn shipment_in(&self, location: &str, status: FulfillmentStatus) -> Option<&Fulfillment> {
        self.shipments
            .iter()
            .find(|s| s.warehouse == location && s.status == status)
    }

    /// Whether it leaves as more than one parcel.
    pub fn is_split(&self) -> bool {
        self.shipments.len() > 1
    }

    /// Where shipment `number` stands among the order's shipments now, from 1: "parcel 2 of 2"
    /// (numbers are never given twice, so after a move they may skip).
    pub fn parcel_position(&self, number: u32) -> u32 {
        self.shipments
            .iter()
            .position(|s| s.number == number)
            .map_or(number, |i| i as u32 + 1)
    }

    /// The highest number a shipment of the order has ever had: numbers are never given twice.
    pub fn last_shipment_number(&self) -> u32 {
        self.shipments
            .iter()
            .map(|s| s.number)
            .max()
            .unwrap_or(0)
            .max(self.shipments_made)
    }

    /// The order's status its shipments make: none left yet, some left, all left, some
    /// delivered, all delivered. Units still to come (backordered, for an order that ships
    /// what is there) keep it partly shipped or partly delivered.
    pub(crate) fn status_of_shipments(&self) -> OrderStatus {
        let status = self.status_of_parcels_made();
        if self.shipping.ship_complete || self.units_to_come() == 0 {
            return status;
        }
        match status {
            OrderStatus::Shipped => OrderStatus::PartiallyShipped,
            OrderStatus::Delivered => OrderStatus::PartiallyDelivered,
            other => other,
        }
    }

    fn status_of_parcels_made(&self) -> OrderStatus {
        let count = self.shipments.len();
        let left = self.shipments.iter().filter(|s| s.has_left()).count();
        let delivered = self
            .shipments
            .iter()
            .filter(|s| s.status == FulfillmentStatus::Delivered)
            .count();
        if delivered == count {
            OrderStatus::Delivered
        } else if left == 0 {
            OrderStatus::Fulfilling
        } else if left < count {
            OrderStatus::PartiallyShipped
        } else if delivered > 0 {
            OrderStatus::PartiallyDelivered
        } else {
            OrderStatus::Shipped
        }
    }

    /// The units of shipment `number` moved one way at its location.
    pub fn shipment_moves(&self, number: u32, movement: StockMovement) -> Vec<StockMove> {
        self.shipments
            .iter()
            .filter(|s| s.number == number)
            .flat_map(|s| {
                s.lines.iter().map(move |l| StockMove {
                    sku: l.sku.clone(),
                    location: s.warehouse.clone(),
                    quantity: l.quantity,
                    movement,
                })
            })
            .collect()
    }

    /// The order with shipment `number` moved, a step recorded in it, the order's status
    /// following its shipments, and the order recorded through [`Order::record`]; `edit` fills in
    /// what the step brings (the parcel, the tracking), and `then` what it changes in the order
    /// besides.
    fn move_shipment(
        &self,
        number: u32,
        step: ShipmentMove<'_>,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut Fulfillment),
        then: impl FnOnce(&mut Order),
    ) -> Result<Order, FulfillmentError> {
        let mut shipment = self.shipment(number)?.clone();
        let from = shipment.status;
        shipment.status = step.status;
        shipment.steps.push(FulfillmentStep {
            status: step.status,
            at: step.at.unwrap_or(now),
            by: step.by.to_owned(),
            note: step.note.clone(),
        });
        edit(&mut shipment);
        let mut label = step.status.as_str().to_lowercase().replace('_', " ");
        if self.leaves_in_parts() {
            label = format!(
                "parcel {} of {} ({}): {label}",
                self.parcel_position(number),
                self.parcels_expected(),
                shipment.warehouse
            );
        }
        let note = Some(match step.note {
            Some(detail) => format!("{label}: {detail}"),
            None => label,
        });
        Ok(self.record(now, note, |next| {
            if let Some(slot) = next.shipments.iter_mut().find(|s| s.number == number) {
                *slot = shipment;
            }
            if IN_FULFILLMENT.contains(&next.status) {
                next.status = next.status_of_shipments();
            }
            then(next);
            OrderEvent::for_shipment(from, step.status)
        }))
    }

    /// A warehouse step on shipment `number` by `by` to `status`, which must follow
    /// `expected`.
    fn warehouse_step(
        &self,
        number: u32,
        expected: FulfillmentStatus,
        status: FulfillmentStatus,
        by: &str,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut Fulfillment),
    ) -> Result<Order, FulfillmentError> {
        self.expect_step(number, expected)?;
        self.move_shipment(
            number,
            ShipmentMove {
                status,
                by,
                note: None,
                at: None,
            },
            now,
            edit,
            |_| {},
        )
    }

    /// The shipments the order's reservation makes: one per location holding some of its
    /// units, the home location's first; `fallback` for an order whose lines name no location.
    fn planned_shipments(&self, fallback: &str, now: DateTime<Utc>) -> Vec<Fulfillment> {
        let mut locations = self.locations();
        if locations.is_empty() {
            locations.push(fallback);
        }
        // Numbers go on from the parcels the order ever had (all called off, it started again).
        locations
            .iter()
            .zip(self.last_shipment_number() + 1..)
            .map(|(location, number)| {
                let lines = self
                    .lines
                    .iter()
                    .flat_map(|line| {
                        // A line wholly backordered has nothing to ship yet; one that names no
                        // location at all was stored before locations and ships whole.
                        let at: Vec<_> =
                            if line.allocations.is_empty() && line.backorders.is_empty() {
                                vec![line.quantity]
                            } else {
                                line.allocations
                                    .iter()
                                    .filter(|a| a.location == *location)
                                    .map(|a| a.quantity)
                                    .collect()
                            };
                        at.into_iter().map(|quantity| ShipmentLine {
                            sku: line.sku.clone(),
                            quantity,
                        })
                    })
                    .collect();
                Fulfillment::queued(number, location, lines, None, now)
            })
            .collect()
    }

    /// The reserved order goes to the warehouses: `RESERVED → FULFILLING`, one shipment per
    /// location holding its units, each awaiting pick there (`fallback` takes an order whose
    /// lines name no location).
    pub fn start_fulfillment(
        &self,
        fallback: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        let payment = self.payment_status();
        if self.status == OrderStatus::Reserved && !payment.allows_fulfillment() {
            return Err(FulfillmentError::AwaitingPayment(payment.as_str()));
        }
        if self.status == OrderStatus::Reserved && self.waits_for_stock() {
            return Err(FulfillmentError::Backordered(self.backordered()));
        }
        if self.status == OrderStatus::Reserved {
            if let Some(on) = self.held_for_release(crate::replenishment::day_of(now)) {
                return Err(FulfillmentError::AwaitingRelease(on));
            }
        }
        if self.awaiting_edit().is_some() {
            return Err(FulfillmentError::AwaitingPayment("EDIT_AWAITING_PAYMENT"));
        }
        if self.status != OrderStatus::Reserved {
            return self.parcel_what_arrived(now);
        }
        // An order held back when the PSP released its hold resumes its shipments where they
        // got to, at the locations that had them.
        let (shipments, note) = if self.shipments.is_empty() {
            let shipments = self.planned_shipments(fallback, now);
            let note = match shipments.as_slice() {
                [one] => format!("sent to warehouse {}", one.warehouse),
                many => format!(
                    "sent to {} in {} parcels",
                    many.iter()
                        .map(|s| s.warehouse.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    many.len()
                ),
            };
            (shipments, note)
        } else {
            let mut resumed = self.shipments.clone();
            for held in resumed.iter_mut().filter(|s| !s.has_left()) {
                held.steps.push(FulfillmentStep {
                    status: held.status,
                    at: now,
                    by: "system".into(),
                    note: Some("paid again".into()),
                });
            }
            let at: Vec<_> = resumed.iter().map(|s| s.warehouse.as_str()).collect();
            let note = format!("paid again: back to warehouse {}", at.join(", "));
            // Stock that arrived while it waited for its new payment goes with it.
            let mut with_arrivals = self.clone();
            with_arrivals.shipments = resumed;
            let arrived = if self.shipping.ship_complete {
                Vec::new()
            } else {
                with_arrivals.unparcelled()
            };
            parcel_units(&mut with_arrivals, &arrived, &note, now);
            (with_arrivals.shipments, note)
        };
        self.transition(
            OrderStatus::Fulfilling,
            &[OrderStatus::Reserved],
            now,
            Some(note),
            |next| {
                next.shipments = shipments;
                next.shipments_made = next.last_shipment_number();
                OrderEvent::FulfillmentStarted
            },
        )
        .map_err(|e| FulfillmentError::NotInFulfillment(e.from.as_str()))
    }

    /// Stock that arrived for an order already in the warehouses' hands (one that ships what
    /// is there) goes into a parcel: with the location's shipment still awaiting its pick,
    /// else in a new one. Its status follows its parcels (partly shipped while one is still to
    /// leave).
    fn parcel_what_arrived(&self, now: DateTime<Utc>) -> Result<Order, FulfillmentError> {
        // Only an order that ships what is there has units arrive after it reached the
        // warehouse.
        let unparcelled = if self.shipping.ship_complete {
            Vec::new()
        } else {
            self.unparcelled()
        };
        let in_warehouses = matches!(
            self.status,
            OrderStatus::Fulfilling
                | OrderStatus::PartiallyShipped
                | OrderStatus::Shipped
                | OrderStatus::PartiallyDelivered
        );
        if !in_warehouses || unparcelled.is_empty() {
            return Err(FulfillmentError::NotInFulfillment(self.status.as_str()));
        }
        let payment = self.payment_status();
        if !payment.allows_fulfillment() {
            return Err(FulfillmentError::AwaitingPayment(payment.as_str()));
        }
        let count: u32 = unparcelled.iter().map(|(_, _, n)| n).sum();
        let mut locations: Vec<&str> = Vec::new();
        for (location, _, _) in &unparcelled {
            if !locations.contains(&location.as_str()) {
                locations.push(location);
            }
        }
        let note = format!(
            "{count} unit{} that arrived sent to warehouse {}",
            if count == 1 { "" } else { "s" },
            locations.join(", ")
        );
        Ok(self.record(now, Some(note.clone()), |next| {
            parcel_units(next, &unparcelled, &note, now);
            next.status = next.status_of_shipments();
            OrderEvent::FulfillmentStarted
        }))
    }

    fn expect_step(
        &self,
        number: u32,
        expected: FulfillmentStatus,
    ) -> Result<(), FulfillmentError> {
        // Held back from the warehouse: the PSP released its hold and it waits for a new
        // payment, or an edit waits for the payment of its new total.
        if self.status == OrderStatus::Reserved && !self.shipments.is_empty() {
            return Err(FulfillmentError::AwaitingPayment(
                if self.awaiting_edit().is_some() {
                    "EDIT_AWAITING_PAYMENT"
                } else {
                    self.payment_status().as_str()
                },
            ));
        }
        if !matches!(
            self.status,
            OrderStatus::Fulfilling | OrderStatus::PartiallyShipped
        ) {
            return Err(FulfillmentError::NotInFulfillment(self.status.as_str()));
        }
        let actual = self.shipment(number)?.status;
        if actual == expected {
            Ok(())
        } else {
            Err(FulfillmentError::OutOfOrder {
                expected: expected.as_str(),
                actual: actual.as_str(),
            })
        }
    }

    /// Refuses a warehouse step on shipment `number` by someone working at `location`, if it
    /// is not the location holding the shipment's units: the step would take them from the
    /// wrong counters.
    pub fn check_location(&self, number: u32, location: &str) -> Result<(), FulfillmentError> {
        let holds = &self.shipment(number)?.warehouse;
        if holds == location {
            Ok(())
        } else {
            Err(FulfillmentError::WrongLocation {
                number,
                holds: holds.clone(),
                asked: location.to_owned(),
            })
        }
    }

    /// The items of shipment `number` are taken from the shelves.
    pub fn pick(
        &self,
        number: u32,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        self.warehouse_step(
            number,
            FulfillmentStatus::AwaitingPick,
            FulfillmentStatus::Picked,
            by,
            now,
            |_| {},
        )
    }

    /// The items of shipment `number` are in a parcel of known weight and size.
    pub fn pack(
        &self,
        number: u32,
        parcel: Parcel,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        self.warehouse_step(
            number,
            FulfillmentStatus::Picked,
            FulfillmentStatus::Packed,
            by,
            now,
            |f| f.parcel = Some(parcel),
        )
    }

    /// Parcel `number` leaves with a carrier, with its estimate from the ship date; the order
    /// becomes `PARTIALLY_SHIPPED`, or `SHIPPED` with its last parcel, and its estimate is its
    /// latest parcel's. The store moves the parcel's units out of `reserved` in the same write.
    pub fn ship(
        &self,
        number: u32,
        tracking: Tracking,
        estimate: DeliveryEstimate,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, FulfillmentError> {
        self.expect_step(number, FulfillmentStatus::Packed)?;
        // Carriers' events find their parcel by tracking number: two parcels cannot share one.
        if self.shipments.iter().any(|s| {
            s.number != number
                && s.tracking
                    .as_ref()
                    .is_some_and(|t| t.tracking_number == tracking.tracking_number)
        }) {
            return Err(FulfillmentError::DuplicateTracking(
                tracking.tracking_number,
            ));
        }
        // The goods leave only against money held or taken (the PSP may have released a hold
        // since the order was picked).
        let payment = self.payment_status();
        if !payment.allows_fulfillment() {
            return Err(FulfillmentError::AwaitingPayment(payment.as_str()));
        }
        let note = format!("{} {}", tracking.carrier, tracking.tracking_number);
        self.move_shipment(
            number,
            ShipmentMove {
                status: FulfillmentStatus::Shipped,
                by,
                note: Some(note),
                at: None,
            },
            now,
            |f| {
                f.tracking = Some(tracking);
                f.shipped_at = Some(now);
                f.estimate = Some(estimate);
            },
            |next| {
                let latest = next
                    .shipments
                    .iter()
                    .filter_map(|s| s.estimate)
                    .max_by_key(|e| e.latest);
                let unshipped =
                    next.shipments.iter().any(|s| !s.has_left()) || next.units_to_come() > 0;
                match latest {
                    Some(latest) if !unshipped || latest.latest > next.shipping.estimate.latest => {
                        next.shipping.estimate = latest;
                    }
                    _ => {}
                }
                // The goods leave: the money held for them is taken.
                next.request_what_is_due(CaptureMode::OnShipment, now);
            },
        )
    }

    /// The shipment a carrier's event is about: the one shipped under `tracking_number`, else
    /// shipment `number` if it has not shipped (the event is then refused as too early).
    pub fn shipment_tracked_as(&self, number: u32, tracking_number: &str) -> Option<&Fulfillment> {
        self.shipments
            .iter()
            .find(|s| {
                s.tracking
                    .as_ref()
                    .is_some_and(|t| t.tracking_number == tracking_number)
            })
            .or_else(|| {
                self.shipments
                    .iter()
                    .find(|s| s.number == number && s.tracking.is_none())
            })
    }

    /// Applies a carrier's event to shipment `number`, once per event id.
    pub fn carrier_event(
        &self,
        number: u32,
        event_id: &str,
        kind: CarrierEventKind,
        detail: Option<String>,
        occurred_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CarrierUpdate, FulfillmentError> {
        let fulfillment = self.shipment(number)?;
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
            // A delivery told again under another id (a carrier's proof of delivery, say) is a
            // repeat; any other step after it is one the parcel cannot take.
            if kind.status() == FulfillmentStatus::Delivered {
                return Ok(CarrierUpdate::Duplicate);
            }
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
            number,
            ShipmentMove {
                status,
                by: "carrier",
                note: detail,
                at: Some(occurred_at),
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

impl Order {
    /// Whether shipment `number` may still be moved: it awaits pick in an order the warehouses
    /// may work on.
    pub fn can_move(&self, number: u32) -> bool {
        self.expect_step(number, FulfillmentStatus::AwaitingPick)
            .is_ok()
    }

    /// Staff move shipment `number` — all of it, or `units` of it (SKU and how many) — to
    /// location `to` before it is picked: the units' reservation is released where it was and
    /// taken where they go, in the same write as the order (the store refuses the write if `to`
    /// holds too few). A whole shipment goes as it is (its id unchanged) unless the order has a
    /// shipment at `to` already; units join the order's shipment at `to` if it has one still
    /// awaiting pick, else a new shipment there, under a number the order never used; a
    /// shipment left without units is gone (its id answers no more, and is never given again).
    /// The caller checks that `to` is a location that ships to the order's destination.
    pub fn move_units(
        &self,
        number: u32,
        to: &str,
        units: Option<&[(Sku, Quantity)]>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, FulfillmentError> {
        self.expect_step(number, FulfillmentStatus::AwaitingPick)?;
        let from = self.shipment(number)?.clone();
        if self.shipping.method == crate::shipping::ShippingMethod::InStorePickup {
            return Err(FulfillmentError::CannotMove(
                "an in-store pickup is collected at its store: its units stay there".into(),
            ));
        }
        if from.warehouse == to {
            return Err(FulfillmentError::CannotMove(format!(
                "shipment {number} already leaves from {to}"
            )));
        }
        // Units join the location's shipment still in its hands, if it has one (one that left
        // is not joined: the units make a new one).
        let open_at = |order: &Order, location: &str| {
            let there = |wanted: fn(&Fulfillment) -> bool| {
                order
                    .shipments
                    .iter()
                    .position(|s| s.warehouse == location && wanted(s))
            };
            there(|s| s.status == FulfillmentStatus::AwaitingPick)
                .or_else(|| there(|s| s.status.is_warehouse_work()))
        };
        if let Some(there) = open_at(self, to).map(|i| &self.shipments[i]) {
            if there.status != FulfillmentStatus::AwaitingPick {
                return Err(FulfillmentError::CannotMove(format!(
                    "the order's shipment at {to} is {}: units can join it only before it is picked",
                    there.status.as_str()
                )));
            }
        }
        // What moves, SKU by SKU, checked against what the shipment holds.
        let moving: Vec<(Sku, u32)> = match units {
            None => from
                .lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity.get()))
                .collect(),
            Some(units) => {
                let mut wanted: Vec<(Sku, u32)> = Vec::new();
                for (sku, quantity) in units {
                    match wanted.iter_mut().find(|(s, _)| s == sku) {
                        Some((_, n)) => *n += quantity.get(),
                        None => wanted.push((sku.clone(), quantity.get())),
                    }
                }
                for (sku, n) in &wanted {
                    let held: u32 = from
                        .lines
                        .iter()
                        .filter(|l| &l.sku == sku)
                        .map(|l| l.quantity.get())
                        .sum();
                    if *n > held {
                        return Err(FulfillmentError::CannotMove(format!(
                            "shipment {number} holds {held} of {sku}, not {n}"
                        )));
                    }
                }
                wanted
            }
        };
        // One transaction: per SKU its stock item and an entry in its history at each of the
        // two locations, the order, and its shipments' pick-list entries.
        let most = crate::MAX_TRANSACTION_ITEMS
            .saturating_sub(2 + self.last_shipment_number() as usize)
            / 3;
        if moving.len() > most {
            return Err(FulfillmentError::CannotMove(format!(
                "at most {most} SKUs move at once; this moves {}",
                moving.len()
            )));
        }
        let mut moves = Vec::with_capacity(moving.len() * 2);
        for (sku, n) in &moving {
            let quantity =
                Quantity::new(*n).map_err(|e| FulfillmentError::CannotMove(e.to_string()))?;
            moves.push(StockMove {
                sku: sku.clone(),
                location: from.warehouse.clone(),
                quantity,
                movement: StockMovement::Release,
            });
            moves.push(StockMove {
                sku: sku.clone(),
                location: to.to_owned(),
                quantity,
                movement: StockMovement::ReserveMoved,
            });
        }
        let count: u32 = moving.iter().map(|(_, n)| n).sum();
        let note = format!(
            "moved {count} unit{} of shipment {number} from {} to {to}",
            if count == 1 { "" } else { "s" },
            from.warehouse
        );
        let whole = moving.iter().map(|(_, n)| n).sum::<u32>() == from.units();
        // Every shipment the move touches records it, still awaiting pick.
        let step = || FulfillmentStep {
            status: FulfillmentStatus::AwaitingPick,
            at: now,
            by: by.to_owned(),
            note: Some(note.clone()),
        };
        let next = self.record(now, Some(note.clone()), |next| {
            for (sku, n) in &moving {
                shift_allocation(next, sku, *n, &from.warehouse, to);
            }
            // The whole shipment to a location the order has none at: the same shipment (its
            // id unchanged), leaving from there.
            if whole && open_at(next, to).is_none() {
                if let Some(moved) = next.shipments.iter_mut().find(|s| s.number == number) {
                    moved.warehouse = to.to_owned();
                    moved.steps.push(step());
                }
                return OrderEvent::Updated;
            }
            for (sku, n) in &moving {
                take_from_shipment(next, number, sku, *n);
            }
            match open_at(next, to).map(|i| &mut next.shipments[i]) {
                Some(there) => {
                    for (sku, n) in &moving {
                        add_to_lines(&mut there.lines, sku, *n);
                    }
                    there.steps.push(step());
                }
                None => {
                    let number = next.last_shipment_number() + 1;
                    next.shipments_made = number;
                    let mut lines = Vec::new();
                    for (sku, n) in &moving {
                        add_to_lines(&mut lines, sku, *n);
                    }
                    next.shipments.push(Fulfillment::queued(
                        number,
                        to,
                        lines,
                        Some(note.clone()),
                        now,
                    ));
                }
            }
            if let Some(left) = next.shipments.iter_mut().find(|s| s.number == number) {
                left.steps.push(step());
            }
            next.shipments.retain(|s| !s.lines.is_empty());
            OrderEvent::Updated
        });
        Ok(OrderChange {
            order: next,
            moves,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        })
    }
}

/// Puts `units` (location, SKU, how many) into the order's parcels: with the location's
/// shipment still awaiting its pick, else in a new one there.
fn parcel_units(order: &mut Order, units: &[(String, Sku, u32)], note: &str, now: DateTime<Utc>) {
    let mut locations: Vec<&str> = Vec::new();
    for (location, _, _) in units {
        if !locations.contains(&location.as_str()) {
            locations.push(location);
        }
    }
    for location in locations {
        let waiting = order
            .shipments
            .iter()
            .position(|s| s.warehouse == location && s.status == FulfillmentStatus::AwaitingPick);
        let index = match waiting {
            Some(index) => {
                order.shipments[index].steps.push(FulfillmentStep {
                    status: FulfillmentStatus::AwaitingPick,
                    at: now,
                    by: "system".into(),
                    note: Some(note.to_owned()),
                });
                index
            }
            None => {
                let number = order.last_shipment_number() + 1;
                order.shipments_made = number;
                order.shipments.push(Fulfillment::queued(
                    number,
                    location,
                    Vec::new(),
                    Some(note.to_owned()),
                    now,
                ));
                order.shipments.len() - 1
            }
        };
        for (_, sku, n) in units.iter().filter(|(l, _, _)| l == location) {
            add_to_lines(&mut order.shipments[index].lines, sku, *n);
        }
    }
}

/// Moves `n` units of `sku` in the order's lines' allocations from `from` to `to`.
fn shift_allocation(order: &mut Order, sku: &Sku, mut n: u32, from: &str, to: &str) {
    for line in order.lines.iter_mut().filter(|l| &l.sku == sku) {
        let Some(at) = line.allocations.iter_mut().find(|a| a.location == from) else {
            continue;
        };
        let take = n.min(at.quantity.get());
        if take == 0 {
            continue;
        }
        match Quantity::new(at.quantity.get() - take) {
            Ok(left) => at.quantity = left,
            Err(_) => line.allocations.retain(|a| a.location != from),
        }
        match line.allocations.iter_mut().find(|a| a.location == to) {
            Some(there) => {
                if let Ok(q) = Quantity::new(there.quantity.get() + take) {
                    there.quantity = q;
                }
            }
            None => {
                if let Ok(quantity) = Quantity::new(take) {
                    line.allocations.push(LocationUnits {
                        location: to.to_owned(),
                        quantity,
                    });
                }
            }
        }
        n -= take;
    }
}

/// Takes `n` units of `sku` out of shipment `number`'s lines (a line left with none goes).
fn take_from_shipment(order: &mut Order, number: u32, sku: &Sku, mut n: u32) {
    let Some(shipment) = order.shipments.iter_mut().find(|s| s.number == number) else {
        return;
    };
    let mut kept = Vec::with_capacity(shipment.lines.len());
    for line in shipment.lines.drain(..) {
        if &line.sku != sku || n == 0 {
            kept.push(line);
            continue;
        }
        let take = n.min(line.quantity.get());
        n -= take;
        if let Ok(left) = Quantity::new(line.quantity.get() - take) {
            kept.push(ShipmentLine {
                sku: line.sku,
                quantity: left,
            });
        }
    }
    shipment.lines = kept;
}

/// Adds `n` units of `sku` to `lines`.
fn add_to_lines(lines: &mut Vec<ShipmentLine>, sku: &Sku, n: u32) {
    match lines.iter_mut().find(|l| &l.sku == sku) {
        Some(line) => {
            if let Ok(q) = Quantity::new(line.quantity.get() + n) {
                line.quantity = q;
            }
        }
        None => {
            if let Ok(quantity) = Quantity::new(n) {
                lines.push(ShipmentLine {
                    sku: sku.clone(),
                    quantity,
                });
            }
        }
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
            .pick(1, "picker", Utc::now())
            .unwrap()
            .pack(1, parcel(), "packer", Utc::now())
            .unwrap();
        let estimate = order.shipping.estimate;
        order
            .ship(1, tracking(), estimate, "packer", Utc::now())
            .unwrap()
    }

    /// An order of 2 × A from BER-1 and 1 × B from AMS-1, authorized and sent to both.
    fn split() -> Order {
        use crate::routing::{Plan, PlannedShipment};
        let order = placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
            &[product("A", 100, 5), product("B", 300, 5)],
        );
        let shipment = |location: &str, sku: &str, units: u32| PlannedShipment {
            location: location.into(),
            lines: vec![(Sku::parse(sku).unwrap(), units)],
            weight_grams: 0,
            cost: 0,
        };
        let plan = Plan {
            shipments: vec![shipment("BER-1", "A", 2), shipment("AMS-1", "B", 1)],
        };
        order
            .reserve(&plan, Utc::now())
            .unwrap()
            .authorized_for_test(Utc::now())
            .start_fulfillment("BER-1", Utc::now())
            .unwrap()
    }

    /// An order of `skus` one-unit lines, all reserved at Berlin and in its work.
    fn wide(skus: usize) -> Order {
        let names: Vec<String> = (0..skus).map(|i| format!("SKU-{i:02}")).collect();
        let lines: Vec<_> = names
            .iter()
            .map(|n| json!({"sku": n, "quantity": 1}))
            .collect();
        let catalog: Vec<_> = names.iter().map(|n| product(n, 100, 5)).collect();
        placed(json!(lines), &catalog)
            .reserve_all_at("BER-1", Utc::now())
            .unwrap()
            .authorized_for_test(Utc::now())
            .start_fulfillment("BER-1", Utc::now())
            .unwrap()
    }

    #[test]
    fn a_move_takes_as_many_skus_as_its_one_transaction_holds() {
        // 100 items: per SKU its stock item and two history entries; the order and its pick-list
        // entries (one shipment number, and the one the move may add).
        let most = (crate::MAX_TRANSACTION_ITEMS - 2 - 1) / 3;
        assert_eq!(most, 32);
        assert!(wide(most)
            .move_units(1, "AMS-1", None, "staff", Utc::now())
            .is_ok());
        let refused = wide(most + 1).move_units(1, "AMS-1", None, "staff", Utc::now());
        assert!(
            matches!(&refused, Err(FulfillmentError::CannotMove(why)) if why.contains("at most 32 SKUs")),
            "{refused:?}"
        );
    }

    fn ship_parcel(order: &Order, number: u32) -> Order {
        let packed = order
            .pick(number, "picker", Utc::now())
            .unwrap()
            .pack(number, parcel(), "packer", Utc::now())
            .unwrap();
        let mut tracking = tracking();
        tracking.tracking_number = format!("JJD-{number}");
        packed
            .ship(
                number,
                tracking,
                packed.shipping.estimate,
                "packer",
                Utc::now(),
            )
            .unwrap()
    }

    #[test]
    fn a_split_order_leaves_as_one_shipment_per_location_with_its_units() {
        let order = split();
        let at: Vec<_> = order
            .shipments
            .iter()
            .map(|s| (s.number, s.warehouse.as_str(), s.units()))
            .collect();
        assert_eq!(at, [(1, "BER-1", 2), (2, "AMS-1", 1)]);
        assert_eq!(order.status, OrderStatus::Fulfilling);
        assert_eq!(
            order.timeline.last().unwrap().note.as_deref(),
            Some("sent to BER-1, AMS-1 in 2 parcels")
        );
        assert_eq!(
            order.shipment(2).unwrap().id(&order).to_string(),
            format!("{}-2", order.id)
        );
        assert_eq!(order.shipment(3), Err(FulfillmentError::NoSuchShipment(3)));
        assert_eq!(
            order.check_location(2, "BER-1"),
            Err(FulfillmentError::WrongLocation {
                number: 2,
                holds: "AMS-1".into(),
                asked: "BER-1".into()
            }),
            "a parcel is worked on where its units are reserved"
        );
        let moves: Vec<_> = order
            .shipment_moves(2, StockMovement::Ship)
            .into_iter()
            .map(|m| (m.sku.to_string(), m.location, m.quantity.get()))
            .collect();
        assert_eq!(moves, [("B".to_owned(), "AMS-1".to_owned(), 1)]);
    }

    #[test]
    fn the_order_status_follows_its_parcels_and_each_keeps_its_own_version() {
        let order = split();
        let second_before = order.shipment(2).unwrap().version();
        let first_shipped = ship_parcel(&order, 1);
        assert_eq!(first_shipped.status, OrderStatus::PartiallyShipped);
        assert_eq!(
            first_shipped.shipment(2).unwrap().version(),
            second_before,
            "the other parcel's ETag did not move"
        );
        let change = first_shipped.last_change.as_ref().unwrap();
        assert_eq!(
            (change.event.clone(), change.shipment),
            (OrderEvent::Shipped, Some(1))
        );
        assert!(
            first_shipped
                .timeline
                .last()
                .unwrap()
                .note
                .as_deref()
                .unwrap()
                .starts_with("parcel 1 of 2 (BER-1): shipped"),
            "the timeline says which parcel moved"
        );
        assert_eq!(
            first_shipped
                .cancel("changed my mind".into(), "customer", Utc::now())
                .err(),
            Some(crate::order::cancellation::CancelError::Shipped)
        );
        let delivered_first = applied(first_shipped.carrier_event(
            1,
            "d1",
            CarrierEventKind::Delivered,
            None,
            Utc::now(),
            Utc::now(),
        ));
        assert_eq!(delivered_first.status, OrderStatus::PartiallyShipped);
        assert_eq!(
            delivered_first.last_change.as_ref().unwrap().event,
            OrderEvent::Delivered,
            "each parcel's delivery is announced"
        );
        let both_shipped = ship_parcel(&delivered_first, 2);
        assert_eq!(both_shipped.status, OrderStatus::PartiallyDelivered);
        assert_eq!(
            both_shipped
                .shipment_tracked_as(1, "JJD-2")
                .map(|s| s.number),
            Some(2),
            "a carrier's event finds its parcel by tracking number"
        );
        let all = applied(both_shipped.carrier_event(
            2,
            "d2",
            CarrierEventKind::Delivered,
            None,
            Utc::now(),
            Utc::now(),
        ));
        assert_eq!(all.status, OrderStatus::Delivered);
    }

    /// A split order returned whole while its second parcel's share is not taken (unanswered,
    /// then failed): what its returns give back waits, never more than was taken (the failed
    /// share is in front of staff).
    #[test]
    fn a_return_gives_back_only_what_was_taken() {
        use crate::order::payments::PaymentEventKind;
        let first = capture_confirmed(&ship_parcel(&split(), 1), 0);
        let both = ship_parcel(&first, 2);
        let delivered = |order: &Order, number: u32| {
            applied(order.carrier_event(
                number,
                &format!("d{number}"),
                CarrierEventKind::Delivered,
                None,
                Utc::now(),
                Utc::now(),
            ))
        };
        let arrived = delivered(&delivered(&both, 1), 2);
        let given = |order: &Order| -> i64 {
            order
                .refunds
                .iter()
                .filter(|r| !r.awaiting_capture && r.retried_as.is_none())
                .map(|r| r.amount.minor_units())
                .sum()
        };
        let taken = |order: &Order| -> i64 {
            order
                .payment
                .payments()
                .iter()
                .map(|p| p.captured_minor)
                .sum()
        };
        // Parcel 1's share (A × 2 and the shipping charge) is taken; parcel 2's is on its way.
        let a = arrived
            .returned_for_test("A", 2, "RESTOCK", Utc::now())
            .unwrap()
            .order;
        let b = a
            .returned_for_test("B", 1, "RESTOCK", Utc::now())
            .unwrap()
            .order;
        assert!(b.refunds.iter().all(|r| r.awaiting_capture));
        // The share fails: nothing more is given back than was taken.
        let failed = capture_answered(&b, 1, PaymentEventKind::CaptureFailed, true);
        assert!(
            given(&failed) <= taken(&failed),
            "{} > {}",
            given(&failed),
            taken(&failed)
        );
        assert!(failed.refunds.iter().any(|r| r.awaiting_capture));
    }

    /// The PSP confirms capture `request` of `order`.
    fn capture_confirmed(order: &Order, request: usize) -> Order {
        capture_answered(
            order,
            request,
            crate::order::payments::PaymentEventKind::CaptureSucceeded,
            false,
        )
    }

    /// The PSP answers capture `request` of `order` with `kind`, naming the request if `named`.
    fn capture_answered(
        order: &Order,
        request: usize,
        kind: crate::order::payments::PaymentEventKind,
        named: bool,
    ) -> Order {
        use crate::order::payments::{PaymentEvent, PaymentPolicy};
        let asked = &order.payment.requests[request];
        let event = PaymentEvent {
            event_id: format!("{}-{}", kind.as_str(), asked.request_id),
            kind,
            amount: asked.amount,
            occurred_at: Utc::now(),
            psp_reference: asked.psp_reference.clone(),
            refund_id: None,
            request_id: named.then(|| asked.request_id.clone()),
            reason: None,
        };
        match order
            .record_payment(&event, &PaymentPolicy::default(), Utc::now())
            .unwrap()
        {
            crate::order::payments::PaymentUpdate::Recorded(next) => *next,
            other => panic!("not recorded: {other:?}"),
        }
    }

    #[test]
    fn each_parcel_is_captured_as_it_leaves_and_the_captures_add_up_to_the_total() {
        use crate::order::payments::{PaymentStatus, PspRequestKind};
        let order = split();
        let captures = |o: &Order| -> Vec<(Option<u32>, i64)> {
            o.payment
                .requests
                .iter()
                .filter(|r| r.kind == PspRequestKind::Capture)
                .map(|r| (r.shipment, r.amount.minor_units()))
                .collect()
        };
        // Berlin's parcel (2 × 1.00) leaves first and takes the shipping charge with it.
        let first = ship_parcel(&order, 1);
        let shipping = order.totals.shipping.minor_units();
        assert_eq!(captures(&first), [(Some(1), 200 + shipping)]);
        // Amsterdam's leaves before the PSP answered: its capture waits for the answer.
        let second = ship_parcel(&first, 2);
        assert_eq!(captures(&second).len(), 1, "one capture at a time");
        let confirmed = capture_confirmed(&second, 0);
        assert_eq!(confirmed.payment_status(), PaymentStatus::PartiallyPaid);
        assert!(confirmed.payment_status().allows_fulfillment());
        assert_eq!(
            captures(&confirmed),
            [(Some(1), 200 + shipping), (Some(2), 300)],
            "the rest of the total, with the last parcel"
        );
        let paid = capture_confirmed(&confirmed, 1);
        assert_eq!(paid.payment_status(), PaymentStatus::Paid);
        let taken: i64 = captures(&paid).iter().map(|(_, a)| a).sum();
        assert_eq!(taken, order.totals.total.minor_units());
        assert!(
            paid.payment_attention().is_none(),
            "{:?}",
            paid.payment_attention()
        );
        assert!(paid.payment.outstanding_capture().is_none());
    }

    #[test]
    fn a_shipment_moves_whole_or_in_part_before_it_is_picked_with_its_reservation() {
        let order = split();
        // All of Amsterdam's parcel to Berlin: it joins Berlin's, and its own id is gone.
        let merged = order
            .move_units(2, "BER-1", None, "staff", Utc::now())
            .unwrap();
        let moves: Vec<_> = merged
            .moves
            .iter()
            .map(|m| (m.location.as_str(), m.movement, m.quantity.get()))
            .collect();
        assert_eq!(
            moves,
            [
                ("AMS-1", StockMovement::Release, 1),
                ("BER-1", StockMovement::ReserveMoved, 1)
            ]
        );
        let merged = merged.order;
        assert_eq!(merged.shipments.len(), 1);
        assert_eq!(merged.shipments[0].units(), 3);
        assert!(!merged.is_split());
        assert_eq!(merged.locations(), ["BER-1"], "the allocations follow");
        // One unit of Berlin's two to Amsterdam: a new parcel there.
        let one = [(Sku::parse("A").unwrap(), Quantity::new(1).unwrap())];
        let parted = merged
            .move_units(1, "AMS-1", Some(&one), "staff", Utc::now())
            .unwrap()
            .order;
        let at: Vec<_> = parted
            .shipments
            .iter()
            .map(|s| (s.number, s.warehouse.as_str(), s.units()))
            .collect();
        assert_eq!(
            at,
            [(1, "BER-1", 2), (3, "AMS-1", 1)],
            "a new number: 2 named the parcel that was merged away"
        );
        // The whole of a shipment to a location with none of the order's: the same id.
        let relocated = parted
            .move_units(3, "BER-2", None, "staff", Utc::now())
            .unwrap()
            .order;
        assert_eq!(relocated.shipment(3).unwrap().warehouse, "BER-2");
        assert!(relocated.shipment(3).unwrap().version() > parted.shipment(3).unwrap().version());
        let too_many = [(Sku::parse("A").unwrap(), Quantity::new(5).unwrap())];
        assert!(matches!(
            parted.move_units(1, "AMS-1", Some(&too_many), "staff", Utc::now()),
            Err(FulfillmentError::CannotMove(_))
        ));
        let picked = parted.pick(1, "p", Utc::now()).unwrap();
        assert!(matches!(
            picked.move_units(1, "AMS-1", None, "staff", Utc::now()),
            Err(FulfillmentError::OutOfOrder { .. })
        ));
        assert!(
            matches!(
                picked.move_units(3, "BER-1", None, "staff", Utc::now()),
                Err(FulfillmentError::CannotMove(_))
            ),
            "units cannot join a parcel already picked"
        );
    }

    #[test]
    fn a_hold_released_after_one_parcel_was_captured_stops_the_rest_and_needs_staff() {
        use crate::order::payments::{
            AttentionReason, PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentStatus,
            PaymentUpdate,
        };
        let first = capture_confirmed(&ship_parcel(&split(), 1), 0);
        assert_eq!(first.payment_status(), PaymentStatus::PartiallyPaid);
        let void = PaymentEvent {
            event_id: "void-rest".into(),
            kind: PaymentEventKind::VoidSucceeded,
            amount: first.totals.total,
            occurred_at: Utc::now() + chrono::Duration::seconds(5),
            psp_reference: first.payment.requests[0].psp_reference.clone(),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        let PaymentUpdate::Recorded(voided) = first
            .record_payment(&void, &PaymentPolicy::default(), Utc::now())
            .unwrap()
        else {
            panic!("not recorded")
        };
        assert_eq!(voided.payment_status(), PaymentStatus::Voided);
        assert_eq!(
            voided.payment_attention().map(|a| a.reason),
            Some(AttentionReason::PaymentVoided)
        );
        let packed = voided
            .pick(2, "p", Utc::now())
            .unwrap()
            .pack(2, parcel(), "p", Utc::now())
            .unwrap();
        assert!(
            matches!(
                packed.ship(2, tracking(), packed.shipping.estimate, "p", Utc::now()),
                Err(FulfillmentError::AwaitingPayment("VOIDED"))
            ),
            "nothing behind the rest: it does not leave"
        );
    }

    #[test]
    fn a_capture_answered_twice_under_its_name_leaves_the_next_one_outstanding() {
        use crate::order::payments::{PaymentEventKind, PaymentStatus};
        let both = ship_parcel(&ship_parcel(&split(), 1), 2);
        // The PSP reports a failure, then a success, of the first share, each naming it.
        let failed = capture_answered(&both, 0, PaymentEventKind::CaptureFailed, true);
        let first = capture_answered(&failed, 0, PaymentEventKind::CaptureSucceeded, true);
        assert_eq!(first.payment_status(), PaymentStatus::PartiallyPaid);
        let second = first
            .payment
            .outstanding_capture()
            .expect("the second share is asked and unanswered");
        assert_eq!(second.shipment, Some(2));
        let paid = capture_answered(&first, 1, PaymentEventKind::CaptureSucceeded, true);
        assert_eq!(paid.payment_status(), PaymentStatus::Paid);
        assert!(paid.payment.outstanding_capture().is_none());
    }

    #[test]
    fn two_parcels_cannot_share_a_tracking_number() {
        let first = ship_parcel(&split(), 1);
        let packed = first
            .pick(2, "p", Utc::now())
            .unwrap()
            .pack(2, parcel(), "p", Utc::now())
            .unwrap();
        let mut same = tracking();
        same.tracking_number = "JJD-1".into();
        assert_eq!(
            packed.ship(2, same, packed.shipping.estimate, "p", Utc::now()),
            Err(FulfillmentError::DuplicateTracking("JJD-1".into()))
        );
    }

    #[test]
    fn a_split_order_can_be_cancelled_only_while_every_parcel_is_unpacked() {
        let order = split();
        let picked = order.pick(2, "p", Utc::now()).unwrap();
        let change = picked.cancel("no".into(), "customer", Utc::now()).unwrap();
        let mut released: Vec<_> = change
            .moves
            .iter()
            .map(|m| (m.location.clone(), m.quantity.get()))
            .collect();
        released.sort();
        assert_eq!(released, [("AMS-1".to_owned(), 1), ("BER-1".to_owned(), 2)]);
        let packed = picked.pack(2, parcel(), "p", Utc::now()).unwrap();
        assert_eq!(
            packed.cancel("no".into(), "customer", Utc::now()).err(),
            Some(crate::order::cancellation::CancelError::Packed)
        );
    }

    #[test]
    fn warehouse_steps_follow_each_other() {
        let order = fulfilling();
        assert_eq!(
            (order.status, order.shipments.first().map(|f| f.status)),
            (
                OrderStatus::Fulfilling,
                Some(FulfillmentStatus::AwaitingPick)
            )
        );
        assert!(
            matches!(
                order.pack(1, parcel(), "p", Utc::now()),
                Err(FulfillmentError::OutOfOrder { .. })
            ),
            "pack before pick"
        );
        let picked = order.pick(1, "p", Utc::now()).unwrap();
        assert!(picked.pick(1, "p", Utc::now()).is_err(), "pick twice");
        assert!(
            picked
                .ship(1, tracking(), order.shipping.estimate, "p", Utc::now())
                .is_err(),
            "ship before pack"
        );
        let packed = picked.pack(1, parcel(), "p", Utc::now()).unwrap();
        assert!(
            packed.pack(1, parcel(), "p", Utc::now()).is_err(),
            "pack twice"
        );
        let shipped = packed
            .ship(1, tracking(), order.shipping.estimate, "p", Utc::now())
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
            1,
            "e1",
            CarrierEventKind::InTransit,
            None,
            Utc::now(),
            Utc::now(),
        ));
        assert_eq!(
            in_transit.carrier_event(
                1,
                "e1",
                CarrierEventKind::InTransit,
                None,
                Utc::now(),
                Utc::now()
            ),
            Ok(CarrierUpdate::Duplicate)
        );
        let delivered = applied(in_transit.carrier_event(
            1,
            "e2",
            CarrierEventKind::Delivered,
            None,
            Utc::now(),
            Utc::now(),
        ));
        assert_eq!(delivered.status, OrderStatus::Delivered);
        assert_eq!(
            delivered.carrier_event(
                1,
                "e3",
                CarrierEventKind::InTransit,
                None,
                Utc::now(),
                Utc::now()
            ),
            Err(FulfillmentError::AlreadyDelivered)
        );
        // The delivery told again under another id (a proof of delivery): a repeat.
        assert_eq!(
            delivered.carrier_event(
                1,
                "e4",
                CarrierEventKind::Delivered,
                None,
                Utc::now(),
                Utc::now()
            ),
            Ok(CarrierUpdate::Duplicate)
        );
    }

    #[test]
    fn the_latest_carrier_event_wins() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let now = Utc::now();
        let delivered = applied(shipped().carrier_event(
            1,
            "d",
            CarrierEventKind::Delivered,
            None,
            at("2026-11-20T10:00:00Z"),
            now,
        ));
        // A late "in transit" that happened before the delivery changes nothing.
        assert_eq!(
            delivered.carrier_event(
                1,
                "t",
                CarrierEventKind::InTransit,
                None,
                at("2026-11-19T08:00:00Z"),
                now
            ),
            Ok(CarrierUpdate::Superseded)
        );
        let out = applied(shipped().carrier_event(
            1,
            "o",
            CarrierEventKind::OutForDelivery,
            None,
            at("2026-11-20T09:00:00Z"),
            now,
        ));
        assert_eq!(
            out.carrier_event(
                1,
                "t",
                CarrierEventKind::InTransit,
                None,
                at("2026-11-20T07:00:00Z"),
                now
            ),
            Ok(CarrierUpdate::Superseded)
        );
        assert_eq!(out.shipments[0].status, FulfillmentStatus::OutForDelivery);
    }

    #[test]
    fn a_shipment_keeps_a_bounded_number_of_carrier_events() {
        let mut order = shipped();
        let start = Utc::now();
        for i in 0..MAX_CARRIER_EVENTS {
            let at = start + chrono::Duration::seconds(i as i64);
            let next = applied(order.carrier_event(
                1,
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
            order.carrier_event(
                1,
                "one-more",
                CarrierEventKind::InTransit,
                None,
                later,
                later
            ),
            Err(FulfillmentError::TooManyCarrierEvents)
        );
    }

    #[test]
    fn a_carrier_cannot_deliver_an_unshipped_parcel() {
        let result = fulfilling().carrier_event(
            1,
            "e1",
            CarrierEventKind::Delivered,
            None,
            Utc::now(),
            Utc::now(),
        );
        assert_eq!(result, Err(FulfillmentError::NotShipped("AWAITING_PICK")));
    }
}

/// Orders that ship what is there, under any interleaving of parcels leaving, stock arriving,
/// waiting units called off and the PSP answering captures.
#[cfg(test)]
mod ships_what_is_there {
    use super::*;
    use crate::fixtures::{parcel, tracking};
    use crate::order::payments::{
        PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentUpdate, PspRequestKind,
    };
    use crate::order::tests::{placed, product};
    use proptest::prelude::*;
    use serde_json::json;

    #[derive(Debug, Clone)]
    enum Step {
        /// The first parcel still in the warehouse leaves.
        Ship,
        /// Units arrive for the order; its parcel is made.
        Arrive(u32),
        /// Waiting units of A are called off.
        CallOff(u32),
        /// The unit of B, in the first parcel, is called off (while A is still ordered).
        CallOffB,
        /// The PSP takes the capture asked longest ago and not yet answered.
        Captured,
        /// The PSP fails the capture asked longest ago and not yet answered.
        CaptureFails,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Ship),
            2 => (1u32..4).prop_map(Step::Arrive),
            1 => (1u32..3).prop_map(Step::CallOff),
            1 => Just(Step::CallOffB),
            3 => Just(Step::Captured),
            1 => Just(Step::CaptureFails),
        ]
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 0).unwrap()
    }

    /// 4 × A at 10.00 of which `reserved` are in stock (the rest wait) and 1 × B at 5.00,
    /// paid, with what is there in the warehouse.
    fn order(reserved: u32) -> Order {
        let mut placed = placed(
            json!([{"sku": "A", "quantity": 4}, {"sku": "B", "quantity": 1}]),
            &[product("A", 1000, 9), product("B", 500, 9)],
        );
        placed.shipping.ship_complete = false;
        let a = Sku::parse("A").unwrap();
        let b = Sku::parse("B").unwrap();
        let mut units = vec![(&b, Quantity::new(1).unwrap())];
        if let Ok(q) = Quantity::new(reserved) {
            units.push((&a, q));
        }
        placed
            .reserve_backordering(
                &crate::routing::Plan::one_location("BER-1", units),
                &[crate::order::Backordered {
                    sku: a,
                    units: 4 - reserved,
                    location: "BER-1".into(),
                    promised_on: None,
                }],
                now(),
            )
            .unwrap()
            .authorized_for_test(now())
            .start_fulfillment("BER-1", now())
            .unwrap()
    }

    /// Shipping re-quoted after units are called off: cheaper than what was charged, so the
    /// difference is given back.
    fn requote(_: Option<&str>, grams: u64) -> Option<i64> {
        Some(200 + i64::try_from(grams / 1000).unwrap_or(0) * 10)
    }

    /// The one unit of B called off.
    fn b_called_off() -> crate::order::commands::UnitCancelRequest {
        crate::order::commands::UnitCancelRequest {
            lines: vec![crate::order::commands::RequestedLine {
                sku: Sku::parse("B").unwrap(),
                quantity: Quantity::new(1).unwrap(),
            }],
            reason: "no longer wanted".into(),
        }
    }

    /// `request` called off by the customer, unless it is refused or calls off the last unit
    /// (that cancels the order, another path).
    fn call_off(
        order: &Order,
        request: &crate::order::commands::UnitCancelRequest,
        n: usize,
    ) -> Option<Order> {
        order
            .cancel_units(request, &format!("k{n}"), "customer", requote, now())
            .ok()
            .map(|c| c.order)
            .filter(|o| o.status != OrderStatus::Cancelled)
    }

    fn apply(order: &Order, step: &Step, n: usize) -> Order {
        let same = || order.clone();
        match step {
            Step::Ship => {
                let Some(number) = order
                    .shipments
                    .iter()
                    .find(|s| s.status.is_warehouse_work())
                    .map(|s| s.number)
                else {
                    return same();
                };
                let mut tracking = tracking();
                tracking.tracking_number = format!("JJD-{number}");
                order
                    .pick(number, "p", now())
                    .and_then(|o| o.pack(number, parcel(), "p", now()))
                    .and_then(|o| o.ship(number, tracking, o.shipping.estimate, "p", now()))
                    .unwrap_or_else(|_| same())
            }
            Step::Arrive(units) => {
                let a = Sku::parse("A").unwrap();
                let units = (*units).min(order.waiting_for(&a));
                let Some(filled) = order.fill_backorder(&a, units, now()) else {
                    return same();
                };
                filled.start_fulfillment("BER-1", now()).unwrap_or(filled)
            }
            Step::CallOff(units) => {
                let waiting = order.waiting_for(&Sku::parse("A").unwrap());
                let request = crate::order::commands::UnitCancelRequest {
                    lines: vec![crate::order::commands::RequestedLine {
                        sku: Sku::parse("A").unwrap(),
                        quantity: Quantity::new((*units).min(waiting.max(1))).unwrap(),
                    }],
                    reason: "no longer wanted".into(),
                };
                if waiting == 0 {
                    return same();
                }
                call_off(order, &request, n).unwrap_or_else(same)
            }
            Step::CallOffB => call_off(order, &b_called_off(), n).unwrap_or_else(same),
            Step::Captured | Step::CaptureFails => {
                let Some(asked) = order
                    .payment
                    .unanswered_captures()
                    .first()
                    .copied()
                    .cloned()
                else {
                    return same();
                };
                let event = PaymentEvent {
                    event_id: format!("captured-{n}"),
                    kind: if matches!(step, Step::Captured) {
                        PaymentEventKind::CaptureSucceeded
                    } else {
                        PaymentEventKind::CaptureFailed
                    },
                    amount: asked.amount,
                    occurred_at: now(),
                    psp_reference: asked.psp_reference.clone(),
                    refund_id: None,
                    request_id: Some(asked.request_id.clone()),
                    reason: None,
                };
                match order.record_payment(&event, &PaymentPolicy::default(), now()) {
                    Ok(PaymentUpdate::Recorded(next)) => *next,
                    _ => same(),
                }
            }
        }
    }

    fn captured(order: &Order) -> i64 {
        order
            .payment
            .payments()
            .iter()
            .map(|p| p.captured_minor)
            .sum()
    }

    fn asked(order: &Order) -> i64 {
        order
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Capture)
            .map(|r| r.amount.minor_units())
            .sum()
    }

    /// The PSP fails the first parcel's share after the waiting units were called off on the
    /// strength of it: the rest is asked once, as the final capture, and the difference the
    /// call-off counted on that share is not given back. Every parcel of an order called off
    /// while its units wait: it waits again, and its next parcel takes a new number.
    #[test]
    fn a_failed_share_is_asked_with_the_rest_and_no_difference_is_given_on_it() {
        let shipped = apply(&order(0), &Step::Ship, 1);
        assert_eq!(shipped.payment.unanswered_captures().len(), 1);
        let called_off = apply(&shipped, &Step::CallOff(2), 2);
        let called_off = apply(&called_off, &Step::CallOff(2), 3);
        assert_eq!(called_off.backordered(), 0);
        let owed_back: Vec<_> = called_off
            .refunds
            .iter()
            .map(|r| r.awaiting_capture)
            .collect();
        assert_eq!(owed_back, [true], "{:?}", called_off.refunds);
        let failed = apply(&called_off, &Step::CaptureFails, 4);
        let rest = failed.payment.unanswered_captures();
        assert_eq!(rest.len(), 1, "the rest is asked");
        assert_eq!(rest[0].amount, failed.totals.total);
        assert!(!rest[0].more_follow);
        let paid = apply(&failed, &Step::Captured, 5);
        assert_eq!(captured(&paid), paid.totals.total.minor_units());
        assert!(
            paid.refunds.iter().all(|r| r.awaiting_capture),
            "nothing given back of a share never taken: {:?}",
            paid.refunds
        );

        let waiting = call_off(&order(0), &b_called_off(), 6).unwrap();
        assert_eq!(
            (waiting.status, waiting.hold()),
            (OrderStatus::Reserved, Some("BACKORDERED"))
        );
        assert!(waiting.payment.requests.is_empty(), "nothing taken");
        let a = Sku::parse("A").unwrap();
        let again = waiting
            .fill_backorder(&a, 4, now())
            .unwrap()
            .start_fulfillment("BER-1", now())
            .unwrap();
        let numbers: Vec<u32> = again.shipments.iter().map(|s| s.number).collect();
        assert_eq!(numbers, [2], "#1 named the parcel called off");
    }

    /// Stock that arrives while the location's first parcel is picked waits in a second one
    /// there, on its own pick list; stock that arrives while a released hold keeps the order
    /// out of the warehouse joins it when it is paid again.
    #[tokio::test]
    async fn arrivals_find_their_parcel_while_one_is_picked_or_the_hold_was_released() {
        use crate::ports::OrderStore;
        let a = Sku::parse("A").unwrap();
        let picked = order(2).pick(1, "p", now()).unwrap();
        let arrived = picked.fill_backorder(&a, 1, now()).unwrap();
        let parcelled = arrived.start_fulfillment("BER-1", now()).unwrap();
        assert_eq!(parcelled.shipments.len(), 2);
        assert_eq!(
            parcelled
                .shipment_in("BER-1", FulfillmentStatus::AwaitingPick)
                .map(|s| (s.number, s.units())),
            Some((2, 1))
        );
        assert_eq!(parcelled.shipment_at("BER-1").map(|s| s.number), Some(1));
        let store = crate::memory::InMemoryStore::default();
        store.insert_order(parcelled.clone());
        for (status, number) in [
            (FulfillmentStatus::Picked, 1),
            (FulfillmentStatus::AwaitingPick, 2),
        ] {
            let listed = store
                .list_fulfillments("BER-1", status, 10, None)
                .await
                .unwrap()
                .items;
            assert_eq!(listed.len(), 1, "{status:?}");
            assert_eq!(
                listed[0].shipment_in("BER-1", status).map(|s| s.number),
                Some(number)
            );
        }

        // The PSP releases the hold: the order leaves the warehouse; a unit arrives meanwhile.
        let released = |order: &Order| {
            let event = PaymentEvent {
                event_id: "released".into(),
                kind: PaymentEventKind::VoidSucceeded,
                amount: order.totals.total,
                occurred_at: now() + chrono::Duration::seconds(5),
                psp_reference: Some(format!("psp-{}", order.id)),
                refund_id: None,
                request_id: None,
                reason: None,
            };
            match order.record_payment(&event, &PaymentPolicy::default(), now()) {
                Ok(PaymentUpdate::Recorded(next)) => *next,
                other => panic!("{other:?}"),
            }
        };
        let held = released(&order(2));
        assert_eq!(held.status, OrderStatus::Reserved);
        let arrived = held.fill_backorder(&a, 1, now()).unwrap();
        assert!(matches!(
            arrived.start_fulfillment("BER-1", now()),
            Err(FulfillmentError::AwaitingPayment(_))
        ));
        let paid_again = PaymentEvent {
            event_id: "paid-again".into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: arrived.totals.total,
            occurred_at: now() + chrono::Duration::seconds(10),
            psp_reference: Some("pi_again".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        let Ok(PaymentUpdate::Recorded(paid)) =
            arrived.record_payment(&paid_again, &PaymentPolicy::default(), now())
        else {
            panic!("recorded")
        };
        let resumed = paid.start_fulfillment("BER-1", now()).unwrap();
        assert!(
            resumed.unparcelled().is_empty(),
            "{:?}",
            resumed.unparcelled()
        );
        assert_eq!(
            resumed.shipments.len(),
            1,
            "joined the parcel awaiting its pick"
        );
        assert_eq!(resumed.shipments[0].units(), 4);
        assert_eq!(
            crate::events::recorded_agrees_with_legacy(Some(&paid), &resumed),
            Ok(true)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// After every step every reserved unit is in a parcel, no more is asked than the
        /// order cost when the capture was asked, and the order is partly shipped while units
        /// wait after a parcel left. At the end — every waiting unit arrived or called off,
        /// every parcel gone, every capture answered — what was taken and not refunded is what
        /// the order costs, and nothing more is held.
        #[test]
        fn every_unit_leaves_once_and_the_money_adds_up(
            reserved in 0u32..4,
            steps in proptest::collection::vec(step(), 1..25),
        ) {
            let mut order = order(reserved);
            for (n, step) in steps.iter().enumerate() {
                let next = apply(&order, step, n);
                prop_assert!(next.unparcelled().is_empty(), "{step:?}: {:?}", next.unparcelled());
                let left = next.shipments.iter().any(|s| s.has_left());
                // Nothing is taken for goods that did not leave; an order whose every parcel
                // was called off waits for its stock as before any was made.
                if !left {
                    prop_assert_eq!(asked(&next), 0, "{:?}: asked before a parcel left", step);
                }
                if next.shipments.is_empty() {
                    prop_assert_eq!(next.status, OrderStatus::Reserved, "{:?}", step);
                }
                // A refund is asked of the PSP only of money it took.
                let given: i64 = next
                    .refunds
                    .iter()
                    .filter(|r| !r.awaiting_capture)
                    .map(|r| r.amount.minor_units())
                    .sum();
                prop_assert!(given <= captured(&next), "{:?}: {} given of {}", step, given, captured(&next));
                if left && next.backordered() > 0 {
                    prop_assert!(matches!(
                        next.status,
                        OrderStatus::PartiallyShipped | OrderStatus::PartiallyDelivered
                    ), "{step:?}: {:?}", next.status);
                }
                for line in &next.lines {
                    let parcelled: u32 = next
                        .shipments
                        .iter()
                        .flat_map(|s| &s.lines)
                        .filter(|l| l.sku == line.sku)
                        .map(|l| l.quantity.get())
                        .sum();
                    prop_assert_eq!(parcelled + line.backordered(), line.quantity.get());
                }
                order = next;
            }
            // Whatever still waits arrives; every parcel leaves; the PSP answers everything.
            let a = Sku::parse("A").unwrap();
            let waiting = order.waiting_for(&a);
            if waiting > 0 {
                order = apply(&order, &Step::Arrive(waiting), 900);
            }
            for n in 0..20 {
                order = apply(&order, &Step::Ship, 1000 + n);
                order = apply(&order, &Step::Captured, 2000 + n);
            }
            prop_assert_eq!(order.status, OrderStatus::Shipped);
            prop_assert!(order.payment.unanswered_captures().is_empty());
            // What was given back (a difference counted on a capture that failed is not).
            let refunded: i64 = order
                .refunds
                .iter()
                .filter(|r| !r.awaiting_capture)
                .map(|r| r.amount.minor_units())
                .sum();
            let failed = |r: &crate::order::payments::PspRequest| {
                order.payment.ledger.iter().any(|e| {
                    e.kind == PaymentEventKind::CaptureFailed
                        && e.request_id.as_deref() == Some(r.request_id.as_str())
                })
            };
            let captures = || {
                order
                    .payment
                    .requests
                    .iter()
                    .filter(|r| r.kind == PspRequestKind::Capture)
            };
            if captures().any(|r| !r.more_follow && failed(r)) {
                // The last share failed: the order owes money, and staff see it.
                let owed = order.totals.total.minor_units() + refunded - captured(&order);
                prop_assert!(owed > 0);
                let seen = order
                    .payment_attentions()
                    .iter()
                    .any(|a| a.reason == crate::order::payments::AttentionReason::CaptureFailed);
                prop_assert!(seen, "a failed last share is in front of staff");
                return Ok(());
            }
            // A share that failed is taken with the last: the order is never settled for less.
            prop_assert_eq!(captured(&order) - refunded, order.totals.total.minor_units());
            let failed_minor: i64 = captures()
                .filter(|r| failed(r))
                .map(|r| r.amount.minor_units())
                .sum();
            prop_assert_eq!(asked(&order) - failed_minor, captured(&order));
            // Units called off leave part of the hold unused: it is released, by the last
            // capture (no more follow) or by a void asked once the rest was taken.
            for payment in order.payment.payments().iter().filter(|p| p.holds()) {
                prop_assert!(order.payment.requests.iter().any(|r| {
                    r.kind == PspRequestKind::Void && r.psp_reference.as_deref() == payment.reference
                }), "{:?} still holds", payment.reference);
            }
            let units: u32 = order.shipments.iter().map(Fulfillment::units).sum();
            prop_assert_eq!(units, order.lines.iter().map(|l| l.quantity.get()).sum::<u32>());
        }
    }
}
