//! Where each unit of an order ships from: the routing planner, pure (no I/O).
//!
//! Given what the order asks for, how many units each location has free, the locations and how
//! the order is fulfilled (shipped, or picked up at a store), [`plan`] answers which location
//! sends which units, as one planned shipment per location. Its rules, in order:
//! 1. **the fewest shipments**: one location that holds the whole order if there is one,
//!    otherwise the smallest set of locations that together hold it (a line may be split between
//!    them) — found exactly, by trying the sets of each size in turn, for up to
//!    [`MAX_EXACT_LOCATIONS`] candidate locations, and by the greedy cover beyond;
//! 2. among those, **the lowest shipping cost** to the destination, as the caller's rate function
//!    prices each parcel from its location (a location it cannot price does not ship there);
//! 3. then **location priority** (lower first), then the locations' ids, so a plan is the same
//!    for the same counts.
//!
//! Within the chosen locations each line takes its units from the first of them by priority that
//! has some, so no chosen location is left without units (else a smaller set would have done).
//! A store ships only if it may (`ships`); a pickup order is planned at its store only. The
//! application reads the counts, plans, and writes the plan on conditions; a condition that fails
//! (stock taken meanwhile) means it plans again from fresh counts.

use std::collections::BTreeMap;

use crate::ids::Sku;
use crate::quantity::Quantity;

/// Planned exactly (every set of locations by size) up to this many candidate locations; the
/// sets of 16 locations number 65,536, tried in a few milliseconds.
pub const MAX_EXACT_LOCATIONS: usize = 16;

/// What a location can do and how it ranks, as the planner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    /// Sends parcels (a warehouse; a store that the business lets ship).
    pub ships: bool,
    /// Hands orders over to customers who collect them.
    pub pickup: bool,
    /// Lower ranks first among plans of the same size and cost.
    pub priority: u32,
}

/// How the order reaches its customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fulfilment {
    /// Shipped to the customer's address, from wherever the plan says.
    Ship,
    /// Collected at this store: reserved there only.
    Pickup(String),
}

/// One line of demand: a SKU, how many, and what one unit weighs (for the parcel's price).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub sku: Sku,
    pub quantity: u32,
    pub unit_weight_grams: u32,
}

/// The free units of SKUs per location: `available[location][sku]`.
pub type Availability = BTreeMap<String, BTreeMap<Sku, u32>>;

/// One parcel of the plan: what one location sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedShipment {
    pub location: String,
    /// Units per SKU, in the order's line order.
    pub lines: Vec<(Sku, u32)>,
    pub weight_grams: u64,
    /// What the rate function asked for this parcel (minor units).
    pub cost: i64,
}

/// Where every unit of the order comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One per location, the highest-priority location first.
    pub shipments: Vec<PlannedShipment>,
}

impl Plan {
    /// Everything from one location, as the caller chose it (a pickup at its store, an
    /// exchange from where the order left): not priced, so its parcel costs nothing here.
    pub fn one_location<'a>(
        location: &str,
        units: impl IntoIterator<Item = (&'a Sku, Quantity)>,
    ) -> Self {
        let mut lines: Vec<(Sku, u32)> = Vec::new();
        for (sku, quantity) in units {
            match lines.iter_mut().find(|(s, _)| s == sku) {
                Some((_, n)) => *n += quantity.get(),
                None => lines.push((sku.clone(), quantity.get())),
            }
        }
        Plan {
            shipments: vec![PlannedShipment {
                location: location.to_owned(),
                lines,
                weight_grams: 0,
                cost: 0,
            }],
        }
    }

    /// What the parcels cost together.
    pub fn cost(&self) -> i64 {
        self.shipments.iter().map(|s| s.cost).sum()
    }
}

/// A SKU the candidate locations cannot serve in full, and how many they have free together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    pub sku: Sku,
    pub requested: u32,
    pub available: u32,
}

/// Why no plan exists. Nothing is reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("not enough stock: {0:?}")]
    Short(Vec<Short>),
    #[error("no location ships to the destination")]
    NoLocation,
    #[error("{0} is not a location that hands orders over")]
    NotAPickupLocation(String),
}

