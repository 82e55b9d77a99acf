//! Figure 9, **routing**: what reserving an order costs when one location holds it whole and
//! when its units sit in two (the stock-reservation function's own requests and the items its
//! writes touch, from moto's request recorder), what its shipments then cost the warehouse API
//! (one parcel, or one per location), and how long the routing planner takes for a 99-line
//! order over 10 locations (in-process, the build's profile).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oms_domain::ids::Sku;
use oms_domain::routing::{self, Availability, Demand, Fulfilment, Location};
use oms_system_tests::{unique, Stack};

use crate::common::{settled, BoxError};

/// The functions whose calls the figure counts.
const RESERVATION: &str = "stock-reservation";
const WAREHOUSE_API: &str = "fulfillment-api";

#[derive(serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReservationCalls {
    /// Per DynamoDB action, the stock-reservation function's requests for one order.
    pub requests: BTreeMap<String, u64>,
    /// Items its writes touched: the order and one stock item per SKU.
    pub items_written: u64,
}

/// What picking, packing and shipping every parcel of one order asked of DynamoDB (the
/// warehouse API's own requests).
#[derive(serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentCalls {
    pub parcels: usize,
    pub requests: BTreeMap<String, u64>,
    pub items_written: u64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanTiming {
    pub lines: usize,
    pub locations: usize,
    pub shipments: usize,
    pub runs: usize,
    pub median_micros: f64,
    pub p90_micros: f64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// Two lines, both held whole by the default location.
    pub one_location: ReservationCalls,
    /// Two lines, one held only by each of two warehouses.
    pub split: ReservationCalls,
    /// The one-location order's parcel through the warehouse.
    pub one_parcel: ShipmentCalls,
    /// The split order's two parcels through their warehouses.
    pub two_parcels: ShipmentCalls,
    pub planning: PlanTiming,
}

pub async fn routing(stack: &Stack) -> Result<Routing, BoxError> {
    let one_location = {
        let a = stack.create_sku("ROUTE-A", 10).await;
        let b = stack.create_sku("ROUTE-B", 10).await;
        reservation_calls(stack, &[(&a, 1), (&b, 1)]).await?
    };
    let split = {
        let a = stack.create_sku("ROUTE-C", 10).await;
        let b = stack.create_sku("ROUTE-D", 0).await;
        stack.receive_at(&b, "AMS-1", 10).await;
        reservation_calls(stack, &[(&a, 1), (&b, 1)]).await?
    };
    let one_parcel = {
        let a = stack.create_sku("ROUTE-E", 10).await;
        let b = stack.create_sku("ROUTE-F", 10).await;
        shipment_calls(stack, &[(&a, 1), (&b, 1)]).await?
    };
    let two_parcels = {
        let a = stack.create_sku("ROUTE-G", 10).await;
        let b = stack.create_sku("ROUTE-H", 0).await;
        stack.receive_at(&b, "AMS-1", 10).await;
        shipment_calls(stack, &[(&a, 1), (&b, 1)]).await?
    };
    Ok(Routing {
        one_location,
        split,
        one_parcel,
        two_parcels,
        planning: planning(99, 10, 200),
    })
}

/// Counts one function's DynamoDB requests among `recorded`, and the items its writes touched.
fn count(
    recorded: &[oms_system_tests::RecordedRequest],
    app: &str,
) -> (BTreeMap<String, u64>, u64) {
    let mut requests = BTreeMap::new();
    let mut items_written = 0;
    for request in recorded.iter().filter(|r| r.app.as_deref() == Some(app)) {
        let Some(("dynamodb", action)) = request.action.split_once(':') else {
            continue;
        };
        *requests.entry(action.to_owned()).or_default() += 1;
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
        items_written += match action {
            "PutItem" | "UpdateItem" => 1,
            "TransactWriteItems" => body["TransactItems"].as_array().map_or(0, Vec::len) as u64,
            _ => 0,
        };
    }
    (requests, items_written)
}

