//! What the people who run the shop read: the order queue (by status and time in it, or one
//! customer's orders), the catalog with availability, a SKU's adjustment history, and the
//! exceptions — orders stuck in a state longer than they should be and money that needs staff.
//!
//! The staff APIs and the console both call these, so a listing's rules (who may read it, how
//! far a page goes, what counts as stuck) live in one place.

use std::cmp::Reverse;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::app::caller::{SCOPE_ADMIN, SCOPE_WAREHOUSE};
use crate::app::queries::MAX_PAGE_SIZE;
use crate::app::Caller;
use crate::ids::{CustomerId, Sku};
use crate::order::{Order, OrderStatus};
use crate::ports::{InventoryStore, OrderStore, Page, PaymentWatch, StoreError};
use crate::replenishment::HealthPolicy;
use crate::stock::Product;

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// The caller lacks the scope the listing needs.
    #[error("this needs the scope {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn require(caller: &Caller, scope: &'static str) -> Result<(), StaffError> {
    if caller.has_scope(scope) {
        Ok(())
    } else {
        Err(StaffError::Forbidden(scope))
    }
}

/// Whether the caller may read stock: the stock manager (`oms:admin`) and the warehouse.
fn require_stock_reader(caller: &Caller) -> Result<(), StaffError> {
    if caller.has_scope(SCOPE_ADMIN) || caller.has_scope(SCOPE_WAREHOUSE) {
        Ok(())
    } else {
        Err(StaffError::Forbidden("oms:admin or oms:warehouse"))
    }
}

/// Which orders the queue shows: those in one status (at least `min_age` in it), or one
/// customer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueFilter {
    Status {
        status: OrderStatus,
        /// Only orders at least this long in the status: "reserved for more than an hour".
        min_age: Duration,
    },
    Customer(CustomerId),
}

/// The order queue for customer service (`oms:admin`): by status, the longest waiting first, or
/// one customer's orders, newest first.
pub async fn order_queue<O: OrderStore>(
    orders: &O,
    caller: &Caller,
    filter: &QueueFilter,
    now: DateTime<Utc>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Order>, StaffError> {
    require(caller, SCOPE_ADMIN)?;
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    Ok(match filter {
        QueueFilter::Status { status, min_age } => {
            if *min_age < Duration::zero() {
                return Err(StaffError::InvalidQuery(
                    "minAgeMinutes must not be negative".into(),
                ));
            }
            orders
                .list_by_status(*status, now - *min_age, limit, cursor)
                .await?
        }
        QueueFilter::Customer(customer) => {
            orders.list_for_customer(customer, limit, cursor).await?
        }
    })
}

/// What the console's queue narrows the open orders to: one status or every open one, and
/// any of time in it, the payment's status, whether it is held back, the location it ships
/// from. Every filter left out keeps every order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueView {
    /// One status, or `None` for every open one ([`OPEN_STATUSES`]).
    pub status: Option<OrderStatus>,
    pub min_age: Duration,
    pub payment: Option<crate::order::payments::PaymentStatus>,
    /// `Some(true)`: only orders held back ([`Order::hold`]); `Some(false)`: only those that
    /// are not.
    pub held: Option<bool>,
    /// Only orders with units at this location.
    pub location: Option<String>,
    /// Only orders with units waiting for stock (backordered or pre-ordered): the backorder
    /// queue, whatever else holds them (an unpaid one, or one partly shipped, too).
    pub waiting_for_stock: bool,
}

/// The most orders one page of a filtered queue looks at before it stops: a filter that keeps
/// few of them pages on from where it stopped ("more" after a short page).
pub const MAX_EXAMINED_PER_PAGE: usize = 500;

impl QueueView {
    fn keeps(&self, order: &Order) -> bool {
        self.payment.is_none_or(|p| order.payment_status() == p)
            && self.held.is_none_or(|h| order.hold().is_some() == h)
            && self
                .location
                .as_deref()
                .is_none_or(|l| order.locations().contains(&l))
            && (!self.waiting_for_stock || order.backordered() > 0)
    }

    /// What names this view in its cursors, so a cursor of one view is refused by another.
    fn signature(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}{}",
            self.status.map_or("OPEN", |s| s.as_str()),
            self.min_age.num_minutes(),
            self.payment.map_or("", |p| p.as_str()),
            self.held.map_or("", |h| if h { "held" } else { "free" }),
            self.location.as_deref().unwrap_or_default(),
            if self.waiting_for_stock {
                "/waiting"
            } else {
                ""
            }
        )
    }
}

/// One status's listing as a filtered queue reads it: what it has read and not yet taken,
/// and where it goes on.
struct Lane {
    status: OrderStatus,
    read: std::collections::VecDeque<Order>,
    next: Option<String>,
    done: bool,
}

