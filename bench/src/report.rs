//! The report: the Markdown table the README shows, with each figure's verdict against its
//! target, made from `bench/results.json`'s values.

use serde_json::Value;

fn verdict(ok: bool, detail: String) -> String {
    if ok {
        format!("meets ({detail})")
    } else {
        format!("**misses** ({detail})")
    }
}

/// The Markdown table the README shows.
pub fn report(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let floor = &r["floor"];
    let mut out = String::new();
    out.push_str(&format!(
        "Measured {} on a {} machine by `bench/run.sh`.\n\n",
        r["measuredAt"].as_str().unwrap_or_default(),
        r["machine"].as_str().unwrap_or_default()
    ));
    out.push_str("### Cold start, memory and package, per function (release profile)\n\n");
    out.push_str("| function | ready, median (p90) | × floor (paired starts) | first response, median (p90) | peak memory | package (zip) | targets |\n|---|---|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| *floor: hello world* | {:.2} ms ({:.2}) | 1.00 | {:.2} ms ({:.2}) | {:.1} MiB | {:.0} KiB | |\n",
        f(&floor["ready_ms_median"]), f(&floor["ready_ms_p90"]), f(&floor["first_response_ms_median"]), f(&floor["first_response_ms_p90"]), f(&floor["peak_memory_mib"]), f(&floor["package_kib"])
    ));
    for (name, v) in r["functions"].as_object().into_iter().flatten() {
        // Against the floor's starts paired with this function's, where measured.
        let paired = v["paired_floor_ready_ms_median"]
            .as_f64()
            .unwrap_or_else(|| f(&floor["ready_ms_median"]));
        let ratio = f(&v["ready_ms_median"]) / paired;
        let memory = f(&v["peak_memory_mib"]);
        let package = f(&v["package_kib"]) / 1024.0;
        let checks = [
            verdict(ratio <= 1.3, format!("cold ≤ 1.3× floor: {ratio:.2}×")),
            verdict(memory <= 20.0, format!("≤ 20 MB: {memory:.1}")),
            verdict(package <= 4.0, format!("≤ 4 MB: {package:.2}")),
        ];
        out.push_str(&format!(
            "| {name} | {:.2} ms ({:.2}) | {ratio:.2} | {:.2} ms ({:.2}) | {memory:.1} MiB ({:.2}× floor) | {:.0} KiB ({:.2}× floor) | {} |\n",
            f(&v["ready_ms_median"]), f(&v["ready_ms_p90"]), f(&v["first_response_ms_median"]), f(&v["first_response_ms_p90"]),
            memory / f(&floor["peak_memory_mib"]), f(&v["package_kib"]), f(&v["package_kib"]) / f(&floor["package_kib"]), checks.join("; ")
        ));
    }
    let intake_first = f(&r["functions"]["order-intake"]["first_response_ms_median"]);
    out.push_str(&format!(
        "\nOrder intake's first response, emulator calls included: {intake_first:.1} ms — {}.\n",
        verdict(intake_first < 40.0, "target well under 40 ms".into())
    ));
    out.push_str("\n### Warm latency against the same DynamoDB requests made directly\n\n| operation | in the function p50 / p99 | direct p50 / p99 | overhead (p50) |\n|---|---|---|---|\n");
    for (label, key) in [
        ("order intake", "orderIntake"),
        ("stock reservation", "stockReservation"),
    ] {
        let v = &r["warmLatency"][key];
        let ratio = f(&v["p50_ms"]) / f(&v["direct_p50_ms"]);
        out.push_str(&format!(
            "| {label} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {ratio:.2}× — {} |\n",
            f(&v["p50_ms"]),
            f(&v["p99_ms"]),
            f(&v["direct_p50_ms"]),
            f(&v["direct_p99_ms"]),
            verdict(ratio <= 1.2, "target ≤ 1.2×".into())
        ));
    }
    let e = &r["endToEnd"];
    let share = f(&e["orders_per_second"]) / f(&e["ceiling_orders_per_second"]);
    out.push_str(&format!(
        "\n### End to end: `POST /orders` to reserved through the local stack\n\n{} clients placing orders back to back for 15 s, {} orders: **{:.1} orders/s** from the first `POST` to the last reservation, latency p50 {:.0} ms, p99 {:.0} ms (`POST` to the reservation's timestamp, waiting behind the orders before included). The emulator's ceiling for the same requests made directly by as many clients: {:.1} orders/s; the stack reaches {:.0}% of it — {}.\n",
        e["clients"], e["orders"], f(&e["orders_per_second"]), f(&e["p50_ms"]), f(&e["p99_ms"]), f(&e["ceiling_orders_per_second"]), share * 100.0,
        verdict(share >= 0.5, "target ≥ 50%".into())
    ));
    if let (Some(pipeline), Some(ceiling)) = (
        e["emulator_cpu_ms_per_order"].as_f64(),
        e["ceiling_emulator_cpu_ms_per_order"].as_f64(),
    ) {
        out.push_str(&format!(
            "\nThe emulator's CPU time per order: {pipeline:.0} ms through the stack (everything an order sets off until the stack is idle: the stream read, the event publisher's publishes, the queue hops, fulfillment and notifications included) against {ceiling:.0} ms for the ceiling's requests ({:.1}×). The emulator is one process on a shared core, so the stack's throughput can reach at most about the ceiling divided by that factor.\n",
            pipeline / ceiling
        ));
    }
    let c = &r["contention"];
    out.push_str(&format!(
        "\n### Contention: {} buyers for {} units of one SKU\n\n{} reserved, {} rejected, all decided in {:.1} s ({:.1} reservations/s); sold exactly the stock: {}.\n",
        c["buyers"], c["stock"], c["reserved"], c["rejected"], f(&c["seconds_to_decide_all"]), f(&c["reservations_per_second"]), c["sold_exactly_the_stock"]
    ));
    let k = &r["costPerOrder"];
    out.push_str(&format!(
        "\n### One order, intake to delivered (one line), counted from the calls it made\n\n- DynamoDB requests: {}\n- items written: {} (the least any design could write: {}); write units {:.0}, read units {:.0}\n- SNS publishes: {} · SQS requests (receives that brought its messages, deletes, sends): {}; empty long polls meanwhile, a cost per queue and hour rather than per order: {}\n- Lambda invocations: {}\n- modelled bill per million orders at list prices: {}\n",
        k["dynamodb_requests"], k["dynamodb_items_written"], k["least_item_writes"], f(&k["dynamodb_write_units"]), f(&k["dynamodb_read_units"]),
        k["sns_publishes"], k["sqs_requests"], k["sqs_empty_polls"], k["lambda_invocations"], k["dollars_per_million_orders"]
    ));
    let l = &r["stepToMessage"];
    if l.is_object() {
        out.push_str(&format!(
            "\n### Step → message latency, steps taken back to back\n\n{} orders at once, {} messages: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {}\n",
            l["orders"], l["messages"], f(&l["p50_ms"]), f(&l["p99_ms"]), f(&l["max_ms"]),
            verdict(f(&l["p99_ms"]) <= 3000.0, format!("p99 within a couple of seconds: {:.1} s", f(&l["p99_ms"]) / 1000.0)),
        ));
    }
    let g = &r["routing"];
    if g.is_object() {
        let calls = |c: &Value| {
            let requests = c["requests"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("{requests}; {} items written", c["itemsWritten"])
        };
        let p = &g["planning"];
        out.push_str(&format!(
            "
### Routing: the reservation of a two-line order

| held by | stock-reservation's requests | floor |\n|---|---|---|\n| one location | {} | GetItem 1, TransactWriteItems 1 (before locations); 3 items |\n| two locations | {} | the same, one stock item per SKU |\n\nPlanning a {}-line order over {} locations ({} parcels): median {:.0} µs, p90 {:.0} µs over {} plans; {}\n",
            calls(&g["oneLocation"]),
            calls(&g["split"]),
            p["lines"], p["locations"], p["shipments"], f(&p["medianMicros"]), f(&p["p90Micros"]), p["runs"],
            verdict(f(&p["p90Micros"]) <= 50_000.0, "p90 within 50 ms".to_owned()),
        ));
    }
    let c = &r["customerPages"];
    if c.is_object() {
        out.push_str(
            "
### The customers' pages (through the local stack's gateway)

| page | p50 / p99 | HTML | target |
|---|---|---|---|
",
        );
        for (label, key) in [
            ("an order (its signed link's visit)", "order_page"),
            ("the lookup", "lookup"),
        ] {
            let v = &c[key];
            let (p50, bytes) = (f(&v["p50_ms"]), f(&v["html_bytes"]));
            out.push_str(&format!(
                "| {label} | {p50:.1} / {:.1} ms | {:.1} KB | {} |\n",
                f(&v["p99_ms"]),
                bytes / 1024.0,
                verdict(
                    p50 < 100.0 && bytes < 50.0 * 1024.0,
                    "under 100 ms and 50 KB".to_owned()
                )
            ));
        }
        out.push_str(&format!(
            "\nThe stylesheet, fetched once and kept a year: {:.1} KB.\n",
            f(&c["stylesheet_bytes"]) / 1024.0
        ));
    }
    out
}
