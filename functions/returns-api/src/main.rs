//! # returns-api: returns (RMAs), their labels and their receipt
//!
//! - `POST /orders/{id}/returns` (the order's customer, with `Idempotency-Key`): lines, quantities
//!   and reasons, optionally an exchange SKU per line. Allowed for delivered lines within the
//!   return window, for no more than was delivered and not already being returned. The return
//!   policy approves it at once or leaves it for staff.
//! - `GET /returns/{id}` (its customer, `oms:admin`, `oms:warehouse`): the return, its refund and
//!   its label link.
//! - `GET /returns/{id}/label`: the 4×6 inch PDF label with both addresses, the items and the RMA
//!   number as a Code 128 barcode, once the return is approved.
//! - `POST /returns/{id}/approve` and `/reject` (`oms:admin`): approving reserves any exchange.
//! - `POST /returns/{id}/close` (`oms:admin`): an approved return nothing will arrive for,
//!   closed before the sweep would, its exchange released.
//! - `POST /returns/{id}/receive` (`oms:warehouse`): the quantity and disposition per line;
//!   `RESTOCK` units are available again in the same write, the refund is recorded and announced,
//!   exchanges ship as a new order.
//!
//! The rules live in `oms_domain::order::returns`; the return policy (window, auto-approval, shipping
//! refunds, return address) is data: `shared/domain/return-policy.json` or `RETURN_POLICY_FILE`.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env().await?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