/// The console's order queue (`oms:admin`): the orders of `view`, the longest in their status
/// first. Each status's listing is read a page at a time from one position — the last order the
/// page before looked at, by time in status then id — and the listings are merged by that same
/// key, so a page reads about as many orders as it shows and pages never skip or repeat one
/// (an order that moved to a status being read meanwhile shows where it now sorts). A page
/// stops after [`MAX_EXAMINED_PER_PAGE`] orders the filters left out, with a cursor to go on.
pub async fn filtered_queue<O: OrderStore>(
    orders: &O,
    caller: &Caller,
    view: &QueueView,
    now: DateTime<Utc>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Order>, StaffError> {
    require(caller, SCOPE_ADMIN)?;
    if view.min_age < Duration::zero() {
        return Err(StaffError::InvalidQuery(
            "minAgeMinutes must not be negative".into(),
        ));
    }
    let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
    let signature = view.signature();
    // `after:<time in status>|<order id>|<view>`: the last order the page before looked at.
    let after: Option<(DateTime<Utc>, crate::ids::OrderId)> = match cursor {
        None => None,
        Some(c) => Some(
            c.strip_prefix("after:")
                .and_then(|rest| {
                    let mut parts = rest.splitn(3, '|');
                    let since = DateTime::parse_from_rfc3339(parts.next()?).ok()?;
                    let id = crate::ids::OrderId::parse(parts.next()?).ok()?;
                    (parts.next()? == signature).then(|| (since.with_timezone(&Utc), id))
                })
                .ok_or(StoreError::InvalidCursor)?,
        ),
    };
    let statuses: Vec<OrderStatus> = match view.status {
        Some(status) => vec![status],
        None => OPEN_STATUSES.to_vec(),
    };
    let mut lanes: Vec<Lane> = statuses
        .into_iter()
        .map(|status| Lane {
            status,
            read: Default::default(),
            next: after
                .as_ref()
                .map(|(since, id)| orders.status_cursor_after(status, *since, id)),
            done: false,
        })
        .collect();
    let key = |o: &Order| (o.status_since(), o.id.clone());
    let entered_before = now - view.min_age;
    let mut items = Vec::new();
    let mut examined = 0;
    let mut last: Option<(DateTime<Utc>, crate::ids::OrderId)> = None;
    loop {
        for lane in lanes.iter_mut().filter(|l| l.read.is_empty() && !l.done) {
            let page = orders
                .list_by_status(
                    lane.status,
                    entered_before,
                    limit as u32,
                    lane.next.as_deref(),
                )
                .await?;
            lane.read.extend(page.items);
            lane.done = page.next_cursor.is_none();
            lane.next = page.next_cursor;
        }
        // The listing whose next order has been in its status longest.
        let Some(lane) = lanes
            .iter_mut()
            .filter(|l| !l.read.is_empty())
            .min_by_key(|l| l.read.front().map(key))
        else {
            break;
        };
        let Some(order) = lane.read.pop_front() else {
            break;
        };
        examined += 1;
        last = Some(key(&order));
        if view.keeps(&order) && !items.iter().any(|o: &Order| o.id == order.id) {
            items.push(order);
        }
        if items.len() == limit || examined >= MAX_EXAMINED_PER_PAGE {
            break;
        }
    }
    let more = lanes.iter().any(|l| !l.read.is_empty() || !l.done);
    let next_cursor = last.filter(|_| more).map(|(since, id)| {
        format!(
            "after:{}|{id}|{signature}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        )
    });
    Ok(Page { items, next_cursor })
}

/// The most orders a search answers, the newest first.
pub const MAX_SEARCH_RESULTS: usize = 25;

/// How many entries of one search key are read: a name word shared by more orders than this
/// finds the newest of them (with the other words of the name narrowing those).
const SEARCH_READ: u32 = 200;

/// Finds orders by what staff typed (`oms:admin`): a customer's e-mail address, the words of a
/// recipient's name (all of them), or the end of an order id (four characters or more). Each
/// order is read as it is now and kept only if it still matches.
pub async fn search_orders<O: OrderStore>(
    orders: &O,
    caller: &Caller,
    text: &str,
) -> Result<Vec<Order>, StaffError> {
    require(caller, SCOPE_ADMIN)?;
    let ways = crate::order::search::search_terms(text);
    let mut found = std::collections::BTreeSet::new();
    for way in &ways {
        let mut matching: Option<std::collections::BTreeSet<crate::ids::OrderId>> = None;
        for term in way {
            let listed: std::collections::BTreeSet<_> = orders
                .search(term, SEARCH_READ)
                .await?
                .into_iter()
                .collect();
            matching = Some(match matching {
                None => listed,
                Some(before) => before.intersection(&listed).cloned().collect(),
            });
        }
        found.extend(matching.unwrap_or_default());
    }
    let mut result = Vec::new();
    // Ids sort by creation time: the newest first.
    for id in found.into_iter().rev() {
        if result.len() == MAX_SEARCH_RESULTS {
            break;
        }
        if let Some(order) = orders.get(&id).await? {
            if ways.iter().any(|way| order.found_by(way)) {
                result.push(order);
            }
        }
    }
    Ok(result)
}

/// The statuses of orders still open (not yet delivered, cancelled or rejected), as the queue
/// counts them.
pub const OPEN_STATUSES: [OrderStatus; 6] = [
    OrderStatus::Pending,
    OrderStatus::Reserved,
    OrderStatus::Fulfilling,
    OrderStatus::PartiallyShipped,
    OrderStatus::Shipped,
    OrderStatus::PartiallyDelivered,
];

/// The most orders the queue counts per status ("1000+" beyond).
pub const COUNT_CAP: u32 = 1000;

/// How many orders each open status holds, for the queue's tabs (`oms:admin`).
pub async fn open_counts<O: OrderStore>(
    orders: &O,
    caller: &Caller,
) -> Result<Vec<(OrderStatus, crate::ports::StatusCount)>, StaffError> {
    require(caller, SCOPE_ADMIN)?;
    let counts = OPEN_STATUSES.map(|status| orders.count_by_status(status, COUNT_CAP));
    let mut found = Vec::with_capacity(OPEN_STATUSES.len());
    for (status, count) in OPEN_STATUSES.into_iter().zip(counts) {
        found.push((status, count.await?));
    }
    Ok(found)
}

/// The most SKUs one bulk availability read may name: one batch read of the store.
pub const MAX_BULK_SKUS: usize = 100;

/// The availability of several SKUs at once (a storefront's product page, a console table):
/// the products that exist among `skus`, in the order asked, each once.
pub async fn availability<I: InventoryStore>(
    inventory: &I,
    skus: &[Sku],
) -> Result<Vec<Product>, StaffError> {
    if skus.is_empty() || skus.len() > MAX_BULK_SKUS {
        return Err(StaffError::InvalidQuery(format!(
            "skus must name 1 to {MAX_BULK_SKUS} SKUs"
        )));
    }
    let mut found = inventory.products(skus).await?;
    let position = |sku: &Sku| skus.iter().position(|s| s == sku);
    found.sort_by_key(|p| position(&p.sku));
    Ok(found)
}

/// How the catalog listing is ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogOrder {
    /// By SKU, a page at a time.
    Sku,
    /// The SKUs below their low-stock threshold first (fewest available first), then the rest.
    LowStockFirst,
    /// The SKUs at or below their reorder point first, the most to reorder first.
    ReorderFirst(HealthReading),
    /// The fewest days of cover first; SKUs without demand (unbounded cover) last.
    LeastCoverFirst(HealthReading),
    /// The overstocked SKUs first, the most days of cover first (those that sold nothing at all
    /// before them).
    OverstockFirst(HealthReading),
}

/// The day and the business's targets a health-sorted listing reads the SKUs' health with,
/// at one location or over all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReading {
    pub today: NaiveDate,
    pub policy: HealthPolicy,
    /// The location whose figures sort the listing; `None`: each SKU's over every location.
    pub location: Option<String>,
}

