//! The customer's pages: minijinja templates compiled into the binary, the words they use in
//! each language, and an order as its customer reads it — where it is, what comes next, each
//! parcel, the money in plain words — never the ledger, the warehouse's notes or staff names.
//!
//! Templates are auto-escaped (their names end in `.html`), so nothing a customer typed can
//! become markup.

use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use oms_domain::notifications::{format_date, format_money};
use oms_domain::order::payments::RefundState;
use oms_domain::order::returns::ReturnStatus;
use oms_domain::order::{Order, OrderStatus};
use serde::Serialize;

const TEMPLATES: [(&str, &str); 5] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("find.html", include_str!("../templates/find.html")),
    ("order.html", include_str!("../templates/order.html")),
    ("return.html", include_str!("../templates/return.html")),
    ("pay.html", include_str!("../templates/pay.html")),
];

/// The stylesheet every page links (served by the site itself: the CSP allows no other).
pub const STYLESHEET: &str = include_str!("../assets/shop.css");

/// Where pages link the stylesheet: its path with a digest of its contents, so browsers keep it
/// for a year and a new stylesheet is a new address.
pub fn stylesheet_href() -> &'static str {
    static HREF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        oms_adapters::web::asset_href("/shop/assets/shop.css", STYLESHEET)
    });
    &HREF
}

/// The payment page's script: Stripe.js's card fields mounted, and the payment confirmed with
/// them (the only script of the site; every other page runs none).
pub const PAY_SCRIPT: &str = include_str!("../assets/pay.js");

/// Where the payment page links its script, by the digest of its contents.
pub fn pay_script_href() -> &'static str {
    static HREF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        oms_adapters::web::asset_href("/shop/assets/pay.js", PAY_SCRIPT)
    });
    &HREF
}

/// The languages the pages are written in; English where the order's is another.
pub const LANGUAGES: [&str; 2] = ["en", "de"];

