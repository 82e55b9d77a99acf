//! # oms-system-tests: the system driven from the outside
//!
//! Integration tests of the DynamoDB adapters and end-to-end tests through the local stack's
//! HTTP API, over the real AWS wire protocols of the emulator. They need the stack that
//! `infra/local/test.sh` starts (or `infra/local/run.sh`); without it every test fails at once
//! with a message that says how to start it. None skips.
//!
//! The stack is found through `OMS_API_URL`, `OMS_EMULATOR_URL` and `OMS_STACK` (defaults: the
//! run command's ports and stack name). Tests share one stack and run in parallel, so each one
//! makes its own SKUs and customers with unique names and never depends on another's data.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use reqwest::StatusCode;

/// The local stack under test.
#[derive(Clone)]
pub struct Stack {
    pub api: String,
    pub emulator: String,
    pub stack: String,
    http: reqwest::Client,
    secret: String,
}

/// A response: status, headers and the JSON body (`Value::Null` if there was none).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    /// The body as sent (a PDF, say).
    pub raw: Vec<u8>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

impl Stack {
    /// Where the stack is, from `OMS_API_URL`, `OMS_EMULATOR_URL` and `OMS_STACK`.
    fn from_env() -> Stack {
        Stack {
            api: env_or("OMS_API_URL", "http://127.0.0.1:3000"),
            emulator: env_or("OMS_EMULATOR_URL", "http://127.0.0.1:4566"),
            stack: env_or("OMS_STACK", "oms-local"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
            secret: env_or("OMS_LOCAL_JWT_SECRET", "local-dev-secret"),
        }
    }

    /// Connects to the running stack, or panics with how to start it.
    pub async fn connect() -> Stack {
        let stack = Stack::from_env();
        let health = stack
            .http
            .get(format!("{}/_local/health", stack.api))
            .send()
            .await;
        match health {
            Ok(response) if response.status().is_success() => stack,
            other => panic!(
                "the local stack is not running at {} ({other:?}). These tests need it: run `infra/local/test.sh` \
                 (which starts it, runs every test and stops it), or start it with `infra/local/run.sh` and set \
                 OMS_API_URL / OMS_EMULATOR_URL if you changed its ports.",
                stack.api
            ),
        }
    }

    /// The emulator alone, for tests that need only its AWS APIs (the adapters' scratch tables):
    /// the stack's functions and HTTP API need not run. Panics, saying how to start it, if the
    /// emulator at `OMS_EMULATOR_URL` does not answer.
    pub async fn emulator_only() -> Stack {
        let stack = Stack::from_env();
        let health = stack
            .http
            .get(format!("{}/moto-api/", stack.emulator))
            .send()
            .await;
        match health {
            Ok(response) if response.status().is_success() => stack,
            other => panic!(
                "the emulator is not running at {} ({other:?}). Start the local stack (`infra/local/run.sh`), or \
                 the emulator alone (`python infra/local/moto_server.py -H 127.0.0.1 -p PORT` with moto installed) \
                 and set OMS_EMULATOR_URL.",
                stack.emulator
            ),
        }
    }

    /// A token the local authorizer accepts.
    pub fn token(&self, sub: &str, scope: Option<&str>) -> String {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            sub: &'a str,
            iss: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            scope: Option<&'a str>,
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub,
            iss: "oms-local",
            aud: "oms",
            iat: now,
            exp: now + 3600,
            scope,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("signing a test token")
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("the HTTP API answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a response body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            raw: bytes.to_vec(),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(reqwest::Method::GET, path, Some(token), &[], None)
            .await
    }

    /// Creates a SKU with `on_hand` units at 10.00 EUR, 500 g, as an administrator.
    pub async fn create_sku(&self, prefix: &str, on_hand: u32) -> String {
        let sku = unique(prefix).to_uppercase();
        self.create_product(&sku, &format!("Test {prefix}"), 1000, on_hand)
            .await;
        sku
    }

    /// Puts `sku` in the catalog as `name` at `unit_price` euro cents, `on_hand` units at the
    /// default location, as an administrator.
    pub async fn create_product(&self, sku: &str, name: &str, unit_price: i64, on_hand: u32) {
        let admin = self.token("staff-tests", Some("oms:admin"));
        let body = json!({"name": name, "unitPrice": {"amount": unit_price, "currency": "EUR"}, "weightGrams": 500, "onHand": on_hand});
        let reply = self.put(&format!("/inventory/{sku}"), &admin, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "creating {sku}: {:?}",
            reply.body
        );
    }

    /// Lets up to `limit` units of `sku` wait for stock (`BACKORDER`), as an administrator: its
    /// name, price and weight as they are.
    pub async fn sell_past_stock(&self, sku: &str, limit: u32) {
        let admin = self.token("staff-tests", Some("oms:admin"));
        let path = format!("/inventory/{sku}");
        let product = self.get(&path, &admin).await.body;
        let body = json!({"name": product["name"], "unitPrice": product["unitPrice"],
            "weightGrams": product["weightGrams"], "selling": {"policy": "BACKORDER", "limit": limit}});
        let reply = self.put(&path, &admin, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "selling {sku} past its stock: {:?}",
            reply.body
        );
    }

    /// Receives `units` of `sku` at `location`, as an administrator.
    pub async fn receive_at(&self, sku: &str, location: &str, units: u32) {
        let admin = self.token("staff-tests", Some("oms:admin"));
        let receipt = json!({"reason": "RECEIPT", "delta": units, "location": location});
        let path = format!("/inventory/{sku}/adjustments");
        let reply = self.post(&path, &admin, &[], receipt).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "receiving {sku} at {location}: {:?}",
            reply.body
        );
    }

    /// `(available, reserved, onHand)` of a SKU.
    pub async fn stock(&self, sku: &str) -> (u64, u64, u64) {
        let reply = self
            .get(
                &format!("/inventory/{sku}"),
                &self.token("stock-reader", None),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let n = |k: &str| reply.body[k].as_u64().expect("a counter");
        (n("available"), n("reserved"), n("onHand"))
    }

    /// Places an order for `lines` (`(sku, quantity)`) as `customer` with `key`, and pays for it
    /// as a storefront's checkout does: once the order is accepted, the PSP authorizes its total.
    pub async fn place_order(&self, customer: &str, key: &str, lines: &[(&str, u32)]) -> Reply {
        let placed = self.place_unpaid_order(customer, key, lines).await;
        // A replay of the same key is the same order, paid for by its first answer's checkout.
        if placed.status == StatusCode::ACCEPTED
            && !placed.headers.contains_key("idempotent-replayed")
        {
            self.authorize(&placed.body).await;
        }
        placed
    }

    /// Places an order and pays for it once it is decided, so its history reads in one order:
    /// placed, reserved (or rejected), then the authorization.
    pub async fn place_then_pay(&self, customer: &str, key: &str, lines: &[(&str, u32)]) -> Reply {
        let placed = self.place_unpaid_order(customer, key, lines).await;
        assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
        let id = placed.body["orderId"]
            .as_str()
            .expect("an order id")
            .to_owned();
        self.wait_decided(customer, &id).await;
        self.authorize(&placed.body).await;
        placed
    }

    /// Places an order for `lines` as `customer` with `key`, and pays nothing.
    pub async fn place_unpaid_order(
        &self,
        customer: &str,
        key: &str,
        lines: &[(&str, u32)],
    ) -> Reply {
        let body = order_body(lines);
        self.call(
            reqwest::Method::POST,
            "/orders",
            Some(&self.token(customer, None)),
            &[("idempotency-key", key)],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// Waits until the order leaves `PENDING` and returns it.
    pub async fn wait_decided(&self, customer: &str, order_id: &str) -> Value {
        let token = self.token(customer, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = self.get(&format!("/orders/{order_id}"), &token).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            if reply.body["status"] != "PENDING" {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "order {order_id} stayed PENDING for 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The AWS SDK configuration for the emulator.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.emulator)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "tests",
            ))
            .load()
            .await
    }

    /// The physical name the local stack gives a template resource.
    pub fn resource(&self, logical_id: &str) -> String {
        format!("{}-{logical_id}", self.stack)
    }
}

/// A valid order body for `lines`.
/// A parcel's measures, as the pack step's body.
pub fn parcel() -> Value {
    json!({"weightGrams": 1600, "lengthCm": 30, "widthCm": 20, "heightCm": 10})
}

/// A DHL parcel's tracking, as the ship step's body.
pub fn tracking(number: &str) -> Value {
    json!({"carrier": "DHL", "trackingNumber": number, "trackingUrl": format!("https://www.dhl.com/track?id={number}")})
}

/// The text `field` of each element of the JSON array `list`.
pub fn texts<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|element| element[field].as_str().expect("a text"))
        .collect()
}

pub fn order_body(lines: &[(&str, u32)]) -> Value {
    json!({
        "lines": lines.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect::<Vec<_>>(),
        "shippingMethod": "STANDARD",
        "shippingAddress": {"name": "Test Customer", "line1": "1 Test Street", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        "contact": {"email": "test@example.com"}
    })
}

impl Stack {
    /// A new, empty table with the orders table's keys and indexes as the template declares them,
    /// but no stream: adapter tests write to it without the running system reacting to their
    /// writes.
    pub async fn scratch_table(&self) -> String {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType,
        };
        let path = format!("{}/../infra/template.yaml", env!("CARGO_MANIFEST_DIR"));
        let template: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let table = &template["Resources"]["OrdersTable"]["Properties"];
        let keys = |schema: &serde_yaml::Value| -> Vec<KeySchemaElement> {
            schema
                .as_sequence()
                .unwrap()
                .iter()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(k["AttributeName"].as_str().unwrap())
                        .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                        .build()
                        .unwrap()
                })
                .collect()
        };
        let name = unique("scratch");
        let mut request = aws_sdk_dynamodb::Client::new(&self.sdk().await)
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(keys(&table["KeySchema"])));
        for definition in table["AttributeDefinitions"].as_sequence().unwrap() {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(definition["AttributeName"].as_str().unwrap())
                    .attribute_type(ScalarAttributeType::from(
                        definition["AttributeType"].as_str().unwrap(),
                    ))
                    .build()
                    .unwrap(),
            );
        }
        for index in table["GlobalSecondaryIndexes"].as_sequence().unwrap() {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index["IndexName"].as_str().unwrap())
                    .set_key_schema(Some(keys(&index["KeySchema"])))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(
                                index["Projection"]["ProjectionType"].as_str().unwrap(),
                            ))
                            .build(),
                    )
                    .build()
                    .unwrap(),
            );
        }
        request.send().await.expect("creating a scratch table");
        name
    }
}

