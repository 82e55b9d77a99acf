//! The way back: cancellations, returns (RMAs), and the refunds and replacements they lead to.
//!
//! ```text
//! cancel:  PENDING | RESERVED | FULFILLING (not yet packed) ──► CANCELLED   (reserved units released)
//! return:  PENDING_APPROVAL ──approve──► APPROVED ──receive──► RECEIVED
//!                 └──────reject──► REJECTED        (auto-approved by the policy's rules: straight to APPROVED)
//! ```
//! Like the shipment, cancellations and returns live inside the order item: every step is an
//! order transition conditioned on the order's version, so a cancel racing the reservation, or two
//! staff approving one return, cannot both win. Each step returns the stock moves that must be
//! written with it ([`crate::ports::OrderWrite`]): a cancel releases what was reserved; approving an
//! exchange reserves the replacement; receiving restocks the units marked `RESTOCK` and hands the
//! replacement to the warehouse as a new order. Refunds owed are recorded on the order and announced
//! as `oms.refund.requested` events for the payment system.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contact::Address;
use crate::fulfillment::{Fulfillment, FulfillmentStatus, FulfillmentStep};
use crate::ids::{IdempotencyKey, OrderId, ReturnId, Sku};
use crate::money::Money;
use crate::order::{Order, OrderLine, OrderStatus, Shipping, TimelineEntry, Totals};
use crate::quantity::Quantity;
use crate::shipping::ShippingPolicy;
use crate::stock::{Product, StockMove, StockMovement};
use crate::validation::ValidationErrors;

/// Why an order was called off, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    pub reason: String,
    /// `customer` or `admin`.
    pub by: String,
    pub at: DateTime<Utc>,
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
}

impl ReturnStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PendingApproval => "PENDING_APPROVAL",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Received => "RECEIVED",
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
}

impl Return {
    /// Units of `sku` this return holds against the delivered quantity: announced until received,
    /// then what arrived; nothing once rejected.
    fn claims(&self, sku: &Sku) -> u32 {
        match (&self.status, &self.receipt) {
            (ReturnStatus::Rejected, _) => 0,
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

    /// The reservations an approved exchange holds: one move per exchange line.
    fn exchange_moves(&self, movement: StockMovement) -> Vec<StockMove> {
        self.lines
            .iter()
            .filter_map(|l| {
                l.exchange.as_ref().map(|e| StockMove {
                    sku: e.sku.clone(),
                    quantity: l.quantity,
                    movement,
                })
            })
            .collect()
    }
}

/// The order a replacement ships as, and the return it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementOf {
    pub order_id: OrderId,
    pub return_id: ReturnId,
}

/// When the original shipping charge is refunded with a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShippingRefund {
    Never,
    /// When any returned line was the business's fault (damaged, wrong item, not as described).
    SellersFault,
    Always,
}

/// Which returns are approved at once; the others wait for staff.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoApproval {
    /// Every line's reason must be one of these.
    pub reasons: Vec<ReturnReason>,
    /// The value of the returned units (minor units of the store's currency) must not exceed it.
    pub max_value: i64,
    /// Whether a return with an exchange may be approved without staff.
    pub exchanges: bool,
}

/// The business's return rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnPolicy {
    /// Days after delivery a line may still be returned.
    pub window_days: u32,
    /// Windows for particular SKUs (0: final sale, never returnable).
    #[serde(default)]
    pub window_days_by_sku: BTreeMap<Sku, u32>,
    pub auto_approval: AutoApproval,
    pub shipping_refund: ShippingRefund,
    /// Where returns are sent: printed on the label.
    pub return_address: Address,
}

