//! What callers ask of an order, validated: the commands the aggregate's operations take. The
//! request reader ([`crate::request`]) makes them of untrusted JSON, naming every bad field;
//! they live here, below it, so the aggregate never depends on the reader.

use serde::Serialize;

use crate::contact::{Address, Contact};
use crate::ids::Sku;
use crate::order::returns::{ReceivedLine, ReturnReason};
use crate::quantity::Quantity;
use crate::shipping::ShippingMethod;

/// One line as the client asked for it: a SKU and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestedLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A well-formed order request, not yet priced or checked against the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    pub lines: Vec<RequestedLine>,
    pub shipping_method: ShippingMethod,
    pub shipping_address: Address,
    pub contact: Contact,
    /// The store an `IN_STORE_PICKUP` order is collected at (absent: the first that hands
    /// orders over). Left out of the fingerprint when absent, so a request's fingerprint is what
    /// it was before stores could be chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_location: Option<String>,
    /// False lets what is in stock ship before backordered units arrive. Left out of the
    /// fingerprint when true (the default), as for `pickup_location`.
    #[serde(skip_serializing_if = "is_true")]
    pub ship_complete: bool,
}

fn is_true(value: &bool) -> bool {
    *value
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

/// A validated `POST /returns/{id}/receive` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRequest {
    pub lines: Vec<ReceivedLine>,
    pub note: Option<String>,
}

/// A validated `POST /orders/{id}/cancel-units` body: some units of some lines, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitCancelRequest {
    pub lines: Vec<RequestedLine>,
    pub reason: String,
}

/// A validated `POST /orders/{id}/edits` body: where or how the order ships now, what it gains,
/// and why. At least one change is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEditRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_method: Option<ShippingMethod>,
    /// Units to add: a SKU the order has (more of it) or a new line, one entry per SKU.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_lines: Vec<RequestedLine>,
    /// Whether it leaves whole from now on: false sends what is in stock ahead of backordered
    /// units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_complete: Option<bool>,
    pub reason: String,
}
