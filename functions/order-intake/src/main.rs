//! # order-intake: `POST /orders`
//!
//! Validates an order, prices it from the catalog, and stores it `PENDING` together with its
//! idempotency record, exactly once per (customer, `Idempotency-Key`). It publishes nothing: the
//! new order item on the table's stream becomes the `oms.order.placed` event.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
