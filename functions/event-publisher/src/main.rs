//! # event-publisher: the table's stream becomes the system's events
//!
//! The table is the outbox. Every change to an order or a product arrives here from the
//! DynamoDB stream (new and old images); each one the business cares about becomes one
//! CloudEvent on the `order-events` SNS topic, under an id of its own, with its type as the
//! `eventType` message attribute that subscribers filter on. Because handlers only write the
//! table, no crash between a write and a publish can lose an event. Publishing failures are
//! retried per entry, then reported as batch item failures so the stream delivers those records
//! again; what follows a failure (to publish or to read) of the same item is held back until
//! then, so an item's changes go out in their order, and the other items' changes go out. Delivery is at least once (SNS's own, and a retried batch publishes
//! again the other items' changes that followed the failure): subscribers deduplicate on the id.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