impl HealthReading {
    /// `product`'s health as this listing reads it.
    pub fn of(&self, product: &Product) -> crate::replenishment::Health {
        match &self.location {
            Some(location) => product.health_at(location, self.today, self.policy),
            None => product.health(self.today, self.policy),
        }
    }
}

impl CatalogOrder {
    /// The listing's name in its cursors: its order, and the location a health order reads.
    fn name(&self) -> String {
        let (name, reading) = match self {
            Self::Sku => ("sku", None),
            Self::LowStockFirst => ("low", None),
            Self::ReorderFirst(at) => ("reorder", Some(at)),
            Self::LeastCoverFirst(at) => ("cover", Some(at)),
            Self::OverstockFirst(at) => ("overstock", Some(at)),
        };
        match reading.and_then(|at| at.location.as_deref()) {
            Some(location) => format!("{name}@{location}"),
            None => name.to_owned(),
        }
    }
}

/// The most products a search or a low-stock-first listing considers: it reads the catalog in
/// SKU order up to here and sorts or filters that (a shop's catalog, not a marketplace's); a
/// larger catalog's later SKUs are left out of such a listing, and listed by SKU as ever.
pub const MAX_SORTED_CATALOG: usize = 2_000;

/// One page of the catalog; `search` keeps the SKUs or names that contain it (case-insensitive).
pub async fn catalog<I: InventoryStore>(
    inventory: &I,
    caller: &Caller,
    order: CatalogOrder,
    search: Option<&str>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Product>, StaffError> {
    require_stock_reader(caller)?;
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    let needle = search.map(str::to_lowercase).filter(|s| !s.is_empty());
    let matches = |p: &Product| match &needle {
        None => true,
        Some(n) => p.sku.as_str().to_lowercase().contains(n) || p.name.to_lowercase().contains(n),
    };
    if order == CatalogOrder::Sku && needle.is_none() {
        return Ok(inventory.catalog(limit, cursor).await?);
    }
    // Searching and sorting read the catalog whole (bounded), then page in memory; the cursor
    // is the offset into that listing, and names the listing it belongs to.
    let listing = format!("{}:{}", order.name(), needle.as_deref().unwrap_or_default());
    let offset = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("at:")
            .and_then(|rest| rest.split_once('|'))
            .filter(|(_, named)| *named == listing)
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .ok_or(StoreError::InvalidCursor)?,
    };
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = inventory.catalog(MAX_PAGE_SIZE, next.as_deref()).await?;
        all.extend(page.items.into_iter().filter(|p| matches(p)));
        next = page.next_cursor;
        if next.is_none() || all.len() >= MAX_SORTED_CATALOG {
            break;
        }
    }
    let health = |p: &Product, at: &HealthReading| at.of(p);
    match &order {
        CatalogOrder::Sku => {}
        CatalogOrder::LowStockFirst => all.sort_by_key(|p| {
            let low = p.stock.available() < p.low_stock_threshold;
            (
                !low,
                if low { p.stock.available() } else { 0 },
                p.sku.clone(),
            )
        }),
        CatalogOrder::ReorderFirst(at) => all.sort_by_key(|p| {
            let h = health(p, at);
            (!h.reorder, Reverse(h.suggested_reorder), p.sku.clone())
        }),
        CatalogOrder::LeastCoverFirst(at) => all.sort_by_key(|p| {
            let h = health(p, at);
            (h.days_of_cover.is_none(), h.days_of_cover, p.sku.clone())
        }),
        CatalogOrder::OverstockFirst(at) => all.sort_by_key(|p| {
            let h = health(p, at);
            (
                !h.overstock,
                Reverse(h.days_of_cover.unwrap_or(u32::MAX)),
                p.sku.clone(),
            )
        }),
    }
    let items: Vec<Product> = all
        .iter()
        .skip(offset)
        .take(limit as usize)
        .cloned()
        .collect();
    let next_cursor = (offset + items.len() < all.len())
        .then(|| format!("at:{}|{listing}", offset + items.len()));
    Ok(Page { items, next_cursor })
}