impl ReturnPolicy {
    /// The default rules shipped with the system.
    pub fn default_policy() -> Self {
        Self::from_json(include_str!("../return-policy.json"))
            .expect("the bundled return policy is valid; a unit test proves it")
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn window_days(&self, sku: &Sku) -> u32 {
        self.window_days_by_sku
            .get(sku)
            .copied()
            .unwrap_or(self.window_days)
    }

    fn approves_at_once(&self, lines: &[ReturnLine]) -> bool {
        let rules = &self.auto_approval;
        let value: i64 = lines
            .iter()
            .map(|l| l.unit_price.minor_units() * i64::from(l.quantity.get()))
            .sum();
        lines.iter().all(|l| rules.reasons.contains(&l.reason))
            && value <= rules.max_value
            && (rules.exchanges || lines.iter().all(|l| l.exchange.is_none()))
    }
}

/// One line of a return request, as the customer sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedReturnLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub reason: ReturnReason,
    pub comment: Option<String>,
    pub exchange_sku: Option<Sku>,
}

/// A validated `POST /orders/{id}/returns` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnRequest {
    pub lines: Vec<RequestedReturnLine>,
}

fn string_field<T>(
    errors: &mut ValidationErrors,
    object: &serde_json::Map<String, serde_json::Value>,
    field: String,
    name: &str,
    required: bool,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let path = format!("{field}.{name}");
    match object.get(name) {
        None | Some(serde_json::Value::Null) => {
            if required {
                errors.add(path, "is required");
            }
            None
        }
        Some(serde_json::Value::String(s)) => errors.check(path, parse(s)),
        Some(_) => {
            errors.add(path, "must be a string");
            None
        }
    }
}

/// The `lines` array of a body, each an object, or the errors that say why not.
fn line_objects<'a>(
    errors: &mut ValidationErrors,
    body: &'a serde_json::Value,
    known: &[&str],
) -> Vec<(String, &'a serde_json::Map<String, serde_json::Value>)> {
    let Some(items) = body.get("lines").and_then(|l| l.as_array()) else {
        errors.add("lines", "is required and must be an array");
        return Vec::new();
    };
    if items.is_empty() || items.len() > crate::MAX_ORDER_LINES {
        errors.add(
            "lines",
            format!("must have 1 to {} lines", crate::MAX_ORDER_LINES),
        );
        return Vec::new();
    }
    let mut objects = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let field = format!("lines[{index}]");
        match item.as_object() {
            Some(object) => {
                for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
                    errors.add(format!("{field}.{key}"), "is not a known field");
                }
                objects.push((field, object));
            }
            None => errors.add(field, "must be an object"),
        }
    }
    objects
}

fn quantity_field(
    errors: &mut ValidationErrors,
    object: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Option<Quantity> {
    match object.get("quantity") {
        None | Some(serde_json::Value::Null) => {
            errors.add(format!("{field}.quantity"), "is required");
            None
        }
        Some(value) => errors.check(format!("{field}.quantity"), Quantity::from_json(value)),
    }
}

fn reasons_list() -> String {
    ReturnReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ReturnRequest {
    /// Parses an untrusted body, naming every bad field.
    pub fn parse(body: &serde_json::Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if let Some(object) = body.as_object() {
            for key in object.keys().filter(|k| k.as_str() != "lines") {
                errors.add(key.as_str(), "is not a known field");
            }
        }
        let mut lines: Vec<RequestedReturnLine> = Vec::new();
        let objects = line_objects(
            &mut errors,
            body,
            &["sku", "quantity", "reason", "comment", "exchangeSku"],
        );
        for (field, object) in objects {
            let sku = string_field(&mut errors, object, field.clone(), "sku", true, |s| {
                Sku::parse(s).map_err(|e| e.to_string())
            });
            let quantity = quantity_field(&mut errors, object, &field);
            let reason = string_field(&mut errors, object, field.clone(), "reason", true, |s| {
                ReturnReason::parse(s).ok_or_else(|| format!("must be one of {}", reasons_list()))
            });
            let comment = string_field(&mut errors, object, field.clone(), "comment", false, |s| {
                let s = s.trim();
                if s.chars().count() > 500 {
                    Err("must be at most 500 characters".into())
                } else {
                    Ok(s.to_owned())
                }
            })
            .filter(|c| !c.is_empty());
            let exchange_sku = string_field(
                &mut errors,
                object,
                field.clone(),
                "exchangeSku",
                false,
                |s| Sku::parse(s).map_err(|e| e.to_string()),
            );
            if let (Some(sku), Some(quantity), Some(reason)) = (sku, quantity, reason) {
                if lines.iter().any(|l| l.sku == sku) {
                    errors.add(
                        format!("{field}.sku"),
                        format!("'{sku}' appears on more than one line"),
                    );
                    continue;
                }
                lines.push(RequestedReturnLine {
                    sku,
                    quantity,
                    reason,
                    comment,
                    exchange_sku,
                });
            }
        }
        errors.into_result(|| ReturnRequest { lines })
    }

    /// A digest of the request's meaning, so a retry under the same `Idempotency-Key` is
    /// recognised however its JSON was spaced or ordered.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a return request always serializes");
        hex::encode(Sha256::digest(canonical))
    }
}

/// A validated `POST /returns/{id}/receive` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRequest {
    pub lines: Vec<ReceivedLine>,
    pub note: Option<String>,
}

