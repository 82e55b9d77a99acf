//! # inventory-api: availability, catalog and stock administration
//!
//! `GET /inventory/{sku}` answers a SKU's real-time counters (`available`, `reserved`, `onHand`)
//! from a strongly consistent read, and to staff its incoming units and health (demand, days of
//! cover, reorder point, overstock); `GET /inventory` lists the catalog, sorted by any of them.
//! `PUT /inventory/{sku}` creates or replaces a SKU, `POST /inventory/{sku}/adjustments`
//! records receipts, counts and write-offs, transfers move units between locations and purchase
//! orders record units on their way from suppliers until their deliveries arrive; writes need
//! the `oms:admin` scope (receiving: or `oms:warehouse`), and no change can make `available`
//! negative or break `onHand = available + reserved`.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
