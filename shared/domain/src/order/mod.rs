//! The order aggregate and its state machine.
//!
//! ```text
//! PENDING ──► RESERVED ─(authorized)─► FULFILLING ──► PARTIALLY_SHIPPED ──► SHIPPED ──► PARTIALLY_DELIVERED ──► DELIVERED
//!    │            │              │        (the order's status follows its shipments, one per location;
//!    │            │              │         a one-parcel order goes FULFILLING ──► SHIPPED ──► DELIVERED)
//!    ├──► REJECTED (stock fell short)
//!    └────────────┴──────────────┴──► CANCELLED (before any parcel is packed; or expired, never paid)
//! ```
//! Everything that lives inside the order's item is a child of this module:
//! - [`fulfillment`]: the shipments, one per location — pick, pack, ship and the carrier's
//!   events;
//! - [`cancellation`]: calling an order off, or some of its units, before it is packed;
//! - [`edits`]: changing where or how it ships before it is packed, the money following;
//! - [`returns`]: RMAs, their approval, receipt and dispositions, and exchanges; the return
//!   rules in [`returns::policy`];
//! - [`refunds`]: money owed back to the customer, announced to the payment system;
//! - [`payments`]: the payment service provider's events (the ledger), the payment status
//!   derived from them, the captures and voids asked of it, and the expiry of unpaid orders.
//!
//! Every change of an order goes through one function, [`Order::record`], which bumps the
//! `version`, adds the timeline entry and sets `updatedAt` — the version is also the order's
//! event sequence number, which the notifier relies on to deliver its events in order, so no
//! change may forget it. The store writes the new version on condition that the stored one is
//! still the version it was computed from, so two racing changes cannot both win. A change that
//! moves stock as well is an [`OrderChange`], written in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod cancellation;
pub mod commands;
pub mod edits;
pub mod fulfillment;
pub mod history;
pub mod payments;
pub mod refunds;
pub mod returns;
pub mod search;

use crate::contact::{Address, Contact};
use crate::ids::{CustomerId, OrderId, Sku};
use crate::money::Money;
use crate::quantity::Quantity;
use crate::routing::Plan;
use crate::shipping::{DeliveryEstimate, ShippingMethod, ShippingPolicy};
use crate::stock::{Product, StockMove, StockMovement};
use crate::validation::ValidationErrors;
use cancellation::Cancellation;
use commands::OrderRequest;
use fulfillment::Fulfillment;
use history::{Change, OrderEvent};
use payments::Payment;
use refunds::Refund;
use returns::{ReplacementOf, Return};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Reserved,
    Rejected,
    Fulfilling,
    /// Some parcels have left, others are still in a warehouse.
    PartiallyShipped,
    Shipped,
    /// Every parcel has left and some have arrived.
    PartiallyDelivered,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Reserved => "RESERVED",
            Self::Rejected => "REJECTED",
            Self::Fulfilling => "FULFILLING",
            Self::PartiallyShipped => "PARTIALLY_SHIPPED",
            Self::Shipped => "SHIPPED",
            Self::PartiallyDelivered => "PARTIALLY_DELIVERED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Every status, in the order an order's life meets them.
    pub const ALL: [Self; 9] = [
        Self::Pending,
        Self::Reserved,
        Self::Rejected,
        Self::Fulfilling,
        Self::PartiallyShipped,
        Self::Shipped,
        Self::PartiallyDelivered,
        Self::Delivered,
        Self::Cancelled,
    ];

    /// The status its wire name (`as_str`) names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether no further transition can happen.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Rejected | Self::Cancelled | Self::Delivered)
    }
}

/// One SKU of an order, priced from the catalog when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
    pub unit_weight_grams: u32,
    /// Where its units come from, one entry per location, as the routing plan allocated them
    /// at the reservation (the store reads orders reserved before there were locations as
    /// allocated to the default location). Their quantities add up to the line's; the entries
    /// stay after the units shipped or were released, as the record of where they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<LocationUnits>,
    /// Its units promised past stock, waiting for it at the location named
    /// ([`crate::backorder`]): not part of `allocations` until stock arrives for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backorders: Vec<LocationUnits>,
    /// When its backordered units are expected: the purchase order that brings the last of
    /// them (none while no open purchase order brings enough).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised_on: Option<chrono::NaiveDate>,
    /// A pre-order's release date (its SKU's `PRE_ORDER` policy when the order was reserved):
    /// none of the order leaves for the warehouse before it, even if stock arrives earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_on: Option<chrono::NaiveDate>,
}

impl OrderLine {
    /// Its units still waiting for stock.
    pub fn backordered(&self) -> u32 {
        self.backorders.iter().map(|b| b.quantity.get()).sum()
    }
}

/// Some units of a line at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationUnits {
    pub location: String,
    pub quantity: Quantity,
}

/// How and where the order ships, and what that costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    pub method: ShippingMethod,
    pub address: Address,
    pub price: Money,
    /// When the parcel is expected; recomputed from the ship date once it ships.
    pub estimate: DeliveryEstimate,
    /// The store an in-store pickup is collected at, as the customer chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_location: Option<String>,
    /// Whether the order leaves whole (the default): with some units backordered, nothing
    /// ships before they arrive. False lets what is in stock ship first and what waits follow
    /// in a parcel of its own as it arrives (the customer pays the shipping charge once).
    #[serde(default = "ships_complete", skip_serializing_if = "is_true")]
    pub ship_complete: bool,
}

fn ships_complete() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// What the customer pays. Prices include tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub subtotal: Money,
    pub shipping: Money,
    pub total: Money,
}

/// Units of a line promised past stock at a reservation: how many, where they wait, and when
/// they are expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backordered {
    pub sku: Sku,
    pub units: u32,
    pub location: String,
    pub promised_on: Option<chrono::NaiveDate>,
}

/// A SKU that could not be reserved, and how many were free at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shortage {
    pub sku: Sku,
    pub requested: u32,
    pub available: u32,
}

