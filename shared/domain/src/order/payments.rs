//! Money in the order's life: what the payment service provider (PSP) says, and what the order
//! asks of it.
//!
//! The card is taken by the PSP; the order keeps a **ledger** of the PSP's transaction events —
//! authorization, capture, void, refund, each succeeded or failed — recorded once per PSP event id
//! and in any order (a capture may arrive before its authorization). The [`PaymentStatus`] is
//! derived from the ledger, never set: it is the same whatever order the events came in. An
//! event whose amount or currency is not what the order expects is recorded with the mismatch
//! and counts for nothing; it puts the order in front of staff ([`Order::payment_attention`]).
//!
//! What the order asks of the PSP are [`PspRequest`]s with ids the PSP deduplicates on: a
//! capture when the order ships (or as soon as it is authorized, if the business captures at
//! once), a void when an authorized order is called off, and — through
//! [`crate::order::refunds`] — a refund when a paid one is. They are added by the change that
//! makes them due ([`Order::request_what_is_due`]), so the stream turns them into events exactly
//! once.
//!
//! ```text
//!   PENDING ──► AUTHORIZED ──► PAID ──► PARTIALLY_REFUNDED ──► REFUNDED
//!     │  ▲          │
//!     ▼  │          └──► VOIDED
//!   FAILED     (PENDING or FAILED, not authorized within the window) ──► EXPIRED
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::order::cancellation::Cancellation;
use crate::order::fulfillment::Fulfillment;
use crate::order::history::OrderEvent;
use crate::order::refunds::RefundReason;
use crate::order::{Order, OrderChange, OrderStatus};
use crate::stock::StockMovement;

/// The most ledger entries one order keeps: what the order item holds is bounded (an item holds
/// at most 400 KB), and a real order sees a handful.
pub const MAX_LEDGER_ENTRIES: usize = 50;

/// The most declined authorizations one order's ledger records: a customer retrying a card
/// again and again (or a script doing so with the payment's client secret) is told each time
/// by the PSP's own page, and the ledger keeps room for the events that move money.
pub const MAX_DECLINES_RECORDED: usize = 10;

/// What a PSP transaction event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentEventKind {
    #[serde(rename = "authorization.succeeded")]
    AuthorizationSucceeded,
    #[serde(rename = "authorization.failed")]
    AuthorizationFailed,
    #[serde(rename = "capture.succeeded")]
    CaptureSucceeded,
    #[serde(rename = "capture.failed")]
    CaptureFailed,
    #[serde(rename = "void.succeeded")]
    VoidSucceeded,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    #[serde(rename = "refund.failed")]
    RefundFailed,
}

impl PaymentEventKind {
    pub const ALL: [PaymentEventKind; 7] = [
        Self::AuthorizationSucceeded,
        Self::AuthorizationFailed,
        Self::CaptureSucceeded,
        Self::CaptureFailed,
        Self::VoidSucceeded,
        Self::RefundSucceeded,
        Self::RefundFailed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AuthorizationSucceeded => "authorization.succeeded",
            Self::AuthorizationFailed => "authorization.failed",
            Self::CaptureSucceeded => "capture.succeeded",
            Self::CaptureFailed => "capture.failed",
            Self::VoidSucceeded => "void.succeeded",
            Self::RefundSucceeded => "refund.succeeded",
            Self::RefundFailed => "refund.failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// Refund events name the refund they settle.
    pub fn is_refund(&self) -> bool {
        matches!(self, Self::RefundSucceeded | Self::RefundFailed)
    }
}

/// One PSP transaction event, as its signed webhook delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The PSP's own id for the event: a repeat of it changes nothing.
    pub event_id: String,
    pub kind: PaymentEventKind,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    /// The PSP's id of the payment, which a capture or void request names.
    pub psp_reference: Option<String>,
    /// The refund (`<order id>-REFUND-<n>`) a refund event settles.
    pub refund_id: Option<String>,
    /// The capture or void asked of the PSP (`<order id>-CAPTURE-<n>`, its idempotency key)
    /// this event answers, where the PSP echoes it.
    pub request_id: Option<String>,
    /// Why a failure failed, as the PSP put it.
    pub reason: Option<String>,
}

/// One recorded PSP event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub event_id: String,
    pub kind: PaymentEventKind,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psp_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The request it answers, where the PSP named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why this entry counts for nothing: its amount, currency or refund is not the order's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

impl LedgerEntry {
    fn counts(&self, kind: PaymentEventKind) -> bool {
        self.kind == kind && self.mismatch.is_none()
    }
}

/// What the order asks of the PSP (refunds are [`crate::order::refunds::Refund`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PspRequestKind {
    Capture,
    Void,
}

impl PspRequestKind {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Capture => "CAPTURE",
            Self::Void => "VOID",
        }
    }
}

/// A capture or void asked of the PSP, announced once as an event whose id is `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PspRequest {
    /// `<order id>-CAPTURE-<n>` or `<order id>-VOID-<n>`: the PSP's idempotency key.
    pub request_id: String,
    pub kind: PspRequestKind,
    pub amount: Money,
    /// The PSP's payment the request is about, from the authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psp_reference: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// For a capture of an order that leaves as several parcels: the shipment (its number)
    /// whose share it takes. A capture without one takes the whole amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<u32>,
    /// For a parcel's share: the shares of later parcels follow under the same payment, so the
    /// PSP must keep the rest of the hold for them. False for the last share and a whole
    /// capture: what is not taken may be released.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more_follow: bool,
}

/// The order's payment: the PSP's events and what was asked of the PSP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<LedgerEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<PspRequest>,
    /// When the sweep found the authorization near the PSP's capture deadline, uncaptured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_flagged_at: Option<DateTime<Utc>>,
    /// When the sweep found a capture asked of the PSP and not confirmed within the policy's
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_flagged_at: Option<DateTime<Utc>>,
    /// Staff's acknowledgments of what the money needed: each closes every reason open when it
    /// was made (a mismatch staff settled at the PSP, a second payment they refunded there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledgments: Vec<Acknowledgment>,
}

/// Staff saying they dealt with what the order's money needed, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgment {
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
    /// The reasons it closed, each as staff saw it (its reason and since when): a reason that
    /// is not among them — one that arose later, or one whose time changed — stays open.
    #[serde(default)]
    pub covered: Vec<(AttentionReason, DateTime<Utc>)>,
}

/// One payment at the PSP — one `pspReference` — as the ledger tells it. A customer whose hold
/// was released, or whose card was declined, pays again under a new reference, so an order may
/// see several; the money is wherever the ledger says it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PspPayment<'a> {
    /// The PSP's id of the payment (events that name none are one payment of their own).
    pub reference: Option<&'a str>,
    /// When the PSP first held or took money under it (its own time), if it has.
    pub since: Option<DateTime<Utc>>,
    /// When that was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The PSP took money under it.
    pub captured: bool,
    /// How much it took, in minor units: every capture that succeeded under it.
    pub captured_minor: i64,
    /// How much it held, in minor units: its authorization's amount.
    pub authorized_minor: i64,
    /// The PSP released the hold: its latest word on the payment (by its own time) is a void.
    pub released: bool,
    /// A capture under it that was asked as the last (no more follow) succeeded: the PSP
    /// released whatever it did not take (less than was held, after units were called off).
    pub finally_captured: bool,
}

impl PspPayment<'_> {
    /// Money is held on the customer's card under it, not yet taken: all of it, or the rest
    /// after the captures of the parcels that left.
    pub fn holds(&self) -> bool {
        self.since.is_some()
            && !self.released
            && (!self.captured
                || (self.captured_minor < self.authorized_minor && !self.finally_captured))
    }
}

/// Where the order's money is, derived from the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Nothing from the PSP yet.
    #[default]
    Pending,
    /// The amount is held on the customer's card, not yet taken.
    Authorized,
    /// Part of the amount was taken (the parcels that left), the rest is held.
    PartiallyPaid,
    /// The amount was taken (or the order costs nothing).
    Paid,
    PartiallyRefunded,
    Refunded,
    /// The hold was released without taking anything.
    Voided,
    /// The authorization was declined; the customer may pay again.
    Failed,
    /// Never authorized within the policy's window: the order was cancelled and its stock freed.
    Expired,
}

impl PaymentStatus {
    pub const ALL: [Self; 9] = [
        Self::Pending,
        Self::Authorized,
        Self::PartiallyPaid,
        Self::Paid,
        Self::PartiallyRefunded,
        Self::Refunded,
        Self::Voided,
        Self::Failed,
        Self::Expired,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Authorized => "AUTHORIZED",
            Self::PartiallyPaid => "PARTIALLY_PAID",
            Self::Paid => "PAID",
            Self::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Self::Refunded => "REFUNDED",
            Self::Voided => "VOIDED",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Whether the warehouse may work on the order: the money is held or taken.
    pub fn allows_fulfillment(&self) -> bool {
        // Partly refunded before it ships: units called off were refunded, the rest is paid.
        matches!(
            self,
            Self::Authorized | Self::PartiallyPaid | Self::Paid | Self::PartiallyRefunded
        )
    }

    /// Whether nothing is held or taken: not paid yet, declined, or the hold released.
    pub fn is_unpaid(&self) -> bool {
        matches!(self, Self::Pending | Self::Failed | Self::Voided)
    }
}

/// Where a refund stands, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundState {
    /// Owed, but the money it gives back was not yet taken: asked of the PSP once the capture
    /// is confirmed.
    AwaitingCapture,
    /// Asked of the PSP; no answer yet.
    Requested,
    /// The PSP paid it out.
    Issued,
    /// The PSP could not pay it out: staff must act.
    Failed,
}

/// When the business takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureMode {
    /// Hold the amount at checkout, take it when the parcel ships (the default: nothing is
    /// taken for goods that never leave).
    OnShipment,
    /// Take the amount as soon as it is authorized.
    Immediately,
}

/// The business's payment rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentPolicy {
    pub capture: CaptureMode,
    /// How long an order may wait for its authorization before it expires.
    pub authorization_window: Duration,
    /// How long the PSP keeps an authorization capturable (seven days is common).
    pub authorization_lifetime: Duration,
    /// How long before that deadline an uncaptured authorization is put in front of staff.
    pub deadline_margin: Duration,
    /// How long a capture asked of the PSP may go unconfirmed before it is put in front of staff.
    pub capture_confirmation: Duration,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        PaymentPolicy {
            capture: CaptureMode::OnShipment,
            authorization_window: Duration::minutes(30),
            authorization_lifetime: Duration::days(7),
            deadline_margin: Duration::days(1),
            capture_confirmation: Duration::hours(1),
        }
    }
}

/// Why the order needs a person for its money, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAttention {
    pub reason: AttentionReason,
    pub since: DateTime<Utc>,
    pub detail: String,
}

/// What staff must look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttentionReason {
    /// The PSP reported an amount, currency or refund the order does not have.
    AmountMismatch,
    /// A refund the PSP could not pay out.
    RefundFailed,
    /// A capture the PSP refused.
    CaptureFailed,
    /// The authorization nears the PSP's capture deadline and nothing was captured.
    AuthorizationExpiring,
    /// A second payment was authorized or captured while another is held: one must be voided
    /// or refunded at the PSP.
    SecondPayment,
    /// The PSP released the hold of an order that is still to ship: it waits for a new payment.
    PaymentVoided,
    /// A capture was asked of the PSP and not confirmed within the policy's time: the goods
    /// left, the money may not have.
    CaptureUnconfirmed,
}

/// The result of recording a PSP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentUpdate {
    Recorded(Box<Order>),
    /// This PSP event id is recorded already: acknowledged, nothing changes.
    Duplicate,
}

/// A PSP event the order cannot take. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the order has recorded {MAX_LEDGER_ENTRIES} payment events, the most it keeps")]
    LedgerFull,
}

/// An acknowledgment with nothing to acknowledge. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcknowledgeError {
    #[error("the order's money needs no one now")]
    NothingOpen,
}

