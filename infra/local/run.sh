#!/usr/bin/env bash
# Runs the whole system locally: installs the tools into .tools/ (first run only), builds the
# functions, and starts the local stack with its demo catalog and a demo order (paid for, in the
# warehouse, its customer's page printed) on http://127.0.0.1:3000. Once it is
# up, its banner prints a token, how to place an order and how to pay for it
# (`target/debug/oms-local psp authorize <orderId>`, the PSP's signed webhook), and, when the
# template has the staff console, its URL (it signs in at the stack's development issuer, /oidc).
# Extra arguments go to `oms-local up` (see `cargo run -p oms-local -- up --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash infra/local/bootstrap.sh
cargo build --workspace --bins
exec target/debug/oms-local up --demo-order "$@"
