//! Products and their stock counters, per location.
//!
//! A SKU's stock at one location is two counters, `available` (free to sell) and `reserved`
//! (promised to orders not yet shipped). `onHand`, the units in the building, is their sum: it is
//! derived, never stored, so `onHand = available + reserved` holds by construction and every
//! write moves at most two numbers per location. Both counters are unsigned and every operation
//! checks before it subtracts, so neither can go below zero: an operation that would is refused
//! and changes nothing. A SKU's [`Stock`] is its counters at every location; what a storefront
//! may sell is their sum.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{IdempotencyKey, Sku};
use crate::money::Money;
use crate::quantity::Quantity;
use crate::replenishment::{Demand, Health, HealthPolicy, Replenishment};

/// A SKU's stock counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    available: u32,
    reserved: u32,
}

/// Why a stock operation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("only {available} available, {requested} requested")]
    Insufficient { requested: u32, available: u32 },
    #[error("only {reserved} reserved, {requested} to release")]
    NotReserved { requested: u32, reserved: u32 },
    #[error("the change would leave {available} available with {reserved} reserved")]
    WouldGoNegative { available: i64, reserved: u32 },
    #[error("the stock level is too large")]
    Overflow,
}

impl StockLevel {
    /// The most units one SKU may hold; far below `u32::MAX` so sums never overflow.
    pub const MAX_UNITS: u32 = 100_000_000;

    /// A SKU with `on_hand` units and none reserved.
    pub fn new(on_hand: u32) -> Result<Self, StockError> {
        if on_hand > Self::MAX_UNITS {
            return Err(StockError::Overflow);
        }
        Ok(Self {
            available: on_hand,
            reserved: 0,
        })
    }

    /// Counters as a store holds them, checked against [`Self::MAX_UNITS`].
    pub fn from_counters(available: u32, reserved: u32) -> Result<Self, StockError> {
        match available.checked_add(reserved) {
            Some(sum) if sum <= Self::MAX_UNITS => Ok(Self {
                available,
                reserved,
            }),
            _ => Err(StockError::Overflow),
        }
    }

    pub fn available(&self) -> u32 {
        self.available
    }

    pub fn reserved(&self) -> u32 {
        self.reserved
    }

    pub fn on_hand(&self) -> u32 {
        self.available + self.reserved
    }

    /// Promises `quantity` units to an order.
    pub fn reserve(self, quantity: Quantity) -> Result<Self, StockError> {
        let q = quantity.get();
        if self.available < q {
            return Err(StockError::Insufficient {
                requested: q,
                available: self.available,
            });
        }
        Ok(Self {
            available: self.available - q,
            reserved: self.reserved + q,
        })
    }

    /// Gives units promised to an order back (a cancellation).
    pub fn release(self, quantity: Quantity) -> Result<Self, StockError> {
        let q = self.reserved_holds(quantity)?;
        Ok(Self {
            available: self.available + q,
            reserved: self.reserved - q,
        })
    }

    /// Reserved units leave the building (a shipment): `reserved` and `onHand` fall together.
    pub fn ship(self, quantity: Quantity) -> Result<Self, StockError> {
        let q = self.reserved_holds(quantity)?;
        Ok(Self {
            available: self.available,
            reserved: self.reserved - q,
        })
    }

    /// `quantity`'s units, if that many are reserved.
    fn reserved_holds(&self, quantity: Quantity) -> Result<u32, StockError> {
        let q = quantity.get();
        if self.reserved < q {
            return Err(StockError::NotReserved {
                requested: q,
                reserved: self.reserved,
            });
        }
        Ok(q)
    }

    /// Adds (a receipt) or removes (damage, shrinkage) units that are free to sell.
    pub fn adjust(self, delta: i64) -> Result<Self, StockError> {
        let available = i64::from(self.available) + delta;
        self.with_available(available)
    }

    /// Sets the units in the building to a counted number; reserved units stay promised.
    pub fn count(self, on_hand: u32) -> Result<Self, StockError> {
        self.with_available(i64::from(on_hand) - i64::from(self.reserved))
    }

