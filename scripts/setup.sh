#!/usr/bin/env bash
# Set up a fresh machine for farms_viz: system packages, the pinned CPU torch, the package with
# its extras. The front-end bundle in farms_viz/widget/static/ is committed: setup never rebuilds
# it (tests/test_front_end.py builds into a temporary folder and fails when it is stale).
# Usage: bash scripts/setup.sh [--test]   (--test also installs test tools, Chromium and the
#                                          front end's dev packages)
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

if [[ "$extras" == *test* ]] && [[ -f js/package.json ]]; then
  (cd js && npm ci --no-audit --no-fund --silent)
fi

$PY -m pip install -q -e ".[${extras}]"
