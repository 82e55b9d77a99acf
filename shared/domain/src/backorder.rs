//! Selling past stock: backorders and pre-orders, and the arriving stock that fills them.
//!
//! A SKU's [`SellingPolicy`] says what an order asking for more than is available gets: refused
//! (`DENY`, the default: the order is rejected naming the short lines), or the rest
//! **backordered** — up to a limit of units waiting at once (`BACKORDER`), or, for a product not
//! yet released, up to a cap until its release date (`PRE_ORDER`). A line is then partly reserved
//! (the units there are, where the routing plan found them) and partly backordered at the
//! business's default location, the one purchase orders deliver to; the customer is promised the
//! date of the open purchase order that brings the last of their units, counted first-in
//! first-out behind the units already waiting.
//!
//! The SKU keeps what it owes ([`Backorders`]): how many units are backordered and, per waiting
//! order, how many (keyed by when the order was placed and its id, so the keys sort first-in
//! first-out). The reservation adds to both in the write that reserves the rest of the order,
//! on condition that the limit is not passed; a cancellation takes its units back out in its own
//! write. Backordered units are never available: on hand is still available + reserved.
//!
//! Stock that arrives (a purchase order's delivery, a receipt, a count or a transfer) goes to the
//! oldest waiting orders first, in the same write as the receipt and before anything is
//! available to new orders: at that location, or at any other that sends the order's parcels
//! (a second warehouse's delivery serves the queue too; the units are reserved there and leave
//! in a parcel of their own). Their units move from backordered to reserved, each order is
//! written on its version, and an order with nothing left waiting goes to the warehouse and its
//! customer is told. A count that leaves nothing available allocates nothing. Stock freed
//! without a receipt (a cancellation, an expiry, a return restocked) follows the same rule in a
//! write right after the one that freed it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::OrderId;

/// What a SKU does when an order asks for more than is available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "policy",
    rename_all = "SCREAMING_SNAKE_CASE",
    deny_unknown_fields
)]
pub enum SellingPolicy {
    /// Only what is available is sold.
    #[default]
    Deny,
    /// Up to `limit` units may wait for stock at once.
    Backorder { limit: u32 },
    /// Before `releaseOn`, up to `cap` units may be ordered ahead of the product's arrival.
    #[serde(rename_all = "camelCase")]
    PreOrder { release_on: NaiveDate, cap: u32 },
}

impl SellingPolicy {
    /// The most units that may wait at once (the cap of a pre-order, whatever the date: units
    /// ordered before the release still wait after it).
    pub fn limit(&self) -> u32 {
        match self {
            Self::Deny => 0,
            Self::Backorder { limit } => *limit,
            Self::PreOrder { cap, .. } => *cap,
        }
    }

    /// Whether new orders may be backordered on `today`.
    pub fn open_on(&self, today: NaiveDate) -> bool {
        match self {
            Self::Deny => false,
            Self::Backorder { .. } => true,
            Self::PreOrder { release_on, .. } => today < *release_on,
        }
    }

    /// The release date still to come on `today`, for a pre-order: what an order of it waits
    /// for before it leaves.
    pub fn release_after(&self, today: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::PreOrder { release_on, .. } if today < *release_on => Some(*release_on),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Deny => "DENY",
            Self::Backorder { .. } => "BACKORDER",
            Self::PreOrder { .. } => "PRE_ORDER",
        }
    }
}

/// The most units one SKU may have waiting: each waiting order is an entry of the SKU's item,
/// which holds at most 400 KB.
pub const MAX_BACKORDER_LIMIT: u32 = 2_000;

/// What a SKU owes to orders waiting for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backorders {
    #[serde(default)]
    pub policy: SellingPolicy,
    /// Units ordered and not yet in stock.
    #[serde(default)]
    pub backordered: u32,
    /// Per waiting order ([`waiting_key`]), its units still waiting: the keys sort oldest first.
    #[serde(default)]
    pub waiting: BTreeMap<String, u32>,
}

