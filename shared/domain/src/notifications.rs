//! What customers are told, on which channel, in which words.
//!
//! Every customer-facing event ([`is_customer_facing`]) becomes one message per channel the
//! customer accepts ([`Preferences`]): e-mail (subject, plain text and HTML), SMS (one short
//! text) and webhook (the structured data alone, for the customer's own systems). The words come
//! from templates kept as files beside this crate (`templates/<language>/`), rendered with
//! minijinja in strict mode, so a template that names a value the context lacks fails instead of
//! sending a hole. The order's contact language picks the templates; English is the default.
//!
//! What a message says about money follows the order's payment: a cancellation or rejection
//! says a refund is on its way if one was requested, that the hold on the card is released if a
//! void was, and nothing about money if nothing was paid. A declined payment tells the customer
//! how long the order waits for another one ([`Renderer::with_payment_window`]).

use chrono::{Duration, NaiveDate};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::events::{CloudEvent, EventType, OrderEventData};
use crate::ids::CustomerId;
use crate::money::Money;
use crate::order::payments::{PaymentPolicy, PspRequestKind};
use crate::order::{Order, OrderStatus};

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Self::Email, Self::Sms, Self::Webhook];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }
}

/// Which channels a customer wants. Without a choice of their own: e-mail and SMS (where the
/// order has a phone number), no webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub email: bool,
    pub sms: bool,
    pub webhook: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            email: true,
            sms: true,
            webhook: false,
        }
    }
}

impl Preferences {
    pub fn accepts(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email,
            Channel::Sms => self.sms,
            Channel::Webhook => self.webhook,
        }
    }

    /// Parses `{email, sms, webhook}`, each a boolean; all three are required.
    pub fn parse(body: &serde_json::Value) -> Result<Self, crate::validation::ValidationErrors> {
        use crate::request::{boolean, Fields};
        let mut errors = crate::validation::ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["email", "sms", "webhook"]) else {
            return Err(errors);
        };
        let email = fields.required(&mut errors, "email", boolean);
        let sms = fields.required(&mut errors, "sms", boolean);
        let webhook = fields.required(&mut errors, "webhook", boolean);
        match (email, sms, webhook) {
            (Some(email), Some(sms), Some(webhook)) if errors.is_empty() => Ok(Preferences {
                email,
                sms,
                webhook,
            }),
            _ => Err(errors),
        }
    }
}

/// Whether customers hear of this event.
pub fn is_customer_facing(event_type: EventType) -> bool {
    matches!(
        event_type,
        EventType::OrderPlaced
            | EventType::OrderReserved
            | EventType::OrderRejected
            | EventType::OrderCancelled
            | EventType::UnitsCancelled
            | EventType::BackorderFilled
            | EventType::PromiseRevised
            | EventType::ReleaseMoved
            | EventType::OrderEdited
            | EventType::EditPaid
            | EventType::EditUndone
            | EventType::OrderShipped
            | EventType::OutForDelivery
            | EventType::OrderDelivered
            | EventType::DeliveryException
            | EventType::ReturnRequested
            | EventType::ReturnApproved
            | EventType::ReturnRejected
            | EventType::ReturnReceived
            | EventType::ReturnExpired
            | EventType::OrderExpired
            | EventType::PaymentAuthorized
            | EventType::PaymentFailed
            | EventType::PaymentVoided
            | EventType::RefundIssued
    )
}

/// One message for one channel, as the notifications topic carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event_id: String,
    pub event_type: EventType,
    pub channel: Channel,
    pub customer_id: CustomerId,
    pub order_id: String,
    pub language: &'static str,
    /// The e-mail address or phone number; absent for webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Everything a downstream system needs to build its own message.
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("a notification template failed: {0}")]
pub struct RenderError(#[from] minijinja::Error);

const LANGUAGES: [&str; 2] = ["en", "de"];
const PARTS: [&str; 4] = ["subject.txt", "text.txt", "html.html", "sms.txt"];

macro_rules! templates {
    ($($lang:literal),*) => {
        [$(
            ($lang, "subject.txt", include_str!(concat!("../templates/", $lang, "/subject.txt"))),
            ($lang, "text.txt", include_str!(concat!("../templates/", $lang, "/text.txt"))),
            ($lang, "html.html", include_str!(concat!("../templates/", $lang, "/html.html"))),
            ($lang, "sms.txt", include_str!(concat!("../templates/", $lang, "/sms.txt"))),
        )*]
    };
}

/// Makes the signed link to an order's page.
type OrderPageLink = std::sync::Arc<dyn Fn(&crate::ids::OrderId) -> String + Send + Sync>;

/// Renders notifications from the bundled templates.
pub struct Renderer {
    /// The compiled templates, built on first use: a function's cold start does not wait for
    /// them.
    env: std::sync::OnceLock<Environment<'static>>,
    /// The public base URL of the HTTP API, for links to it (return labels).
    api_url: String,
    /// The signed link to an order's page, for every message about it (none: messages carry
    /// none).
    order_pages: Option<OrderPageLink>,
    /// How long an order waits for its authorization before it expires: what a customer whose
    /// payment was declined is told they have left to pay again.
    payment_window: Duration,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// The order's language if there are templates for it, else English.
pub fn language_of(order: &Order) -> &'static str {
    let wanted = order
        .contact
        .language()
        .and_then(|l| l.split('-').next())
        .unwrap_or("en")
        .to_ascii_lowercase();
    LANGUAGES.into_iter().find(|l| *l == wanted).unwrap_or("en")
}

/// What a customer may be told of a PSP's decline code, in their language: the reasons they can
/// act on. Anything else — and above all what a PSP says of suspected fraud or a card reported
/// lost or stolen — is not repeated to the payer.
fn decline_for_customer(code: &str, language: &str) -> Option<&'static str> {
    let (en, de) = match code.to_ascii_lowercase().as_str() {
        "insufficient_funds" => ("insufficient funds", "nicht ausreichende Deckung"),
        "expired_card" => ("the card has expired", "die Karte ist abgelaufen"),
        "incorrect_cvc" | "invalid_cvc" => (
            "the security code was not accepted",
            "die Kartenprüfnummer wurde nicht akzeptiert",
        ),
        "incorrect_number" | "invalid_number" => (
            "the card number was not accepted",
            "die Kartennummer wurde nicht akzeptiert",
        ),
        "authentication_required" => (
            "the payment needs your confirmation with your bank",
            "die Zahlung muss bei Ihrer Bank bestätigt werden",
        ),
        "processing_error" => (
            "a processing error at the payment provider",
            "ein Verarbeitungsfehler beim Zahlungsanbieter",
        ),
        _ => return None,
    };
    Some(if language == "de" { de } else { en })
}

/// Money for people: `€62.00` in English, `62,00 €` in German.
pub fn format_money(money: Money, language: &str) -> String {
    let exponent = money.currency_exponent();
    let scale = 10_i64.pow(exponent);
    let (units, cents) = (money.minor_units() / scale, money.minor_units() % scale);
    let symbol = money.currency_symbol();
    let number = if exponent == 0 {
        units.to_string()
    } else {
        let separator = if language == "de" { "," } else { "." };
        format!(
            "{units}{separator}{cents:0width$}",
            width = exponent as usize
        )
    };
    if language == "de" {
        format!("{number} {symbol}")
    } else {
        format!("{symbol}{number}")
    }
}

