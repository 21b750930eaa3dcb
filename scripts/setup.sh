#!/usr/bin/env bash
# Set up a fresh machine for farms_viz: system packages, the pinned CPU torch,
# the package with its extras, and the bundled front end.
# Usage: bash scripts/setup.sh [--test]   (--test also installs test tools and Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="lab"
if [[ "${1:-}" == "--test" ]]; then extras="lab,test"; fi

if [[ "$extras" == *test* ]] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi

PY=${PYTHON:-python3}
# A CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
if ! $PY -c "import torch" >/dev/null 2>&1; then
  $PY -m pip install -q torch==2.13.0
fi

# The bundle in farms_viz/static/ is committed; rebuild it only when the sources are newer.
# The test setup also installs the front end's dev packages: the JS tests run under node.
if [[ -f js/package.json ]]; then
  if [[ "$extras" == *test* ]] || [[ ! -f farms_viz/static/widget.js ]] \
     || [[ -n "$(find js/src js/package.json -newer farms_viz/static/widget.js 2>/dev/null)" ]]; then
    (cd js && npm ci --no-audit --no-fund --silent)
  fi
  if [[ ! -f farms_viz/static/widget.js ]] || [[ -n "$(find js/src js/package.json -newer farms_viz/static/widget.js 2>/dev/null)" ]]; then
    (cd js && npm run build --silent)
  fi
fi

$PY -m pip install -q -e ".[${extras}]"