/// An expiry the order's state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpireError {
    #[error("the order is {0}: only a pending or reserved order expires")]
    NotOpen(&'static str),
    #[error("the order's payment is {0}")]
    Paid(&'static str),
    #[error("the order's authorization window has not passed")]
    NotYet,
    #[error("an exchange's replacement waits for its payment; staff may cancel it")]
    Replacement,
}

impl Payment {
    /// Nothing recorded and nothing asked: the stored order leaves the attribute out.
    pub fn is_empty(&self) -> bool {
        self.ledger.is_empty()
            && self.requests.is_empty()
            && self.deadline_flagged_at.is_none()
            && self.capture_flagged_at.is_none()
    }

    fn any(&self, kind: PaymentEventKind) -> bool {
        self.ledger.iter().any(|e| e.counts(kind))
    }

    /// The order's payments at the PSP, the first to hold money first (by the PSP's time, then
    /// by reference, so the answer is the same whatever order the events came in), from the
    /// entries that count. Events that name no payment are a payment of their own.
    pub fn payments(&self) -> Vec<PspPayment<'_>> {
        use PaymentEventKind::*;
        let counted = || self.ledger.iter().filter(|e| e.mismatch.is_none());
        let mut references: Vec<Option<&str>> = Vec::new();
        for entry in counted() {
            let reference = self.reference_of(entry);
            if !references.contains(&reference) {
                references.push(reference);
            }
        }
        let mut payments: Vec<PspPayment<'_>> = references
            .into_iter()
            .map(|reference| {
                let own = || counted().filter(move |e| self.reference_of(e) == reference);
                let holding = || {
                    own().filter(|e| matches!(e.kind, AuthorizationSucceeded | CaptureSucceeded))
                };
                let first_hold = holding().min_by_key(|e| (e.occurred_at, e.recorded_at));
                PspPayment {
                    reference,
                    since: first_hold.map(|e| e.occurred_at),
                    recorded_at: first_hold.map(|e| e.recorded_at),
                    captured: own().any(|e| e.kind == CaptureSucceeded),
                    captured_minor: own()
                        .filter(|e| e.kind == CaptureSucceeded)
                        .map(|e| e.amount.minor_units())
                        .sum(),
                    authorized_minor: own()
                        .filter(|e| e.kind == AuthorizationSucceeded)
                        .map(|e| e.amount.minor_units())
                        .max()
                        .unwrap_or(0),
                    finally_captured: own()
                        .filter(|e| e.kind == CaptureSucceeded)
                        .any(|e| self.is_last_capture(e)),
                    // The latest word on the hold by the PSP's time; a void wins a tie. A
                    // payment that never held the order's money has no hold of it to release
                    // (a stray hold of another amount, voided, leaves the order unpaid).
                    released: first_hold.is_some()
                        && own()
                            .filter(|e| matches!(e.kind, AuthorizationSucceeded | VoidSucceeded))
                            .max_by_key(|e| (e.occurred_at, e.kind == VoidSucceeded))
                            .is_some_and(|e| e.kind == VoidSucceeded),
                }
            })
            .collect();
        payments.sort_by_key(|p| (p.since.is_none(), p.since, p.reference));
        payments
    }

    /// Whether a successful capture answers a capture asked as the last of its payment: the one
    /// it names, or (naming none) one asked for its amount with no more to follow.
    fn is_last_capture(&self, entry: &LedgerEntry) -> bool {
        let captures = || {
            self.requests
                .iter()
                .filter(|r| r.kind == PspRequestKind::Capture)
        };
        match entry
            .request_id
            .as_deref()
            .and_then(|id| captures().find(|r| r.request_id == id))
        {
            Some(asked) => !asked.more_follow,
            // Naming none: final only once every capture asked of its payment succeeded and
            // the last one asked was the last of all (an earlier share of the same amount is
            // not mistaken for it).
            None => {
                let reference = self.reference_of(entry);
                let asked: Vec<&PspRequest> = captures()
                    .filter(|r| r.psp_reference.as_deref() == reference)
                    .collect();
                let answered = self
                    .ledger
                    .iter()
                    .filter(|e| e.counts(PaymentEventKind::CaptureSucceeded))
                    .filter(|e| self.reference_of(e) == reference)
                    .count();
                asked.last().is_some_and(|last| !last.more_follow) && answered >= asked.len()
            }
        }
    }

    /// What the PSP took in all, in minor units: every capture that succeeded, under any of the
    /// order's payments.
    pub(crate) fn captured_minor(&self) -> i64 {
        self.payments().iter().map(|p| p.captured_minor).sum()
    }

    /// What the payment `reference` held, if it held anything: what releasing it releases.
    fn held_amount(&self, reference: Option<&str>) -> Option<i64> {
        self.payments()
            .into_iter()
            .find(|p| p.reference == reference)
            .map(|p| p.authorized_minor)
            .filter(|minor| *minor > 0)
    }

    /// The payments that hold money on the customer's card now, the first first.
    fn held(&self) -> impl Iterator<Item = PspPayment<'_>> {
        self.payments().into_iter().filter(PspPayment::holds)
    }

    /// The PSP's reference of the payment that has the order's money now: the one it was taken
    /// under, else the one that holds it, else the last one that held it; a declined attempt
    /// names another payment only when no payment ever held money.
    pub fn psp_reference(&self) -> Option<&str> {
        let payments = self.payments();
        let chosen = payments
            .iter()
            .find(|p| p.captured)
            .or_else(|| payments.iter().find(|p| p.holds()))
            .or_else(|| payments.iter().rev().find(|p| p.since.is_some()));
        match chosen {
            Some(payment) => payment.reference,
            // Nothing ever held money: the latest payment the PSP named, counted events first.
            None => self
                .ledger
                .iter()
                .filter_map(|e| {
                    Some((
                        e.mismatch.is_none(),
                        e.occurred_at,
                        e.psp_reference.as_deref()?,
                    ))
                })
                .max()
                .map(|(_, _, reference)| reference),
        }
    }

    /// Whether the hold was released and nothing holds or took money since: a customer may pay
    /// again after a void.
    fn voided(&self) -> bool {
        let payments = self.payments();
        payments.iter().any(|p| p.released) && !payments.iter().any(|p| p.holds() || p.captured)
    }

    /// When the PSP released the last hold, as recorded: a released order's payment window
    /// counts from then.
    fn released_at(&self) -> Option<DateTime<Utc>> {
        self.ledger
            .iter()
            .filter(|e| e.counts(PaymentEventKind::VoidSucceeded))
            .map(|e| e.recorded_at)
            .max()
    }

    /// The captures asked of the PSP that it has not answered (success or failure), oldest
    /// first. An answer that names its request answers that one; one that names none answers
    /// the oldest capture of its payment still unanswered (a PSP that does not echo the
    /// request answers them in the order they were asked, one at a time).
    /// Whether the PSP has answered the capture or void `request_id` (a capture's success or
    /// failure, a release of its payment): asking it again could only move money twice.
    pub fn answered(&self, request_id: &str) -> bool {
        let Some(request) = self.requests.iter().find(|r| r.request_id == request_id) else {
            return false;
        };
        match request.kind {
            PspRequestKind::Capture => !self
                .unanswered_captures()
                .iter()
                .any(|r| r.request_id == request_id),
            PspRequestKind::Void => request
                .psp_reference
                .as_deref()
                .is_some_and(|r| self.released_since(r, DateTime::<Utc>::MIN_UTC)),
        }
    }

    pub(crate) fn unanswered_captures(&self) -> Vec<&PspRequest> {
        let answers: Vec<&LedgerEntry> = self
            .ledger
            .iter()
            .filter(|e| {
                e.counts(PaymentEventKind::CaptureSucceeded)
                    || e.counts(PaymentEventKind::CaptureFailed)
            })
            .collect();
        let captures: Vec<&PspRequest> = self
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Capture)
            .collect();
        let named = |r: &PspRequest| {
            answers
                .iter()
                .any(|e| e.request_id.as_deref() == Some(r.request_id.as_str()))
        };
        let mut unanswered: Vec<&PspRequest> =
            captures.iter().copied().filter(|r| !named(r)).collect();
        for answer in answers.iter().filter(|e| {
            e.request_id
                .as_deref()
                .is_none_or(|id| !captures.iter().any(|r| r.request_id == id))
        }) {
            let reference = self.reference_of(answer);
            if let Some(at) = unanswered
                .iter()
                .position(|r| r.psp_reference.as_deref() == reference)
            {
                unanswered.remove(at);
            }
        }
        unanswered
    }

    /// Whether a capture of `reference` was asked and the PSP has not answered it.
    fn capture_outstanding_on(&self, reference: Option<&str>) -> bool {
        self.unanswered_captures()
            .iter()
            .any(|r| r.psp_reference.as_deref() == reference)
    }

    /// The capture asked of the PSP that it has not answered, if one is outstanding.
    pub fn outstanding_capture(&self) -> Option<&PspRequest> {
        self.unanswered_captures().last().copied()
    }

    /// The payment an entry is about, read the same way everywhere: the one it names; if it
    /// names none and the ledger names exactly one payment, that one (a PSP that leaves the
    /// reference out of a capture's answer means the payment it was asked about); otherwise a
    /// payment of its own, with no reference. A function of the whole ledger, so the answer is
    /// the same whatever order the events came in.
    fn reference_of<'a>(&'a self, entry: &'a LedgerEntry) -> Option<&'a str> {
        if let Some(named) = entry.psp_reference.as_deref() {
            return Some(named);
        }
        let mut named = self
            .ledger
            .iter()
            .filter(|e| e.mismatch.is_none())
            .filter_map(|e| e.psp_reference.as_deref());
        let first = named.next()?;
        named.all(|r| r == first).then_some(first)
    }

    /// The holds the PSP reported that are not the order's own — an authorization of another
    /// amount or currency, under a payment that never held the order's money — and that it has
    /// not released: each payment's reference once, with the amount it holds. (One the PSP
    /// named no payment for cannot be asked about; it stays in front of staff.)
    pub fn mismatched_holds(&self) -> Vec<(String, Money)> {
        let mut holds: Vec<(String, Money)> = Vec::new();
        for entry in self
            .ledger
            .iter()
            .filter(|e| e.mismatch.is_some() && e.kind == PaymentEventKind::AuthorizationSucceeded)
        {
            let Some(reference) = entry.psp_reference.as_deref() else {
                continue;
            };
            // A payment that held the order's money, or any capture under it, is not a stray
            // hold (it is the order's payment, or a second one, in front of staff); a void the
            // PSP confirmed at or after the hold released it.
            let settled = self.ledger.iter().any(|e| {
                let under = e.psp_reference.as_deref() == Some(reference)
                    || (e.mismatch.is_none() && self.reference_of(e) == Some(reference));
                under
                    && match e.kind {
                        PaymentEventKind::CaptureSucceeded => true,
                        PaymentEventKind::AuthorizationSucceeded => e.mismatch.is_none(),
                        PaymentEventKind::VoidSucceeded => {
                            e.mismatch.is_none() && e.occurred_at >= entry.occurred_at
                        }
                        _ => false,
                    }
            });
            if !settled && !holds.iter().any(|(r, _)| r == reference) {
                holds.push((reference.to_owned(), entry.amount));
            }
        }
        holds
    }

    /// Whether the PSP released the hold of the payment `reference` made at `held_at` (a void
    /// it confirmed, at or after the hold by its own time).
    fn released_since(&self, reference: &str, held_at: DateTime<Utc>) -> bool {
        self.ledger.iter().any(|e| {
            e.counts(PaymentEventKind::VoidSucceeded)
                && e.occurred_at >= held_at
                && self.reference_of(e) == Some(reference)
        })
    }

    /// Whether `kind` was asked of the PSP for `reference` before.
    fn asked(&self, kind: PspRequestKind, reference: Option<&str>) -> bool {
        self.requests
            .iter()
            .any(|r| r.kind == kind && r.psp_reference.as_deref() == reference)
    }

    /// Whether the sweep's flag is about `capture` (raised after it was asked), not about an
    /// earlier capture that has since been answered.
    fn capture_flagged_for(&self, capture: &PspRequest) -> bool {
        self.capture_flagged_at
            .is_some_and(|at| at >= capture.requested_at)
    }

    /// When the amount was first held (a capture also holds it).
    pub fn authorized_at(&self) -> Option<DateTime<Utc>> {
        self.ledger
            .iter()
            .filter(|e| {
                e.counts(PaymentEventKind::AuthorizationSucceeded)
                    || e.counts(PaymentEventKind::CaptureSucceeded)
            })
            .map(|e| e.occurred_at)
            .min()
    }
}

impl Order {
    /// The order's payment status, derived from its ledger: the same whatever order the PSP's
    /// events arrived in.
    pub fn payment_status(&self) -> PaymentStatus {
        let payment = &self.payment;
        if self.totals.total.minor_units() == 0 {
            return PaymentStatus::Paid;
        }
        let payments = payment.payments();
        // A payment an edit's new one replaced is not the order's any more: what was taken
        // under it is refunded, and the status is the new payment's.
        if let Some(taken) = self.own_payments().into_iter().find(|p| p.captured) {
            let refunded = self.refunds_issued(taken.reference);
            // Part taken and the rest still held (the parcels still to leave have their money
            // there, whatever was refunded of those that left).
            if taken.holds() {
                return PaymentStatus::PartiallyPaid;
            }
            // Part taken and the rest released: what is still to ship has no money behind it.
            if taken.released && taken.captured_minor < self.totals.total.minor_units() {
                return PaymentStatus::Voided;
            }
            // Measured against what was taken: units called off after a capture were refunded
            // from it, and the total shrank with them.
            return if refunded >= taken.captured_minor {
                PaymentStatus::Refunded
            } else if refunded > 0 {
                PaymentStatus::PartiallyRefunded
            } else {
                PaymentStatus::Paid
            };
        }
        // A hold an edit's new authorization replaced is being released: it holds nothing for
        // the order (should the new one be released first, nothing does).
        let superseded = self.superseded_payments();
        if payments
            .iter()
            .filter(|p| !p.reference.is_some_and(|r| superseded.contains(&r)))
            .any(PspPayment::holds)
        {
            PaymentStatus::Authorized
        } else if payments.iter().any(|p| p.released) {
            PaymentStatus::Voided
        } else if self.cancellation.as_ref().is_some_and(|c| c.expired) {
            PaymentStatus::Expired
        } else if payment.any(PaymentEventKind::AuthorizationFailed) {
            PaymentStatus::Failed
        } else {
            PaymentStatus::Pending
        }
    }

