//! # order-api: reading and cancelling orders
//!
//! `GET /orders/{id}` answers one order with its lines, totals, shipping, status, shipment,
//! returns, refunds and timeline; `GET /orders` the caller's orders, newest first, a page at a
//! time; `POST /orders/{id}/cancel` calls an order off before it is packed, releasing its stock in
//! the same write and recording the refund. A customer sees and cancels only their own orders:
//! another customer's order is a 404, indistinguishable from one that does not exist.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
