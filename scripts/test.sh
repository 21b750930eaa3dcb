#!/usr/bin/env bash
# Set up a fresh machine and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
python3 -m pytest -q -p no:cacheprovider "$@"
