"""The benchmark suites of shared/BENCHMARKS.md in one call: B1-B5 (and brax ant), with peers.

    python benchmarks/run.py --suite quick             # minutes: every benchmark at short lengths
    python benchmarks/run.py --suite full --peers      # the published configs, beside rejax and sb3
    python benchmarks/run.py --suite quick --tiny      # seconds of running (the test suite's smoke run)

Every measurement is a fresh process printing one JSON line (benchmarks/train.py for training,
benchmarks/env_throughput.py for raw env steps); this module runs them, interleaving each round of
ours with the peers' runs of the same round, and writes ``suite_<name>.json`` (one row per
library and benchmark, every run kept), ``suite_<name>.md`` and PNG plots. Ratios are taken pair
by pair within a round, then the median over rounds. A peer whose environment is missing is
reported as missing, never estimated; ``--setup-peers`` builds them (shared/peers/setup_peers.sh).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
SCHEMA = 1
# Keys every training row carries (None where a value does not apply, e.g. no device stats on CPU).
ROW_KEYS = (
    "benchmark",
    "label",
    "lib",
    "agents",
    "steps",
    "sps",
    "compile_s",
    "run_s",
    "wall_s",
    "peak_rss_mb",
    "device_peak_mb",
    "final_return_mean",
    "final_return_min",
    "runs",
)
BENCHMARKS = ("B1", "B2", "B3", "S8", "B4", "B5", "ant")  # S8: 8-seed sweeps against sb3's single run
META_KEYS = ("suite", "tiny", "repeats", "date", "machine", "device", "python", "command")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One row of the suite: a command per library, run ``repeats`` times, interleaved."""

    benchmark: str  # "B1" ... "B5", "ant"
    label: str  # what varies within the benchmark, e.g. "16 seeds", "1024 agents", "CartPole-v1 x 256"
    agents: int
    steps: int  # env steps per agent
    ours: list[str]
    peers: dict[str, list[str] | None] = dataclasses.field(default_factory=dict)  # None: not installed
    per_agent_peers: tuple[str, ...] = ()  # peers that run one agent (sb3): ratios also per agent


def _train(bench: str, seeds: int, steps: int, *extra: str, devices: int = 1) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "train.py"), bench, str(seeds), str(steps), str(devices), *extra]


def _env(name: str, num_envs: int, seconds: float) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "benchmarks" / "env_throughput.py"),
        "--envs",
        name,
        "--num-envs",
        str(num_envs),
        "--seconds",
        str(seconds),
        "--repeats",
        "3",
        "--no-b1",
        "--out",
        "",
        "--json",
    ]


def _peer_python(peers_dir: Path, name: str) -> Path | None:
    python = peers_dir / name / "bin" / "python"
    return python if python.exists() else None


