#!/usr/bin/env bash
# Builds a throw-away virtual environment with SBX (stable-baselines in JAX) for side-by-side measurement:
#   $PEERS_DIR/sbx : sbx-rl 0.28.0 (the newest release for Python 3.11 here), with the jax, flax and
#                    optax pip resolves for it, on the CPU build of PyTorch 2.13.0 (the version the sb3
#                    peer uses; stable-baselines3, which SBX builds on, needs torch)
# Usage: setup_sbx.sh              (idempotent; PEERS_DIR defaults to /tmp/pjl-peers)
# Run the peer with: JAX_PLATFORMS=cpu $PEERS_DIR/sbx/bin/python benchmarks/sbx_peer.py ... (sbx_peer.py
# sets JAX_PLATFORMS=cpu itself when it is unset).
set -euo pipefail
PEERS_DIR=${PEERS_DIR:-/tmp/pjl-peers}
VENV="$PEERS_DIR/sbx"
mkdir -p "$PEERS_DIR"
CHECK="import sbx, stable_baselines3, jax, flax, optax, torch, gymnasium, numpy"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0 sbx-rl==0.28.0 gymnasium numpy 2>&1 | grep -v "is ignored" || true
fi
JAX_PLATFORMS=cpu "$VENV/bin/python" -c "$CHECK" \
  || { echo "sbx peer venv at $VENV is broken" >&2; exit 1; }
"$VENV/bin/pip" freeze 2>/dev/null \
  | grep -i -E '^(sbx-rl|sbx_rl|stable.baselines3|jax|jaxlib|flax|optax|torch|gymnasium|numpy)==' || true
echo "sbx peer ready in $VENV"
