//! # fulfillment: reserved orders go to the warehouse
//!
//! Consumes `oms.order.reserved` and `oms.payment.authorized` events from its SQS queue and
//! moves each order that is both reserved and authorized (or paid) `RESERVED → FULFILLING`, with
//! a shipment awaiting pick at the policy's warehouse: it appears on that warehouse's pick list.
//! A reserved order whose payment has not been authorized stays held, awaiting payment, until
//! its authorization's event comes. A repeated message finds the order moved on and changes nothing;
//! failures are reported per message, and a message that keeps failing ends in the queue's
//! dead-letter queue.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