def plan(
    suite: str,
    *,
    tiny: bool = False,
    peers: bool = False,
    peers_dir: Path | None = None,
    cpu_devices: int = 0,
    steps: dict[str, int] | None = None,
    only: tuple[str, ...] = (),
) -> list[Measurement]:
    """The measurements of ``suite`` ("quick" or "full"); ``tiny`` shrinks every length for smoke tests.

    ``only`` keeps the named benchmarks (e.g. ``("B4",)``). ``steps`` overrides the env steps per agent
    of B1, B2 or B3 (e.g. ``{"B2": 5000}``, as benchmarks/README.md's B2 section explains).
    """
    if suite not in ("quick", "full"):
        raise ValueError(f"unknown suite {suite!r}: choose 'quick' or 'full'")
    unknown_only = sorted(set(only) - set(BENCHMARKS))
    if unknown_only:
        raise ValueError(f"unknown benchmark(s) {unknown_only}: choose from {list(BENCHMARKS)}")
    steps = dict(steps or {})
    unknown = sorted(set(steps) - {"B1", "B2", "B3"})
    if unknown or any(n <= 0 for n in steps.values()):
        raise ValueError(f"steps overrides must be B1, B2 or B3 with a positive count, got {steps}")
    full = suite == "full"
    # env steps per agent: (B1, B2, B3, B4 updates, sb3 caps for ppo/sac/dqn)
    if tiny:
        b1, b2, b3, b4_updates, caps = 4_096, 1_200, 1_200, 1, {"ppo": 4_096, "sac": 300, "dqn": 1_200}
    elif full:
        b1, b2, b3, b4_updates, caps = 500_000, 20_000, 50_000, 8, {"ppo": 100_000, "sac": 5_000, "dqn": 50_000}
    else:
        b1, b2, b3, b4_updates, caps = 100_000, 5_000, 10_000, 2, {"ppo": 50_000, "sac": 1_500, "dqn": 10_000}
    b1, b2, b3 = steps.get("B1", b1), steps.get("B2", b2), steps.get("B3", b3)
    b1_seeds = [1] if tiny else [1, 16]
    b2_seeds, b3_seeds = (2, 2) if tiny else (8, 4)
    agents = [1, 2] if tiny else ([1, 4, 16, 64, 256, 1024, 4096] if full else [1, 16, 256])
    env_counts = [16] if tiny else ([16, 256, 4096] if full else [256])
    env_names = (
        ["CartPole-v1"]
        if tiny
        else (
            ["CartPole-v1", "Pendulum-v1", "Breakout-MinAtar", "brax/ant"] if full else ["CartPole-v1", "Pendulum-v1"]
        )
    )
    peers_dir = peers_dir or Path(os.environ.get("PEERS_DIR", "/tmp/pjl-peers"))
    rejax = _peer_python(peers_dir, "rejax") if peers else None
    sb3 = _peer_python(peers_dir, "sb3") if peers else None

    def peer_cmds(algo: str, env: str, steps: int, seeds: int) -> dict[str, list[str] | None]:
        if not peers:
            return {}
        # B2 uses benchmarks/rejax_peer.py: the shared script's SAC runs 64x64 networks (see there)
        script = (
            [str(ROOT / "benchmarks" / "rejax_peer.py"), "sac", env, str(steps), str(seeds), "256"]
            if algo == "sac"
            else [str(PEERS / "rejax_bench.py"), algo, env, str(steps), str(seeds)]
        )
        out: dict[str, list[str] | None] = {"rejax 0.1.3": [str(rejax), *script] if rejax else None}
        # benchmarks/sb3_peer.py, not the shared sb3_bench.py: the same update-to-data ratio as ours (see there)
        sb3_script = [str(ROOT / "benchmarks" / "sb3_peer.py"), algo, env, str(min(steps, caps[algo]))]
        out["stable-baselines3"] = [str(sb3), *sb3_script] if sb3 else None
        return out

    rows: list[Measurement] = []
    for seeds in b1_seeds:
        rows.append(
            Measurement(
                "B1",
                f"{seeds} seed{'s' * (seeds > 1)}",
                seeds,
                b1,
                _train("b1", seeds, b1),
                peer_cmds("ppo", "CartPole-v1", b1, seeds),
                ("stable-baselines3",),
            )
        )
        if cpu_devices > 1 and seeds >= cpu_devices:
            rows.append(
                Measurement(
                    "B1",
                    f"{seeds} seeds, sharded over {cpu_devices} CPU devices",
                    seeds,
                    b1,
                    _train("b1", seeds, b1, devices=cpu_devices),
                )
            )
    rows.append(
        Measurement(
            "B2",
            f"{b2_seeds} seeds",
            b2_seeds,
            b2,
            _train("b2", b2_seeds, b2),
            peer_cmds("sac", "Pendulum-v1", b2, b2_seeds),
            ("stable-baselines3",),
        )
    )
    rows.append(
        Measurement(
            "B3",
            f"{b3_seeds} seeds",
            b3_seeds,
            b3,
            _train("b3", b3_seeds, b3),
            peer_cmds("dqn", "CartPole-v1", b3, b3_seeds),
            ("stable-baselines3",),
        )
    )
    if not tiny:  # the sb3 target: an 8-seed sweep against sb3's one run (B2 is 8 seeds already)
        for algo, bench, env, n in (("ppo", "b1", "CartPole-v1", b1), ("dqn", "b3", "CartPole-v1", b3)):
            sb3_only = {k: v for k, v in peer_cmds(algo, env, n, 8).items() if k == "stable-baselines3"}
            rows.append(
                Measurement(
                    "S8",
                    f"{algo.upper()} ({bench.upper()} config), 8 seeds",
                    8,
                    n,
                    _train(bench, 8, n),
                    sb3_only,
                    ("stable-baselines3",),
                )
            )
    steps_per_update = 16 * 128  # B1's 16 envs x 128 steps
    for n in agents:
        steps = b4_updates * steps_per_update
        rows.append(Measurement("B4", f"{n} agents", n, steps, _train("b1", n, steps, "eval_episodes=0")))
    for name in env_names:
        for n in env_counts:
            rows.append(Measurement("B5", f"{name} x {n}", n, 0, _env(name, n, 0.2 if tiny else 1.0)))
    if not tiny:  # brax ant PPO: 50M steps on a GPU, a short run on the CPU
        ant_steps = 50_000_000 if _on_gpu() else (2 if not full else 8) * 256 * 16
        rows.append(Measurement("ant", "PPO brax/ant", 1, ant_steps, _train("ant", 1, ant_steps, "eval_episodes=0")))
    return [m for m in rows if not only or m.benchmark in only]


