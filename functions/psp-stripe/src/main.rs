//! # psp-stripe: what the orders ask of Stripe
//!
//! Consumes `oms.psp.capture-requested`, `oms.psp.void-requested` and `oms.refund.requested`
//! from its SQS queue and asks Stripe for each — a capture of the amount asked, a cancellation
//! of the PaymentIntent, a refund — with the request's id as Stripe's `Idempotency-Key`, so a
//! redelivered request never captures or refunds twice. Stripe's answer is recorded in the
//! order's ledger through the path Stripe's webhook takes, under the state Stripe reached, so the
//! webhook announcing it records nothing twice and a lost webhook leaves no order waiting.
//! Stripe unavailable (a network error, 429, 5xx) is a failed message, tried again; a refused
//! capture or refund (a declined or expired authorization, more than was taken) is recorded as
//! its failure and put in front of staff; a payment Stripe does not hold is another PSP's, and is
//! left alone. A message that keeps failing ends in the queue's dead-letter queue.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