impl Stack {
    /// Waits until the order reaches `status` and returns it.
    pub async fn wait_status(&self, customer: &str, order_id: &str, status: &str) -> Value {
        let token = self.token(customer, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = self.get(&format!("/orders/{order_id}"), &token).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            if reply.body["status"] == status {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "order {order_id} is {} after 60 s, not {status}",
                reply.body["status"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts a carrier webhook signed with the local carrier secret (or `signature` as given).
    pub async fn carrier_event(&self, body: &Value, signature: Option<&str>) -> Reply {
        use hmac::{Hmac, Mac};
        let bytes = body.to_string().into_bytes();
        let secret = env_or("OMS_LOCAL_CARRIER_SECRET", "local-carrier-secret");
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(&bytes);
        let signed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let header = signature.unwrap_or(&signed);
        self.call(
            reqwest::Method::POST,
            "/carrier/events",
            None,
            &[("x-carrier-signature", header)],
            Some(bytes),
        )
        .await
    }
}

/// The PSP's webhook secret in the local stack (its value for the template's
/// `PspWebhookSecret`).
pub fn psp_secret() -> String {
    env_or("OMS_LOCAL_PSP_SECRET", "local-psp-secret-0123456789")
}

/// Stripe's webhook secret in the local stack (its value for the template's
/// `StripeWebhookSecret`).
pub fn stripe_secret() -> String {
    env_or("OMS_LOCAL_STRIPE_SECRET", "whsec_local_stripe_0123456789")
}

/// The key the customers' order links are signed with in the local stack (its value for the
/// template's `ShopSecret`).
pub fn shop_secret() -> String {
    env_or(
        "OMS_LOCAL_SHOP_SECRET",
        "local-shop-link-key-0123456789abcdef0123456789abcdef",
    )
}

/// The signed link to the page of order `id`, valid for `seconds` (negative: expired), as the
/// messages about it carry.
pub fn order_link(id: &str, seconds: i64) -> String {
    let links = oms_adapters::web::OrderLinks::from_secret(shop_secret().as_bytes())
        .expect("the local shop secret");
    let expires = chrono::Utc::now().timestamp() + seconds;
    format!("/shop/orders/{id}?t={}", links.token(id, expires))
}

/// The secret the rotation test rotates the PSP's secret to. Every PSP event the tests send is
/// signed with both, as a PSP signs while a secret is rotated, so the rotation breaks no test
/// running beside it.
pub const ROTATED_PSP_SECRET: &str = "rotated-psp-secret-9876543210";

/// A PSP transaction event body (`kind` as the webhook names it) for `order_id` over `amount`.
pub fn psp_body(kind: &str, order_id: &str, amount: &Value, refund_id: Option<&str>) -> Value {
    let mut body = json!({
        "id": unique("evt"),
        "type": kind,
        "orderId": order_id,
        "amount": amount,
        "occurredAt": chrono::Utc::now().to_rfc3339(),
        "pspReference": format!("pi_{order_id}"),
    });
    if let Some(refund) = refund_id {
        body["refundId"] = refund.into();
    }
    body
}

impl Stack {
    /// Where the stack's Stripe emulator answers: `OMS_STRIPE_URL`, else the port after the
    /// AWS emulator's (where `oms-local up` starts it).
    pub fn stripe_url(&self) -> String {
        if let Ok(url) = std::env::var("OMS_STRIPE_URL") {
            return url;
        }
        let (host, port) = self
            .emulator
            .rsplit_once(':')
            .expect("the emulator's URL names its port");
        let port: u16 = port.trim_end_matches('/').parse().expect("a port");
        format!("{host}:{}", port + 1)
    }

    /// Calls the Stripe emulator's API as a storefront's server or Stripe.js would: a form
    /// body, a test-mode secret key, and an `Idempotency-Key` if given.
    pub async fn stripe_api(&self, path: &str, form: &[(&str, &str)], key: Option<&str>) -> Value {
        let (status, body) = self.stripe_api_answer(path, form, key).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// As [`Self::stripe_api`], answering Stripe's status and body whatever they are (a
    /// declined card's 402).
    pub async fn stripe_api_answer(
        &self,
        path: &str,
        form: &[(&str, &str)],
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.stripe_url()))
            .basic_auth("sk_test_local_storefront", Some(""))
            .form(form);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("the Stripe emulator answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        (status, body)
    }

    /// From now on, every request to the API whose body holds `marker` is lost on the way (the
    /// local stack's loss switch, `POST /_local/faults/lose`).
    pub async fn lose_requests_holding(&self, marker: &str) {
        let response = self
            .http
            .post(format!("{}/_local/faults/lose", self.api))
            .body(marker.to_owned())
            .send()
            .await
            .expect("the local stack answers");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// The local stack's fault figures (`GET /_local/faults`).
    pub async fn faults(&self) -> Value {
        self.http
            .get(format!("{}/_local/faults", self.api))
            .send()
            .await
            .expect("the local stack answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Reads an object from the Stripe emulator's API (`/v1/payment_intents/pi_…`).
    pub async fn stripe_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.stripe_url()))
            .basic_auth("sk_test_local_storefront", Some(""))
            .send()
            .await
            .expect("the Stripe emulator answers");
        response.json().await.expect("a JSON answer")
    }

    /// Posts `body` to Stripe's webhook as Stripe does: `Stripe-Signature` now, under `secret`.
    pub async fn stripe_event_signed(&self, body: &Value, secret: &str) -> Reply {
        let bytes = body.to_string().into_bytes();
        let header = oms_adapters::signing::signature_header(
            &[secret.as_bytes()],
            chrono::Utc::now().timestamp(),
            &bytes,
        );
        self.call(
            reqwest::Method::POST,
            "/payments/stripe/events",
            None,
            &[("stripe-signature", &header)],
            Some(bytes),
        )
        .await
    }

    /// Posts `body` to Stripe's webhook signed with the stack's Stripe secret.
    pub async fn stripe_event(&self, body: &Value) -> Reply {
        self.stripe_event_signed(body, &stripe_secret()).await
    }

    /// Posts `body` to the PSP webhook signed at `signed_at` (unix seconds) under each of
    /// `secrets`.
    pub async fn psp_event_signed(&self, body: &Value, secrets: &[&str], signed_at: i64) -> Reply {
        let bytes = body.to_string().into_bytes();
        let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        let header = oms_adapters::signing::signature_header(&secrets, signed_at, &bytes);
        self.call(
            reqwest::Method::POST,
            "/payments/events",
            None,
            &[(oms_adapters::signing::PSP_SIGNATURE_HEADER, &header)],
            Some(bytes),
        )
        .await
    }

    /// Posts `body` to the PSP webhook, signed now as a PSP mid-rotation signs.
    pub async fn psp_event(&self, body: &Value) -> Reply {
        let secret = psp_secret();
        self.psp_event_signed(
            body,
            &[&secret, ROTATED_PSP_SECRET],
            chrono::Utc::now().timestamp(),
        )
        .await
    }

    /// The PSP says `kind` about `order` (an order's JSON as the API shows it) over its total,
    /// and is answered 200.
    pub async fn psp(&self, kind: &str, order: &Value) -> Reply {
        let id = order["orderId"].as_str().expect("an order id");
        let reply = self
            .psp_event(&psp_body(kind, id, &order["totals"]["total"], None))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{kind}: {:?}", reply.body);
        reply
    }

    /// The PSP authorizes the order's total.
    pub async fn authorize(&self, order: &Value) -> Reply {
        self.psp("authorization.succeeded", order).await
    }

    /// The order as staff see it.
    /// The customer's visit to the order `id`: its signed link opened as a browser opens it,
    /// answered with the visit's cookie (`name=value`) and a redirect to the order's page.
    pub async fn shop_visit(&self, id: &str) -> String {
        let opened = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{}", self.api, order_link(id, 600)))
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status(), StatusCode::SEE_OTHER);
        opened.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    pub async fn order_as_staff(&self, id: &str) -> Value {
        let reply = self
            .get(
                &format!("/orders/{id}"),
                &self.token("staff-tests", Some("oms:admin")),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body
    }

    /// Runs one of the template's scheduled functions now, through the local stack, and returns
    /// its answer.
    pub async fn run_schedule(&self, function_logical_id: &str) -> Reply {
        self.call(
            reqwest::Method::POST,
            &format!("/_local/schedules/{function_logical_id}"),
            None,
            &[],
            None,
        )
        .await
    }
}

impl Stack {
    /// A POST with a JSON body as `token`'s holder.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Reply {
        self.call(
            reqwest::Method::POST,
            path,
            Some(token),
            headers,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// A PUT with a JSON body as `token`'s holder.
    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.call(
            reqwest::Method::PUT,
            path,
            Some(token),
            &[],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// A warehouse step (`/fulfillments/{id}/pick`, `pack` or `ship`) as `token`'s holder, with
    /// `if_match` as `If-Match` if given, and the step's JSON body if it has one.
    pub async fn warehouse_post(
        &self,
        path: &str,
        token: &str,
        if_match: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let headers: Vec<(&str, &str)> =
            if_match.map(|m| vec![("if-match", m)]).unwrap_or_default();
        self.call(
            reqwest::Method::POST,
            path,
            Some(token),
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// Picks, packs and ships an order in the warehouse over HTTP, each step with the ETag the
    /// previous one returned. Returns the tracking number.
    pub async fn ship_through_warehouse(&self, id: &str) -> String {
        let warehouse = self.token("warehouse-tests", Some("oms:warehouse"));
        let etag = self.shipment_etag(id, &warehouse).await;
        self.pick_pack_ship(id, Some(etag)).await
    }

    /// The ETag of order `id`'s shipment, as `token`'s holder reads it.
    pub async fn shipment_etag(&self, id: &str, token: &str) -> String {
        self.get(&format!("/fulfillments/{id}"), token)
            .await
            .headers["etag"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Places an order of `lines` for a new customer and waits until it is in the warehouse.
    /// Returns the customer, the order's id and the order as placed.
    pub async fn order_in_warehouse(&self, lines: &[(&str, u32)]) -> (String, String, Value) {
        let customer = unique("customer");
        let placed = self.place_order(&customer, &unique("key"), lines).await;
        assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
        let id = placed.body["orderId"].as_str().unwrap().to_owned();
        self.wait_status(&customer, &id, "FULFILLING").await;
        (customer, id, placed.body)
    }

    /// Picks, packs and ships an order in the warehouse over HTTP: the pick with `etag` as
    /// `If-Match` if given (picking does not need one), each later step with the ETag the one
    /// before returned. Returns the tracking number.
    pub async fn pick_pack_ship(&self, id: &str, mut etag: Option<String>) -> String {
        let warehouse = self.token("warehouse-tests", Some("oms:warehouse"));
        let number = unique("JJD").to_uppercase();
        for (step, body) in [
            ("pick", None),
            ("pack", Some(parcel())),
            ("ship", Some(tracking(&number))),
        ] {
            let path = format!("/fulfillments/{id}/{step}");
            let reply = self
                .warehouse_post(&path, &warehouse, etag.as_deref(), body.as_ref())
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{step}: {:?}", reply.body);
            etag = Some(reply.headers["etag"].to_str().unwrap().to_owned());
        }
        number
    }

    /// Places an order of `lines` for a new customer and drives it through the warehouse (pick,
    /// pack, ship), the PSP (which confirms the capture the shipment asked for) and the carrier
    /// (delivered at `delivered_at`, RFC 3339) over HTTP. Returns the customer and the delivered
    /// order.
    pub async fn delivered_order(
        &self,
        lines: &[(&str, u32)],
        delivered_at: &str,
    ) -> (String, Value) {
        let (customer, id, placed) = self.order_in_warehouse(lines).await;
        let number = self.ship_through_warehouse(&id).await;
        self.psp("capture.succeeded", &placed).await;
        let order = self.deliver(&customer, &id, &number, delivered_at).await;
        (customer, order)
    }

    /// The carrier reports the parcel `number` of order `id` delivered at `delivered_at` (RFC
    /// 3339); answers the order once its customer sees it delivered.
    pub async fn deliver(
        &self,
        customer: &str,
        id: &str,
        number: &str,
        delivered_at: &str,
    ) -> Value {
        let delivered = json!({"eventId": format!("{number}-delivered"), "shipmentReference": id, "trackingNumber": number, "status": "DELIVERED", "occurredAt": delivered_at});
        let reply = self.carrier_event(&delivered, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        self.wait_status(customer, id, "DELIVERED").await
    }

    /// The customer returns one unit of `sku` of their delivered order `id` (damaged), staff
    /// approve it if the policy did not, and the warehouse receives it to restock. Answers the
    /// receipt's reply.
    pub async fn return_one_unit(&self, customer: &str, id: &str, sku: &str) -> Reply {
        let rma = self
            .post(
                &format!("/orders/{id}/returns"),
                &self.token(customer, None),
                &[("idempotency-key", &unique("rma"))],
                json!({"lines": [{"sku": sku, "quantity": 1, "reason": "DAMAGED"}]}),
            )
            .await;
        assert_eq!(rma.status, StatusCode::CREATED, "{:?}", rma.body);
        let return_id = rma.body["returnId"]
            .as_str()
            .expect("a return id")
            .to_owned();
        if rma.body["status"] == "PENDING_APPROVAL" {
            let admin = self.token("staff-returns", Some("oms:admin"));
            let approved = self
                .post(
                    &format!("/returns/{return_id}/approve"),
                    &admin,
                    &[],
                    json!({}),
                )
                .await;
            assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
        }
        let received = self
            .post(
                &format!("/returns/{return_id}/receive"),
                &self.token("dock", Some("oms:warehouse")),
                &[],
                json!({"lines": [{"sku": sku, "quantity": 1, "disposition": "RESTOCK"}]}),
            )
            .await;
        assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
        received
    }
}

/// One request the emulator received, as its request recorder kept it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The app name in the request's user agent: the function that made it (every function's
    /// SDK requests carry its name, see `shared/adapters/src/config.rs`) or a tool's own name;
    /// `None` for the local stack's event sources and the tests' clients.
    pub app: Option<String>,
    /// The action as IAM names it: `dynamodb:GetItem`, `sqs:ReceiveMessage`, `sns:Publish`.
    pub action: String,
    pub body: String,
}

impl Stack {
    fn recorder(&self, step: &str) -> String {
        format!("{}/moto-api/recorder/{step}", self.emulator)
    }

    /// Starts the emulator's request recorder afresh. It records everything the emulator
    /// receives, so one recording at a time per stack.
    pub async fn start_recording(&self) {
        for step in ["reset-recording", "start-recording"] {
            self.http
                .post(self.recorder(step))
                .send()
                .await
                .expect("the emulator's recorder answers");
        }
    }

    /// Stops the recorder and returns what it kept.
    pub async fn stop_recording(&self) -> Vec<RecordedRequest> {
        self.http
            .post(self.recorder("stop-recording"))
            .send()
            .await
            .expect("the emulator's recorder answers");
        let recording = self
            .http
            .get(self.recorder("download-recording"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the recording")
            .text()
            .await
            .expect("the recording's text");
        recording
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let entry: Value = serde_json::from_str(line).expect("a recorded request");
                let header = |name: &str| {
                    entry["headers"]
                        .as_object()
                        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                        .and_then(|(_, v)| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                let body = if entry["body_encoded"] == true {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(entry["body"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    entry["body"].as_str().unwrap_or_default().to_owned()
                };
                let agents = format!("{} {}", header("x-amz-user-agent"), header("user-agent"));
                let app = agents
                    .split_whitespace()
                    .find_map(|part| part.strip_prefix("app/"))
                    .map(str::to_owned);
                let target = header("x-amz-target");
                let action = match target.split_once('.') {
                    Some((service, action)) if service.starts_with("DynamoDB") => {
                        format!("dynamodb:{action}")
                    }
                    Some(("AmazonSQS", action)) => format!("sqs:{action}"),
                    Some(("secretsmanager", action)) => format!("secretsmanager:{action}"),
                    // SNS speaks the query protocol: the action is a form field.
                    _ => body
                        .split('&')
                        .find_map(|field| field.strip_prefix("Action="))
                        .map(|action| format!("sns:{action}"))
                        .unwrap_or_else(|| format!("unknown:{}", entry["url"])),
                };
                RecordedRequest { app, action, body }
            })
            .collect()
    }
}

/// `infra/template.yaml`, parsed (intrinsic functions stay tagged values).
pub fn template() -> serde_yaml::Value {
    let path = format!("{}/../infra/template.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("the template parses")
}

/// Every function's whole execution role as the SAM transform gives it, which is what AWS
/// enforces: by logical id, what `infra/local/sam_roles.py` prints (the function's binary,
/// `function_name`, `event_sources`, its role's `managed_policy_arns` and every inline statement
/// in `statements`, `Action` and `Resource` always lists, intrinsics as the template writes them
/// in their JSON form). The script transforms `infra/template.yaml` offline with the SAM
/// translator of `.tools/venv` (which `infra/local/bootstrap.sh` installs). Run once per test
/// binary.
pub fn execution_roles() -> Value {
    static ROLES: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    ROLES
        .get_or_init(|| {
            let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
            let python = format!("{root}/.tools/venv/bin/python");
            let output = std::process::Command::new(&python)
                .arg(format!("{root}/infra/local/sam_roles.py"))
                .arg(format!("{root}/infra/template.yaml"))
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "{python}: {e}. The SAM translator reads the roles: install it with \
                         `infra/local/bootstrap.sh` (or run `infra/local/test.sh`)."
                    )
                });
            assert!(
                output.status.success(),
                "infra/local/sam_roles.py could not transform the template: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice(&output.stdout).expect("sam_roles.py prints JSON")
        })
        .clone()
}

/// The binaries of every function the template declares (`AWS::Serverless::Function`), in the
/// template's order.
pub fn functions() -> Vec<String> {
    binaries(|r| r["Type"] == "AWS::Serverless::Function")
}

/// The binaries of the functions the template triggers with events of `kind` (`SQS`,
/// `DynamoDB`, `HttpApi`).
pub fn functions_triggered_by(kind: &str) -> std::collections::BTreeSet<String> {
    binaries(|r| {
        r["Properties"]["Events"]
            .as_mapping()
            .is_some_and(|events| events.values().any(|e| e["Type"] == kind))
    })
    .into_iter()
    .collect()
}

/// The binaries (`Metadata.BuildProperties.Binary`) of the template's resources that `keep`
/// keeps, in the template's order.
fn binaries(keep: impl Fn(&serde_yaml::Value) -> bool) -> Vec<String> {
    template()["Resources"]
        .as_mapping()
        .expect("resources")
        .values()
        .filter(|r| keep(r))
        .filter_map(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str())
        .map(str::to_owned)
        .collect()
}

/// What stock reservation decided for an order: `RESERVED` or `REJECTED` from its timeline, or
/// `PENDING` if it has not decided yet. Reserved orders move on to fulfillment at once, so an
/// order's current status says less than its history.
pub fn reservation(order: &Value) -> &'static str {
    let history = order["timeline"].as_array().cloned().unwrap_or_default();
    let reached = |status: &str| history.iter().any(|t| t["status"] == status);
    if reached("RESERVED") {
        "RESERVED"
    } else if reached("REJECTED") {
        "REJECTED"
    } else {
        "PENDING"
    }
}

/// A queue of this test's own, subscribed (raw) to one of the stack's topics, optionally with a
/// filter policy, from which the test reads what the system published.
pub struct Probe {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Probe {
    /// The e-mails sent to `customer`, from now on.
    pub async fn customer_email(stack: &Stack, customer: &str) -> Probe {
        let only = json!({"customerId": [customer], "channel": ["email"]});
        Probe::subscribe(stack, "CustomerNotificationsTopic", Some(only)).await
    }

    pub async fn subscribe(
        stack: &Stack,
        topic_logical_id: &str,
        filter_policy: Option<Value>,
    ) -> Probe {
        let sdk = stack.sdk().await;
        let (sns, sqs) = (
            aws_sdk_sns::Client::new(&sdk),
            aws_sdk_sqs::Client::new(&sdk),
        );
        let name = unique("probe");
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("a probe queue")
            .queue_url
            .expect("a URL");
        let mut subscribe = sns
            .subscribe()
            .topic_arn(format!(
                "arn:aws:sns:us-east-1:123456789012:{}",
                stack.resource(topic_logical_id)
            ))
            .protocol("sqs")
            .endpoint(format!("arn:aws:sqs:us-east-1:123456789012:{name}"))
            .attributes("RawMessageDelivery", "true");
        if let Some(policy) = filter_policy {
            subscribe = subscribe.attributes("FilterPolicy", policy.to_string());
        }
        subscribe.send().await.expect("subscribing the probe");
        Probe { sqs, url }
    }

    /// Reads messages until `done` says the collection is complete, or `timeout` passes; returns
    /// the bodies (parsed) with their message attributes, in the order received. The attributes
    /// also hold `SentTimestamp`: when the message reached the probe (epoch milliseconds), which
    /// times a message without the probe's polling in it.
    pub async fn collect(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[(Value, std::collections::HashMap<String, String>)]) -> bool,
    ) -> Vec<(Value, std::collections::HashMap<String, String>)> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + timeout;
        while !done(&seen) && Instant::now() < deadline {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
                )
                .send()
                .await
                .expect("reading the probe");
            for message in output.messages.unwrap_or_default() {
                let mut attributes: std::collections::HashMap<String, String> = message
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (k.clone(), v.string_value().unwrap_or_default().to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(sent) = message.attributes().and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
                }) {
                    attributes.insert("SentTimestamp".to_owned(), sent.clone());
                }
                seen.push((
                    serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null),
                    attributes,
                ));
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("deleting");
                }
            }
        }
        seen
    }
}

/// A staff member signed in to the console over plain HTTP, as a browser would be: its
/// session cookie and the CSRF token its pages carry. (The browser tests drive Chromium; this is
/// for tests that only need the console's requests, such as the least-privilege scenario.)
pub struct ConsoleSession {
    http: reqwest::Client,
    api: String,
    cookie: String,
    pub csrf: String,
}

/// The `name=value` of a response's `Set-Cookie` for `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect, not {}", response.status()))
        .to_owned()
}

impl Stack {
    /// Signs `subject` in to the console at the local stack's development issuer, in `role`
    /// (`admin`, `warehouse` or `customer`): the code flow with PKCE, redirect by redirect.
    pub async fn console_session(&self, subject: &str, role: &str) -> ConsoleSession {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let start = http
            .get(format!("{}/console/sign-in", self.api))
            .send()
            .await
            .expect("the console's sign-in");
        let sign_in_cookie = set_cookie(&start, "oms_console_sign_in").expect("the sign-in cookie");
        let authorize = location(&start);
        let query = authorize
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        let mut form: Vec<(String, String)> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        form.push(("subject".into(), subject.into()));
        form.push(("role".into(), role.into()));
        let authorized = http
            .post(format!("{}/oidc/authorize", self.api))
            .form(&form)
            .send()
            .await
            .expect("the development sign-in");
        let callback = location(&authorized);
        let back = http
            .get(&callback)
            .header(reqwest::header::COOKIE, &sign_in_cookie)
            .send()
            .await
            .expect("the console's callback");
        let cookie = set_cookie(&back, "oms_console").expect("the session cookie");
        let home = location(&back);
        let page = http
            .get(format!("{}{home}", self.api))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .expect("the console's first screen")
            .text()
            .await
            .expect("a page");
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        ConsoleSession {
            http,
            api: self.api.clone(),
            cookie,
            csrf,
        }
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ConsoleSession {
    /// A console page: its status and HTML.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .expect("a console page");
        (response.status(), response.text().await.unwrap_or_default())
    }

    /// A console form, posted from the console's own origin with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .header(reqwest::header::COOKIE, &self.cookie)
            .header(reqwest::header::ORIGIN, &self.api)
            .form(&form)
            .send()
            .await
            .expect("a console form");
        let status = response.status();
        let answer = match response.headers().get(reqwest::header::LOCATION) {
            Some(to) => to.to_str().unwrap_or_default().to_owned(),
            None => response.text().await.unwrap_or_default(),
        };
        (status, answer)
    }
}
/// Waits until `check` holds for the order as staff see it, and returns it.
pub async fn wait_for(
    stack: &Stack,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let order = stack.order_as_staff(id).await;
        if check(&order) {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "order {id}: {what} not reached in 180 s: {order}"
        );
        // Half a second: fifty of these run at once in the race test, beside the whole suite.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Confirms the PaymentIntent `intent_id` at the Stripe emulator with the test card 4242…, as
/// Stripe.js does in the customer's browser, and answers the intent as confirmed.
pub async fn pay_at_stripe(stack: &Stack, intent_id: &str) -> Value {
    let (status, confirmed) = pay_at_stripe_with(stack, intent_id, "4242424242424242").await;
    assert!(status.is_success(), "{status} {confirmed}");
    confirmed
}

/// Confirms the PaymentIntent `intent_id` at the Stripe emulator with the test card `number`;
/// answers Stripe's status and body (a declined card's 402 among them).
pub async fn pay_at_stripe_with(
    stack: &Stack,
    intent_id: &str,
    number: &str,
) -> (StatusCode, Value) {
    let card = stack
        .stripe_api(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", number),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2030"),
                ("card[cvc]", "123"),
            ],
            None,
        )
        .await;
    let path = format!("/v1/payment_intents/{intent_id}");
    stack
        .stripe_api(
            &path,
            &[("payment_method", card["id"].as_str().unwrap())],
            None,
        )
        .await;
    stack
        .stripe_api_answer(&format!("{path}/confirm"), &[], None)
        .await
}

/// Opens the Stripe payment of the order `id` as its customer, and answers the PaymentIntent's
/// id.
pub async fn open_at_stripe(stack: &Stack, customer: &str, id: &str) -> String {
    let opened = stack
        .post(
            &format!("/orders/{id}/payment-intent"),
            &stack.token(customer, None),
            &[],
            json!(null),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{:?}", opened.body);
    opened.body["paymentIntentId"].as_str().unwrap().to_owned()
}

/// The version an order view answers, as an `If-Match` value.
pub fn if_match(order: &Value) -> String {
    format!("\"v{}\"", order["version"])
}
