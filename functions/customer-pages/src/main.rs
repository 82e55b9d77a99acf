//! # customer-pages: a customer's order in their browser, without an account
//!
//! Served at `/shop` on the same HTTP API, without the JWT authorizer: a customer proves an
//! order is theirs with the signed link every message about it carries, or with its number and
//! the e-mail address it was placed with. The pages are server-rendered (minijinja templates,
//! no script but the payment page's, which mounts Stripe.js's card fields), in the order's language (English or German, as its messages are), laid out for a
//! phone first, and call the same application layer the JSON API calls, so a rule lives in one
//! place.
//!
//! ## Layout
//! - [`routes`]: the axum router: the lookup, the order's page, and what the customer may do
//!   there (cancel all or some before packing, change the address, pay what the order waits
//!   for, return), each form checked for the visit's CSRF token and the
//!   site's own origin; the one neutral refusal.
//! - [`pages`]: the templates (`templates/*.html`), the texts in each language, and the order's
//!   page as the customer reads it.
//!
//! The link and cookie keys come from the Secrets Manager secret `SHOP_SECRET_ARN` (one key
//! per line, the first signing: a key is rotated by putting the new one first); the site's
//! origin from `PUBLIC_API_URL`. With `STRIPE_PUBLISHABLE_KEY` set, the payment page opens the
//! customer's payment with the Stripe key `STRIPE_API_KEY_ARN` (as the order API does) and
//! loads Stripe.js from `STRIPE_JS_URL`.

mod pages;
mod routes;

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let shop = routes::Shop::from_env()?;
    lambda_http::run(routes::router(shop)).await
}
