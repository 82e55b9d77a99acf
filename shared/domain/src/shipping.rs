//! Shipping methods, the business's rate table, and delivery estimates.
//!
//! Rates are data (`shipping-policy.json` beside this crate is the default the functions load),
//! not constants in code: a zone groups destination countries, and a rate prices one method in one
//! zone as a base amount plus an amount per started kilogram, with its transit time in business
//! days. A method without a rate for the destination's zone does not serve it.
//!
//! Estimates count business days (Monday to Friday): an order placed after the cut-off hour, or on
//! a weekend, starts its handling on the next business day; it ships after the handling days and
//! arrives after the transit days. Once a parcel ships, the estimate is recomputed from the ship
//! date. Quotes and orders use the same calculation, so the price an order is charged is the
//! price its quote showed.

use chrono::{DateTime, Datelike, Days, NaiveDate, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::contact::CountryCode;
use crate::money::{Currency, Money, MoneyError};

/// How an order travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShippingMethod {
    Standard,
    Express,
    Overnight,
    InStorePickup,
}

impl ShippingMethod {
    pub const ALL: [ShippingMethod; 4] = [
        Self::Standard,
        Self::Express,
        Self::Overnight,
        Self::InStorePickup,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::Express => "EXPRESS",
            Self::Overnight => "OVERNIGHT",
            Self::InStorePickup => "IN_STORE_PICKUP",
        }
    }
}

/// Why a shipment cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShippingError {
    #[error("we do not ship to {0}")]
    UnsupportedCountry(String),
    #[error("{method} shipping is not available to {country}")]
    MethodNotServed {
        method: &'static str,
        country: String,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Zone {
    name: String,
    countries: Vec<CountryCode>,
}

/// Business days a parcel spends travelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
struct TransitDays {
    min: u32,
    max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rate {
    method: ShippingMethod,
    zone: String,
    base: i64,
    per_kg: i64,
    transit_days: TransitDays,
}

/// When a parcel is expected: the first and last day of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEstimate {
    pub earliest: NaiveDate,
    pub latest: NaiveDate,
}

/// What one method costs to one destination, and when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingQuote {
    pub method: ShippingMethod,
    pub price: Money,
    pub estimate: DeliveryEstimate,
}

/// The day an order placed at `ordered_at` leaves a location that needs `handling_days`
/// business days and takes orders in until `cutoff_hour_utc` for the same day.
pub fn ship_date_with(
    ordered_at: DateTime<Utc>,
    handling_days: u32,
    cutoff_hour_utc: u32,
) -> NaiveDate {
    let day = ordered_at.date_naive();
    let start = if !is_business_day(day) || ordered_at.hour() >= cutoff_hour_utc {
        next_business_day(day)
    } else {
        day
    };
    add_business_days(start, handling_days)
}

/// The business's shipping rate table, in the store's currency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingPolicy {
    currency: Currency,
    warehouse: String,
    handling_days: u32,
    cutoff_hour_utc: u32,
    zones: Vec<Zone>,
    rates: Vec<Rate>,
}

/// Why a rate table was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the shipping policy is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the shipping policy is inconsistent: {0}")]
    Inconsistent(String),
}

fn is_business_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next_business_day(mut date: NaiveDate) -> NaiveDate {
    loop {
        date = date + Days::new(1);
        if is_business_day(date) {
            return date;
        }
    }
}

/// `date` moved forward by `days` business days (a weekend day counts from the next Monday).
fn add_business_days(mut date: NaiveDate, days: u32) -> NaiveDate {
    if !is_business_day(date) {
        date = next_business_day(date);
    }
    for _ in 0..days {
        date = next_business_day(date);
    }
    date
}

impl ShippingPolicy {
    /// The default rate table shipped with the system.
    pub fn default_policy() -> Self {
        Self::from_json(include_str!("../shipping-policy.json"))
            .expect("the bundled shipping policy is valid; a unit test proves it")
    }