/// Every text of the pages, by key: English, German.
const TEXTS: &[(&str, &str, &str)] = &[
    ("site", "Your order", "Ihre Bestellung"),
    ("skip", "Skip to content", "Zum Inhalt springen"),
    ("find.title", "Find your order", "Bestellung finden"),
    (
        "find.intro",
        "Enter your order number and the e-mail address you ordered with. The link in any of our e-mails about your order opens it too.",
        "Geben Sie Ihre Bestellnummer und die E-Mail-Adresse ein, mit der Sie bestellt haben. Auch der Link in jeder unserer E-Mails zu Ihrer Bestellung öffnet sie.",
    ),
    ("find.number", "Order number", "Bestellnummer"),
    ("find.email", "E-mail address", "E-Mail-Adresse"),
    ("find.submit", "Show my order", "Bestellung anzeigen"),
    (
        "find.refused",
        "We could not open that order. Check the order number and the e-mail address, or use the link in one of our e-mails (links expire after a while).",
        "Wir konnten diese Bestellung nicht öffnen. Prüfen Sie Bestellnummer und E-Mail-Adresse, oder nutzen Sie den Link in einer unserer E-Mails (Links laufen nach einiger Zeit ab).",
    ),
    (
        "find.slow",
        "Too many attempts. Please wait a few minutes before you try again.",
        "Zu viele Versuche. Bitte warten Sie einige Minuten, bevor Sie es erneut versuchen.",
    ),
    ("order.title", "Order", "Bestellung"),
    ("order.placed", "Placed", "Bestellt am"),
    ("order.now", "Where it is now", "Wo sie jetzt ist"),
    ("order.next", "What happens next", "Wie es weitergeht"),
    ("order.items", "Items", "Artikel"),
    ("order.shipping", "Shipping", "Versand"),
    ("order.total", "Total", "Gesamt"),
    ("order.payment", "Payment", "Zahlung"),
    ("order.parcels", "Parcels", "Pakete"),
    ("order.parcel", "Parcel", "Paket"),
    ("order.of", "of", "von"),
    ("order.track", "Track the parcel", "Sendung verfolgen"),
    ("order.tracking", "Tracking number", "Sendungsnummer"),
    ("order.expected", "Expected", "Erwartet"),
    ("order.history", "History", "Verlauf"),
    ("order.returns", "Returns", "Rücksendungen"),
    ("order.return", "Return", "Rücksendung"),
    ("order.label", "Print the return label", "Rücksendeetikett drucken"),
    ("order.cancel.title", "Cancel the order", "Bestellung stornieren"),
    (
        "order.cancel.intro",
        "You can cancel until the order is packed. The items go back on sale and any amount held on your card is released.",
        "Sie können stornieren, bis die Bestellung verpackt ist. Die Artikel werden wieder zum Verkauf freigegeben, und ein auf Ihrer Karte reservierter Betrag wird freigegeben.",
    ),
    ("order.cancel.reason", "Why (optional)", "Grund (optional)"),
    ("order.cancel.submit", "Cancel my order", "Bestellung stornieren"),
    ("order.cancelled", "Your order is cancelled.", "Ihre Bestellung ist storniert."),
    ("order.units.title", "Cancel some items", "Einzelne Artikel stornieren"),
    ("order.waiting", "on their way to us; we tell you when they arrive", "zu uns unterwegs; wir melden uns, sobald sie da sind"),
    ("order.waiting.expected", "on their way to us, expected in our warehouse by", "zu uns unterwegs, bei uns im Lager voraussichtlich bis"),
    ("order.waiting.late", "on their way to us, but later than the date we gave you; we tell you when they arrive", "zu uns unterwegs, aber später als angekündigt; wir melden uns, sobald sie da sind"),
    (
        "order.units.intro",
        "Until they are packed, you can cancel some of the items and keep the rest. You pay only for what you keep: what you paid for the others is refunded, what is only held on your card is not charged.",
        "Bis sie verpackt sind, können Sie einzelne Artikel stornieren und den Rest behalten. Sie zahlen nur, was Sie behalten: Bereits Bezahltes wird erstattet, nur Reserviertes wird nicht belastet.",
    ),
    ("order.units.how-many", "How many to cancel", "Wie viele stornieren"),
    ("order.units.of", "of", "von"),
    ("order.units.submit", "Cancel these items", "Diese Artikel stornieren"),
    ("order.units.done", "Those items are cancelled; the rest of your order goes on.", "Diese Artikel sind storniert; der Rest Ihrer Bestellung geht weiter."),
    ("order.units.none", "Choose at least one item to cancel.", "Wählen Sie mindestens einen Artikel zum Stornieren."),
    ("order.units.cancelled", "Cancelled", "Storniert"),
    ("order.address.title", "Change the delivery address", "Lieferadresse ändern"),
    (
        "order.address.intro",
        "Until your order is packed, you can send it somewhere else. If the new address costs more to ship to, please ask us.",
        "Bis Ihre Bestellung verpackt ist, können Sie sie an eine andere Adresse schicken lassen. Kostet der Versand dorthin mehr, fragen Sie uns bitte.",
    ),
    ("order.address.name", "Name", "Name"),
    ("order.address.line1", "Street and number", "Straße und Hausnummer"),
    ("order.address.line2", "Address line 2 (optional)", "Adresszusatz (optional)"),
    ("order.address.city", "City", "Ort"),
    ("order.address.postal-code", "Postal code", "Postleitzahl"),
    ("order.address.country", "Country (two letters, e.g. DE)", "Land (zwei Buchstaben, z. B. DE)"),
    ("order.address.submit", "Send it here", "Hierhin liefern"),
    ("order.address.done", "Your order goes to the new address.", "Ihre Bestellung geht an die neue Adresse."),
    ("order.ahead.title", "Send what is in stock now", "Vorrätiges jetzt schicken"),
    (
        "order.ahead.intro",
        "Some items of your order are still on their way to us. We can send what is in stock now and the rest in parcels of their own as it arrives, at no extra shipping cost.",
        "Einige Artikel Ihrer Bestellung sind noch unterwegs zu uns. Wir können schon jetzt schicken, was vorrätig ist, und den Rest in eigenen Paketen, sobald er eintrifft, ohne weitere Versandkosten.",
    ),
    ("order.ahead.submit", "Send what is here now", "Vorrätiges jetzt schicken"),
    (
        "order.ahead.too-late",
        "What is in stock has gone ahead already, or your order can no longer change. Nothing was changed.",
        "Was vorrätig ist, ist schon unterwegs, oder Ihre Bestellung kann nicht mehr geändert werden. Es wurde nichts geändert.",
    ),
    (
        "order.ahead.done",
        "What is in stock goes to our warehouse now; the rest follows as it arrives.",
        "Was vorrätig ist, geht jetzt ins Lager; der Rest folgt, sobald er eintrifft.",
    ),
    (
        "order.address.invalid",
        "Please fill in the whole address: name, street, postal code, city and a two-letter country code.",
        "Bitte geben Sie die ganze Adresse an: Name, Straße, Postleitzahl, Ort und ein Länderkürzel aus zwei Buchstaben.",
    ),
    (
        "order.address.unserved",
        "We do not ship there with your order's shipping method, or the address is the one it has already. Nothing was changed.",
        "Dorthin liefern wir mit der Versandart Ihrer Bestellung nicht, oder es ist schon ihre Adresse. Es wurde nichts geändert.",
    ),
    (
        "order.address.dearer",
        "Shipping to that address costs more, and your payment covers the order as it is: please contact us to change it. Nothing was changed.",
        "Der Versand an diese Adresse kostet mehr, und Ihre Zahlung deckt die Bestellung, wie sie ist: Bitte wenden Sie sich an uns. Es wurde nichts geändert.",
    ),
    (
        "order.address.busy",
        "Your payment is being settled with your bank right now: please try again in a few minutes. Nothing was changed.",
        "Ihre Zahlung wird gerade mit Ihrer Bank abgerechnet: Bitte versuchen Sie es in einigen Minuten erneut. Es wurde nichts geändert.",
    ),
    ("order.pay", "Pay {amount} now", "Jetzt {amount} bezahlen"),
    (
        "order.paid",
        "Thank you: your payment was sent. This page shows it as soon as your bank confirms it, usually within seconds.",
        "Vielen Dank: Ihre Zahlung wurde übermittelt. Diese Seite zeigt sie, sobald Ihre Bank sie bestätigt, meist in Sekunden.",
    ),
    ("pay.title", "Payment for order", "Zahlung für Bestellung"),
    ("pay.due", "To pay", "Zu zahlen"),
    (
        "pay.card-data",
        "Your card details go straight to our payment provider, Stripe; we never see them.",
        "Ihre Kartendaten gehen direkt an unseren Zahlungsanbieter Stripe; wir sehen sie nie.",
    ),
    ("pay.card", "Card", "Karte"),
    ("pay.submit", "Pay", "Bezahlen"),
    (
        "pay.refused",
        "The payment did not go through. Please check the card details or try another card.",
        "Die Zahlung ist nicht durchgegangen. Bitte prüfen Sie die Kartendaten oder nutzen Sie eine andere Karte.",
    ),
    (
        "pay.noscript",
        "Paying here needs JavaScript, for our payment provider's card fields. Please turn it on, or contact us.",
        "Die Zahlung hier braucht JavaScript, für die Kartenfelder unseres Zahlungsanbieters. Bitte schalten Sie es ein oder wenden Sie sich an uns.",
    ),
    ("pay.back", "Back to your order", "Zurück zu Ihrer Bestellung"),
    (
        "pay.no-fields",
        "Our payment provider's card fields did not load. Please reload the page, or try again in a few minutes.",
        "Die Kartenfelder unseres Zahlungsanbieters wurden nicht geladen. Bitte laden Sie die Seite neu oder versuchen Sie es in einigen Minuten erneut.",
    ),
    (
        "pay.unavailable",
        "Our payment provider cannot be reached just now. Please try again in a few minutes; nothing was charged.",
        "Unser Zahlungsanbieter ist gerade nicht erreichbar. Bitte versuchen Sie es in einigen Minuten erneut; es wurde nichts abgebucht.",
    ),
    (
        "order.address.too-late",
        "Your order can no longer be sent elsewhere: it is packed, on its way, or a change waits for its payment.",
        "Ihre Bestellung kann nicht mehr umgeleitet werden: Sie ist verpackt, unterwegs, oder eine Änderung wartet auf ihre Zahlung.",
    ),
    (
        "order.refused",
        "That could not be done",
        "Das war nicht möglich",
    ),
    (
        "order.stale",
        "Your order changed while the page was open, so nothing was changed. The page now shows it as it is.",
        "Ihre Bestellung hat sich geändert, während die Seite offen war; es wurde nichts geändert. Die Seite zeigt sie jetzt, wie sie ist.",
    ),
    ("order.find-another", "Find another order", "Andere Bestellung finden"),
    (
        "order.forget",
        "Forget my orders on this device",
        "Meine Bestellungen auf diesem Gerät vergessen",
    ),
    (
        "order.forget-intro",
        "On a shared computer or a borrowed phone: this browser stops showing your orders until you open them again from an e-mail or with your order number.",
        "Auf einem geteilten Computer oder einem geliehenen Telefon: Dieser Browser zeigt Ihre Bestellungen nicht mehr, bis Sie sie erneut über eine E-Mail oder Ihre Bestellnummer öffnen.",
    ),
    (
        "forgotten",
        "This browser no longer shows your orders.",
        "Dieser Browser zeigt Ihre Bestellungen nicht mehr.",
    ),
    (
        "message.form-refused",
        "This page was out of date or did not come from this site, so nothing was done. Open your order again and try once more.",
        "Diese Seite war veraltet oder stammt nicht von dieser Website; es wurde nichts getan. Öffnen Sie Ihre Bestellung erneut und versuchen Sie es noch einmal.",
    ),
    (
        "message.internal",
        "Something went wrong on our side; nothing was changed. Please try again in a moment.",
        "Bei uns ist etwas schiefgegangen; es wurde nichts geändert. Bitte versuchen Sie es gleich noch einmal.",
    ),
    ("order.return-items", "Return items", "Artikel zurücksenden"),
    (
        "order.return-intro",
        "Something not right? You can send back what arrived, within the return window.",
        "Etwas stimmt nicht? Sie können Angekommenes innerhalb der Rückgabefrist zurücksenden.",
    ),
    ("order.returned", "Your return is registered; its state is below.", "Ihre Rücksendung ist registriert; ihren Stand sehen Sie unten."),
    ("return.title", "Return items", "Artikel zurücksenden"),
    (
        "return.intro",
        "Choose how many of each item you send back, why, and whether you want your money back or another size or colour (one that costs more is paid for before it ships; one that costs less refunds the difference). Most returns are approved at once, with a label to print; some are checked by our team first.",
        "Wählen Sie, wie viele Sie von jedem Artikel zurücksenden, warum, und ob Sie Ihr Geld zurück oder eine andere Größe oder Farbe möchten (eine teurere bezahlen Sie vor dem Versand; bei einer günstigeren erstatten wir die Differenz). Die meisten Rücksendungen werden sofort genehmigt, mit einem Etikett zum Drucken; manche prüft zuerst unser Team.",
    ),
    ("return.quantity", "How many", "Anzahl"),
    ("return.reason", "Why", "Grund"),
    ("return.comment", "Anything to add (optional)", "Anmerkung (optional)"),
    ("return.instead", "Refund or exchange", "Erstattung oder Umtausch"),
    ("return.refund", "A refund", "Eine Erstattung"),
    ("return.same", "The same item again", "Denselben Artikel noch einmal"),
    (
        "return.dearer",
        "{amount} more each, paid before it ships",
        "{amount} mehr pro Stück, vor dem Versand zu zahlen",
    ),
    (
        "return.cheaper",
        "{amount} less each, refunded when yours arrives",
        "{amount} weniger pro Stück, erstattet, wenn Ihrer bei uns ankommt",
    ),
    ("return.exchanged-for", "exchanged for", "umgetauscht gegen"),
    (
        "return.replacement",
        "The exchange ships as order {order}; you will be told when it leaves.",
        "Der Umtausch wird als Bestellung {order} versandt; Sie erfahren, wann sie losgeht.",
    ),
    (
        "return.replacement.due",
        "The exchange ships as order {order}; it costs {amount} more, paid on its page before it ships.",
        "Der Umtausch wird als Bestellung {order} versandt; er kostet {amount} mehr, vor dem Versand auf ihrer Seite zu bezahlen.",
    ),
    ("return.replacement.open", "Open the exchange's order", "Bestellung des Umtauschs öffnen"),
    (
        "return.exchange-unavailable",
        "An item chosen in exchange is no longer in stock, so nothing was sent. Choose another, or a refund.",
        "Ein zum Umtausch gewählter Artikel ist nicht mehr vorrätig; es wurde nichts gesendet. Wählen Sie einen anderen oder eine Erstattung.",
    ),
    ("return.submit", "Send the return request", "Rücksendung anfragen"),
    ("return.back", "Back to the order", "Zurück zur Bestellung"),
    ("return.none", "Choose at least one item to send back.", "Wählen Sie mindestens einen Artikel zum Zurücksenden."),
    (
        "return.refused",
        "These items cannot be returned as chosen: the return window may have closed, or they are already being returned.",
        "Diese Artikel können so nicht zurückgesendet werden: Die Rückgabefrist ist vielleicht abgelaufen, oder sie werden bereits zurückgesendet.",
    ),
    ("reason.DAMAGED", "Arrived damaged", "Beschädigt angekommen"),
    ("reason.WRONG_ITEM", "Wrong item sent", "Falscher Artikel geliefert"),
    ("reason.NOT_AS_DESCRIBED", "Not as described", "Nicht wie beschrieben"),
    ("reason.DOES_NOT_FIT", "Does not fit", "Passt nicht"),
    ("reason.NO_LONGER_NEEDED", "No longer needed", "Nicht mehr benötigt"),
    ("reason.ARRIVED_LATE", "Arrived too late", "Zu spät angekommen"),
    ("reason.OTHER", "Another reason", "Anderer Grund"),
    (
        "order.cancel.too-late",
        "It can no longer be cancelled: it is packed or on its way. Once it arrives, you can return it.",
        "Die Bestellung kann nicht mehr storniert werden, da sie bereits verpackt oder unterwegs ist. Nach der Zustellung können Sie sie zurücksenden.",
    ),
    (
        "order.try-again",
        "Your order is being updated right now. Please try again in a moment.",
        "Ihre Bestellung wird gerade aktualisiert. Bitte versuchen Sie es gleich noch einmal.",
    ),
    // Where the order is, by status.
    ("status.PENDING", "We have your order and are checking that everything is in stock.", "Wir haben Ihre Bestellung und prüfen, ob alles vorrätig ist."),
    ("status.RESERVED", "Everything is in stock and set aside for you.", "Alles ist vorrätig und für Sie reserviert."),
    ("status.RESERVED.waiting", "What is in stock is set aside for you; some items are still on their way to us.", "Was vorrätig ist, ist für Sie reserviert; einige Artikel sind noch zu uns unterwegs."),
    ("next.RESERVED.waiting", "Your order goes to our warehouse, whole, as soon as they arrive; we tell you then.", "Ihre Bestellung geht vollständig ins Lager, sobald sie da sind; wir melden uns dann."),
    ("next.RESERVED.ahead", "What is in stock goes to our warehouse now; the rest follows in a parcel of its own as it arrives. We tell you when each parcel ships.", "Was vorrätig ist, geht jetzt ins Lager; der Rest folgt in einem eigenen Paket, sobald er eintrifft. Wir schreiben Ihnen, sobald jedes Paket versandt ist."),
    ("next.edit-awaiting-payment", "Your order was changed and now costs {total}, {more} more: it is packed once you authorize the new total with your payment provider, by {due}. If you do not, it ships as before.", "Ihre Bestellung wurde geändert und kostet jetzt {total}, {more} mehr: Wir packen sie, sobald Sie den neuen Betrag bei Ihrem Zahlungsanbieter autorisiert haben, bis {due}. Sonst wird sie wie zuvor versandt."),
    ("next.edit-awaiting-payment.taken", "Your order was changed and now costs {total}, {more} more: it is packed once you pay the new total with your payment provider, by {due}, and the {before} you paid before is refunded then. If you do not, it ships as before.", "Ihre Bestellung wurde geändert und kostet jetzt {total}, {more} mehr: Wir packen sie, sobald Sie den neuen Betrag bei Ihrem Zahlungsanbieter bezahlt haben, bis {due}; die zuvor bezahlten {before} erstatten wir dann. Sonst wird sie wie zuvor versandt."),
    ("payment.edit-awaiting-payment.taken", "You paid for your order as it was; the new total waits for your payment, and what you paid before is refunded once it is taken.", "Sie haben Ihre Bestellung bezahlt, wie sie war; der neue Betrag wartet auf Ihre Zahlung, die frühere Zahlung erstatten wir, sobald er eingezogen ist."),
    ("payment.edit-awaiting-payment", "The amount held on your card covers your order as it was; the new total waits for your authorization.", "Der auf Ihrer Karte reservierte Betrag deckt Ihre Bestellung, wie sie war; der neue Betrag wartet auf Ihre Autorisierung."),
    ("status.FULFILLING", "Our warehouse is packing your order.", "Unser Lager packt Ihre Bestellung."),
    ("status.PARTIALLY_SHIPPED", "Part of your order is on its way; the rest follows.", "Ein Teil Ihrer Bestellung ist unterwegs; der Rest folgt."),
    ("status.SHIPPED", "Your order is on its way.", "Ihre Bestellung ist unterwegs."),
    ("status.PARTIALLY_DELIVERED", "Part of your order has arrived; the rest is on its way.", "Ein Teil Ihrer Bestellung ist angekommen; der Rest ist unterwegs."),
    ("status.DELIVERED", "Your order has arrived.", "Ihre Bestellung ist angekommen."),
    ("status.REJECTED", "We could not set aside everything in your order, so we did not take it.", "Wir konnten nicht alles in Ihrer Bestellung reservieren und haben sie daher nicht angenommen."),
    ("status.CANCELLED", "Your order is cancelled.", "Ihre Bestellung ist storniert."),
    // What comes next, by status (and, before shipping, by payment).
    ("next.PENDING", "We confirm it in a moment, by e-mail.", "Wir bestätigen sie gleich per E-Mail."),
    ("next.RESERVED.unpaid", "We are waiting for your payment; once it is confirmed, your order goes to our warehouse.", "Wir warten auf Ihre Zahlung; sobald sie bestätigt ist, geht Ihre Bestellung an unser Lager."),
    ("next.RESERVED", "Your order goes to our warehouse to be packed.", "Ihre Bestellung geht zum Verpacken an unser Lager."),
    ("next.RESERVED.release", "Your pre-order goes to our warehouse on its release date, {release}; we tell you when it ships.", "Ihre Vorbestellung geht am Erscheinungstag, {release}, an unser Lager; wir melden uns, sobald sie versandt ist."),
    ("next.FULFILLING", "We tell you by e-mail when it ships, with its tracking link.", "Wir schreiben Ihnen, sobald sie versandt ist, mit dem Link zur Sendungsverfolgung."),
    ("next.PARTIALLY_SHIPPED", "We tell you when each parcel ships.", "Wir schreiben Ihnen, sobald jedes Paket versandt ist."),
    ("next.rest-waiting", "What was in stock ships first. The items still on their way to us follow in a parcel of their own as they arrive; we tell you when it ships.", "Was vorrätig war, wird zuerst verschickt. Die Artikel, die noch zu uns unterwegs sind, folgen in einem eigenen Paket, sobald sie eintreffen; wir melden uns, wenn es versandt ist."),
    ("next.SHIPPED", "The carrier delivers it; follow it with the tracking link below.", "Der Paketdienst stellt sie zu; verfolgen Sie sie mit dem Link unten."),
    ("next.PARTIALLY_DELIVERED", "The rest is delivered soon; follow it with the tracking links below.", "Der Rest wird bald zugestellt; verfolgen Sie ihn mit den Links unten."),
    ("next.DELIVERED", "We hope you enjoy it. Something not right? You may return it within the return window.", "Wir hoffen, sie gefällt Ihnen. Etwas stimmt nicht? Sie können sie innerhalb der Rückgabefrist zurücksenden."),
    ("next.REJECTED", "Nothing more: you were not charged.", "Nichts weiter: Ihnen wurde nichts berechnet."),
    ("next.CANCELLED", "Nothing more. Any amount held on your card is released or refunded.", "Nichts weiter. Ein auf Ihrer Karte reservierter Betrag wird freigegeben oder erstattet."),
    // The money, in customer terms.
    ("payment.PENDING", "Not paid yet.", "Noch nicht bezahlt."),
    ("payment.AUTHORIZED", "Approved: the amount is held on your card and charged when your order ships.", "Genehmigt: Der Betrag ist auf Ihrer Karte reserviert und wird beim Versand abgebucht."),
    ("payment.PARTIALLY_PAID", "Charged for what has shipped; the rest is held until it ships.", "Für Versandtes abgebucht; der Rest bleibt bis zum Versand reserviert."),
    ("payment.PAID", "Paid.", "Bezahlt."),
    ("payment.PARTIALLY_REFUNDED", "Paid, and partly refunded.", "Bezahlt und teilweise erstattet."),
    ("payment.REFUNDED", "Refunded.", "Erstattet."),
    ("payment.VOIDED", "Released: you were not charged.", "Freigegeben: Ihnen wurde nichts berechnet."),
    ("payment.FAILED", "The payment did not go through; nothing was charged.", "Die Zahlung ist fehlgeschlagen; es wurde nichts abgebucht."),
    ("payment.EXPIRED", "Not paid in time; nothing was charged.", "Nicht rechtzeitig bezahlt; es wurde nichts abgebucht."),
    // A parcel, by its step.
    ("parcel.AWAITING_PICK", "Waiting to be packed", "Wartet auf das Verpacken"),
    ("parcel.PICKED", "Being packed", "Wird verpackt"),
    ("parcel.PACKED", "Packed, waiting for the carrier", "Verpackt, wartet auf den Paketdienst"),
    ("parcel.SHIPPED", "Shipped", "Versandt"),
    ("parcel.IN_TRANSIT", "On its way", "Unterwegs"),
    ("parcel.OUT_FOR_DELIVERY", "Out for delivery today", "Heute in Zustellung"),
    ("parcel.DELIVERY_EXCEPTION", "Delayed: the carrier reported a problem", "Verzögert: Der Paketdienst meldet ein Problem"),
    ("parcel.DELIVERED", "Delivered", "Zugestellt"),
    // A return, by its state.
    ("return.PENDING_APPROVAL", "Requested: our team is reviewing it.", "Angefragt: Unser Team prüft sie."),
    ("return.APPROVED", "Approved: print the label and send the parcel.", "Genehmigt: Drucken Sie das Etikett und senden Sie das Paket."),
    ("return.REJECTED", "Not accepted.", "Nicht angenommen."),
    ("return.RECEIVED", "Received at our warehouse.", "In unserem Lager eingegangen."),
    ("return.EXPIRED", "Closed: nothing reached us in the time we allow. If you sent it, please contact us.", "Geschlossen: In der vorgesehenen Zeit ist nichts bei uns eingetroffen. Falls Sie sie verschickt haben, melden Sie sich bitte."),
    ("refund.AWAITING_CAPTURE", "Refund of {amount}: issued once your payment is settled.", "Erstattung von {amount}: wird veranlasst, sobald Ihre Zahlung abgeschlossen ist."),
    ("refund.REQUESTED", "Refund of {amount}: on its way.", "Erstattung von {amount}: unterwegs."),
    ("refund.ISSUED", "Refund of {amount}: issued.", "Erstattung von {amount}: veranlasst."),
    ("refund.FAILED", "Refund of {amount}: delayed; our team is on it.", "Erstattung von {amount}: verzögert; unser Team kümmert sich darum."),
];