impl ReceiptRequest {
    /// Parses an untrusted body, naming every bad field.
    pub fn parse(body: &serde_json::Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut note = None;
        if let Some(object) = body.as_object() {
            for key in object
                .keys()
                .filter(|k| !["lines", "note"].contains(&k.as_str()))
            {
                errors.add(key.as_str(), "is not a known field");
            }
            note = match object.get("note") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) if s.chars().count() <= 500 => {
                    Some(s.trim().to_owned())
                }
                Some(_) => {
                    errors.add("note", "must be a string of at most 500 characters");
                    None
                }
            };
        }
        let mut lines = Vec::new();
        for (field, object) in line_objects(&mut errors, body, &["sku", "quantity", "disposition"])
        {
            let sku = string_field(&mut errors, object, field.clone(), "sku", true, |s| {
                Sku::parse(s).map_err(|e| e.to_string())
            });
            let quantity = quantity_field(&mut errors, object, &field);
            let disposition = string_field(
                &mut errors,
                object,
                field.clone(),
                "disposition",
                true,
                |s| {
                    Disposition::parse(s)
                        .ok_or_else(|| "must be RESTOCK, REFURBISH, RECYCLE or DISCARD".to_owned())
                },
            );
            if let (Some(sku), Some(quantity), Some(disposition)) = (sku, quantity, disposition) {
                lines.push(ReceivedLine {
                    sku,
                    quantity,
                    disposition,
                });
            }
        }
        errors.into_result(|| ReceiptRequest { lines, note })
    }
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

/// An order change and the stock it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub order: Order,
    pub moves: Vec<StockMove>,
    /// A new order written with the change: the replacement of an exchange.
    pub created: Option<Order>,
}

impl Order {
    /// A version of the order with a timeline entry (status unchanged) and the version bumped.
    fn note_step(&self, note: String, now: DateTime<Utc>) -> Order {
        let mut next = self.clone();
        next.timeline.push(TimelineEntry {
            status: next.status,
            at: now,
            note: Some(note),
        });
        next.version += 1;
        next.updated_at = now;
        next
    }

    fn next_refund_id(&self) -> String {
        format!("{}-REFUND-{}", self.id, self.refunds.len() + 1)
    }

    /// What has been refunded so far.
    fn refunded(&self) -> (i64, bool) {
        let total = self.refunds.iter().map(|r| r.amount.minor_units()).sum();
        let shipping = self.refunds.iter().any(|r| r.shipping.minor_units() > 0);
        (total, shipping)
    }

