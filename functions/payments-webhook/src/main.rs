//! # payments-webhook: what the payment service provider says
//!
//! `POST /payments/events`, with no token: the PSP signs each request (`Psp-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, several `v1` while a secret is
//! rotated), and a request whose signature is missing, wrong, or more than five minutes from
//! this system's clock is a `401` that changes nothing. The secret is read from Secrets Manager
//! on first use and cached. Each transaction event (authorization, capture, void, refund;
//! succeeded or failed) is written into its order's ledger once per PSP event id; a repeat is
//! acknowledged and changes nothing. What follows — the warehouse taking an authorized order, a
//! void for an authorization that came too late, the customer told — comes from the table's
//! stream.
//!
//! `POST /payments/stripe/events` takes Stripe's own events, signed by Stripe in the same scheme
//! (`Stripe-Signature`, its own secret): a PaymentIntent that can be captured, was captured,
//! failed or was cancelled, and refunds that succeeded or failed, become the same ledger
//! events; every other event Stripe sends is acknowledged and left alone.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
