//! # notifier: customers hear of every step, in order, once per channel
//!
//! Consumes every order event from its SQS queue. For the events customers care about (received,
//! confirmed, rejected for stock, cancelled, shipped, out for delivery, delivered, delivery
//! exception) it renders a message per channel the customer accepts — e-mail (subject, text,
//! HTML), SMS, webhook (structured data) — in the order's language, and publishes each to the
//! `customer-notifications` topic with `eventType`, `channel` and `customerId` attributes for
//! subscribers to filter on. Events are handled in each order's sequence, and each (event,
//! channel) is sent once however often the queue delivers it.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