    /// Calls the order off before it is packed, releasing what it reserved, and records the
    /// refund of everything paid.
    pub fn cancel(
        &self,
        reason: String,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Step, CancelError> {
        let releases = match self.status {
            OrderStatus::Pending => false,
            OrderStatus::Reserved => true,
            OrderStatus::Fulfilling => {
                let status = self.fulfillment.as_ref().map(|f| f.status);
                if !matches!(
                    status,
                    Some(FulfillmentStatus::AwaitingPick | FulfillmentStatus::Picked)
                ) {
                    return Err(CancelError::Packed);
                }
                true
            }
            OrderStatus::Shipped | OrderStatus::Delivered => return Err(CancelError::Shipped),
            status @ (OrderStatus::Rejected | OrderStatus::Cancelled) => {
                return Err(CancelError::Final(status.as_str()))
            }
        };
        let mut next = self
            .transition(
                OrderStatus::Cancelled,
                &[
                    OrderStatus::Pending,
                    OrderStatus::Reserved,
                    OrderStatus::Fulfilling,
                ],
                now,
                Some(format!("cancelled by {by}: {reason}")),
            )
            .map_err(|e| CancelError::Final(e.from.as_str()))?;
        next.cancellation = Some(Cancellation {
            reason,
            by: by.to_owned(),
            at: now,
        });
        if self.totals.total.minor_units() > 0 {
            next.refunds.push(Refund {
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
            });
        }
        let moves = if releases {
            self.stock_moves(StockMovement::Release)
        } else {
            Vec::new()
        };
        Ok(Step {
            order: next,
            moves,
            created: None,
        })
    }

    /// When the oldest return still waiting for staff was requested, if one is.
    pub fn oldest_pending_return(&self) -> Option<DateTime<Utc>> {
        self.returns
            .iter()
            .filter(|r| r.status == ReturnStatus::PendingApproval)
            .map(|r| r.requested_at)
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
    pub fn request_return(
        &self,
        request: &ReturnRequest,
        key: IdempotencyKey,
        catalog: &[Product],
        policy: &ReturnPolicy,
        now: DateTime<Utc>,
    ) -> Result<Step, ReturnError> {
        let delivered_at = match (self.status, self.fulfillment.as_ref()) {
            (
                OrderStatus::Delivered,
                Some(Fulfillment {
                    delivered_at: Some(at),
                    ..
                }),
            ) => *at,
            (status, _) => return Err(ReturnError::NotDelivered(status.as_str())),
        };
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
            let window = policy.window_days(&wanted.sku);
            let closes = delivered_at + Days::new(u64::from(window));
            if now > closes {
                errors.add(
                    format!("{field}.sku"),
                    format!(
                        "the return window of {window} days for '{}' closed on {}",
                        wanted.sku,
                        closes.format("%Y-%m-%d")
                    ),
                );
                continue;
            }
            let claimed: u32 = self.returns.iter().map(|r| r.claims(&wanted.sku)).sum();
            let returnable = line.quantity.get().saturating_sub(claimed);
            if wanted.quantity.get() > returnable {
                errors.add(
                    format!("{field}.quantity"),
                    format!(
                        "{} delivered, {claimed} already being returned: at most {returnable} can be returned",
                        line.quantity.get()
                    ),
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
                    Some(product) if product.unit_price != line.unit_price => {
                        errors.add(
                            format!("{field}.exchangeSku"),
                            format!(
                                "'{sku}' costs {} and '{}' cost {}: exchanges are for items of the same price",
                                product.unit_price,
                                line.sku,
                                line.unit_price
                            ),
                        );
                        continue;
                    }
                    Some(product) => Some(Exchange {
                        sku: product.sku.clone(),
                        name: product.name.clone(),
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
            moves = rma.exchange_moves(StockMovement::Reserve);
            note.push_str(" and approved");
        }
        let mut next = self.note_step(note, now);
        next.returns.push(rma);
        Ok(Step {
            order: next,
            moves,
            created: None,
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
    ) -> Result<Step, ReturnError> {
        let index = self.return_index(id)?;
        self.expect_return_status(index, ReturnStatus::PendingApproval)?;
        let verb = if approved { "approved" } else { "rejected" };
        let mut next = self.note_step(format!("return {id} {verb} by {by}"), now);
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
        let moves = if approved {
            rma.exchange_moves(StockMovement::Reserve)
        } else {
            Vec::new()
        };
        Ok(Step {
            order: next,
            moves,
            created: None,
        })
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
    ) -> Result<Step, ReturnError> {
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

        let mut moves: Vec<StockMove> = receipt
            .lines
            .iter()
            .filter(|l| l.disposition == Disposition::Restock)
            .map(|l| StockMove {
                sku: l.sku.clone(),
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
                    if let Ok(quantity) = Quantity::new(short) {
                        moves.push(StockMove {
                            sku: exchange.sku.clone(),
                            quantity,
                            movement: StockMovement::Release,
                        });
                    }
                    if let Ok(quantity) = Quantity::new(got) {
                        replacement_lines.push(OrderLine {
                            sku: exchange.sku.clone(),
                            name: exchange.name.clone(),
                            quantity,
                            unit_price: Money::zero(currency),
                            line_total: Money::zero(currency),
                            unit_weight_grams: self
                                .lines
                                .iter()
                                .find(|l| l.sku == line.sku)
                                .map_or(0, |l| l.unit_weight_grams),
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
        let mut next = self.note_step(note, now);

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
        let left = self.totals.total.minor_units() - refunded;
        let amount = (items + shipping_amount).min(left);
        if amount > 0 {
            let refund_id = self.next_refund_id();
            next.returns[index].refund_id = Some(refund_id.clone());
            next.refunds.push(Refund {
                refund_id,
                reason: RefundReason::Return,
                return_id: Some(id.clone()),
                lines: refund_lines,
                shipping: Money::new(shipping_amount.min(amount), currency)
                    .map_err(|e| ValidationErrors::one("lines", e.to_string()))?,
                amount: Money::new(amount, currency)
                    .map_err(|e| ValidationErrors::one("lines", e.to_string()))?,
                requested_at: now,
            });
        }

        let created = if replacement_lines.is_empty() {
            None
        } else {
            let replacement = self.replacement(id, replacement_lines, shipping, now);
            next.returns[index].replacement_order_id = Some(replacement.id.clone());
            Some(replacement)
        };
        let rma = &mut next.returns[index];
        rma.status = ReturnStatus::Received;
        rma.receipt = Some(Receipt {
            lines: receipt.lines.clone(),
            missing,
            by: by.to_owned(),
            at: now,
            note: receipt.note.clone(),
        });
        Ok(Step {
            order: next,
            moves,
            created,
        })
    }

    /// The order that ships an exchange: free of charge, to the original address, straight to
    /// the warehouse (its units were reserved when the return was approved).
    fn replacement(
        &self,
        id: &ReturnId,
        lines: Vec<OrderLine>,
        policy: &ShippingPolicy,
        now: DateTime<Utc>,
    ) -> Order {
        let currency = self.totals.total.currency();
        let zero = Money::zero(currency);
        let warehouse = policy.warehouse().to_owned();
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
        Order {
            id: OrderId::generate(now),
            customer_id: self.customer_id.clone(),
            status: OrderStatus::Fulfilling,
            lines,
            shipping: Shipping {
                method: self.shipping.method,
                address: self.shipping.address.clone(),
                price: zero,
                estimate,
            },
            contact: self.contact.clone(),
            totals: Totals {
                subtotal: zero,
                shipping: zero,
                total: zero,
            },
            shortages: Vec::new(),
            timeline: vec![TimelineEntry {
                status: OrderStatus::Fulfilling,
                at: now,
                note: Some(note),
            }],
            fulfillment: Some(Fulfillment {
                warehouse,
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
                    note: Some(format!("replacement for {id}")),
                }],
                carrier_event_ids: Vec::new(),
            }),
            cancellation: None,
            returns: Vec::new(),
            refunds: Vec::new(),
            replacement_for: Some(ReplacementOf {
                order_id: self.id.clone(),
                return_id: id.clone(),
            }),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}