    fn with_available(self, available: i64) -> Result<Self, StockError> {
        if available < 0 {
            return Err(StockError::WouldGoNegative {
                available,
                reserved: self.reserved,
            });
        }
        let available = u32::try_from(available).map_err(|_| StockError::Overflow)?;
        if available
            .checked_add(self.reserved)
            .is_none_or(|sum| sum > Self::MAX_UNITS)
        {
            return Err(StockError::Overflow);
        }
        Ok(Self {
            available,
            reserved: self.reserved,
        })
    }
}

/// How an order's write moves one SKU's counters at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockMovement {
    /// `available → reserved`, if enough is available: an order or a replacement is promised.
    Reserve,
    /// The same, for units a shipment moved here from another location: their demand was
    /// counted where they were first reserved, so it is not counted again.
    ReserveMoved,
    /// `reserved → available`: a cancellation, or a replacement that will not ship.
    Release,
    /// Out of `reserved` and out of the building: a shipment.
    Ship,
    /// Into `available`: returned units fit to sell again.
    Restock,
    /// Promised past stock: the units join the SKU's backordered ones (on condition that its
    /// limit leaves room), the order among those waiting ([`crate::backorder`]).
    Backorder,
    /// Backordered units no longer wanted (a cancellation, an expiry).
    ReleaseBackorder,
}

/// One SKU's part of an order's write, at one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMove {
    pub sku: Sku,
    pub location: String,
    pub quantity: Quantity,
    pub movement: StockMovement,
}

/// What one write does to one SKU's counters at one location, all its moves netted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationDelta {
    pub location: String,
    /// Units the write takes from `available` (reservations): it needs at least this many there.
    pub takes_available: u32,
    /// The units newly ordered here (reserved, not moved here from elsewhere, or backordered):
    /// the day's demand.
    pub ordered: u32,
    /// Units the write takes from `reserved` (releases, shipments).
    pub takes_reserved: u32,
    pub available: i64,
    pub reserved: i64,
    /// Units the write backorders (it needs that much room under the SKU's limit).
    pub takes_room: u32,
    /// The change of the units backordered.
    pub backordered: i64,
}

/// What one write does to one SKU, all its moves netted per location: DynamoDB lets a
/// transaction touch an item once, a SKU's counters at every location live in its one item, and
/// an exchange for the same SKU may restock, release and reserve it in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockDelta {
    pub sku: Sku,
    /// One per location the write touches, in the order they first appear.
    pub locations: Vec<LocationDelta>,
}

impl StockDelta {
    /// The moves of one write, one delta per SKU, in the order the SKUs first appear.
    pub fn net(moves: &[StockMove]) -> Vec<StockDelta> {
        let mut deltas: Vec<StockDelta> = Vec::new();
        for m in moves {
            let index = match deltas.iter().position(|d| d.sku == m.sku) {
                Some(index) => index,
                None => {
                    deltas.push(StockDelta {
                        sku: m.sku.clone(),
                        locations: Vec::new(),
                    });
                    deltas.len() - 1
                }
            };
            let sku = &mut deltas[index];
            let at = match sku.locations.iter().position(|d| d.location == m.location) {
                Some(at) => at,
                None => {
                    sku.locations.push(LocationDelta {
                        location: m.location.clone(),
                        takes_available: 0,
                        ordered: 0,
                        takes_reserved: 0,
                        available: 0,
                        reserved: 0,
                        takes_room: 0,
                        backordered: 0,
                    });
                    sku.locations.len() - 1
                }
            };
            let d = &mut sku.locations[at];
            let q = m.quantity.get();
            match m.movement {
                StockMovement::Reserve | StockMovement::ReserveMoved => {
                    if m.movement == StockMovement::Reserve {
                        d.ordered += q;
                    }
                    d.takes_available += q;
                    d.available -= i64::from(q);
                    d.reserved += i64::from(q);
                }
                StockMovement::Release => {
                    d.takes_reserved += q;
                    d.reserved -= i64::from(q);
                    d.available += i64::from(q);
                }
                StockMovement::Ship => {
                    d.takes_reserved += q;
                    d.reserved -= i64::from(q);
                }
                StockMovement::Restock => d.available += i64::from(q),
                // Asked for today as much as reserved units are: the day's demand.
                StockMovement::Backorder => {
                    d.ordered += q;
                    d.takes_room += q;
                    d.backordered += i64::from(q);
                }
                StockMovement::ReleaseBackorder => d.backordered -= i64::from(q),
            }
        }
        deltas
    }
}