    /// The order's payments at the PSP but those an edit's new payment replaced (a hold being
    /// released, or money taken and refunded once the new one was taken).
    pub(crate) fn own_payments(&self) -> Vec<PspPayment<'_>> {
        let superseded = self.superseded_payments();
        self.payment
            .payments()
            .into_iter()
            .filter(|p| !p.reference.is_some_and(|r| superseded.contains(&r)))
            .collect()
    }

    /// What was taken under payments an edit's new payment replaced, in minor units: given
    /// back by their refunds (`PAYMENT_REPLACED`), not part of what the order's own payment took.
    pub(crate) fn taken_under_replaced(&self) -> i64 {
        let superseded = self.superseded_payments();
        self.payment
            .payments()
            .iter()
            .filter(|p| p.reference.is_some_and(|r| superseded.contains(&r)))
            .map(|p| p.captured_minor)
            .sum()
    }

    /// The PSP's reference of the payment that has the order's money now (see
    /// [`Payment::psp_reference`]), never one an edit's new payment replaced while another has
    /// it: the payment a refund gives back from, unless it names its own.
    pub fn money_reference(&self) -> Option<&str> {
        let own = self.own_payments();
        own.iter()
            .find(|p| p.captured)
            .or_else(|| own.iter().find(|p| p.holds()))
            .and_then(|p| p.reference)
            .or_else(|| self.payment.psp_reference())
    }

    /// Where the refund stands: issued once the PSP says it paid it out (whatever failures it
    /// reported around it: a success is final), failed if it reported only failures.
    pub fn refund_state(&self, refund_id: &str) -> RefundState {
        if self
            .refunds
            .iter()
            .any(|r| r.refund_id == refund_id && r.awaiting_capture)
        {
            return RefundState::AwaitingCapture;
        }
        let answers: Vec<&LedgerEntry> = self
            .payment
            .ledger
            .iter()
            .filter(|e| e.kind.is_refund() && e.mismatch.is_none())
            .filter(|e| e.refund_id.as_deref() == Some(refund_id))
            .collect();
        if answers
            .iter()
            .any(|e| e.kind == PaymentEventKind::RefundSucceeded)
        {
            RefundState::Issued
        } else if answers.is_empty() {
            RefundState::Requested
        } else {
            RefundState::Failed
        }
    }

    /// What the PSP has paid back of the money taken under `taken` (the order's own payment), in
    /// minor units: the refunds asked of it (or naming none: asked before refunds named their
    /// payment), not those of a payment an edit replaced.
    fn refunds_issued(&self, taken: Option<&str>) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.from_payment.is_none() || r.from_payment.as_deref() == taken)
            .filter(|r| self.refund_state(&r.refund_id) == RefundState::Issued)
            .map(|r| r.amount.minor_units())
            .sum()
    }

    /// Why the order's money needs a person, if it does: the oldest open reason.
    pub fn payment_attention(&self) -> Option<PaymentAttention> {
        self.payment_attentions().into_iter().next()
    }

    /// Every open reason the order's money needs a person for, the oldest first: those staff
    /// have not acknowledged.
    pub fn payment_attentions(&self) -> Vec<PaymentAttention> {
        let payment = &self.payment;
        let mut reasons = Vec::new();
        for entry in payment.ledger.iter() {
            // A hold that was not the order's and that the PSP has since released leaves
            // nothing on the customer's card and nothing for staff to do.
            let released = entry.kind == PaymentEventKind::AuthorizationSucceeded
                && entry
                    .psp_reference
                    .as_deref()
                    .is_some_and(|r| payment.released_since(r, entry.occurred_at));
            if released {
                continue;
            }
            if let Some(mismatch) = &entry.mismatch {
                let second_payment = matches!(
                    entry.kind,
                    PaymentEventKind::AuthorizationSucceeded | PaymentEventKind::CaptureSucceeded
                ) && entry.amount == self.totals.total;
                reasons.push(PaymentAttention {
                    reason: if second_payment {
                        AttentionReason::SecondPayment
                    } else {
                        AttentionReason::AmountMismatch
                    },
                    since: entry.recorded_at,
                    detail: format!("{} {}: {mismatch}", entry.kind.as_str(), entry.event_id),
                });
            }
        }
        for refund in self.refunds.iter().filter(|r| r.retried_as.is_none()) {
            if self.refund_state(&refund.refund_id) == RefundState::Failed {
                let failure = payment
                    .ledger
                    .iter()
                    .rfind(|e| e.refund_id.as_deref() == Some(refund.refund_id.as_str()));
                reasons.push(PaymentAttention {
                    reason: AttentionReason::RefundFailed,
                    since: failure.map_or(refund.requested_at, |e| e.recorded_at),
                    detail: format!(
                        "refund {} failed{}",
                        refund.refund_id,
                        failure
                            .and_then(|e| e.reason.as_deref())
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        // Money held or taken under more than one payment: all but the first must be voided or
        // refunded at the PSP.
        // (A hold an edit's new authorization replaced is being released: not a second one.)
        let superseded = self.superseded_payments();
        let payments: Vec<PspPayment<'_>> = payment
            .payments()
            .into_iter()
            .filter(|p| !p.reference.is_some_and(|r| superseded.contains(&r)))
            .collect();
        for second in payments.iter().filter(|p| p.holds() || p.captured).skip(1) {
            reasons.push(PaymentAttention {
                reason: AttentionReason::SecondPayment,
                since: second.recorded_at.unwrap_or(self.updated_at),
                detail: format!(
                    "a second payment {} {} while {} has the order's money",
                    second.reference.unwrap_or("(unnamed)"),
                    if second.captured {
                        "was captured"
                    } else {
                        "is held"
                    },
                    payments
                        .iter()
                        .find(|p| p.holds() || p.captured)
                        .and_then(|p| p.reference)
                        .unwrap_or("(unnamed)")
                ),
            });
        }
        let captured = payments.iter().any(|p| p.captured && !p.holds());
        let called_off = matches!(self.status, OrderStatus::Cancelled | OrderStatus::Rejected);
        if !called_off && self.payment_status() == PaymentStatus::Voided {
            if let Some(void) = payment
                .ledger
                .iter()
                .rfind(|e| e.counts(PaymentEventKind::VoidSucceeded))
            {
                reasons.push(PaymentAttention {
                    reason: AttentionReason::PaymentVoided,
                    since: void.recorded_at,
                    detail: "the PSP released the hold of an order that is still to ship".into(),
                });
            }
        }
        // A capture the PSP has not answered in time needs staff whatever became of the order:
        // its money may be taken, or held with its void waiting on the answer.
        if let Some(capture) = payment.outstanding_capture() {
            if let Some(at) = payment
                .capture_flagged_at
                .filter(|_| payment.capture_flagged_for(capture))
            {
                reasons.push(PaymentAttention {
                    reason: AttentionReason::CaptureUnconfirmed,
                    since: at,
                    detail: format!(
                        "capture {} asked {} and not confirmed by the PSP",
                        capture.request_id,
                        capture.requested_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                });
            }
        }
        // A failed capture of an order called off or voided needs no one: nothing is owed.
        if !captured && !called_off && !payment.voided() {
            if let Some(failure) = payment
                .ledger
                .iter()
                .rfind(|e| e.counts(PaymentEventKind::CaptureFailed))
            {
                reasons.push(PaymentAttention {
                    reason: AttentionReason::CaptureFailed,
                    since: failure.recorded_at,
                    detail: format!(
                        "capture failed{}",
                        failure
                            .reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                });
            }
            if let Some(at) = payment.deadline_flagged_at {
                if matches!(
                    self.payment_status(),
                    PaymentStatus::Authorized | PaymentStatus::PartiallyPaid
                ) {
                    reasons.push(PaymentAttention {
                        reason: AttentionReason::AuthorizationExpiring,
                        since: at,
                        detail: "the authorization nears the PSP's capture deadline".into(),
                    });
                }
            }
        }
        // What staff acknowledged is closed: exactly the reasons they saw, as they saw them.
        let acknowledged = |a: &PaymentAttention| {
            payment
                .acknowledgments
                .iter()
                .any(|ack| ack.covered.contains(&(a.reason, a.since)))
        };
        let mut open: Vec<_> = reasons.into_iter().filter(|a| !acknowledged(a)).collect();
        open.sort_by_key(|a| a.since);
        open
    }

    /// Staff acknowledge what the order's money needs, saying in `note` how they dealt with it:
    /// every reason open now (all of them shown to staff) leaves the attention list; the ledger
    /// keeps what happened. The note is staff's: it is kept with the payment, which customers
    /// do not see, not on the timeline.
    pub fn acknowledge_payment_attention(
        &self,
        by: &str,
        note: String,
        now: DateTime<Utc>,
    ) -> Result<Order, AcknowledgeError> {
        let open = self.payment_attentions();
        if open.is_empty() {
            return Err(AcknowledgeError::NothingOpen);
        }
        Ok(self.record(now, None, |next| {
            next.payment.acknowledgments.push(Acknowledgment {
                by: by.to_owned(),
                at: now,
                note,
                covered: open.iter().map(|a| (a.reason, a.since)).collect(),
            });
            OrderEvent::Updated
        }))
    }

    /// An authorization that waits for its capture (the sweep watches its deadline).
    pub fn awaiting_capture_since(&self) -> Option<DateTime<Utc>> {
        (matches!(
            self.payment_status(),
            PaymentStatus::Authorized | PaymentStatus::PartiallyPaid
        ) && !matches!(self.status, OrderStatus::Cancelled | OrderStatus::Rejected)
            && self.payment.deadline_flagged_at.is_none()
            && self.payment.outstanding_capture().is_none())
        .then(|| {
            // The hold the order's money is under: one an edit's new authorization replaced
            // is released, and its age says nothing of the new one's.
            let superseded = self.superseded_payments();
            self.payment
                .payments()
                .iter()
                .filter(|p| p.holds() || p.captured)
                .filter(|p| !p.reference.is_some_and(|r| superseded.contains(&r)))
                .filter_map(|p| p.since)
                .min()
        })
        .flatten()
    }

    /// A capture asked of the PSP and not yet answered, since it was asked (the sweep puts it in
    /// front of staff if the PSP stays silent too long).
    /// Watched whatever the order's status: a capture asked before the order was called off
    /// holds its void back until the PSP answers, so a silent PSP would leave the card held.
    pub fn capture_requested_since(&self) -> Option<DateTime<Utc>> {
        let capture = self.payment.outstanding_capture()?;
        if self.payment.capture_flagged_for(capture) {
            return None;
        }
        Some(capture.requested_at)
    }

    /// Records a PSP event in the ledger, once per PSP event id, and asks of the PSP what the
    /// new payment status makes due (a void for an authorization that came too late, a refund
    /// for a capture of a cancelled order, a capture if the business captures at once).
    pub fn record_payment(
        &self,
        event: &PaymentEvent,
        policy: &PaymentPolicy,
        now: DateTime<Utc>,
    ) -> Result<PaymentUpdate, PaymentError> {
        if self
            .payment
            .ledger
            .iter()
            .any(|e| e.event_id == event.event_id)
        {
            return Ok(PaymentUpdate::Duplicate);
        }
        // Declines beyond the first few are acknowledged and not recorded (the order is told
        // nothing new by them).
        let declines = || {
            self.payment
                .ledger
                .iter()
                .filter(|e| e.kind == PaymentEventKind::AuthorizationFailed)
                .count()
        };
        if event.kind == PaymentEventKind::AuthorizationFailed
            && declines() >= MAX_DECLINES_RECORDED
        {
            return Ok(PaymentUpdate::Duplicate);
        }
        if self.payment.ledger.len() >= MAX_LEDGER_ENTRIES {
            return Err(PaymentError::LedgerFull);
        }
        let mismatch = self.mismatch_of(event);
        let entry = LedgerEntry {
            event_id: event.event_id.clone(),
            kind: event.kind,
            amount: event.amount,
            occurred_at: event.occurred_at,
            recorded_at: now,
            psp_reference: event.psp_reference.clone(),
            refund_id: event.refund_id.clone(),
            request_id: event.request_id.clone(),
            reason: event.reason.clone(),
            mismatch: mismatch.clone(),
        };
        let note = match &mismatch {
            Some(m) => format!("payment: {} not counted: {m}", event.kind.as_str()),
            None => format!(
                "payment: {} {}",
                event.kind.as_str(),
                format_amount(event.amount)
            ),
        };
        let before = self.payment_status();
        let mut held_back = false;
        let mut next = self.record(now, Some(note), |next| {
            next.payment.ledger.push(entry);
            let edit_paid = next.settle_paid_edit(now);
            next.request_what_is_due(policy.capture, now);
            if let Some(edit_id) = edit_paid {
                return OrderEvent::EditPaid { edit_id };
            }
            // A released hold takes the order out of the warehouse until it is paid for again
            // (or expires, its window counted from the release): back to RESERVED, its shipment
            // kept where it got to, so a new authorization sends it back to the same step.
            held_back = next.status == OrderStatus::Fulfilling
                && !next.payment_status().allows_fulfillment()
                && !next.shipments.is_empty()
                && next.shipments.iter().all(|f| f.status.is_warehouse_work());
            if held_back {
                next.status = OrderStatus::Reserved;
                return OrderEvent::PaymentVoided;
            }
            let settled = next
                .refunds
                .iter()
                .map(|r| (r.refund_id.clone(), next.refund_state(&r.refund_id)))
                .find(|(id, state)| {
                    matches!(state, RefundState::Issued | RefundState::Failed)
                        && self.refund_state(id) != *state
                });
            match settled {
                Some((refund_id, RefundState::Issued)) => OrderEvent::RefundIssued { refund_id },
                Some((refund_id, _)) => OrderEvent::RefundFailed { refund_id },
                None => OrderEvent::for_payment(
                    before,
                    next.payment_status(),
                    matches!(next.status, OrderStatus::Cancelled | OrderStatus::Rejected),
                ),
            }
        });
        if held_back {
            if let Some(note) = next.timeline.last_mut().and_then(|e| e.note.as_mut()) {
                note.push_str("; out of the warehouse until paid again");
            }
        }
        Ok(PaymentUpdate::Recorded(Box::new(next)))
    }

    /// Why the event cannot count, if it cannot.
    fn mismatch_of(&self, event: &PaymentEvent) -> Option<String> {
        let expected = if event.kind.is_refund() {
            let Some(refund) = event
                .refund_id
                .as_deref()
                .and_then(|id| self.refunds.iter().find(|r| r.refund_id == id))
            else {
                return Some(format!(
                    "the order has no refund {}",
                    event.refund_id.as_deref().unwrap_or("(none named)")
                ));
            };
            refund.amount
        } else {
            self.totals.total
        };
        // A capture (or its failure) may be one parcel's share, as asked: the one it names,
        // or any share asked when it names none.
        let is_capture = matches!(
            event.kind,
            PaymentEventKind::CaptureSucceeded | PaymentEventKind::CaptureFailed
        );
        let named = event.request_id.as_deref().and_then(|id| {
            self.payment
                .requests
                .iter()
                .find(|r| r.kind == PspRequestKind::Capture && r.request_id == id)
        });
        if let (true, Some(asked)) = (is_capture, named) {
            return (event.amount != asked.amount).then(|| {
                format!(
                    "{} reported, {} asked by {}",
                    format_amount(event.amount),
                    format_amount(asked.amount),
                    asked.request_id
                )
            });
        }
        let a_share_asked = is_capture
            && self
                .payment
                .requests
                .iter()
                .any(|r| r.kind == PspRequestKind::Capture && r.amount == event.amount);
        // A void may answer the release of a hold that was not the order's own (a mismatched
        // authorization voided as the order was called off): it is that hold's amount, asked.
        let its_void_asked = event.kind == PaymentEventKind::VoidSucceeded
            && self.payment.requests.iter().any(|r| {
                r.kind == PspRequestKind::Void
                    && r.amount == event.amount
                    && (r.psp_reference == event.psp_reference
                        || event.request_id.as_deref() == Some(r.request_id.as_str()))
            });
        // A hold (or its release) made for what the order cost before units were called off
        // is the order's own.
        // A capture is checked against what was asked, never against an old total.
        let an_earlier_total = matches!(
            event.kind,
            PaymentEventKind::AuthorizationSucceeded
                | PaymentEventKind::AuthorizationFailed
                | PaymentEventKind::VoidSucceeded
        ) && (self.cost_before_a_cancellation(event.amount)
            || self.cost_before_an_edit(event.amount, event.psp_reference.as_deref()));
        (event.amount != expected && !a_share_asked && !its_void_asked && !an_earlier_total).then(
            || {
                format!(
                    "{} reported, {} expected",
                    format_amount(event.amount),
                    format_amount(expected)
                )
            },
        )
    }

    /// Adds the PSP requests the order's state makes due and that were not asked before: a
    /// void of every hold or a refund of what was taken for an order that will not ship, a
    /// capture of the payment that holds the money for one that shipped (or at once, if the
    /// policy says so), and the refunds that waited for that capture's confirmation. Every
    /// transition that can make one due calls it on its new version (recording a PSP event,
    /// shipping, cancelling, rejecting), so each is asked exactly once, by the change the
    /// stream announces it from — and always of a payment that holds the money asked about.
    pub(crate) fn request_what_is_due(&mut self, capture: CaptureMode, now: DateTime<Utc>) {
        let status = self.payment_status();
        let called_off = matches!(self.status, OrderStatus::Cancelled | OrderStatus::Rejected);
        // A one-parcel order's whole amount is taken as it leaves (a split order's parcels each
        // take their share, below).
        let shipped = matches!(
            self.status,
            OrderStatus::PartiallyShipped
                | OrderStatus::Shipped
                | OrderStatus::PartiallyDelivered
                | OrderStatus::Delivered
        );
        // A hold the PSP named no payment for, while it named others, cannot be asked about:
        // the PSP would not know which to act on. It stays in front of staff (a second payment).
        let names_some = self
            .payment
            .ledger
            .iter()
            .any(|e| e.psp_reference.is_some());
        // A hold an edit's new authorization replaced is released, never taken.
        let superseded: Vec<String> = self
            .superseded_payments()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let held: Vec<Option<String>> = self
            .payment
            .held()
            .map(|p| p.reference.map(str::to_owned))
            .filter(|reference| reference.is_some() || !names_some)
            .filter(|reference| !reference.as_ref().is_some_and(|r| superseded.contains(r)))
            .collect();
        for reference in &superseded {
            let holds = self
                .payment
                .held()
                .any(|p| p.reference == Some(reference.as_str()));
            if holds {
                self.ask(PspRequestKind::Void, Some(reference.clone()), now);
            }
        }
        let captured = self.own_payments().iter().any(|p| p.captured);
        // A payment that replaced one money was taken under is taken at once, whatever the
        // policy: until it is, the customer paid twice and the first is not yet given back.
        let replacing_taken = self
            .refunds
            .iter()
            .any(|r| r.reason == RefundReason::PaymentReplaced && r.awaiting_capture);
        if called_off {
            // What a payment an edit replaced took is given back now, whatever becomes of the
            // new one (its capture may never come): that money was taken.
            for refund in self
                .refunds
                .iter_mut()
                .filter(|r| r.reason == RefundReason::PaymentReplaced && r.awaiting_capture)
            {
                refund.awaiting_capture = false;
                refund.requested_at = now;
            }
            // A capture on its way is not voided under it: if it succeeds the money is
            // refunded, if it fails the hold is voided then.
            for reference in &held {
                if !self.payment.capture_outstanding_on(reference.as_deref()) {
                    self.ask(PspRequestKind::Void, reference.clone(), now);
                }
            }
            // A hold the PSP reported that was not the order's (another amount or currency)
            // still blocks the customer's money: it is released too, for its own amount.
            for (reference, amount) in self.payment.mismatched_holds() {
                if !self.payment.asked(PspRequestKind::Void, Some(&reference)) {
                    self.ask_for(PspRequestKind::Void, Some(reference), amount, now);
                }
            }
            // What was taken and not yet refunded is refunded, once (a return's refund cannot
            // precede a cancellation; units called off earlier were refunded then).
            // (What payments an edit replaced took counts too: their refunds are among those
            // so far.)
            let taken_minor = self
                .own_payments()
                .iter()
                .find(|p| p.captured)
                .map_or(0, |p| p.captured_minor)
                + self.taken_under_replaced();
            let (refunded, _) = self.refunded();
            let refunded_whole = self
                .refunds
                .iter()
                .any(|r| !r.reason.gives_back_a_difference());
            if matches!(
                status,
                PaymentStatus::Paid | PaymentStatus::PartiallyRefunded
            ) && self.totals.total.minor_units() > 0
                && taken_minor > refunded
                && !refunded_whole
            {
                let mut refund = self.full_refund(now);
                let rest = (taken_minor - refunded).min(self.totals.total.minor_units());
                if let Ok(rest) = Money::new(rest, refund.amount.currency()) {
                    refund.amount = rest;
                }
                self.refunds.push(refund);
            }
        } else if (self.leaves_in_parts() || self.captures_by_parcel())
            && capture == CaptureMode::OnShipment
            && !replacing_taken
        {
            // Each parcel's share is taken as it leaves, one capture at a time, from the
            // payment that holds the money.
            if let Some(reference) = held.first() {
                let outstanding = held
                    .iter()
                    .any(|r| self.payment.capture_outstanding_on(r.as_deref()));
                if let Some((number, amount, more_follow)) =
                    self.next_parcel_capture().filter(|_| !outstanding)
                {
                    self.ask_capture(reference.clone(), amount, Some(number), more_follow, now);
                } else if let Some((number, amount)) = self.rest_due().filter(|_| !outstanding) {
                    self.ask_capture(reference.clone(), amount, Some(number), false, now);
                }
            }
        } else if (shipped || capture == CaptureMode::Immediately || replacing_taken) && !captured {
            // The first payment that holds the money is taken; any other is a second payment
            // for staff.
            if let Some(reference) = held.first() {
                let outstanding = held
                    .iter()
                    .any(|r| self.payment.capture_outstanding_on(r.as_deref()));
                if !outstanding {
                    self.ask(PspRequestKind::Capture, reference.clone(), now);
                }
            }
        }
        // A payment made for an edit that was undone (its new total authorized too late) is not
        // the order's: released, for what it holds. So is one made for what the order cost
        // before a dearer edit and authorized after it (the customer was paying as staff
        // edited): it cannot pay for the new total, and the customer is asked for that one as
        // for any dearer edit (a hold the order counts as its own is never among these).
        if !called_off {
            let total = self.totals.total.minor_units();
            let not_the_orders: Vec<Money> = self
                .edits
                .iter()
                .filter_map(|e| match e.state {
                    crate::order::edits::EditState::Undone => Some(e.totals_after.total),
                    _ => Some(e.totals_before.total).filter(|t| t.minor_units() < total),
                })
                .collect();
            for (reference, amount) in self.payment.mismatched_holds() {
                if not_the_orders.contains(&amount)
                    && !self.payment.asked(PspRequestKind::Void, Some(&reference))
                {
                    self.ask_for(PspRequestKind::Void, Some(reference), amount, now);
                }
            }
        }
        // Every parcel has left and its money is taken, yet a payment still holds some: units
        // called off after the first parcels left. What it holds beyond them is released.
        // Only then: a parcel whose capture failed still owes its money (it stays in front of
        // staff), so nothing is released while less than the total was taken.
        let all_left = !self.shipments.is_empty() && self.shipments.iter().all(|s| s.has_left());
        let taken_in_full = self.payment.captured_minor() - self.taken_under_replaced()
            >= self.totals.total.minor_units();
        if !called_off
            && all_left
            && captured
            && taken_in_full
            && !self.unit_cancellations.is_empty()
            && self.next_parcel_capture().is_none()
        {
            let outstanding = held
                .iter()
                .any(|r| self.payment.capture_outstanding_on(r.as_deref()));
            for reference in held.iter().filter(|_| !outstanding) {
                self.ask(PspRequestKind::Void, reference.clone(), now);
            }
        }
        if captured && self.payment.unanswered_captures().is_empty() {
            // The money is taken, and no capture is still on its way (a refund may give back
            // part of one): what waited for it is asked now — a difference given back only of
            // what was taken beyond the total (the capture it counted on may have failed).
            let taken: i64 = self.payment.captured_minor();
            let beyond = taken - self.totals.total.minor_units();
            let mut given: i64 = self
                .asked_refunds()
                .filter(|r| r.reason.gives_back_a_difference())
                .map(|r| r.amount.minor_units())
                .sum();
            // Never more given back in all than was taken (a parcel's share the PSP failed
            // is owed still: what would be given back of it waits for its capture).
            let mut given_in_all: i64 = self.asked_refunds().map(|r| r.amount.minor_units()).sum();
            for refund in self.refunds.iter_mut().filter(|r| r.awaiting_capture) {
                let amount = refund.amount.minor_units();
                if given_in_all + amount > taken {
                    continue;
                }
                if refund.reason.gives_back_a_difference() {
                    if given + amount > beyond {
                        continue;
                    }
                    given += amount;
                }
                given_in_all += amount;
                refund.awaiting_capture = false;
                refund.requested_at = now;
            }
        }
    }

    /// The next parcel of a split order whose share is due: the first (by its ship time) of
    /// those that left whose capture was not asked, and its share — its units at their prices,
    /// the shipping charge with the first parcel captured, and for the last parcel whatever is
    /// left of the total, so the captures add up to exactly the total and never exceed it.
    fn next_parcel_capture(&self) -> Option<(u32, Money, bool)> {
        let asked: Vec<&PspRequest> = self
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Capture && r.shipment.is_some())
            .collect();
        let mut left: Vec<&Fulfillment> = self
            .shipments
            .iter()
            .filter(|s| s.has_left() && !asked.iter().any(|r| r.shipment == Some(s.number)))
            .collect();
        left.sort_by_key(|s| (s.shipped_at, s.number));
        let parcel = left.first()?;
        // What was taken, or is on its way: a share whose capture failed is not, and the last
        // parcel takes it with the rest, so the order is never settled for less than it owes.
        let succeeded: i64 = self.payment.captured_minor() - self.taken_under_replaced();
        let on_its_way: i64 = self
            .payment
            .unanswered_captures()
            .iter()
            .map(|r| r.amount.minor_units())
            .sum();
        let taken = succeeded + on_its_way;
        let total = self.totals.total;
        // The last parcel takes the rest, once no units are still to come in another.
        let last = asked.len() + 1 == self.shipments.len() && self.units_to_come() == 0;
        let share = if last {
            total.minor_units() - taken
        } else {
            let units: i64 = parcel
                .lines
                .iter()
                .filter_map(|l| {
                    let price = self.lines.iter().find(|o| o.sku == l.sku)?.unit_price;
                    Some(price.minor_units() * i64::from(l.quantity.get()))
                })
                .sum();
            let shipping = if asked.is_empty() {
                self.totals.shipping.minor_units()
            } else {
                0
            };
            (units + shipping).min(total.minor_units() - taken)
        };
        let amount = Money::new(share, total.currency()).ok()?;
        (share > 0).then_some((parcel.number, amount, !last))
    }

    /// Whether the money is being taken parcel by parcel: a share was asked for a parcel (the
    /// order went on so after units called off left it one parcel).
    fn captures_by_parcel(&self) -> bool {
        self.payment
            .requests
            .iter()
            .any(|r| r.kind == PspRequestKind::Capture && r.shipment.is_some())
    }

    /// What is still owed once every parcel left with its share asked and nothing more is to
    /// come, when no share was asked as the last: a share that failed, or the rest after the
    /// last units waiting were called off. Asked once, with the last parcel, as the final
    /// capture (it releases what the hold keeps beyond it); if that fails too, staff see it.
    fn rest_due(&self) -> Option<(u32, Money)> {
        let captures = || {
            self.payment
                .requests
                .iter()
                .filter(|r| r.kind == PspRequestKind::Capture)
        };
        if self.units_to_come() > 0
            || captures().any(|r| !r.more_follow)
            || self.shipments.is_empty()
            || !self.shipments.iter().all(|s| s.has_left())
        {
            return None;
        }
        let captured: i64 = self.payment.captured_minor() - self.taken_under_replaced();
        let rest = self.totals.total.minor_units() - captured;
        let last = self
            .shipments
            .iter()
            .max_by_key(|s| (s.shipped_at, s.number))?;
        let amount = Money::new(rest, self.totals.total.currency()).ok()?;
        (rest > 0).then_some((last.number, amount))
    }

    /// Asks the PSP to capture `amount` of the payment `reference` for parcel `shipment`.
    fn ask_capture(
        &mut self,
        reference: Option<String>,
        amount: Money,
        shipment: Option<u32>,
        more_follow: bool,
        now: DateTime<Utc>,
    ) {
        let n = self
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Capture)
            .count()
            + 1;
        self.payment.requests.push(PspRequest {
            request_id: format!("{}-{}-{n}", self.id, PspRequestKind::Capture.as_str()),
            kind: PspRequestKind::Capture,
            amount,
            psp_reference: reference,
            requested_at: now,
            shipment,
            more_follow,
        });
    }

    /// Asks the PSP for `kind` on the payment `reference` unless it was asked already.
    fn ask(&mut self, kind: PspRequestKind, reference: Option<String>, now: DateTime<Utc>) {
        if self.payment.asked(kind, reference.as_deref()) {
            return;
        }
        // A void releases what the payment held (more than the total, after units were called
        // off); a capture takes the total.
        let amount = match kind {
            PspRequestKind::Void => self
                .payment
                .held_amount(reference.as_deref())
                .and_then(|minor| Money::new(minor, self.totals.total.currency()).ok())
                .unwrap_or(self.totals.total),
            PspRequestKind::Capture => self.totals.total,
        };
        self.ask_for(kind, reference, amount, now);
    }

    /// Asks the PSP for `kind` of `amount` on the payment `reference`.
    fn ask_for(
        &mut self,
        kind: PspRequestKind,
        reference: Option<String>,
        amount: Money,
        now: DateTime<Utc>,
    ) {
        let n = self
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == kind)
            .count()
            + 1;
        self.payment.requests.push(PspRequest {
            request_id: format!("{}-{}-{n}", self.id, kind.as_str()),
            kind,
            amount,
            psp_reference: reference,
            requested_at: now,
            shipment: None,
            more_follow: false,
        });
    }

    /// When the order's payment window opened: when it was placed, or when the PSP last
    /// released its hold, if it waits for a new payment since.
    fn payment_window_opened_at(&self) -> DateTime<Utc> {
        match self.payment.released_at() {
            Some(at) if self.payment.voided() => at.max(self.created_at),
            _ => self.created_at,
        }
    }

    /// When the order expires unless it is paid for: the end of its payment window, while it
    /// is `PENDING` or `RESERVED` and nothing is held or taken.
    pub fn payment_due_by(&self, policy: &PaymentPolicy) -> Option<DateTime<Utc>> {
        if let Some(due) = self.awaiting_edit().and_then(|e| e.due_by) {
            return Some(due);
        }
        if self.replacement_for.is_some() {
            return None;
        }
        (matches!(self.status, OrderStatus::Pending | OrderStatus::Reserved)
            && self.payment_status().is_unpaid())
        .then(|| self.payment_window_opened_at() + policy.authorization_window)
    }

    /// Calls off an order that was not authorized within the policy's window: `PENDING` or
    /// `RESERVED` → `CANCELLED`, as expired, releasing what it reserved in the same write.
    pub fn expire(
        &self,
        policy: &PaymentPolicy,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, ExpireError> {
        if !matches!(self.status, OrderStatus::Pending | OrderStatus::Reserved) {
            return Err(ExpireError::NotOpen(self.status.as_str()));
        }
        // An edit whose new total was not paid in time is what expires: it is undone, and the
        // order goes on as it was.
        if self.awaiting_edit().is_some() {
            return self.undo_unpaid_edit(now).ok_or(ExpireError::NotYet);
        }
        // An exchange's replacement waits for the difference it owes: its units stand for
        // goods the customer already sent back, so it is not called off unpaid (staff may
        // cancel it).
        if self.replacement_for.is_some() {
            return Err(ExpireError::Replacement);
        }
        let status = self.payment_status();
        if !status.is_unpaid() {
            return Err(ExpireError::Paid(status.as_str()));
        }
        if self.payment_due_by(policy).is_some_and(|due| now < due) {
            return Err(ExpireError::NotYet);
        }
        let window = policy.authorization_window;
        let reason = match window.num_minutes() {
            0 => format!("not paid within {} seconds", window.num_seconds()),
            1 => "not paid within 1 minute".to_owned(),
            minutes => format!("not paid within {minutes} minutes"),
        };
        let releases = self.status == OrderStatus::Reserved;
        let next = self.record(now, Some(format!("expired: {reason}")), |next| {
            next.status = OrderStatus::Cancelled;
            next.cancellation = Some(Cancellation {
                reason,
                by: "system".into(),
                at: now,
                expired: true,
                key: None,
                fingerprint: None,
            });
            // Nothing counted is held, but a hold that was not the order's may be: released.
            next.request_what_is_due(policy.capture, now);
            OrderEvent::Expired
        });
        Ok(if releases {
            OrderChange::with_lines(next, StockMovement::Release)
        } else {
            OrderChange::order_only(next)
        })
    }

    /// Puts what the sweep watches of the order's money in front of staff if it is due: a
    /// capture the PSP has not confirmed in time, or an authorization near its capture deadline.
    /// `None` if neither is due (or already flagged).
    pub fn flag_payment(&self, policy: &PaymentPolicy, now: DateTime<Utc>) -> Option<Order> {
        self.flag_unconfirmed_capture(policy, now)
            .or_else(|| self.flag_authorization_deadline(policy, now))
    }

    /// Puts a capture asked of the PSP and not confirmed within the policy's time in front of
    /// staff. `None` if it is not due (or already flagged).
    pub fn flag_unconfirmed_capture(
        &self,
        policy: &PaymentPolicy,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        let since = self.capture_requested_since()?;
        if now < since + policy.capture_confirmation {
            return None;
        }
        Some(self.record(
            now,
            Some("payment: the capture asked of the PSP is not confirmed".into()),
            |next| {
                next.payment.capture_flagged_at = Some(now);
                OrderEvent::Updated
            },
        ))
    }

    /// Puts an authorization that nears the PSP's capture deadline, uncaptured, in front of
    /// staff. `None` if it is not due (or already flagged).
    pub fn flag_authorization_deadline(
        &self,
        policy: &PaymentPolicy,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        let since = self.awaiting_capture_since()?;
        if now < since + policy.authorization_lifetime - policy.deadline_margin {
            return None;
        }
        Some(self.record(
            now,
            Some("payment: the authorization nears its capture deadline".into()),
            |next| {
                next.payment.deadline_flagged_at = Some(now);
                OrderEvent::Updated
            },
        ))
    }
}

/// `49.90 EUR`, for timelines and staff.
fn format_amount(money: Money) -> String {
    let exponent = money.currency_exponent();
    let scale = 10_i64.pow(exponent);
    if exponent == 0 {
        format!("{} {}", money.minor_units(), money.currency())
    } else {
        format!(
            "{}.{:0width$} {}",
            money.minor_units() / scale,
            money.minor_units() % scale,
            money.currency(),
            width = exponent as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::order::tests::{placed, product};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 0).unwrap()
    }

    fn order() -> Order {
        placed(
            json!([{"sku": "A", "quantity": 2}]),
            &[product("A", 1000, 5)],
        )
        .reserve_all_at("BER-1", now())
        .unwrap()
    }

    fn event(id: &str, kind: PaymentEventKind, order: &Order) -> PaymentEvent {
        PaymentEvent {
            event_id: id.into(),
            kind,
            amount: order.totals.total,
            occurred_at: now(),
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        }
    }

    fn recorded(order: &Order, event: &PaymentEvent) -> Order {
        recorded_under(order, event, &PaymentPolicy::default())
    }

    fn recorded_under(order: &Order, event: &PaymentEvent, policy: &PaymentPolicy) -> Order {
        match order.record_payment(event, policy, now()).unwrap() {
            PaymentUpdate::Recorded(next) => *next,
            PaymentUpdate::Duplicate => panic!("{} was a duplicate", event.event_id),
        }
    }

    #[test]
    fn the_status_follows_the_ledger_in_any_order() {
        use PaymentEventKind::*;
        let order = order();
        assert_eq!(order.payment_status(), PaymentStatus::Pending);
        let auth = event("e1", AuthorizationSucceeded, &order);
        let capture = event("e2", CaptureSucceeded, &order);
        let in_order = recorded(&recorded(&order, &auth), &capture);
        let reversed = recorded(&recorded(&order, &capture), &auth);
        assert_eq!(in_order.payment_status(), PaymentStatus::Paid);
        assert_eq!(reversed.payment_status(), PaymentStatus::Paid);
        assert_eq!(
            recorded(&order, &auth).payment_status(),
            PaymentStatus::Authorized
        );
        let failed = recorded(&order, &event("e3", AuthorizationFailed, &order));
        assert_eq!(failed.payment_status(), PaymentStatus::Failed);
        assert_eq!(
            recorded(&failed, &event("e4", AuthorizationSucceeded, &order)).payment_status(),
            PaymentStatus::Authorized,
            "a customer who pays again after a decline is authorized"
        );
    }

    #[test]
    fn a_repeated_event_changes_nothing() {
        let order = order();
        let auth = event("e1", PaymentEventKind::AuthorizationSucceeded, &order);
        let once = recorded(&order, &auth);
        assert_eq!(
            once.record_payment(&auth, &PaymentPolicy::default(), now()),
            Ok(PaymentUpdate::Duplicate)
        );
        assert_eq!(once.version, order.version + 1);
    }

    #[test]
    fn a_mismatched_amount_is_recorded_counts_for_nothing_and_needs_staff() {
        let order = order();
        let mut auth = event("e1", PaymentEventKind::AuthorizationSucceeded, &order);
        auth.amount = Money::new(1, Currency::parse("EUR").unwrap()).unwrap();
        let next = recorded(&order, &auth);
        assert_eq!(next.payment_status(), PaymentStatus::Pending);
        assert!(next.payment.ledger[0].mismatch.is_some());
        let attention = next.payment_attention().unwrap();
        assert_eq!(attention.reason, AttentionReason::AmountMismatch);
        auth.event_id = "e2".into();
        auth.amount = Money::new(
            order.totals.total.minor_units(),
            Currency::parse("USD").unwrap(),
        )
        .unwrap();
        let usd = recorded(&order, &auth);
        assert_eq!(
            usd.payment_status(),
            PaymentStatus::Pending,
            "wrong currency"
        );
    }

    #[test]
    fn a_mismatched_hold_is_voided_when_the_order_is_called_off_and_then_needs_no_one() {
        let order = order();
        let mut auth = event("e1", PaymentEventKind::AuthorizationSucceeded, &order);
        auth.amount = Money::new(1, Currency::parse("EUR").unwrap()).unwrap();
        let flagged = recorded(&order, &auth);
        assert!(
            flagged.payment.requests.is_empty(),
            "nothing is voided while the order may still be paid"
        );
        let cancelled = flagged
            .cancel("changed mind".into(), "c-1", now())
            .unwrap()
            .order;
        let voids: Vec<_> = cancelled
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Void)
            .collect();
        assert_eq!(voids.len(), 1, "the mismatched hold's void, once");
        assert_eq!(voids[0].psp_reference.as_deref(), Some("pi_1"));
        assert_eq!(voids[0].amount, auth.amount, "for the amount it holds");
        assert_eq!(
            cancelled.payment_attention().map(|a| a.reason),
            Some(AttentionReason::AmountMismatch),
            "in front of staff until the PSP confirms the release"
        );
        // A repeated decision asks nothing more.
        let mut again = cancelled.clone();
        again.request_what_is_due(CaptureMode::OnShipment, now());
        assert_eq!(
            again.payment.requests.len(),
            cancelled.payment.requests.len()
        );
        // The PSP's void names the payment and the amount it held: it counts, and the
        // mismatch leaves the attention list.
        let mut void = event("e2", PaymentEventKind::VoidSucceeded, &order);
        void.amount = auth.amount;
        let released = recorded(&cancelled, &void);
        assert!(released.payment.ledger[1].mismatch.is_none());
        assert_eq!(released.payment_attention(), None);
        // The order was never paid for: a stray hold released leaves it as it was.
        assert_eq!(released.payment_status(), PaymentStatus::Pending);
        assert!(released.payment.mismatched_holds().is_empty());
        // A void of another amount than the hold's is itself a mismatch.
        let mut wrong = event("e3", PaymentEventKind::VoidSucceeded, &order);
        wrong.amount = Money::new(2, Currency::parse("EUR").unwrap()).unwrap();
        let odd = recorded(&cancelled, &wrong);
        assert!(odd.payment.ledger[1].mismatch.is_some());
        assert!(odd.payment_attention().is_some());
    }

    #[test]
    fn an_order_that_expires_releases_a_mismatched_hold_too() {
        let order = order();
        let mut auth = event("e1", PaymentEventKind::AuthorizationSucceeded, &order);
        auth.amount = Money::new(1, Currency::parse("EUR").unwrap()).unwrap();
        let flagged = recorded(&order, &auth);
        let policy = PaymentPolicy::default();
        let late = flagged.created_at + policy.authorization_window + chrono::Duration::seconds(1);
        let expired = flagged.expire(&policy, late).unwrap().order;
        assert_eq!(expired.status, OrderStatus::Cancelled);
        let voids: Vec<_> = expired
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Void)
            .collect();
        assert_eq!(voids.len(), 1);
        assert_eq!(voids[0].amount, auth.amount);
        // A void the PSP reported before the hold does not release it.
        let mut early = event("e0", PaymentEventKind::VoidSucceeded, &order);
        early.amount = auth.amount;
        early.occurred_at = auth.occurred_at - chrono::Duration::seconds(60);
        let before = recorded(&expired, &early);
        assert!(
            before.payment_attention().is_some(),
            "still held, still in front of staff"
        );
    }

    #[test]
    fn staff_acknowledge_a_mismatch_and_only_a_later_one_needs_them_again() {
        let order = order();
        let mut auth = event("e1", PaymentEventKind::AuthorizationSucceeded, &order);
        auth.amount = Money::new(1, Currency::parse("EUR").unwrap()).unwrap();
        let flagged = recorded(&order, &auth);
        let later = flagged.updated_at + chrono::Duration::seconds(5);
        let settled = flagged
            .acknowledge_payment_attention("staff-1", "voided at the PSP".into(), later)
            .unwrap();
        assert_eq!(settled.payment_attention(), None, "off the attention list");
        assert_eq!(settled.version, flagged.version + 1);
        let acknowledged = &settled.payment.acknowledgments[0];
        assert_eq!(
            (acknowledged.by.as_str(), acknowledged.note.as_str()),
            ("staff-1", "voided at the PSP")
        );
        assert_eq!(acknowledged.covered[0].0, AttentionReason::AmountMismatch);
        assert!(
            settled.timeline.last().unwrap().note.is_none(),
            "staff's note stays off the timeline customers read"
        );
        assert_eq!(
            settled.acknowledge_payment_attention("staff-1", "again".into(), later),
            Err(AcknowledgeError::NothingOpen)
        );
        // A mismatch that arrives after the acknowledgment needs staff again.
        let mut second = event("e2", PaymentEventKind::AuthorizationSucceeded, &order);
        second.amount = Money::new(2, Currency::parse("EUR").unwrap()).unwrap();
        let recorded_later = match settled
            .record_payment(
                &second,
                &PaymentPolicy::default(),
                later + chrono::Duration::seconds(5),
            )
            .unwrap()
        {
            PaymentUpdate::Recorded(next) => *next,
            PaymentUpdate::Duplicate => panic!("e2 was new"),
        };
        let again = recorded_later;
        assert_eq!(
            again.payment_attention().map(|a| a.reason),
            Some(AttentionReason::AmountMismatch)
        );
    }

    #[test]
    fn shipping_asks_for_the_capture_once() {
        let order = order();
        let authorized = recorded(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        assert!(authorized.payment.requests.is_empty());
        let mut shipped = authorized.clone();
        shipped.status = OrderStatus::Shipped;
        shipped.request_what_is_due(CaptureMode::OnShipment, now());
        shipped.request_what_is_due(CaptureMode::OnShipment, now());
        assert_eq!(shipped.payment.requests.len(), 1);
        let capture = &shipped.payment.requests[0];
        assert_eq!(capture.kind, PspRequestKind::Capture);
        assert_eq!(capture.request_id, format!("{}-CAPTURE-1", order.id));
        assert_eq!(capture.psp_reference.as_deref(), Some("pi_1"));
        assert_eq!(capture.amount, order.totals.total);
    }

    #[test]
    fn capturing_at_once_asks_with_the_authorization() {
        let order = order();
        let policy = PaymentPolicy {
            capture: CaptureMode::Immediately,
            ..PaymentPolicy::default()
        };
        let PaymentUpdate::Recorded(next) = order
            .record_payment(
                &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
                &policy,
                now(),
            )
            .unwrap()
        else {
            panic!("recorded")
        };
        assert_eq!(next.payment.requests[0].kind, PspRequestKind::Capture);
    }

    #[test]
    fn an_unpaid_order_expires_after_the_window_only() {
        let order = order();
        let policy = PaymentPolicy::default();
        assert_eq!(
            order.expire(&policy, order.created_at + Duration::minutes(29)),
            Err(ExpireError::NotYet)
        );
        let change = order
            .expire(&policy, order.created_at + Duration::minutes(30))
            .unwrap();
        assert_eq!(change.order.status, OrderStatus::Cancelled);
        assert_eq!(change.order.payment_status(), PaymentStatus::Expired);
        assert_eq!(change.moves.len(), 1, "the reservation is released");
        assert!(change.order.refunds.is_empty(), "nothing was paid");
        let authorized = recorded(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        assert_eq!(
            authorized.expire(&policy, order.created_at + Duration::hours(1)),
            Err(ExpireError::Paid("AUTHORIZED"))
        );
    }

    #[test]
    fn an_authorization_after_expiry_is_voided_and_a_capture_refunded() {
        let order = order();
        let expired = order
            .expire(
                &PaymentPolicy::default(),
                order.created_at + Duration::hours(1),
            )
            .unwrap()
            .order;
        let late = recorded(
            &expired,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        assert_eq!(late.status, OrderStatus::Cancelled);
        assert_eq!(late.payment.requests.len(), 1);
        assert_eq!(late.payment.requests[0].kind, PspRequestKind::Void);
        let voided = recorded(&late, &event("e2", PaymentEventKind::VoidSucceeded, &order));
        assert_eq!(voided.payment_status(), PaymentStatus::Voided);

        let captured = recorded(
            &expired,
            &event("e3", PaymentEventKind::CaptureSucceeded, &order),
        );
        assert_eq!(
            captured.refunds.len(),
            1,
            "a capture of a cancelled order is refunded"
        );
        assert!(captured.payment.requests.is_empty());
    }

    #[test]
    fn refunds_are_settled_by_the_psp() {
        let order = order();
        let paid = recorded(
            &order,
            &event("e1", PaymentEventKind::CaptureSucceeded, &order),
        );
        let cancelled = paid
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        let refund = cancelled.refunds[0].clone();
        assert_eq!(
            cancelled.refund_state(&refund.refund_id),
            RefundState::Requested
        );
        let mut failure = event("e2", PaymentEventKind::RefundFailed, &order);
        failure.refund_id = Some(refund.refund_id.clone());
        failure.reason = Some("card expired".into());
        let failed = recorded(&cancelled, &failure);
        assert_eq!(failed.refund_state(&refund.refund_id), RefundState::Failed);
        assert_eq!(
            failed.payment_attention().map(|a| a.reason),
            Some(AttentionReason::RefundFailed)
        );
        let mut success = event("e3", PaymentEventKind::RefundSucceeded, &order);
        success.refund_id = Some(refund.refund_id.clone());
        success.occurred_at = now() + Duration::seconds(5);
        let issued = recorded(&failed, &success);
        assert_eq!(issued.refund_state(&refund.refund_id), RefundState::Issued);
        assert_eq!(issued.payment_status(), PaymentStatus::Refunded);
        assert_eq!(issued.payment_attention(), None);
    }

    #[test]
    fn staff_ask_again_for_a_refund_the_psp_could_not_pay_out() {
        use crate::order::refunds::RefundRetryError;
        let order = order();
        let paid = recorded(
            &order,
            &event("e1", PaymentEventKind::CaptureSucceeded, &order),
        );
        let cancelled = paid
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        let first = cancelled.refunds[0].refund_id.clone();
        assert_eq!(
            cancelled.retry_refund(&first, now()),
            Err(RefundRetryError::NotFailed),
            "a refund still on its way is not asked again"
        );
        let mut failure = event("e2", PaymentEventKind::RefundFailed, &order);
        failure.refund_id = Some(first.clone());
        let failed = recorded(&cancelled, &failure);
        let again = failed.retry_refund(&first, now()).unwrap();
        assert_eq!(again.refunds.len(), 2);
        let second = again.refunds[1].refund_id.clone();
        assert_ne!(second, first);
        assert_eq!(again.refunds[1].amount, again.refunds[0].amount);
        assert_eq!(
            again.refunds[0].retried_as.as_deref(),
            Some(second.as_str())
        );
        assert_eq!(again.payment_attention(), None, "off the attention list");
        assert_eq!(
            again.refunded().0,
            order.totals.total.minor_units(),
            "owed once"
        );
        assert_eq!(
            again.retry_refund(&first, now()),
            Err(RefundRetryError::AlreadyRetried)
        );
        let mut success = event("e3", PaymentEventKind::RefundSucceeded, &order);
        success.refund_id = Some(second.clone());
        let issued = recorded(&again, &success);
        assert_eq!(issued.payment_status(), PaymentStatus::Refunded);
        assert_eq!(
            issued.retry_refund("nope", now()),
            Err(RefundRetryError::NoSuchRefund)
        );
    }

    #[test]
    fn an_uncaptured_authorization_near_its_deadline_is_flagged_once() {
        let order = order();
        let policy = PaymentPolicy::default();
        let authorized = recorded(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        assert!(authorized
            .flag_authorization_deadline(&policy, now() + Duration::days(5))
            .is_none());
        let flagged = authorized
            .flag_authorization_deadline(&policy, now() + Duration::days(6))
            .unwrap();
        assert_eq!(
            flagged.payment_attention().map(|a| a.reason),
            Some(AttentionReason::AuthorizationExpiring)
        );
        assert!(flagged
            .flag_authorization_deadline(&policy, now() + Duration::days(6))
            .is_none());
    }

    #[test]
    fn a_released_hold_waits_for_a_new_payment_and_can_expire() {
        use PaymentEventKind::*;
        let order = order();
        let authorized = recorded(&order, &event("e1", AuthorizationSucceeded, &order));
        let mut void = event("e2", VoidSucceeded, &order);
        void.occurred_at = now() + Duration::seconds(10);
        let voided = recorded(&authorized, &void);
        assert_eq!(voided.payment_status(), PaymentStatus::Voided);
        assert_eq!(
            voided.payment_attention().map(|a| a.reason),
            Some(AttentionReason::PaymentVoided)
        );
        assert!(voided
            .expire(
                &PaymentPolicy::default(),
                order.created_at + Duration::hours(1)
            )
            .is_ok());
        // The customer pays again: held again.
        let mut again = event("e3", AuthorizationSucceeded, &order);
        again.occurred_at = now() + Duration::seconds(20);
        again.psp_reference = Some("pi_2".into());
        let reauthorized = recorded(&voided, &again);
        assert_eq!(reauthorized.payment_status(), PaymentStatus::Authorized);
        assert_eq!(reauthorized.payment_attention(), None);
    }

    #[test]
    fn a_second_payment_goes_to_staff_and_the_first_is_the_one_asked_about() {
        use PaymentEventKind::*;
        let order = order();
        let first = recorded(&order, &event("e1", AuthorizationSucceeded, &order));
        let mut second = event("e2", AuthorizationSucceeded, &order);
        second.psp_reference = Some("pi_2".into());
        let twice = recorded(&first, &second);
        assert_eq!(twice.payment_status(), PaymentStatus::Authorized);
        assert_eq!(
            twice.payment_attention().map(|a| a.reason),
            Some(AttentionReason::SecondPayment)
        );
        assert_eq!(twice.payment.psp_reference(), Some("pi_1"));
        // Called off: every hold is released.
        let cancelled = twice
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        let voids: Vec<_> = cancelled
            .payment
            .requests
            .iter()
            .map(|r| {
                (
                    r.request_id.rsplit('-').next().unwrap().to_owned(),
                    r.psp_reference.clone(),
                )
            })
            .collect();
        assert_eq!(
            voids,
            [
                ("1".to_owned(), Some("pi_1".into())),
                ("2".to_owned(), Some("pi_2".into()))
            ]
        );
        // Staff release the second hold at the PSP: off the attention list.
        let mut void = event("e3", VoidSucceeded, &order);
        void.psp_reference = Some("pi_2".into());
        let released = recorded(&twice, &void);
        assert_eq!(released.payment_attention(), None);
        assert_eq!(released.payment_status(), PaymentStatus::Authorized);
    }

    /// An order of two units authorized (`pi_A`), picked and packed, whose hold the PSP
    /// released, then paid again (`pi_B`).
    fn paid_again_after_a_release() -> Order {
        use PaymentEventKind::*;
        let order = order();
        let mut auth = event("e1", AuthorizationSucceeded, &order);
        auth.psp_reference = Some("pi_A".into());
        let packed = recorded(&order, &auth)
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap();
        let mut void = event("e2", VoidSucceeded, &order);
        void.psp_reference = Some("pi_A".into());
        void.occurred_at = now() + Duration::seconds(1);
        let released = recorded(&packed, &void);
        assert_eq!(released.payment_status(), PaymentStatus::Voided);
        let mut again = event("e3", AuthorizationSucceeded, &order);
        again.psp_reference = Some("pi_B".into());
        again.occurred_at = now() + Duration::seconds(2);
        let paid = recorded(&released, &again);
        assert_eq!(paid.payment_status(), PaymentStatus::Authorized);
        assert_eq!(paid.payment_attention(), None);
        paid.start_fulfillment("BER-1", now()).unwrap()
    }

    #[test]
    fn after_a_released_hold_the_capture_names_the_new_payment() {
        let paid = paid_again_after_a_release();
        assert_eq!(
            paid.shipments.first().map(|f| f.status),
            Some(crate::order::fulfillment::FulfillmentStatus::Packed),
            "back at the step it had reached"
        );
        let shipped = paid
            .ship(
                1,
                crate::fixtures::tracking(),
                paid.shipping.estimate,
                "p",
                now(),
            )
            .unwrap();
        let requests = &shipped.payment.requests;
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].kind, PspRequestKind::Capture);
        assert_eq!(requests[0].request_id, format!("{}-CAPTURE-1", paid.id));
        assert_eq!(requests[0].psp_reference.as_deref(), Some("pi_B"));
    }

    #[test]
    fn after_a_released_hold_a_cancellation_voids_the_new_payment() {
        let paid = paid_again_after_a_release();
        // Packed: a cancellation is refused; before packing it is not — test it on the held
        // order, which waits outside the warehouse.
        let order = order();
        let mut auth = event("e1", PaymentEventKind::AuthorizationSucceeded, &order);
        auth.psp_reference = Some("pi_A".into());
        let picked = recorded(&order, &auth)
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap();
        let mut void = event("e2", PaymentEventKind::VoidSucceeded, &order);
        void.psp_reference = Some("pi_A".into());
        void.occurred_at = now() + Duration::seconds(1);
        let mut again = event("e3", PaymentEventKind::AuthorizationSucceeded, &order);
        again.psp_reference = Some("pi_B".into());
        again.occurred_at = now() + Duration::seconds(2);
        let cancelled = recorded(&recorded(&picked, &void), &again)
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        let requests = &cancelled.payment.requests;
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].kind, PspRequestKind::Void);
        assert_eq!(requests[0].psp_reference.as_deref(), Some("pi_B"));
        assert!(
            paid.payment.requests.is_empty(),
            "nothing asked before shipping"
        );
    }

    #[test]
    fn a_released_hold_takes_the_order_out_of_the_warehouse_until_paid_or_expired() {
        use crate::order::fulfillment::FulfillmentError;
        let order = order();
        let authorized = recorded(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        let picked = authorized
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap();
        let mut void = event("e2", PaymentEventKind::VoidSucceeded, &order);
        void.occurred_at = now() + Duration::seconds(1);
        let released_at = now() + Duration::minutes(40);
        let held = match picked
            .record_payment(&void, &PaymentPolicy::default(), released_at)
            .unwrap()
        {
            PaymentUpdate::Recorded(next) => *next,
            PaymentUpdate::Duplicate => panic!("recorded"),
        };
        assert_eq!(held.status, OrderStatus::Reserved, "off the pick list");
        assert_eq!(held.status_since(), released_at);
        assert_eq!(
            held.pack(1, crate::fixtures::parcel(), "p", released_at),
            Err(FulfillmentError::AwaitingPayment("VOIDED"))
        );
        let policy = PaymentPolicy::default();
        assert_eq!(
            held.expire(&policy, released_at + Duration::minutes(29)),
            Err(ExpireError::NotYet),
            "the window counts from the release"
        );
        let expired = held
            .expire(&policy, released_at + Duration::minutes(30))
            .unwrap();
        assert_eq!(expired.order.status, OrderStatus::Cancelled);
        assert_eq!(expired.moves.len(), 1, "its stock is released");
        assert!(expired.order.payment.requests.is_empty(), "nothing is held");
    }

    #[test]
    fn a_refund_waits_for_the_capture_it_gives_back() {
        use crate::events::refund_events;

        let delivered =
            crate::fixtures::delivered_order("01JDAAAAAAAAAAAAAAAAAAAAAA", "customer-ada", now());
        let capture = delivered.payment.requests[0].clone();
        assert_eq!(capture.kind, PspRequestKind::Capture);
        let later = now() + Duration::days(1);
        let received = delivered
            .returned_for_test("MUG-WHITE", 1, "RECYCLE", later)
            .unwrap()
            .order;
        let refund = received.refunds[0].clone();
        assert!(refund.awaiting_capture);
        assert_eq!(
            received.refund_state(&refund.refund_id),
            RefundState::AwaitingCapture
        );
        assert!(
            refund_events(None, Some(&received)).is_empty(),
            "nothing is asked back before it was taken"
        );
        let captured = recorded(
            &received,
            &PaymentEvent {
                event_id: "cap-1".into(),
                kind: PaymentEventKind::CaptureSucceeded,
                amount: received.totals.total,
                occurred_at: later,
                psp_reference: capture.psp_reference.clone(),
                refund_id: None,
                request_id: None,
                reason: None,
            },
        );
        let announced = refund_events(Some(&received), Some(&captured));
        assert_eq!(announced.len(), 1);
        assert_eq!(announced[0].id, refund.refund_id);
        assert_eq!(announced[0].data.refund.amount, refund.amount);
        assert_eq!(announced[0].data.psp_reference, capture.psp_reference);
        assert_eq!(
            captured.refund_state(&refund.refund_id),
            RefundState::Requested
        );
        assert!(refund_events(Some(&captured), Some(&captured)).is_empty());
    }

    fn immediately() -> PaymentPolicy {
        PaymentPolicy {
            capture: CaptureMode::Immediately,
            ..PaymentPolicy::default()
        }
    }

    #[test]
    fn a_capture_left_unanswered_on_a_cancelled_order_is_still_watched() {
        let order = order();
        let policy = immediately();
        let authorized = recorded_under(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
            &policy,
        );
        let cancelled = authorized
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        assert_eq!(
            cancelled.payment.requests.len(),
            1,
            "the void waits for the capture's answer"
        );
        assert_eq!(cancelled.capture_requested_since(), Some(now()));
        let flagged = cancelled
            .flag_payment(&policy, now() + Duration::hours(1))
            .unwrap();
        assert_eq!(
            flagged.payment_attention().map(|a| a.reason),
            Some(AttentionReason::CaptureUnconfirmed)
        );
    }

    #[test]
    fn a_capture_answered_without_a_reference_is_the_payment_it_was_asked_of() {
        use crate::events::refund_events;
        let order = order();
        let policy = immediately();
        let authorized = recorded_under(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
            &policy,
        );
        let mut unnamed = event("e2", PaymentEventKind::CaptureSucceeded, &order);
        unnamed.psp_reference = None;
        let captured = recorded(&authorized, &unnamed);
        assert_eq!(captured.payment_status(), PaymentStatus::Paid);
        assert_eq!(captured.payment_attention(), None, "not a second payment");
        let cancelled = captured
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        assert!(
            cancelled
                .payment
                .requests
                .iter()
                .all(|r| r.kind == PspRequestKind::Capture),
            "no void of money already taken: {:?}",
            cancelled.payment.requests
        );
        let refunds = refund_events(None, Some(&cancelled));
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].data.psp_reference.as_deref(), Some("pi_1"));
    }

    #[test]
    fn a_flag_raised_for_an_answered_capture_does_not_stand_for_the_next() {
        let order = order();
        let mut shipped = recorded(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        shipped.status = OrderStatus::Shipped;
        shipped.request_what_is_due(CaptureMode::OnShipment, now());
        let policy = PaymentPolicy::default();
        let flagged = shipped
            .flag_payment(&policy, now() + Duration::hours(1))
            .unwrap();
        let failed = recorded(
            &flagged,
            &event("e2", PaymentEventKind::CaptureFailed, &order),
        );
        assert_eq!(failed.capture_requested_since(), None, "answered");
        assert_ne!(
            failed.payment_attention().map(|a| a.reason),
            Some(AttentionReason::CaptureUnconfirmed)
        );
    }

    #[test]
    fn a_capture_the_psp_does_not_confirm_in_time_goes_to_staff() {
        let order = order();
        let mut shipped = recorded(
            &order,
            &event("e1", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        shipped.status = OrderStatus::Shipped;
        shipped.request_what_is_due(CaptureMode::OnShipment, now());
        let policy = PaymentPolicy::default();
        assert_eq!(shipped.capture_requested_since(), Some(now()));
        assert_eq!(shipped.awaiting_capture_since(), None);
        assert!(shipped
            .flag_payment(&policy, now() + Duration::minutes(59))
            .is_none());
        let flagged = shipped
            .flag_payment(&policy, now() + Duration::minutes(60))
            .unwrap();
        assert_eq!(
            flagged.payment_attention().map(|a| a.reason),
            Some(AttentionReason::CaptureUnconfirmed)
        );
        assert!(flagged
            .flag_payment(&policy, now() + Duration::minutes(61))
            .is_none());
        let confirmed = recorded(
            &flagged,
            &event("e2", PaymentEventKind::CaptureSucceeded, &order),
        );
        assert_eq!(confirmed.payment_attention(), None);
    }

    #[test]
    fn a_capture_names_the_authorized_payment_not_a_declined_one() {
        use PaymentEventKind::*;
        let order = order();
        let mut declined = event("e1", AuthorizationFailed, &order);
        declined.psp_reference = Some("pi_declined".into());
        let mut paid = event("e2", AuthorizationSucceeded, &order);
        paid.psp_reference = Some("pi_paid".into());
        let mut shipped = recorded(&recorded(&order, &declined), &paid);
        shipped.status = OrderStatus::Shipped;
        shipped.request_what_is_due(CaptureMode::OnShipment, now());
        assert_eq!(
            shipped.payment.requests[0].psp_reference.as_deref(),
            Some("pi_paid")
        );
    }

    #[test]
    fn a_capture_on_its_way_is_not_voided_under_it() {
        use PaymentEventKind::*;
        let order = order();
        let policy = PaymentPolicy {
            capture: CaptureMode::Immediately,
            ..PaymentPolicy::default()
        };
        let PaymentUpdate::Recorded(authorized) = order
            .record_payment(&event("e1", AuthorizationSucceeded, &order), &policy, now())
            .unwrap()
        else {
            panic!("recorded")
        };
        let cancelled = authorized
            .cancel("changed my mind".into(), "customer", now())
            .unwrap()
            .order;
        let kinds = |o: &Order| {
            o.payment
                .requests
                .iter()
                .map(|r| r.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&cancelled), [PspRequestKind::Capture], "no void yet");
        let failed = recorded(&cancelled, &event("e2", CaptureFailed, &order));
        assert_eq!(
            kinds(&failed),
            [PspRequestKind::Capture, PspRequestKind::Void],
            "the capture failed: the hold is voided"
        );
        assert_eq!(failed.payment_attention(), None, "nothing is owed");
        let captured = recorded(&cancelled, &event("e3", CaptureSucceeded, &order));
        assert_eq!(
            captured.refunds.len(),
            1,
            "the capture succeeded: it is refunded"
        );
    }

    #[test]
    fn a_parcel_leaves_only_against_money_held() {
        use PaymentEventKind::*;
        let order = order();
        let packed = recorded(&order, &event("e1", AuthorizationSucceeded, &order))
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap();
        let mut void = event("e2", VoidSucceeded, &order);
        void.occurred_at = now() + Duration::seconds(1);
        let voided = recorded(&packed, &void);
        assert!(matches!(
            voided.ship(
                1,
                crate::fixtures::tracking(),
                order.shipping.estimate,
                "p",
                now()
            ),
            Err(crate::order::fulfillment::FulfillmentError::AwaitingPayment("VOIDED"))
        ));
        assert!(packed
            .ship(
                1,
                crate::fixtures::tracking(),
                order.shipping.estimate,
                "p",
                now()
            )
            .is_ok());
    }

    /// Declines past the first few are acknowledged and not recorded: a card retried again and
    /// again never fills the ledger, and the authorization that follows is recorded.
    #[test]
    fn repeated_declines_never_crowd_out_the_payment() {
        let mut order = order();
        for n in 0..40 {
            let declined = event(
                &format!("declined-{n}"),
                PaymentEventKind::AuthorizationFailed,
                &order,
            );
            if let PaymentUpdate::Recorded(next) = order
                .record_payment(&declined, &PaymentPolicy::default(), now())
                .unwrap()
            {
                order = *next;
            }
        }
        assert_eq!(order.payment.ledger.len(), MAX_DECLINES_RECORDED);
        let paid = recorded(
            &order,
            &event("auth", PaymentEventKind::AuthorizationSucceeded, &order),
        );
        assert_eq!(paid.payment_status(), PaymentStatus::Authorized);
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut order = order();
        for n in 0..MAX_LEDGER_ENTRIES {
            order = recorded(
                &order,
                &event(&format!("e{n}"), PaymentEventKind::CaptureFailed, &order),
            );
        }
        assert_eq!(
            order.record_payment(
                &event("one-more", PaymentEventKind::AuthorizationSucceeded, &order),
                &PaymentPolicy::default(),
                now()
            ),
            Err(PaymentError::LedgerFull)
        );
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl Order {
    /// The order with its whole amount authorized by the PSP: for tests that need an order past
    /// the payment gate without playing the PSP.
    pub fn authorized_for_test(&self, at: DateTime<Utc>) -> Order {
        self.psp_said_for_test(PaymentEventKind::AuthorizationSucceeded, at)
    }

    /// The order with its whole amount captured by the PSP.
    pub fn captured_for_test(&self, at: DateTime<Utc>) -> Order {
        self.psp_said_for_test(PaymentEventKind::CaptureSucceeded, at)
    }

    fn psp_said_for_test(&self, kind: PaymentEventKind, at: DateTime<Utc>) -> Order {
        let event = PaymentEvent {
            event_id: format!("test-{}-{}", kind.as_str(), self.version),
            kind,
            amount: self.totals.total,
            occurred_at: at,
            psp_reference: Some(format!("psp-{}", self.id)),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        match self.record_payment(&event, &PaymentPolicy::default(), at) {
            Ok(PaymentUpdate::Recorded(next)) => *next,
            other => panic!("a test authorization was not recorded: {other:?}"),
        }
    }
}

/// The whole ledger under random sequences of PSP events (authorizations, voids, captures,
/// refunds, failures, second payments; in any order; repeated) mixed with what the order itself
/// goes through (shipping, delivery, a return, a cancellation).
#[cfg(test)]
mod ledger_properties {
    use super::*;
    use crate::events::{psp_request_events, refund_events};

    use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate};

    use crate::order::tests::{placed, product};

    use proptest::prelude::*;
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 0).unwrap()
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// A PSP event: its kind, which payment (3: none named), when (seconds after t0), a
        /// wrong amount, and which refund it settles.
        Psp {
            kind: PaymentEventKind,
            payment: u8,
            at: i64,
            wrong_amount: bool,
            refund: usize,
        },
        /// The PSP sends an earlier event again.
        Repeat(usize),
        Ship,
        Deliver,
        Return,
        Cancel,
        /// The sweep expires the order if its payment window has passed.
        Expire,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (
                proptest::sample::select(PaymentEventKind::ALL.to_vec()),
                0u8..4,
                0i64..100,
                proptest::bool::weighted(0.1),
                0usize..3,
            )
                .prop_map(|(kind, payment, at, wrong_amount, refund)| Step::Psp {
                    kind,
                    payment,
                    at,
                    wrong_amount,
                    refund
                }),
            1 => (0usize..20).prop_map(Step::Repeat),
            2 => Just(Step::Ship),
            1 => Just(Step::Deliver),
            1 => Just(Step::Return),
            1 => Just(Step::Cancel),
            1 => Just(Step::Expire),
        ]
    }

    fn psp_event(order: &Order, n: usize, step: &Step) -> Option<PaymentEvent> {
        let Step::Psp {
            kind,
            payment,
            at,
            wrong_amount,
            refund,
        } = step
        else {
            return None;
        };
        let refund = kind
            .is_refund()
            .then(|| order.refunds.get(*refund).or(order.refunds.first()))
            .flatten();
        let amount = refund.map_or(order.totals.total, |r| r.amount);
        let amount = if *wrong_amount {
            Money::new(amount.minor_units() + 1, amount.currency()).unwrap()
        } else {
            amount
        };
        Some(PaymentEvent {
            event_id: format!("evt-{n}"),
            kind: *kind,
            amount,
            occurred_at: t0() + Duration::seconds(*at),
            psp_reference: (*payment < 3).then(|| format!("pi_{payment}")),
            refund_id: refund.map(|r| r.refund_id.clone()),
            request_id: None,
            reason: None,
        })
    }

    /// What the order does with `step`, if it can (a step its state refuses changes nothing).
    fn apply(order: &Order, step: &Step, now: DateTime<Utc>) -> Order {
        let same = || order.clone();
        match step {
            Step::Psp { .. } | Step::Repeat(_) => same(),
            Step::Ship => {
                let mut next = order.clone();
                if next.status == OrderStatus::Reserved {
                    match next.start_fulfillment("BER-1", now) {
                        Ok(o) => next = o,
                        Err(_) => return same(),
                    }
                }
                for _ in 0..3 {
                    let advanced = next
                        .pick(1, "p", now)
                        .or_else(|_| next.pack(1, crate::fixtures::parcel(), "p", now))
                        .or_else(|_| {
                            next.ship(
                                1,
                                crate::fixtures::tracking(),
                                next.shipping.estimate,
                                "p",
                                now,
                            )
                        });
                    if let Ok(o) = advanced {
                        next = o;
                    }
                }
                next
            }
            Step::Deliver => {
                match order.carrier_event(1, "c1", CarrierEventKind::Delivered, None, now, now) {
                    Ok(CarrierUpdate::Applied(o)) => *o,
                    _ => same(),
                }
            }
            Step::Return => {
                if !order.returns.is_empty() {
                    return same();
                }
                order
                    .returned_for_test("A", 1, "RESTOCK", now)
                    .map_or_else(|_| same(), |c| c.order)
            }
            Step::Cancel => order
                .cancel("changed my mind".into(), "customer", now)
                .map_or_else(|_| same(), |c| c.order),
            Step::Expire => {
                let policy = PaymentPolicy::default();
                order
                    .expire(&policy, now + policy.authorization_window * 2)
                    .map_or_else(|_| same(), |c| c.order)
            }
        }
    }

    /// What the order asks of the PSP between `old` and `new` names a payment that holds the
    /// money it asks about, and never asks back more than was taken.
    fn check(old: &Order, new: &Order) -> Result<(), TestCaseError> {
        let payments = new.payment.payments();
        for request in psp_request_events(Some(old), Some(new)) {
            let named = payments
                .iter()
                .find(|p| p.reference == request.data.request.psp_reference.as_deref());
            // Or a hold that was not the order's own, released for the amount it holds.
            let mismatched = request.data.request.kind == PspRequestKind::Void
                && new
                    .payment
                    .mismatched_holds()
                    .iter()
                    .any(|(reference, amount)| {
                        request.data.request.psp_reference.as_deref() == Some(reference.as_str())
                            && *amount == request.data.request.amount
                    });
            prop_assert!(
                named.is_some_and(PspPayment::holds) || mismatched,
                "{} names {:?}, which holds nothing: {:?}",
                request.id,
                request.data.request.psp_reference,
                payments
            );
        }
        // Judged apart from the per-payment view too: while the ledger names exactly one payment,
        // nothing asked names none. (With several named and one unnamed, which the unnamed one
        // is cannot be known: it is a second payment, in front of staff.)
        let named: std::collections::BTreeSet<&str> = new
            .payment
            .ledger
            .iter()
            .filter(|e| e.mismatch.is_none())
            .filter_map(|e| e.psp_reference.as_deref())
            .collect();
        let names_one = named.len() == 1;
        if names_one {
            for request in psp_request_events(Some(old), Some(new)) {
                prop_assert!(
                    request.data.request.psp_reference.is_some(),
                    "{} names none",
                    request.id
                );
            }
            for refund in refund_events(Some(old), Some(new)) {
                prop_assert!(
                    refund.data.psp_reference.is_some(),
                    "{} names none",
                    refund.id
                );
            }
        }
        let taken = payments.iter().find(|p| p.captured);
        for refund in refund_events(Some(old), Some(new)) {
            prop_assert!(taken.is_some(), "refund {} of money never taken", refund.id);
            prop_assert_eq!(
                refund.data.psp_reference.as_deref(),
                taken.and_then(|p| p.reference)
            );
        }
        let asked: i64 = new
            .refunds
            .iter()
            .filter(|r| r.retried_as.is_none() && !r.awaiting_capture)
            .map(|r| r.amount.minor_units())
            .sum();
        let captured = if taken.is_some() {
            new.totals.total.minor_units()
        } else {
            0
        };
        prop_assert!(asked <= captured, "{asked} asked back of {captured} taken");
        // The status says what the ledger says.
        let status = new.payment_status();
        match status {
            PaymentStatus::Paid | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded => {
                prop_assert!(taken.is_some())
            }
            PaymentStatus::Authorized => {
                prop_assert!(taken.is_none() && payments.iter().any(PspPayment::holds))
            }
            PaymentStatus::Voided => prop_assert!(
                payments.iter().any(|p| p.released)
                    && !payments.iter().any(|p| p.holds() || p.captured)
            ),
            _ => prop_assert!(!payments.iter().any(|p| p.holds() || p.captured)),
        }
        // Goods never leave the warehouse without money held or taken.
        if new.status == OrderStatus::Shipped && old.status != OrderStatus::Shipped {
            prop_assert!(old.payment_status().allows_fulfillment());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn the_order_asks_only_of_money_that_is_there(steps in proptest::collection::vec(step(), 1..30)) {
            let policy = PaymentPolicy::default();
            let mut order = placed(json!([{"sku": "A", "quantity": 2}]), &[product("A", 1000, 5)])
                .reserve_all_at("BER-1", t0())
                .unwrap();
            let mut sent: Vec<PaymentEvent> = Vec::new();
            for (n, step) in steps.iter().enumerate() {
                let now = t0() + Duration::seconds(200 + n as i64);
                let event = match step {
                    Step::Repeat(i) if !sent.is_empty() => Some(sent[i % sent.len()].clone()),
                    _ => psp_event(&order, n, step),
                };
                let next = match &event {
                    Some(event) => match order.record_payment(event, &policy, now) {
                        Ok(PaymentUpdate::Recorded(next)) => *next,
                        Ok(PaymentUpdate::Duplicate) | Err(_) => order.clone(),
                    },
                    None => apply(&order, step, now),
                };
                if let Some(event) = event {
                    sent.push(event);
                }
                check(&order, &next)?;
                order = next;
            }
        }

        #[test]
        fn the_payment_status_is_the_same_whatever_order_the_events_came_in(
            steps in proptest::collection::vec(step(), 1..12),
            seed in any::<u64>(),
        ) {
            let policy = PaymentPolicy::default();
            let reserved = placed(json!([{"sku": "A", "quantity": 2}]), &[product("A", 1000, 5)])
                .reserve_all_at("BER-1", t0())
                .unwrap();
            let events: Vec<PaymentEvent> = steps
                .iter()
                .enumerate()
                .filter_map(|(n, s)| psp_event(&reserved, n, s))
                .filter(|e| !e.kind.is_refund())
                .collect();
            let mut shuffled = events.clone();
            // A permutation from the seed (Fisher–Yates with a small LCG).
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let play = |events: &[PaymentEvent]| {
                events.iter().fold(reserved.clone(), |order, e| {
                    match order.record_payment(e, &policy, t0()) {
                        Ok(PaymentUpdate::Recorded(next)) => *next,
                        _ => order,
                    }
                })
            };
            let (a, b) = (play(&events), play(&shuffled));
            prop_assert_eq!(a.payment_status(), b.payment_status());
            prop_assert_eq!(a.payment.psp_reference(), b.payment.psp_reference());
            prop_assert_eq!(
                a.payment_attention().map(|x| x.reason),
                b.payment_attention().map(|x| x.reason)
            );
        }
    }
}