/// One step of the order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An order: the aggregate that every function reads or moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[serde(rename = "orderId")]
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub shipping: Shipping,
    pub contact: Contact,
    pub totals: Totals,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    pub timeline: Vec<TimelineEntry>,
    /// Its shipments, one per location its units leave from, from the moment fulfillment
    /// starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<Fulfillment>,
    /// How many shipments the order has ever had: a new one takes the next number, so a
    /// shipment's id never names another after a move emptied it (0 on orders stored before
    /// it was kept: their count is their highest number).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shipments_made: u32,
    /// The one shipment of an order stored before orders had several: read, and made its
    /// first shipment by [`Order::with_legacy_locations`]; never written.
    #[serde(default, rename = "fulfillment", skip_serializing)]
    pub(crate) stored_shipment: Option<Fulfillment>,
    /// Why and by whom the order was called off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation: Option<Cancellation>,
    /// Units called off before they were packed, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_cancellations: Vec<cancellation::UnitCancellation>,
    /// Changes of where or how it ships, oldest first ([`edits`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<edits::OrderEdit>,
    /// Its returns (RMAs), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<Return>,
    /// Money owed back to the customer, announced to the payment system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<Refund>,
    /// What the payment service provider said (the ledger) and what was asked of it.
    #[serde(default, skip_serializing_if = "Payment::is_empty")]
    pub payment: Payment,
    /// Set on an order that ships the exchange of a return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_for: Option<ReplacementOf>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Starts at 1 and grows by one with every change: the per-order event sequence number.
    pub version: u64,
    /// What the change that made this version did: the publisher announces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<Change>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a new order is made of; [`Order::opened`] adds its first version and timeline.
struct NewOrder {
    id: OrderId,
    customer_id: CustomerId,
    lines: Vec<OrderLine>,
    shipping: Shipping,
    contact: Contact,
    totals: Totals,
}

/// One atomic change of an order and the stock it moves: a reservation, a shipment, a
/// cancellation, a return's approval or receipt. `order` is the new version, written on
/// condition that the stored one is the version before it; `created` is a new order written in
/// the same transaction (the replacement that ships an exchange).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    pub order: Order,
    pub moves: Vec<StockMove>,
    pub created: Option<Order>,
    /// Another order the change writes in the same transaction, on condition that the stored
    /// one is the version before it: the exchange's original order, when its replacement is
    /// called off (the refund it owes for the goods that came back).
    pub linked: Option<Order>,
    /// Entries of the moved SKUs' stock histories, written in the same transaction (a
    /// shipment's move; the other changes record theirs on the order's timeline). Each makes
    /// the write conditional on its location's counters being still its `before`, so the
    /// figures it records are the ones written; a write elsewhere in the SKU does not matter.
    pub stock_history: Vec<crate::stock::StockAdjustment>,
}

impl OrderChange {
    /// Where the change makes units available again, per SKU and location: reservations it
    /// releases, returned units it restocks (what waiting orders may take first).
    pub fn freed(&self) -> Vec<(Sku, String)> {
        let mut freed: Vec<(Sku, String)> = Vec::new();
        for m in &self.moves {
            let frees = matches!(m.movement, StockMovement::Release | StockMovement::Restock);
            let pair = (m.sku.clone(), m.location.clone());
            if frees && !freed.contains(&pair) {
                freed.push(pair);
            }
        }
        freed
    }

    /// A change that moves no stock and creates nothing.
    pub fn order_only(order: Order) -> Self {
        Self {
            order,
            moves: Vec::new(),
            created: None,
            linked: None,
            stock_history: Vec::new(),
        }
    }

    /// The order at its next version with every line moved one way.
    pub fn with_lines(order: Order, movement: StockMovement) -> Self {
        Self {
            moves: order.stock_moves(movement),
            order,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        }
    }
    /// The change with an entry in each SKU's stock history for every location its moves take
    /// units from or bring them to (`reason_out` where reserved units leave, `reason_in` where
    /// they join), computed from `products` as they were read: the write is conditioned on
    /// those locations' counters being still the ones read, so the figures recorded are the
    /// ones written. A SKU not read, or short at a location as read, is a shortage: the write
    /// would fail. Counters that are inconsistent get no entry; the write itself refuses them.
    pub fn with_stock_history(
        mut self,
        products: &[crate::stock::Product],
        reasons: (
            crate::stock::AdjustmentReason,
            crate::stock::AdjustmentReason,
        ),
        note: &str,
        actor: &str,
    ) -> Result<Self, Vec<Shortage>> {
        use crate::stock::{Product, StockAdjustment, StockDelta, StockError};
        let mut shortages = Vec::new();
        for delta in StockDelta::net(&self.moves) {
            let Some(product) = products.iter().find(|p| p.sku == delta.sku) else {
                shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested: delta.locations.iter().map(|l| l.takes_available).sum(),
                    available: 0,
                });
                continue;
            };
            let after = match product.stock.apply(&delta) {
                Ok(after) => after,
                Err((
                    _,
                    StockError::Insufficient {
                        requested,
                        available,
                    },
                )) => {
                    shortages.push(Shortage {
                        sku: delta.sku.clone(),
                        requested,
                        available,
                    });
                    continue;
                }
                Err(_) => continue,
            };
            let written = Product {
                stock: after.clone(),
                version: product.version + 1,
                updated_at: self.order.updated_at,
                ..product.clone()
            };
            for (index, at) in delta.locations.iter().enumerate() {
                let reason = if at.reserved < 0 {
                    reasons.0
                } else {
                    reasons.1
                };
                let mut adjustment = StockAdjustment::of_write(
                    &written,
                    &at.location,
                    reason,
                    Some(note.to_owned()),
                    product.stock.at(&at.location),
                    after.at(&at.location),
                    actor,
                );
                // One write, several entries: each its own id, in the order they happened.
                adjustment.id = format!("{}-{}", adjustment.id, index + 1);
                self.stock_history.push(adjustment);
            }
        }
        if shortages.is_empty() {
            Ok(self)
        } else {
            Err(shortages)
        }
    }
}

/// What one order may hold: the business's bound on hoarding — one account taking a SKU's whole
/// stock with one huge order (and holding it until it pays or expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    /// The most units of one SKU one order may ask for.
    pub max_units_per_line: u32,
}

