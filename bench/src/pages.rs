//! Figure 10, **the customers' pages** — the server time and the weight of what a customer's
//! browser loads: an order's page (opened by its signed link, as from its e-mail) and the lookup.
//! Each page is asked for back to back after a first request (the function warm, as a customer's
//! second page finds it); the time is the whole request through the local stack's gateway, the
//! weight the HTML's bytes (the stylesheet, fetched once and then kept, apart).

use std::time::Instant;

use oms_system_tests::{order_link, unique, Stack};
use serde::Serialize;

use crate::common::{ms, percentile, BoxError};

/// How many times each page is asked for.
const SAMPLES: usize = 25;

#[derive(Serialize, Default)]
pub struct PageFigure {
    p50_ms: f64,
    p99_ms: f64,
    html_bytes: usize,
}

#[derive(Serialize, Default)]
pub struct CustomerPages {
    order_page: PageFigure,
    lookup: PageFigure,
    stylesheet_bytes: usize,
}

/// Times `path` on the stack's API `SAMPLES` times with `cookie`.
async fn measure(
    http: &reqwest::Client,
    api: &str,
    path: &str,
    cookie: &str,
) -> Result<PageFigure, BoxError> {
    let ask = || {
        http.get(format!("{api}{path}"))
            .header("cookie", cookie)
            .send()
    };
    let first = ask().await?;
    if !first.status().is_success() {
        return Err(format!("{path}: {}", first.status()).into());
    }
    let html_bytes = first.bytes().await?.len();
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let answer = ask().await?;
        answer.bytes().await?;
        samples.push(ms(started.elapsed()));
    }
    Ok(PageFigure {
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        html_bytes,
    })
}

/// An order placed and paid for, its page opened by its signed link, then both pages timed.
pub async fn customer_pages(stack: &Stack) -> Result<CustomerPages, BoxError> {
    let sku = stack.create_sku("PAGES", 5).await;
    let customer = unique("pages");
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"]
        .as_str()
        .ok_or("an order id")?
        .to_owned();
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let opened = http
        .get(format!("{}{}", stack.api, order_link(&id, 600)))
        .send()
        .await?;
    let cookie = opened
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .ok_or("the link opened no visit")?
        .to_owned();
    let order_page = measure(&http, &stack.api, &format!("/shop/orders/{id}"), &cookie).await?;
    let lookup = measure(&http, &stack.api, "/shop/orders/find", "").await?;
    let stylesheet = http
        .get(format!("{}/shop/assets/shop.css", stack.api))
        .send()
        .await?
        .bytes()
        .await?;
    Ok(CustomerPages {
        order_page,
        lookup,
        stylesheet_bytes: stylesheet.len(),
    })
}
