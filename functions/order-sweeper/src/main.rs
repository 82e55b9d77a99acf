//! # order-sweeper: what time alone decides
//!
//! Run by a schedule (a SAM `Schedule` event, every minute), it reads the orders by status and
//! age from the status index — never a TTL, whose deletions come late and take the order with
//! them — and:
//! - expires the orders not authorized within the payment policy's window (default 30
//!   minutes): cancelled as expired, their stock released in the same transaction, the customer
//!   told; an authorization racing the expiry has one winner, decided by the order's version;
//! - re-drives stuck orders: one left `PENDING` for five minutes (its placed event never reached
//!   the reservation, or was dead-lettered) is reserved here; one `RESERVED`, paid for and never
//!   handed to the warehouse is handed to it — each with the same conditional write its queue
//!   consumer makes, so racing that consumer has one winner;
//! - puts captures the PSP has not confirmed in time, and authorizations that near the PSP's
//!   capture deadline, still uncaptured, in front of staff (the payment watch's attention list).
//!
//! An order whose hold the PSP released in the warehouse waits in `RESERVED` from the release,
//! so the expiry pass takes it when its window has passed.
//!
//! Each run looks at a bounded number of orders and says whether more were left; what it
//! changed has left the lists it reads, so the next run goes on where it stopped. A failed run
//! is an error, which the schedule retries.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
