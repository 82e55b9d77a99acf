//! Returns (RMAs): what a customer sends back, staff's decision, what arrived and what becomes of
//! it, and the refunds and replacements that follow.
//!
//! ```text
//! PENDING_APPROVAL ──approve──► APPROVED ──receive──► RECEIVED
//!        └──────reject──► REJECTED        (auto-approved by the policy's rules: straight to APPROVED)
//! ```
//! Like the shipment, returns live inside the order item: every step is an order change
//! conditioned on the order's version, so two staff approving one return cannot both win. Each
//! step is an [`OrderChange`] with the stock moves written with it: approving an exchange
//! reserves the replacement; receiving restocks the units marked `RESTOCK`, releases the
//! reservation of exchanged units that did not arrive, and hands the replacement to the
//! warehouse as a new order. The refund owed is recorded on the order ([`crate::order::refunds`]).
//! The rules live in [`policy`]; the requests are parsed in [`crate::request::returns`].

pub mod policy;

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{IdempotencyKey, OrderId, ReturnId, Sku};
use crate::money::Money;
use crate::order::commands::{ReceiptRequest, ReturnRequest};
use crate::order::fulfillment::{Fulfillment, ShipmentLine};
use crate::order::history::OrderEvent;
use crate::order::refunds::{Refund, RefundLine, RefundReason};
use crate::order::{
    LocationUnits, NewOrder, Order, OrderChange, OrderLine, OrderStatus, Shipping, Totals,
};
use crate::quantity::Quantity;
use crate::shipping::ShippingPolicy;
use crate::stock::{Product, StockMove, StockMovement};
use crate::validation::ValidationErrors;
use policy::{ReturnPolicy, ShippingRefund};

/// Why a customer sends something back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReturnReason {
    Damaged,
    WrongItem,
    NotAsDescribed,
    DoesNotFit,
    NoLongerNeeded,
    ArrivedLate,
    Other,
}

impl ReturnReason {
    pub const ALL: [ReturnReason; 7] = [
        Self::Damaged,
        Self::WrongItem,
        Self::NotAsDescribed,
        Self::DoesNotFit,
        Self::NoLongerNeeded,
        Self::ArrivedLate,
        Self::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Damaged => "DAMAGED",
            Self::WrongItem => "WRONG_ITEM",
            Self::NotAsDescribed => "NOT_AS_DESCRIBED",
            Self::DoesNotFit => "DOES_NOT_FIT",
            Self::NoLongerNeeded => "NO_LONGER_NEEDED",
            Self::ArrivedLate => "ARRIVED_LATE",
            Self::Other => "OTHER",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }

    /// Whether the business, not the customer, is at fault.
    pub fn is_sellers_fault(&self) -> bool {
        matches!(self, Self::Damaged | Self::WrongItem | Self::NotAsDescribed)
    }
}

/// Where a return is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReturnStatus {
    PendingApproval,
    Approved,
    Rejected,
    Received,
    /// Approved, and nothing arrived within the policy's days: closed by the sweep, its
    /// exchange released.
    Expired,
}

impl ReturnStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PendingApproval => "PENDING_APPROVAL",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Received => "RECEIVED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// What the warehouse does with a returned unit. Only `RESTOCK` makes it sellable again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Disposition {
    Restock,
    Refurbish,
    Recycle,
    Discard,
}

impl Disposition {
    pub const ALL: [Disposition; 4] =
        [Self::Restock, Self::Refurbish, Self::Recycle, Self::Discard];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Restock => "RESTOCK",
            Self::Refurbish => "REFURBISH",
            Self::Recycle => "RECYCLE",
            Self::Discard => "DISCARD",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == value)
    }
}

/// The item a return line is exchanged for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    pub sku: Sku,
    pub name: String,
    /// What one unit of it costs, from the catalog when the return was asked (absent on returns
    /// stored before exchanges could differ in price: the returned line's own price). A dearer
    /// item's difference is paid on its replacement order before it ships; a cheaper one's is
    /// refunded on receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
}

/// One SKU sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub reason: ReturnReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Instead of a refund: the same number of units of another SKU, shipped on receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Exchange>,
}

/// A staff decision on a return, or the policy's automatic one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Units of one SKU that arrived back, and what becomes of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub disposition: Disposition,
}

/// What the warehouse found in the returned parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub lines: Vec<ReceivedLine>,
    /// Announced units that did not arrive, per SKU (absent when everything arrived).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing: BTreeMap<Sku, u32>,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A return merchandise authorisation: what the customer sends back, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Return {
    pub return_id: ReturnId,
    pub status: ReturnStatus,
    pub lines: Vec<ReturnLine>,
    pub requested_at: DateTime<Utc>,
    /// The client's `Idempotency-Key` and the request's fingerprint: a retry finds this return.
    pub idempotency_key: IdempotencyKey,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The order that ships the exchanged items, created on receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_order_id: Option<OrderId>,
    /// What the exchanged items cost beyond those sent back: the replacement order's total,
    /// paid before it ships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_due: Option<Money>,
    /// Where its exchanges were reserved when it was approved: what does not arrive is released
    /// there and the replacement leaves from there, wherever the order's units are by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_location: Option<String>,
    /// Staff closing it before anything arrived (`EXPIRED` without it: the sweep closed it
    /// once the policy's days had passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing: Option<Decision>,
}

impl Return {
    /// When staff or the policy approved it (its request, for one stored without a decision).
    pub fn approved_at(&self) -> DateTime<Utc> {
        self.decision.as_ref().map_or(self.requested_at, |d| d.at)
    }

    /// Units of `sku` this return holds against the delivered quantity: announced until received,
    /// then what arrived; nothing once rejected.
    fn claims(&self, sku: &Sku) -> u32 {
        match (&self.status, &self.receipt) {
            (ReturnStatus::Rejected | ReturnStatus::Expired, _) => 0,
            (_, Some(receipt)) => receipt
                .lines
                .iter()
                .filter(|l| &l.sku == sku)
                .map(|l| l.quantity.get())
                .sum(),
            _ => self
                .lines
                .iter()
                .filter(|l| &l.sku == sku)
                .map(|l| l.quantity.get())
                .sum(),
        }
    }

    /// At its approval: the reservations its exchanges hold at `location` (one per exchange
    /// line), the location kept with it.
    fn reserve_exchanges(&mut self, location: String) -> Vec<StockMove> {
        let moves: Vec<StockMove> = self
            .lines
            .iter()
            .filter_map(|l| {
                l.exchange.as_ref().map(|e| StockMove {
                    sku: e.sku.clone(),
                    location: location.clone(),
                    quantity: l.quantity,
                    movement: StockMovement::Reserve,
                })
            })
            .collect();
        if !moves.is_empty() {
            self.exchange_location = Some(location);
        }
        moves
    }
}

/// The order a replacement ships as, and the return it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementOf {
    pub order_id: OrderId,
    pub return_id: ReturnId,
}