impl StockLevel {
    /// Applies a write's delta at one location, refusing it (and changing nothing) if either
    /// counter holds less than the write takes from it.
    pub fn apply(self, delta: &LocationDelta) -> Result<Self, StockError> {
        if self.available < delta.takes_available {
            return Err(StockError::Insufficient {
                requested: delta.takes_available,
                available: self.available,
            });
        }
        if self.reserved < delta.takes_reserved {
            return Err(StockError::NotReserved {
                requested: delta.takes_reserved,
                reserved: self.reserved,
            });
        }
        let reserved = u32::try_from(i64::from(self.reserved) + delta.reserved)
            .map_err(|_| StockError::Overflow)?;
        Self {
            available: self.available,
            reserved,
        }
        .with_available(i64::from(self.available) + delta.available)
    }
}

/// A SKU's stock at every location that holds or held some: the counters per location, and
/// their sums, which are what a storefront sells from. A location missing from the map holds
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Stock {
    levels: BTreeMap<String, StockLevel>,
}

impl Stock {
    /// `level` units at `location`, nothing elsewhere.
    pub fn at_one(location: &str, level: StockLevel) -> Self {
        let mut stock = Self::default();
        stock.set(location, level);
        stock
    }

    /// The counters at `location` (zero where it holds nothing).
    pub fn at(&self, location: &str) -> StockLevel {
        self.levels.get(location).copied().unwrap_or_default()
    }

    /// Replaces the counters at `location`.
    pub fn set(&mut self, location: &str, level: StockLevel) {
        self.levels.insert(location.to_owned(), level);
    }

    /// Every location with counters, in id order.
    pub fn locations(&self) -> impl Iterator<Item = (&str, StockLevel)> {
        self.levels.iter().map(|(id, level)| (id.as_str(), *level))
    }

    /// Free to sell, at all locations together.
    pub fn available(&self) -> u32 {
        self.levels.values().map(StockLevel::available).sum()
    }

    /// Promised to orders, at all locations together.
    pub fn reserved(&self) -> u32 {
        self.levels.values().map(StockLevel::reserved).sum()
    }

    /// In the buildings, at all locations together.
    pub fn on_hand(&self) -> u32 {
        self.available() + self.reserved()
    }

    /// Applies a write's delta to every location it touches, or to none.
    pub fn apply(&self, delta: &StockDelta) -> Result<Self, (String, StockError)> {
        let mut next = self.clone();
        for d in &delta.locations {
            let level = next
                .at(&d.location)
                .apply(d)
                .map_err(|e| (d.location.clone(), e))?;
            next.set(&d.location, level);
        }
        Ok(next)
    }
}