/// A date for people: `Mon 30 Nov 2026` in English, `30.11.2026` in German.
pub fn format_date(date: NaiveDate, language: &str) -> String {
    if language == "de" {
        date.format("%d.%m.%Y").to_string()
    } else {
        date.format("%a %-d %b %Y").to_string()
    }
}

impl Renderer {
    pub fn new() -> Self {
        Renderer {
            env: std::sync::OnceLock::new(),
            api_url: String::new(),
            order_pages: None,
            payment_window: PaymentPolicy::default().authorization_window,
        }
    }

    fn env(&self) -> &Environment<'static> {
        self.env.get_or_init(|| {
            let mut env = Environment::new();
            env.set_undefined_behavior(UndefinedBehavior::Strict);
            for (lang, part, source) in templates!("en", "de") {
                let name: &'static str = Box::leak(format!("{lang}/{part}").into_boxed_str());
                env.add_template(name, source)
                    .expect("the bundled templates parse; a unit test renders each");
            }
            env
        })
    }

    /// Every message links its order's page with `link` (the order's signed link, made by the
    /// function that holds the key).
    pub fn with_order_pages(
        mut self,
        link: impl Fn(&crate::ids::OrderId) -> String + Send + Sync + 'static,
    ) -> Self {
        self.order_pages = Some(std::sync::Arc::new(link));
        self
    }

    /// Links into the API (a return label) start with `api_url`.
    pub fn with_api_url(mut self, api_url: &str) -> Self {
        self.api_url = api_url.trim_end_matches('/').to_owned();
        self
    }

    /// The payment window of the business's [`PaymentPolicy`] (the default policy's unless
    /// told), so the words match when the order-sweeper expires an unpaid order.
    pub fn with_payment_window(mut self, window: Duration) -> Self {
        self.payment_window = window;
        self
    }

    fn render_part(
        &self,
        language: &str,
        part: &str,
        context: &minijinja::Value,
    ) -> Result<String, RenderError> {
        let text = self
            .env()
            .get_template(&format!("{language}/{part}"))?
            .render(context)?;
        Ok(text.trim().to_owned())
    }

    /// The messages for one event, one per channel the customer accepts and can be reached on.
    pub fn render(
        &self,
        event: &CloudEvent<OrderEventData>,
        order: &Order,
        preferences: &Preferences,
    ) -> Result<Vec<Notification>, RenderError> {
        if !is_customer_facing(event.event_type) {
            return Ok(Vec::new());
        }
        // A released hold is told to a customer who can pay again (an order not yet in the
        // warehouse's hands, or taken out of them): one called off was told with its
        // cancellation, and one partly sent is staff's to settle (its payment is in front of
        // them).
        if event.event_type == EventType::PaymentVoided
            && !matches!(
                event.data.status,
                OrderStatus::Pending | OrderStatus::Reserved
            )
        {
            return Ok(Vec::new());
        }
        // A revised promise is told of the SKU it revised, while its units still wait, and only
        // by the latest revision of it (a message says what the order is when it is sent:
        // an older one would tell the same date twice).
        let revised = event.data.revised_sku.as_ref();
        let today = crate::replenishment::day_of(event.time);
        if matches!(
            event.event_type,
            EventType::PromiseRevised | EventType::ReleaseMoved
        ) {
            // A revised promise is told while its units wait; a release moved while the order
            // still waits for anything (released today with nothing else to wait for, it
            // leaves: its parcel's messages follow).
            let still_waits = if event.event_type == EventType::ReleaseMoved {
                order.held_for_release(today).is_some() || order.backordered() > 0
            } else {
                order
                    .lines
                    .iter()
                    .any(|l| revised.is_none_or(|sku| &l.sku == sku) && l.backordered() > 0)
            };
            let revised_since = order.last_change.as_ref().is_some_and(|c| {
                c.version > event.sequence
                    && match &c.event {
                        crate::order::history::OrderEvent::PromiseRevised { sku } => {
                            event.event_type == EventType::PromiseRevised && Some(sku) == revised
                        }
                        crate::order::history::OrderEvent::ReleaseMoved { sku } => {
                            event.event_type == EventType::ReleaseMoved && Some(sku) == revised
                        }
                        _ => false,
                    }
            });
            if order.status.is_final() || !still_waits || revised_since {
                return Ok(Vec::new());
            }
        }
        let language = language_of(order);
        let money = |m: Money| format_money(m, language);
        let tracking = event.data.tracking.as_ref();
        let name_of = |sku: &crate::ids::Sku| {
            order
                .lines
                .iter()
                .find(|l| &l.sku == sku)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| sku.to_string())
        };
        let rma = event
            .data
            .return_id
            .as_ref()
            .and_then(|id| order.find_return(id));
        // The voids asked of the PSP as the order was called off (not a hold an edit's new
        // payment replaced before, nor a stray one released then): what was held on the card
        // is released, nothing was taken — the holds themselves (more than the total, once
        // units were called off after the money was held).
        let called_off_at = order.cancellation.as_ref().map(|c| c.at);
        let voids = || {
            order
                .payment
                .requests
                .iter()
                .filter(|r| r.kind == PspRequestKind::Void)
                .filter(|r| called_off_at.is_none_or(|at| r.requested_at >= at))
        };
        let void_requested = voids().next().is_some();
        let released: i64 = voids().map(|r| r.amount.minor_units()).sum();
        // The parcel the event is about, for an order that leaves as several: its own units
        // and its own delivery estimate.
        let parcel = event.data.parcel.as_ref();
        let estimate = parcel
            .and_then(|p| order.shipment(p.shipment_id.number()).ok())
            .and_then(|s| s.estimate)
            .unwrap_or(event.data.estimate);
        let unit_cancellation = event
            .data
            .unit_cancellation_id
            .as_deref()
            .and_then(|id| order.unit_cancellations.iter().find(|c| c.id == id));
        let edit = event
            .data
            .edit_id
            .as_deref()
            .and_then(|id| order.edits.iter().find(|e| e.id == id));
        let mut data = serde_json::json!({
            "type": event.event_type.as_str(),
            "edit": edit.map(|e| serde_json::json!({
                "addressChanged": e.address_changed,
                "shipsAhead": e.ships_ahead(),
                "onlyShipsAhead": e.ships_ahead()
                    && !e.address_changed
                    && e.added.is_empty()
                    && e.shipping_before.method == e.shipping_after.method,
                "added": e.added.iter().map(|a| serde_json::json!({
                    "name": a.name, "quantity": a.quantity.get(), "backordered": a.backordered,
                    "total": money(Money::new(a.unit_price.minor_units() * i64::from(a.quantity.get()), a.unit_price.currency()).unwrap_or(a.unit_price)),
                })).collect::<Vec<_>>(),
                "methodBefore": e.shipping_before.method.as_str(),
                "methodAfter": e.shipping_after.method.as_str(),
                "totalBefore": money(e.totals_before.total),
                "totalAfter": money(e.totals_after.total),
                "dearer": e.difference() > 0,
                "awaitingPayment": e.state == crate::order::edits::EditState::AwaitingPayment,
                // It replaces a payment money was taken under: refunded once the new one is.
                "replacesTaken": order.replaces_taken(e),
                "payWithinMinutes": e.due_by.map(|due| (due - e.at).num_minutes().max(1)),
            })),
            "cancelledItems": unit_cancellation.map(|c| c.lines.iter().map(|l| serde_json::json!({
                "name": l.name, "quantity": l.quantity.get(), "total": money(l.amount),
            })).collect::<Vec<_>>()),
            "totalBefore": unit_cancellation.map(|c| money(c.totals_before.total)),
            "totalAfter": unit_cancellation.map(|c| money(c.totals_after.total)),
            "parcel": parcel.map(|p| serde_json::json!({
                "number": p.number, "of": p.of, "units": p.units, "orderUnits": p.order_units,
                "items": p.lines.iter().map(|l| serde_json::json!({
                    "name": name_of(&l.sku), "quantity": l.quantity.get(),
                })).collect::<Vec<_>>(),
            })),
            "orderId": order.id.as_str(),
            "status": event.data.status,
            "previousStatus": event.data.previous_status,
            "paymentStatus": event.data.payment_status,
            "orderRef": order_ref(order),
            "name": order.shipping.address.name(),
            "waiting": order.lines.iter().filter(|l| l.backordered() > 0)
                .filter(|l| event.event_type != EventType::PromiseRevised || revised.is_none_or(|sku| &l.sku == sku))
                .map(|l| serde_json::json!({
                "name": l.name, "backordered": l.backordered(),
                "promisedOn": l.promised_on.map(|on| format_date(on, language)),
            })).collect::<Vec<_>>(),
            "items": order.lines.iter().map(|l| serde_json::json!({
                "sku": l.sku.as_str(), "name": l.name, "quantity": l.quantity.get(),
                "unitPrice": l.unit_price, "total": money(l.line_total),
            })).collect::<Vec<_>>(),
            "method": order.shipping.method.as_str(),
            "shipComplete": order.shipping.ship_complete,
            "shipping": money(order.totals.shipping),
            "total": money(order.totals.total),
            "totals": order.totals,
            "earliest": format_date(estimate.earliest, language),
            "latest": format_date(estimate.latest, language),
            "estimate": estimate,
            "carrier": tracking.map(|t| t.carrier.clone()),
            "trackingNumber": tracking.map(|t| t.tracking_number.clone()),
            "trackingUrl": tracking.map(|t| t.tracking_url.clone()),
            "note": event.data.note,
            "shortages": event.data.shortages.iter().map(|s| serde_json::json!({
                "sku": s.sku.as_str(), "name": name_of(&s.sku), "requested": s.requested, "available": s.available,
            })).collect::<Vec<_>>(),
            "refund": event.data.refund.map(money),
            "refundId": event.data.refund_id,
            "voidRequested": void_requested,
            "released": Money::new(released, order.totals.total.currency()).ok().map(money),
            "paymentReason": event.data.payment_reason.as_deref().and_then(|r| decline_for_customer(r, language)),
            "returnId": event.data.return_id.as_ref().map(|r| r.to_string()),
            "labelUrl": event.data.return_id.as_ref().map(|r| format!("{}/returns/{r}/label", self.api_url)),
            "returnItems": rma.map(|r| r.lines.iter().map(|l| serde_json::json!({
                "sku": l.sku.as_str(), "name": l.name, "quantity": l.quantity.get(),
                "exchange": l.exchange.as_ref().map(|e| e.name.clone()),
            })).collect::<Vec<_>>()),
            "decisionNote": rma.and_then(|r| r.decision.as_ref()).and_then(|d| d.note.clone()),
            // An expired return's exchange was set aside for it, and is released.
            "exchangeReleased": rma.is_some_and(|r| r.lines.iter().any(|l| l.exchange.is_some())),
            "replacementOrderId": event.data.replacement_order_id.as_ref().map(|o| o.to_string()),
            // The return's difference due, or, for the replacement itself held for it, its total.
            "exchangeDue": rma
                .and_then(|r| r.exchange_due)
                .or_else(|| {
                    (order.replacement_for.is_some()
                        && order.totals.total.minor_units() > 0
                        && event.event_type == EventType::OrderReserved)
                        .then_some(order.totals.total)
                })
                .map(money),
            "occurredAt": event.time,
            "sequence": event.sequence,
        });
        // Whether any of it is in stock (one macro call holds only so many fields).
        data["inStock"] = (order.reserved_units() > 0).into();
        // The pre-ordered item whose release moved: its new date, none if released today.
        if let Some(line) = (event.event_type == EventType::ReleaseMoved)
            .then(|| {
                order
                    .lines
                    .iter()
                    .find(|l| revised.is_none_or(|sku| &l.sku == sku))
            })
            .flatten()
        {
            data["moved"] = serde_json::json!({
                "name": line.name,
                "on": line.release_on.filter(|on| today < *on).map(|on| format_date(on, language)),
            });
        }
        // A pre-order leaves on its release date, whatever arrived before it.
        data["releaseOn"] = order
            .held_for_release(crate::replenishment::day_of(event.time))
            .map(|on| format_date(on, language))
            .into();
        // A return staff closed before its time (not the sweep), with their note.
        let closing = rma.and_then(|r| r.closing.as_ref());
        data["closedByStaff"] = closing.is_some().into();
        data["closeNote"] = closing.and_then(|c| c.note.clone()).into();
        // What the customer did themselves on their page needs no reason told back to them
        // (the page's own words are not in their language; their own words they know).
        let by_customer = match event.event_type {
            EventType::OrderCancelled => order.cancellation.as_ref().map(|c| c.by.as_str()),
            EventType::UnitsCancelled => unit_cancellation.map(|c| c.by.as_str()),
            EventType::OrderEdited => edit.map(|e| e.by.as_str()),
            _ => None,
        } == Some("customer");
        if by_customer {
            data["note"] = serde_json::Value::Null;
        }
        // How long the customer has to pay before the order expires, from the event: none for
        // an order that does not expire (an exchange's replacement) or needs no payment.
        let policy = PaymentPolicy {
            authorization_window: self.payment_window,
            ..PaymentPolicy::default()
        };
        data["payDueInMinutes"] = order
            .payment_due_by(&policy)
            .map(|due| (due - event.time).num_minutes().max(1))
            .into();
        let context = minijinja::Value::from(minijinja::value::Serde(&data));
        // The order page's signed link opens the order for whoever holds it: in the e-mail to
        // the customer's own address alone, never in the data every channel (a webhook's
        // receiver, the queues) carries.
        let mut with_link = data.clone();
        with_link["orderUrl"] = self.order_pages.as_ref().map(|link| link(&order.id)).into();
        let email_context = minijinja::Value::from(minijinja::value::Serde(with_link));
        let mut notifications = Vec::new();
        for channel in Channel::ALL.into_iter().filter(|c| preferences.accepts(*c)) {
            let base = |to: Option<String>| Notification {
                event_id: event.id.clone(),
                event_type: event.event_type,
                channel,
                customer_id: order.customer_id.clone(),
                order_id: order.id.to_string(),
                language,
                to,
                subject: None,
                text: None,
                html: None,
                data: data.clone(),
            };
            match channel {
                Channel::Email => notifications.push(Notification {
                    subject: Some(self.render_part(language, "subject.txt", &email_context)?),
                    text: Some(self.render_part(language, "text.txt", &email_context)?),
                    html: Some(self.render_part(language, "html.html", &email_context)?),
                    ..base(Some(order.contact.email().to_owned()))
                }),
                Channel::Sms => {
                    if let Some(phone) = order.contact.phone() {
                        notifications.push(Notification {
                            text: Some(self.render_part(language, "sms.txt", &context)?),
                            ..base(Some(phone.to_owned()))
                        });
                    }
                }
                Channel::Webhook => notifications.push(base(None)),
            }
        }
        Ok(notifications)
    }
}