/// A return step the order's or the return's state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnError {
    #[error("only delivered orders can be returned; this one is {0}")]
    NotDelivered(&'static str),
    #[error("the return is {actual}; this step needs it {expected}")]
    WrongStatus {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("the return was already received")]
    AlreadyReceived,
    #[error("no such return")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

impl Order {
    /// Where the order's returns come back to and its exchanges are reserved: the location it
    /// left from (its shipment's warehouse for an order whose reservation named none).
    fn return_location(&self) -> String {
        self.home_location()
            .map(str::to_owned)
            .or_else(|| self.shipments.first().map(|f| f.warehouse.clone()))
            .unwrap_or_default()
    }

    /// The location the order's units of `sku` came from (the first of them, where a line was
    /// split).
    fn source_of(&self, sku: &Sku) -> Option<&str> {
        self.lines
            .iter()
            .filter(|l| &l.sku == sku)
            .flat_map(|l| l.allocations.first())
            .map(|a| a.location.as_str())
            .next()
    }

    /// When the oldest return still waiting for staff was requested, if one is.
    pub fn oldest_pending_return(&self) -> Option<DateTime<Utc>> {
        self.returns
            .iter()
            .filter(|r| r.status == ReturnStatus::PendingApproval)
            .map(|r| r.requested_at)
            .min()
    }

    /// When the longest-waiting approved return was approved, while its goods are still on
    /// their way: what the warehouse expects to arrive.
    pub fn oldest_arriving_return(&self) -> Option<DateTime<Utc>> {
        self.returns
            .iter()
            .filter(|r| r.status == ReturnStatus::Approved)
            .map(Return::approved_at)
            .min()
    }

    pub fn find_return(&self, id: &ReturnId) -> Option<&Return> {
        self.returns.iter().find(|r| &r.return_id == id)
    }

    /// The return this key created, if any.
    pub fn return_for_key(&self, key: &IdempotencyKey) -> Option<&Return> {
        self.returns.iter().find(|r| &r.idempotency_key == key)
    }

    /// Opens a return for delivered lines within the window, for no more than was delivered and
    /// not already being returned. `catalog` holds the exchange SKUs. The policy's rules approve
    /// it at once (reserving any exchange) or leave it for staff.
    #[allow(clippy::too_many_arguments)]
    /// Units of `sku` delivered in parcels whose return window is still open at `now` (each
    /// parcel's window opens at its own delivery).
    fn open_for_return(&self, sku: &Sku, policy: &ReturnPolicy, now: DateTime<Utc>) -> u32 {
        let window = u64::from(policy.window_days(sku));
        self.shipments
            .iter()
            .filter_map(|s| Some((s.delivered_at?, s)))
            .filter(|(at, _)| now <= *at + Days::new(window))
            .flat_map(|(_, s)| s.lines.iter().filter(|l| &l.sku == sku))
            .map(|l| l.quantity.get())
            .sum()
    }

    /// How many units of `sku` its customer may still send back at `now`: those delivered
    /// within their return window, less those already being returned — what
    /// [`Order::request_return`] accepts.
    pub fn returnable_units(&self, sku: &Sku, policy: &ReturnPolicy, now: DateTime<Utc>) -> u32 {
        let receiving = matches!(
            self.status,
            OrderStatus::Delivered
                | OrderStatus::PartiallyDelivered
                | OrderStatus::PartiallyShipped
        );
        if !receiving {
            return 0;
        }
        let arrived: u32 = self
            .shipments
            .iter()
            .filter(|s| s.delivered_at.is_some())
            .flat_map(|s| s.lines.iter().filter(|l| &l.sku == sku))
            .map(|l| l.quantity.get())
            .sum();
        let claimed: u32 = self.returns.iter().map(|r| r.claims(sku)).sum();
        self.open_for_return(sku, policy, now)
            .min(arrived.saturating_sub(claimed))
    }

    pub fn request_return(
        &self,
        request: &ReturnRequest,
        key: IdempotencyKey,
        catalog: &[Product],
        policy: &ReturnPolicy,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, ReturnError> {
        // Its receipt is one transaction: the order, the replacement, and one item per SKU it
        // restocks or whose exchange it releases. A return that could not be received is refused
        // before it is accepted.
        let skus = crate::ids::distinct_skus(
            request
                .lines
                .iter()
                .flat_map(|l| std::iter::once(&l.sku).chain(l.exchange_sku.as_ref())),
        );
        // The replacement's search keys ride along too.
        let most = crate::MAX_TRANSACTION_ITEMS - 2 - crate::order::search::MAX_SEARCH_ENTRIES;
        if skus.len() > most {
            return Err(ValidationErrors::one(
                "lines",
                format!(
                    "a return may name at most {most} SKUs, its lines and their exchanges together, \
                     so that its receipt fits one transaction; this one names {}",
                    skus.len()
                ),
            )
            .into());
        }
        // A return takes what has arrived, parcel by parcel: each parcel's window opens at its
        // own delivery.
        let delivered: Vec<&Fulfillment> = self
            .shipments
            .iter()
            .filter(|s| s.delivered_at.is_some())
            .collect();
        let receiving = matches!(
            self.status,
            OrderStatus::Delivered
                | OrderStatus::PartiallyDelivered
                | OrderStatus::PartiallyShipped
        );
        if !receiving || delivered.is_empty() {
            return Err(ReturnError::NotDelivered(self.status.as_str()));
        }
        let mut errors = ValidationErrors::default();
        let mut lines = Vec::with_capacity(request.lines.len());
        for (index, wanted) in request.lines.iter().enumerate() {
            let field = format!("lines[{index}]");
            let Some(line) = self.lines.iter().find(|l| l.sku == wanted.sku) else {
                errors.add(
                    format!("{field}.sku"),
                    format!("'{}' is not on this order", wanted.sku),
                );
                continue;
            };
            let parcels: Vec<(DateTime<Utc>, u32)> = delivered
                .iter()
                .filter_map(|s| {
                    let units: u32 = s
                        .lines
                        .iter()
                        .filter(|l| l.sku == wanted.sku)
                        .map(|l| l.quantity.get())
                        .sum();
                    Some((s.delivered_at?, units)).filter(|(_, units)| *units > 0)
                })
                .collect();
            if parcels.is_empty() {
                errors.add(
                    format!("{field}.sku"),
                    format!("'{}' has not been delivered yet", wanted.sku),
                );
                continue;
            }
            let window = policy.window_days(&wanted.sku);
            let closes = |at: DateTime<Utc>| at + Days::new(u64::from(window));
            let open = self.open_for_return(&wanted.sku, policy, now);
            if open == 0 {
                let last = parcels.iter().map(|(at, _)| *at).max().unwrap_or(now);
                errors.add(
                    format!("{field}.sku"),
                    format!(
                        "the return window of {window} days for '{}' closed on {}",
                        wanted.sku,
                        closes(last).format("%Y-%m-%d")
                    ),
                );
                continue;
            }
            let arrived: u32 = parcels.iter().map(|(_, units)| units).sum();
            let claimed: u32 = self.returns.iter().map(|r| r.claims(&wanted.sku)).sum();
            let returnable = open.min(arrived.saturating_sub(claimed));
            if wanted.quantity.get() > returnable {
                errors.add(
                    format!("{field}.quantity"),
                    format!(
                        "{arrived} delivered, {claimed} already being returned: at most {returnable} can be returned"
                    ),
                );
                continue;
            }
            // One line per item it replaces: the replacement's lines, and what the original
            // order refunds for them if they come back, are told apart by their SKU.
            let exchanged_twice = wanted.exchange_sku.as_ref().is_some_and(|sku| {
                request.lines[..index]
                    .iter()
                    .any(|earlier| earlier.exchange_sku.as_ref() == Some(sku))
            });
            if exchanged_twice {
                errors.add(
                    format!("{field}.exchangeSku"),
                    "another line is exchanged for the same item: exchange each item for a different one, or return one of them",
                );
                continue;
            }
            let exchange = match &wanted.exchange_sku {
                None => None,
                Some(sku) => match catalog.iter().find(|p| &p.sku == sku && p.active) {
                    None => {
                        errors.add(
                            format!("{field}.exchangeSku"),
                            format!("unknown SKU '{sku}'"),
                        );
                        continue;
                    }
                    // A pre-order is not sent before its release date, and a replacement ships
                    // at once: not an exchange until it is out.
                    Some(product)
                        if product
                            .backorders
                            .policy
                            .release_after(crate::replenishment::day_of(now))
                            .is_some() =>
                    {
                        errors.add(
                            format!("{field}.exchangeSku"),
                            format!("'{sku}' is a pre-order not yet released: it cannot be an exchange before its release date"),
                        );
                        continue;
                    }
                    // A replacement's lines are priced at what was paid for them (nothing, or
                    // a difference), not at what they are worth: exchanged again only for the
                    // same price, as before prices could differ.
                    Some(product)
                        if self.replacement_for.is_some()
                            && product.unit_price != line.unit_price =>
                    {
                        errors.add(
                            format!("{field}.exchangeSku"),
                            "an exchange's replacement is exchanged again only for an item of the same price",
                        );
                        continue;
                    }
                    // The same item again costs what was paid for it, whatever the catalog
                    // says now: no difference either way (a replacement's line comes here only
                    // at its own price, above: its refunds follow one exchange back, no more).
                    Some(product) if product.sku == line.sku => Some(Exchange {
                        sku: product.sku.clone(),
                        name: product.name.clone(),
                        unit_price: Some(line.unit_price),
                    }),
                    Some(product)
                        if product.unit_price.currency() != line.unit_price.currency() =>
                    {
                        errors.add(
                            format!("{field}.exchangeSku"),
                            format!("'{sku}' is priced in another currency than the order"),
                        );
                        continue;
                    }
                    Some(product) => Some(Exchange {
                        sku: product.sku.clone(),
                        name: product.name.clone(),
                        unit_price: Some(product.unit_price),
                    }),
                },
            };
            lines.push(ReturnLine {
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: wanted.quantity,
                unit_price: line.unit_price,
                reason: wanted.reason,
                comment: wanted.comment.clone(),
                exchange,
            });
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let return_id = ReturnId::new(self.id.clone(), self.returns.len() as u32 + 1);
        let approved = policy.approves_at_once(&lines);
        let mut rma = Return {
            return_id: return_id.clone(),
            status: ReturnStatus::PendingApproval,
            lines,
            requested_at: now,
            idempotency_key: key,
            fingerprint: request.fingerprint(),
            decision: None,
            receipt: None,
            refund_id: None,
            replacement_order_id: None,
            exchange_due: None,
            exchange_location: None,
            closing: None,
        };
        let mut note = format!("return {return_id} requested");
        let mut moves = Vec::new();
        if approved {
            rma.status = ReturnStatus::Approved;
            rma.decision = Some(Decision {
                approved: true,
                by: "policy".into(),
                at: now,
                note: Some("approved at once by the return policy".into()),
            });
            moves = rma.reserve_exchanges(self.return_location());
            note.push_str(" and approved");
        }
        let event = OrderEvent::for_return(rma.return_id.clone(), rma.status);
        let next = self.record(now, Some(note), |next| {
            next.returns.push(rma);
            event
        });
        Ok(OrderChange {
            order: next,
            moves,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        })
    }

    fn return_index(&self, id: &ReturnId) -> Result<usize, ReturnError> {
        self.returns
            .iter()
            .position(|r| &r.return_id == id)
            .ok_or(ReturnError::NotFound)
    }

    fn expect_return_status(
        &self,
        index: usize,
        expected: ReturnStatus,
    ) -> Result<(), ReturnError> {
        match self.returns[index].status {
            actual if actual == expected => Ok(()),
            ReturnStatus::Received => Err(ReturnError::AlreadyReceived),
            actual => Err(ReturnError::WrongStatus {
                expected: expected.as_str(),
                actual: actual.as_str(),
            }),
        }
    }

    /// Staff decide on a return waiting for them. Approving reserves the exchanges.
    pub fn decide_return(
        &self,
        id: &ReturnId,
        approved: bool,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, ReturnError> {
        let index = self.return_index(id)?;
        self.expect_return_status(index, ReturnStatus::PendingApproval)?;
        let verb = if approved { "approved" } else { "rejected" };
        let mut moves = Vec::new();
        let next = self.record(now, Some(format!("return {id} {verb} by {by}")), |next| {
            let rma = &mut next.returns[index];
            rma.status = if approved {
                ReturnStatus::Approved
            } else {
                ReturnStatus::Rejected
            };
            rma.decision = Some(Decision {
                approved,
                by: by.to_owned(),
                at: now,
                note,
            });
            if approved {
                moves = rma.reserve_exchanges(self.return_location());
            }
            OrderEvent::for_return(id.clone(), rma.status)
        });
        Ok(OrderChange {
            order: next,
            moves,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        })
    }

    /// Closes the approved return nothing arrived for within `policy`'s days of its approval
    /// (the oldest first, one per change): `EXPIRED`, announced to the customer, its exchange
    /// released where its approval reserved it — stock no longer held for goods that never came.
    /// `None` when no return of the order is due.
    pub fn expire_return(&self, policy: &ReturnPolicy, now: DateTime<Utc>) -> Option<OrderChange> {
        let index = self
            .returns
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.status == ReturnStatus::Approved && policy.arrival_due(r.approved_at()) <= now
            })
            .min_by_key(|(_, r)| r.approved_at())
            .map(|(index, _)| index)?;
        let head = format!(
            "return {} expired: nothing arrived within {} days of its approval",
            self.returns[index].return_id, policy.arrival_days
        );
        Some(self.close_unarrived(index, head, None, now))
    }

    /// Staff close an approved return nothing arrived for before its time (the customer will
    /// not send it, say): as the sweep closes one — `EXPIRED`, its exchange released, the
    /// customer told, with staff's `note`.
    pub fn close_return(
        &self,
        id: &ReturnId,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, ReturnError> {
        let index = self.return_index(id)?;
        self.expect_return_status(index, ReturnStatus::Approved)?;
        let head = format!("return {id} closed by {by} before anything arrived");
        let closing = Decision {
            approved: false,
            by: by.to_owned(),
            at: now,
            note,
        };
        Ok(self.close_unarrived(index, head, Some(closing), now))
    }

    /// The approved return at `index` closed (`EXPIRED`), noted `head`, its exchange released
    /// where its approval reserved it; `closing` is staff's, when they closed it.
    fn close_unarrived(
        &self,
        index: usize,
        head: String,
        closing: Option<Decision>,
        now: DateTime<Utc>,
    ) -> OrderChange {
        let rma = &self.returns[index];
        let id = rma.return_id.clone();
        let location = rma
            .exchange_location
            .clone()
            .unwrap_or_else(|| self.return_location());
        let moves: Vec<StockMove> = rma
            .lines
            .iter()
            .filter_map(|l| {
                l.exchange.as_ref().map(|e| StockMove {
                    sku: e.sku.clone(),
                    location: location.clone(),
                    quantity: l.quantity,
                    movement: StockMovement::Release,
                })
            })
            .collect();
        let note = format!(
            "{head}{}{}",
            closing
                .as_ref()
                .and_then(|c| c.note.as_deref())
                .map(|n| format!(": {n}"))
                .unwrap_or_default(),
            if moves.is_empty() {
                ""
            } else {
                "; its exchange released"
            }
        );
        let next = self.record(now, Some(note), |next| {
            next.returns[index].status = ReturnStatus::Expired;
            next.returns[index].closing = closing;
            OrderEvent::for_return(id.clone(), ReturnStatus::Expired)
        });
        OrderChange {
            order: next,
            moves,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        }
    }

    /// The exchange's original order once its replacement (`replacement`, at the version that
    /// calls it off) will not ship: the goods came back and nothing replaces them, so the
    /// original refunds what the customer paid for them ([`Order::refund_for_replacement`]).
    pub fn refund_called_off_exchange(
        &self,
        replacement: &Order,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        let units: Vec<(Sku, Quantity)> = replacement
            .lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity))
            .collect();
        let cause = format!(
            "the exchange of return {} called off with its replacement {}",
            replacement.replacement_for.as_ref()?.return_id,
            replacement.id
        );
        self.refund_for_replacement(replacement, &units, cause, now)
    }

    /// The exchange's original order once units of its replacement came back under the
    /// replacement's return `return_id` (received, at `replacement`'s version that records it):
    /// the replacement's lines are priced at the difference it cost, so what the customer paid
    /// for those units is refunded here ([`Order::refund_for_replacement`]).
    pub fn refund_returned_replacement(
        &self,
        replacement: &Order,
        return_id: &ReturnId,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        let rma = replacement
            .returns
            .iter()
            .find(|r| &r.return_id == return_id)?;
        let receipt = rma.receipt.as_ref()?;
        let mut units: Vec<(Sku, Quantity)> = Vec::new();
        for line in rma.lines.iter().filter(|l| l.exchange.is_none()) {
            let got: u32 = receipt
                .lines
                .iter()
                .filter(|r| r.sku == line.sku)
                .map(|r| r.quantity.get())
                .sum();
            if let Ok(quantity) = Quantity::new(got) {
                units.push((line.sku.clone(), quantity));
            }
        }
        let cause = format!(
            "units of the replacement {} returned under {return_id}",
            replacement.id
        );
        self.refund_for_replacement(replacement, &units, cause, now)
    }

    /// The refund of `units` of the replacement (per SKU it ships) on this, its original order:
    /// each unit at the lower of the price paid for the item sent back and the replacement's (a
    /// cheaper item's difference was refunded at the receipt; a dearer one's paid difference is
    /// the replacement's own to give back), never more than is left of what was paid; once per
    /// `cause` (the timeline keeps it). `None` if `replacement` replaces no return of this
    /// order, or nothing is owed.
    fn refund_for_replacement(
        &self,
        replacement: &Order,
        units: &[(Sku, Quantity)],
        cause: String,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        let of = replacement.replacement_for.as_ref()?;
        if of.order_id != self.id
            || self
                .timeline
                .iter()
                .any(|e| e.note.as_deref() == Some(cause.as_str()))
        {
            return None;
        }
        let rma = self.returns.iter().find(|r| r.return_id == of.return_id)?;
        let currency = self.totals.total.currency();
        let mut lines = Vec::new();
        for (sku, quantity) in units {
            let line = rma
                .lines
                .iter()
                .find(|l| l.exchange.as_ref().is_some_and(|e| &e.sku == sku))?;
            let exchanged = line.exchange.as_ref()?;
            let unit = line.unit_price.minor_units().min(
                exchanged
                    .unit_price
                    .unwrap_or(line.unit_price)
                    .minor_units(),
            );
            lines.push(RefundLine {
                sku: line.sku.clone(),
                quantity: *quantity,
                amount: Money::new(unit * i64::from(quantity.get()), currency).ok()?,
            });
        }
        let (refunded, _) = self.refunded();
        let left = self.totals.total.minor_units() + self.refunded_for_units() - refunded;
        let items: i64 = lines.iter().map(|l| l.amount.minor_units()).sum();
        let amount = items.min(left);
        if amount <= 0 {
            return None;
        }
        let refund = Refund {
            refund_id: self.next_refund_id(),
            reason: RefundReason::Return,
            return_id: Some(of.return_id.clone()),
            lines,
            shipping: Money::zero(currency),
            amount: Money::new(amount, currency).ok()?,
            requested_at: now,
            retried_as: None,
            awaiting_capture: self.refund_waits_for_capture(amount),
            from_payment: None,
        };
        Some(self.record(now, Some(cause), |next| {
            next.refunds.push(refund);
            OrderEvent::Updated
        }))
    }

    /// Records what arrived back. `RESTOCK` units become available in the same write; the rest are
    /// kept with their disposition. The refund covers the received units of lines that are not
    /// exchanged (and shipping, as the policy says); exchanged units that arrived ship as a new
    /// order, and the reservation of those that did not is released.
    pub fn receive_return(
        &self,
        id: &ReturnId,
        receipt: &ReceiptRequest,
        by: &str,
        policy: &ReturnPolicy,
        shipping: &ShippingPolicy,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, ReturnError> {
        let index = self.return_index(id)?;
        self.expect_return_status(index, ReturnStatus::Approved)?;
        let rma = &self.returns[index];

        let mut errors = ValidationErrors::default();
        let mut received: BTreeMap<&Sku, u32> = BTreeMap::new();
        for (i, line) in receipt.lines.iter().enumerate() {
            match rma.lines.iter().find(|l| l.sku == line.sku) {
                None => errors.add(
                    format!("lines[{i}].sku"),
                    format!("'{}' is not on this return", line.sku),
                ),
                Some(announced) => {
                    let sum = received.entry(&announced.sku).or_default();
                    *sum += line.quantity.get();
                    if *sum > announced.quantity.get() {
                        errors.add(
                            format!("lines[{i}].quantity"),
                            format!(
                                "{} units of '{}' were announced; {} received is more",
                                announced.quantity.get(),
                                line.sku,
                                sum
                            ),
                        );
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }

        let location = self.return_location();
        // Exchanges are released, and leave, where their approval reserved them.
        let exchanged_at = rma
            .exchange_location
            .clone()
            .unwrap_or_else(|| location.clone());
        let mut moves: Vec<StockMove> = receipt
            .lines
            .iter()
            .filter(|l| l.disposition == Disposition::Restock)
            .map(|l| StockMove {
                sku: l.sku.clone(),
                // Back where the SKU's units came from: that location keeps counters for it.
                location: self.source_of(&l.sku).unwrap_or(&location).to_owned(),
                quantity: l.quantity,
                movement: StockMovement::Restock,
            })
            .collect();
        let mut missing = BTreeMap::new();
        let mut refund_lines = Vec::new();
        let mut replacement_lines = Vec::new();
        let currency = self.totals.total.currency();
        for line in &rma.lines {
            let got = received.get(&line.sku).copied().unwrap_or(0);
            let short = line.quantity.get() - got;
            if short > 0 {
                missing.insert(line.sku.clone(), short);
            }
            match &line.exchange {
                Some(exchange) => {
                    // The difference per unit: paid on the replacement if dearer, refunded if
                    // cheaper, for the units that arrived.
                    let price = exchange.unit_price.unwrap_or(line.unit_price);
                    let difference = price.minor_units() - line.unit_price.minor_units();
                    let money = |minor: i64| {
                        Money::new(minor, currency)
                            .map_err(|e| ValidationErrors::one("lines", e.to_string()))
                    };
                    if let (Ok(quantity), true) = (Quantity::new(got), difference < 0) {
                        refund_lines.push(RefundLine {
                            sku: line.sku.clone(),
                            quantity,
                            amount: money(-difference * i64::from(got))?,
                        });
                    }
                    let owed = difference.max(0);
                    if let Ok(quantity) = Quantity::new(short) {
                        moves.push(StockMove {
                            sku: exchange.sku.clone(),
                            location: exchanged_at.clone(),
                            quantity,
                            movement: StockMovement::Release,
                        });
                    }
                    if let Ok(quantity) = Quantity::new(got) {
                        replacement_lines.push(OrderLine {
                            release_on: None,
                            sku: exchange.sku.clone(),
                            name: exchange.name.clone(),
                            quantity,
                            unit_price: money(owed)?,
                            line_total: money(owed * i64::from(got))?,
                            unit_weight_grams: self
                                .lines
                                .iter()
                                .find(|l| l.sku == line.sku)
                                .map_or(0, |l| l.unit_weight_grams),
                            allocations: vec![LocationUnits {
                                location: exchanged_at.clone(),
                                quantity,
                            }],
                            backorders: Vec::new(),
                            promised_on: None,
                        });
                    }
                }
                None => {
                    if let Ok(quantity) = Quantity::new(got) {
                        let amount = line
                            .unit_price
                            .checked_mul(got)
                            .map_err(|e| ValidationErrors::one("lines", e.to_string()))?;
                        refund_lines.push(RefundLine {
                            sku: line.sku.clone(),
                            quantity,
                            amount,
                        });
                    }
                }
            }
        }

        let mut note = format!("return {id} received");
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|(s, n)| format!("{n}× {s}")).collect();
            note.push_str(&format!(", missing {}", list.join(", ")));
        }
        // The refund: received units of refunded lines, and shipping if the policy says so and it
        // was not refunded before; never more than what is left of the order's total.
        let (refunded, shipping_refunded) = self.refunded();
        let items: i64 = refund_lines.iter().map(|l| l.amount.minor_units()).sum();
        let sellers_fault = rma
            .lines
            .iter()
            .any(|l| l.reason.is_sellers_fault() && received.get(&l.sku).copied().unwrap_or(0) > 0);
        let refunds_shipping = !shipping_refunded
            && received.values().any(|n| *n > 0)
            && match policy.shipping_refund {
                ShippingRefund::Never => false,
                ShippingRefund::Always => true,
                ShippingRefund::SellersFault => sellers_fault,
            };
        let shipping_amount = if refunds_shipping {
            self.totals.shipping.minor_units()
        } else {
            0
        };
        // What the customer paid: the total, and what units called off after it was paid
        // were refunded (the total shrank by it).
        let left = self.totals.total.minor_units() + self.refunded_for_units() - refunded;
        let amount = (items + shipping_amount).min(left);
        let refund = if amount > 0 {
            Some(Refund {
                refund_id: self.next_refund_id(),
                reason: RefundReason::Return,
                return_id: Some(id.clone()),
                lines: refund_lines,
                shipping: Money::new(shipping_amount.min(amount), currency)
                    .map_err(|e| ValidationErrors::one("lines", e.to_string()))?,
                amount: Money::new(amount, currency)
                    .map_err(|e| ValidationErrors::one("lines", e.to_string()))?,
                requested_at: now,
                retried_as: None,
                awaiting_capture: self.refund_waits_for_capture(amount),
                from_payment: None,
            })
        } else {
            None
        };
        let created = if replacement_lines.is_empty() {
            None
        } else {
            Some(self.replacement(id, replacement_lines, &exchanged_at, shipping, now))
        };

        let next = self.record(now, Some(note), |next| {
            let rma = &mut next.returns[index];
            rma.refund_id = refund.as_ref().map(|r| r.refund_id.clone());
            rma.replacement_order_id = created.as_ref().map(|o| o.id.clone());
            rma.exchange_due = created
                .as_ref()
                .map(|o| o.totals.total)
                .filter(|due| due.minor_units() > 0);
            rma.status = ReturnStatus::Received;
            rma.receipt = Some(Receipt {
                lines: receipt.lines.clone(),
                missing,
                by: by.to_owned(),
                at: now,
                note: receipt.note.clone(),
            });
            next.refunds.extend(refund);
            OrderEvent::ReturnReceived {
                return_id: id.clone(),
            }
        });
        Ok(OrderChange {
            order: next,
            moves,
            created,
            linked: None,
            stock_history: Vec::new(),
        })
    }

    /// The order that ships an exchange, to the original address (its units were reserved when
    /// the return was approved): straight to the warehouse, free of charge, when the exchanged
    /// items cost no more than those sent back; otherwise `RESERVED` for the difference (its
    /// lines priced at it), waiting for its payment like any order — paid, it goes to the
    /// warehouse; unpaid it waits, never expired (the goods it stands for came back), until
    /// staff cancel it.
    fn replacement(
        &self,
        id: &ReturnId,
        lines: Vec<OrderLine>,
        warehouse: &str,
        policy: &ShippingPolicy,
        now: DateTime<Utc>,
    ) -> Order {
        let currency = self.totals.total.currency();
        let zero = Money::zero(currency);
        let estimate = policy
            .quote(
                self.shipping.method,
                self.shipping.address.country(),
                0,
                now,
            )
            .map(|q| q.estimate)
            .unwrap_or(self.shipping.estimate);
        let note = format!("replacement for {id}, sent to warehouse {warehouse}");
        let due_minor: i64 = lines.iter().map(|l| l.line_total.minor_units()).sum();
        let due = Money::new(due_minor, currency).unwrap_or(zero);
        let free = due.minor_units() == 0;
        let mut replacement = Order::opened(
            NewOrder {
                id: OrderId::generate(now),
                customer_id: self.customer_id.clone(),
                lines,
                shipping: Shipping {
                    method: self.shipping.method,
                    address: self.shipping.address.clone(),
                    price: zero,
                    estimate,
                    pickup_location: self.shipping.pickup_location.clone(),
                    ship_complete: true,
                },
                contact: self.contact.clone(),
                totals: Totals {
                    subtotal: due,
                    shipping: zero,
                    total: due,
                },
            },
            if free {
                OrderStatus::Fulfilling
            } else {
                OrderStatus::Reserved
            },
            Some(if free {
                note
            } else {
                format!(
                    "replacement for {id}: {due} to pay before it goes to warehouse {warehouse}"
                )
            }),
            now,
        );
        let lines = replacement
            .lines
            .iter()
            .map(|l| ShipmentLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        if free {
            replacement.shipments = vec![Fulfillment::queued(
                1,
                warehouse,
                lines,
                Some(format!("replacement for {id}")),
                now,
            )];
        }
        replacement.replacement_for = Some(ReplacementOf {
            order_id: self.id.clone(),
            return_id: id.clone(),
        });
        replacement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{delivered_order, product};
    use crate::request::refused_fields;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const DELIVERED: &str = "2026-11-20T10:00:00Z";

    fn delivered() -> Order {
        delivered_order("01JDAAAAAAAAAAAAAAAAAAAAAA", "customer-ada", at(DELIVERED))
    }

    fn request(lines: serde_json::Value) -> ReturnRequest {
        ReturnRequest::parse(&json!({ "lines": lines })).unwrap()
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    fn open(
        order: &Order,
        lines: serde_json::Value,
        now: &str,
    ) -> Result<OrderChange, ReturnError> {
        let policy = ReturnPolicy::default_policy();
        let catalog = [
            product("TSHIRT-BLUE-M", 2500, 3),
            product("TSHIRT-GOLD-M", 3200, 3),
            product("TSHIRT-PLAIN-M", 1800, 3),
            product("LAMP-DESK", 9900, 3),
            product("LAMP-FLOOR", 25000, 3),
        ];
        order.request_return(&request(lines), key("k1"), &catalog, &policy, at(now))
    }

    /// A pre-order not yet released is no exchange (a replacement would leave at once); the
    /// same item again costs what was paid for it, whatever the catalog says now.
    #[test]
    fn a_pre_order_is_no_exchange_and_the_same_item_costs_what_was_paid() {
        let order = delivered();
        let paid = order
            .lines
            .iter()
            .find(|l| l.sku.as_str() == "TSHIRT-RED-M")
            .unwrap()
            .unit_price;
        let mut coming = product("TSHIRT-NEON-M", 2500, 3);
        coming.backorders.policy = crate::backorder::SellingPolicy::PreOrder {
            release_on: at(DELIVERED).date_naive() + chrono::Duration::days(60),
            cap: 10,
        };
        // The shirt itself is dearer in the catalog now.
        let catalog = [coming, product("TSHIRT-RED-M", paid.minor_units() + 700, 3)];
        let ask = |exchange: &str| {
            order.request_return(
                &request(json!([{"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DAMAGED", "exchangeSku": exchange}])),
                key("k1"),
                &catalog,
                &ReturnPolicy::default_policy(),
                at(DELIVERED) + chrono::Duration::days(1),
            )
        };
        assert_eq!(
            invalid_fields(ask("TSHIRT-NEON-M")),
            ["lines[0].exchangeSku"]
        );
        let same = ask("TSHIRT-RED-M").unwrap().order;
        let exchange = same.returns[0].lines[0].exchange.as_ref().unwrap();
        assert_eq!(exchange.unit_price, Some(paid), "no difference to pay");
    }

    /// The fields a refused return names.
    fn invalid_fields(result: Result<OrderChange, ReturnError>) -> Vec<String> {
        match result {
            Err(ReturnError::Invalid(errors)) => refused_fields::<()>(Err(errors)),
            other => panic!("not invalid: {other:?}"),
        }
    }

    fn moves_of(change: &OrderChange) -> Vec<(&str, u32, StockMovement)> {
        change
            .moves
            .iter()
            .map(|m| (m.sku.as_str(), m.quantity.get(), m.movement))
            .collect()
    }

    fn receive(order: &Order, lines: serde_json::Value) -> Result<OrderChange, ReturnError> {
        let receipt = ReceiptRequest::parse(&json!({ "lines": lines })).unwrap();
        order.receive_return(
            &order.returns[0].return_id,
            &receipt,
            "warehouse packer-1",
            &ReturnPolicy::default_policy(),
            &ShippingPolicy::default_policy(),
            at("2026-11-28T09:00:00Z"),
        )
    }

    #[test]
    fn only_delivered_lines_within_the_window_and_never_more_than_delivered() {
        let order = delivered();
        let too_many = open(
            &order,
            json!([{"sku": "MUG-WHITE", "quantity": 2, "reason": "DAMAGED"}]),
            "2026-11-21T10:00:00Z",
        );
        assert_eq!(invalid_fields(too_many), ["lines[0].quantity"]);

        let late = open(
            &order,
            json!([{"sku": "MUG-WHITE", "quantity": 1, "reason": "DAMAGED"}]),
            "2026-12-21T10:00:01Z",
        );
        assert_eq!(invalid_fields(late), ["lines[0].sku"]);

        // Two items exchanged for the same one: the replacement could not tell them apart.
        let twice = open(
            &order,
            json!([
                {"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-BLUE-M"},
                {"sku": "MUG-WHITE", "quantity": 1, "reason": "DAMAGED", "exchangeSku": "TSHIRT-BLUE-M"}
            ]),
            "2026-11-21T10:00:00Z",
        );
        assert_eq!(invalid_fields(twice), ["lines[1].exchangeSku"]);

        let first = open(
            &order,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DOES_NOT_FIT"}]),
            "2026-11-21T10:00:00Z",
        )
        .unwrap();
        let second = open(
            &first.order,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT"}]),
            "2026-11-21T11:00:00Z",
        );
        assert!(
            matches!(second, Err(ReturnError::Invalid(_))),
            "one of two already claimed"
        );

        // What the customer's page offers is what a request may take: per SKU, in its window,
        // less what is being returned.
        let policy = ReturnPolicy::default_policy();
        let sku = |s: &str| Sku::parse(s).unwrap();
        let day_after = at("2026-11-21T11:00:00Z");
        assert_eq!(
            order.returnable_units(&sku("TSHIRT-RED-M"), &policy, day_after),
            2
        );
        assert_eq!(
            first
                .order
                .returnable_units(&sku("TSHIRT-RED-M"), &policy, day_after),
            1
        );
        assert_eq!(
            order.returnable_units(&sku("MUG-WHITE"), &policy, day_after),
            1
        );
        assert_eq!(
            order.returnable_units(&sku("MUG-WHITE"), &policy, at("2026-12-21T10:00:01Z")),
            0,
            "the window closed"
        );

        let pending =
            crate::fixtures::sample_order("01JDBBBBBBBBBBBBBBBBBBBBBB", "c", at(DELIVERED));
        assert_eq!(
            pending.returnable_units(&sku("MUG-WHITE"), &policy, day_after),
            0
        );
        assert_eq!(
            open(
                &pending,
                json!([{"sku": "MUG-WHITE", "quantity": 1, "reason": "DAMAGED"}]),
                DELIVERED
            ),
            Err(ReturnError::NotDelivered("PENDING"))
        );
    }

    #[test]
    fn the_policy_approves_small_returns_at_once_and_leaves_the_rest_for_staff() {
        let order = delivered();
        let small = open(
            &order,
            json!([{"sku": "MUG-WHITE", "quantity": 1, "reason": "DAMAGED"}]),
            "2026-11-21T10:00:00Z",
        )
        .unwrap();
        assert_eq!(small.order.returns[0].status, ReturnStatus::Approved);
        assert_eq!(small.order.version, order.version + 1);
        assert!(
            small.moves.is_empty(),
            "nothing to reserve without an exchange"
        );

        let other = open(
            &order,
            json!([{"sku": "MUG-WHITE", "quantity": 1, "reason": "OTHER"}]),
            "2026-11-21T10:00:00Z",
        )
        .unwrap();
        assert_eq!(other.order.returns[0].status, ReturnStatus::PendingApproval);
        assert_eq!(
            other.order.oldest_pending_return(),
            Some(at("2026-11-21T10:00:00Z"))
        );
        let id = other.order.returns[0].return_id.clone();
        let rejected = other
            .order
            .decide_return(&id, false, "admin", None, at("2026-11-22T10:00:00Z"))
            .unwrap();
        assert_eq!(rejected.order.returns[0].status, ReturnStatus::Rejected);
        assert_eq!(
            rejected
                .order
                .decide_return(&id, true, "admin", None, at("2026-11-22T10:00:00Z")),
            Err(ReturnError::WrongStatus {
                expected: "PENDING_APPROVAL",
                actual: "REJECTED"
            })
        );
    }

    #[test]
    fn returned_units_go_back_where_each_sku_came_from() {
        // A split order: the mugs came from Amsterdam, the T-shirts from Berlin.
        let mut order = delivered();
        for line in order
            .lines
            .iter_mut()
            .filter(|l| l.sku.as_str() == "MUG-WHITE")
        {
            line.allocations[0].location = "AMS-1".into();
        }
        let lines = json!([
            {"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DAMAGED"},
            {"sku": "MUG-WHITE", "quantity": 1, "reason": "DAMAGED"}
        ]);
        let approved = open(&order, lines, "2026-11-21T10:00:00Z").unwrap().order;
        let both = json!([
            {"sku": "TSHIRT-RED-M", "quantity": 1, "disposition": "RESTOCK"},
            {"sku": "MUG-WHITE", "quantity": 1, "disposition": "RESTOCK"}
        ]);
        let received = receive(&approved, both).unwrap();
        let at: Vec<_> = received
            .moves
            .iter()
            .map(|m| (m.sku.as_str(), m.location.as_str()))
            .collect();
        assert_eq!(at, [("TSHIRT-RED-M", "BER-1"), ("MUG-WHITE", "AMS-1")]);
    }

    #[test]
    fn a_receipt_restocks_only_what_can_be_sold_and_refunds_what_arrived() {
        let order = delivered();
        let approved = open(
            &order,
            json!([
                {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DAMAGED"},
                {"sku": "MUG-WHITE", "quantity": 1, "reason": "DAMAGED"}
            ]),
            "2026-11-21T10:00:00Z",
        )
        .unwrap()
        .order;
        let received = receive(
            &approved,
            json!([
                {"sku": "TSHIRT-RED-M", "quantity": 1, "disposition": "RESTOCK"},
                {"sku": "MUG-WHITE", "quantity": 1, "disposition": "DISCARD"}
            ]),
        )
        .unwrap();
        let moves = moves_of(&received);
        assert_eq!(moves, [("TSHIRT-RED-M", 1, StockMovement::Restock)]);
        let rma = &received.order.returns[0];
        assert_eq!(rma.status, ReturnStatus::Received);
        let receipt = rma.receipt.as_ref().unwrap();
        assert_eq!(
            receipt.missing.get(&Sku::parse("TSHIRT-RED-M").unwrap()),
            Some(&1)
        );
        // Two units arrived at 25.00 each, and the damage was the business's fault: shipping too.
        let refund = &received.order.refunds[0];
        assert_eq!(
            refund.amount.minor_units(),
            2 * 2500 + order.totals.shipping.minor_units()
        );
        assert_eq!(rma.refund_id.as_deref(), Some(refund.refund_id.as_str()));
        assert_eq!(
            receive(
                &received.order,
                json!([{"sku": "MUG-WHITE", "quantity": 1, "disposition": "RESTOCK"}])
            ),
            Err(ReturnError::AlreadyReceived)
        );

        let too_many = receive(
            &approved,
            json!([{"sku": "MUG-WHITE", "quantity": 2, "disposition": "RESTOCK"}]),
        );
        assert!(matches!(too_many, Err(ReturnError::Invalid(_))));
    }

    #[test]
    fn an_exchange_reserves_its_replacement_and_ships_it_as_a_new_order() {
        let order = delivered();
        let approved = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-BLUE-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        let moves = moves_of(&approved);
        assert_eq!(moves, [("TSHIRT-BLUE-M", 2, StockMovement::Reserve)]);

        let received = receive(
            &approved.order,
            json!([
                {"sku": "TSHIRT-RED-M", "quantity": 1, "disposition": "RESTOCK"}
            ]),
        )
        .unwrap();
        let mut moves = moves_of(&received);
        moves.sort_by_key(|m| m.0);
        assert_eq!(
            moves,
            [
                ("TSHIRT-BLUE-M", 1, StockMovement::Release),
                ("TSHIRT-RED-M", 1, StockMovement::Restock)
            ]
        );
        let replacement = received.created.expect("the exchange ships");
        assert_eq!(replacement.status, OrderStatus::Fulfilling);
        assert_eq!(replacement.totals.total.minor_units(), 0);
        assert_eq!(
            replacement.lines[0].quantity.get(),
            1,
            "only what came back is exchanged"
        );
        assert_eq!(
            replacement.replacement_for.as_ref().map(|r| &r.order_id),
            Some(&order.id)
        );
        assert!(
            received.order.refunds.is_empty(),
            "an exchange is not refunded"
        );
    }

    /// An approved return nothing arrives for is closed after the policy's days, its exchange
    /// released where its approval reserved it, and announced; before then, and for one that
    /// arrived, nothing happens. Its units may be returned again (while the window lasts).
    #[test]
    fn an_approved_return_that_never_arrives_expires_and_releases_its_exchange() {
        let order = delivered();
        let policy = ReturnPolicy::default_policy();
        let approved = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-BLUE-M"}
        ]), "2026-11-21T10:00:00Z").unwrap().order;
        assert_eq!(approved.returns[0].status, ReturnStatus::Approved);
        assert!(approved
            .expire_return(&policy, at("2026-12-21T09:59:59Z"))
            .is_none());
        let expired = approved
            .expire_return(&policy, at("2026-12-21T10:00:00Z"))
            .expect("thirty days after its approval");
        assert_eq!(expired.order.returns[0].status, ReturnStatus::Expired);
        assert_eq!(
            expired
                .moves
                .iter()
                .map(|m| (
                    m.sku.as_str(),
                    m.location.as_str(),
                    m.quantity.get(),
                    m.movement
                ))
                .collect::<Vec<_>>(),
            [("TSHIRT-BLUE-M", "BER-1", 2, StockMovement::Release)]
        );
        let event = crate::events::order_event(Some(&approved), Some(&expired.order)).unwrap();
        assert_eq!(event.event_type, crate::events::EventType::ReturnExpired);
        assert_eq!(
            crate::events::recorded_agrees_with_legacy(Some(&approved), &expired.order),
            Ok(true)
        );
        assert!(expired
            .order
            .expire_return(&policy, at("2027-01-30T10:00:00Z"))
            .is_none());
        assert_eq!(
            expired.order.returnable_units(
                &Sku::parse("TSHIRT-RED-M").unwrap(),
                &policy,
                at("2026-12-10T10:00:00Z")
            ),
            2,
            "an expired return claims nothing"
        );
        // Staff may close it sooner; once received, or closed, it is not closed again.
        let closed = approved
            .close_return(
                &approved.returns[0].return_id,
                "admin staff-1",
                Some("kept by the customer".into()),
                at("2026-11-25T10:00:00Z"),
            )
            .unwrap();
        assert_eq!(closed.order.returns[0].status, ReturnStatus::Expired);
        assert_eq!(closed.moves, expired.moves, "its exchange released alike");
        assert_eq!(
            closed.order.returns[0]
                .closing
                .as_ref()
                .and_then(|c| c.note.as_deref()),
            Some("kept by the customer")
        );
        assert!(matches!(
            closed.order.close_return(
                &approved.returns[0].return_id,
                "admin staff-1",
                None,
                at("2026-11-26T10:00:00Z")
            ),
            Err(ReturnError::WrongStatus { .. })
        ));
        // One that arrived is not closed.
        let received = receive(
            &approved,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 2, "disposition": "RESTOCK"}]),
        )
        .unwrap()
        .order;
        assert!(received
            .expire_return(&policy, at("2027-01-30T10:00:00Z"))
            .is_none());
    }

    /// The days a return may take to arrive are between one and ten years' worth.
    #[test]
    fn the_policy_refuses_arrival_days_it_cannot_keep() {
        let bundled = include_str!("../../../return-policy.json");
        for (days, ok) in [("0", false), ("1", true), ("3650", true), ("3651", false)] {
            let json = bundled.replace("\"arrivalDays\": 30", &format!("\"arrivalDays\": {days}"));
            assert_eq!(ReturnPolicy::from_json(&json).is_ok(), ok, "{days}");
        }
    }

    /// Approval reserves the exchange before anything arrives: an exchange worth more than the
    /// policy approves at once waits for staff, however little the units sent back are worth.
    #[test]
    fn an_exchange_worth_more_than_the_policy_approves_at_once_waits_for_staff() {
        let order = delivered();
        let lamp = open(
            &order,
            json!([
                {"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "LAMP-FLOOR"}
            ]),
            "2026-11-21T10:00:00Z",
        );
        let lamp = lamp.unwrap();
        assert_eq!(lamp.order.returns[0].status, ReturnStatus::PendingApproval);
        assert!(
            lamp.moves.is_empty(),
            "nothing reserved before staff decide"
        );
        let blue = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-BLUE-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        assert_eq!(blue.order.returns[0].status, ReturnStatus::Approved);
    }

    /// The order's units may be elsewhere by the receipt (called off, or moved): the exchange
    /// is released and ships where its approval reserved it.
    #[test]
    fn an_exchange_is_released_and_ships_where_its_approval_reserved_it() {
        let order = delivered();
        let approved = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-BLUE-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        assert_eq!(approved.moves[0].location, "BER-1");
        assert_eq!(
            approved.order.returns[0].exchange_location.as_deref(),
            Some("BER-1")
        );
        let mut elsewhere = approved.order.clone();
        for line in elsewhere.lines.iter_mut() {
            for units in line.allocations.iter_mut() {
                units.location = "AMS-1".into();
            }
        }
        let received = receive(
            &elsewhere,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 1, "disposition": "RESTOCK"}]),
        )
        .unwrap();
        let release = received
            .moves
            .iter()
            .find(|m| m.movement == StockMovement::Release)
            .unwrap();
        assert_eq!(release.location, "BER-1");
        let replacement = received.created.expect("the exchange ships");
        assert_eq!(replacement.lines[0].allocations[0].location, "BER-1");
        assert_eq!(replacement.shipments[0].warehouse, "BER-1");
    }

    #[test]
    fn a_return_whose_receipt_would_not_fit_one_transaction_is_refused() {
        let lines: Vec<_> = (0..60)
            .map(|i| json!({"sku": format!("S-{i}"), "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": format!("X-{i}")}))
            .collect();
        let refused = open(&delivered(), json!(lines), "2026-11-21T10:00:00Z");
        assert_eq!(invalid_fields(refused), ["lines"]);
    }

    #[test]
    fn a_dearer_exchange_is_paid_for_before_it_ships_and_a_cheaper_one_refunds_the_difference() {
        let order = delivered();
        let price = order
            .lines
            .iter()
            .find(|l| l.sku.as_str() == "TSHIRT-RED-M")
            .unwrap()
            .unit_price
            .minor_units();
        // Two shirts back: one for a dearer one, the other line's units for a cheaper one.
        let approved = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-GOLD-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        assert_eq!(
            approved.order.returns[0].lines[0]
                .exchange
                .as_ref()
                .and_then(|e| e.unit_price)
                .map(|p| p.minor_units()),
            Some(3200)
        );
        let received = receive(
            &approved.order,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 2, "disposition": "RESTOCK"}]),
        )
        .unwrap();
        let replacement = received.created.expect("the exchange ships once paid");
        let due = 2 * (3200 - price);
        assert_eq!(replacement.totals.total.minor_units(), due);
        assert_eq!(replacement.totals.shipping.minor_units(), 0);
        assert_eq!(replacement.status, OrderStatus::Reserved);
        assert!(replacement.shipments.is_empty(), "not in the warehouse yet");
        assert_eq!(replacement.hold(), Some("AWAITING_PAYMENT"));
        assert_eq!(
            replacement.lines[0].allocations[0].quantity.get(),
            2,
            "its units stay reserved where approval put them"
        );
        assert_eq!(
            received.order.returns[0]
                .exchange_due
                .map(|d| d.minor_units()),
            Some(due)
        );
        assert!(received.order.refunds.is_empty());
        // Paid: it goes to the warehouse; unpaid it waits (the goods it stands for came back),
        // never expired by the sweep; staff may cancel it, releasing its units.
        let paid = replacement.authorized_for_test(at("2026-11-28T09:05:00Z"));
        assert!(paid
            .start_fulfillment("BER-1", at("2026-11-28T09:05:00Z"))
            .is_ok());
        let policy = crate::order::payments::PaymentPolicy::default();
        assert_eq!(replacement.payment_due_by(&policy), None);
        assert!(replacement
            .expire(&policy, at("2026-12-29T09:00:00Z"))
            .is_err());
        let cancelled = replacement
            .cancel("not wanted".into(), "admin", at("2026-11-29T09:00:00Z"))
            .unwrap();
        assert_eq!(
            cancelled
                .moves
                .iter()
                .map(|m| (m.sku.as_str(), m.quantity.get(), m.movement))
                .collect::<Vec<_>>(),
            [("TSHIRT-GOLD-M", 2, StockMovement::Release)]
        );

        let cheaper = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-PLAIN-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        let received = receive(
            &cheaper.order,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 1, "disposition": "RESTOCK"}]),
        )
        .unwrap();
        let replacement = received.created.expect("the exchange ships");
        assert_eq!(
            replacement.status,
            OrderStatus::Fulfilling,
            "nothing to pay"
        );
        assert_eq!(replacement.totals.total.minor_units(), 0);
        let refund = &received.order.refunds[0];
        assert_eq!(
            refund.amount.minor_units(),
            price - 1800,
            "the difference of the one unit that came back"
        );
        assert_eq!(received.order.returns[0].exchange_due, None);
    }

    /// A replacement's lines are priced at the difference it cost; what the customer paid for
    /// its units is on the original order, which refunds it when the replacement is called off
    /// or its units come back — each unit at the lower of the two prices, once.
    #[test]
    fn the_original_order_refunds_a_replacement_called_off_or_sent_back() {
        let order = delivered();
        let now = at("2026-11-29T09:00:00Z");
        // Dearer, unpaid, called off: both shirts' price back (the difference was never paid).
        let dearer = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-GOLD-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        let received = receive(
            &dearer.order,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 2, "disposition": "RESTOCK"}]),
        )
        .unwrap();
        let replacement = received.created.unwrap();
        let cancelled = replacement
            .cancel("not wanted".into(), "admin", now)
            .unwrap();
        let refunded = received
            .order
            .refund_called_off_exchange(&cancelled.order, now)
            .unwrap();
        let refund = refunded.refunds.last().unwrap();
        assert_eq!(refund.amount.minor_units(), 2 * 2500);
        assert_eq!(
            refund.return_id.as_ref(),
            Some(&dearer.order.returns[0].return_id)
        );
        assert_eq!(refunded.version, received.order.version + 1);
        assert_eq!(
            refunded.refund_called_off_exchange(&cancelled.order, now),
            None,
            "once"
        );
        // Another order's replacement is not this order's to refund.
        let mut stranger = cancelled.order.clone();
        stranger.replacement_for.as_mut().unwrap().order_id = OrderId::generate(now);
        assert_eq!(
            received.order.refund_called_off_exchange(&stranger, now),
            None
        );

        // Cheaper, shipped, delivered and sent back: 7.00 was refunded at the receipt, the
        // replacement's 18.00 now — the 25.00 paid, no more.
        let cheaper = open(&order, json!([
            {"sku": "TSHIRT-RED-M", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "TSHIRT-PLAIN-M"}
        ]), "2026-11-21T10:00:00Z").unwrap();
        let received = receive(
            &cheaper.order,
            json!([{"sku": "TSHIRT-RED-M", "quantity": 1, "disposition": "RESTOCK"}]),
        )
        .unwrap();
        assert_eq!(received.order.refunds[0].amount.minor_units(), 700);
        let replacement = received.created.unwrap();
        let shipped = replacement
            .pick(1, "picker", now)
            .and_then(|o| o.pack(1, crate::fixtures::parcel(), "packer", now))
            .and_then(|o| {
                o.ship(
                    1,
                    crate::fixtures::tracking(),
                    o.shipping.estimate,
                    "packer",
                    now,
                )
            })
            .unwrap();
        let crate::order::fulfillment::CarrierUpdate::Applied(arrived) = shipped
            .carrier_event(
                1,
                "d1",
                crate::order::fulfillment::CarrierEventKind::Delivered,
                None,
                now,
                now,
            )
            .unwrap()
        else {
            panic!("delivered")
        };
        let back = arrived
            .returned_for_test("TSHIRT-PLAIN-M", 1, "RESTOCK", now)
            .unwrap()
            .order;
        assert!(back.refunds.is_empty(), "the replacement cost nothing");
        let rma = &back.returns[0].return_id;
        let refunded = received
            .order
            .refund_returned_replacement(&back, rma, now)
            .unwrap();
        let refund = refunded.refunds.last().unwrap();
        assert_eq!(refund.amount.minor_units(), 1800);
        assert_eq!(refund.lines[0].sku.as_str(), "TSHIRT-RED-M");
        let paid_back: i64 = refunded
            .refunds
            .iter()
            .map(|r| r.amount.minor_units())
            .sum();
        assert_eq!(paid_back, 2500);
        assert_eq!(
            refunded.refund_returned_replacement(&back, rma, now),
            None,
            "once"
        );
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl Order {
    /// The order after `quantity` units of `sku` came back: a return asked for (as damaged),
    /// approved by staff if the default policy did not approve it at once, and received with
    /// `disposition` — the receipt's change. For tests that need a returned order without
    /// playing every step.
    pub fn returned_for_test(
        &self,
        sku: &str,
        quantity: u32,
        disposition: &str,
        at: DateTime<Utc>,
    ) -> Result<OrderChange, ReturnError> {
        use serde_json::json;
        let policy = ReturnPolicy::default_policy();
        let request = ReturnRequest::parse(
            &json!({"lines": [{"sku": sku, "quantity": quantity, "reason": "DAMAGED"}]}),
        )
        .map_err(ReturnError::Invalid)?;
        let key = IdempotencyKey::parse(format!("return-{}", self.returns.len() + 1))
            .map_err(|e| ReturnError::Invalid(ValidationErrors::one("key", e.to_string())))?;
        let requested = self.request_return(&request, key, &[], &policy, at)?.order;
        let rma = requested
            .returns
            .last()
            .expect("just asked for")
            .return_id
            .clone();
        let approved = if requested.returns.last().map(|r| r.status) == Some(ReturnStatus::Approved)
        {
            requested
        } else {
            requested
                .decide_return(&rma, true, "staff", None, at)?
                .order
        };
        let receipt = ReceiptRequest::parse(
            &json!({"lines": [{"sku": sku, "quantity": quantity, "disposition": disposition}]}),
        )
        .map_err(ReturnError::Invalid)?;
        approved.receive_return(
            &rma,
            &receipt,
            "dock",
            &policy,
            &ShippingPolicy::default_policy(),
            at,
        )
    }
}