impl Default for OrderLimits {
    fn default() -> Self {
        OrderLimits {
            max_units_per_line: 20,
        }
    }
}

impl OrderLimits {
    /// Refuses, line by line, what asks for more than the business allows one order.
    pub fn check(&self, request: &OrderRequest) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        for (index, line) in request.lines.iter().enumerate() {
            if line.quantity.get() > self.max_units_per_line {
                errors.add(
                    format!("lines[{index}].quantity"),
                    format!(
                        "at most {} units of one item per order",
                        self.max_units_per_line
                    ),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A transition the order's current status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot become {to}", from = .from.as_str(), to = .to.as_str())]
pub struct TransitionError {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl Order {
    /// Prices a validated request from the catalog (never from the client) and the shipping
    /// policy, and creates the order `PENDING`. Unknown or inactive SKUs, and a shipping method
    /// that does not serve the destination, are field errors.
    pub fn place(
        id: OrderId,
        customer_id: CustomerId,
        request: &OrderRequest,
        catalog: &[Product],
        policy: &ShippingPolicy,
        now: DateTime<Utc>,
    ) -> Result<Order, ValidationErrors> {
        let currency = policy.currency();
        let mut errors = ValidationErrors::default();
        let mut lines = Vec::with_capacity(request.lines.len());
        for (index, wanted) in request.lines.iter().enumerate() {
            let field = format!("lines[{index}].sku");
            let Some(product) = catalog.iter().find(|p| p.sku == wanted.sku && p.active) else {
                errors.add(field, format!("unknown SKU '{}'", wanted.sku));
                continue;
            };
            if product.unit_price.currency() != currency {
                errors.add(
                    field,
                    format!("'{}' is not priced in {currency}", wanted.sku),
                );
                continue;
            }
            let Some(line_total) =
                errors.check(field, product.unit_price.checked_mul(wanted.quantity.get()))
            else {
                continue;
            };
            lines.push(OrderLine {
                release_on: None,
                sku: product.sku.clone(),
                name: product.name.clone(),
                quantity: wanted.quantity,
                unit_price: product.unit_price,
                line_total,
                unit_weight_grams: product.weight_grams,
                allocations: Vec::new(),
                backorders: Vec::new(),
                promised_on: None,
            });
        }
        let weight: u64 = lines
            .iter()
            .map(|l| u64::from(l.unit_weight_grams) * u64::from(l.quantity.get()))
            .sum();
        // Quoted with the lines that are known, so a destination not served is named beside
        // any bad line: the country where no zone takes it, the method where the zone lacks it.
        let quote = policy.quote(
            request.shipping_method,
            request.shipping_address.country(),
            weight,
            now,
        );
        let quote = match quote {
            Ok(quote) if errors.is_empty() => quote,
            Ok(_) => return Err(errors),
            Err(e) => {
                let field = match e {
                    crate::shipping::ShippingError::UnsupportedCountry(_) => {
                        "shippingAddress.country"
                    }
                    _ => "shippingMethod",
                };
                errors.add(field, e.to_string());
                return Err(errors);
            }
        };
        let shipping_price = quote.price;
        let subtotal = lines
            .iter()
            .try_fold(Money::zero(currency), |sum, line| {
                sum.checked_add(line.line_total)
            })
            .map_err(|e| ValidationErrors::one("lines", e.to_string()))?;
        let total = subtotal
            .checked_add(shipping_price)
            .map_err(|e| ValidationErrors::one("lines", e.to_string()))?;
        Ok(Order::opened(
            NewOrder {
                id,
                customer_id,
                lines,
                shipping: Shipping {
                    method: request.shipping_method,
                    address: request.shipping_address.clone(),
                    price: shipping_price,
                    estimate: quote.estimate,
                    pickup_location: request.pickup_location.clone(),
                    ship_complete: request.ship_complete,
                },
                contact: request.contact.clone(),
                totals: Totals {
                    subtotal,
                    shipping: shipping_price,
                    total,
                },
            },
            OrderStatus::Pending,
            None,
            now,
        ))
    }

    /// The order just placed, its shipping priced and promised by `quote` (the routing plan's
    /// parcels) instead of one parcel from the default location.
    pub fn priced_by(
        mut self,
        quote: crate::shipping::ShippingQuote,
    ) -> Result<Order, ValidationErrors> {
        let total = self
            .totals
            .subtotal
            .checked_add(quote.price)
            .map_err(|e| ValidationErrors::one("lines", e.to_string()))?;
        self.shipping.price = quote.price;
        self.shipping.estimate = quote.estimate;
        self.totals.shipping = quote.price;
        self.totals.total = total;
        Ok(self)
    }

    /// The first version of an order: its timeline starts with `status`.
    fn opened(
        new: NewOrder,
        status: OrderStatus,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Order {
        let mut order = Order {
            id: new.id,
            customer_id: new.customer_id,
            status,
            lines: new.lines,
            shipping: new.shipping,
            contact: new.contact,
            totals: new.totals,
            shortages: Vec::new(),
            timeline: vec![TimelineEntry {
                status,
                at: now,
                note,
            }],
            shipments: Vec::new(),
            shipments_made: 0,
            stored_shipment: None,
            cancellation: None,
            unit_cancellations: Vec::new(),
            edits: Vec::new(),
            returns: Vec::new(),
            refunds: Vec::new(),
            payment: Payment::default(),
            replacement_for: None,
            created_at: now,
            updated_at: now,
            version: 1,
            last_change: None,
        };
        order.last_change = Some(Change::opened(&order));
        order
    }

    /// Stock for every line is held where `plan` says: `PENDING → RESERVED`. The warehouse
    /// gets the order once it is authorized; until then the timeline says it waits for its
    /// payment. A plan that does not hold exactly the order's units is a bug and is refused.
    pub fn reserve(&self, plan: &Plan, now: DateTime<Utc>) -> Result<Order, TransitionError> {
        self.reserve_backordering(plan, &[], now)
    }

    /// As [`Order::reserve`], with the units `backorders` names promised past stock: per SKU,
    /// how many, where they wait and when they are expected. The plan holds the rest.
    pub fn reserve_backordering(
        &self,
        plan: &Plan,
        backorders: &[Backordered],
        now: DateTime<Utc>,
    ) -> Result<Order, TransitionError> {
        self.reserve_for_release(plan, backorders, &[], now)
    }

    /// As [`Order::reserve_backordering`], the lines of the SKUs `releases` names pre-ordered:
    /// held until their release date (none of the order goes to the warehouse before the
    /// latest of them).
    pub fn reserve_for_release(
        &self,
        plan: &Plan,
        backorders: &[Backordered],
        releases: &[(Sku, chrono::NaiveDate)],
        now: DateTime<Utc>,
    ) -> Result<Order, TransitionError> {
        let allocations = self.allocate(plan, backorders).ok_or(TransitionError {
            from: self.status,
            to: OrderStatus::Reserved,
        })?;
        let mut note = (!self.payment_status().allows_fulfillment())
            .then(|| "stock held; awaiting payment".to_owned());
        if !backorders.is_empty() {
            let waiting = backorders
                .iter()
                .map(|b| format!("{} × {}", b.units, b.sku))
                .collect::<Vec<_>>()
                .join(", ");
            let waits = format!("backordered {waiting}");
            note = Some(match note {
                Some(note) => format!("{waits}; {note}"),
                None => waits,
            });
        }
        if let Some(last) = releases.iter().map(|(_, on)| *on).max() {
            let held = format!("pre-ordered: leaves on its release, {last}");
            note = Some(match note {
                Some(note) => format!("{held}; {note}"),
                None => held,
            });
        }
        if plan.shipments.len() > 1 {
            let from = plan
                .shipments
                .iter()
                .map(|s| s.location.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let split = format!("ships in {} parcels, from {from}", plan.shipments.len());
            note = Some(match note {
                Some(note) => format!("{split}; {note}"),
                None => split,
            });
        }
        self.transition(
            OrderStatus::Reserved,
            &[OrderStatus::Pending],
            now,
            note,
            |next| {
                for (line, at) in next.lines.iter_mut().zip(allocations) {
                    line.allocations = at;
                    if let Some(waits) = backorders.iter().find(|b| b.sku == line.sku) {
                        line.backorders = Quantity::new(waits.units)
                            .map(|quantity| {
                                vec![LocationUnits {
                                    location: waits.location.clone(),
                                    quantity,
                                }]
                            })
                            .unwrap_or_default();
                        line.promised_on = waits.promised_on;
                    }
                    line.release_on = releases
                        .iter()
                        .find(|(sku, _)| *sku == line.sku)
                        .map(|(_, on)| *on);
                }
                OrderEvent::Reserved
            },
        )
    }

    /// Every line reserved at one location: the plan of an order that leaves from one place.
    pub fn reserve_all_at(
        &self,
        location: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, TransitionError> {
        self.reserve(&Plan::one_location(location, self.quantities()), now)
    }

    /// The plan's units, line by line: each location's units of a SKU go to the order's lines
    /// of that SKU in line order. `None` unless the plan holds exactly the order's units less
    /// those backordered.
    fn allocate(&self, plan: &Plan, backorders: &[Backordered]) -> Option<Vec<Vec<LocationUnits>>> {
        let mut left: Vec<u32> = self
            .lines
            .iter()
            .map(|l| {
                let waits = backorders
                    .iter()
                    .find(|b| b.sku == l.sku)
                    .map_or(0, |b| b.units);
                l.quantity.get().checked_sub(waits)
            })
            .collect::<Option<_>>()?;
        let mut allocations: Vec<Vec<LocationUnits>> = vec![Vec::new(); self.lines.len()];
        for shipment in &plan.shipments {
            for (sku, units) in &shipment.lines {
                let mut units = *units;
                for (i, line) in self.lines.iter().enumerate() {
                    if &line.sku != sku || units == 0 {
                        continue;
                    }
                    let take = units.min(left[i]);
                    if let Ok(quantity) = Quantity::new(take) {
                        allocations[i].push(LocationUnits {
                            location: shipment.location.clone(),
                            quantity,
                        });
                        left[i] -= take;
                        units -= take;
                    }
                }
                if units > 0 {
                    return None;
                }
            }
        }
        left.iter().all(|n| *n == 0).then_some(allocations)
    }

    /// Stock fell short for the given SKUs: `PENDING → REJECTED`.
    pub fn reject(
        &self,
        shortages: Vec<Shortage>,
        now: DateTime<Utc>,
    ) -> Result<Order, TransitionError> {
        let note = shortages
            .iter()
            .map(|s| s.sku.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.transition(
            OrderStatus::Rejected,
            &[OrderStatus::Pending],
            now,
            Some(format!("out of stock: {note}")),
            |next| {
                next.shortages = shortages;
                // It will not ship: a hold is voided, money taken is refunded.
                next.close_waiting_edit(now);
                next.request_what_is_due(payments::CaptureMode::OnShipment, now);
                OrderEvent::Rejected
            },
        )
    }

    /// Moves the order to `to` if its status is one of `allowed_from`, recording the change
    /// with what else `change` does and the event it answers.
    pub(crate) fn transition(
        &self,
        to: OrderStatus,
        allowed_from: &[OrderStatus],
        now: DateTime<Utc>,
        note: Option<String>,
        change: impl FnOnce(&mut Order) -> OrderEvent,
    ) -> Result<Order, TransitionError> {
        if !allowed_from.contains(&self.status) {
            return Err(TransitionError {
                from: self.status,
                to,
            });
        }
        Ok(self.record(now, note, |next| {
            next.status = to;
            change(next)
        }))
    }

    /// The one place an order changes: a copy with `change` applied, the version bumped (the
    /// next event's sequence number), a timeline entry in the status the change left it in,
    /// `updatedAt` set, and what happened — the event `change` answers, and what else it did
    /// ([`Change::between`]) — recorded for the publisher. Everything a change does happens
    /// inside `change`, so nothing it does goes unannounced.
    pub(crate) fn record(
        &self,
        now: DateTime<Utc>,
        note: Option<String>,
        change: impl FnOnce(&mut Order) -> OrderEvent,
    ) -> Order {
        let mut next = self.clone();
        let event = change(&mut next);
        // A refund asked of the PSP in this change names the payment it gives back from: the
        // one that has the order's money now (a payment that replaces it later does not
        // move it).
        let unnamed: Vec<usize> = next
            .refunds
            .iter()
            .enumerate()
            .filter(|(index, refund)| {
                !refund.awaiting_capture
                    && refund.from_payment.is_none()
                    && self.refunds.get(*index).is_none_or(|r| r.awaiting_capture)
            })
            .map(|(index, _)| index)
            .collect();
        if !unnamed.is_empty() {
            let reference = next.money_reference().map(str::to_owned);
            for index in unnamed {
                next.refunds[index].from_payment = reference.clone();
            }
        }
        next.version = self.version + 1;
        next.updated_at = now;
        next.timeline.push(TimelineEntry {
            status: next.status,
            at: now,
            note,
        });
        next.last_change = Some(Change::between(self, &next, event));
        next
    }

    /// When the order entered its current status: the first entry of the timeline's last run in
    /// that status. Changes that keep the status (a payment event, a carrier's scan) do not move
    /// it, so "how long has it been reserved" counts from the reservation.
    pub fn status_since(&self) -> DateTime<Utc> {
        self.timeline
            .iter()
            .rev()
            .take_while(|entry| entry.status == self.status)
            .last()
            .map_or(self.created_at, |entry| entry.at)
    }

    /// Every reserved unit of the order, moved one way at the location that holds it; and
    /// every backordered one, backordered by a reservation and given up by a release.
    pub fn stock_moves(&self, movement: StockMovement) -> Vec<StockMove> {
        let waiting = match movement {
            StockMovement::Reserve => Some(StockMovement::Backorder),
            StockMovement::Release => Some(StockMovement::ReleaseBackorder),
            _ => None,
        };
        self.lines
            .iter()
            .flat_map(|line| {
                let reserved = line.allocations.iter().map(move |at| StockMove {
                    sku: line.sku.clone(),
                    location: at.location.clone(),
                    quantity: at.quantity,
                    movement,
                });
                let backordered = waiting.into_iter().flat_map(move |movement| {
                    line.backorders.iter().map(move |at| StockMove {
                        sku: line.sku.clone(),
                        location: at.location.clone(),
                        quantity: at.quantity,
                        movement,
                    })
                });
                reserved.chain(backordered)
            })
            .collect()
    }

    /// Its units waiting for stock, in all.
    pub fn backordered(&self) -> u32 {
        self.lines.iter().map(OrderLine::backordered).sum()
    }

    /// Whether it waits for stock before anything leaves: an order that ships complete waits
    /// while any unit is backordered, one that ships what is there only while nothing is
    /// reserved for it.
    pub fn waits_for_stock(&self) -> bool {
        self.backordered() > 0 && (self.shipping.ship_complete || self.reserved_units() == 0)
    }

    /// Its units reserved at a location (shipped ones included): what it holds of the stock.
    pub fn reserved_units(&self) -> u32 {
        self.lines
            .iter()
            .flat_map(|l| &l.allocations)
            .map(|a| a.quantity.get())
            .sum()
    }

    /// Units reserved for it that no shipment carries yet, per location and SKU: stock that
    /// arrived for an order already in the warehouses, until its parcel is made. Only lines
    /// that name where their units are count (an order stored before locations ships its lines
    /// whole).
    pub fn unparcelled(&self) -> Vec<(String, Sku, u32)> {
        let mut found = Vec::new();
        if self.shipments.is_empty() {
            return found;
        }
        for line in &self.lines {
            for at in &line.allocations {
                let parcelled: u32 = self
                    .shipments
                    .iter()
                    .filter(|s| s.warehouse == at.location)
                    .flat_map(|s| &s.lines)
                    .filter(|l| l.sku == line.sku)
                    .map(|l| l.quantity.get())
                    .sum();
                let left = at.quantity.get().saturating_sub(parcelled);
                if left > 0 {
                    found.push((at.location.clone(), line.sku.clone(), left));
                }
            }
        }
        found
    }

    /// Its units still to leave in a parcel not made yet: backordered, or arrived and not yet
    /// in a shipment. While there are some, its last shipment is not its last parcel.
    pub fn units_to_come(&self) -> u32 {
        self.backordered() + self.unparcelled().iter().map(|(_, _, n)| n).sum::<u32>()
    }

    /// Whether its money is taken parcel by parcel: it leaves as several, or one has left with
    /// more to follow.
    pub fn leaves_in_parts(&self) -> bool {
        self.is_split() || (!self.shipments.is_empty() && self.units_to_come() > 0)
    }

    /// How many parcels it leaves in as far as is known now: its shipments, and one more for
    /// the units still to come.
    pub fn parcels_expected(&self) -> u32 {
        self.shipments.len() as u32 + u32::from(self.units_to_come() > 0)
    }

    /// The units of `sku` it still waits for: none once it is called off (its lines keep the
    /// record of what waited).
    pub fn waiting_for(&self, sku: &Sku) -> u32 {
        if matches!(self.status, OrderStatus::Cancelled | OrderStatus::Rejected) {
            return 0;
        }
        self.lines
            .iter()
            .filter(|l| &l.sku == sku)
            .map(OrderLine::backordered)
            .sum()
    }

    /// The location the order leaves from: where its first reserved units are (`None` before
    /// the reservation). Returns come back to it and an exchange is reserved there.
    pub fn home_location(&self) -> Option<&str> {
        self.lines
            .iter()
            .flat_map(|l| l.allocations.first())
            .map(|at| at.location.as_str())
            .next()
    }

    /// Why the order is not in the warehouse's hands although it could be: `AWAITING_PAYMENT`
    /// while its stock is held (or about to be) and its payment does not allow fulfillment.
    pub fn hold(&self) -> Option<&'static str> {
        if self.awaiting_edit().is_some() {
            Some("EDIT_AWAITING_PAYMENT")
        } else if matches!(self.status, OrderStatus::Pending | OrderStatus::Reserved)
            && !self.payment_status().allows_fulfillment()
        {
            Some("AWAITING_PAYMENT")
        } else if self.status == OrderStatus::Reserved && self.waits_for_stock() {
            Some("BACKORDERED")
        } else if self.status == OrderStatus::Reserved && self.release_date().is_some() {
            Some("AWAITING_RELEASE")
        } else {
            None
        }
    }

    /// The latest release date of its pre-ordered lines: it goes to the warehouse on that day
    /// at the earliest.
    pub fn release_date(&self) -> Option<chrono::NaiveDate> {
        self.lines.iter().filter_map(|l| l.release_on).max()
    }

    /// The release date it waits for on `today`, if one is still to come.
    pub fn held_for_release(&self, today: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
        self.release_date().filter(|on| today < *on)
    }

    /// The business moved the release of `sku` to `release_on` (none: it is no longer sold as
    /// a pre-order, so released now): its pre-ordered line waits for the new date instead of
    /// the one it was reserved with, with its timeline entry and event, so the customer is
    /// told. Only an order the warehouse never had follows (one sent there, even if a released
    /// hold took it back, has left its release behind), and only a line still to be released
    /// (a released one is not held again by a later batch's date). `None` if nothing changes
    /// on `today`: the same date, the line released already, or no line of `sku` pre-ordered.
    pub fn follow_release(
        &self,
        sku: &Sku,
        release_on: Option<chrono::NaiveDate>,
        today: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        if self.status != OrderStatus::Reserved || !self.shipments.is_empty() {
            return None;
        }
        let line = self
            .lines
            .iter()
            .position(|l| &l.sku == sku && l.release_on.is_some())?;
        let before = self.lines[line].release_on;
        let to_come = |on: Option<chrono::NaiveDate>| on.filter(|on| today < *on);
        // A line released already stays released (a later batch's date is not its own).
        if to_come(before).is_none() || to_come(before) == to_come(release_on) {
            return None;
        }
        // Released now, the line keeps the day it was released on: it stays a pre-order's.
        let after = release_on.unwrap_or(today);
        let date = |on: Option<chrono::NaiveDate>| on.map_or("none".to_owned(), |d| d.to_string());
        let note = format!("{sku} released on {} → {after}", date(before));
        Some(self.record(now, Some(note), |next| {
            next.lines[line].release_on = Some(after);
            OrderEvent::ReleaseMoved { sku: sku.clone() }
        }))
    }

    /// When the units of `sku` it waits for are expected is now `promised_on` (none: no
    /// delivery brings them as things stand): its line's promise, with its timeline entry and
    /// event, so the customer is told. `None` if nothing of `sku` waits or the promise stands.
    pub fn revise_promise(
        &self,
        sku: &Sku,
        promised_on: Option<chrono::NaiveDate>,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        if self.status.is_final() {
            return None;
        }
        let line = self
            .lines
            .iter()
            .position(|l| &l.sku == sku && l.backordered() > 0)?;
        let before = self.lines[line].promised_on;
        if before == promised_on {
            return None;
        }
        let date =
            |on: Option<chrono::NaiveDate>| on.map_or("no date".to_owned(), |d| d.to_string());
        let note = format!("{sku} expected: {} → {}", date(before), date(promised_on));
        Some(self.record(now, Some(note), |next| {
            next.lines[line].promised_on = promised_on;
            OrderEvent::PromiseRevised { sku: sku.clone() }
        }))
    }

    /// Stock arrived for `units` of its backordered `sku` where they wait: they become
    /// reserved there ([`Order::fill_backorder_from`]).
    pub fn fill_backorder(&self, sku: &Sku, units: u32, now: DateTime<Utc>) -> Option<Order> {
        let line = self.lines.iter().position(|l| &l.sku == sku)?;
        let at = self.lines[line].backorders.first()?.location.clone();
        self.fill_backorder_from(sku, units, &at, now)
    }

    /// Stock arrived at `from` for `units` of its backordered `sku`: they become reserved there
    /// (where they waited, or another location that sends the order's parcels, whose parcel
    /// they join). Once nothing waits — or at once for an order that ships what is there —
    /// the order goes to the warehouse with them (its event says the backorder is filled, the
    /// customer is told, and the fulfillment queue makes their parcel). `None` if the line
    /// waits for fewer.
    pub fn fill_backorder_from(
        &self,
        sku: &Sku,
        units: u32,
        from: &str,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        let line = self.lines.iter().position(|l| &l.sku == sku)?;
        if units == 0 || self.lines[line].backordered() < units {
            return None;
        }
        let waited_at = self.lines[line].backorders.first()?.location.as_str();
        let note = if waited_at == from {
            format!("stock arrived for {units} × {sku}")
        } else {
            format!("stock arrived for {units} × {sku} at {from}")
        };
        Some(self.record(now, Some(note), |next| {
            let line = &mut next.lines[line];
            let mut left = units;
            let mut backorders = Vec::new();
            for at in std::mem::take(&mut line.backorders) {
                let take = left.min(at.quantity.get());
                left -= take;
                if let Ok(quantity) = Quantity::new(take) {
                    match line.allocations.iter_mut().find(|a| a.location == from) {
                        Some(there) => {
                            there.quantity = Quantity::new(there.quantity.get() + take)
                                .unwrap_or(there.quantity);
                        }
                        None => line.allocations.push(LocationUnits {
                            location: from.to_owned(),
                            quantity,
                        }),
                    }
                }
                if let Ok(rest) = Quantity::new(at.quantity.get() - take) {
                    backorders.push(LocationUnits {
                        location: at.location,
                        quantity: rest,
                    });
                }
            }
            line.backorders = backorders;
            if line.backorders.is_empty() {
                line.promised_on = None;
            }
            // The order goes to the warehouse with what arrived: once nothing waits, or at
            // once if it ships what is there.
            if next.backordered() == 0 || !next.shipping.ship_complete {
                OrderEvent::BackorderFilled
            } else {
                OrderEvent::Updated
            }
        }))
    }

    /// Every location holding some of the order's units, the home location first.
    pub fn locations(&self) -> Vec<&str> {
        let mut found: Vec<&str> = Vec::new();
        for at in self.lines.iter().flat_map(|l| &l.allocations) {
            if !found.contains(&at.location.as_str()) {
                found.push(&at.location);
            }
        }
        found
    }

    /// Reads an order stored before there were locations: the units of an order that was
    /// reserved — through its reservation, or as a replacement opened straight in the
    /// warehouse's hands — are at its shipment's warehouse, else at `default` (the store calls
    /// this with the default location).
    pub fn with_legacy_locations(mut self, default: &str) -> Self {
        if let Some(stored) = self.stored_shipment.take() {
            if self.shipments.is_empty() {
                self.shipments.push(stored);
            }
        }
        let was_reserved = !self.shipments.is_empty()
            || self
                .timeline
                .iter()
                .any(|e| e.status == OrderStatus::Reserved);
        if was_reserved {
            let at = self
                .shipments
                .first()
                .map_or(default, |f| f.warehouse.as_str())
                .to_owned();
            // A line wholly waiting for stock names where it waits, not where it is reserved:
            // it is not one of these.
            for line in self
                .lines
                .iter_mut()
                .filter(|l| l.allocations.is_empty() && l.backorders.is_empty())
            {
                line.allocations = vec![LocationUnits {
                    location: at.clone(),
                    quantity: line.quantity,
                }];
            }
            // An earlier reading gave a wholly waiting line such a reservation of all its
            // units, which a later write kept: it never held them. What a line holds and what it
            // waits for never come to more than its units.
            for line in self.lines.iter_mut().filter(|l| !l.backorders.is_empty()) {
                let held: u32 = line.allocations.iter().map(|a| a.quantity.get()).sum();
                let phantom =
                    matches!(line.allocations.as_slice(), [one] if one.quantity == line.quantity);
                if phantom && held + line.backordered() > line.quantity.get() {
                    line.allocations.clear();
                }
            }
        }
        self.with_legacy_shipment_lines();
        self
    }

    /// Names the units of a shipment stored before shipments named them. One that has left
    /// took every unit of the order with it (shipping then moved every allocation), so it holds
    /// every line. One still in a warehouse holds the units allocated at its location, and the
    /// units allocated elsewhere (an order split before shipments were per location) become a
    /// shipment of their own at each of those locations, at the same step of the queue — so
    /// every unit still leaves from the counters that hold its reservation.
    fn with_legacy_shipment_lines(&mut self) {
        let Some(stored) = self.shipments.iter().position(|s| s.lines.is_empty()) else {
            return;
        };
        let line_units = |l: &OrderLine| fulfillment::ShipmentLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
        };
        if self.shipments[stored].has_left() {
            self.shipments[stored].lines = self.lines.iter().map(line_units).collect();
            return;
        }
        let home = self.shipments[stored].warehouse.clone();
        let at = |location: &str| -> Vec<fulfillment::ShipmentLine> {
            self.lines
                .iter()
                .flat_map(|l| {
                    l.allocations
                        .iter()
                        .filter(move |a| a.location == location)
                        .map(move |a| fulfillment::ShipmentLine {
                            sku: l.sku.clone(),
                            quantity: a.quantity,
                        })
                })
                .collect()
        };
        self.shipments[stored].lines = at(&home);
        let template = self.shipments[stored].clone();
        let others: Vec<String> = self
            .locations()
            .into_iter()
            .filter(|l| *l != home)
            .map(str::to_owned)
            .collect();
        for location in others {
            let mut shipment = template.clone();
            shipment.number = self.shipments.iter().map(|s| s.number).max().unwrap_or(0) + 1;
            shipment.warehouse = location.clone();
            shipment.lines = at(&location);
            self.shipments.push(shipment);
        }
        self.shipments.retain(|s| !s.lines.is_empty());
        if self.shipments.is_empty() {
            let mut only = template;
            only.lines = self.lines.iter().map(line_units).collect();
            self.shipments.push(only);
        }
    }

    /// The name `sku` was sold under in this order (empty if the order has no such line).
    pub fn line_name(&self, sku: &Sku) -> &str {
        self.lines
            .iter()
            .find(|l| &l.sku == sku)
            .map_or("", |l| l.name.as_str())
    }

    /// Units per SKU, as stock sees them.
    pub fn quantities(&self) -> impl Iterator<Item = (&Sku, Quantity)> {
        self.lines.iter().map(|l| (&l.sku, l.quantity))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::stock::StockLevel;
    use serde_json::json;

    pub(crate) fn product(sku: &str, price: i64, stock: u32) -> Product {
        Product {
            sku: Sku::parse(sku).unwrap(),
            name: format!("Product {sku}"),
            unit_price: Money::new(price, Currency::parse("EUR").unwrap()).unwrap(),
            weight_grams: 400,
            active: true,
            low_stock_threshold: 2,
            stock: crate::stock::Stock::at_one("BER-1", StockLevel::new(stock).unwrap()),
            replenishment: Default::default(),
            demand: Default::default(),
            incoming: Default::default(),
            backorders: Default::default(),
            version: 1,
            updated_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    pub(crate) fn request(lines: serde_json::Value) -> OrderRequest {
        OrderRequest::parse(&json!({
            "lines": lines,
            "shippingMethod": "STANDARD",
            "shippingAddress": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
            "contact": {"email": "ada@example.com"}
        }))
        .unwrap()
    }

    pub(crate) fn placed(lines: serde_json::Value, catalog: &[Product]) -> Order {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Order::place(
            OrderId::generate(now),
            CustomerId::parse("customer-1").unwrap(),
            &request(lines),
            catalog,
            &ShippingPolicy::default_policy(),
            now,
        )
        .unwrap()
    }

    #[test]
    fn prices_come_from_the_catalog_and_shipping_from_the_policy() {
        let catalog = [product("A", 1999, 5), product("B", 500, 5)];
        let order = placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 3}]),
            &catalog,
        );
        assert_eq!(order.totals.subtotal.minor_units(), 2 * 1999 + 3 * 500);
        // 5 units × 400 g = 2 kg, standard domestic: 490 + 2 × 50.
        assert_eq!(order.totals.shipping.minor_units(), 590);
        assert_eq!(order.totals.total.minor_units(), 2 * 1999 + 3 * 500 + 590);
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.version, 1);
    }

    #[test]
    fn unknown_and_inactive_skus_are_named() {
        let mut inactive = product("B", 500, 5);
        inactive.active = false;
        let result = Order::place(
            OrderId::generate(Utc::now()),
            CustomerId::parse("c").unwrap(),
            &request(
                json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}, {"sku": "C", "quantity": 1}]),
            ),
            &[product("A", 100, 1), inactive],
            &ShippingPolicy::default_policy(),
            Utc::now(),
        );
        let fields: Vec<_> = result.unwrap_err().0.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["lines[1].sku", "lines[2].sku"]);
    }

    /// A destination no zone serves is named as the country, beside any bad line.
    #[test]
    fn an_unserved_country_is_named_with_the_other_bad_fields() {
        let mut request =
            request(json!([{"sku": "A", "quantity": 1}, {"sku": "C", "quantity": 1}]));
        request.shipping_address = Address::checked(
            "Ada".into(),
            "1 Main St".into(),
            None,
            "McMurdo".into(),
            None,
            "9999".into(),
            crate::contact::CountryCode::parse("AQ").unwrap(),
        );
        let result = Order::place(
            OrderId::generate(Utc::now()),
            CustomerId::parse("c").unwrap(),
            &request,
            &[product("A", 100, 1)],
            &ShippingPolicy::default_policy(),
            Utc::now(),
        );
        let fields: Vec<_> = result.unwrap_err().0.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["lines[1].sku", "shippingAddress.country"]);
    }

