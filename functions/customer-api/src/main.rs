//! # customer-api: a customer's own settings
//!
//! `GET` and `PUT /customers/me/notification-preferences`: which channels (e-mail, SMS,
//! webhook) the caller wants to hear on. The notifier honours them for every later event.

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = handler::App::from_env()?;
    run(service_fn(|request| handler::handle(&app, request))).await
}
