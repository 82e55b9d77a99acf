//! Cold start, peak memory and package size, per function, each against the floor
//! (`bench-hello`, a hello-world Lambda with the same profile):
//!
//! 1. **Cold start** — each release `bootstrap` started against [`crate::runtime_api`], a Lambda
//!    Runtime API on loopback: time to its first `next` (ready) and to its first response (with
//!    the real emulator calls the event causes), median and p90 of many runs, against
//!    `bench-hello`.
//! 2. **Peak memory** — VmHWM of each process across a cold start and 1,000 invocations.
//! 3. **Package size** — the zip Lambda would receive (`bootstrap`, deflated).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{fixture, ms, percentile, root, Bench, BoxError, Process};
use crate::runtime_api::RuntimeApi;

const COLD_RUNS: usize = 41;
const MEMORY_INVOCATIONS: usize = 1000;

#[derive(Default, serde::Serialize)]
pub struct FunctionFigures {
    ready_ms_median: f64,
    ready_ms_p90: f64,
    first_response_ms_median: f64,
    first_response_ms_p90: f64,
    peak_memory_mib: f64,
    package_kib: f64,
    binary_kib: f64,
    /// The floor's median over the starts paired with this function's.
    #[serde(skip_serializing_if = "Option::is_none")]
    paired_floor_ready_ms_median: Option<f64>,
}

/// The floor's figures, and each of `functions`' (release binaries named as the functions)
/// measured with its starts paired with the floor's.
pub async fn measure(
    bench: &Bench,
    functions: &[String],
) -> Result<(FunctionFigures, BTreeMap<String, FunctionFigures>), BoxError> {
    let environment = &bench.environment;
    println!("measuring the floor and {} functions ({COLD_RUNS} cold starts, {MEMORY_INVOCATIONS} invocations each)…", functions.len());
    let hello = bench.release.join("bench-hello");
    let floor = measure_function("bench-hello", &hello, environment, None).await?;
    let mut figures_by_function = BTreeMap::new();
    for name in functions {
        let figures =
            measure_function(name, &bench.release.join(name), environment, Some(&hello)).await?;
        println!(
            "  {name}: ready {:.1} ms, first response {:.1} ms, {:.1} MiB, {:.0} KiB zipped",
            figures.ready_ms_median,
            figures.first_response_ms_median,
            figures.peak_memory_mib,
            figures.package_kib
        );
        figures_by_function.insert(name.to_owned(), figures);
    }
    Ok((floor, figures_by_function))
}

/// The time from spawning `binary` to its first `GET …/invocation/next`, and to its answer to
/// the fixture event of iteration `run`.
async fn cold_start(
    name: &str,
    binary: &Path,
    environment: &[(String, String)],
    run: usize,
) -> Result<(f64, f64), BoxError> {
    // A runtime API of its own per process: a killed process's last long-poll must not take the
    // next process's event.
    let api = &RuntimeApi::start().await?;
    let process = Process::spawn(binary, api, environment)?;
    let (_, _, answered) = api.invoke(fixture(name, run)).await?;
    let next = api
        .first_next()
        .ok_or("the function never asked for work")?;
    Ok((
        ms(next.duration_since(process.started)),
        ms(answered.duration_since(process.started)),
    ))
}

/// Measures one function. With `floor`, every cold start of the function is paired with one of
/// the floor's, alternately, so both see the same machine (the stack runs beside them on the
/// same cores) and the ratio compares like with like.
async fn measure_function(
    name: &str,
    binary: &Path,
    environment: &[(String, String)],
    floor: Option<&Path>,
) -> Result<FunctionFigures, BoxError> {
    let mut ready = Vec::new();
    let mut first = Vec::new();
    let mut floor_ready = Vec::new();
    for run in 0..COLD_RUNS {
        if let Some(floor) = floor {
            floor_ready.push(cold_start("bench-hello", floor, environment, run).await?.0);
        }
        let (r, f) = cold_start(name, binary, environment, run).await?;
        ready.push(r);
        first.push(f);
    }

    let api = &RuntimeApi::start().await?;
    let mut process = Process::spawn(binary, api, environment)?;
    for i in 0..MEMORY_INVOCATIONS {
        api.invoke(fixture(name, COLD_RUNS + i)).await?;
    }
    let peak = process.peak_mib().ok_or("no VmHWM")?;
    process.child.kill().await?;

    let zip = root().join("target/bench").join(format!("{name}.zip"));
    std::fs::create_dir_all(zip.parent().expect("a parent"))?;
    let zipped = tokio::process::Command::new(root().join(".tools/venv/bin/python3"))
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z: z.write(sys.argv[2], 'bootstrap')",
        ])
        .arg(&zip)
        .arg(binary)
        .status()
        .await?;
    if !zipped.success() {
        return Err("zipping failed".into());
    }
    Ok(FunctionFigures {
        ready_ms_median: percentile(&ready, 0.5),
        ready_ms_p90: percentile(&ready, 0.9),
        first_response_ms_median: percentile(&first, 0.5),
        first_response_ms_p90: percentile(&first, 0.9),
        peak_memory_mib: peak,
        package_kib: std::fs::metadata(&zip)?.len() as f64 / 1024.0,
        binary_kib: std::fs::metadata(binary)?.len() as f64 / 1024.0,
        paired_floor_ready_ms_median: floor.map(|_| percentile(&floor_ready, 0.5)),
    })
}
