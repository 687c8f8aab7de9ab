"""d3rlpy's scores beside ours on the same dataset files and configs (the offline table's cells).

    bash benchmarks/setup_d3rlpy.sh            # d3rlpy's own venv (once)
    python benchmarks/offline.py               # our cells (and the datasets) first
    python benchmarks/offline_peer_scores.py   # d3rlpy on the cells in CELLS, 4 seeds each
    python benchmarks/offline_peer_scores.py iql-pendulum-medium-replay  # named cells instead

Each cell: d3rlpy (``benchmarks/d3rlpy_peer.py``) trains seeds 0-3 one after another with our
cell's settings (network widths, batch, learning rate, gradient steps, observation
standardization, the algorithm's weight), then plays 32 episodes per seed; scores are normalized
with the dataset's reference returns and summarized as ours are (IQM, stratified bootstrap 95%
interval). Writes ``results/offline_d3rlpy.json`` and ``results/offline_d3rlpy.md``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER = Path(os.environ.get("PEERS_DIR", "/tmp/pjl-peers")) / "d3rlpy" / "bin" / "python"
CELLS = ("td3bc-pendulum-medium-expert", "iql-pendulum-medium-expert", "bc-pendulum-medium-expert")
SEEDS = 4
EPISODES = 32
PEER_NAMES = {"td3bc": "td3bc", "iql": "iql", "bc": "bc", "cql": "cql"}


def peer_args(cell: dict, seed: int) -> dict:
    """d3rlpy_peer.py's arguments for one of our cells (its recorded overrides) and one seed."""
    over = cell["overrides"]
    name = cell["cell"].split("-")[0]
    args = {
        "algo": PEER_NAMES[name],
        "dataset": str(HERE.parent / cell["dataset"]["path"]),
        "steps": cell["gradient_steps"],
        "seed": seed,
        "hidden": list(over.get("hidden", [256, 256])),
        "batch_size": over.get("batch_size", 256),
        "eval_episodes": EPISODES,
        "threads": os.cpu_count() or 1,
        "lr": over.get("lr", 3e-4),
        "normalize_obs": bool(over.get("normalize_obs", False)),
        "bc_policy": "stochastic",  # ours is a Gaussian likelihood
    }
    if "temperature" in over:
        args["iql_temperature"] = over["temperature"]
    if "bc_alpha" in over:
        args["td3bc_alpha"] = over["bc_alpha"]
    if "cql_alpha" in over:
        args["cql_weight"] = over["cql_alpha"]
    return args


def run_peer(args: dict) -> dict:
    out = subprocess.run(
        [str(PEER), str(HERE / "d3rlpy_peer.py"), json.dumps(args)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import numpy as np

    from purejaxlib import stats

    if not PEER.is_file():
        raise SystemExit(f"no d3rlpy venv at {PEER}; run benchmarks/setup_d3rlpy.sh first")
    rows = []
    for name in sys.argv[1:] or CELLS:
        path = HERE / "results" / "offline" / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"no result for our cell {name} at {path}; run benchmarks/offline.py first")
        ours = json.loads(path.read_text())
        runs = [run_peer(peer_args(ours, seed)) for seed in range(SEEDS)]
        scores = np.asarray([r["normalized"] for r in runs])
        point, low, high = stats.stratified_bootstrap_ci(scores)
        rows.append(
            {
                "cell": name,
                "ours": {"iqm": ours["iqm"], "ci": ours["ci"], "scores": ours["scores"]},
                "d3rlpy": {"iqm": point, "ci": [low, high], "scores": scores.tolist(), "runs": runs},
            }
        )
        print(f"{name}: ours {ours['iqm']:.1f} {ours['ci']}, d3rlpy {point:.1f} [{low:.1f}, {high:.1f}]", flush=True)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python benchmarks/offline_peer_scores.py",
    }
    (HERE / "results" / "offline_d3rlpy.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "| cell | ours: IQM [95% CI] | d3rlpy: IQM [95% CI] | d3rlpy seeds |",
        "|---|---|---|---|",
    ]
    for r in rows:
        o, d = r["ours"], r["d3rlpy"]
        lines.append(
            f"| {r['cell']} | {o['iqm']:.1f} [{o['ci'][0]:.1f}, {o['ci'][1]:.1f}] | "
            f"{d['iqm']:.1f} [{d['ci'][0]:.1f}, {d['ci'][1]:.1f}] | {', '.join(f'{s:.1f}' for s in d['scores'])} |"
        )
    (HERE / "results" / "offline_d3rlpy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