/// One page of a SKU's history — what `read` reads of it with the page's size: its adjustments
/// ([`InventoryStore::adjustments`]) or its transfers ([`InventoryStore::transfers`]), newest
/// first — for staff who handle stock.
pub async fn sku_history<T, Fut>(
    caller: &Caller,
    limit: u32,
    read: impl FnOnce(u32) -> Fut,
) -> Result<Page<T>, StaffError>
where
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    require_stock_reader(caller)?;
    Ok(read(limit.clamp(1, MAX_PAGE_SIZE)).await?)
}

/// How long an order may stay in a status before staff should look at it, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckRule {
    pub status: OrderStatus,
    pub after: Duration,
    pub meaning: &'static str,
    /// Only orders waiting for stock (`Some(true)`), or only those not (`Some(false)`).
    pub backordered: Option<bool>,
}

/// How long an order may wait for stock, by default, before staff are shown it.
pub const DEFAULT_BACKORDER_ALERT_DAYS: i64 = 14;

/// The states an order should leave by itself, and when it is late. The sweep re-drives
/// PENDING and paid RESERVED orders after [`crate::app::sweep::STUCK_AFTER_MINUTES`]; one still
/// there twice as long is one the re-drive could not move.
/// An order waiting for stock is not stuck until it has waited `backorder_alert`, the
/// business's limit.
pub fn stuck_rules(backorder_alert: Duration) -> [StuckRule; 7] {
    let redrive = Duration::minutes(2 * crate::app::sweep::STUCK_AFTER_MINUTES);
    [
        StuckRule {
            status: OrderStatus::Pending,
            after: redrive,
            meaning: "placed, never decided",
            backordered: None,
        },
        StuckRule {
            status: OrderStatus::Reserved,
            after: Duration::hours(1),
            meaning: "reserved, never started (unpaid orders expire by themselves)",
            backordered: Some(false),
        },
        StuckRule {
            status: OrderStatus::Reserved,
            after: backorder_alert,
            meaning: "waiting for stock longer than the business's limit",
            backordered: Some(true),
        },
        // One that ships what is there waits for the rest after its first parcels left (the
        // time counts from when it was placed).
        StuckRule {
            status: OrderStatus::PartiallyShipped,
            after: backorder_alert,
            meaning: "partly shipped, the rest waiting for stock longer than the business's limit",
            backordered: Some(true),
        },
        StuckRule {
            status: OrderStatus::PartiallyDelivered,
            after: backorder_alert,
            meaning:
                "partly delivered, the rest waiting for stock longer than the business's limit",
            backordered: Some(true),
        },
        StuckRule {
            status: OrderStatus::Fulfilling,
            after: Duration::days(2),
            meaning: "in the warehouse for more than two days",
            backordered: None,
        },
        StuckRule {
            status: OrderStatus::Shipped,
            after: Duration::days(14),
            meaning: "shipped, no delivery in two weeks",
            backordered: None,
        },
    ]
}