    /// Parses and checks a rate table: every rate names a known zone, nothing is negative.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let policy: ShippingPolicy = serde_json::from_str(json)?;
        if policy.cutoff_hour_utc > 23 {
            return Err(PolicyError::Inconsistent(
                "cutoffHourUtc must be 0 to 23".into(),
            ));
        }
        for rate in &policy.rates {
            if !policy.zones.iter().any(|z| z.name == rate.zone) {
                return Err(PolicyError::Inconsistent(format!(
                    "unknown zone '{}'",
                    rate.zone
                )));
            }
            if rate.base < 0 || rate.per_kg < 0 || rate.transit_days.min > rate.transit_days.max {
                return Err(PolicyError::Inconsistent(format!(
                    "bad rate for {} in {}",
                    rate.method.as_str(),
                    rate.zone
                )));
            }
        }
        Ok(policy)
    }

    /// The store's currency: catalog prices and shipping are all in it.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The warehouse that ships orders.
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    /// Whether the rate table has a zone of this name.
    pub fn has_zone(&self, name: &str) -> bool {
        self.zones.iter().any(|z| z.name == name)
    }

    /// The rate table's zones' names, nearest first.
    pub fn zone_names(&self) -> impl Iterator<Item = &str> {
        self.zones.iter().map(|z| z.name.as_str())
    }

    /// Whether the business ships to `country` at all.
    pub fn ships_to(&self, country: &CountryCode) -> bool {
        self.zone_of(country).is_some()
    }

    fn zone_of(&self, country: &CountryCode) -> Option<&Zone> {
        self.zones.iter().find(|z| z.countries.contains(country))
    }

    fn rate(&self, method: ShippingMethod, country: &CountryCode) -> Result<&Rate, ShippingError> {
        let zone = self
            .zone_of(country)
            .ok_or_else(|| ShippingError::UnsupportedCountry(country.as_str().to_owned()))?;
        self.rates
            .iter()
            .find(|r| r.method == method && r.zone == zone.name)
            .ok_or_else(|| ShippingError::MethodNotServed {
                method: method.as_str(),
                country: country.as_str().to_owned(),
            })
    }

    /// What one parcel of `weight_grams` costs by `method` to `country` from a location in
    /// `origin_zone` (minor units), `None` if the method does not serve it. The rate table is
    /// written from the default warehouse's side, its zones listed nearest first: a parcel from
    /// a location in another zone is priced at the farther of its zone and the destination's,
    /// so a location in the customer's own zone never costs more than one farther away.
    pub fn parcel_cost(
        &self,
        method: ShippingMethod,
        origin_zone: &str,
        country: &CountryCode,
        weight_grams: u64,
    ) -> Option<i64> {
        let destination = self
            .zones
            .iter()
            .position(|z| z.countries.contains(country))?;
        let origin = self.zones.iter().position(|z| z.name == origin_zone)?;
        let zone = &self.zones[destination.max(origin)].name;
        let rate = self
            .rates
            .iter()
            .find(|r| r.method == method && &r.zone == zone)?;
        let kg = i64::try_from(weight_grams.div_ceil(1000)).ok()?;
        rate.base.checked_add(rate.per_kg.checked_mul(kg)?)
    }

    /// The day an order placed at `ordered_at` leaves the warehouse.
    pub fn ship_date(&self, ordered_at: DateTime<Utc>) -> NaiveDate {
        ship_date_with(ordered_at, self.handling_days, self.cutoff_hour_utc)
    }

    /// When a parcel that leaves on `ship_date` by `method` arrives in `country`.
    pub fn estimate_from_ship_date(
        &self,
        method: ShippingMethod,
        country: &CountryCode,
        ship_date: NaiveDate,
    ) -> Result<DeliveryEstimate, ShippingError> {
        let transit = self.rate(method, country)?.transit_days;
        Ok(DeliveryEstimate {
            earliest: add_business_days(ship_date, transit.min),
            latest: add_business_days(ship_date, transit.max),
        })
    }

    /// The price and estimate of sending `weight_grams` to `country` by `method`, ordered now.
    pub fn quote(
        &self,
        method: ShippingMethod,
        country: &CountryCode,
        weight_grams: u64,
        ordered_at: DateTime<Utc>,
    ) -> Result<ShippingQuote, ShippingError> {
        let rate = self.rate(method, country)?;
        let started_kg = weight_grams.div_ceil(1000);
        let per_kg = i64::try_from(started_kg)
            .ok()
            .and_then(|kg| rate.per_kg.checked_mul(kg))
            .ok_or(MoneyError::Overflow)?;
        let amount = rate.base.checked_add(per_kg).ok_or(MoneyError::Overflow)?;
        Ok(ShippingQuote {
            method,
            price: Money::new(amount, self.currency)?,
            estimate: self.estimate_from_ship_date(method, country, self.ship_date(ordered_at))?,
        })
    }

    /// Every method that serves `country`, cheapest first.
    pub fn options(
        &self,
        country: &CountryCode,
        weight_grams: u64,
        ordered_at: DateTime<Utc>,
    ) -> Result<Vec<ShippingQuote>, ShippingError> {
        if !self.ships_to(country) {
            return Err(ShippingError::UnsupportedCountry(
                country.as_str().to_owned(),
            ));
        }
        let mut quotes: Vec<ShippingQuote> = ShippingMethod::ALL
            .into_iter()
            .filter_map(|method| self.quote(method, country, weight_grams, ordered_at).ok())
            .collect();
        quotes.sort_by_key(|q| (q.price.minor_units(), q.estimate.latest));
        Ok(quotes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(code: &str) -> CountryCode {
        CountryCode::parse(code).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_bundled_policy_loads() {
        let policy = ShippingPolicy::default_policy();
        assert_eq!(policy.currency().code(), "EUR");
        assert_eq!(policy.warehouse(), "BER-1");
        assert!(policy.ships_to(&country("DE")));
        assert!(!policy.ships_to(&country("AQ")));
    }

    /// Destinations, weights and order times, with the price and window the policy must give.
    /// 2026-11-25 is a Wednesday; the cut-off is 14:00 UTC; handling takes one business day.
    #[test]
    fn quotes_follow_the_configured_table() {
        let policy = ShippingPolicy::default_policy();
        let cases = [
            // method, country, grams, ordered at, price, earliest, latest
            (
                ShippingMethod::Standard,
                "DE",
                0,
                "2026-11-25T09:00:00Z",
                490,
                "2026-11-27",
                "2026-12-01",
            ),
            (
                ShippingMethod::Standard,
                "DE",
                1,
                "2026-11-25T09:00:00Z",
                540,
                "2026-11-27",
                "2026-12-01",
            ),
            (
                ShippingMethod::Standard,
                "DE",
                1001,
                "2026-11-25T09:00:00Z",
                590,
                "2026-11-27",
                "2026-12-01",
            ),
            // After the cut-off: handling starts Thursday, ships Friday, arrives from Monday.
            (
                ShippingMethod::Standard,
                "DE",
                500,
                "2026-11-25T15:00:00Z",
                540,
                "2026-11-30",
                "2026-12-02",
            ),
            // Friday after the cut-off: handling Monday, ships Tuesday.
            (
                ShippingMethod::Express,
                "FR",
                2500,
                "2026-11-27T16:00:00Z",
                1990 + 3 * 200,
                "2026-12-02",
                "2026-12-03",
            ),
            // Saturday: as if placed Monday morning.
            (
                ShippingMethod::Overnight,
                "DE",
                100,
                "2026-11-28T10:00:00Z",
                2140,
                "2026-12-02",
                "2026-12-02",
            ),
            (
                ShippingMethod::Standard,
                "US",
                3000,
                "2026-11-25T09:00:00Z",
                1990 + 3 * 400,
                "2026-12-03",
                "2026-12-10",
            ),
            (
                ShippingMethod::InStorePickup,
                "DE",
                9000,
                "2026-11-25T09:00:00Z",
                0,
                "2026-11-26",
                "2026-11-26",
            ),
        ];
        for (method, to, grams, ordered, price, earliest, latest) in cases {
            let quote = policy
                .quote(method, &country(to), grams, at(ordered))
                .unwrap();
            let case = format!("{} to {to}, {grams} g, {ordered}", method.as_str());
            assert_eq!(quote.price.minor_units(), price, "{case}");
            assert_eq!(
                (quote.estimate.earliest, quote.estimate.latest),
                (day(earliest), day(latest)),
                "{case}"
            );
        }
    }

    #[test]
    fn only_methods_that_serve_the_destination_are_offered() {
        let policy = ShippingPolicy::default_policy();
        let methods = |to| -> Vec<_> {
            policy
                .options(&country(to), 500, at("2026-11-25T09:00:00Z"))
                .unwrap()
                .iter()
                .map(|q| q.method)
                .collect()
        };
        assert_eq!(
            methods("DE"),
            [
                ShippingMethod::InStorePickup,
                ShippingMethod::Standard,
                ShippingMethod::Express,
                ShippingMethod::Overnight
            ]
        );
        assert_eq!(
            methods("FR"),
            [ShippingMethod::Standard, ShippingMethod::Express]
        );
        assert!(matches!(
            policy.quote(ShippingMethod::Overnight, &country("FR"), 1, Utc::now()),
            Err(ShippingError::MethodNotServed { .. })
        ));
        assert!(matches!(
            policy.options(&country("AQ"), 1, Utc::now()),
            Err(ShippingError::UnsupportedCountry(_))
        ));
    }

    #[test]
    fn a_shipped_parcels_estimate_counts_from_its_ship_date() {
        let policy = ShippingPolicy::default_policy();
        let estimate = policy
            .estimate_from_ship_date(ShippingMethod::Standard, &country("DE"), day("2026-12-04"))
            .unwrap();
        assert_eq!(
            (estimate.earliest, estimate.latest),
            (day("2026-12-07"), day("2026-12-09"))
        );
    }

    #[test]
    fn refuses_a_rate_for_an_unknown_zone() {
        let json = r#"{"currency":"EUR","warehouse":"W","handlingDays":1,"cutoffHourUtc":14,"zones":[],
            "rates":[{"method":"STANDARD","zone":"x","base":1,"perKg":1,"transitDays":{"min":1,"max":2}}]}"#;
        assert!(matches!(
            ShippingPolicy::from_json(json),
            Err(PolicyError::Inconsistent(_))
        ));
    }
}
