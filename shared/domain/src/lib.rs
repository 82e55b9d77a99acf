//! # oms-domain: the order management domain
//!
//! Everything the system knows about orders, stock, prices and events, and nothing about AWS,
//! Lambda or HTTP (`cargo tree -p oms-domain` shows no `aws-`, `lambda` or `http` crate). The
//! adapters crate maps these types onto DynamoDB, SNS and API Gateway; the functions wire the two.
//!
//! ## Layout
//! - [`ids`], [`money`], [`quantity`], [`contact`]: validated value types. Each has private fields
//!   and a constructor that returns `Result`, so nothing downstream re-checks ("parse, don't
//!   validate"). They deserialize through the same constructors, so a stored value is re-validated
//!   when it is read back.
//! - [`validation`]: field errors collected across a whole request, so a client hears of every bad
//!   field at once.
//! - [`shipping`]: shipping methods and the business's rate table (zones, rates per weight).
//! - [`stock`]: products and their stock counters, with the rules that keep them exact;
//!   [`purchase`]: purchase orders, the stock on its way from suppliers; [`replenishment`]:
//!   each SKU's demand and the health read from it (days of cover, reorder point, overstock).
//! - [`order`]: the order aggregate — its state machine and timeline, and as child modules
//!   everything that lives inside the order's item: the shipment ([`order::fulfillment`]),
//!   cancellation (of the order or some units), edits (where and how it ships, items added,
//!   the money following), returns with their policy and exchanges at a price, refunds, and
//!   payments (the PSP's ledger and the status derived from it), the commands it takes ([`order::commands`]) and what each change
//!   did ([`order::history`]). One function records every change, with what happened.
//! - [`request`]: the one reader that turns every untrusted request body into a validated
//!   command, naming each bad field by its path. The layers point one way — values, then the
//!   aggregate and its commands, then the reader, then the application — and a test
//!   (`tests/layers.rs`) keeps the top-level modules free of circles.
//! - [`location`]: the warehouses and stores, as data (`locations.json`), the shipping
//!   policy's warehouse the default; [`routing`]: the planner that decides which location sends
//!   which units (the fewest shipments, then the cheapest, then location priority), pure. Both
//!   are the ground the stock in several places is built on; nothing reads them yet.
//! - [`events`]: each recorded change mapped to its CloudEvents (and the comparison of images
//!   for items written before changes were recorded).
//! - [`notifications`]: what customers are told, per channel, from template files.
//! - [`ports`]: the narrow repository traits the application needs, and their errors.
//! - [`app`]: the operations the functions call (place an order, reserve it, administer stock,
//!   record a PSP's payment event), and the scheduled sweep ([`app::sweep`]) that expires unpaid
//!   orders, re-drives stuck ones and watches authorization deadlines.
//! - `fixtures` (feature `fixtures`, tests only): the JSON files in `events/` and orders made
//!   from them by the domain's own operations, for the functions' handler tests.
//! - [`memory`]: an in-memory implementation of every port that honours the same conditions as the
//!   DynamoDB one, for handler and application tests.

pub mod app;
pub mod backorder;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod contact;
pub mod events;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ids;
pub mod location;
pub mod memory;
pub mod money;
pub mod notifications;
pub mod order;
pub mod ports;
pub mod purchase;
pub mod quantity;
pub mod replenishment;
pub mod request;
pub mod routing;
pub mod shipping;
pub mod stock;
pub mod validation;

/// The largest number of lines one order may have. Reserving an order writes every line's stock
/// item and the order itself in one DynamoDB transaction, which holds at most 100 items.
pub const MAX_ORDER_LINES: usize = 99;

/// The most items one DynamoDB transaction may write. Every change that moves stock is one
/// transaction: its order, any order it creates, and one item per SKU it moves.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
