"""PPO on the env suites: the MinAtar table and one env of each outside suite, 4 seeds each.

    python benchmarks/suites.py minatar-breakout [--steps N] [--torso auto|mlp]
    python benchmarks/suites.py navix-empty | xminigrid-empty | jumanji-snake | craftax-classic
    python benchmarks/suites.py --report          # results/suites.md from the results so far

Each cell trains its seeds vmapped in one program (``ppo.train``), then each seed's policy plays
``EPISODES`` greedy episodes (``evaluation.evaluate``). Result files: ``results/suites/<cell>.json``
(config, per-seed final training return and evaluation return, the IQM with its 95% interval, the
training curves, seconds, machine, command) and ``<cell>.png`` (the curves); ``--torso mlp`` adds
``-mlp`` to the name and a ``--steps`` other than the cell's budget adds it (``-1M``).

MinAtar cells use gymnax-blines' PPO config for MinAtar (``agents/<game>/ppo.yaml``: 64 envs x 128
steps, 8 minibatches x 4 epochs, lr 5e-4, gamma 0.999, lambda 0.95, clip 0.2, entropy 0.01, 256x256
MLP on the flattened grid), whose 10M-step returns are the anchors (Breakout about 28, Asterix 15,
Freeway 58, SpaceInvaders 131). ``--torso auto`` (the default) puts our CNN torso in front of that
MLP; ``--torso mlp`` is gymnax-blines' network exactly. Thresholds (``THRESHOLD``) are stated before
running and checked on the evaluation IQM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from onpolicy_cells import evaluate_seeds, plot_curves, train_and_evaluate
from stamp import machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "suites"
SEEDS = 4
EPISODES = 32

MINATAR = dict(
    num_envs=64,
    num_steps=128,
    update_epochs=4,
    num_minibatches=8,
    lr=5e-4,
    anneal_lr=False,
    gamma=0.999,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    activation="relu",
    hidden=(256, 256),
    steps=10_000_000,
)
GRID = dict(
    num_envs=32,
    num_steps=64,
    update_epochs=4,
    num_minibatches=4,
    lr=5e-4,
    anneal_lr=True,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    activation="relu",
    hidden=(128, 128),
)
CELLS: dict[str, dict[str, Any]] = {
    "minatar-breakout": dict(MINATAR, env="Breakout-MinAtar"),
    "minatar-asterix": dict(MINATAR, env="Asterix-MinAtar"),
    "minatar-freeway": dict(MINATAR, env="Freeway-MinAtar"),
    "minatar-spaceinvaders": dict(MINATAR, env="SpaceInvaders-MinAtar"),
    "navix-empty": dict(GRID, env="navix/Navix-Empty-8x8-v0", steps=500_000),
    "xminigrid-empty": dict(GRID, env="xminigrid/MiniGrid-Empty-8x8", steps=500_000),
    "jumanji-snake": dict(GRID, env="jumanji/Snake-v1", steps=2_000_000, num_envs=64),
    # Craftax-Classic symbolic at a CPU-sized budget, with the Craftax paper's PPO settings but the
    # width (its ppo.py: lambda 0.8, lr 2e-4, 4 epochs x 8 minibatches, one fresh world per 16 envs
    # a step). The GPU-sized config is CRAFTAX_GPU (--gpu).
    "craftax-classic": dict(
        GRID,
        env="craftax/Craftax-Classic-Symbolic-v1",
        steps=1_000_000,
        num_envs=64,
        num_minibatches=8,
        gae_lambda=0.8,
        lr=2e-4,
        reset_pool=4,
    ),
}
# The Craftax paper's PPO budget and network for a GPU: 1024 envs x 64 steps, 1e9 env steps, 512-wide
# layers (``python benchmarks/suites.py craftax-classic --gpu``; about 2.2k env steps/s on this CPU).
CRAFTAX_GPU = dict(num_envs=1024, num_steps=64, steps=1_000_000_000, hidden=(512, 512, 512), reset_pool=64)
# How each cell's policy is evaluated: greedy by default; Craftax as its paper reports achievement
# rates, from the sampled policy, keeping the achievement flags of each episode's last step.
EVAL: dict[str, dict[str, Any]] = {
    "craftax-classic": dict(deterministic=False, record=("Achievements/",)),
}
ANCHOR = {
    "minatar-breakout": 28.0,
    "minatar-asterix": 15.0,
    "minatar-freeway": 58.0,
    "minatar-spaceinvaders": 131.0,
}
THRESHOLD = {
    # navix: reward 1 on reaching the goal, within 100 steps; the uniform policy reaches it rarely
    "navix-empty": 0.9,
    # xminigrid: 1 - 0.9 * steps / max_steps on reaching the goal; a shortest path scores about 0.96
    "xminigrid-empty": 0.9,
    # Snake: one point a fruit; the uniform policy eats almost none before it collides
    "jumanji-snake": 3.0,
    # Craftax: the trained policy's return IQM above the untrained policy's 95% interval (measured
    # in the same run: "baseline"); the achievement rates are reported, with no bar.
    "craftax-classic": "above the untrained policy",
}


def run(cell: str, steps: int | None, torso: str, gpu: bool = False) -> dict[str, Any]:
    import jax
    import numpy as np

    from purejaxlib import stats
    from purejaxlib.algos import ppo

    fields = dict(CELLS[cell], **(CRAFTAX_GPU if gpu else {}))
    total = int(steps or fields.pop("steps"))
    fields.pop("steps", None)
    config = ppo.Config(**fields, total_timesteps=total, torso=torso)
    how = {"deterministic": True, **EVAL.get(cell, {})}
    _, ev, record = train_and_evaluate(config, SEEDS, EPISODES, **how)
    extra: dict[str, Any] = {}
    if ev.final_info:  # each recorded flag's rate over all seeds' episodes, percent
        extra["final_info_rate"] = rates(ev.final_info)
    if isinstance(THRESHOLD.get(cell), str):  # the untrained policy, same seeds and evaluation keys
        start = jax.vmap(ppo.init, in_axes=(None, 0))(config, jax.random.split(jax.random.key(0), SEEDS))
        untrained = evaluate_seeds(config, start, SEEDS, EPISODES, **how)
        base = np.asarray(untrained.returns).mean(axis=1)
        extra["baseline_return"] = base.tolist()
        extra["baseline_iqm_ci"] = stats.stratified_bootstrap_ci(base)
        extra["baseline_final_info_rate"] = rates(untrained.final_info)
    out = {
        "cell": cell,
        "config": {**fields, "total_timesteps": total, "torso": torso, "image": config.image},
        "seeds": SEEDS,
        **record,
        "anchor": ANCHOR.get(cell),
        "threshold": THRESHOLD.get(cell),
        "evaluation": {"episodes": EPISODES, **{k: list(v) if isinstance(v, tuple) else v for k, v in how.items()}},
        **extra,
        "machine": machine(),
    }
    print(json.dumps({k: v for k, v in out.items() if k not in ("curve", "env_steps")}), flush=True)
    return out


def rates(final_info: dict[str, Any]) -> dict[str, float]:
    """Percent of all seeds' episodes whose recorded flag was set on their last step."""
    import numpy as np

    return {k: float(np.mean(np.asarray(v) > 0) * 100) for k, v in final_info.items()}


