#!/usr/bin/env bash
# Builds a throw-away virtual environment with d3rlpy (offline RL peer) for side-by-side measurement:
#   $PEERS_DIR/d3rlpy : d3rlpy on the CPU build of PyTorch 2.13.0 (the version the sb3 peer uses)
# Usage: setup_d3rlpy.sh           (idempotent; PEERS_DIR defaults to /tmp/pjl-peers)
# Note: d3rlpy 2.8.x pins gymnasium==1.0.0 (and pulls in the old `gym`), so gymnasium is left to
# d3rlpy's pin rather than the newest release.
set -euo pipefail
PEERS_DIR=${PEERS_DIR:-/tmp/pjl-peers}
VENV="$PEERS_DIR/d3rlpy"
mkdir -p "$PEERS_DIR"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import d3rlpy, torch, gymnasium, numpy" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0 d3rlpy gymnasium numpy 2>&1 | grep -v "is ignored" || true
fi
"$VENV/bin/python" -c "import d3rlpy, torch, gymnasium, numpy" \
  || { echo "d3rlpy peer venv at $VENV is broken" >&2; exit 1; }
"$VENV/bin/pip" freeze 2>/dev/null | grep -i -E '^(d3rlpy|torch|gymnasium|numpy)==' || true
echo "d3rlpy peer ready in $VENV"
