#!/usr/bin/env bash
# The demo: set up this machine, then open JupyterLab on notebooks/ and print its URL.
# Usage: bash scripts/demo.sh              (PORT=8899 bash scripts/demo.sh for another port;
#                                           JUPYTER_TOKEN=... to choose the token)
# Stop it with Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

PY=${PYTHON:-python3}
PORT=${PORT:-8888}
TOKEN=${JUPYTER_TOKEN:-$($PY -c "import secrets; print(secrets.token_hex(16))")}
URL="http://127.0.0.1:${PORT}/lab?token=${TOKEN}"

# port_retries=0: fail on a busy port instead of moving silently to one the printed URL misses
args=(--no-browser --ip=127.0.0.1 "--port=${PORT}" --ServerApp.port_retries=0
      --ServerApp.root_dir=notebooks "--IdentityProvider.token=${TOKEN}")
if [[ $(id -u) -eq 0 ]]; then args+=(--allow-root); fi

$PY -m jupyter lab "${args[@]}" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' INT TERM EXIT

for _ in $(seq 1 120); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "JupyterLab did not start (is port ${PORT} busy? try PORT=8899 bash scripts/demo.sh)" >&2
    exit 1
  fi
  if $PY -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
      "http://127.0.0.1:${PORT}/api/status?token=${TOKEN}" >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done

cat <<EOF

  ==================================================================
  farms_viz demo: JupyterLab is running on notebooks/. Open:

    ${URL}

  Start with 01_aspect_ratio_bias.ipynb. Stop with Ctrl+C.
  ==================================================================

EOF
wait "$server"
