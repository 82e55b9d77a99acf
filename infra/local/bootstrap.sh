#!/usr/bin/env bash
# Installs the local tool chain into the repository (.tools/venv): the moto emulator, the Stripe
# emulator (localstripe), cargo-lambda,
# the SAM CLI, cfn-lint, the PDF renderer and barcode reader the label test reads labels with, and
# schemathesis, the fuzzer the contract is checked with; and axe-core, the accessibility checker.
# Idempotent: a second run with everything in place takes a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.tools/venv"
stamp="$venv/.installed-v5"
# The moto version infra/local/moto_server.py's patches of moto's internals were written for: it
# reads this line and refuses to start with any other moto. A new version needs a new stamp too,
# or venvs installed already keep the old one.
moto_version=5.2.5
# The accessibility checker the browser tests run in the customers' pages (axe-core, from the
# npm registry, with the machine's Node.js).
axe="$root/.tools/axe-core/node_modules/axe-core/axe.min.js"
if [[ ! -f "$axe" ]]; then
  npm install --silent --no-audit --no-fund --prefix "$root/.tools/axe-core" 'axe-core@4.10.3'
fi
if [[ -f "$stamp" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "moto[dynamodb,sqs,sns]==$moto_version" 'flask>=3,<4' 'flask-cors>=5,<7' 'gunicorn==23.0.0' \
  'cargo-lambda==1.9.2' 'aws-sam-cli==1.170.0' 'cfn-lint==1.58.0' \
  'pypdfium2==4.30.0' 'zxing-cpp==2.3.0' 'pillow>=10,<12'
# On its own, so that its dependencies do not move the emulator's.
"$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
# The Stripe emulator; infra/local/localstripe_server.py patches this version.
"$venv/bin/pip" install --quiet --disable-pip-version-check 'localstripe==1.15.10'
touch "$stamp"