/// A sellable item in the catalog, with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub unit_price: Money,
    pub weight_grams: u32,
    pub active: bool,
    /// When `available` falls below this, a low-stock event is raised.
    pub low_stock_threshold: u32,
    /// Its counters per location.
    pub stock: Stock,
    /// Its lead time and safety stock.
    #[serde(default)]
    pub replenishment: Replenishment,
    /// The units reserved for it per location and day, over the health window.
    #[serde(default)]
    pub demand: Demand,
    /// Units on their way to each location (purchase orders, transfers in transit): not
    /// available, not on hand, but counted by its health so they are not ordered again.
    #[serde(default)]
    pub incoming: BTreeMap<String, u32>,
    /// What it does when orders ask for more than is available, and what it owes them.
    #[serde(default)]
    pub backorders: crate::backorder::Backorders,
    /// Bumped by every write, so concurrent read-modify-writes cannot lose an update.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// Records the units `delta` reserves (for an order or a replacement) as `day`'s demand at
    /// each location it reserves them at.
    pub fn record_demand(&mut self, delta: &StockDelta, day: NaiveDate) {
        for at in delta.locations.iter().filter(|at| at.ordered > 0) {
            self.demand.reserved(&at.location, day, at.ordered);
        }
    }

    /// Its health at `location` on `today`'s window. A location that does not keep it (no
    /// counters there, nothing on its way) keeps no safety stock of it either.
    pub fn health_at(&self, location: &str, today: NaiveDate, policy: HealthPolicy) -> Health {
        let demand = self.demand.at(location, today);
        let available = self.stock.at(location).available();
        let incoming = self.incoming_at(location);
        let settings = Replenishment {
            safety_stock: if self.kept_at(location) {
                self.replenishment.safety_stock
            } else {
                0
            },
            ..self.replenishment
        };
        // Units waiting are the SKU's (owed from wherever stock arrives): counted in its whole
        // figures, not a location's.
        Health::of(available, incoming, 0, demand, settings, policy)
    }

    /// Its health over every location together on `today`'s window: the safety stock once per
    /// location that keeps it.
    pub fn health(&self, today: NaiveDate, policy: HealthPolicy) -> Health {
        let demand = self.demand.total(today);
        let available = self.stock.available();
        let kept = self
            .stock
            .locations()
            .map(|(l, _)| l)
            .chain(self.incoming.keys().map(String::as_str))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let settings = Replenishment {
            safety_stock: self
                .replenishment
                .safety_stock
                .saturating_mul(u32::try_from(kept).unwrap_or(u32::MAX)),
            ..self.replenishment
        };
        Health::of(
            available,
            self.incoming_total(),
            self.backorders.backordered,
            demand,
            settings,
            policy,
        )
    }

    /// Whether `location` keeps it: counters there, or units on their way.
    pub fn kept_at(&self, location: &str) -> bool {
        self.stock.locations().any(|(l, _)| l == location) || self.incoming_at(location) > 0
    }

    /// Units on their way to `location`.
    pub fn incoming_at(&self, location: &str) -> u32 {
        self.incoming.get(location).copied().unwrap_or(0)
    }

    /// Units on their way to any location.
    pub fn incoming_total(&self) -> u32 {
        self.incoming
            .values()
            .fold(0u32, |sum, n| sum.saturating_add(*n))
    }

    /// `delta` more (or fewer) units on their way to `location`, never below none.
    pub fn add_incoming(&mut self, location: &str, delta: i64) {
        let now = i64::from(self.incoming_at(location)) + delta;
        match u32::try_from(now.max(0)).unwrap_or(u32::MAX) {
            0 => self.incoming.remove(location),
            units => self.incoming.insert(location.to_owned(), units),
        };
    }

    /// The product as a write of it at `now` starts: the next version, its demand kept to the
    /// window (a whole product's write drops the older days).
    pub fn next_version(&self, now: DateTime<Utc>) -> Product {
        Product {
            demand: self.demand.recent(crate::replenishment::day_of(now)),
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }
}

/// Why stock changed by hand: receipts from suppliers, counts, damage and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdjustmentReason {
    Receipt,
    Count,
    Damage,
    Shrinkage,
    Correction,
    /// Units dispatched to another location (a transfer): recorded, never asked for by hand.
    TransferOut,
    /// Units a transfer brought in: recorded, never asked for by hand.
    TransferIn,
    /// An order's reserved units that staff moved to another location with its shipment: the
    /// location they left (recorded with the move, never asked for by hand).
    ShipmentMoveOut,
    /// The location a moved shipment's units are reserved at now.
    ShipmentMoveIn,
}

