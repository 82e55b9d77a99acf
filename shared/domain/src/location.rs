//! The places stock is kept and orders leave from: warehouses and stores, as data.
//!
//! A business starts from a list in a file like the shipping policy (`locations.json` ships the
//! demo's three: two warehouses in different zones and a store that hands orders over); staff
//! then add and change locations over the API and in the console, and the list they keep is
//! stored beside the orders ([`crate::app::locations`]) and read by every function. Each
//! names the zone of the shipping policy it ships from, its handling days and cut-off hour, what
//! it can do (ship, hand over pickups, take returns) and a priority for the routing planner
//! ([`crate::routing`]). The shipping policy's one warehouse is the **default location**: stock
//! and orders written before there were locations belong to it, so they read as before.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::contact::CountryCode;
use crate::routing::{self, Availability, Demand, Fulfilment, Plan, PlanError};
use crate::shipping::{ship_date_with, ShippingMethod, ShippingPolicy, ShippingQuote};
use crate::stock::Product;

/// What a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LocationKind {
    Warehouse,
    Store,
}

/// What a location can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Sends parcels to customers.
    pub ships: bool,
    /// Hands orders over to customers who collect them.
    pub pickup: bool,
    /// Takes returned goods in.
    pub returns: bool,
}

/// A warehouse or a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    /// `BER-1`: upper-case letters, digits and `-`, at most 32 (it is part of keys).
    pub id: String,
    pub name: String,
    pub kind: LocationKind,
    pub country: CountryCode,
    pub postal_code: String,
    /// The shipping policy's zone it ships from.
    pub zone: String,
    /// Business days between an order reaching it and its parcel leaving.
    pub handling_days: u32,
    /// Orders in by this hour (UTC) leave that day.
    pub cutoff_hour_utc: u32,
    pub capabilities: Capabilities,
    /// Lower first when plans are otherwise equal.
    pub priority: u32,
}

impl Location {
    /// What the routing planner reads of it.
    pub fn for_routing(&self) -> crate::routing::Location {
        crate::routing::Location {
            id: self.id.clone(),
            ships: self.capabilities.ships,
            pickup: self.capabilities.pickup,
            priority: self.priority,
        }
    }
}

/// The business's locations, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    locations: Vec<Location>,
    default: String,
    /// The rate table the list was checked against: which destinations each location's zone
    /// is served from.
    shipping: ShippingPolicy,
    /// How many times staff changed the list: 0 while it is the file's.
    version: u64,
}

/// How many locations a business may list: the planner tries every set of them when an order
/// needs several (up to [`routing::MAX_EXACT_LOCATIONS`] holding its SKUs), and the list is
/// read whole by every function.
pub const MAX_LOCATIONS: usize = 50;

/// Why a list of locations was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("the locations do not read: {0}")]
    Unreadable(String),
    #[error("location id '{0}' must be 1 to 32 upper-case letters, digits or '-'")]
    BadId(String),
    #[error("location '{0}' is listed twice")]
    Duplicate(String),
    #[error("location '{id}' ships from zone '{zone}', which the shipping policy does not have")]
    UnknownZone { id: String, zone: String },
    #[error("location '{0}' has a cut-off hour past 23")]
    BadCutoff(String),
    #[error("the default location '{0}' (the shipping policy's warehouse) is not listed")]
    NoDefault(String),
    #[error("at most {MAX_LOCATIONS} locations can be listed")]
    TooMany,
}

impl Locations {
    /// The demo's three locations, as shipped beside this crate.
    pub const BUNDLED: &'static str = include_str!("../locations.json");

    /// The demo's three locations, checked against the default shipping policy.
    pub fn default_locations() -> Self {
        Self::from_json(Self::BUNDLED, &ShippingPolicy::default_policy())
            .expect("the shipped locations are valid")
    }

    /// Parses and checks a list of locations: ids well-formed and unique, zones the shipping
    /// policy knows, cut-off hours within the day, and the policy's warehouse among them.
    pub fn from_json(json: &str, shipping: &ShippingPolicy) -> Result<Self, LocationError> {
        let locations: Vec<Location> =
            serde_json::from_str(json).map_err(|e| LocationError::Unreadable(e.to_string()))?;
        Self::from_list(locations, shipping, 0)
    }

    /// Checks a list of locations, as [`Locations::from_json`] does, at `version` (how many
    /// times staff changed it).
    pub fn from_list(
        locations: Vec<Location>,
        shipping: &ShippingPolicy,
        version: u64,
    ) -> Result<Self, LocationError> {
        if locations.len() > MAX_LOCATIONS {
            return Err(LocationError::TooMany);
        }
        let mut seen = BTreeSet::new();
        for location in &locations {
            if !Self::is_id(&location.id) {
                return Err(LocationError::BadId(location.id.clone()));
            }
            if !seen.insert(location.id.as_str()) {
                return Err(LocationError::Duplicate(location.id.clone()));
            }
            if !shipping.has_zone(&location.zone) {
                return Err(LocationError::UnknownZone {
                    id: location.id.clone(),
                    zone: location.zone.clone(),
                });
            }
            if location.cutoff_hour_utc > 23 {
                return Err(LocationError::BadCutoff(location.id.clone()));
            }
        }
        let default = shipping.warehouse().to_owned();
        if !seen.contains(default.as_str()) {
            return Err(LocationError::NoDefault(default));
        }
        Ok(Locations {
            locations,
            default,
            shipping: shipping.clone(),
            version,
        })
    }

