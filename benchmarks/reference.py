"""Reference results: every algorithm of the package on standard tasks at published budgets, across
seeds, beside the anchors' published figures and stable-baselines3 run here.

    python benchmarks/reference.py                    # run every cell not yet in results/, then the table
    python benchmarks/reference.py --only ppo-cartpole dqn-cartpole --force   # rerun some cells
    python benchmarks/reference.py --sb3              # also stable-baselines3 where a cell names it
    python benchmarks/reference.py --report           # table, plots and README from saved results only
    python benchmarks/reference.py --list             # the cells, their configs and anchors

A cell is one algorithm on one task at one budget with one config; its seeds (8 by default) train
vmapped in one program (:func:`purejaxlib.sweep`). Each finished cell is written at once to
``results/reference/<cell>.json``, so an interrupted run resumes where it stopped. The score of a
seed is :func:`purejaxlib.stats.final_return` of its training ``episode_return`` curve (the mean of
the last 10% of updates); beside it, a deterministic evaluation of the final policy (32 episodes,
:func:`purejaxlib.evaluate_sweep`). Aggregates are IQMs with 95% stratified-bootstrap intervals.

An anchor is compared on the score of its own kind: CleanRL / Open RL Benchmark report training
episode returns ("train"); the RL Zoo reports deterministic evaluations of the final policy
("eval"). stable-baselines3 runs with the RL Zoo's hyperparameters for the task, at the cell's
budget, one process per seed (``benchmarks/sb3_reference.py`` in its own virtual environment);
its score has the same definition, and the two are compared by the probability of improvement.

Writes ``results/reference.json`` (every cell's config, scores and aggregates), ``reference.md``
(the table, also copied into the README between its ``bench:reference`` markers) and one plot per
task, ``reference_<task>.png`` / ``.svg`` (IQM learning curves with bands, one line per cell).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import itertools
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

import purejaxlib
from purejaxlib import plotting, stats
from purejaxlib.sweep import SweepResult

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CELLS_DIR = RESULTS / "reference"
SB3_PYTHON = Path(os.environ.get("PEERS_DIR", "/tmp/pjl-peers")) / "sb3" / "bin" / "python"
CURVE_POINTS = 200  # saved curve resolution (the score is taken from the full curve first)
EVAL_EPISODES = 32
SCHEMA = 1


class Anchor(NamedTuple):
    """A published figure: ``score`` at ``budget`` env steps, of ``kind`` "train" or "eval"."""

    score: float
    budget: int
    kind: str
    source: str


class Sb3(NamedTuple):
    """stable-baselines3's side of a cell: its algorithm and RL Zoo hyperparameters (JSON-able)."""

    algo: str
    kwargs: dict[str, Any]
    seeds: int = 4


class Cell(NamedTuple):
    """One algorithm x task x budget x config."""

    name: str
    algo: str  # module of purejaxlib.algos
    label: str  # what the table calls it
    env: str
    steps: int
    overrides: dict[str, Any]
    anchor: Anchor | None = None
    sb3: Sb3 | None = None
    note: str = ""
    check_steps: int = 0  # the regression check's reduced budget (tests/test_reference.py)

    @property
    def task(self) -> str:
        return self.env.replace("/", "-")

    def config(self, **extra: Any) -> Any:
        module = importlib.import_module(f"purejaxlib.algos.{self.algo}")
        return module.Config(**{"env": self.env, "total_timesteps": self.steps, **self.overrides, **extra})


# ------------------------------------------------------------------------------------ cells

CLEANRL = "Open RL Benchmark, CleanRL"
ZOO = "RL Baselines3 Zoo benchmark.md"

