//! The HTTP handler: the caller's own notification preferences.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use oms_adapters::http::{
    caller, json_body, json_response, respond, route_key, unknown_route, ApiError,
};
use oms_domain::app::notify;
use oms_domain::notifications::Preferences;
use oms_domain::ports::NotificationStore;

/// What the function needs, built once per cold start: the store.
pub use oms_adapters::app::StoreApp as App;

#[tracing::instrument(skip_all)]
pub async fn handle<S: NotificationStore>(
    app: &App<S>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let result = match route_key(&request) {
        Some("GET /customers/me/notification-preferences") => get(app, &request).await,
        Some("PUT /customers/me/notification-preferences") => put(app, &request).await,
        _ => Err(unknown_route(&request)),
    };
    Ok(respond(result))
}

async fn get<S: NotificationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let preferences = notify::preferences(&app.store, &caller.customer_id).await?;
    Ok(json_response(StatusCode::OK, &preferences))
}

async fn put<S: NotificationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let preferences = Preferences::parse(&json_body(request)?).map_err(ApiError::Invalid)?;
    app.store
        .save_preferences(&caller.customer_id, &preferences, chrono::Utc::now())
        .await?;
    tracing::info!(
        email = preferences.email,
        sms = preferences.sms,
        webhook = preferences.webhook,
        "preferences saved"
    );
    Ok(json_response(StatusCode::OK, &preferences))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::memory::InMemoryStore;

    fn event(name: &str) -> Request {
        let json = oms_domain::fixtures::event_text(&format!("customer-api/{name}.json"));
        lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("customer-api/{name}: {e}"))
    }

    async fn call(app: &App<InMemoryStore>, name: &str) -> (u16, serde_json::Value) {
        let response = handle(app, event(name)).await.unwrap();
        (
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_customer_chooses_their_channels() {
        let app = App::<InMemoryStore>::default();
        let (status, body) = call(&app, "get-preferences").await;
        assert_eq!(
            (status, body),
            (
                200,
                serde_json::json!({"email": true, "sms": true, "webhook": false})
            )
        );
        let (status, _) = call(&app, "put-preferences").await;
        assert_eq!(status, 200);
        let (_, body) = call(&app, "get-preferences").await;
        assert_eq!(
            body,
            serde_json::json!({"email": true, "sms": false, "webhook": true})
        );
        let (status, body) = call(&app, "put-preferences-invalid").await;
        assert_eq!(
            (status, body["errors"][0]["field"].as_str()),
            (422, Some("sms"))
        );
    }
}