/// The plan for `demand` (see the module's rules). `rate(location, grams)` prices one parcel
/// from `location` to the destination, `None` if it cannot send there.
pub fn plan(
    demand: &[Demand],
    available: &Availability,
    locations: &[Location],
    how: &Fulfilment,
    rate: impl Fn(&Location, u64) -> Option<i64>,
) -> Result<Plan, PlanError> {
    let mut candidates: Vec<&Location> = match how {
        Fulfilment::Ship => locations
            .iter()
            .filter(|l| l.ships && rate(l, 0).is_some())
            .collect(),
        Fulfilment::Pickup(store) => {
            let store = locations
                .iter()
                .find(|l| &l.id == store && l.pickup)
                .ok_or_else(|| PlanError::NotAPickupLocation(store.clone()))?;
            vec![store]
        }
    };
    if candidates.is_empty() {
        return Err(PlanError::NoLocation);
    }
    candidates.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    let free = |location: &Location, sku: &Sku| -> u32 {
        available
            .get(&location.id)
            .and_then(|skus| skus.get(sku))
            .copied()
            .unwrap_or(0)
    };
    let wanted = wanted(demand);
    let short: Vec<Short> = wanted
        .iter()
        .filter_map(|(sku, requested)| {
            let total: u32 = candidates.iter().map(|l| free(l, sku)).sum();
            (total < *requested).then(|| Short {
                sku: (*sku).clone(),
                requested: *requested,
                available: total,
            })
        })
        .collect();
    if !short.is_empty() {
        return Err(PlanError::Short(short));
    }
    let holds = |set: &[&Location]| {
        wanted
            .iter()
            .all(|(sku, n)| set.iter().map(|l| free(l, sku)).sum::<u32>() >= *n)
    };
    let allocate = |set: &[&Location]| -> Option<Plan> {
        let mut lines: BTreeMap<&str, Vec<(Sku, u32)>> = BTreeMap::new();
        for (sku, needed) in &wanted {
            let mut left = *needed;
            for location in set {
                let take = left.min(free(location, sku));
                if take > 0 {
                    lines
                        .entry(location.id.as_str())
                        .or_default()
                        .push(((*sku).clone(), take));
                    left -= take;
                }
            }
        }
        let weight = |units: &[(Sku, u32)]| -> u64 {
            units
                .iter()
                .map(|(sku, n)| u64::from(unit_weight(demand, sku)) * u64::from(*n))
                .sum()
        };
        let mut shipments = Vec::with_capacity(set.len());
        for location in set {
            // A location the allocation left nothing to (the greedy cover, re-sorted by
            // priority, can) sends no parcel.
            let Some(units) = lines.remove(location.id.as_str()) else {
                continue;
            };
            let weight_grams = weight(&units);
            shipments.push(PlannedShipment {
                location: location.id.clone(),
                cost: rate(location, weight_grams)?,
                lines: units,
                weight_grams,
            });
        }
        Some(Plan { shipments })
    };
    // A plan's rank: its cost, then its locations' priorities and ids.
    let rank = |plan: &Plan, set: &[&Location]| {
        (
            plan.cost(),
            set.iter()
                .map(|l| (l.priority, l.id.clone()))
                .collect::<Vec<_>>(),
        )
    };
    if candidates.len() <= MAX_EXACT_LOCATIONS {
        for size in 1..=candidates.len() {
            let mut best: Option<(Plan, _)> = None;
            for set in combinations(&candidates, size) {
                if !holds(&set) {
                    continue;
                }
                if let Some(plan) = allocate(&set) {
                    let key = rank(&plan, &set);
                    if best.as_ref().is_none_or(|(_, k)| key < *k) {
                        best = Some((plan, key));
                    }
                }
            }
            if let Some((plan, _)) = best {
                return Ok(plan);
            }
        }
        return Err(PlanError::NoLocation);
    }
    // Beyond the exact search: the greedy cover — the location that serves most of what is
    // left, again and again.
    let mut chosen: Vec<&Location> = Vec::new();
    let mut left: BTreeMap<&Sku, u32> = wanted.iter().map(|(s, n)| (*s, *n)).collect();
    while left.values().any(|n| *n > 0) {
        let serves = |l: &Location| -> u32 { left.iter().map(|(s, n)| free(l, s).min(*n)).sum() };
        let Some(next) = candidates
            .iter()
            .filter(|l| !chosen.iter().any(|c| c.id == l.id))
            .max_by_key(|l| (serves(l), std::cmp::Reverse((l.priority, l.id.clone()))))
            .copied()
        else {
            break;
        };
        for (sku, n) in left.iter_mut() {
            *n -= free(next, sku).min(*n);
        }
        chosen.push(next);
    }
    chosen.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    allocate(&chosen).ok_or(PlanError::NoLocation)
}

