//! # psp-stripe: what the orders ask of Stripe, and what Stripe's webhook never brought
//!
//! Consumes `oms.psp.capture-requested`, `oms.psp.void-requested` and `oms.refund.requested`
//! from its SQS queue and asks Stripe for each — a capture of the amount asked (a parcel's
//! share with the rest kept held where more parcels follow: multicapture), a cancellation of the
//! PaymentIntent, a refund — with the request's id as Stripe's `Idempotency-Key`, so a
//! redelivered request never captures or refunds twice; a capture Stripe shows made but the
//! ledger does not is answered from Stripe's state, never asked again. Stripe's answer is
//! recorded in the order's ledger through the path Stripe's webhook takes, under the state
//! Stripe reached, so the webhook announcing it records nothing twice. Stripe unavailable (a
//! network error, 429, 5xx) is a failed message, tried again; a refused capture or refund (a
//! declined or expired authorization, more than was taken) is recorded as its failure and put
//! in front of staff; a payment Stripe does not hold is another PSP's, and is left alone. A
//! message that keeps failing ends in the queue's dead-letter queue.
//!
//! Run by a schedule, it reconciles: it reads Stripe's events of the recent past (the types
//! that can change a ledger) and records each through the webhook's own reading of it, so an
//! event whose webhook was lost reaches its order anyway, and one that arrived changes nothing.

mod handler;

use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