/// The key of an order's entry among a SKU's waiting orders: its placing time and its id, so the
/// oldest sorts first.
pub fn waiting_key(placed_at: DateTime<Utc>, id: &OrderId) -> String {
    format!(
        "{}#{id}",
        placed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// The order a waiting key names.
pub fn order_of_key(key: &str) -> Option<OrderId> {
    OrderId::parse(key.rsplit('#').next()?).ok()
}

impl Backorders {
    /// How many more units may be backordered now.
    pub fn room(&self, today: NaiveDate) -> u32 {
        if self.policy.open_on(today) {
            self.policy.limit().saturating_sub(self.backordered)
        } else {
            0
        }
    }

    /// Room left under the limit whatever the date: what the store's condition checks.
    pub fn room_left(&self) -> u32 {
        self.policy.limit().saturating_sub(self.backordered)
    }

    /// Records that the order keyed `key` now waits for `left` units (none: it waits no more),
    /// and adds `change` to the units backordered.
    pub fn record(&mut self, key: &str, left: u32, change: i64) {
        if left == 0 {
            self.waiting.remove(key);
        } else {
            self.waiting.insert(key.to_owned(), left);
        }
        self.backordered = u32::try_from(i64::from(self.backordered) + change).unwrap_or(0);
    }
}

/// When the `position`-th unit waiting (counted from 1, first-in first-out) is expected: the
/// date of the open purchase order whose delivery brings it, the earliest first; none if the
/// open purchase orders do not bring that many — nor if the delivery that brings it is late
/// (expected before `today`): its date has passed, and no one knows the next.
pub fn promised_on(
    position: u32,
    mut open: Vec<(NaiveDate, u32)>,
    today: NaiveDate,
) -> Option<NaiveDate> {
    open.sort();
    let mut covered = 0u32;
    for (on, units) in open {
        covered = covered.saturating_add(units);
        if covered >= position {
            return Some(on).filter(|on| *on >= today);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn room_follows_the_policy_and_the_release_date() {
        let mut owed = Backorders {
            policy: SellingPolicy::Backorder { limit: 5 },
            ..Backorders::default()
        };
        assert_eq!(owed.room(day(1)), 5);
        owed.record("a", 3, 3);
        assert_eq!(owed.room(day(1)), 2);
        owed.policy = SellingPolicy::PreOrder {
            release_on: day(10),
            cap: 4,
        };
        assert_eq!(owed.room(day(9)), 1);
        assert_eq!(owed.room(day(10)), 0, "released: no more pre-orders");
        assert_eq!(Backorders::default().room(day(1)), 0);
    }

    #[test]
    fn the_waiting_orders_sort_oldest_first_whenever_they_were_recorded() {
        let a = OrderId::generate(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let b = OrderId::generate(DateTime::from_timestamp(1_700_000_100, 0).unwrap());
        let mut owed = Backorders::default();
        // Recorded newest first: the keys still sort by placing time.
        let (kb, ka) = (
            waiting_key(DateTime::from_timestamp(1_700_000_100, 0).unwrap(), &b),
            waiting_key(DateTime::from_timestamp(1_700_000_000, 0).unwrap(), &a),
        );
        owed.record(&kb, 2, 2);
        owed.record(&ka, 3, 3);
        let queue: Vec<_> = owed.waiting.iter().map(|(k, n)| (k.clone(), *n)).collect();
        assert_eq!(queue, [(ka.clone(), 3), (kb.clone(), 2)]);
        assert_eq!(owed.backordered, 5);
        owed.record(&ka, 0, -3);
        assert_eq!(owed.waiting.len(), 1);
        assert_eq!(owed.backordered, 2);
        assert_eq!(order_of_key(&ka), Some(a));
    }

    #[test]
    fn the_promise_is_the_delivery_that_brings_the_last_unit() {
        let open = vec![(day(20), 3), (day(12), 2)];
        assert_eq!(promised_on(1, open.clone(), day(1)), Some(day(12)));
        assert_eq!(promised_on(2, open.clone(), day(1)), Some(day(12)));
        assert_eq!(promised_on(3, open.clone(), day(1)), Some(day(20)));
        assert_eq!(promised_on(5, open.clone(), day(12)), Some(day(20)));
        assert_eq!(promised_on(6, open.clone(), day(1)), None);
        // The delivery of the 12th is late on the 13th: its units are promised no date (it
        // still brings them, so the 20th's are still the 3rd to 5th).
        assert_eq!(promised_on(1, open.clone(), day(13)), None);
        assert_eq!(promised_on(3, open, day(13)), Some(day(20)));
    }

    #[test]
    fn the_policy_reads_as_the_api_writes_it() {
        let policy: SellingPolicy = serde_json::from_value(
            serde_json::json!({"policy": "PRE_ORDER", "releaseOn": "2027-01-15", "cap": 50}),
        )
        .unwrap();
        assert_eq!(
            policy,
            SellingPolicy::PreOrder {
                release_on: NaiveDate::from_ymd_opt(2027, 1, 15).unwrap(),
                cap: 50
            }
        );
        assert_eq!(
            serde_json::to_value(SellingPolicy::Backorder { limit: 3 }).unwrap(),
            serde_json::json!({"policy": "BACKORDER", "limit": 3})
        );
    }
}