impl AdjustmentReason {
    /// The reasons staff give for a change made by hand.
    pub const ALL: [AdjustmentReason; 5] = [
        Self::Receipt,
        Self::Count,
        Self::Damage,
        Self::Shrinkage,
        Self::Correction,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Receipt => "RECEIPT",
            Self::Count => "COUNT",
            Self::Damage => "DAMAGE",
            Self::Shrinkage => "SHRINKAGE",
            Self::Correction => "CORRECTION",
            Self::TransferOut => "TRANSFER_OUT",
            Self::TransferIn => "TRANSFER_IN",
            Self::ShipmentMoveOut => "SHIPMENT_MOVE_OUT",
            Self::ShipmentMoveIn => "SHIPMENT_MOVE_IN",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

/// One recorded manual change of a SKU's stock: the audit trail of the counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockAdjustment {
    pub sku: Sku,
    pub id: String,
    pub reason: AdjustmentReason,
    pub note: Option<String>,
    /// Where the counters changed; absent on adjustments recorded before there were locations,
    /// which were all at the default location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The counters at that location before and after.
    pub before: StockLevel,
    pub after: StockLevel,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// The `Idempotency-Key` of the request that made it (the console's stock forms carry one),
    /// so the same form sent twice records once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<IdempotencyKey>,
}

impl StockAdjustment {
    /// The history entry of a write of `product` (at its new version): `location`'s counters
    /// went from `before` to `after` for `reason`, by `actor`. Its id is the write's time and the
    /// product's version, so entries list in the order they were written.
    #[allow(clippy::too_many_arguments)]
    pub fn of_write(
        product: &Product,
        location: &str,
        reason: AdjustmentReason,
        note: Option<String>,
        before: StockLevel,
        after: StockLevel,
        actor: &str,
    ) -> Self {
        let at = product.updated_at;
        StockAdjustment {
            sku: product.sku.clone(),
            id: format!("{}-{}", at.format("%Y%m%dT%H%M%S%.3fZ"), product.version),
            reason,
            note,
            location: Some(location.to_owned()),
            before,
            after,
            actor: actor.to_owned(),
            at,
            key: None,
        }
    }
}

/// Where a transfer between two locations stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferStatus {
    /// Out of the source's counters, not yet in the destination's.
    InTransit,
    Received,
}

impl TransferStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InTransit => "IN_TRANSIT",
            Self::Received => "RECEIVED",
        }
    }
}

/// Units of one SKU on their way from one location to another. Dispatching takes them out of
/// the source's `available` (in the same write as the transfer is recorded); receiving puts
/// them into the destination's; in between they are in transit, counted at neither, so nothing
/// sells units that are on a lorry. Each step is an entry of the SKU's stock history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// `TR-` and a ULID: transfers list newest first by it.
    pub id: String,
    pub sku: Sku,
    pub from: String,
    pub to: String,
    /// Units, at least 1 and at most [`StockLevel::MAX_UNITS`] (a pallet, not an order line).
    pub quantity: u32,
    pub status: TransferStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub dispatched_by: String,
    pub dispatched_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
    /// Whether its dispatch counted its units as incoming at `to` (transfers dispatched before
    /// incoming units were kept did not, so their receipt takes none back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted_incoming: bool,
}

/// Why a transfer step was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("a transfer goes from one location to another, not to {0} itself")]
    SameLocation(String),
    #[error("transfer {0} was received already")]
    AlreadyReceived(String),
    #[error(transparent)]
    Stock(#[from] StockError),
}

/// What a dispatch's `Idempotency-Key` stands for, kept with the transfer it made: a retry of
/// the same request answers that transfer, the same key with another request is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferKey {
    pub sku: Sku,
    pub key: IdempotencyKey,
    pub transfer_id: String,
    /// The request the key was first used with: where from, where to, how many.
    pub fingerprint: String,
}

impl TransferKey {
    /// The fingerprint of a dispatch of `quantity` units from `from` to `to`.
    pub fn fingerprint(from: &str, to: &str, quantity: u32) -> String {
        format!("{from}>{to}:{quantity}")
    }
}