    #[test]
    fn transitions_follow_the_state_machine() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 1)],
        );
        let now = Utc::now();
        let reserved = order.reserve_all_at("BER-1", now).unwrap();
        assert_eq!(
            (reserved.status, reserved.version, reserved.timeline.len()),
            (OrderStatus::Reserved, 2, 2)
        );
        assert_eq!(
            reserved.reserve_all_at("BER-1", now),
            Err(TransitionError {
                from: OrderStatus::Reserved,
                to: OrderStatus::Reserved
            })
        );
        assert!(reserved.reject(vec![], now).is_err());
        let rejected = order
            .reject(
                vec![Shortage {
                    sku: Sku::parse("A").unwrap(),
                    requested: 1,
                    available: 0,
                }],
                now,
            )
            .unwrap();
        assert_eq!(rejected.status, OrderStatus::Rejected);
        assert_eq!(rejected.shortages.len(), 1);
    }

    #[test]
    fn an_order_round_trips_through_json() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 1)],
        );
        let json = serde_json::to_string(&order).unwrap();
        assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), order);
    }

    /// A pre-ordered line follows its SKU's release date while the order is not yet in the
    /// warehouse's hands: later, sooner, or released now (keeping the day it was released on);
    /// the same date, both dates passed, a line ordered as an ordinary one, or an order already
    /// sent are no change.
    #[test]
    fn a_pre_ordered_line_follows_its_release_date_until_the_order_leaves() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]),
            &[product("A", 100, 1), product("B", 100, 1)],
        );
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let today = now.date_naive();
        let day = |n: i64| today + chrono::Duration::days(n);
        let (a, b) = (Sku::parse("A").unwrap(), Sku::parse("B").unwrap());
        let reserved = order
            .reserve_for_release(
                &Plan::one_location("BER-1", order.quantities()),
                &[],
                &[(a.clone(), day(5))],
                now,
            )
            .unwrap();
        let later = reserved
            .follow_release(&a, Some(day(9)), today, now)
            .unwrap();
        assert_eq!(later.lines[0].release_on, Some(day(9)));
        assert_eq!(later.version, reserved.version + 1);
        assert_eq!(
            later.last_change.as_ref().map(|c| &c.event),
            Some(&OrderEvent::ReleaseMoved { sku: a.clone() })
        );
        let sooner = later.follow_release(&a, Some(day(2)), today, now).unwrap();
        assert_eq!(sooner.held_for_release(today), Some(day(2)));
        let released = sooner.follow_release(&a, None, today, now).unwrap();
        assert_eq!(released.lines[0].release_on, Some(today));
        assert_eq!(released.held_for_release(today), None);
        assert_eq!(released.hold(), Some("AWAITING_PAYMENT"));
        // No change: the same date; a date moved when both it and the old one have passed; an
        // ordinary line; an order in the warehouse.
        assert_eq!(later.follow_release(&a, Some(day(9)), today, now), None);
        assert_eq!(later.follow_release(&a, Some(day(12)), day(20), now), None);
        assert_eq!(
            later.follow_release(&a, Some(day(40)), day(20), now),
            None,
            "released already: a later batch's date is not its own"
        );
        assert_eq!(later.follow_release(&b, Some(day(9)), today, now), None);
        let sent = released
            .authorized_for_test(now)
            .start_fulfillment("BER-1", now)
            .unwrap();
        assert_eq!(sent.follow_release(&a, Some(day(30)), today, now), None);
    }

    /// A wholly waiting line that an earlier reading gave a reservation of all its units, and
    /// a later write kept, reads back holding nothing.
    #[test]
    fn a_waiting_line_saved_with_a_reservation_it_never_had_reads_back_without_it() {
        let order = placed(
            json!([{"sku": "A", "quantity": 2}]),
            &[product("A", 100, 0)],
        );
        let sku = order.lines[0].sku.clone();
        let mut waiting = order
            .reserve_backordering(
                &Plan {
                    shipments: Vec::new(),
                },
                &[Backordered {
                    sku,
                    units: 2,
                    location: "BER-1".into(),
                    promised_on: None,
                }],
                Utc::now(),
            )
            .unwrap();
        let read = waiting.clone().with_legacy_locations("BER-1");
        assert!(read.lines[0].allocations.is_empty());
        waiting.lines[0].allocations = vec![LocationUnits {
            location: "BER-1".into(),
            quantity: waiting.lines[0].quantity,
        }];
        let repaired = waiting.with_legacy_locations("BER-1");
        assert!(repaired.lines[0].allocations.is_empty());
        assert_eq!(repaired.lines[0].backordered(), 2);
    }
}
