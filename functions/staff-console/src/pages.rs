//! The console's pages: minijinja templates, compiled into the binary, filled from the
//! application layer's views (serialized, so a page shows what the JSON API shows).
//!
//! Templates are auto-escaped (their names end in `.html`), so no value a customer typed can
//! become markup. Every page extends `layout.html`: the navigation the session's scopes allow,
//! and a banner for what the last action did.

use chrono::{DateTime, Utc};
use minijinja::{Environment, Value};

/// The templates, by name.
const TEMPLATES: [(&str, &str); 16] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("forms.html", include_str!("../templates/forms.html")),
    ("print.html", include_str!("../templates/print.html")),
    ("slips.html", include_str!("../templates/slips.html")),
    (
        "pick-list.html",
        include_str!("../templates/pick-list.html"),
    ),
    ("message.html", include_str!("../templates/message.html")),
    ("orders.html", include_str!("../templates/orders.html")),
    ("order.html", include_str!("../templates/order.html")),
    (
        "inventory.html",
        include_str!("../templates/inventory.html"),
    ),
    ("product.html", include_str!("../templates/product.html")),
    (
        "locations.html",
        include_str!("../templates/locations.html"),
    ),
    (
        "dead-letters.html",
        include_str!("../templates/dead-letters.html"),
    ),
    ("slip.html", include_str!("../templates/slip.html")),
    (
        "warehouse.html",
        include_str!("../templates/warehouse.html"),
    ),
    ("returns.html", include_str!("../templates/returns.html")),
    (
        "exceptions.html",
        include_str!("../templates/exceptions.html"),
    ),
];

/// The stylesheet every page links (served from the console itself: the CSP allows no other).
pub const STYLESHEET: &str = include_str!("../assets/console.css");