# CleanRL ppo.py's defaults are ppo.Config's: 4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4 annealed.
# tests/test_group_advantages.py's config: every env plays a whole episode (500 steps) per update.
CRITIC_FREE = dict(num_envs=16, num_steps=500, ent_coef=0.0)
# tests/test_learning.py's Pendulum config, tuned for the RL Zoo's 100k budget on seeds 1000-1005
# (benchmarks/README.md): 32 minibatches (the Zoo takes ~15k gradient steps in 100k env steps), a
# constant learning rate, log_std_init 0.
PENDULUM_PPO = dict(
    num_envs=16,
    num_steps=128,
    update_epochs=10,
    num_minibatches=32,
    anneal_lr=False,
    normalize_obs=True,
    normalize_reward=True,
    gamma=0.95,
    ent_coef=0.0,
    lr=1e-3,
    clip_value_loss=False,
)
# rl-zoo's td3.yml and ddpg.yml for Pendulum (20k steps); train_freq [1, "episode"] with gradient_steps -1
# is one gradient step per env step, taken at each episode's end.
ZOO_TD3 = dict(
    gamma=0.98,
    buffer_size=200_000,
    learning_starts=10_000,
    action_noise=0.1,
    gradient_steps=-1,
    train_freq=[1, "episode"],
    learning_rate=1e-3,
    net_arch=[400, 300],
)