/// Places a paid order of `lines`, and counts what the warehouse API asked of DynamoDB while
/// each of its parcels was picked, packed and shipped.
async fn shipment_calls(stack: &Stack, lines: &[(&str, u32)]) -> Result<ShipmentCalls, BoxError> {
    let customer = unique("routing");
    let placed = stack.place_order(&customer, &unique("key"), lines).await;
    let id = placed.body["orderId"].as_str().ok_or("no order id")?;
    let order = stack.wait_status(&customer, id, "FULFILLING").await;
    let parcels: Vec<String> = order["shipments"]
        .as_array()
        .ok_or("no shipments")?
        .iter()
        .filter_map(|s| s["shipmentId"].as_str().map(str::to_owned))
        .collect();
    settled(stack).await?;
    stack.start_recording().await;
    for parcel in &parcels {
        stack.pick_pack_ship(parcel, None).await;
    }
    stack.wait_status(&customer, id, "SHIPPED").await;
    settled(stack).await?;
    let recorded = stack.stop_recording().await;
    let (requests, items_written) = count(&recorded, WAREHOUSE_API);
    Ok(ShipmentCalls {
        parcels: parcels.len(),
        requests,
        items_written,
    })
}

/// Places an order of `lines` (unpaid: no payment step joins the recording) and counts what the
/// reservation function asked of DynamoDB for it.
async fn reservation_calls(
    stack: &Stack,
    lines: &[(&str, u32)],
) -> Result<ReservationCalls, BoxError> {
    settled(stack).await?;
    stack.start_recording().await;
    let customer = unique("routing");
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), lines)
        .await;
    let id = placed.body["orderId"].as_str().ok_or("no order id")?;
    stack.wait_status(&customer, id, "RESERVED").await;
    settled(stack).await?;
    let recorded = stack.stop_recording().await;
    let (requests, items_written) = count(&recorded, RESERVATION);
    Ok(ReservationCalls {
        requests,
        items_written,
    })
}

/// The planner on a `lines`-line cart over `locations` locations, each SKU held by a few of
/// them so that no one location holds the order: `runs` plans, the median and 90th percentile.
pub fn planning(lines: usize, locations: usize, runs: usize) -> PlanTiming {
    let sites: Vec<Location> = (0..locations)
        .map(|i| Location {
            id: format!("L{i:02}"),
            ships: true,
            pickup: false,
            priority: u32::try_from(i).unwrap_or(u32::MAX),
        })
        .collect();
    let demand: Vec<Demand> = (0..lines)
        .map(|i| Demand {
            sku: Sku::parse(format!("SKU-{i:03}")).expect("a SKU"),
            quantity: 1 + u32::try_from(i % 3).unwrap_or(0),
            unit_weight_grams: 300,
        })
        .collect();
    // SKU i sits at locations i mod n and (i + 3) mod n, one unit short of the line at the
    // first: every line is served, but only by several locations together.
    let mut available: Availability = BTreeMap::new();
    for (i, line) in demand.iter().enumerate() {
        let first = &sites[i % locations].id;
        let second = &sites[(i + 3) % locations].id;
        available
            .entry(first.clone())
            .or_default()
            .insert(line.sku.clone(), line.quantity - 1);
        available
            .entry(second.clone())
            .or_default()
            .insert(line.sku.clone(), line.quantity);
    }
    let rate = |l: &Location, grams: u64| {
        Some(490 + i64::from(l.priority) * 10 + (grams / 1000) as i64 * 50)
    };
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut shipments = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let plan = routing::plan(&demand, &available, &sites, &Fulfilment::Ship, rate)
            .expect("the cart can be served");
        times.push(start.elapsed());
        shipments = plan.shipments.len();
    }
    times.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    PlanTiming {
        lines,
        locations,
        shipments,
        runs,
        median_micros: micros(times[runs / 2]),
        p90_micros: micros(times[runs * 9 / 10]),
    }
}
