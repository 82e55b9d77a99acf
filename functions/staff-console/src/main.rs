//! # staff-console: the staff console in the browser
//!
//! Customer service, the stock manager, packers and whoever decides on returns work here, not
//! with `curl`. Served at `/console` on the same HTTP API (its routes have no JWT authorizer: the
//! console signs people in itself), as server-rendered HTML from minijinja templates — forms that
//! work without JavaScript — calling the same application layer the JSON APIs call, so a rule
//! lives in one place.
//!
//! ## Layout
//! - [`routes`]: the axum router, a module per screen: every screen and form, the scope each
//!   needs, the extractors that check every form's session, origin, CSRF token and version, and
//!   the one mapping of errors to pages.
//! - [`signin`]: OpenID Connect authorization code with PKCE against the API's identity provider.
//! - [`session`]: the encrypted session cookie and the CSRF tokens derived from it.
//! - [`pages`]: the templates (`templates/*.html`) and the filters they use.
//!
//! Sign-in needs `CONSOLE_ISSUER_URL` (the identity provider), `CONSOLE_CLIENT_ID` and
//! `CONSOLE_URL` (the console's public URL, for the redirect back); the session's key comes from
//! the Secrets Manager secret `CONSOLE_SESSION_SECRET_ARN`, read on first use and cached.

mod pages;
mod routes;
mod session;
mod signin;

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let console = routes::Console::from_env()?;
    lambda_http::run(routes::router(console)).await
}