CELLS: tuple[Cell, ...] = (
    # ---- on-policy: PPO and its relatives
    Cell(
        "ppo-cartpole",
        "ppo",
        "PPO",
        "CartPole-v1",
        500_000,
        {},
        Anchor(492.4, 500_000, "train", f"{CLEANRL} ppo.py, 3 seeds"),
        Sb3(
            "ppo",
            dict(
                n_envs=8,
                n_steps=32,
                batch_size=256,
                gae_lambda=0.8,
                gamma=0.98,
                n_epochs=20,
                ent_coef=0.0,
                learning_rate="lin_0.001",
                clip_range="lin_0.2",
            ),
        ),
        check_steps=100_000,
    ),
    Cell(
        "a2c-cartpole",
        "ppo",
        "A2C",
        "CartPole-v1",
        500_000,
        dict(
            objective="a2c",
            num_envs=8,
            num_steps=5,
            update_epochs=1,
            num_minibatches=1,
            lr=7e-4,
            ent_coef=0.0,
            gae_lambda=1.0,
            normalize_advantages=False,
            anneal_lr=False,
        ),
        Anchor(500.0, 500_000, "eval", f"{ZOO} a2c, 1 run"),
        Sb3("a2c", dict(n_envs=8, ent_coef=0.0)),
        check_steps=200_000,
    ),
    Cell(
        "reinforce-cartpole",
        "ppo",
        "REINFORCE (critic-free)",
        "CartPole-v1",
        800_000,
        dict(advantage="reinforce", **CRITIC_FREE),
        check_steps=200_000,
    ),
    Cell(
        "rloo-cartpole",
        "ppo",
        "RLOO (critic-free)",
        "CartPole-v1",
        800_000,
        dict(advantage="rloo", group_size=4, **CRITIC_FREE),
        check_steps=200_000,
    ),
    Cell(
        "group-cartpole",
        "ppo",
        "group-relative (critic-free)",
        "CartPole-v1",
        800_000,
        dict(advantage="group", group_size=4, **CRITIC_FREE),
        check_steps=200_000,
    ),
    Cell("mdpo-cartpole", "ppo", "MDPO", "CartPole-v1", 500_000, dict(objective="mdpo"), check_steps=100_000),
    Cell("dpo-cartpole", "ppo", "DPO (discovered)", "CartPole-v1", 500_000, dict(objective="dpo"), check_steps=100_000),
    Cell(
        "ppo-acrobot",
        "ppo",
        "PPO",
        "Acrobot-v1",
        500_000,
        {},
        Anchor(-89.93, 500_000, "train", f"{CLEANRL} ppo.py, 3 seeds"),
        Sb3("ppo", dict(normalize=True, n_envs=16, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0)),
        check_steps=100_000,
    ),
    Cell(
        "ppo-pendulum",
        "ppo",
        "PPO (continuous)",
        "Pendulum-v1",
        100_000,
        PENDULUM_PPO,
        Anchor(-172.23, 100_000, "eval", f"{ZOO} ppo, 1 run"),
        Sb3(
            "ppo",
            dict(
                n_envs=4,
                n_steps=1024,
                gae_lambda=0.95,
                gamma=0.9,
                n_epochs=10,
                ent_coef=0.0,
                learning_rate=1e-3,
                clip_range=0.2,
                use_sde=True,
                sde_sample_freq=4,
            ),
        ),
        check_steps=50_000,
    ),
    Cell(
        "ppo-gru-memorychain",
        "ppo",
        "PPO + GRU",
        "MemoryChain-bsuite",
        100_000,
        dict(recurrent="gru", num_envs=16, num_steps=32, num_minibatches=4, hidden=(32, 32), cell_size=32, lr=1e-3),
        note="memory task: the reward needs the first observation; a memoryless policy scores 0",
        check_steps=40_000,
    ),
    # ---- value-based
    Cell(
        "dqn-cartpole",
        "dqn",
        "DQN",
        "CartPole-v1",
        500_000,
        {},
        Anchor(498.38, 500_000, "train", f"{CLEANRL} dqn_jax.py, 3 seeds"),
        Sb3(
            "dqn",
            dict(
                learning_rate=2.3e-3,
                batch_size=64,
                buffer_size=100_000,
                learning_starts=1000,
                gamma=0.99,
                target_update_interval=10,
                train_freq=256,
                gradient_steps=128,
                exploration_fraction=0.16,
                exploration_final_eps=0.04,
                net_arch=[256, 256],
            ),
        ),
        check_steps=50_000,
    ),
    Cell(
        "dqn-acrobot",
        "dqn",
        "DQN",
        "Acrobot-v1",
        500_000,
        {},
        Anchor(-88.89, 500_000, "train", f"{CLEANRL} dqn_jax.py, 3 seeds"),
        check_steps=100_000,
    ),
    Cell(
        "pqn-cartpole",
        "pqn",
        "PQN",
        "CartPole-v1",
        500_000,
        {},
        note="purejaxql's pqn_cartpole config publishes no figure",
        check_steps=100_000,
    ),
    # ---- continuous control off-policy, RL Zoo budgets
    Cell(
        "sac-pendulum",
        "sac",
        "SAC",
        "Pendulum-v1",
        20_000,
        dict(hidden=(64, 64), lr=1e-3),
        Anchor(-157.0, 20_000, "eval", f"{ZOO} sac, 1 run"),
        Sb3("sac", dict(learning_rate=1e-3)),
        check_steps=5_000,
    ),
    Cell(
        "td3-pendulum",
        "td3",
        "TD3",
        "Pendulum-v1",
        20_000,
        dict(hidden=(64, 64), lr=1e-3),
        Anchor(-151.86, 20_000, "eval", f"{ZOO} td3, 1 run"),
        Sb3("td3", ZOO_TD3),
        check_steps=10_000,
    ),
    Cell(
        "ddpg-pendulum",
        "td3",
        "DDPG",
        "Pendulum-v1",
        20_000,
        dict(hidden=(64, 64), lr=1e-3, num_critics=1, policy_delay=1, target_policy_noise=0.0),
        Anchor(-152.1, 20_000, "eval", f"{ZOO} ddpg, 1 run"),
        Sb3("ddpg", ZOO_TD3),
        check_steps=10_000,
    ),
    Cell(
        "tqc-pendulum",
        "sac",
        "TQC",
        "Pendulum-v1",
        20_000,
        dict(hidden=(64, 64), lr=1e-3, num_critics=2, num_quantiles=25),
        Anchor(-151.34, 20_000, "eval", f"{ZOO} tqc (Pendulum-v0 row), 1 run"),
        Sb3(
            "tqc",
            dict(
                learning_rate=1e-3, use_sde=True, gradient_steps=64, train_freq=64, net_arch=[64, 64], log_std_init=-2.0
            ),
        ),
        check_steps=5_000,
    ),
    # ---- brax (generalized backend), CPU-sized budgets; brax's own trainers publish curves, not figures
    Cell(
        "ppo-brax-inverted-pendulum",
        "ppo",
        "PPO",
        "brax/inverted_pendulum",
        500_000,
        dict(num_envs=16, num_steps=64, lr=3e-3, normalize_obs=True, ent_coef=0.0),
        note="return = steps balanced, at most 1000; brax's PPO colab trains it for 2M steps",
        check_steps=131_072,
    ),
    Cell(
        "sac-brax-inverted-pendulum",
        "sac",
        "SAC",
        "brax/inverted_pendulum",
        20_000,
        dict(hidden=(64, 64), lr=1e-3),
        note="return = steps balanced, at most 1000",
        check_steps=10_000,
    ),
)


