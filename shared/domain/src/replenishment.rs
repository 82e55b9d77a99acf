//! Inventory health: neither too much stock (money tied up on shelves) nor too little (sales
//! lost).
//!
//! Each SKU records its **demand**: the units reserved for orders at each location, per day
//! (UTC), written by the same transaction item that reserves them ([`Demand`]), so knowing it
//! costs no request an order did not already make. From the last [`Demand::WINDOW_DAYS`] days of
//! it, the SKU's lead time and safety stock ([`Replenishment`]) and the business's targets
//! ([`HealthPolicy`]), [`Health::of`] derives, per location and for the SKU as a whole:
//!
//! - **days of cover**: how long what is available lasts at the window's rate,
//!   `⌊available × 30 / demand⌋` (none without demand);
//! - **reorder point**: what the lead time consumes plus the safety stock,
//!   `⌈demand × leadTimeDays / 30⌉ + safetyStock`; stock (available and incoming, less the
//!   units orders wait for) at or below it must be reordered now;
//! - **suggested reorder**: once at or below the reorder point, the units that bring it up to the
//!   reorder point plus [`HealthPolicy::reorder_cover_days`] of demand; a SKU is to be
//!   reordered exactly when that is more than none;
//! - **overstock**: more than [`HealthPolicy::overstock_cover_days`] of cover — a SKU holding
//!   more than its safety stock that sold nothing in the window is overstocked too (dead stock).
//!
//! All of it is integer arithmetic on units and days, so a figure equals its hand calculation.
//! Units a cancellation returns stay counted: the customer asked for them on that day.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A SKU's lead time and safety stock, as staff set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replenishment {
    /// Days from ordering more to having it on the shelf.
    pub lead_time_days: u32,
    /// Units kept against demand above the window's rate, at each location.
    pub safety_stock: u32,
}

impl Replenishment {
    /// The lead time of a SKU whose settings name none.
    pub const DEFAULT_LEAD_TIME_DAYS: u32 = 14;
    /// The longest lead time a SKU may have.
    pub const MAX_LEAD_TIME_DAYS: u32 = 365;
}

impl Default for Replenishment {
    fn default() -> Self {
        Replenishment {
            lead_time_days: Self::DEFAULT_LEAD_TIME_DAYS,
            safety_stock: 0,
        }
    }
}

/// The units reserved for orders per location and day. Only the window is kept: every write
/// of the whole product drops the days before it ([`Demand::recent`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand(BTreeMap<String, BTreeMap<NaiveDate, u32>>);

impl Demand {
    /// The days demand is read over, today included.
    pub const WINDOW_DAYS: u32 = 30;

    /// How many days before the window an order's write clears at each location it reserves
    /// at (the store cannot list what an item holds within a blind update, so it names them):
    /// a SKU that sells there at least once in this many days keeps only its window.
    pub const CLEARED_DAYS: u32 = 7;

    /// The days an order's write on `day` clears: the [`Self::CLEARED_DAYS`] before the window.
    pub fn cleared_by(day: NaiveDate) -> impl Iterator<Item = NaiveDate> {
        let start = Self::window_start(day);
        (1..=Self::CLEARED_DAYS)
            .filter_map(move |back| start.checked_sub_days(Days::new(u64::from(back))))
    }

    /// An order's reservation of `units` at `location` on `day`: added to the day's, and the
    /// days [`Self::cleared_by`] it dropped.
    pub fn reserved(&mut self, location: &str, day: NaiveDate, units: u32) {
        if let Some(days) = self.0.get_mut(location) {
            for old in Self::cleared_by(day) {
                days.remove(&old);
            }
        }
        self.record(location, day, units);
    }

    /// Adds `units` reserved at `location` on `day`.
    pub fn record(&mut self, location: &str, day: NaiveDate, units: u32) {
        let at = self.0.entry(location.to_owned()).or_default();
        let total = at.entry(day).or_default();
        *total = total.saturating_add(units);
    }

    /// The first day of the window that ends on `today`.
    pub fn window_start(today: NaiveDate) -> NaiveDate {
        today
            .checked_sub_days(Days::new(u64::from(Self::WINDOW_DAYS - 1)))
            .unwrap_or(NaiveDate::MIN)
    }

    /// The units reserved at `location` in the window that ends on `today`.
    pub fn at(&self, location: &str, today: NaiveDate) -> u32 {
        let start = Self::window_start(today);
        self.0.get(location).map_or(0, |days| {
            days.range(start..=today)
                .fold(0u32, |sum, (_, units)| sum.saturating_add(*units))
        })
    }

    /// The units reserved anywhere in the window that ends on `today`.
    pub fn total(&self, today: NaiveDate) -> u32 {
        self.0.keys().fold(0u32, |sum, location| {
            sum.saturating_add(self.at(location, today))
        })
    }

