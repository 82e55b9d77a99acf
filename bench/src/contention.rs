//! Figure 6, **contention** — many buyers for one SKU: reservations per second, rejections,
//! exactness.

use std::time::Instant;

use oms_system_tests::{unique, Stack};

use crate::common::BoxError;

#[derive(serde::Serialize)]
pub struct Contention {
    buyers: usize,
    stock: u64,
    reserved: usize,
    rejected: usize,
    seconds_to_decide_all: f64,
    reservations_per_second: f64,
    sold_exactly_the_stock: bool,
}

pub async fn contention(
    stack: &Stack,
    buyers: usize,
    stock_units: u32,
) -> Result<Contention, BoxError> {
    let sku = stack.create_sku("HOTSKU", stock_units).await;
    let started = Instant::now();
    let names: Vec<String> = (0..buyers).map(|_| unique("buyer")).collect();
    let replies = futures::future::join_all(names.iter().map(|buyer| {
        let (stack, sku) = (stack.clone(), sku.clone());
        async move { stack.place_order(buyer, &unique("key"), &[(&sku, 1)]).await }
    }))
    .await;
    let mut reserved = 0;
    let mut rejected = 0;
    for (buyer, reply) in names.iter().zip(replies) {
        let order = stack
            .wait_decided(buyer, reply.body["orderId"].as_str().ok_or("no id")?)
            .await;
        match oms_system_tests::reservation(&order) {
            "RESERVED" => reserved += 1,
            _ => rejected += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (available, held, on_hand) = stack.stock(&sku).await;
    Ok(Contention {
        buyers,
        stock: u64::from(stock_units),
        reserved,
        rejected,
        seconds_to_decide_all: seconds,
        reservations_per_second: reserved as f64 / seconds,
        sold_exactly_the_stock: reserved as u64 == u64::from(stock_units)
            && available == 0
            && held == on_hand,
    })
}