/// One step of a transfer, as one write: the product's counters, the history entry that
/// explains them, and the transfer as it now stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferStep {
    pub product: Product,
    pub adjustment: StockAdjustment,
    pub transfer: Transfer,
}

impl Transfer {
    /// Whether `id` has the shape of a transfer's id (a path parameter).
    pub fn is_id(id: &str) -> bool {
        id.strip_prefix("TR-")
            .is_some_and(|ulid| ulid::Ulid::from_string(ulid).is_ok())
    }

    /// Sends `quantity` units of `product` from `from` to `to`: out of `from`'s available
    /// units now (refused if it has fewer), in transit until received.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        product: &Product,
        from: &str,
        to: &str,
        quantity: u32,
        note: Option<String>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<TransferStep, TransferError> {
        if from == to {
            return Err(TransferError::SameLocation(to.to_owned()));
        }
        let before = product.stock.at(from);
        let after = before
            .adjust(-i64::from(quantity))
            .map_err(|_| StockError::Insufficient {
                requested: quantity,
                available: before.available(),
            })?;
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or_default();
        let id = format!(
            "TR-{}",
            ulid::Ulid::from_parts(ms, ulid::Ulid::new().random())
        );
        let transfer = Transfer {
            id,
            sku: product.sku.clone(),
            from: from.to_owned(),
            to: to.to_owned(),
            quantity,
            status: TransferStatus::InTransit,
            note,
            dispatched_by: by.to_owned(),
            dispatched_at: now,
            received_by: None,
            received_at: None,
            counted_incoming: true,
        };
        let note = format!("transfer {} to {to}", transfer.id);
        let mut step = transfer.step(
            product,
            from,
            before,
            after,
            AdjustmentReason::TransferOut,
            note,
            by,
            now,
        );
        step.product.add_incoming(to, i64::from(quantity));
        Ok(step)
    }