    /// Only the days of the window that ends on `today` (and any after it).
    pub fn recent(&self, today: NaiveDate) -> Demand {
        let start = Self::window_start(today);
        Demand(
            self.0
                .iter()
                .map(|(location, days)| {
                    (
                        location.clone(),
                        days.range(start..).map(|(d, u)| (*d, *u)).collect(),
                    )
                })
                .filter(|(_, days): &(String, BTreeMap<NaiveDate, u32>)| !days.is_empty())
                .collect(),
        )
    }

    /// Every recorded day: `(location, day, units)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, NaiveDate, u32)> {
        self.0
            .iter()
            .flat_map(|(l, days)| days.iter().map(move |(d, u)| (l.as_str(), *d, *u)))
    }
}

/// The business's targets for every SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// More days of cover than this is overstock.
    pub overstock_cover_days: u32,
    /// A reorder brings stock up to the reorder point plus this many days of demand.
    pub reorder_cover_days: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            overstock_cover_days: 90,
            reorder_cover_days: 30,
        }
    }
}

/// Where stock stands against its demand, at one location or for the whole SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Units reserved for orders in the last [`Demand::WINDOW_DAYS`] days.
    pub demand_30_days: u32,
    /// How many days `available` lasts at that rate; none without demand.
    pub days_of_cover: Option<u32>,
    pub reorder_point: u32,
    /// At or below the reorder point with something to order: order more now.
    pub reorder: bool,
    /// Units to order now (0 unless `reorder`).
    pub suggested_reorder: u32,
    pub overstock: bool,
}

impl Health {
    /// The figures of `available` units (and `incoming`, ordered but not yet here, of which
    /// `owed` are promised to orders waiting for them) against `demand` units in the window.
    pub fn of(
        available: u32,
        incoming: u32,
        owed: u32,
        demand: u32,
        settings: Replenishment,
        policy: HealthPolicy,
    ) -> Health {
        let window = i64::from(Demand::WINDOW_DAYS);
        let rate_over = |days: u32| {
            let units = u64::from(demand) * u64::from(days);
            i64::try_from(units.div_ceil(window.unsigned_abs())).unwrap_or(i64::MAX)
        };
        let reorder_point = rate_over(settings.lead_time_days) + i64::from(settings.safety_stock);
        // What is here and on its way, less what waiting orders already have a claim on: a
        // purchase order that only covers the backorders leaves nothing for the next buyer.
        let position = i64::from(available) + i64::from(incoming) - i64::from(owed);
        // At or below the reorder point, with something to order: a reorder point of 0 (no
        // lead time, no safety stock) still reorders what sells once nothing is left.
        let order_up_to = reorder_point + rate_over(policy.reorder_cover_days);
        let suggested_reorder = if position <= reorder_point {
            (order_up_to - position).max(0)
        } else {
            0
        };
        let reorder = suggested_reorder > 0;
        let days_of_cover = (demand > 0).then(|| i64::from(available) * window / i64::from(demand));
        let overstock = match days_of_cover {
            Some(days) => days > i64::from(policy.overstock_cover_days),
            None => available > settings.safety_stock,
        };
        let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        Health {
            demand_30_days: demand,
            days_of_cover: days_of_cover.map(clamp),
            reorder_point: clamp(reorder_point),
            reorder,
            suggested_reorder: clamp(suggested_reorder),
            overstock,
        }
    }
}

