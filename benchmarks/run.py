"""Runs benchmarks side by side with peer libraries; writes JSON and a Markdown table per benchmark.

    python benchmarks/run.py                              # B1 at 500k steps, purejaxlib only
    python benchmarks/run.py --peers --repeats 3          # B1 against rejax, interleaved runs
    python benchmarks/run.py --bench b2 --seeds 8 --peers # B2 (SAC Pendulum) against rejax and SBX
    python benchmarks/run.py --steps 50000                # a quick smoke run
    python benchmarks/run.py --suite quick                # every benchmark (B1-B5, ant), short (benchmarks/suite.py)
    python benchmarks/run.py --suite full --setup-peers   # the published configs, beside rejax and sb3

Each measurement is a fresh process printing one JSON line (compile timed apart from the run).
Runs of different libraries are interleaved, and each ratio is taken between runs of the same
round, then the median over rounds is reported: the machines here are shared and noisy.
Peers come from ../shared/peers (setup_peers.sh builds their virtual environments); a peer that
is not installed is reported as missing, never estimated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/tmp/pjl-peers"))


# benchmark -> (rejax algorithm name, env, default steps)
BENCHES = {
    "b1": ("ppo", "CartPole-v1", 500_000),
    "b2": ("sac", "Pendulum-v1", 20_000),
    "b3": ("dqn", "CartPole-v1", 50_000),
}


def commands(bench: str, seeds: int, steps: int, peers: bool, cpu_devices: int) -> dict[str, list[str] | None]:
    """Label -> command for each variant measured; the first peer label is the ratio reference."""
    ours = [sys.executable, str(ROOT / "benchmarks" / "train.py"), bench, str(seeds), str(steps)]
    cmds: dict[str, list[str] | None] = {"purejaxlib": ours}
    if cpu_devices > 1 and seeds >= cpu_devices:
        cmds[f"purejaxlib, seeds sharded over {cpu_devices} CPU devices"] = ours + [str(cpu_devices)]
    if bench == "b2":
        # The shared rejax script runs B2 with 64x64 networks (see rejax_peer.py): measure ours there too.
        cmds["purejaxlib, 64x64 networks"] = ours + ["1", "hidden=(64,64)"]
    if peers:
        algo, env, _ = BENCHES[bench]
        rejax_python = PEERS_DIR / "rejax" / "bin" / "python"
        script = PEERS / "rejax_bench.py"
        ok = rejax_python.exists() and script.exists()
        if bench == "b2":
            peer = [
                str(rejax_python),
                str(ROOT / "benchmarks" / "rejax_peer.py"),
                "sac",
                env,
                str(steps),
                str(seeds),
                "256",
            ]
            cmds["rejax 0.1.3"] = peer if ok else None
            label = "rejax 0.1.3, shared script (64x64 networks)"
            cmds[label] = [str(rejax_python), str(script), algo, env, str(steps), str(seeds)] if ok else None
        else:
            cmds["rejax 0.1.3"] = [str(rejax_python), str(script), algo, env, str(steps), str(seeds)] if ok else None
        if bench in ("b2", "b3"):  # SBX (benchmarks/setup_sbx.sh): SAC and DQN on our configs
            sbx_python = PEERS_DIR / "sbx" / "bin" / "python"
            peer = [str(sbx_python), str(ROOT / "benchmarks" / "sbx_peer.py"), algo, env, str(steps), str(seeds)]
            cmds["sbx 0.28.0"] = peer if sbx_python.exists() else None
    return cmds


def measure(cmd: list[str]) -> dict:
    """The last JSON line ``cmd`` prints, with ``peak_rss_mb`` of the process added where it gives none.

    The peak RSS comes from the kernel's accounting of the reaped child (``wait4``), so peers that
    report no memory are measured the same way as ours.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({returncode}):\n{stderr[-2000:]}")
    result = json.loads(lines[-1])
    result.setdefault("peak_rss_mb", round(usage.ru_maxrss / 1024, 1))  # ru_maxrss is KiB on Linux
    return result


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", choices=sorted(BENCHES), default="b1")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 1 and 16 (b1), 8 (b2), 4 (b3)")
    parser.add_argument("--steps", type=int, default=None, help="default: the benchmark's (500k, 20k, 50k)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--peers", action="store_true", help="also run rejax (needs shared/peers/setup_peers.sh)")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="also run with the CPU split into this many XLA devices (seeds sharded over them)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--suite",
        choices=["quick", "full"],
        default=None,
        help="run a whole suite (B1-B5, brax ant) instead of one --bench; see benchmarks/suite.py",
    )
    parser.add_argument("--tiny", action="store_true", help="with --suite: tiny lengths (a smoke run)")
    parser.add_argument(
        "--suite-steps",
        nargs="+",
        default=[],
        metavar="BENCH=N",
        help="with --suite: env steps per agent for B1, B2 or B3, e.g. B2=5000",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="BENCH",
        help="with --suite: only these benchmarks (B1 B2 B3 S8 B4 B5 ant)",
    )
    parser.add_argument(
        "--setup-peers", action="store_true", help="with --suite: build the peers' environments first (implies --peers)"
    )
    args = parser.parse_args()
    if args.suite is None and (args.tiny or args.setup_peers or args.suite_steps or args.only):
        parser.error("--tiny, --setup-peers, --suite-steps and --only go with --suite")
    suite_steps = {}
    for item in args.suite_steps:
        bench, _, count = item.partition("=")
        if not count.isdigit():
            parser.error(f"--suite-steps takes BENCH=N (e.g. B2=5000), got {item!r}")
        suite_steps[bench.upper()] = int(count)
    if args.suite is not None:
        import suite

        suite.main(
            args.suite,
            tiny=args.tiny,
            peers=args.peers,
            setup_peers=args.setup_peers,
            repeats=args.repeats,
            cpu_devices=args.cpu_devices,
            out=Path(args.out),
            command=[Path(sys.executable).name] + sys.argv,
            steps=suite_steps,
            only=tuple(next((b for b in suite.BENCHMARKS if b.lower() == o.lower()), o) for o in args.only),
        )
        return

    bench = args.bench
    label = bench.upper()
    steps = args.steps or BENCHES[bench][2]
    seed_counts = args.seeds or {"b1": [1, 16], "b2": [8], "b3": [4]}[bench]
    rows = []
    for seeds in seed_counts:
        cmds = commands(bench, seeds, steps, args.peers, args.cpu_devices)
        runs: dict[str, list[dict]] = {lib: [] for lib in cmds}
        for round_ in range(args.repeats):
            for lib, cmd in cmds.items():
                if cmd is None:
                    continue
                result = measure(cmd)
                runs[lib].append(result)
                print(
                    f"{label} seeds={seeds} round {round_ + 1}: {lib}: {result['sps']:,} sps, "
                    f"compile {result['compile_s']} s, final {result['final_return_mean']}",
                    flush=True,
                )
        peers = [lib for lib in runs if not lib.startswith("purejaxlib") and cmds[lib] is not None]
        for lib, results in runs.items():
            row = {"benchmark": label, "seeds": seeds, "lib": lib, "steps": steps, "runs": results}
            if cmds[lib] is None:
                row["missing"] = "not installed (run ../shared/peers/setup_peers.sh)"
            else:
                row["sps_median"] = statistics.median(r["sps"] for r in results)
                row["compile_s_median"] = statistics.median(r["compile_s"] for r in results)
                row["final_return_mean"] = statistics.median(r["final_return_mean"] for r in results)
                row["final_return_min"] = min(r["final_return_min"] for r in results)
                if lib.startswith("purejaxlib") and peers:
                    # ratios round by round against the peer run on the same network size
                    ref = next((p for p in peers if ("64x64" in p) == ("64x64" in lib)), peers[0])
                    peer_runs = runs[ref]
                    row["vs"] = ref
                    row["sps_ratio_median"] = statistics.median(a["sps"] / b["sps"] for a, b in zip(results, peer_runs))
                    row["compile_ratio_median"] = statistics.median(
                        a["compile_s"] / b["compile_s"] for a, b in zip(results, peer_runs)
                    )
                    row["sps_ratios"] = {  # against every peer at the same network size
                        p: statistics.median(a["sps"] / b["sps"] for a, b in zip(results, runs[p]))
                        for p in peers
                        if ("64x64" in p) == ("64x64" in lib)
                    }
            rows.append(row)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{bench}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = [
        f"Measured {meta['date']} on {meta['machine']}; command: `{meta['command']}`",
        "",
        "| benchmark | seeds | library | env steps/s (median) | compile s | final return (mean, min) "
        "| sps ratio vs peer | compile ratio vs peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "missing" in r:
            table.append(f"| {label} | {r['seeds']} | {r['lib']} | {r['missing']} | | | | |")
            continue
        ratio = f"{r['sps_ratio_median']:.2f}x" if "sps_ratio_median" in r else ""
        if len(r.get("sps_ratios", {})) > 1:
            ratio = "; ".join(f"{v:.2f}x {p.split()[0]}" for p, v in r["sps_ratios"].items())
        cratio = f"{r['compile_ratio_median']:.2f}x" if "compile_ratio_median" in r else ""
        table.append(
            f"| {label} | {r['seeds']} | {r['lib']} | {r['sps_median']:,.0f} | {r['compile_s_median']:.1f} | "
            f"{r['final_return_mean']:.0f}, {r['final_return_min']:.0f} | {ratio} | {cratio} |"
        )
    (out / f"{bench}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