/// The text `key` in `language` (English where there is none in it).
pub fn text(language: &str, key: &str) -> &'static str {
    TEXTS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, en, de)| if language == "de" { *de } else { *en })
        .unwrap_or_else(|| {
            tracing::error!(key, "a page's text is missing");
            ""
        })
}

/// The language a visitor's browser asks for (`Accept-Language`), of those the pages have.
pub fn language_of_browser(accept_language: Option<&str>) -> &'static str {
    accept_language
        .unwrap_or_default()
        .split(',')
        .filter_map(|tag| tag.split(';').next())
        .map(|tag| {
            tag.trim()
                .split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        })
        .find_map(|tag| LANGUAGES.into_iter().find(|l| *l == tag))
        .unwrap_or("en")
}

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not compile: {e}"));
        }
        // `t("key")`: the page's text in the language the page is rendered in.
        env.add_function("t", |state: &minijinja::State, key: &str| -> String {
            let language = state
                .lookup("lang")
                .and_then(|l| l.as_str().map(str::to_owned))
                .unwrap_or_else(|| "en".to_owned());
            text(&language, key).to_owned()
        });
        env.add_global(
            "stylesheet",
            Value::from_safe_string(stylesheet_href().to_owned()),
        );
        env.add_global(
            "pay_script",
            Value::from_safe_string(pay_script_href().to_owned()),
        );
        Pages { env }
    }

    pub fn render(&self, name: &str, context: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// The pages, compiled once per process.
pub fn pages() -> &'static Pages {
    static PAGES: std::sync::LazyLock<Pages> = std::sync::LazyLock::new(Pages::new);
    &PAGES
}

