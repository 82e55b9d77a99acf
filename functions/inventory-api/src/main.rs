//! # inventory-api: availability, catalog and stock administration
//!
//! `GET /inventory/{sku}` answers a SKU's real-time counters (`available`, `reserved`, `onHand`)
//! from a strongly consistent read. `PUT /inventory/{sku}` creates or replaces a SKU, and
//! `POST /inventory/{sku}/adjustments` records receipts, counts and write-offs; both need the
//! `oms:admin` scope, and no change can make `available` negative or break
//! `onHand = available + reserved`.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