def find(names: list[str]) -> list[Cell]:
    by_name = {c.name: c for c in CELLS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown cell(s) {unknown}; cells: {', '.join(by_name)}")
    return [by_name[n] for n in names]


# ------------------------------------------------------------------------------------ running


def downsample(x: np.ndarray, points: int = CURVE_POINTS) -> np.ndarray:
    """``[..., n] -> [..., min(n, points)]``: the NaN-mean of consecutive, near-equal bins."""
    n = x.shape[-1]
    if n <= points:
        return x
    edges = np.linspace(0, n, points + 1).astype(int)
    with warnings.catch_warnings():  # an all-NaN bin (no episode ended in it) stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([np.nanmean(x[..., a:b], axis=-1) for a, b in itertools.pairwise(edges)], axis=-1)


def rounded(x: np.ndarray, digits: int = 2) -> list:
    """JSON-able nested lists with NaN as None."""
    return (
        [None if not np.isfinite(v) else round(float(v), digits) for v in np.ravel(x)]
        if x.ndim <= 1
        else [rounded(row, digits) for row in x]
    )


def run_cell(cell: Cell, seeds: int) -> dict[str, Any]:
    """Trains the cell's seeds in one program, evaluates each, returns its record."""
    module = importlib.import_module(f"purejaxlib.algos.{cell.algo}")
    config = cell.config()
    start = time.perf_counter()
    result = purejaxlib.sweep(module.train, config, seeds=seeds, progress_bar=False)
    wall = time.perf_counter() - start
    returns = np.asarray(result.metrics["episode_return"], np.float64)  # [seeds, updates]
    steps = np.asarray(result.metrics["env_steps"], np.float64)[0]
    evaluation = purejaxlib.evaluate_sweep(result, jax.random.key(10_000), episodes=EVAL_EPISODES)
    return dict(
        schema=SCHEMA,
        cell=cell.name,
        algo=cell.algo,
        env=cell.env,
        steps=cell.steps,
        overrides=cell.overrides,
        seeds=seeds,
        score=rounded(stats.final_return(returns)),
        eval=rounded(np.asarray(evaluation.returns, np.float64).mean(axis=-1)),
        curve_steps=rounded(downsample(steps), 0),
        curve=rounded(downsample(returns)),
        compile_s=round(result.compile_seconds, 1),
        run_s=round(result.run_seconds, 1),
        wall_s=round(wall, 1),
        measured=now(),
        machine=machine(),
        command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    )


def run_sb3(cell: Cell, timeout: float) -> dict[str, Any]:
    """stable-baselines3 on the cell's task and budget, one process per seed."""
    assert cell.sb3 is not None
    runs = []
    for seed in range(cell.sb3.seeds):
        spec = dict(
            algo=cell.sb3.algo,
            env=cell.env,
            steps=cell.steps,
            seed=seed,
            kwargs=cell.sb3.kwargs,
            eval_episodes=EVAL_EPISODES,
            points=CURVE_POINTS,
        )
        # each finished seed is kept, so an interrupted run resumes at the next one
        done_path = CELLS_DIR / f"{cell.name}.sb3-seed{seed}.json"
        if done_path.exists() and json.loads(done_path.read_text()).get("spec") == spec:
            runs.append(json.loads(done_path.read_text())["run"])
            continue
        done = subprocess.run(
            [str(SB3_PYTHON), str(HERE / "sb3_reference.py"), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sb3 {cell.name} seed {seed} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        CELLS_DIR.mkdir(parents=True, exist_ok=True)
        done_path.write_text(json.dumps(dict(spec=spec, run=runs[-1])) + "\n")
        print(
            f"  sb3 {cell.name} seed {seed}: score {runs[-1]['score']:.1f}, eval {runs[-1]['eval']:.1f}, "
            f"{runs[-1]['run_s']:.0f} s",
            flush=True,
        )
    return dict(
        version=runs[0]["version"],
        kwargs=cell.sb3.kwargs,
        seeds=len(runs),
        score=[float(stats.final_return(values(r["curve"]))) for r in runs],  # the one definition, on its curve
        eval=[r["eval"] for r in runs],
        curve_steps=runs[0]["curve_steps"],
        curve=[r["curve"] for r in runs],
        run_s=[r["run_s"] for r in runs],
        measured=now(),
    )


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, jax {jax.__version__} on {jax.default_backend()}"


def cell_path(cell: Cell) -> Path:
    return CELLS_DIR / f"{cell.name}.json"


def load(cell: Cell) -> dict[str, Any] | None:
    path = cell_path(cell)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    same = record.get("overrides") == json.loads(json.dumps(cell.overrides)) and record.get("steps") == cell.steps
    if record.get("schema") != SCHEMA or not same:
        print(
            f"{cell.name}: saved result is stale (schema or config changed); rerun it with --only {cell.name} --force"
        )
        return None
    return record


def save(cell: Cell, record: dict[str, Any]) -> None:
    CELLS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cell_path(cell).with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(cell_path(cell))  # atomic: an interrupted write never leaves half a result


# ------------------------------------------------------------------------------------ report


def values(x: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], np.float64)


def summary(cell: Cell, record: dict[str, Any]) -> dict[str, Any]:
    """The cell's aggregates: IQM and 95% CI of scores and evaluations, the anchor check, sb3."""
    score, evaluation = values(record["score"]), values(record["eval"])
    out: dict[str, Any] = dict(
        cell=cell.name,
        label=cell.label,
        env=cell.env,
        steps=cell.steps,
        seeds=record["seeds"],
        score_iqm=stats.stratified_bootstrap_ci(score, reps=2000, seed=0),
        score_min=float(np.min(score)),
        eval_iqm=stats.stratified_bootstrap_ci(evaluation, reps=2000, seed=0),
        wall_s=record["wall_s"],
        note=cell.note,
    )
    if cell.anchor is not None:
        ours = out["score_iqm" if cell.anchor.kind == "train" else "eval_iqm"]
        out["anchor"] = cell.anchor._asdict()
        # at the anchor when its figure lies inside or below our interval
        out["meets_anchor"] = bool(ours[2] >= cell.anchor.score)
    sb3 = record.get("sb3")
    if sb3:
        theirs, theirs_eval = values(sb3["score"]), values(sb3["eval"])
        out["sb3"] = dict(
            version=sb3["version"],
            seeds=sb3["seeds"],
            score_iqm=stats.stratified_bootstrap_ci(theirs, reps=2000, seed=0),
            eval_iqm=stats.stratified_bootstrap_ci(theirs_eval, reps=2000, seed=0),
            p_improvement=stats.probability_of_improvement(score, theirs, reps=2000, seed=0),
            p_improvement_eval=stats.probability_of_improvement(evaluation, theirs_eval, reps=2000, seed=0),
            run_s_median=float(np.median(sb3["run_s"])),
        )
    return out


def fmt(ci: tuple[float, float, float] | list[float]) -> str:
    point, low, high = ci
    digits = 2 if max(abs(point), abs(low), abs(high)) < 10 else 0
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def table(rows: list[dict[str, Any]], records: dict[str, dict[str, Any]]) -> str:
    dates = sorted(r["measured"] for r in records.values())
    machines = sorted({r["machine"] for r in records.values()})
    lines = [
        f"Measured {dates[0][:16]} to {dates[-1][:16]} UTC on {'; '.join(machines)}; "
        "command: `python benchmarks/reference.py --sb3`. Score: IQM over seeds of each seed's final return "
        "(mean training episode return over the last 10% of updates) with its 95% stratified-bootstrap interval; "
        f"eval: IQM of each seed's mean over {EVAL_EPISODES} deterministic episodes of the final policy. "
        "An anchor is compared on its own kind (train or eval); P(ours > sb3) is the probability of improvement "
        "over stable-baselines3 run here with the RL Zoo's hyperparameters on the same budget.",
        "",
        "| task | algorithm | env steps | seeds | score IQM [95% CI] | worst seed | eval IQM [95% CI] "
        "| anchor (kind, source) | at anchor | sb3 here: score IQM / eval IQM (seeds) | P(ours > sb3) | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        anchor = r.get("anchor")
        anchor_text = (
            f"{anchor['score']:g} at {anchor['budget']:,} ({anchor['kind']}, {anchor['source']})"
            if anchor
            else "none published"
        )
        met = "" if anchor is None else ("yes" if r["meets_anchor"] else "**no**")
        sb3 = r.get("sb3")
        sb3_text = f"{fmt(sb3['score_iqm'])} / {fmt(sb3['eval_iqm'])} ({sb3['seeds']})" if sb3 else ""
        p = fmt(sb3["p_improvement"]) if sb3 else ""
        lines.append(
            f"| {r['env']} | {r['label']} | {r['steps']:,} | {r['seeds']} | {fmt(r['score_iqm'])} | "
            f"{r['score_min']:.0f} | {fmt(r['eval_iqm'])} | {anchor_text} | {met} | {sb3_text} | {p} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def as_sweep_result(x: list, y: list) -> SweepResult:
    """Saved curves as a seed-only :class:`SweepResult` for :func:`plotting.compare_learning_curves`."""
    curve = np.array([values(row) for row in y])
    steps = np.broadcast_to(values(x), curve.shape)
    seeds = list(range(curve.shape[0]))
    return SweepResult(
        metrics={"episode_return": curve, "env_steps": steps}, axes=("seed",), grid={"seed": seeds}, programs=[]
    )


def plots(cells: list[Cell], records: dict[str, dict[str, Any]]) -> list[Path]:
    paths = []
    for task in dict.fromkeys(c.task for c in cells):
        lines = {}
        for cell in (c for c in cells if c.task == task and c.name in records):
            record = records[cell.name]
            lines[f"{cell.label} ({cell.steps:,})"] = as_sweep_result(record["curve_steps"], record["curve"])
            if record.get("sb3"):
                lines[f"sb3 {cell.sb3.algo if cell.sb3 else ''}"] = as_sweep_result(
                    record["sb3"]["curve_steps"], record["sb3"]["curve"]
                )
        if lines:
            paths += plotting.compare_learning_curves(
                lines, RESULTS / f"reference_{task}", title=f"{task}: reference runs"
            )
    return paths


def report(cells: list[Cell], publish_readme: bool = True) -> None:
    records = {c.name: r for c in cells if (r := load(c)) is not None}
    if not records:
        print("no results yet: run benchmarks/reference.py first")
        return
    rows = [summary(c, records[c.name]) for c in cells if c.name in records]
    (RESULTS / "reference.json").write_text(json.dumps(dict(schema=SCHEMA, cells=rows), indent=1) + "\n")
    md = table(rows, records)
    (RESULTS / "reference.md").write_text(md)
    paths = plots(cells, records)
    if publish_readme:
        sys.path.insert(0, str(HERE))
        import publish

        publish.README.write_text(publish.publish(publish.README.read_text(), "reference", md))
    print(md)
    print("wrote", RESULTS / "reference.json", RESULTS / "reference.md", *[p.name for p in paths])


# ------------------------------------------------------------------------------------ exploring a cell's config

TUNING_SEEDS = 1000  # --explore trains seeds 1000, 1001, ...: never the reference's 0-7 or the checks' 0-15 and 100-103


def explore(cell: Cell, grid_args: list[str], seeds: int, steps: int | None) -> list[dict[str, Any]]:
    """The cell's config across ``grid_args`` (``field=v1,v2``, read by the field's type), every
    point on the tuning seeds in one program per static combination; prints and returns each point's
    score and eval IQMs with their intervals and worst seeds."""
    from purejaxlib.parsing import parse_field

    module = importlib.import_module(f"purejaxlib.algos.{cell.algo}")
    grid: dict[str, list[Any]] = {}
    for arg in grid_args:
        name, _, text = arg.partition("=")
        if not text:
            raise SystemExit(f"--explore: {arg!r} is not field=value,value,...")
        grid[name] = [parse_field(module.Config, name, v, f"--explore {name}") for v in text.split(",")]
    config = cell.config(**({"total_timesteps": steps} if steps else {}))
    result = purejaxlib.sweep(
        module.train, config, seeds=list(range(TUNING_SEEDS, TUNING_SEEDS + seeds)), progress_bar=False, **grid
    )
    evaluation = np.asarray(
        purejaxlib.evaluate_sweep(result, jax.random.key(10_000), episodes=EVAL_EPISODES).returns
    ).mean(axis=-1)
    scores = stats.final_return(np.asarray(result.metrics["episode_return"], np.float64))
    rows = []
    for index in np.ndindex(*scores.shape[:-1]):
        point = {name: result.grid[name][i] for name, i in zip(result.axes, index)}
        rows.append(
            dict(
                point=point,
                score_iqm=stats.stratified_bootstrap_ci(scores[index], reps=2000, seed=0),
                eval_iqm=stats.stratified_bootstrap_ci(evaluation[index], reps=2000, seed=0),
                worst=float(scores[index].min()),
            )
        )
        print(
            f"{point}: score {fmt(rows[-1]['score_iqm'])} (worst {rows[-1]['worst']:.0f}), "
            f"eval {fmt(rows[-1]['eval_iqm'])}"
        )
    return rows


# ------------------------------------------------------------------------------------ regression checks

CHECKS = RESULTS / "reference_checks.json"
CHECK_SEEDS = 16
CHECK_PERCENTILE = 5.0


def check_scores(cell: Cell, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's final return and its first-10% return at the cell's reduced budget, ``[seeds]`` each."""
    module = importlib.import_module(f"purejaxlib.algos.{cell.algo}")
    result = purejaxlib.sweep(
        module.train, cell.config(total_timesteps=cell.check_steps), seeds=seeds, progress_bar=False
    )
    returns = np.asarray(result.metrics["episode_return"], np.float64)  # [seeds, updates]
    return stats.final_return(returns), stats.final_return(returns[:, ::-1])


def run_check(cell: Cell, seeds: int = CHECK_SEEDS) -> dict[str, Any]:
    """The cell at ``check_steps`` over ``seeds`` seeds; its threshold is the 5th percentile of their scores."""
    start = time.perf_counter()
    scores, first = check_scores(cell, list(range(seeds)))
    return dict(
        steps=cell.check_steps,
        overrides=json.loads(json.dumps(cell.overrides)),
        seeds=seeds,
        scores=rounded(scores),
        start=round(float(np.median(first)), 2),
        threshold=round(float(np.percentile(scores, CHECK_PERCENTILE)), 2),
        wall_s=round(time.perf_counter() - start, 1),
        measured=now(),
        machine=machine(),
    )


def run_checks(cells: list[Cell], force: bool) -> None:
    """Measures the thresholds of ``cells`` into ``reference_checks.json``, each saved as soon as it
    is done (merged into the file as it is then, so two processes can measure different cells)."""

    def saved() -> dict[str, Any]:
        return json.loads(CHECKS.read_text()) if CHECKS.exists() else dict(schema=SCHEMA, cells={})

    for cell in cells:
        old = saved()["cells"].get(cell.name)
        if not force and old is not None and old["steps"] == cell.check_steps:
            continue
        print(f"{cell.name}: check thresholds, {CHECK_SEEDS} seeds x {cell.check_steps:,} steps ...", flush=True)
        check = run_check(cell)
        current = saved()
        current["cells"][cell.name] = check
        current["command"] = "python benchmarks/reference.py --checks"
        current["cells"] = dict(sorted(current["cells"].items()))
        tmp = CHECKS.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=1) + "\n")
        tmp.replace(CHECKS)
        print(
            f"{cell.name}: threshold {check['threshold']} (from {check['start']} at the start) in {check['wall_s']} s"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=None, help="cells to consider (default: all)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per cell, in one program (default 8)")
    parser.add_argument("--force", action="store_true", help="rerun cells that already have results")
    parser.add_argument(
        "--sb3", action="store_true", help=f"run stable-baselines3 where a cell names it ({SB3_PYTHON})"
    )
    parser.add_argument("--sb3-timeout", type=float, default=3600.0, help="seconds per stable-baselines3 seed")
    parser.add_argument("--report", action="store_true", help="only rebuild the table and plots from saved results")
    parser.add_argument("--no-readme", action="store_true", help="do not copy the table into the README")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    parser.add_argument(
        "--explore",
        nargs="+",
        metavar="FIELD=V1,V2",
        help="train one cell (--only CELL) across these values on tuning seeds 1000+ and print each point",
    )
    parser.add_argument("--steps", type=int, default=None, help="--explore: budget other than the cell's")
    parser.add_argument(
        "--checks",
        action="store_true",
        help=f"measure the regression thresholds ({CHECK_SEEDS} seeds at each cell's check_steps) instead",
    )
    args = parser.parse_args(argv)
    cells = find(args.only) if args.only else list(CELLS)
    if args.list:
        for c in cells:
            print(f"{c.name:24s} {c.algo:4s} {c.env:20s} {c.steps:>9,d} {c.overrides} anchor={c.anchor}")
        return
    if args.explore:
        if len(cells) != 1:
            parser.error("--explore takes exactly one cell: --only CELL")
        explore(cells[0], args.explore, args.seeds, args.steps)
        return
    if args.checks:
        run_checks(cells, args.force)
        return
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 for an interval, got {args.seeds}")
    if not args.report:
        for cell in cells:
            record = None if args.force else load(cell)
            if record is None:
                print(f"{cell.name}: training {args.seeds} seeds x {cell.steps:,} steps ...", flush=True)
                record = run_cell(cell, args.seeds)
                save(cell, record)
                print(
                    f"{cell.name}: score {np.round(values(record['score']), 1)} eval "
                    f"{np.round(values(record['eval']), 1)} in {record['wall_s']} s",
                    flush=True,
                )
            if args.sb3 and cell.sb3 is not None and (args.force or "sb3" not in record):
                if not SB3_PYTHON.exists():
                    raise SystemExit(
                        f"--sb3: no stable-baselines3 environment at {SB3_PYTHON}; build it with "
                        "PEERS_DIR=/tmp/pjl-peers bash ../shared/peers/setup_peers.sh"
                    )
                record["sb3"] = run_sb3(cell, args.sb3_timeout)
                save(cell, record)
    report(cells if args.only is None else list(CELLS), publish_readme=not args.no_readme)


if __name__ == "__main__":
    main()