/// Units wanted per SKU, in the order's line order (a SKU on two lines counts once, summed).
fn wanted(demand: &[Demand]) -> Vec<(&Sku, u32)> {
    let mut wanted: Vec<(&Sku, u32)> = Vec::new();
    for line in demand {
        match wanted.iter_mut().find(|(sku, _)| *sku == &line.sku) {
            Some((_, n)) => *n += line.quantity,
            None => wanted.push((&line.sku, line.quantity)),
        }
    }
    wanted
}

fn unit_weight(demand: &[Demand], sku: &Sku) -> u32 {
    demand
        .iter()
        .find(|d| &d.sku == sku)
        .map_or(0, |d| d.unit_weight_grams)
}

/// Every set of `size` of `items`, in order.
fn combinations<'a, T>(items: &[&'a T], size: usize) -> Vec<Vec<&'a T>> {
    fn extend<'a, T>(
        items: &[&'a T],
        size: usize,
        start: usize,
        current: &mut Vec<&'a T>,
        out: &mut Vec<Vec<&'a T>>,
    ) {
        if current.len() == size {
            out.push(current.clone());
            return;
        }
        for index in start..items.len() {
            if items.len() - index < size - current.len() {
                break;
            }
            current.push(items[index]);
            extend(items, size, index + 1, current, out);
            current.pop();
        }
    }
    let mut out = Vec::new();
    extend(items, size, 0, &mut Vec::with_capacity(size), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sku(name: &str) -> Sku {
        Sku::parse(name).unwrap()
    }

    fn location(id: &str, priority: u32) -> Location {
        Location {
            id: id.into(),
            ships: true,
            pickup: false,
            priority,
        }
    }

    fn line(name: &str, quantity: u32) -> Demand {
        Demand {
            sku: sku(name),
            quantity,
            unit_weight_grams: 500,
        }
    }

    fn stock(entries: &[(&str, &str, u32)]) -> Availability {
        let mut available = Availability::new();
        for (location, name, n) in entries {
            available
                .entry((*location).into())
                .or_default()
                .insert(sku(name), *n);
        }
        available
    }

    /// A flat rate per parcel, dearer from the far warehouse.
    fn rate(location: &Location, grams: u64) -> Option<i64> {
        let base = if location.id == "FAR" { 900 } else { 490 };
        Some(base + (grams / 1000) as i64 * 50)
    }

    #[test]
    fn one_location_that_holds_everything_ships_it_whole_even_far_away() {
        let locations = [location("NEAR", 1), location("FAR", 2)];
        let available = stock(&[("NEAR", "A", 5), ("FAR", "A", 5), ("FAR", "B", 5)]);
        let plan = plan(
            &[line("A", 1), line("B", 1)],
            &available,
            &locations,
            &Fulfilment::Ship,
            rate,
        )
        .unwrap();
        assert_eq!(plan.shipments.len(), 1);
        assert_eq!(plan.shipments[0].location, "FAR");
    }

    #[test]
    fn of_plans_as_small_the_cheaper_wins_then_priority() {
        let locations = [location("FAR", 1), location("NEAR", 2)];
        let available = stock(&[("NEAR", "A", 5), ("FAR", "A", 5)]);
        let cheaper = plan(
            &[line("A", 2)],
            &available,
            &locations,
            &Fulfilment::Ship,
            rate,
        )
        .unwrap();
        assert_eq!(
            cheaper.shipments[0].location, "NEAR",
            "cheaper beats priority"
        );
        let same_price = |_: &Location, _: u64| Some(490);
        let ranked = plan(
            &[line("A", 2)],
            &available,
            &locations,
            &Fulfilment::Ship,
            same_price,
        )
        .unwrap();
        assert_eq!(ranked.shipments[0].location, "FAR", "then priority");
    }

    #[test]
    fn a_line_splits_between_locations_when_none_holds_it_all() {
        let locations = [location("W1", 1), location("W2", 2)];
        let available = stock(&[("W1", "A", 2), ("W2", "A", 3)]);
        let plan = plan(
            &[line("A", 4)],
            &available,
            &locations,
            &Fulfilment::Ship,
            rate,
        )
        .unwrap();
        let units: Vec<_> = plan
            .shipments
            .iter()
            .map(|s| (s.location.as_str(), s.lines[0].1))
            .collect();
        assert_eq!(units, [("W1", 2), ("W2", 2)]);
    }

    #[test]
    fn a_pickup_is_planned_at_its_store_only_and_a_store_ships_only_if_allowed() {
        let store = Location {
            id: "STORE".into(),
            ships: false,
            pickup: true,
            priority: 9,
        };
        let locations = [location("W1", 1), store];
        let available = stock(&[("W1", "A", 5), ("STORE", "A", 1)]);
        let pickup = Fulfilment::Pickup("STORE".into());
        let at_store = plan(&[line("A", 1)], &available, &locations, &pickup, rate).unwrap();
        assert_eq!(at_store.shipments[0].location, "STORE");
        assert!(matches!(
            plan(&[line("A", 2)], &available, &locations, &pickup, rate),
            Err(PlanError::Short(_))
        ));
        let shipped = plan(
            &[line("A", 6)],
            &available,
            &locations,
            &Fulfilment::Ship,
            rate,
        );
        assert_eq!(
            shipped,
            Err(PlanError::Short(vec![Short {
                sku: sku("A"),
                requested: 6,
                available: 5
            }])),
            "the store does not ship"
        );
        assert_eq!(
            plan(
                &[line("A", 1)],
                &available,
                &locations,
                &Fulfilment::Pickup("W1".into()),
                rate
            ),
            Err(PlanError::NotAPickupLocation("W1".into()))
        );
    }

    /// The fewest locations that hold the order, by trying every set.
    fn fewest_by_brute_force(demand: &[Demand], available: &Availability, n: usize) -> usize {
        let ids: Vec<String> = (0..n).map(|i| format!("L{i}")).collect();
        let wanted = wanted(demand);
        (1u32..(1 << n))
            .filter(|mask| {
                wanted.iter().all(|(sku, need)| {
                    let total: u32 = (0..n)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| {
                            available
                                .get(&ids[i])
                                .and_then(|s| s.get(*sku))
                                .copied()
                                .unwrap_or(0)
                        })
                        .sum();
                    total >= *need
                })
            })
            .map(|mask| mask.count_ones() as usize)
            .min()
            .unwrap_or(usize::MAX)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Carts of up to 6 lines over 5 locations: the plan has the fewest shipments possible,
        /// takes no more than a location has, and sends exactly what was ordered.
        #[test]
        fn the_plan_has_the_fewest_shipments_and_exactly_the_units(
            lines in proptest::collection::vec((0usize..6, 1u32..5), 1..=6),
            counts in proptest::collection::vec(proptest::collection::vec(0u32..4, 6), 5),
            priorities in proptest::collection::vec(0u32..3, 5),
        ) {
            let names = ["A", "B", "C", "D", "E", "F"];
            let demand: Vec<Demand> = lines.iter().map(|(i, q)| line(names[*i], *q)).collect();
            let locations: Vec<Location> = (0..5).map(|i| location(&format!("L{i}"), priorities[i])).collect();
            let mut available = Availability::new();
            for (i, row) in counts.iter().enumerate() {
                for (j, n) in row.iter().enumerate() {
                    available.entry(format!("L{i}")).or_default().insert(sku(names[j]), *n);
                }
            }
            let fewest = fewest_by_brute_force(&demand, &available, 5);
            match plan(&demand, &available, &locations, &Fulfilment::Ship, rate) {
                Ok(plan) => {
                    prop_assert_eq!(plan.shipments.len(), fewest);
                    for (sku, need) in wanted(&demand) {
                        let sent: u32 = plan.shipments.iter()
                            .flat_map(|s| s.lines.iter())
                            .filter(|(s, _)| s == sku)
                            .map(|(_, n)| n)
                            .sum();
                        prop_assert_eq!(sent, need, "{} sent", sku);
                    }
                    for shipment in &plan.shipments {
                        prop_assert!(!shipment.lines.is_empty());
                        for (sku, n) in &shipment.lines {
                            let free = available[&shipment.location].get(sku).copied().unwrap_or(0);
                            prop_assert!(*n <= free, "{} takes {} of {} at {}", sku, n, free, shipment.location);
                        }
                    }
                }
                Err(PlanError::Short(short)) => {
                    prop_assert_eq!(fewest, usize::MAX, "a plan existed: {:?}", short);
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
