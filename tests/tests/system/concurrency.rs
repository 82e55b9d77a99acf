//! Racing buyers: stock is never oversold and no counter goes negative.

use std::collections::HashMap;

use oms_system_tests::{reservation, unique, Stack, StatusCode};

#[tokio::test]
async fn a_hundred_buyers_race_for_thirty_units() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("HOT", 30).await;
    let buyers: Vec<String> = (0..100).map(|_| unique("buyer")).collect();
    let replies = futures::future::join_all(buyers.iter().map(|buyer| {
        let (stack, sku) = (&stack, &sku);
        async move { stack.place_order(buyer, &unique("key"), &[(sku, 1)]).await }
    }))
    .await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for (buyer, reply) in buyers.iter().zip(replies) {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let order = stack
            .wait_decided(buyer, reply.body["orderId"].as_str().unwrap())
            .await;
        *outcomes.entry(reservation(&order).to_owned()).or_default() += 1;
    }
    assert_eq!(outcomes.get("RESERVED"), Some(&30), "{outcomes:?}");
    assert_eq!(outcomes.get("REJECTED"), Some(&70), "{outcomes:?}");
    assert_eq!(stack.stock(&sku).await, (0, 30, 30));
}

#[tokio::test]
async fn overlapping_multi_line_orders_race_and_the_counters_add_up() {
    let stack = Stack::connect().await;
    let skus = [
        stack.create_sku("RACE-A", 12).await,
        stack.create_sku("RACE-B", 12).await,
        stack.create_sku("RACE-C", 12).await,
    ];
    // Every order takes two of the three SKUs, in both orders, so transactions cross.
    let shapes: Vec<Vec<(&str, u32)>> = (0..45)
        .map(|i| {
            let (a, b) = [(0, 1), (1, 2), (2, 0), (1, 0), (2, 1)][i % 5];
            vec![
                (skus[a].as_str(), 1 + (i % 2) as u32),
                (skus[b].as_str(), 1),
            ]
        })
        .collect();
    let buyers: Vec<String> = (0..shapes.len()).map(|_| unique("buyer")).collect();
    let replies = futures::future::join_all(buyers.iter().zip(&shapes).map(|(buyer, lines)| {
        let stack = &stack;
        async move { stack.place_order(buyer, &unique("key"), lines).await }
    }))
    .await;
    let mut reserved_per_sku: HashMap<&str, u64> = HashMap::new();
    let mut rejected = 0;
    for ((buyer, lines), reply) in buyers.iter().zip(&shapes).zip(replies) {
        let order = stack
            .wait_decided(buyer, reply.body["orderId"].as_str().unwrap())
            .await;
        match reservation(&order) {
            "RESERVED" => {
                for (sku, quantity) in lines {
                    *reserved_per_sku.entry(sku).or_default() += u64::from(*quantity);
                }
            }
            "REJECTED" => rejected += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(rejected > 0, "the race was meant to run out of stock");
    for sku in &skus {
        let (available, reserved, on_hand) = stack.stock(sku).await;
        let expected = reserved_per_sku.get(sku.as_str()).copied().unwrap_or(0);
        assert_eq!(
            reserved, expected,
            "{sku}: the counter equals the sum of reserved orders"
        );
        assert_eq!(on_hand, 12, "{sku}: nothing left the building");
        assert_eq!(available + reserved, 12, "{sku}");
    }
}