    /// How many times staff changed the list (0: the file's); its ETag.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether a valid location id: 1 to 32 upper-case letters, digits or `-` (it is part of
    /// keys and of the console's URLs).
    pub fn is_id(raw: &str) -> bool {
        (1..=32).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
    }

    /// Every location, as listed.
    pub fn all(&self) -> &[Location] {
        &self.locations
    }

    pub fn get(&self, id: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.id == id)
    }

    /// The zone of location `id` (`None`: the default location, where an order not yet
    /// reserved leaves from), as shipping is quoted from; `None` for a location not in the list.
    pub fn zone_of(&self, id: Option<&str>) -> Option<&str> {
        match id {
            Some(id) => self.get(id).map(|l| l.zone.as_str()),
            None => Some(self.default_location().zone.as_str()),
        }
    }

    /// Whether location `id` can send a parcel by `method` to `country`: it ships, the method
    /// is not a collection in store, and the rate table serves the destination from its zone.
    pub fn sends(&self, id: &str, method: ShippingMethod, country: &CountryCode) -> bool {
        self.get(id).is_some_and(|location| {
            location.capabilities.ships
                && method != ShippingMethod::InStorePickup
                && self
                    .shipping
                    .parcel_cost(method, &location.zone, country, 0)
                    .is_some()
        })
    }

    /// Where stock and orders written before there were locations belong.
    pub fn default_location(&self) -> &Location {
        self.get(&self.default)
            .expect("checked when the locations were read")
    }

    /// Where every unit of an order shipped by `method` to `country` comes from, given what
    /// each location has free: the routing planner with the rate table's parcel prices. A
    /// pickup is planned at its store only (`store`; where it names none, the first by
    /// priority that hands orders over).
    pub fn plan(
        &self,
        shipping: &ShippingPolicy,
        method: ShippingMethod,
        country: &CountryCode,
        store: Option<&str>,
        demand: &[Demand],
        available: &Availability,
    ) -> Result<Plan, PlanError> {
        let how = if let (ShippingMethod::InStorePickup, Some(store)) = (method, store) {
            Fulfilment::Pickup(store.to_owned())
        } else if method == ShippingMethod::InStorePickup {
            let mut stores: Vec<&Location> = self
                .locations
                .iter()
                .filter(|l| l.capabilities.pickup)
                .collect();
            stores.sort_by_key(|l| (l.priority, l.id.clone()));
            match stores.first() {
                Some(store) => Fulfilment::Pickup(store.id.clone()),
                None => return Err(PlanError::NoLocation),
            }
        } else {
            Fulfilment::Ship
        };
        let rate = |location: &crate::routing::Location, grams: u64| {
            let zone = &self.get(&location.id)?.zone;
            shipping.parcel_cost(method, zone, country, grams)
        };
        routing::plan(demand, available, &self.for_routing(), &how, rate)
    }

    /// What shipping `demand` by `method` to `country` costs and when it arrives, as the
    /// routing plan would send it from what `available` holds now: every parcel priced from
    /// its location by the rate table, the whole arriving with its last parcel (each leaving
    /// on its location's handling days and cut-off). The customer is charged and promised what
    /// the plan delivers: an order split in two pays for two parcels. `None` for an in-store
    /// pickup and when no plan serves it now (the reservation will say which SKUs are short);
    /// callers quote one parcel from the default location then.
    #[allow(clippy::too_many_arguments)]
    pub fn quote(
        &self,
        shipping: &ShippingPolicy,
        method: ShippingMethod,
        country: &CountryCode,
        demand: &[Demand],
        available: &Availability,
        ordered_at: chrono::DateTime<chrono::Utc>,
    ) -> Option<ShippingQuote> {
        if method == ShippingMethod::InStorePickup {
            return None;
        }
        let plan = self
            .plan(shipping, method, country, None, demand, available)
            .ok()?;
        let mut price: i64 = 0;
        let mut estimate: Option<crate::shipping::DeliveryEstimate> = None;
        for parcel in &plan.shipments {
            price = price.checked_add(parcel.cost)?;
            let location = self.get(&parcel.location)?;
            let leaves =
                ship_date_with(ordered_at, location.handling_days, location.cutoff_hour_utc);
            let arrives = shipping
                .estimate_from_ship_date(method, country, leaves)
                .ok()?;
            estimate = Some(match estimate {
                Some(e) if e.latest >= arrives.latest => e,
                _ => arrives,
            });
        }
        Some(ShippingQuote {
            method,
            price: crate::money::Money::new(price, shipping.currency()).ok()?,
            estimate: estimate?,
        })
    }

    /// What the routing planner reads of every location.
    pub fn for_routing(&self) -> Vec<crate::routing::Location> {
        self.locations.iter().map(Location::for_routing).collect()
    }
}