def _on_gpu() -> bool:
    """Whether jax sees a GPU, asked in a child so this process never initializes a backend."""
    out = subprocess.run(
        [sys.executable, "-c", "import jax; print(jax.devices()[0].platform)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() in ("gpu", "cuda", "rocm")


def measure(cmd: list[str]) -> dict[str, Any]:
    """run.measure's JSON line of ``cmd``, plus ``process_wall_s`` (imports and compile included)."""
    import run as single  # benchmarks/run.py: one measurement process, its last JSON line

    t0 = time.perf_counter()
    result = single.measure(cmd)
    result["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return result


def _normalize(m: Measurement, result: dict[str, Any]) -> dict[str, Any]:
    """One run's figures under the suite's names, whichever script produced them."""
    if m.benchmark == "B5":
        env = result["envs"][0]
        return {
            "sps": env["steps_per_s"],
            "compile_s": env["compile_s"],
            "run_s": None,
            "wall_s": result["process_wall_s"],
            "peak_rss_mb": result.get("peak_rss_mb"),
            "device_peak_mb": result.get("device_peak_mb"),
            "final_return_mean": None,
            "final_return_min": None,
            "device": result.get("backend"),
        }
    return {
        "sps": result["sps"],
        "compile_s": result.get("compile_s"),
        "run_s": result.get("run_s"),
        "wall_s": result["process_wall_s"],
        "peak_rss_mb": result.get("peak_rss_mb"),
        "device_peak_mb": result.get("device_peak_mb"),
        "final_return_mean": result.get("final_return_mean"),
        "final_return_min": result.get("final_return_min", result.get("final_return_mean")),
        "device": result.get("device"),
        "steps": result.get("steps"),
    }


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run(measurements: list[Measurement], repeats: int = 1, log=print) -> list[dict[str, Any]]:
    """Runs every measurement ``repeats`` times (ours, then each peer, per round); returns the rows."""
    rows = []
    for m in measurements:
        runs: dict[str, list[dict[str, Any]]] = {"purejaxlib": []}
        runs.update({lib: [] for lib, cmd in m.peers.items() if cmd is not None})
        failed: dict[str, str] = {}  # peer -> why its run failed; ours failing is an error
        for round_ in range(repeats):
            for lib in runs:
                if lib in failed:
                    continue
                cmd = m.ours if lib == "purejaxlib" else m.peers[lib]
                try:
                    result = _normalize(m, measure(cmd))
                except RuntimeError as error:
                    if lib == "purejaxlib":
                        raise
                    failed[lib] = f"failed: {str(error)[-300:]}"
                    log(f"{m.benchmark} {m.label} round {round_ + 1}: {lib}: {failed[lib]}")
                    continue
                runs[lib].append(result)
                log(
                    f"{m.benchmark} {m.label} round {round_ + 1}: {lib}: {result['sps']:,.0f} env steps/s, "
                    f"compile {result['compile_s']} s, peak RSS {result['peak_rss_mb']} MB"
                )
        for lib in failed:  # reported, never estimated
            del runs[lib]
            rows.append(
                {"benchmark": m.benchmark, "label": m.label, "lib": lib, "missing": failed[lib].replace("\n", " ")}
            )
        for lib, results in runs.items():
            row = {
                "benchmark": m.benchmark,
                "label": m.label,
                "lib": lib,
                "agents": m.agents if lib == "purejaxlib" or lib not in m.per_agent_peers else 1,
                "steps": results[0].get("steps") or m.steps,
                "runs": results,
            }
            for key in ("sps", "compile_s", "run_s", "wall_s", "peak_rss_mb", "device_peak_mb", "final_return_mean"):
                row[key] = _median([r[key] for r in results])
            mins = [r["final_return_min"] for r in results if r["final_return_min"] is not None]
            row["final_return_min"] = min(mins) if mins else None
            row["device"] = results[0].get("device")
            if lib != "purejaxlib":
                ours = runs["purejaxlib"]
                row["ours_vs_this_sps"] = statistics.median(a["sps"] / b["sps"] for a, b in zip(ours, results))
                if m.agents > 1 and lib in m.per_agent_peers:
                    row["ours_vs_this_sps_per_agent"] = row["ours_vs_this_sps"] / m.agents
                if all(r["compile_s"] for r in results) and all(a["compile_s"] for a in ours):
                    row["ours_vs_this_compile"] = statistics.median(
                        a["compile_s"] / b["compile_s"] for a, b in zip(ours, results)
                    )
            rows.append(row)
        for lib, cmd in m.peers.items():
            if cmd is None:
                rows.append(
                    {
                        "benchmark": m.benchmark,
                        "label": m.label,
                        "lib": lib,
                        "missing": "not installed (python benchmarks/run.py --setup-peers)",
                    }
                )
    return rows


def check_schema(report: dict[str, Any]) -> None:
    """Raises ValueError naming the first missing field of a suite report (schema ``SCHEMA``)."""
    if report.get("schema") != SCHEMA:
        raise ValueError(f"schema {report.get('schema')!r}, expected {SCHEMA}")
    missing = [k for k in META_KEYS if k not in report.get("meta", {})]
    if missing:
        raise ValueError(f"meta lacks {missing}")
    for i, row in enumerate(report.get("rows", [])):
        keys = ("benchmark", "label", "lib", "missing") if "missing" in row else ROW_KEYS
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"row {i} ({row.get('benchmark')} {row.get('label')} {row.get('lib')}) lacks {missing}")


def machine() -> str:
    from run import cpu_name  # the one definition, shared with run.py

    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}"


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']} ({meta['device']}); command: `{meta['command']}`",
        "",
        "| benchmark | case | library | env steps/s | compile s | wall s | peak RSS MB | device peak MB | "
        "final return (mean, min) | ours / this (sps) | ours / this (compile) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "missing" in r:
            lines.append(f"| {r['benchmark']} | {r['label']} | {r['lib']} | {r['missing']} | | | | | | | |")
            continue
        final = "" if r["final_return_mean"] is None else f"{r['final_return_mean']:.0f}, {r['final_return_min']:.0f}"
        ratio = _fmt(r.get("ours_vs_this_sps"), ".2f") + ("x" if r.get("ours_vs_this_sps") else "")
        if r.get("ours_vs_this_sps_per_agent") is not None:
            ratio += f" ({r['ours_vs_this_sps_per_agent']:.2f}x per agent)"
        cratio = _fmt(r.get("ours_vs_this_compile"), ".2f") + ("x" if r.get("ours_vs_this_compile") else "")
        lib = r["lib"] if r["lib"] != "stable-baselines3" else "stable-baselines3 (1 agent)"
        lines.append(
            f"| {r['benchmark']} | {r['label']} | {lib} | {_fmt(r['sps'])} | {_fmt(r['compile_s'], '.1f')} | "
            f"{_fmt(r['wall_s'], '.1f')} | {_fmt(r['peak_rss_mb'])} | {_fmt(r['device_peak_mb'])} | {final} | "
            f"{ratio} | {cratio} |"
        )
    scaling = [r for r in report["rows"] if r["benchmark"] == "B4" and "sps" in r]
    if scaling:
        fits = [r["agents"] for r in scaling if r["peak_rss_mb"] is not None and r["peak_rss_mb"] < 24 * 1024]
        lines += ["", f"B4: largest agent count measured within 24 GB of RSS: {max(fits) if fits else 'none'}."]
    return "\n".join(lines) + "\n"


def plots(report: dict[str, Any], stem: Path) -> list[Path]:
    """``<stem>_b4.png`` (aggregate sps and compile time against agents) and ``<stem>_sps.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    scaling = [r for r in report["rows"] if r["benchmark"] == "B4" and "sps" in r]
    if scaling:
        fig, ax = plt.subplots(figsize=(6, 4))
        agents = [r["agents"] for r in scaling]
        ax.plot(agents, [r["sps"] for r in scaling], "o-", label="aggregate env steps/s")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("vmapped PPO agents (B1 config)")
        ax.set_ylabel("env steps/s")
        twin = ax.twinx()
        twin.plot(agents, [r["compile_s"] for r in scaling], "s--", color="tab:orange", label="compile s")
        twin.set_ylabel("compile seconds")
        twin.set_ylim(bottom=0)
        ax.set_title(f"B4 scaling, {report['meta']['device']}")
        fig.legend(loc="lower right", bbox_to_anchor=(0.85, 0.18))
        fig.tight_layout()
        path = stem.parent / f"{stem.name}_b4.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    bars = [r for r in report["rows"] if "sps" in r and r["benchmark"] in ("B1", "B2", "B3", "S8")]
    if bars:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(bars) + 1.2))
        names = [f"{r['benchmark']} {r['label']}: {r['lib']}" for r in bars]
        ax.barh(
            names,
            [r["sps"] for r in bars],
            color=["tab:blue" if r["lib"] == "purejaxlib" else "tab:gray" for r in bars],
        )
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("env steps/s (all agents, compile excluded)")
        fig.tight_layout()
        path = stem.parent / f"{stem.name}_sps.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main(
    suite: str,
    *,
    tiny: bool,
    peers: bool,
    setup_peers: bool,
    repeats: int,
    cpu_devices: int,
    out: Path,
    command: list[str],
    steps: dict[str, int] | None = None,
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    peers_dir = Path(os.environ.get("PEERS_DIR", "/tmp/pjl-peers"))
    if setup_peers:
        # A peer that cannot be installed is reported in its rows ("not installed", or its run's
        # failure when the venv exists without the package), so a failed setup only warns here.
        setup = subprocess.run(
            ["bash", str(PEERS / "setup_peers.sh")], check=False, env={**os.environ, "PEERS_DIR": str(peers_dir)}
        )
        if setup.returncode:
            print(
                f"warning: setup_peers.sh exited {setup.returncode}; peers it could not build are reported missing",
                file=sys.stderr,
                flush=True,
            )
    measurements = plan(
        suite,
        tiny=tiny,
        peers=peers or setup_peers,
        peers_dir=peers_dir,
        cpu_devices=cpu_devices,
        steps=steps,
        only=only,
    )
    rows = run(measurements, repeats=repeats, log=lambda s: print(s, flush=True))
    device = next((r["device"] for r in rows if r.get("device")), "unknown")
    report = {
        "schema": SCHEMA,
        "meta": {
            "suite": suite,
            "tiny": tiny,
            "repeats": repeats,
            "steps_overrides": dict(steps or {}),
            "only": list(only),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "device": device,
            "python": platform.python_version(),
            "command": " ".join(command),
        },
        "rows": rows,
    }
    check_schema(report)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"suite_{suite}{'_tiny' if tiny else ''}{''.join('_' + b for b in only)}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    stem.with_suffix(".md").write_text(table)
    report["files"] = [str(stem.with_suffix(".json")), str(stem.with_suffix(".md")), *map(str, plots(report, stem))]
    print(table)
    return report