/// The UTC day of an instant: demand is kept per such day.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    #[test]
    fn the_window_is_thirty_days_today_included() {
        let mut demand = Demand::default();
        let today = day("2026-12-06");
        demand.record("BER-1", today, 2);
        demand.record("BER-1", day("2026-11-07"), 3); // the 30th day back: inside
        demand.record("BER-1", day("2026-11-06"), 100); // the 31st: outside
        demand.record("HAM-1", day("2026-12-01"), 4);
        demand.record("HAM-1", day("2026-12-01"), 1);
        assert_eq!(Demand::window_start(today), day("2026-11-07"));
        assert_eq!(demand.at("BER-1", today), 5);
        assert_eq!(demand.at("HAM-1", today), 5);
        assert_eq!(demand.at("MUC-1", today), 0);
        assert_eq!(demand.total(today), 10);
        let kept = demand.recent(today);
        assert_eq!(kept.entries().count(), 3);
        assert_eq!(kept.total(today), 10);
        // Ten days on, the 7th of November has left; later still, the 1st of December.
        assert_eq!(kept.total(day("2026-12-16")), 7);
        assert_eq!(kept.total(day("2026-12-31")), 2);
        assert_eq!(kept.recent(day("2027-01-10")), Demand::default());
    }

    #[test]
    fn the_figures_equal_their_hand_calculation() {
        let settings = Replenishment {
            lead_time_days: 10,
            safety_stock: 4,
        };
        let policy = HealthPolicy {
            overstock_cover_days: 90,
            reorder_cover_days: 30,
        };
        // 45 units in 30 days: 1.5 a day. Reorder point ⌈15⌉ + 4 = 19; order up to 19 + 45.
        let low = Health::of(12, 0, 0, 45, settings, policy);
        assert_eq!(low.days_of_cover, Some(8)); // 12 / 1.5
        assert_eq!(low.reorder_point, 19);
        assert!(low.reorder);
        assert_eq!(low.suggested_reorder, 64 - 12);
        assert!(!low.overstock);
        // What is on its way counts: 12 + 10 incoming is above 19.
        let ordered = Health::of(12, 10, 0, 45, settings, policy);
        assert!(!ordered.reorder);
        assert_eq!(ordered.suggested_reorder, 0);
        // 7 units in 30 days: ⌈7 × 10 / 30⌉ = 3, + 4.
        assert_eq!(Health::of(0, 0, 0, 7, settings, policy).reorder_point, 7);
        // 200 units at 1.5 a day is 133 days: overstock.
        let heavy = Health::of(200, 0, 0, 45, settings, policy);
        assert_eq!(heavy.days_of_cover, Some(133));
        assert!(heavy.overstock && !heavy.reorder);
        // No demand: no cover figure; stock above the safety stock is dead stock.
        let idle = Health::of(5, 0, 0, 0, settings, policy);
        assert_eq!(idle.days_of_cover, None);
        assert_eq!(idle.reorder_point, 4);
        assert!(idle.overstock && !idle.reorder);
        let safe = Health::of(3, 0, 0, 0, settings, policy);
        assert!(!safe.overstock && safe.reorder);
        assert_eq!(safe.suggested_reorder, 1);
        // Nothing sold, nothing kept, nothing held: nothing to do.
        let none = Health::of(0, 0, 0, 0, Replenishment::default(), policy);
        assert!(!none.reorder && !none.overstock && none.suggested_reorder == 0);
        // At its safety stock, nothing selling: nothing to order, so no reorder.
        assert!(!Health::of(4, 0, 0, 0, settings, policy).reorder);
        // No lead time, no safety stock, sold out: reorder the 30 days' demand.
        let instant = Replenishment {
            lead_time_days: 0,
            safety_stock: 0,
        };
        let out = Health::of(0, 0, 0, 15, instant, policy);
        assert_eq!(
            (out.reorder_point, out.reorder, out.suggested_reorder),
            (0, true, 15)
        );
        // 60 units owed to waiting orders, 88 on order: only 28 are anyone else's. 60 sold in
        // 30 days, 14 days' lead: reorder point 28, so it reorders up to 28 + 60.
        let lead = Replenishment {
            lead_time_days: 14,
            safety_stock: 0,
        };
        let owed = Health::of(0, 88, 60, 60, lead, policy);
        assert_eq!(owed.reorder_point, 28);
        assert!(owed.reorder);
        assert_eq!(owed.suggested_reorder, 88 - 28);
        let short = Health::of(0, 0, 60, 60, lead, policy);
        assert_eq!(short.suggested_reorder, 88 + 60, "the owed units first");
    }

    proptest! {
        #[test]
        fn a_suggested_reorder_lifts_stock_above_the_reorder_point(
            available in 0u32..10_000,
            incoming in 0u32..1_000,
            owed in 0u32..1_000,
            demand in 0u32..100_000,
            lead in 0u32..=365,
            safety in 0u32..1_000,
            cover in 1u32..=365,
        ) {
            let settings = Replenishment { lead_time_days: lead, safety_stock: safety };
            let policy = HealthPolicy { overstock_cover_days: 90, reorder_cover_days: cover };
            let h = Health::of(available, incoming, owed, demand, settings, policy);
            prop_assert_eq!(h.reorder, h.suggested_reorder > 0);
            if h.reorder {
                let after = i64::from(available) + i64::from(incoming) - i64::from(owed)
                    + i64::from(h.suggested_reorder);
                prop_assert!(after > i64::from(h.reorder_point) || demand == 0);
            } else {
                prop_assert_eq!(h.suggested_reorder, 0);
            }
            if let Some(days) = h.days_of_cover {
                // ⌊available × 30 / demand⌋: the floor of the exact cover.
                prop_assert!(u64::from(days) * u64::from(demand) <= u64::from(available) * 30);
                prop_assert!((u64::from(days) + 1) * u64::from(demand) > u64::from(available) * 30);
            }
        }
    }
}