/// A moment for people, in `language`: the date as the language writes it and the time (UTC).
fn moment(at: DateTime<Utc>, language: &str) -> String {
    format!(
        "{} {} UTC",
        format_date(at.date_naive(), language),
        at.format("%H:%M")
    )
}

/// An order as its customer reads it on its page.
#[derive(Debug, Serialize)]
pub struct OrderPage {
    pub order_id: String,
    pub placed: String,
    pub status: &'static str,
    pub now: &'static str,
    pub next: String,
    pub payment: &'static str,
    pub items: Vec<Item>,
    pub shipping: String,
    pub total: String,
    pub parcels: Vec<ParcelView>,
    pub history: Vec<Step>,
    pub returns: Vec<ReturnView>,
    /// Items called off before they were packed: "1 × T-shirt (25,00 €)".
    pub cancelled: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Item {
    pub name: String,
    pub quantity: u32,
    pub total: String,
    /// "1 on its way to us, expected by 14 Dec 2026": units waiting for stock.
    pub waiting: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ParcelView {
    pub number: u32,
    pub of: usize,
    pub state: &'static str,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub expected: Option<String>,
    pub items: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub at: String,
    pub what: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ReturnView {
    pub return_id: String,
    pub state: &'static str,
    pub refund: Option<String>,
    pub items: Vec<String>,
    /// Where its label prints, once it is approved.
    pub label_url: Option<String>,
    /// Which order ships what it is exchanged for.
    pub replacement: Option<String>,
}

/// A line the customer may send back, on the return form.
#[derive(Debug, Serialize)]
pub struct ReturnableLine {
    /// Its place among the order's lines: what the form's fields are named by.
    pub index: usize,
    pub name: String,
    pub most: u32,
    /// What it may be exchanged for instead of a refund (none: a refund only).
    pub exchanges: Vec<ExchangeChoice>,
}

/// A product a returned line may be exchanged for.
#[derive(Debug, Serialize)]
pub struct ExchangeChoice {
    pub sku: String,
    pub name: String,
    /// The returned item itself (a replacement).
    pub same: bool,
    /// What it costs more or less a unit than was paid, in words (none: the same price).
    pub difference: Option<String>,
}

/// The return form's reasons, in the page's language.
pub fn reasons(language: &str) -> Vec<(&'static str, &'static str)> {
    oms_domain::order::returns::ReturnReason::ALL
        .iter()
        .map(|r| {
            (
                r.as_str(),
                text(language, &format!("reason.{}", r.as_str())),
            )
        })
        .collect()
}

impl OrderPage {
    /// `order` as its customer reads it, in `language`.
    pub fn of(order: &Order, language: &str) -> Self {
        let t = |key: &str| text(language, key);
        let money = |m| format_money(m, language);
        let payment = order.payment_status();
        let waiting = order.status == OrderStatus::Reserved && order.backordered() > 0;
        let today = chrono::Utc::now().date_naive();
        let awaiting_edit = order.awaiting_edit();
        let replaces_taken = awaiting_edit.is_some_and(|e| order.replaces_taken(e));
        let next = match order.status {
            // What the customer must do comes first: the edit waits for their payment.
            _ if replaces_taken => "next.edit-awaiting-payment.taken",
            _ if awaiting_edit.is_some() => "next.edit-awaiting-payment",
            OrderStatus::Reserved if !payment.allows_fulfillment() => "next.RESERVED.unpaid",
            // Paid and pre-ordered: it leaves on the release date, whatever arrives before.
            OrderStatus::Reserved if order.held_for_release(today).is_some() => {
                "next.RESERVED.release"
            }
            OrderStatus::Reserved if waiting && order.waits_for_stock() => "next.RESERVED.waiting",
            OrderStatus::Reserved if waiting => "next.RESERVED.ahead",
            // What was there went ahead; the rest is still to come to us.
            OrderStatus::Fulfilling
            | OrderStatus::PartiallyShipped
            | OrderStatus::PartiallyDelivered
                if order.backordered() > 0 =>
            {
                "next.rest-waiting"
            }
            status => match status {
                OrderStatus::Pending => "next.PENDING",
                OrderStatus::Reserved => "next.RESERVED",
                OrderStatus::Fulfilling => "next.FULFILLING",
                OrderStatus::PartiallyShipped => "next.PARTIALLY_SHIPPED",
                OrderStatus::Shipped => "next.SHIPPED",
                OrderStatus::PartiallyDelivered => "next.PARTIALLY_DELIVERED",
                OrderStatus::Delivered => "next.DELIVERED",
                OrderStatus::Rejected => "next.REJECTED",
                OrderStatus::Cancelled => "next.CANCELLED",
            },
        };
        let name_of = |sku: &oms_domain::ids::Sku| {
            order
                .lines
                .iter()
                .find(|l| &l.sku == sku)
                .map_or_else(|| sku.to_string(), |l| l.name.clone())
        };
        let of = order.parcels_expected() as usize;
        OrderPage {
            order_id: order.id.to_string(),
            placed: moment(order.created_at, language),
            status: order.status.as_str(),
            now: if waiting {
                t("status.RESERVED.waiting")
            } else {
                t(&format!("status.{}", order.status.as_str()))
            },
            next: match awaiting_edit {
                Some(edit) => t(next)
                    .replace("{total}", &money(edit.totals_after.total))
                    .replace(
                        "{more}",
                        &money(
                            oms_domain::money::Money::new(
                                edit.difference(),
                                edit.totals_after.total.currency(),
                            )
                            .unwrap_or(edit.totals_after.total),
                        ),
                    )
                    .replace(
                        "{due}",
                        &edit
                            .due_by
                            .map_or_else(String::new, |due| moment(due, language)),
                    )
                    .replace("{before}", &money(edit.totals_before.total)),
                None => t(next).replace(
                    "{release}",
                    &order
                        .held_for_release(today)
                        .map_or_else(String::new, |on| format_date(on, language)),
                ),
            },
            payment: if replaces_taken {
                t("payment.edit-awaiting-payment.taken")
            } else if awaiting_edit.is_some() {
                t("payment.edit-awaiting-payment")
            } else {
                t(&format!("payment.{}", payment.as_str()))
            },
            items: order
                .lines
                .iter()
                .map(|l| Item {
                    name: l.name.clone(),
                    quantity: l.quantity.get(),
                    total: money(l.line_total),
                    waiting: (l.backordered() > 0 && !order.status.is_final()).then(|| {
                        // A date that has passed is not shown as a promise: the delivery is late.
                        if l.promised_on.is_some_and(|on| on < today) {
                            return format!("{} {}", l.backordered(), t("order.waiting.late"));
                        }
                        let on = l.promised_on.map(|on| format_date(on, language));
                        match on {
                            Some(on) => {
                                format!("{} {} {on}", l.backordered(), t("order.waiting.expected"))
                            }
                            None => format!("{} {}", l.backordered(), t("order.waiting")),
                        }
                    }),
                })
                .collect(),
            shipping: money(order.totals.shipping),
            total: money(order.totals.total),
            parcels: order
                .shipments
                .iter()
                .map(|s| ParcelView {
                    number: s.number,
                    of,
                    state: t(&format!("parcel.{}", s.status.as_str())),
                    carrier: s.tracking.as_ref().map(|t| t.carrier.clone()),
                    tracking_number: s.tracking.as_ref().map(|t| t.tracking_number.clone()),
                    tracking_url: s
                        .tracking
                        .as_ref()
                        .map(|t| t.tracking_url.clone())
                        .filter(|u| u.starts_with("https://")),
                    expected: s.estimate.filter(|_| s.delivered_at.is_none()).map(|e| {
                        format!(
                            "{} – {}",
                            format_date(e.earliest, language),
                            format_date(e.latest, language)
                        )
                    }),
                    items: s
                        .lines
                        .iter()
                        .map(|l| format!("{} × {}", l.quantity.get(), name_of(&l.sku)))
                        .collect(),
                })
                .collect(),
            history: history(order, language),
            cancelled: order
                .unit_cancellations
                .iter()
                .flat_map(|c| &c.lines)
                .map(|l| format!("{} × {} ({})", l.quantity.get(), l.name, money(l.amount)))
                .collect(),
            returns: order
                .returns
                .iter()
                .map(|r| ReturnView {
                    return_id: r.return_id.to_string(),
                    state: t(&format!("return.{}", r.status.as_str())),
                    refund: r.refund_id.as_deref().and_then(|id| {
                        let refund = order.refunds.iter().find(|f| f.refund_id == id)?;
                        let words = t(&format!("refund.{}", refund_key(order.refund_state(id))));
                        Some(words.replace("{amount}", &money(refund.amount)))
                    }),
                    items: r
                        .lines
                        .iter()
                        .map(|l| match &l.exchange {
                            Some(e) => format!(
                                "{} × {} ({} {})",
                                l.quantity.get(),
                                l.name,
                                t("return.exchanged-for"),
                                e.name
                            ),
                            None => format!("{} × {}", l.quantity.get(), l.name),
                        })
                        .collect(),
                    // Offered while the parcel is to be sent; the label still prints after.
                    label_url: (r.status == ReturnStatus::Approved).then(|| {
                        format!("/shop/orders/{}/returns/{}/label", order.id, r.return_id)
                    }),
                    replacement: r
                        .replacement_order_id
                        .as_ref()
                        .map(|id| match r.exchange_due {
                            Some(due) => t("return.replacement.due")
                                .replace("{order}", id.as_str())
                                .replace("{amount}", &money(due)),
                            None => t("return.replacement").replace("{order}", id.as_str()),
                        }),
                })
                .collect(),
        }
    }
}

/// The order's history as its customer reads it: each status it reached, when it first did
/// (the timeline's further entries under the same status are staff's and the system's notes).
fn history(order: &Order, language: &str) -> Vec<Step> {
    let mut steps: Vec<&oms_domain::order::TimelineEntry> = order.timeline.iter().collect();
    steps.dedup_by_key(|step| step.status);
    steps
        .into_iter()
        .map(|step| Step {
            at: moment(step.at, language),
            what: text(language, &format!("status.{}", step.status.as_str())),
        })
        .collect()
}

fn refund_key(state: RefundState) -> &'static str {
    match state {
        RefundState::AwaitingCapture => "AWAITING_CAPTURE",
        RefundState::Requested => "REQUESTED",
        RefundState::Issued => "ISSUED",
        RefundState::Failed => "FAILED",
    }
}

/// The context of a page: its language, and whatever it shows.
pub fn page_context(language: &str, page: Value) -> Value {
    context! { lang => language, ..page }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::order::fulfillment::FulfillmentStatus;
    use oms_domain::order::payments::PaymentStatus;

    #[test]
    fn every_text_is_written_in_every_language_and_every_state_has_its_words() {
        for (key, en, de) in TEXTS {
            assert!(!en.is_empty() && !de.is_empty(), "{key}");
        }
        for status in [
            "PENDING",
            "RESERVED",
            "FULFILLING",
            "PARTIALLY_SHIPPED",
            "SHIPPED",
            "PARTIALLY_DELIVERED",
            "DELIVERED",
            "REJECTED",
            "CANCELLED",
        ] {
            assert!(!text("de", &format!("status.{status}")).is_empty());
            assert!(!text("en", &format!("next.{status}")).is_empty());
        }
        for status in PaymentStatus::ALL {
            assert!(!text("de", &format!("payment.{}", status.as_str())).is_empty());
        }
        for status in FulfillmentStatus::ALL {
            assert!(!text("en", &format!("parcel.{}", status.as_str())).is_empty());
        }
    }

    #[test]
    fn an_edit_waiting_for_the_customers_payment_says_what_is_due_and_by_when() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let order =
            oms_domain::fixtures::sample_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", "customer-ada", at)
                .reserve_all_at("BER-1", at)
                .unwrap()
                .authorized_for_test(at);
        let express = oms_domain::order::commands::OrderEditRequest {
            shipping_address: None,
            shipping_method: Some(oms_domain::shipping::ShippingMethod::Express),
            add_lines: Vec::new(),
            ship_complete: None,
            reason: "needed sooner".into(),
        };
        let edited = order
            .edit(
                &express,
                "k1",
                "admin",
                &oms_domain::shipping::ShippingPolicy::default_policy(),
                |_| Some("domestic".into()),
                &[],
                chrono::Duration::minutes(30),
                at,
            )
            .unwrap()
            .order;
        let edit = edited.awaiting_edit().expect("it waits for the new total");
        let more = edit.difference();
        assert!(more > 0);
        let page = OrderPage::of(&edited, "en");
        let total = format_money(edit.totals_after.total, "en");
        assert!(
            page.next.contains(&format!("now costs {total}")),
            "{}",
            page.next
        );
        let more = format_money(
            oms_domain::money::Money::new(more, edit.totals_after.total.currency()).unwrap(),
            "en",
        );
        assert!(page.next.contains(&format!("{more} more")), "{}", page.next);
        assert!(page.next.contains("09:30 UTC"), "{}", page.next);
        assert!(page.payment.contains("as it was"), "{}", page.payment);
        let seite = OrderPage::of(&edited, "de");
        assert!(seite.next.contains("mehr"), "{}", seite.next);
        assert!(!seite.next.contains('{'), "{}", seite.next);

        // Its money taken already: the new total is paid, what was paid before refunded.
        let taken = order
            .captured_for_test(at)
            .edit(
                &express,
                "k2",
                "admin",
                &oms_domain::shipping::ShippingPolicy::default_policy(),
                |_| Some("domestic".into()),
                &[],
                chrono::Duration::minutes(30),
                at,
            )
            .unwrap()
            .order;
        let before = format_money(order.totals.total, "en");
        let page = OrderPage::of(&taken, "en");
        assert!(
            page.next
                .contains(&format!("the {before} you paid before is refunded")),
            "{}",
            page.next
        );
        assert!(page.payment.contains("refunded once"), "{}", page.payment);
        for language in ["en", "de"] {
            let page = OrderPage::of(&taken, language);
            assert!(!page.next.contains('{'), "{}", page.next);
        }
    }

    #[test]
    fn a_paid_pre_order_in_stock_says_it_leaves_on_its_release_date() {
        let at = chrono::Utc::now();
        let order =
            oms_domain::fixtures::sample_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", "customer-ada", at);
        let release = at.date_naive() + chrono::Days::new(10);
        let sku = order.lines[0].sku.clone();
        let reserved = order
            .reserve_for_release(
                &oms_domain::routing::Plan::one_location("BER-1", order.quantities()),
                &[],
                &[(sku, release)],
                at,
            )
            .unwrap()
            .authorized_for_test(at);
        assert_eq!(reserved.hold(), Some("AWAITING_RELEASE"));
        let page = OrderPage::of(&reserved, "de");
        assert!(page.next.contains("Erscheinungstag"), "{}", page.next);
        assert!(
            page.next.contains(&format_date(release, "de")),
            "{}",
            page.next
        );
    }

    #[test]
    fn a_promised_date_that_has_passed_is_shown_as_late_not_as_a_promise() {
        let at = chrono::Utc::now();
        let order =
            oms_domain::fixtures::sample_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", "customer-ada", at);
        let line = &order.lines[0];
        let (sku, units) = (line.sku.clone(), line.quantity.get());
        let promised = |on: chrono::NaiveDate| {
            let others: Vec<_> = order.lines[1..]
                .iter()
                .map(|l| (&l.sku, l.quantity))
                .collect();
            order
                .reserve_backordering(
                    &oms_domain::routing::Plan::one_location("BER-1", others),
                    &[oms_domain::order::Backordered {
                        sku: sku.clone(),
                        units,
                        location: "BER-1".into(),
                        promised_on: Some(on),
                    }],
                    at,
                )
                .unwrap()
        };
        let today = at.date_naive();
        let ahead = OrderPage::of(&promised(today + chrono::Days::new(3)), "en");
        let waiting = ahead.items[0].waiting.clone().unwrap();
        assert!(
            waiting.contains("expected in our warehouse by"),
            "{waiting}"
        );
        let late = OrderPage::of(&promised(today - chrono::Days::new(1)), "en");
        let waiting = late.items[0].waiting.clone().unwrap();
        assert!(
            waiting.contains("later than the date we gave you"),
            "{waiting}"
        );
    }

    #[test]
    fn the_browsers_language_is_taken_where_the_pages_have_it() {
        assert_eq!(language_of_browser(Some("de-DE,de;q=0.9,en;q=0.8")), "de");
        assert_eq!(language_of_browser(Some("fr-FR, de;q=0.5")), "de");
        assert_eq!(language_of_browser(Some("fr-FR")), "en");
        assert_eq!(language_of_browser(None), "en");
    }
}