/// Where pages link the stylesheet: its path with a digest of its contents, so browsers keep it
/// for a year (it is `immutable`) and a new stylesheet is a new address.
pub fn stylesheet_href() -> &'static str {
    static HREF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        oms_adapters::web::asset_href("/console/assets/console.css", STYLESHEET)
    });
    &HREF
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
        env.add_filter("money", money);
        env.add_filter("since", since);
        env.add_filter("until", until);
        env.add_filter("when", when);
        env.add_filter("minutes", minutes);
        env.add_function("refilled", refilled);
        // Our own constant, safe in an attribute as it is.
        env.add_global(
            "stylesheet",
            Value::from_safe_string(stylesheet_href().to_owned()),
        );
        Pages { env }
    }

    /// Renders `name` with `context`.
    pub fn render(&self, name: &str, context: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// The refused form `form` of the page being rendered, if it is that one: what was typed into
/// it (`values`) and why it was refused (`errors`, by field); else both empty, so a form
/// reads `f.values.note or ""` alike either way.
fn refilled(state: &minijinja::State, form: &str) -> Value {
    let refill = state.lookup("refill").filter(|r| {
        r.get_attr("form")
            .ok()
            .and_then(|f| f.as_str().map(|f| f == form))
            .unwrap_or(false)
    });
    match refill {
        Some(refill) => refill,
        None => {
            minijinja::context! { values => minijinja::context! {}, errors => minijinja::context! {} }
        }
    }
}

/// A serializable value (a view) as a template value.
pub fn ser<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// `{"amount": 8040, "currency": "EUR"}` → `80.40 EUR`; `{"amount": 1500, "currency":
/// "JPY"}` → `1500 JPY`: as many decimals as the currency has.
fn money(value: Value) -> String {
    let amount = value
        .get_attr("amount")
        .ok()
        .and_then(|a| i64::try_from(a).ok())
        .unwrap_or(0);
    let code = value
        .get_attr("currency")
        .map(|c| c.to_string())
        .unwrap_or_default();
    let sign = if amount < 0 { "-" } else { "" };
    match oms_domain::money::Currency::parse(&code)
        .and_then(|currency| oms_domain::money::Money::new(amount.abs(), currency))
    {
        Ok(money) => format!("{sign}{money}"),
        Err(_) => format!("{amount} {code}"),
    }
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An RFC 3339 time → how long ago, in the largest two units (`2 d 3 h`, `5 min`).
fn since(value: String) -> String {
    let Some(at) = parse_time(&value) else {
        return value;
    };
    span((Utc::now() - at).num_seconds().max(0))
}

/// An RFC 3339 time still to come → how long until then (`in 12 min`), or `overdue` once it
/// has passed.
fn until(value: String) -> String {
    let Some(at) = parse_time(&value) else {
        return value;
    };
    let seconds = (at - Utc::now()).num_seconds();
    if seconds <= 0 {
        "overdue".to_owned()
    } else {
        format!("in {}", span(seconds))
    }
}

/// A span of seconds as staff read it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
fn span(seconds: i64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// A number of minutes → `10 min`, `1 h`, `2 d`.
fn minutes(value: i64) -> String {
    match value {
        m if m >= 1440 && m % 1440 == 0 => format!("{} d", m / 1440),
        m if m >= 60 && m % 60 == 0 => format!("{} h", m / 60),
        m => format!("{m} min"),
    }
}

/// The time zone `CONSOLE_TIME_ZONE` names (an IANA name such as `Europe/Berlin`); UTC if it
/// is unset. An unknown name is an error the function reports at its start.
pub fn configured_time_zone() -> Result<chrono_tz::Tz, String> {
    match std::env::var("CONSOLE_TIME_ZONE") {
        Ok(name) if !name.is_empty() => name
            .parse()
            .map_err(|_| format!("CONSOLE_TIME_ZONE: {name} is not an IANA time zone")),
        _ => Ok(chrono_tz::UTC),
    }
}

/// The time zone the console writes times in ([`configured_time_zone`]).
fn time_zone() -> chrono_tz::Tz {
    static ZONE: std::sync::LazyLock<chrono_tz::Tz> =
        std::sync::LazyLock::new(|| configured_time_zone().unwrap_or(chrono_tz::UTC));
    *ZONE
}

/// Today in the business's time zone: the day a purchase order's expected date is late after.
pub fn today() -> chrono::NaiveDate {
    Utc::now().with_timezone(&time_zone()).date_naive()
}

/// An RFC 3339 time → `2026-12-02 16:04:05 CET`, in the business's time zone, to the second,
/// as a `<time>` whose title is the same moment in UTC.
fn when(value: String) -> Value {
    match parse_time(&value) {
        Some(at) => Value::from_safe_string(written_in(at, time_zone())),
        None => Value::from(value),
    }
}

fn written_in(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    // Every part is our own formatting of a parsed time: nothing in it needs escaping.
    format!(
        "<time datetime=\"{}\" title=\"{}\">{}</time>",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_their_currencys_decimals() {
        let of = |amount: i64, currency: &str| {
            money(ser(
                serde_json::json!({"amount": amount, "currency": currency}),
            ))
        };
        assert_eq!(of(8040, "EUR"), "80.40 EUR");
        assert_eq!(of(5, "EUR"), "0.05 EUR");
        assert_eq!(of(-250, "EUR"), "-2.50 EUR");
        assert_eq!(of(1500, "JPY"), "1500 JPY");
        assert_eq!(of(12345, "KWD"), "12.345 KWD");
    }

    /// Every page with a next page to link to: the links escape their cursors.
    #[test]
    fn pages_with_more_to_come_link_their_next_page() {
        let pages = Pages::new();
        let me = ser(
            serde_json::json!({"sub": "staff-ada", "admin": true, "warehouse": true, "csrf": "t"}),
        );
        // `/` may stay as it is in a query; `+` and `=` may not.
        let cursor = "a+b=";
        let orders = pages
            .render("orders.html", minijinja::context! { me => me.clone(), statuses => ["PENDING"], status => "PENDING", min_age => 0, orders => ser(serde_json::json!([{"orderId": "01J", "status": "PENDING", "payment": "PENDING", "statusSince": "2026-12-02T10:00:00Z", "lineCount": 1, "totals": {"total": {"amount": 100, "currency": "EUR"}}, "createdAt": "2026-12-02T10:00:00Z"}])), next_cursor => cursor })
            .unwrap();
        assert!(orders.contains("cursor=a%2Bb%3D"), "{orders}");
        let inventory = pages
            .render("inventory.html", minijinja::context! { me => me.clone(), products => ser(serde_json::json!([{"sku": "A", "name": "A", "available": 1, "reserved": 0, "onHand": 1, "lowStockThreshold": 2, "active": true, "health": {"demand30Days": 3, "daysOfCover": 10, "reorderPoint": 2, "reorder": false, "suggestedReorder": 0, "overstock": false}}])), q => "x y", sort => "lowStock", overstock_days => 90, next_cursor => cursor })
            .unwrap();
        assert!(
            inventory.contains("q=x%20y") && inventory.contains("cursor=a%2Bb%3D"),
            "{inventory}"
        );
        let warehouse = pages
            .render("warehouse.html", minijinja::context! { me => me, sections => ser(serde_json::json!([{"status": "AWAITING_PICK", "orders": [{"orderId": "01J", "version": 3, "lines": [], "method": "STANDARD", "country": "DE", "queuedAt": "2026-12-02T10:00:00Z"}], "more": true, "nextCursor": cursor}])) })
            .unwrap();
        assert!(
            warehouse.contains("status=AWAITING_PICK&amp;cursor=a%2Bb%3D"),
            "{warehouse}"
        );
    }

    #[test]
    fn every_template_compiles_and_money_reads_minor_units() {
        let _ = Pages::new();
        assert_eq!(
            money(ser(serde_json::json!({"amount": 8040, "currency": "EUR"}))),
            "80.40 EUR"
        );
        assert_eq!(
            money(ser(serde_json::json!({"amount": -5, "currency": "EUR"}))),
            "-0.05 EUR"
        );
        let at = parse_time("2026-12-02T15:04:05Z").unwrap();
        assert_eq!(
            written_in(at, chrono_tz::Europe::Berlin),
            "<time datetime=\"2026-12-02T15:04:05Z\" title=\"2026-12-02 15:04:05 UTC\">2026-12-02 16:04:05 CET</time>"
        );
        assert_eq!(
            written_in(at, chrono_tz::UTC),
            "<time datetime=\"2026-12-02T15:04:05Z\" title=\"2026-12-02 15:04:05 UTC\">2026-12-02 15:04:05 UTC</time>"
        );
        assert_eq!(when("not a time".into()).to_string(), "not a time");
        assert_eq!(
            [minutes(10), minutes(60), minutes(2880), minutes(90)],
            ["10 min", "1 h", "2 d", "90 min"]
        );
    }
}
