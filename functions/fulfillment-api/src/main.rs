//! # fulfillment-api: the warehouse's and the carriers' side
//!
//! With the `oms:warehouse` scope: the pick list (`GET /fulfillments`, a warehouse's shipments
//! in one status, oldest first), one shipment (`GET /fulfillments/{shipmentId}`, with its `ETag`),
//! and the steps `pick`, `pack` and `ship`, each allowed only from the step before it; `pack` and
//! `ship` need `If-Match`, so two packers cannot both ship a parcel. Shipping moves the units out
//! of `reserved` in the same transaction. Carriers post tracking events to `POST /carrier/events`,
//! signed with an HMAC-SHA256 of the body under a shared secret (kept in Secrets Manager, read on
//! the first carrier event and cached); each event id applies once.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
