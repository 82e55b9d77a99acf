#!/usr/bin/env bash
# Runs every test on a fresh machine: installs the tools into .tools/, tests what the emulator
# launcher adds to moto, checks the SAM template, builds the workspace, starts the local stack on
# its own ports, runs the whole test suite against it (unit, property, handler, adapter, contract
# and end-to-end tests), and stops it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "tools"
bash infra/local/bootstrap.sh
export SAM_CLI_TELEMETRY=0
# A clean build gains nothing from incremental compilation, and its cache would take gigabytes
# of the disk the build shares with the emulators' and the browser's files.
export CARGO_INCREMENTAL=0

step "browser: Debian's chromium and chromium-driver (the console's browser tests)"
if ! command -v chromedriver > /dev/null || ! [ -x /usr/bin/chromium ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
chromedriver --version

step "emulator launcher: what it adds to moto"
.tools/venv/bin/python -m unittest discover -s infra/local -p 'test_*.py'

step "template: sam validate --lint, cfn-lint"
.tools/venv/bin/sam validate --lint -t infra/template.yaml
.tools/venv/bin/cfn-lint infra/template.yaml

step "build"
cargo build --workspace --bins --tests

step "domain crate depends on no AWS, Lambda or HTTP crate"
if cargo tree -p oms-domain -e normal --prefix none | grep -Ei '^(aws|lambda|http|hyper)'; then
  echo "oms-domain must not depend on these" >&2
  exit 1
fi

# The test stack uses its own ports, so a stack started with run.sh can keep running.
export OMS_LOCAL_PORT="${OMS_TEST_PORT:-3100}"
export OMS_LOCAL_EMULATOR_PORT="${OMS_TEST_EMULATOR_PORT:-4600}"
export OMS_LOCAL_LAMBDA_PORT="${OMS_TEST_LAMBDA_PORT:-9100}"
export OMS_LOCAL_QUEUE_VISIBILITY_SECONDS=2
# Time runs fast on the test stack: scheduled functions (the order sweeper) every 2 s, a secret
# re-read from Secrets Manager 2 s after it was read, and an unpaid order expiring after 20 s
# (the template's PaymentWindowSeconds; the system tests rely on this value).
export OMS_LOCAL_SCHEDULE_SECONDS=2
export OMS_LOCAL_SECRET_CACHE_SECONDS=2
export OMS_LOCAL_LOCATIONS_CACHE_SECONDS=2
export OMS_LOCAL_PARAMETER_PaymentWindowSeconds=20
# A capture the PSP has not confirmed goes to staff after 15 s (the template's
# CaptureConfirmationSeconds; the payment system tests rely on this value).
export OMS_LOCAL_PARAMETER_CaptureConfirmationSeconds=15
# Stripe's events are reconciled once 3 s old (the template's StripeReconcileSettleSeconds), over
# the last minute: a dropped webhook is recovered well inside the 20 s payment window.
export OMS_LOCAL_PARAMETER_StripeReconcileSettleSeconds=3
export OMS_LOCAL_PARAMETER_StripeReconcileLookbackSeconds=60
# The console writes times in the business's zone; the browser tests read them in Berlin's.
export OMS_LOCAL_PARAMETER_ConsoleTimeZone=Europe/Berlin
export OMS_API_URL="http://127.0.0.1:${OMS_LOCAL_PORT}"
export OMS_EMULATOR_URL="http://127.0.0.1:${OMS_LOCAL_EMULATOR_PORT}"
log="target/oms-local-test.log"

# Starts a local stack named $1 with its log in $2 on the ports exported above, and waits until
# it is ready; its pid is in $stack_pid.
start_stack() {
  target/debug/oms-local up --stack "$1" > "$2" 2>&1 &
  stack_pid=$!
  export OMS_STACK="$1"
  for _ in $(seq 1 900); do
    if curl -sf "$OMS_API_URL/_local/health" > /dev/null; then return 0; fi
    if ! kill -0 "$stack_pid" 2>/dev/null; then
      echo "the local stack exited; its log:" >&2
      tail -50 "$2" >&2
      exit 1
    fi
    sleep 1
  done
  echo "the local stack did not become ready" >&2
  tail -50 "$2" >&2
  exit 1
}
cleanup() {
  kill "$stack_pid" 2>/dev/null || true
  wait "$stack_pid" 2>/dev/null || true
}
trap cleanup EXIT

step "local stack (log: $log)"
start_stack oms-test "$log"

step "tests"
cargo test --workspace --no-fail-fast

# Every order change the tests made, replayed from the table's stream: the events each recorded
# change publishes, compared with what the comparison of old and new images published.
step "recorded changes replayed"
cargo test -p oms-system-tests --features replay --test replay -- --nocapture

# The contract, fuzzed: every check schemathesis has, against the stack the tests ran on, for a
# bounded time; infra/schemathesis.toml names the only expectations relaxed, and why. The run
# prints its seed: OMS_FUZZ_SEED=<seed> replays it. One worker: with two threads, Hypothesis's
# parsing of its own lambdas under Python 3.11 can fail ("AST constructor recursion depth
# mismatch"), an error of the fuzzer rather than of the API.
fuzz_seconds="${OMS_FUZZ_SECONDS:-150}"
step "contract, fuzzed: schemathesis --checks all for ${fuzz_seconds} s"
fuzz_token="$(target/debug/oms-local token --sub fuzz-staff --scope "oms:admin oms:warehouse")"
.tools/venv/bin/schemathesis --no-color --config-file infra/schemathesis.toml run infra/openapi.yaml \
  --url "$OMS_API_URL" -H "Authorization: Bearer $fuzz_token" --checks all \
  --max-time "$fuzz_seconds" --workers 1 --suppress-health-check all --generation-database none \
  ${OMS_FUZZ_SEED:+--seed "$OMS_FUZZ_SEED"}

# Money taken as soon as it is held: a stack of its own, on its own ports, started with the
# template's PaymentCapture set to immediately (the system tests' stack captures on shipment);
# the same fast clock as the system tests' stack.
cleanup
export OMS_LOCAL_PORT="${OMS_CAPTURE_PORT:-3300}"
export OMS_LOCAL_EMULATOR_PORT="${OMS_CAPTURE_EMULATOR_PORT:-4800}"
export OMS_LOCAL_LAMBDA_PORT="${OMS_CAPTURE_LAMBDA_PORT:-9300}"
export OMS_API_URL="http://127.0.0.1:${OMS_LOCAL_PORT}"
export OMS_EMULATOR_URL="http://127.0.0.1:${OMS_LOCAL_EMULATOR_PORT}"
export OMS_LOCAL_PARAMETER_PaymentCapture=immediately
capture_log="target/oms-local-capture.log"
step "money taken at once (log: $capture_log)"
start_stack oms-capture "$capture_log"
cargo test -p oms-system-tests --features capture-at-once --test capture_at_once
unset OMS_LOCAL_PARAMETER_PaymentCapture

# The fault-injection run, on a stack of its own with its faults on (documented in the README):
# a tenth of the functions' DynamoDB calls throttled, a tenth of their transactions cancelled
# with a conflict, a tenth of their SNS batch entries failed, a tenth of the queues' and the
# stream's invocations crashed.
cleanup
# The usual payment window: the run pays for its orders in turn, and the test stack's 20 s
# window would expire the last ones first.
unset OMS_LOCAL_PARAMETER_PaymentWindowSeconds OMS_LOCAL_PARAMETER_CaptureConfirmationSeconds
export OMS_FAULT_DYNAMODB_THROTTLE=0.1 OMS_FAULT_TRANSACTION_CONFLICT=0.1 OMS_FAULT_SNS_ENTRY_FAILURE=0.1
export OMS_LOCAL_FAULT_CRASH=0.1
export OMS_LOCAL_PORT="${OMS_FAULT_PORT:-3200}"
export OMS_LOCAL_EMULATOR_PORT="${OMS_FAULT_EMULATOR_PORT:-4700}"
export OMS_LOCAL_LAMBDA_PORT="${OMS_FAULT_LAMBDA_PORT:-9200}"
export OMS_API_URL="http://127.0.0.1:${OMS_LOCAL_PORT}"
export OMS_EMULATOR_URL="http://127.0.0.1:${OMS_LOCAL_EMULATOR_PORT}"
fault_log="target/oms-local-faults.log"
step "fault-injection run (log: $fault_log)"
start_stack oms-faults "$fault_log"
cargo test -p oms-system-tests --features fault-run --test faults -- --nocapture

# Nothing the command started may outlive it: the stacks (the emulators, cargo-lambda and the
# functions, each stack's own ports) and the browsers of the console's tests (their profiles are
# named oms-console-browser-…). Stopping takes a moment; anything still there after 20 s fails
# the command, named.
step "nothing left running"
cleanup
leftovers() {
  pgrep -af -- "oms-console-browser-|oms-local up --stack oms-(test|capture|faults)|moto_server\.py -H 127\.0\.0\.1 -p (${OMS_TEST_EMULATOR_PORT:-4600}|${OMS_CAPTURE_EMULATOR_PORT:-4800}|${OMS_FAULT_EMULATOR_PORT:-4700})( |$)|localstripe_server\.py --port ($(( ${OMS_TEST_EMULATOR_PORT:-4600} + 1 ))|$(( ${OMS_CAPTURE_EMULATOR_PORT:-4800} + 1 ))|$(( ${OMS_FAULT_EMULATOR_PORT:-4700} + 1 )))( |$)|cargo-lambda lambda watch -A 127\.0\.0\.1 -P (${OMS_TEST_LAMBDA_PORT:-9100}|${OMS_CAPTURE_LAMBDA_PORT:-9300}|${OMS_FAULT_LAMBDA_PORT:-9200}) " || true
}
for _ in $(seq 1 20); do
  [ -z "$(leftovers)" ] && break
  sleep 1
done
if [ -n "$(leftovers)" ]; then
  echo "still running after the tests:" >&2
  leftovers >&2
  exit 1
fi
echo "nothing left running"