/// The short reference customers see: the order id's last eight characters.
fn order_ref(order: &Order) -> String {
    let id = order.id.as_str();
    id[id.len().saturating_sub(8)..].to_owned()
}

/// Every template part, for the tests that render them all.
pub fn template_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    LANGUAGES
        .into_iter()
        .flat_map(|l| PARTS.into_iter().map(move |p| (l, p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::order_event;
    use crate::ids::OrderId;
    use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate, Tracking};
    use crate::order::payments::{PaymentEvent, PaymentEventKind, PaymentUpdate};
    use crate::order::tests::product;
    use crate::request::OrderRequest;
    use crate::shipping::ShippingPolicy;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn order(language: &str) -> Order {
        let request = OrderRequest::parse(&json!({
            "lines": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}],
            "shippingMethod": "STANDARD",
            "shippingAddress": {"name": "Ada Lovelace", "line1": "12 Example Street", "city": "Berlin", "postalCode": "10115", "country": "DE"},
            "contact": {"email": "ada@example.com", "phone": "+4915112345678", "language": language}
        }))
        .unwrap();
        Order::place(
            OrderId::parse("01KAZ3Q6W8T2Y7X9V5N4M3K2J1").unwrap(),
            crate::ids::CustomerId::parse("customer-ada").unwrap(),
            &request,
            &[product("A", 1999, 5), product("B", 500, 5)],
            &ShippingPolicy::default_policy(),
            at("2026-11-25T09:00:00Z"),
        )
        .unwrap()
    }

    /// What the PSP says about `order`, recorded as the webhook records it.
    fn psp(order: &Order, event: PaymentEvent, at: DateTime<Utc>) -> Order {
        match order
            .record_payment(&event, &PaymentPolicy::default(), at)
            .unwrap()
        {
            PaymentUpdate::Recorded(next) => *next,
            PaymentUpdate::Duplicate => unreachable!(),
        }
    }

    /// One event of every customer-facing type, made by the domain's own transitions, each with
    /// the name of its snapshot: the event type, and after `__` what sets a variant apart (what
    /// a cancellation says about money, say).
    fn events(language: &str) -> Vec<(String, CloudEvent<OrderEventData>, Order)> {
        let t = at("2026-11-25T09:05:00Z");
        let placed = order(language);
        let reserved = placed.reserve_all_at("BER-1", t).unwrap();
        let rejected = placed
            .reject(
                vec![crate::order::Shortage {
                    sku: crate::ids::Sku::parse("A").unwrap(),
                    requested: 2,
                    available: 1,
                }],
                t,
            )
            .unwrap();
        let authorized = reserved.authorized_for_test(t);
        let packed = authorized
            .start_fulfillment("BER-1", t)
            .unwrap()
            .pick(1, "picker", t)
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "packer", t)
            .unwrap();
        let tracking = Tracking {
            carrier: "DHL".into(),
            tracking_number: "JJD0001".into(),
            tracking_url: "https://www.dhl.com/track?id=JJD0001".into(),
        };
        let shipped = packed
            .ship(1, tracking, packed.shipping.estimate, "packer", t)
            .unwrap();
        let carrier = |from: &Order, id: &str, kind, detail: Option<&str>| match from
            .carrier_event(1, id, kind, detail.map(str::to_owned), t, t)
            .unwrap()
        {
            CarrierUpdate::Applied(next) => *next,
            CarrierUpdate::Duplicate | CarrierUpdate::Superseded => unreachable!(),
        };
        let out = carrier(&shipped, "c1", CarrierEventKind::OutForDelivery, None);
        let exception = carrier(
            &out,
            "c2",
            CarrierEventKind::DeliveryException,
            Some("nobody at home"),
        );
        let delivered = carrier(&exception, "c3", CarrierEventKind::Delivered, None);
        let cancelled = reserved
            .captured_for_test(t)
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        // Called off while only authorized: the hold is voided, nothing refunded.
        let cancelled_authorized = authorized
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        // Called off before any payment: nothing to give back.
        let cancelled_unpaid = reserved
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        // A declined card, then no other payment within the window.
        let decline = |order: &Order| PaymentEvent {
            event_id: "evt_declined".into(),
            kind: PaymentEventKind::AuthorizationFailed,
            amount: order.totals.total,
            occurred_at: t,
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: Some("insufficient_funds".into()),
        };
        let declined = psp(&reserved, decline(&reserved), t);
        // Declined for an order the customer called off already: nothing to do.
        let declined_late = psp(&cancelled_unpaid, decline(&cancelled_unpaid), t);
        // Paid before the stock was confirmed.
        let authorized_early = placed.authorized_for_test(t);
        let expired = declined
            .expire(
                &PaymentPolicy::default(),
                declined.created_at + PaymentPolicy::default().authorization_window,
            )
            .unwrap()
            .order;
        // The PSP pays the cancellation's refund out.
        let refund = &cancelled.refunds[0];
        let refunded = psp(
            &cancelled,
            PaymentEvent {
                event_id: "evt_refunded".into(),
                kind: PaymentEventKind::RefundSucceeded,
                amount: refund.amount,
                occurred_at: t,
                psp_reference: Some("pi_1".into()),
                refund_id: Some(refund.refund_id.clone()),
                request_id: None,
                reason: None,
            },
            t,
        );
        // Returns, a week after delivery: one left for staff and rejected, one approved at once
        // with an exchange, then received with a refund for the line that is not exchanged.
        let later = at("2026-12-02T10:00:00Z");
        let policy = crate::order::returns::policy::ReturnPolicy::default_policy();
        let catalog = [
            crate::order::tests::product("A-LARGE", 1999, 5),
            crate::order::tests::product("A-GOLD", 2999, 5),
        ];
        let request = |body: serde_json::Value| {
            crate::request::returns::ReturnRequest::parse(&serde_json::json!({ "lines": body }))
                .unwrap()
        };
        let key = |k: &str| crate::ids::IdempotencyKey::parse(k).unwrap();
        let requested = delivered
            .request_return(
                &request(serde_json::json!([{"sku": "A", "quantity": 1, "reason": "OTHER"}])),
                key("k1"),
                &catalog,
                &policy,
                later,
            )
            .unwrap()
            .order;
        let id = |o: &Order| o.returns.last().unwrap().return_id.clone();
        let rejected_return = requested
            .decide_return(
                &id(&requested),
                false,
                "admin",
                Some("the item was used".into()),
                later,
            )
            .unwrap()
            .order;
        let approved = rejected_return
            .request_return(
                &request(serde_json::json!([
                    {"sku": "A", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "A-LARGE"},
                    {"sku": "B", "quantity": 1, "reason": "DAMAGED"}
                ])),
                key("k2"),
                &catalog,
                &policy,
                later,
            )
            .unwrap()
            .order;
        // Nothing arrived for it within the policy's days: closed, its exchange released.
        let return_expired = approved
            .expire_return(&policy, later + chrono::Duration::days(31))
            .expect("due")
            .order;
        // Staff close it before its time: the customer will not send it.
        let return_closed = approved
            .close_return(
                &id(&approved),
                "admin staff-1",
                Some("you told us you keep it".into()),
                later,
            )
            .unwrap()
            .order;
        let received = approved
            .receive_return(
                &id(&approved),
                &crate::request::returns::ReceiptRequest::parse(&serde_json::json!({"lines": [
                    {"sku": "A", "quantity": 1, "disposition": "RESTOCK"},
                    {"sku": "B", "quantity": 1, "disposition": "DISCARD"}
                ]}))
                .unwrap(),
                "warehouse",
                &policy,
                &crate::shipping::ShippingPolicy::default_policy(),
                later,
            )
            .unwrap()
            .order;
        // The other A exchanged for a dearer one: the difference is paid before it ships.
        let dearer = received
            .request_return(
                &request(serde_json::json!([
                    {"sku": "A", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "A-GOLD"}
                ])),
                key("k3"),
                &catalog,
                &policy,
                later,
            )
            .unwrap()
            .order;
        let received_dearer = dearer
            .receive_return(
                &id(&dearer),
                &crate::request::returns::ReceiptRequest::parse(&serde_json::json!({"lines": [
                    {"sku": "A", "quantity": 1, "disposition": "RESTOCK"}
                ]}))
                .unwrap(),
                "warehouse",
                &policy,
                &crate::shipping::ShippingPolicy::default_policy(),
                later,
            )
            .unwrap()
            .order;
        let replacement_due = dearer
            .receive_return(
                &id(&dearer),
                &crate::request::returns::ReceiptRequest::parse(&serde_json::json!({"lines": [
                    {"sku": "A", "quantity": 1, "disposition": "RESTOCK"}
                ]}))
                .unwrap(),
                "warehouse",
                &policy,
                &crate::shipping::ShippingPolicy::default_policy(),
                later,
            )
            .unwrap()
            .created
            .map(|mut replacement| {
                // Its id is new each run: a fixed one keeps the snapshot the same.
                replacement.id = crate::ids::OrderId::parse("01KAZ3Q6W8T2Y7X9V5N4M3R3P1").unwrap();
                replacement
            })
            .expect("a replacement for the difference");
        // One of the two A called off while the money is only held, and once it was taken.
        let one_fewer = crate::request::staff::UnitCancelRequest::parse(&serde_json::json!({
            "lines": [{"sku": "A", "quantity": 1}], "reason": "one is enough"
        }))
        .unwrap();
        let requote = |_: Option<&str>, grams: u64| Some(490 + 50 * grams.div_ceil(1000) as i64);
        let smaller_held = authorized
            .cancel_units(&one_fewer, "u1", "customer", requote, t)
            .unwrap()
            .order;
        let paid = reserved.captured_for_test(t);
        let smaller_paid = paid
            .cancel_units(&one_fewer, "u2", "admin", requote, t)
            .unwrap()
            .order;
        // One of the two A waits for stock, expected on a date; then it arrives.
        let sku_a = crate::ids::Sku::parse("A").unwrap();
        let waiting = placed
            .reserve_backordering(
                &crate::routing::Plan {
                    shipments: vec![crate::routing::PlannedShipment {
                        location: "BER-1".into(),
                        lines: vec![
                            (sku_a.clone(), 1),
                            (crate::ids::Sku::parse("B").unwrap(), 1),
                        ],
                        weight_grams: 0,
                        cost: 0,
                    }],
                },
                &[crate::order::Backordered {
                    sku: sku_a.clone(),
                    units: 1,
                    location: "BER-1".into(),
                    promised_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 14),
                }],
                t,
            )
            .unwrap();
        let filled = waiting
            .authorized_for_test(t)
            .fill_backorder(&sku_a, 1, t)
            .unwrap();
        let waiting_paid = waiting.authorized_for_test(t);
        // One that ships what is there: both A wait, B leaves first; one A arrives.
        let mut ships_what_is_there = placed.clone();
        ships_what_is_there.shipping.ship_complete = false;
        let both_waiting = ships_what_is_there
            .reserve_backordering(
                &crate::routing::Plan {
                    shipments: vec![crate::routing::PlannedShipment {
                        location: "BER-1".into(),
                        lines: vec![(crate::ids::Sku::parse("B").unwrap(), 1)],
                        weight_grams: 0,
                        cost: 0,
                    }],
                },
                &[crate::order::Backordered {
                    sku: sku_a.clone(),
                    units: 2,
                    location: "BER-1".into(),
                    promised_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 14),
                }],
                t,
            )
            .unwrap();
        let both_waiting_paid = both_waiting.authorized_for_test(t);
        let one_arrived = both_waiting_paid.fill_backorder(&sku_a, 1, t).unwrap();
        // One waiting whole, told to send what is there ahead.
        let sent_ahead = waiting_paid
            .edit(
                &crate::order::commands::OrderEditRequest {
                    shipping_address: None,
                    shipping_method: None,
                    add_lines: Vec::new(),
                    ship_complete: Some(false),
                    reason: "what is there now, please".into(),
                },
                "ahead",
                "customer",
                &crate::shipping::ShippingPolicy::default_policy(),
                |_| Some("domestic".into()),
                &[],
                chrono::Duration::minutes(30),
                t,
            )
            .unwrap()
            .order;
        // Edits: dearer while the money is held (then paid, or undone), dearer before any
        // payment, cheaper once the money was taken.
        let edit_with =
            |order: &Order, request: crate::order::commands::OrderEditRequest, key: &str| {
                order
                    .edit(
                        &request,
                        key,
                        "admin",
                        &crate::shipping::ShippingPolicy::default_policy(),
                        |_| Some("domestic".into()),
                        &[crate::order::tests::product("B", 500, 5)],
                        chrono::Duration::minutes(30),
                        t,
                    )
                    .unwrap()
                    .order
            };
        let edit = |order: &Order, method: crate::shipping::ShippingMethod, key: &str| {
            let request = crate::order::commands::OrderEditRequest {
                shipping_address: None,
                shipping_method: Some(method),
                add_lines: Vec::new(),
                ship_complete: None,
                reason: "asked by phone".into(),
            };
            edit_with(order, request, key)
        };
        let with_more = edit_with(
            &reserved,
            crate::order::commands::OrderEditRequest {
                shipping_address: None,
                shipping_method: None,
                add_lines: vec![crate::order::commands::RequestedLine {
                    sku: crate::ids::Sku::parse("B").unwrap(),
                    quantity: crate::quantity::Quantity::new(2).unwrap(),
                }],
                ship_complete: None,
                reason: "the customer called".into(),
            },
            "e4",
        );
        use crate::shipping::ShippingMethod::{Express, Standard};
        let in_warehouse = authorized.start_fulfillment("BER-1", t).unwrap();
        let dearer_held = edit(&in_warehouse, Express, "e1");
        let edit_paid = psp(
            &dearer_held,
            PaymentEvent {
                event_id: "evt_edit".into(),
                kind: PaymentEventKind::AuthorizationSucceeded,
                amount: dearer_held.totals.total,
                occurred_at: t,
                psp_reference: Some("pi_2".into()),
                refund_id: None,
                request_id: None,
                reason: None,
            },
            t,
        );
        let edit_undone = dearer_held
            .expire(&PaymentPolicy::default(), t + chrono::Duration::hours(1))
            .unwrap()
            .order;
        let dearer_unpaid = edit(&reserved, Express, "e2");
        let express_paid = dearer_unpaid.captured_for_test(t);
        let cheaper_paid = edit(&express_paid, Standard, "e3");
        // Dearer once the money was taken: a new payment of the whole total, the first
        // refunded once it is taken.
        let dearer_taken = edit(
            &express_paid,
            crate::shipping::ShippingMethod::Overnight,
            "e5",
        );
        let dearer_taken_paid = psp(
            &dearer_taken,
            PaymentEvent {
                event_id: "evt_edit_taken".into(),
                kind: PaymentEventKind::AuthorizationSucceeded,
                amount: dearer_taken.totals.total,
                occurred_at: t,
                psp_reference: Some("pi_3".into()),
                refund_id: None,
                request_id: None,
                reason: None,
            },
            t,
        );
        // The PSP released the hold of an order in the warehouse (it lapsed, say): out of the
        // warehouse, and the customer asked to pay again.
        let released = psp(
            &in_warehouse,
            PaymentEvent {
                event_id: "evt_released".into(),
                kind: PaymentEventKind::VoidSucceeded,
                amount: in_warehouse.totals.total,
                occurred_at: t,
                psp_reference: Some(format!("psp-{}", in_warehouse.id)),
                refund_id: None,
                request_id: None,
                reason: None,
            },
            t,
        );
        // The customer paid the old total as staff made the order dearer: that hold is
        // released at once; then the customer cancels. Nothing was held for the order then.
        let stray_released = psp(
            &dearer_unpaid,
            PaymentEvent {
                event_id: "evt_old_total".into(),
                kind: PaymentEventKind::AuthorizationSucceeded,
                amount: reserved.totals.total,
                occurred_at: t,
                psp_reference: Some("pi_old".into()),
                refund_id: None,
                request_id: None,
                reason: None,
            },
            t,
        );
        assert!(stray_released
            .payment
            .requests
            .iter()
            .any(|r| r.kind == PspRequestKind::Void));
        let cancelled_after_stray = stray_released
            .cancel(
                "changed my mind".into(),
                "customer",
                t + Duration::minutes(1),
            )
            .unwrap()
            .order;
        // The delivery it waits for slips to a later one; then that is closed short: no date
        // any more.
        let dated = waiting_paid
            .revise_promise(&sku_a, NaiveDate::from_ymd_opt(2026, 12, 21), t)
            .unwrap();
        let undated = dated.revise_promise(&sku_a, None, t).unwrap();
        // An exchange's replacement never expires: its declined payment threatens no expiry.
        let replacement_declined = psp(&replacement_due, decline(&replacement_due), t);
        let change = |old: Option<&Order>, new: &Order, variant: Option<&str>| {
            let event = order_event(old, Some(new)).unwrap();
            let name = match variant {
                Some(variant) => format!("{}__{variant}", event.event_type.as_str()),
                None => event.event_type.as_str().to_owned(),
            };
            (name, event, new.clone())
        };
        vec![
            change(None, &placed, None),
            change(Some(&placed), &reserved, None),
            change(Some(&placed), &rejected, None),
            change(Some(&reserved), &authorized, None),
            change(Some(&placed), &authorized_early, Some("before-reservation")),
            change(Some(&reserved), &declined, None),
            change(
                Some(&cancelled_unpaid),
                &declined_late,
                Some("after-cancellation"),
            ),
            change(Some(&declined), &expired, None),
            change(Some(&reserved), &cancelled, None),
            change(Some(&authorized), &cancelled_authorized, Some("authorized")),
            change(Some(&reserved), &cancelled_unpaid, Some("unpaid")),
            change(Some(&cancelled), &refunded, None),
            change(Some(&packed), &shipped, None),
            change(Some(&shipped), &out, None),
            change(Some(&out), &exception, None),
            change(Some(&exception), &delivered, None),
            change(Some(&delivered), &requested, None),
            change(Some(&requested), &rejected_return, None),
            change(Some(&rejected_return), &approved, None),
            change(Some(&approved), &received, None),
            change(Some(&approved), &return_expired, None),
            change(Some(&approved), &return_closed, Some("by-staff")),
            change(Some(&dearer), &received_dearer, Some("exchange-due")),
            change(None, &replacement_due, Some("exchange-replacement")),
            change(Some(&authorized), &smaller_held, Some("held")),
            change(Some(&paid), &smaller_paid, Some("paid")),
            change(Some(&placed), &waiting, Some("backordered")),
            change(Some(&waiting_paid), &filled, None),
            change(
                Some(&ships_what_is_there),
                &both_waiting,
                Some("ships-what-is-there"),
            ),
            change(Some(&both_waiting_paid), &one_arrived, Some("some")),
            change(Some(&waiting_paid), &sent_ahead, Some("ships-ahead")),
            change(Some(&in_warehouse), &dearer_held, Some("awaiting-payment")),
            change(Some(&reserved), &dearer_unpaid, Some("unpaid")),
            change(Some(&reserved), &with_more, Some("items-added")),
            change(Some(&express_paid), &cheaper_paid, Some("refunded")),
            change(Some(&dearer_held), &edit_paid, None),
            change(Some(&express_paid), &dearer_taken, Some("replaces-taken")),
            change(
                Some(&dearer_taken),
                &dearer_taken_paid,
                Some("replaces-taken"),
            ),
            change(Some(&dearer_held), &edit_undone, None),
            change(Some(&in_warehouse), &released, None),
            change(
                Some(&replacement_due),
                &replacement_declined,
                Some("replacement"),
            ),
            change(Some(&waiting), &waiting_paid, Some("backordered")),
            change(
                Some(&stray_released),
                &cancelled_after_stray,
                Some("after-a-stray-hold"),
            ),
            change(Some(&waiting_paid), &dated, Some("dated")),
            change(Some(&dated), &undated, Some("undated")),
        ]
    }

    #[test]
    fn every_template_renders_for_every_customer_facing_event() {
        let renderer = Renderer::new()
            .with_api_url("https://api.shop.example/")
            .with_order_pages(|id| format!("https://api.shop.example/shop/orders/{id}?t=TOKEN"));
        let everything = Preferences {
            email: true,
            sms: true,
            webhook: true,
        };
        for language in LANGUAGES {
            for (name, event, order) in events(language) {
                assert!(
                    is_customer_facing(event.event_type),
                    "{name}: {}",
                    event.event_type.as_str()
                );
                let notifications = renderer.render(&event, &order, &everything).unwrap();
                assert_eq!(notifications.len(), 3, "{}", event.event_type.as_str());
                let email = &notifications[0];
                let sms = &notifications[1];
                assert!(
                    email.text.as_deref().unwrap().contains("/shop/orders/")
                        && notifications
                            .iter()
                            .all(|n| n.data.get("orderUrl").is_none())
                        && !sms.text.as_deref().unwrap().contains("/shop/"),
                    "the order's link in the e-mail alone"
                );
                let snapshot = format!(
                    "SUBJECT: {}\n\nTEXT:\n{}\n\nHTML:\n{}\n\nSMS ({} characters):\n{}",
                    email.subject.as_deref().unwrap(),
                    email.text.as_deref().unwrap(),
                    email.html.as_deref().unwrap(),
                    sms.text.as_deref().unwrap().chars().count(),
                    sms.text.as_deref().unwrap(),
                );
                assert!(
                    !snapshot.contains("{{") && !snapshot.contains("{%"),
                    "a placeholder was left: {snapshot}"
                );
                assert!(
                    !snapshot.contains("none") && !snapshot.contains("undefined"),
                    "an empty value was rendered: {snapshot}"
                );
                assert!(email.subject.as_deref().unwrap().len() > 10);
                assert!(
                    sms.text.as_deref().unwrap().chars().count() <= 160,
                    "one SMS segment: {}",
                    sms.text.as_deref().unwrap()
                );
                assert_eq!(notifications[2].channel, Channel::Webhook);
                assert!(
                    notifications[2].text.is_none() && notifications[2].data["orderId"].is_string()
                );
                insta::assert_snapshot!(format!("{language}-{name}"), snapshot);
            }
        }
    }

    /// A pre-order in stock before its release date is told, when confirmed and when paid,
    /// that it leaves on its release date (not that it ships now), in every channel and
    /// language.
    #[test]
    fn a_pre_order_is_told_it_leaves_on_its_release_date() {
        let renderer = Renderer::new();
        let t = at("2026-11-25T09:05:00Z");
        let release = NaiveDate::from_ymd_opt(2026, 12, 18).unwrap();
        let everything = Preferences {
            email: true,
            sms: true,
            webhook: false,
        };
        for language in ["en", "de"] {
            let placed = order(language);
            let a = crate::ids::Sku::parse("A").unwrap();
            let reserved = placed
                .reserve_for_release(
                    &crate::routing::Plan::one_location("BER-1", placed.quantities()),
                    &[],
                    &[(a, release)],
                    t,
                )
                .unwrap();
            let authorized = psp(
                &reserved,
                PaymentEvent {
                    event_id: "auth".into(),
                    kind: PaymentEventKind::AuthorizationSucceeded,
                    amount: reserved.totals.total,
                    occurred_at: t,
                    psp_reference: Some("pi_1".into()),
                    refund_id: None,
                    request_id: None,
                    reason: None,
                },
                t,
            );
            // The usual pre-order: nothing in stock yet, one unit of A promised.
            let waits = placed
                .reserve_for_release(
                    &crate::routing::Plan::one_location(
                        "BER-1",
                        placed.quantities().map(|(sku, n)| {
                            let left = if sku.as_str() == "A" {
                                n.get() - 1
                            } else {
                                n.get()
                            };
                            (sku, crate::quantity::Quantity::new(left).unwrap())
                        }),
                    ),
                    &[crate::order::Backordered {
                        sku: crate::ids::Sku::parse("A").unwrap(),
                        units: 1,
                        location: "BER-1".into(),
                        promised_on: None,
                    }],
                    &[(crate::ids::Sku::parse("A").unwrap(), release)],
                    t,
                )
                .unwrap();
            let date = format_date(release, language);
            for (before, after) in [
                (&placed, &reserved),
                (&reserved, &authorized),
                (&placed, &waits),
            ] {
                let event = order_event(Some(before), Some(after)).unwrap();
                let messages = renderer.render(&event, after, &everything).unwrap();
                assert_eq!(messages.len(), 2, "{language} {:?}", event.event_type);
                for message in messages {
                    let body = message.text.clone().unwrap_or_default();
                    assert!(
                        body.contains(&date),
                        "{language} {:?} {:?}: {body}",
                        event.event_type,
                        message.channel
                    );
                    assert!(
                        !body.contains("ships now") && !body.contains("now going"),
                        "{body}"
                    );
                }
            }
        }
    }

    /// A pre-order whose release date the business moved is told the item's new date and
    /// when the order leaves (the latest of its lines' dates), in every channel and language —
    /// in stock, or still waiting for its units with no delivery date (it is not told that a
    /// delivery failed); one released today with nothing to wait for is not told (its
    /// parcel's messages follow).
    #[test]
    fn a_pre_order_is_told_when_its_release_date_moves() {
        let renderer = Renderer::new();
        let t = at("2026-11-25T09:05:00Z");
        let day = |m: u32, d: u32| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        let everything = Preferences {
            email: true,
            sms: true,
            webhook: false,
        };
        let (a, b) = (
            crate::ids::Sku::parse("A").unwrap(),
            crate::ids::Sku::parse("B").unwrap(),
        );
        for (language, subject, waits) in [
            (
                "en",
                "a new release date",
                "once the items it waits for have arrived",
            ),
            (
                "de",
                "neuer Erscheinungstag",
                "sobald die Artikel eingetroffen sind",
            ),
        ] {
            let placed = order(language);
            // A in stock, released on 18 Dec; B waits for one unit (no delivery date), 28 Dec.
            let reserved = placed
                .reserve_for_release(
                    &crate::routing::Plan {
                        shipments: vec![crate::routing::PlannedShipment {
                            location: "BER-1".into(),
                            lines: vec![(a.clone(), 2)],
                            weight_grams: 0,
                            cost: 0,
                        }],
                    },
                    &[crate::order::Backordered {
                        sku: b.clone(),
                        units: 1,
                        location: "BER-1".into(),
                        promised_on: None,
                    }],
                    &[(a.clone(), day(12, 18)), (b.clone(), day(12, 28))],
                    t,
                )
                .unwrap();
            // A brought forward to 10 Dec: the order still leaves on B's 28 Dec.
            let moved = reserved
                .follow_release(&a, Some(day(12, 10)), t.date_naive(), t)
                .unwrap();
            let event = order_event(Some(&reserved), Some(&moved)).unwrap();
            assert_eq!(event.event_type, EventType::ReleaseMoved);
            let messages = renderer.render(&event, &moved, &everything).unwrap();
            assert_eq!(messages.len(), 2, "{language}");
            for message in &messages {
                let body = message.text.clone().unwrap_or_default();
                assert!(body.contains(&format_date(day(12, 10), language)), "{body}");
                assert!(body.contains(&format_date(day(12, 28), language)), "{body}");
                assert!(
                    !body.contains(&format_date(day(12, 18), language)),
                    "{body}"
                );
            }
            let email = messages
                .iter()
                .find(|m| m.channel == Channel::Email)
                .unwrap();
            assert!(
                email
                    .subject
                    .as_deref()
                    .unwrap_or_default()
                    .contains(subject),
                "{:?}",
                email.subject
            );
            assert!(email.text.as_deref().unwrap_or_default().contains(waits));
            assert!(email
                .html
                .as_deref()
                .unwrap_or_default()
                .contains(&format_date(day(12, 10), language)));
            // B, waiting for its unit, moved later: told its new date, not a failed delivery.
            let later = moved
                .follow_release(&b, Some(day(12, 31)), t.date_naive(), t)
                .unwrap();
            let event = order_event(Some(&moved), Some(&later)).unwrap();
            let messages = renderer.render(&event, &later, &everything).unwrap();
            for message in &messages {
                let body = message.text.clone().unwrap_or_default();
                assert!(body.contains(&format_date(day(12, 31), language)), "{body}");
                assert!(
                    !body.contains("will not bring") && !body.contains("bringt sie nicht"),
                    "{body}"
                );
            }
            // A single pre-order in stock released today: nothing to tell.
            let in_stock = placed
                .reserve_for_release(
                    &crate::routing::Plan::one_location("BER-1", placed.quantities()),
                    &[],
                    &[(a.clone(), day(12, 18))],
                    t,
                )
                .unwrap();
            let released = in_stock
                .follow_release(&a, None, t.date_naive(), t)
                .unwrap();
            let event = order_event(Some(&in_stock), Some(&released)).unwrap();
            assert!(renderer
                .render(&event, &released, &everything)
                .unwrap()
                .is_empty());
        }
    }

    #[test]
    fn preferences_and_reachability_decide_the_channels() {
        let renderer = Renderer::new();
        let (_, event, order) = events("en").remove(0);
        let email_only = Preferences {
            email: true,
            sms: false,
            webhook: false,
        };
        let channels: Vec<_> = renderer
            .render(&event, &order, &email_only)
            .unwrap()
            .iter()
            .map(|n| n.channel)
            .collect();
        assert_eq!(channels, [Channel::Email]);
        let none = Preferences {
            email: false,
            sms: false,
            webhook: false,
        };
        assert!(renderer.render(&event, &order, &none).unwrap().is_empty());
        let picked = order
            .reserve_all_at("BER-1", Utc::now())
            .unwrap()
            .authorized_for_test(Utc::now())
            .start_fulfillment("W", Utc::now())
            .unwrap();
        let picked_event = order_event(
            Some(&picked),
            Some(&picked.pick(1, "p", Utc::now()).unwrap()),
        )
        .unwrap();
        assert!(
            renderer
                .render(&picked_event, &picked, &Preferences::default())
                .unwrap()
                .is_empty(),
            "picking is not customer-facing"
        );
    }

    #[test]
    fn a_revised_promise_is_told_by_its_latest_revision_while_its_units_wait() {
        let renderer = Renderer::new();
        let everything = Preferences {
            email: true,
            sms: true,
            webhook: true,
        };
        let find = |wanted: &str| {
            events("en")
                .into_iter()
                .find(|(name, _, _)| name == wanted)
                .unwrap()
        };
        let (_, dated, dated_order) = find("oms.order.promise-revised__dated");
        let (_, undated, undated_order) = find("oms.order.promise-revised__undated");
        assert_eq!(
            dated.data.revised_sku.as_ref().map(|s| s.as_str()),
            Some("A")
        );
        // Told when sent before the next revision, and of the SKU revised only.
        let told = renderer.render(&dated, &dated_order, &everything).unwrap();
        assert_eq!(told.len(), 3);
        assert!(!told[0].text.as_deref().unwrap().contains("Product B:"));
        // Sent after the next revision of the same SKU: that one tells the date as it is now.
        assert!(renderer
            .render(&dated, &undated_order, &everything)
            .unwrap()
            .is_empty());
        assert_eq!(
            renderer
                .render(&undated, &undated_order, &everything)
                .unwrap()
                .len(),
            3
        );
        // Its units arrived (or the order was called off) before it was sent: nothing to tell.
        let t = undated_order.updated_at;
        let filled = undated_order
            .fill_backorder(&crate::ids::Sku::parse("A").unwrap(), 1, t)
            .unwrap();
        assert!(renderer
            .render(&undated, &filled, &everything)
            .unwrap()
            .is_empty());
        let cancelled = undated_order
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        assert!(renderer
            .render(&undated, &cancelled, &everything)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn what_a_message_says_about_money_follows_the_payment() {
        let sms_of = |renderer: &Renderer, wanted: &str| {
            let (_, event, order) = events("en")
                .into_iter()
                .find(|(name, _, _)| name == wanted)
                .unwrap();
            let only_sms = Preferences {
                email: false,
                sms: true,
                webhook: false,
            };
            renderer.render(&event, &order, &only_sms).unwrap()[0]
                .text
                .clone()
                .unwrap()
        };
        let renderer = Renderer::new();
        assert!(sms_of(&renderer, "oms.order.cancelled").contains("Refund €50.88"));
        assert!(sms_of(&renderer, "oms.order.cancelled__authorized")
            .contains("hold on your card is released"));
        assert_eq!(
            sms_of(&renderer, "oms.order.cancelled__unpaid"),
            "Order N4M3K2J1 was cancelled.",
            "nothing was paid, so nothing is said about money"
        );
        // Declined five minutes after it was placed: the time left of the window.
        assert!(sms_of(&renderer, "oms.payment.failed").contains("within 25 min"));
        assert!(
            !sms_of(&renderer, "oms.payment.failed__replacement").contains("expires"),
            "a replacement does not expire"
        );
        assert!(sms_of(&renderer, "oms.payment.voided").contains("within 30 min"));
        assert_eq!(
            sms_of(&renderer, "oms.order.cancelled__after-a-stray-hold"),
            "Order N4M3K2J1 was cancelled.",
            "the stray hold was released before: nothing is said about money"
        );
        assert!(sms_of(&renderer, "oms.payment.authorized__backordered")
            .contains("once the items it waits for arrive"));
        let hourly = Renderer::new().with_payment_window(Duration::hours(1));
        assert!(sms_of(&hourly, "oms.payment.failed").contains("within 55 min"));
        // Money that arrives after the order was called off goes back at once (a void): the
        // customer is not told "payment received".
        let t = at("2026-11-25T09:05:00Z");
        let cancelled = order("en")
            .reserve_all_at("BER-1", t)
            .unwrap()
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        let late = cancelled.authorized_for_test(t);
        let event = order_event(Some(&cancelled), Some(&late)).unwrap();
        assert!(!is_customer_facing(event.event_type));
        // The hold of an order called off, released: told with the cancellation, not again.
        let authorized = order("en")
            .reserve_all_at("BER-1", t)
            .unwrap()
            .authorized_for_test(t);
        let cancelled = authorized
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        let void = PaymentEvent {
            event_id: "evt_void".into(),
            kind: PaymentEventKind::VoidSucceeded,
            amount: cancelled.totals.total,
            occurred_at: t,
            psp_reference: Some(format!("psp-{}", cancelled.id)),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        let released = psp(&cancelled, void, t);
        let event = order_event(Some(&cancelled), Some(&released)).unwrap();
        assert_eq!(event.event_type, EventType::PaymentVoided);
        let everything = Preferences {
            email: true,
            sms: true,
            webhook: true,
        };
        assert_eq!(
            renderer.render(&event, &released, &everything).unwrap(),
            Vec::new()
        );
    }

    #[test]
    fn money_and_dates_read_as_people_write_them() {
        let eur = crate::money::Currency::parse("EUR").unwrap();
        assert_eq!(format_money(Money::new(6740, eur).unwrap(), "en"), "€67.40");
        assert_eq!(
            format_money(Money::new(6740, eur).unwrap(), "de"),
            "67,40 €"
        );
        let date = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(format_date(date, "en"), "Mon 30 Nov 2026");
        assert_eq!(format_date(date, "de"), "30.11.2026");
        assert_eq!(template_names().count(), 8);
    }
}