/// The orders of one rule that are late, the longest waiting first.
#[derive(Debug, Clone)]
pub struct StuckOrders {
    pub rule: StuckRule,
    pub orders: Vec<Order>,
    /// Whether more are late than the page holds.
    pub more: bool,
}

/// Everything that needs a person: stuck orders per rule and money that needs staff.
#[derive(Debug, Clone)]
pub struct Exceptions {
    pub stuck: Vec<StuckOrders>,
    pub payments: Vec<Order>,
    pub more_payments: bool,
}

/// How many orders each part of the exceptions shows.
pub const EXCEPTIONS_PER_KIND: u32 = 20;

/// The exceptions (`oms:admin`), read from the status index and the payment watch index.
pub async fn exceptions<O: OrderStore>(
    orders: &O,
    caller: &Caller,
    backorder_alert: Duration,
    now: DateTime<Utc>,
) -> Result<Exceptions, StaffError> {
    require(caller, SCOPE_ADMIN)?;
    let mut stuck = Vec::new();
    for rule in stuck_rules(backorder_alert) {
        // A paid order reserved and not started, or an unpaid one inside its window, are told
        // apart by the sweep; here every late one is shown, the sweep's own list included. One
        // waiting for stock is shown once it has waited longer than the business allows,
        // counted from when it was placed (a parcel that left since does not restart it).
        let late = now - rule.after;
        // Waiting for stock is late by placing time: every order in the status is read (a
        // parcel that left restarted its time in the status, not its wait).
        let listed_before = if rule.backordered == Some(true) {
            now
        } else {
            late
        };
        let keeps = |o: &Order| {
            // Reserved, it waits while nothing may leave yet; partly sent, while some of it
            // is still to come.
            let waiting = if o.status == OrderStatus::Reserved {
                o.waits_for_stock()
            } else {
                o.units_to_come() > 0
            };
            // A pre-order held for its release date waits as it should, for stock or not; one
            // still reserved an hour into its day (the sweep sends it then) is stuck.
            let held = o.status == OrderStatus::Reserved
                && o.held_for_release(crate::replenishment::day_of(now - Duration::hours(1)))
                    .is_some();
            rule.backordered.is_none_or(|waits| waiting == waits)
                && (rule.backordered.is_none() || !held)
                && (rule.backordered != Some(true) || o.created_at <= late)
        };
        // The listing is read on past the orders the rule leaves out (those waiting for stock
        // among the reserved ones, say), so they never hide the ones it is about — up to
        // [`MAX_EXAMINED_PER_PAGE`] orders, and then it says there are more.
        let mut found: Vec<Order> = Vec::new();
        let mut more = false;
        let mut examined = 0usize;
        let mut cursor: Option<String> = None;
        'listing: loop {
            let page = orders
                .list_by_status(
                    rule.status,
                    listed_before,
                    EXCEPTIONS_PER_KIND,
                    cursor.as_deref(),
                )
                .await?;
            examined += page.items.len();
            let mut items = page.items.into_iter();
            for order in items.by_ref() {
                if !keeps(&order) {
                    continue;
                }
                if found.len() == EXCEPTIONS_PER_KIND as usize {
                    more = true;
                    break 'listing;
                }
                found.push(order);
            }
            match page.next_cursor {
                Some(next) if examined < MAX_EXAMINED_PER_PAGE => cursor = Some(next),
                Some(_) => {
                    more = true;
                    break;
                }
                None => break,
            }
        }
        stuck.push(StuckOrders {
            rule,
            more,
            orders: found,
        });
    }
    let payments = orders
        .list_payment_watch(PaymentWatch::Attention, None, EXCEPTIONS_PER_KIND, None)
        .await?;
    Ok(Exceptions {
        stuck,
        more_payments: payments.next_cursor.is_some(),
        payments: payments.items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::money::{Currency, Money};
    use crate::stock::StockLevel;

    fn caller(scopes: &[&str]) -> Caller {
        Caller {
            customer_id: CustomerId::parse("staff-1").unwrap(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn product(sku: &str, available: u32, threshold: u32) -> Product {
        Product {
            sku: Sku::parse(sku).unwrap(),
            name: format!("Product {sku}"),
            unit_price: Money::new(1000, Currency::parse("EUR").unwrap()).unwrap(),
            weight_grams: 100,
            active: true,
            low_stock_threshold: threshold,
            stock: crate::stock::Stock::at_one("BER-1", StockLevel::new(available).unwrap()),
            replenishment: Default::default(),
            demand: Default::default(),
            incoming: Default::default(),
            backorders: Default::default(),
            version: 1,
            updated_at: Utc::now(),
        }
    }

    async fn store_with(products: &[Product]) -> InMemoryStore {
        let store = InMemoryStore::default();
        for p in products {
            store.save_product(p, None, None).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn low_stock_first_puts_the_scarcest_below_threshold_first_and_pages() {
        let store = store_with(&[
            product("A-PLENTY", 50, 5),
            product("B-LOW", 3, 5),
            product("C-OUT", 0, 5),
            product("D-PLENTY", 9, 5),
        ])
        .await;
        let admin = caller(&[SCOPE_ADMIN]);
        let first = catalog(&store, &admin, CatalogOrder::LowStockFirst, None, 2, None)
            .await
            .unwrap();
        let skus = |p: &Page<Product>| {
            p.items
                .iter()
                .map(|p| p.sku.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(skus(&first), ["C-OUT", "B-LOW"]);
        let second = catalog(
            &store,
            &admin,
            CatalogOrder::LowStockFirst,
            None,
            2,
            first.next_cursor.as_deref(),
        )
        .await
        .unwrap();
        assert_eq!(skus(&second), ["A-PLENTY", "D-PLENTY"]);
        assert_eq!(second.next_cursor, None);
        assert!(
            matches!(
                catalog(
                    &store,
                    &admin,
                    CatalogOrder::Sku,
                    Some("plenty"),
                    2,
                    first.next_cursor.as_deref()
                )
                .await,
                Err(StaffError::Store(StoreError::InvalidCursor))
            ),
            "a cursor opens only its own listing"
        );
    }

    #[tokio::test]
    async fn search_matches_sku_or_name_and_needs_a_stock_scope() {
        let store = store_with(&[product("TSHIRT-RED", 5, 1), product("MUG-BLUE", 5, 1)]).await;
        let warehouse = caller(&[SCOPE_WAREHOUSE]);
        let found = catalog(
            &store,
            &warehouse,
            CatalogOrder::Sku,
            Some("tshirt"),
            10,
            None,
        )
        .await
        .unwrap();
        assert_eq!(found.items.len(), 1);
        assert!(matches!(
            catalog(&store, &caller(&[]), CatalogOrder::Sku, None, 10, None).await,
            Err(StaffError::Forbidden(_))
        ));
        assert!(matches!(
            catalog(
                &store,
                &warehouse,
                CatalogOrder::Sku,
                Some("x"),
                10,
                Some("nonsense")
            )
            .await,
            Err(StaffError::Store(StoreError::InvalidCursor))
        ));
    }

    #[tokio::test]
    async fn availability_answers_in_the_order_asked_and_is_bounded() {
        let store = store_with(&[product("A", 1, 0), product("B", 2, 0)]).await;
        let asked: Vec<Sku> = ["B", "X", "A"]
            .iter()
            .map(|s| Sku::parse(*s).unwrap())
            .collect();
        let found = availability(&store, &asked).await.unwrap();
        assert_eq!(
            found.iter().map(|p| p.sku.to_string()).collect::<Vec<_>>(),
            ["B", "A"]
        );
        assert!(matches!(
            availability(&store, &[]).await,
            Err(StaffError::InvalidQuery(_))
        ));
        let too_many: Vec<Sku> = (0..=MAX_BULK_SKUS)
            .map(|i| Sku::parse(format!("S-{i}")).unwrap())
            .collect();
        assert!(matches!(
            availability(&store, &too_many).await,
            Err(StaffError::InvalidQuery(_))
        ));
    }

    #[tokio::test]
    async fn the_filtered_queue_combines_its_filters_over_every_open_status_and_pages() {
        use crate::order::payments::PaymentStatus;
        use crate::order::tests::request;
        let store = InMemoryStore::default();
        let base = Utc::now() - Duration::hours(3);
        let lines = serde_json::json!([{"sku": "A", "quantity": 1}]);
        let catalog = [crate::order::tests::product("A", 1000, 50)];
        // Five pending orders and five reserved at BER-1, placed a minute apart.
        let mut ids = Vec::new();
        for n in 0..10 {
            let at = base + Duration::minutes(n);
            let mut order = Order::place(
                crate::ids::OrderId::generate(at),
                CustomerId::parse("c-1").unwrap(),
                &request(lines.clone()),
                &catalog,
                &crate::shipping::ShippingPolicy::default_policy(),
                at,
            )
            .unwrap();
            if n % 2 == 1 {
                order = order.reserve_all_at("BER-1", order.created_at).unwrap();
            }
            let key = crate::ids::IdempotencyKey::parse(format!("k{n}")).unwrap();
            store
                .create(
                    &order,
                    &crate::ports::IdempotencyRecord {
                        customer_id: order.customer_id.clone(),
                        key,
                        fingerprint: "f".into(),
                        order_id: order.id.clone(),
                        response: "{}".into(),
                        created_at: at,
                    },
                )
                .await
                .unwrap();
            ids.push(order.id.clone());
        }
        let admin = caller(&[SCOPE_ADMIN]);
        let read = |view: QueueView, cursor: Option<String>| {
            let (store, admin) = (&store, &admin);
            async move {
                filtered_queue(store, admin, &view, Utc::now(), 3, cursor.as_deref())
                    .await
                    .unwrap()
            }
        };
        // Every open order, the longest waiting first, a page of three at a time.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = read(QueueView::default(), cursor).await;
            seen.extend(page.items.iter().map(|o| o.id.clone()));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, ids, "all ten, oldest first");
        // At BER-1, awaiting payment: the reserved ones (the pending have no location yet).
        let at_berlin = QueueView {
            location: Some("BER-1".into()),
            held: Some(true),
            payment: Some(PaymentStatus::Pending),
            ..QueueView::default()
        };
        let page = read(at_berlin.clone(), None).await;
        assert_eq!(page.items.len(), 3);
        assert!(page.items.iter().all(|o| o.status == OrderStatus::Reserved));
        // A cursor belongs to its view.
        let other = QueueView {
            held: Some(false),
            ..QueueView::default()
        };
        assert!(matches!(
            filtered_queue(
                &store,
                &admin,
                &other,
                Utc::now(),
                3,
                page.next_cursor.as_deref()
            )
            .await,
            Err(StaffError::Store(StoreError::InvalidCursor))
        ));
        assert!(
            read(other, None).await.items.is_empty(),
            "every open one is held"
        );
        // Time in the status: only those placed over 2h 55m ago.
        let old = QueueView {
            min_age: Duration::minutes(175),
            ..QueueView::default()
        };
        let page = read(old, None).await;
        assert_eq!(
            page.items.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            ids[..3].to_vec()
        );
        assert!(matches!(
            filtered_queue(
                &store,
                &caller(&[SCOPE_WAREHOUSE]),
                &QueueView::default(),
                Utc::now(),
                3,
                None
            )
            .await,
            Err(StaffError::Forbidden(SCOPE_ADMIN))
        ));
    }

    #[tokio::test]
    async fn the_queue_and_exceptions_are_for_administrators() {
        let store = InMemoryStore::default();
        let filter = QueueFilter::Status {
            status: OrderStatus::Pending,
            min_age: Duration::zero(),
        };
        for scopes in [&[][..], &[SCOPE_WAREHOUSE][..]] {
            assert!(matches!(
                order_queue(&store, &caller(scopes), &filter, Utc::now(), 10, None).await,
                Err(StaffError::Forbidden(SCOPE_ADMIN))
            ));
            assert!(matches!(
                exceptions(&store, &caller(scopes), Duration::days(14), Utc::now()).await,
                Err(StaffError::Forbidden(SCOPE_ADMIN))
            ));
        }
        let admin = caller(&[SCOPE_ADMIN]);
        assert!(order_queue(&store, &admin, &filter, Utc::now(), 10, None)
            .await
            .is_ok());
        let found = exceptions(&store, &admin, Duration::days(14), Utc::now())
            .await
            .unwrap();
        assert_eq!(found.stuck.len(), stuck_rules(Duration::days(14)).len());
    }

    #[tokio::test]
    async fn orders_waiting_for_stock_never_hide_a_reserved_order_never_started() {
        use crate::order::tests::request;
        let store = InMemoryStore::default();
        let base = Utc::now() - Duration::hours(5);
        let catalog = [crate::order::tests::product("A", 1000, 50)];
        let lines = serde_json::json!([{"sku": "A", "quantity": 2}]);
        let sku = Sku::parse("A").unwrap();
        let place = |n: i64| {
            let at = base + Duration::minutes(n);
            Order::place(
                crate::ids::OrderId::generate(at),
                CustomerId::parse("c-1").unwrap(),
                &request(lines.clone()),
                &catalog,
                &crate::shipping::ShippingPolicy::default_policy(),
                at,
            )
            .unwrap()
        };
        // Thirty paid orders waiting for stock, reserved first, then one paid and never
        // started.
        for n in 0..30 {
            let order = place(n);
            let waiting = order
                .reserve_backordering(
                    &crate::routing::Plan::one_location(
                        "BER-1",
                        [(&sku, crate::quantity::Quantity::new(1).unwrap())],
                    ),
                    &[crate::order::Backordered {
                        sku: sku.clone(),
                        units: 1,
                        location: "BER-1".into(),
                        promised_on: None,
                    }],
                    order.created_at,
                )
                .unwrap()
                .authorized_for_test(order.created_at);
            store.insert_order(waiting);
        }
        let forgotten = place(40);
        let forgotten = forgotten
            .reserve_all_at("BER-1", forgotten.created_at)
            .unwrap()
            .authorized_for_test(forgotten.created_at);
        store.insert_order(forgotten.clone());
        let admin = caller(&[SCOPE_ADMIN]);
        let found = exceptions(&store, &admin, Duration::days(14), Utc::now())
            .await
            .unwrap();
        let never_started = &found.stuck[1];
        assert_eq!(never_started.rule.backordered, Some(false));
        assert_eq!(
            never_started
                .orders
                .iter()
                .map(|o| o.id.clone())
                .collect::<Vec<_>>(),
            vec![forgotten.id.clone()],
            "behind thirty waiting for stock"
        );
        assert!(!never_started.more);
        // Waiting five hours is not past the business's limit.
        assert!(found.stuck[2].orders.is_empty());
    }

    #[tokio::test]
    async fn an_order_waiting_for_stock_is_shown_only_once_it_outlives_the_limit() {
        use crate::order::tests::{placed, product};
        let store = InMemoryStore::default();
        let at = Utc::now() - Duration::days(30);
        let mut order = placed(
            serde_json::json!([{"sku": "A", "quantity": 2}]),
            &[product("A", 100, 5)],
        );
        // Placed then, and reserved at once.
        order.created_at = at;
        let sku = order.lines[0].sku.clone();
        let waiting = order
            .reserve_backordering(
                &crate::routing::Plan::one_location(
                    "BER-1",
                    [(&sku, crate::quantity::Quantity::new(1).unwrap())],
                ),
                &[crate::order::Backordered {
                    sku: sku.clone(),
                    units: 1,
                    location: "BER-1".into(),
                    promised_on: None,
                }],
                at,
            )
            .unwrap()
            .authorized_for_test(at);
        store.insert_order(waiting.clone());
        let admin = caller(&[SCOPE_ADMIN]);
        let shown = |found: &Exceptions, rule: usize| {
            found.stuck[rule].orders.iter().any(|o| o.id == waiting.id)
        };
        // A day in: waiting, not stuck, and not a reserved order never started either.
        let early = exceptions(&store, &admin, Duration::days(14), at + Duration::days(1))
            .await
            .unwrap();
        assert!(!shown(&early, 1) && !shown(&early, 2));
        // Past the business's limit: in front of staff, as waiting for stock.
        let late = exceptions(&store, &admin, Duration::days(14), at + Duration::days(15))
            .await
            .unwrap();
        assert_eq!(late.stuck[2].rule.backordered, Some(true));
        assert!(shown(&late, 2) && !shown(&late, 1));
    }

    /// A paid pre-order in stock waits for its release date as it should: not stuck before the
    /// day, stuck if still reserved after it.
    #[tokio::test]
    async fn a_pre_order_held_for_its_release_is_stuck_only_after_the_day() {
        use crate::order::tests::{placed, product};
        let store = InMemoryStore::default();
        let at = Utc::now() - Duration::days(30);
        let mut order = placed(
            serde_json::json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 5)],
        );
        order.created_at = at;
        let sku = order.lines[0].sku.clone();
        let release_on = (at + Duration::days(10)).date_naive();
        let held = order
            .reserve_for_release(
                &crate::routing::Plan::one_location("BER-1", order.quantities()),
                &[],
                &[(sku, release_on)],
                at,
            )
            .unwrap()
            .authorized_for_test(at);
        store.insert_order(held.clone());
        let admin = caller(&[SCOPE_ADMIN]);
        let shown = |found: &Exceptions| found.stuck[1].orders.iter().any(|o| o.id == held.id);
        let before = exceptions(&store, &admin, Duration::days(14), at + Duration::days(5))
            .await
            .unwrap();
        assert_eq!(before.stuck[1].rule.backordered, Some(false));
        assert!(!shown(&before), "waiting for its day");
        let after = exceptions(&store, &admin, Duration::days(14), at + Duration::days(11))
            .await
            .unwrap();
        assert!(shown(&after), "its day has passed and it is still reserved");
    }
}
