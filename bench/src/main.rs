//! # oms-bench: the system's figures, each next to its floor, measured the same way every time
//!
//! `bench/run.sh` builds the release functions and the hello-world floor, starts the local stack
//! with the release functions, and runs this program, which prints a table and writes
//! `bench/results.json` and `bench/RESULTS.md`. The functions are those `infra/template.yaml`
//! declares; `oms-bench --functions` lists their binaries, one a line, and does nothing else.
//! `oms-bench --cost` measures figure 7 alone against whichever stack `OMS_API_URL` names (the
//! requests an order makes do not depend on the build profile) and prints it as JSON;
//! `oms-bench --latency` does the same for figure 8, `oms-bench --routing` for figure 9
//! (`oms-bench --planning` its planning time alone, without a stack), `oms-bench --pages` for
//! figure 10.
//!
//! 1. **Cold start**, 2. **peak memory** and 3. **package size**, per function: [`cold_start`].
//! 4. **Warm latency** of order intake and stock reservation: [`warm`].
//! 5. **End-to-end** orders per second through the local stack: [`end_to_end`].
//! 6. **Contention** — many buyers for one SKU: [`contention`].
//! 7. **Requests and cost per order**, intake to delivered: [`cost`].
//! 8. **Step → message latency**, p50 and p99, steps taken back to back: [`latency`].
//! 9. **Routing** — a reservation's requests from one location and from two, and the planner's
//!    time for a 99-line order over 10 locations: [`routing`].
//! 10. **The customers' pages** — an order's page and the lookup, time and weight: [`pages`].
//!
//! [`report`] makes the table; [`common`] holds what the figures share.

mod cold_start;
mod common;
mod contention;
mod cost;
mod end_to_end;
mod latency;
mod pages;
mod report;
mod routing;
mod runtime_api;
mod warm;

use serde_json::json;

use crate::common::{root, settled, Bench, BoxError};

/// How many orders the latency figure drives at once.
const LATENCY_ORDERS: usize = 10;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let functions = oms_system_tests::functions();
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--functions") => {
            for function in &functions {
                println!("{function}");
            }
            return Ok(());
        }
        Some("--cost") => {
            let stack = oms_system_tests::Stack::connect().await;
            settled(&stack).await?;
            let cost = cost::cost_per_order(&stack).await?;
            println!("{}", serde_json::to_string_pretty(&cost)?);
            return Ok(());
        }
        Some("--latency") => {
            let stack = oms_system_tests::Stack::connect().await;
            settled(&stack).await?;
            let latency = latency::step_to_message(&stack, LATENCY_ORDERS).await?;
            println!("{}", serde_json::to_string_pretty(&latency)?);
            return Ok(());
        }
        Some("--routing") => {
            let stack = oms_system_tests::Stack::connect().await;
            let routing = routing::routing(&stack).await?;
            println!("{}", serde_json::to_string_pretty(&routing)?);
            return Ok(());
        }
        Some("--pages") => {
            let stack = oms_system_tests::Stack::connect().await;
            let pages = pages::customer_pages(&stack).await?;
            println!("{}", serde_json::to_string_pretty(&pages)?);
            return Ok(());
        }
        Some("--planning") => {
            // The planner alone, no stack: figure 9's planning time in this build's profile.
            let timing = routing::planning(99, 10, 200);
            println!("{}", serde_json::to_string_pretty(&timing)?);
            return Ok(());
        }
        Some(other) => {
            return Err(format!(
                "unknown argument {other:?} (only --functions, --cost, --latency, --routing, --pages or --planning)"
            )
            .into())
        }
    }
    let bench = Bench::connect().await?;
    let stack = &bench.stack;

    let (floor, figures) = cold_start::measure(&bench, &functions).await?;
    println!("warm latency…");
    let (intake, reservation) =
        warm::warm_latency(&bench.store, &bench.release, &bench.environment).await?;
    println!("end to end through the local stack…");
    settled(stack).await?;
    let e2e = end_to_end::end_to_end(stack, &bench.store, 4, 15).await?;
    println!("contention on one SKU…");
    settled(stack).await?;
    let hot = contention::contention(stack, 200, 50).await?;
    println!("requests and cost of one order, intake to delivered…");
    let cost = cost::cost_per_order(stack).await?;
    println!("step → message latency…");
    settled(stack).await?;
    let latency = latency::step_to_message(stack, LATENCY_ORDERS).await?;
    println!("routing…");
    let routing = routing::routing(stack).await?;
    println!("the customers' pages…");
    let pages = pages::customer_pages(stack).await?;

    let results = json!({
        "measuredAt": chrono::Utc::now().to_rfc3339(),
        "machine": format!("{} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        "floor": floor,
        "functions": figures,
        "warmLatency": {"orderIntake": intake, "stockReservation": reservation},
        "endToEnd": e2e,
        "contention": hot,
        "costPerOrder": cost,
        "stepToMessage": latency,
        "routing": routing,
        "customerPages": pages,
    });
    std::fs::write(
        root().join("bench/results.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    let markdown = report::report(&results);
    std::fs::write(root().join("bench/RESULTS.md"), &markdown)?;
    println!("\n{markdown}");
    Ok(())
}
