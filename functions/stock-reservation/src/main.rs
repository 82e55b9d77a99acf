//! # stock-reservation: reserve stock for every placed order
//!
//! Consumes `oms.order.placed` events from its SQS queue. For each order, one DynamoDB
//! transaction reserves every line (`available ≥ quantity`, else nothing moves) and moves the
//! order `PENDING → RESERVED`; if stock falls short the order becomes `REJECTED` with each short
//! SKU. A repeated message finds the order decided and changes nothing. Throttling and
//! transaction conflicts are reported as batch item failures, so the queue retries them; they
//! never turn into rejections.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
