"""Time to threshold, ours (best known config, 4 seeds in one program) against stable-baselines3
(defaults, one seed); writes results/threshold.json and threshold.md.

    python benchmarks/run_threshold.py            # ours only
    python benchmarks/run_threshold.py --peers    # and sb3 (needs shared/peers/setup_peers.sh)

Each entry is a fresh process (benchmarks/threshold.py, benchmarks/sb3_threshold.py) printing one
JSON line. Wall-clock includes compile for ours and model construction for sb3.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

from run import PEERS_DIR, ROOT, cpu_name, measure

# (algorithm, env, threshold, steps budget, our config overrides, sb3 algorithm or None)
RUNS = [
    ("ppo", "CartPole-v1", 475.0, 500_000, {}, "ppo"),
    ("sac", "Pendulum-v1", -200.0, 20_000, {"hidden": (64, 64), "lr": 1e-3, "tau": 0.02}, "sac"),
    ("dqn", "CartPole-v1", 475.0, 150_000, {}, "dqn"),
    ("pqn", "CartPole-v1", 475.0, 250_000, {}, None),
]
SB3_BUDGET = {"ppo": 500_000, "sac": 20_000, "dqn": 150_000}
SEEDS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    rows = []
    for algo, env, threshold, steps, overrides, sb3 in RUNS:
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "threshold.py"),
            algo,
            env,
            str(threshold),
            str(SEEDS),
            str(steps),
        ]
        cmd += [f"{k}={v!r}" for k, v in overrides.items()]
        rows.append(measure(cmd))
        print(json.dumps(rows[-1]), flush=True)
        if args.peers and sb3:
            python = PEERS_DIR / "sb3" / "bin" / "python"
            if not python.exists():
                rows.append(
                    dict(lib="sb3", algo=sb3, env=env, missing="not installed (run ../shared/peers/setup_peers.sh)")
                )
                continue
            rows.append(
                measure(
                    [
                        str(python),
                        str(ROOT / "benchmarks" / "sb3_threshold.py"),
                        sb3,
                        env,
                        str(threshold),
                        str(SB3_BUDGET[sb3]),
                    ]
                )
            )
            print(json.dumps(rows[-1]), flush=True)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threshold.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; command: `{meta['command']}`",
        "",
        "| algorithm | env | threshold | library, config | seeds | time to threshold s (compile incl.) "
        "| env steps to threshold | budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "missing" in r:
            lines.append(f"| {r['algo']} | {r['env']} | | {r['lib']} | | {r['missing']} | | |")
            continue
        config = (
            "defaults"
            if r["lib"] == "sb3"
            else ("ours: " + (", ".join(f"{k}={v}" for k, v in r["config"].items()) or "defaults"))
        )
        budget = r.get("max_steps", r.get("steps"))
        reached = r["time_to_threshold_s"]
        lines.append(
            f"| {r['algo']} | {r['env']} | {r['threshold']:g} | {r['lib']}, {config} | {r['seeds']} | "
            f"{'not reached' if reached is None else f'{reached:.1f}'} | {r['steps_to_threshold'] or ''} | {budget:,} |"
        )
    (out / "threshold.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