/// What each location has free of `products`, as the routing planner reads it.
pub fn availability(products: &[Product]) -> Availability {
    let mut available: Availability = std::collections::BTreeMap::new();
    for product in products {
        for (location, level) in product.stock.locations() {
            available
                .entry(location.to_owned())
                .or_default()
                .insert(product.sku.clone(), level.available());
        }
    }
    available
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_has_two_warehouses_in_different_zones_and_a_store_with_pickup() {
        let locations = Locations::default_locations();
        let warehouses: Vec<&Location> = locations
            .all()
            .iter()
            .filter(|l| l.kind == LocationKind::Warehouse)
            .collect();
        assert_eq!(warehouses.len(), 2);
        assert_ne!(warehouses[0].zone, warehouses[1].zone);
        let store = locations
            .all()
            .iter()
            .find(|l| l.kind == LocationKind::Store)
            .unwrap();
        assert!(store.capabilities.pickup && !store.capabilities.ships);
        assert_eq!(locations.default_location().id, "BER-1");
    }

    #[test]
    fn a_quote_charges_and_promises_what_the_plan_sends() {
        let locations = Locations::default_locations();
        let policy = ShippingPolicy::default_policy();
        let de = CountryCode::parse("DE").unwrap();
        let sku = |s: &str| crate::ids::Sku::parse(s).unwrap();
        let demand = |s: &str| Demand {
            sku: sku(s),
            quantity: 1,
            unit_weight_grams: 500,
        };
        let mut available: Availability = std::collections::BTreeMap::new();
        available
            .entry("BER-1".into())
            .or_default()
            .insert(sku("A"), 5);
        available
            .entry("AMS-1".into())
            .or_default()
            .insert(sku("B"), 5);
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let standard = ShippingMethod::Standard;
        let cost = |zone: &str| policy.parcel_cost(standard, zone, &de, 500).unwrap();
        // From Berlin alone: what one parcel from the default location always cost.
        let berlin = locations
            .quote(&policy, standard, &de, &[demand("A")], &available, at)
            .unwrap();
        let one_parcel = policy.quote(standard, &de, 500, at).unwrap();
        assert_eq!(berlin, one_parcel);
        // From Amsterdam alone: priced from its zone.
        let amsterdam = locations
            .quote(&policy, standard, &de, &[demand("B")], &available, at)
            .unwrap();
        assert_eq!(amsterdam.price.minor_units(), cost("eu"));
        // Split: both parcels, arriving with the later one.
        let both = locations
            .quote(
                &policy,
                standard,
                &de,
                &[demand("A"), demand("B")],
                &available,
                at,
            )
            .unwrap();
        assert_eq!(both.price.minor_units(), cost("domestic") + cost("eu"));
        assert!(both.estimate.latest >= berlin.estimate.latest);
        // Short everywhere, or a pickup: no plan to price.
        assert!(locations
            .quote(&policy, standard, &de, &[demand("C")], &available, at)
            .is_none());
        assert!(locations
            .quote(
                &policy,
                ShippingMethod::InStorePickup,
                &de,
                &[demand("A")],
                &available,
                at
            )
            .is_none());
    }

    #[test]
    fn bad_lists_are_refused_naming_what_is_wrong() {
        let policy = ShippingPolicy::default_policy();
        let one = |id: &str, zone: &str, cutoff: u32| {
            format!(
                r#"{{"id":"{id}","name":"W","kind":"WAREHOUSE","country":"DE","postalCode":"10115","zone":"{zone}","handlingDays":1,"cutoffHourUtc":{cutoff},"capabilities":{{"ships":true,"pickup":false,"returns":true}},"priority":1}}"#
            )
        };
        let list = |items: &[String]| format!("[{}]", items.join(","));
        assert_eq!(
            Locations::from_json(
                &list(&[one("BER-1", "domestic", 14), one("ber 2", "eu", 14)]),
                &policy
            ),
            Err(LocationError::BadId("ber 2".into()))
        );
        assert_eq!(
            Locations::from_json(
                &list(&[one("BER-1", "domestic", 14), one("BER-1", "eu", 14)]),
                &policy
            ),
            Err(LocationError::Duplicate("BER-1".into()))
        );
        assert_eq!(
            Locations::from_json(&list(&[one("BER-1", "mars", 14)]), &policy),
            Err(LocationError::UnknownZone {
                id: "BER-1".into(),
                zone: "mars".into()
            })
        );
        assert_eq!(
            Locations::from_json(&list(&[one("BER-1", "domestic", 24)]), &policy),
            Err(LocationError::BadCutoff("BER-1".into()))
        );
        assert_eq!(
            Locations::from_json(&list(&[one("AMS-1", "eu", 14)]), &policy),
            Err(LocationError::NoDefault("BER-1".into()))
        );
        assert!(matches!(
            Locations::from_json(r#"[{"id":"BER-1"}]"#, &policy),
            Err(LocationError::Unreadable(_))
        ));
    }
}
