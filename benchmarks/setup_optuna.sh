#!/usr/bin/env bash
# Optuna's own venv for benchmarks/tune.py --optuna: Optuna plus this checkout (editable), so its
# trials call our train. Default location /tmp/pjl-peers/optuna (PEERS_DIR overrides the parent).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${PEERS_DIR:-/tmp/pjl-peers}/optuna"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --upgrade pip
"$dir/bin/pip" install --quiet "optuna>=4,<6"
"$dir/bin/pip" install --quiet -e "$here"
"$dir/bin/python" -c "import optuna; print('optuna', optuna.__version__, 'in', '$dir')"