def plot(result: dict[str, Any], path: Path) -> None:
    anchor = (result["anchor"], "gymnax-blines PPO at 10M") if result.get("anchor") is not None else None
    label = f"PPO, torso {result['config']['torso']}"
    curves = {label: (result["env_steps"], result["curve"])}
    plot_curves(curves, result["config"]["env"], "training episode return", path, anchor)


def verdict(r: dict[str, Any]) -> str:
    """The cell's bar and whether the evaluation IQM cleared it."""
    iqm = r["eval_iqm_ci"][0]
    if r.get("anchor") is not None:
        return f"{r['anchor']} at 10M: {'met' if iqm >= r['anchor'] else 'missed'}"
    if isinstance(r.get("threshold"), str):
        high = r["baseline_iqm_ci"][2]
        return f"untrained {r['baseline_iqm_ci'][0]:.2f} (CI high {high:.2f}): {'met' if iqm > high else 'missed'}"
    if r.get("threshold") is not None:
        return f">= {r['threshold']}: {'met' if iqm >= r['threshold'] else 'missed'}"
    return "-"


def report() -> str:
    lines = [
        "| cell | env | torso | env steps | seconds (4 seeds) | final train return IQM [95% CI] | eval return per seed "
        "| eval IQM [95% CI] | bar |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    results = [json.loads(path.read_text()) for path in sorted(OUT.glob("*.json"))]
    for r in results:
        t, e = r["train_iqm_ci"], r["eval_iqm_ci"]
        lines.append(
            f"| {r['cell']} | {r['config']['env']} | {r['config']['torso']} | {r['config']['total_timesteps']:,} | "
            f"{r['seconds']:.0f} | {t[0]:.1f} [{t[1]:.1f}, {t[2]:.1f}] | "
            + ", ".join(f"{s:.1f}" for s in r["eval_return"])
            + f" | {e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}] | {verdict(r)} |"
        )
    for r in results:
        if r.get("final_info_rate"):
            n = r["seeds"] * r["evaluation"]["episodes"]
            lines += ["", f"{r['cell']}: percent of {n} episodes (sampled policy) with each achievement", ""]
            lines += ["| achievement | trained | untrained |", "|---|---|---|"]
            for k, v in r["final_info_rate"].items():
                base = r.get("baseline_final_info_rate", {}).get(k, float("nan"))
                lines.append(f"| {k.split('/', 1)[-1]} | {v:.1f} | {base:.1f} |")
    text = "\n".join(lines)
    (HERE / "results" / "suites.md").write_text(text + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cell", nargs="?", choices=sorted(CELLS))
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: the cell's)")
    parser.add_argument("--torso", default="auto", choices=("auto", "mlp", "cnn"))
    parser.add_argument("--gpu", action="store_true", help="craftax-classic: the paper's GPU budget (CRAFTAX_GPU)")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.cell:
        OUT.mkdir(parents=True, exist_ok=True)
        if args.gpu and args.cell != "craftax-classic":
            parser.error("--gpu is the craftax-classic cell's GPU config")
        result = run(args.cell, args.steps, args.torso, args.gpu)
        name = args.cell if args.torso == "auto" else f"{args.cell}-{args.torso}"
        name += "-gpu" if args.gpu else ""
        if args.steps is not None and args.steps != CELLS[args.cell].get("steps"):
            name += f"-{args.steps / 1e6:g}M"  # a run off the cell's budget keeps its own file
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
        plot(result, OUT / f"{name}.png")
    print(report())


if __name__ == "__main__":
    main()