    /// The units arrive at the destination: into its available units, the transfer received.
    pub fn receive(
        &self,
        product: &Product,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<TransferStep, TransferError> {
        if self.status != TransferStatus::InTransit {
            return Err(TransferError::AlreadyReceived(self.id.clone()));
        }
        let before = product.stock.at(&self.to);
        let after = before.adjust(i64::from(self.quantity))?;
        let received = Transfer {
            status: TransferStatus::Received,
            received_by: Some(by.to_owned()),
            received_at: Some(now),
            ..self.clone()
        };
        let note = format!("transfer {} from {}", self.id, self.from);
        let to = self.to.clone();
        let mut step = received.step(
            product,
            &to,
            before,
            after,
            AdjustmentReason::TransferIn,
            note,
            by,
            now,
        );
        if self.counted_incoming {
            step.product.add_incoming(&to, -i64::from(self.quantity));
        }
        Ok(step)
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        self,
        product: &Product,
        location: &str,
        before: StockLevel,
        after: StockLevel,
        reason: AdjustmentReason,
        note: String,
        by: &str,
        now: DateTime<Utc>,
    ) -> TransferStep {
        let mut stock = product.stock.clone();
        stock.set(location, after);
        let next = Product {
            stock,
            ..product.next_version(now)
        };
        let adjustment =
            StockAdjustment::of_write(&next, location, reason, Some(note), before, after, by);
        TransferStep {
            product: next,
            adjustment,
            transfer: self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(n: u32) -> Quantity {
        Quantity::new(n).unwrap()
    }

    #[test]
    fn units_moved_to_another_location_are_not_ordered_again() {
        let sku = Sku::parse("A").unwrap();
        let step = |location: &str, movement| StockMove {
            sku: sku.clone(),
            location: location.into(),
            quantity: q(2),
            movement,
        };
        let moved = StockDelta::net(&[
            step("AMS-1", StockMovement::Release),
            step("BER-1", StockMovement::ReserveMoved),
        ]);
        let ordered = StockDelta::net(&[step("BER-1", StockMovement::Reserve)]);
        let at_berlin = |deltas: &[StockDelta]| {
            let d = deltas[0]
                .locations
                .iter()
                .find(|l| l.location == "BER-1")
                .cloned();
            d.map(|d| (d.takes_available, d.ordered)).unwrap()
        };
        assert_eq!(
            at_berlin(&moved),
            (2, 0),
            "taken from available, not demand"
        );
        assert_eq!(at_berlin(&ordered), (2, 2));
        let mut product = crate::fixtures::product("A", 100, 5);
        let day = crate::replenishment::day_of(Utc::now());
        product.record_demand(&moved[0], day);
        assert_eq!(product.demand.total(day), 0);
        product.record_demand(&ordered[0], day);
        assert_eq!(product.demand.at("BER-1", day), 2);
    }

    #[test]
    fn reserving_more_than_available_changes_nothing() {
        let stock = StockLevel::new(3).unwrap();
        assert_eq!(
            stock.reserve(q(4)),
            Err(StockError::Insufficient {
                requested: 4,
                available: 3
            })
        );
        let reserved = stock.reserve(q(3)).unwrap();
        assert_eq!(
            (
                reserved.available(),
                reserved.reserved(),
                reserved.on_hand()
            ),
            (0, 3, 3)
        );
    }

    #[test]
    fn a_count_below_the_reserved_units_is_refused() {
        let stock = StockLevel::new(10).unwrap().reserve(q(4)).unwrap();
        assert!(stock.count(3).is_err());
        assert_eq!(stock.count(6).unwrap().available(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(u32),
        Release(u32),
        Ship(u32),
        Adjust(i64),
        Count(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u32..=999).prop_map(Op::Reserve),
            (1u32..=999).prop_map(Op::Release),
            (1u32..=999).prop_map(Op::Ship),
            (-500i64..500).prop_map(Op::Adjust),
            (0u32..2000).prop_map(Op::Count),
        ]
    }

    proptest! {
        /// Any interleaving of reservations, releases, shipments and adjustments keeps both
        /// counters non-negative; a refused operation changes nothing; units are conserved.
        #[test]
        fn any_interleaving_keeps_the_counters_exact(start in 0u32..1000, ops in prop::collection::vec(op(), 0..200)) {
            let mut stock = StockLevel::new(start).unwrap();
            let mut shipped: i64 = 0;
            let mut added: i64 = 0;
            for op in ops {
                let op_for_net = op.clone();
                let before = stock;
                let result = match op {
                    Op::Reserve(n) => stock.reserve(q(n)),
                    Op::Release(n) => stock.release(q(n)),
                    Op::Ship(n) => stock.ship(q(n)).inspect(|_| shipped += i64::from(n)),
                    Op::Adjust(d) => stock.adjust(d).inspect(|_| added += d),
                    Op::Count(n) => stock.count(n).inspect(|s| added += i64::from(s.on_hand()) - i64::from(before.on_hand())),
                };
                match result {
                    Ok(next) => stock = next,
                    Err(_) => prop_assert_eq!(stock, before),
                }
                prop_assert_eq!(stock.on_hand(), stock.available() + stock.reserved());
                // The same operation as a netted write agrees with the direct one.
                let movement = match op_for_net {
                    Op::Reserve(n) => Some((StockMovement::Reserve, n)),
                    Op::Release(n) => Some((StockMovement::Release, n)),
                    Op::Ship(n) => Some((StockMovement::Ship, n)),
                    _ => None,
                };
                if let Some((movement, n)) = movement {
                    let moves = [StockMove { sku: Sku::parse("A").unwrap(), location: "L".into(), quantity: q(n), movement }];
                    let netted = before.apply(&StockDelta::net(&moves)[0].locations[0]);
                    prop_assert_eq!(netted.ok(), (stock != before).then_some(stock));
                }
                prop_assert_eq!(i64::from(stock.on_hand()), i64::from(start) + added - shipped);
            }
        }
    }
}
