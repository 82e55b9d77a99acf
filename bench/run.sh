#!/usr/bin/env bash
# The benchmark: builds the release functions and the hello-world floor, starts the local stack
# (release functions, its own ports), runs oms-bench, and stops the stack. Prints the table and
# writes bench/results.json and bench/RESULTS.md. On 2 cores: about 40 minutes from a fresh clone,
# nearly all of it release builds (LTO, one codegen unit, as deployed; the stack's cargo-lambda
# builds the functions once more on its first start there), and 3-5 minutes once they are built.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash infra/local/bootstrap.sh

# One package at a time, as `cargo lambda watch` builds them: built together, Cargo would unify
# the dependencies' features across packages and cargo-lambda would build every function again.
# The bench first: it names the functions the template declares.
cargo build --release -p oms-bench
functions="$(target/release/oms-bench --functions)"
for package in $functions; do
  cargo build --release -p "$package"
done
cargo build -p oms-local

export OMS_LOCAL_PORT=3200 OMS_LOCAL_EMULATOR_PORT=4700 OMS_LOCAL_LAMBDA_PORT=9200
# As the test stack: a message that must be retried (a notification that arrived before its
# predecessor) comes back after 2 s instead of the template's 30 s, so the recording of one
# order's requests is not mostly idle polling.
export OMS_LOCAL_QUEUE_VISIBILITY_SECONDS=2
export OMS_API_URL="http://127.0.0.1:3200" OMS_EMULATOR_URL="http://127.0.0.1:4700" OMS_STACK=oms-bench
log=target/oms-local-bench.log
target/debug/oms-local up --stack oms-bench --profile release --no-seed > "$log" 2>&1 &
stack_pid=$!
trap 'kill -INT "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true' EXIT
# The stack builds each function with cargo-lambda's own release flags before it is ready: on a
# fresh clone that is the AWS SDK and fifteen LTO links again, well over fifteen minutes on two
# cores. Wait for it (an hour at most), and stop if it never comes up.
ready=
for _ in $(seq 1 3600); do
  curl -sf "$OMS_API_URL/_local/health" > /dev/null && { ready=1; break; }
  kill -0 "$stack_pid" 2>/dev/null || { tail -50 "$log" >&2; exit 1; }
  sleep 1
done
[ -n "$ready" ] || { echo "the benchmark's stack was not ready within an hour" >&2; tail -50 "$log" >&2; exit 1; }
target/release/oms-bench
