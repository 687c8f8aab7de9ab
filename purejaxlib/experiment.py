"""What every experiment script shares: grid parsing, the run, a summary, files and plots.

An algorithm's script (``experiments/ppo.py``) is a call of :func:`cli`: a typed command line
(tyro) over every field of the algorithm's Config plus :class:`Args`, then :func:`run`. Grid values
come as ``name=v1,v2`` strings and are converted by the field's declared type, never evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import jax
import numpy as np
import tyro

from purejaxlib import distributed, stats
from purejaxlib import progress as progress_lib
from purejaxlib.checkpoint import CheckpointError
from purejaxlib.config import ConfigError, close_matches
from purejaxlib.loggers import json_value
from purejaxlib.parsing import parse_value
from purejaxlib.plotting import learning_curves, sweep_heatmap
from purejaxlib.runner import DEFAULT_EVAL_EPISODES, run_experiment
from purejaxlib.sweep import ENV_PARAM_PREFIX, SweepResult


def parse_grid(config_cls: type, specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=1e-4,3e-4", "hidden=64x64,256x256"]`` -> ``{"lr": [1e-4, 3e-4], "hidden": [...]}``.

    ``env_params.<param>=v1,v2`` sweeps one of the env's params (e.g. ``env_params.gravity=9.8,12``).
    """
    names = [f.name for f in dataclasses.fields(config_cls)]
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values:
            raise ConfigError(f"--grid expects name=value1,value2,..., got {spec!r}")
        if name.startswith(ENV_PARAM_PREFIX) and "env_params" in names:
            if name in grid:
                raise ConfigError(f"--grid: {name} given twice")
            grid[name] = _read(values, float, f"--grid {name} (an env param)")
            continue
        if name not in names:
            raise ConfigError(f"--grid: {config_cls.__qualname__} has no field {name!r}; {close_matches(name, names)}")
        if name in grid:
            raise ConfigError(f"--grid: {name} given twice")
        grid[name] = _read(values, typing.get_type_hints(config_cls)[name], f"--grid {name}")
    return grid


def _read(values: str, kind: Any, what: str) -> list[Any]:
    """``"v1,v2"`` -> each value read as ``kind`` (:func:`purejaxlib.parsing.parse_value`); a value
    that does not read is a ConfigError naming ``what``."""
    try:
        return [parse_value(v, kind, what) for v in values.split(",")]
    except ValueError as err:
        raise ConfigError(str(err)) from None


def summarize(result: SweepResult) -> dict[str, Any]:
    """Final return per member (:func:`purejaxlib.stats.final_return` of its curve), their mean and
    IQM, the same of the periodic evaluations when there were any, compile time and env steps/s."""
    summary: dict[str, Any] = {"axes": list(result.axes), "grid": json_value(result.grid)}
    for metric, prefix in (("episode_return", "final_return"), ("eval_return", "final_eval_return")):
        if metric not in result.metrics:
            continue
        final = stats.final_return(result.metrics[metric])
        finite = final[np.isfinite(final)]
        summary[prefix] = json_value(final)
        summary[prefix + "_mean"] = float(finite.mean()) if finite.size else None
        summary[prefix + "_iqm"] = stats.iqm(finite) if finite.size else None
    steps = np.nanmax(np.asarray(result.metrics["env_steps"], np.float64), axis=-1)
    summary.update(
        {
            "agents": int(np.prod(np.shape(steps))),
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
            "env_steps_per_second": _steps_run(result, steps) / max(result.run_seconds, 1e-9),
        }
    )
    if "gradient_steps" in result.metrics:  # offline: the run's steps are gradient steps
        grads = np.nanmax(np.asarray(result.metrics["gradient_steps"], np.float64), axis=-1)
        summary["gradient_steps_per_second"] = float(np.nansum(grads)) / max(result.run_seconds, 1e-9)
    return summary


def _steps_run(result: SweepResult, final_steps: np.ndarray) -> float:
    """Env steps of all agents run in this session (a resumed run did not run the ones before)."""
    if result.programs and all("env_steps_run" in p for p in result.programs):
        return float(sum(p["env_steps_run"] for p in result.programs))
    return float(np.nansum(final_steps))


def print_summary(summary: dict[str, Any], stream=None) -> None:
    stream = stream or sys.stdout  # looked up per call, so redirection of stdout is honoured
    grid_names = [a for a in summary["axes"] if a != "seed"]
    seeds = summary["grid"]["seed"]
    for prefix, what in (("final_return", "final episode return"), ("final_eval_return", "final evaluation return")):
        if prefix not in summary:
            continue
        final = np.asarray(
            [np.nan if v is None else v for v in np.ravel(np.asarray(summary[prefix], dtype=object))], np.float64
        ).reshape(np.shape(summary[prefix]))
        print(f"\n{what} (mean of each run's last {stats.FINAL_FRACTION:.0%} of reports):", file=stream)
        for index in np.ndindex(*final.shape[:-1]):
            label = ", ".join(f"{n}={summary['grid'][n][i]}" for n, i in zip(grid_names, index))
            per_seed = "  ".join(f"seed {s}: {r:.1f}" for s, r in zip(seeds, final[index]))
            prefix_text = f"  [{label}] " if label else "  "
            print(f"{prefix_text}{per_seed}  | mean {np.nanmean(final[index]):.1f}", file=stream)
        mean, iqm = summary[prefix + "_mean"], summary[prefix + "_iqm"]
        print(
            f"over all {summary['agents']} agents: mean {mean if mean is None else round(mean, 1)}, "
            f"IQM {iqm if iqm is None else round(iqm, 1)}",
            file=stream,
        )
    rate = (
        f"gradient steps/s (all agents, excluding compile): {summary['gradient_steps_per_second']:,.0f}"
        if "gradient_steps_per_second" in summary
        else f"env steps/s (all agents, excluding compile): {summary['env_steps_per_second']:,.0f}"
    )
    print(f"compile: {summary['compile_seconds']:.1f} s   run: {summary['run_seconds']:.1f} s   {rate}", file=stream)


def write_outputs(result: SweepResult, out_dir: Path, title: str, plot: bool) -> list[Path]:
    """summary.json, curves.npz and (with ``plot``) the learning curves and a sweep heatmap."""
    summary = summarize(result)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in result.metrics.items()}
    np.savez(out_dir / "curves.npz", **arrays)
    written = [out_dir / "summary.json", out_dir / "curves.npz"]
    # offline runs have no training episodes: their curve is the periodic evaluation (--eval-every)
    metric = "episode_return" if "episode_return" in result.metrics else "eval_return"
    if plot and metric in result.metrics:
        evaluation = "eval_return" if metric == "episode_return" else None
        written += learning_curves(result, out_dir / "learning_curve", metric, title=title, evaluation=evaluation)
        grid_axes = [a for a in result.axes if a != "seed" and len(result.grid[a]) > 1]
        if len(grid_axes) >= 2:
            written += sweep_heatmap(result, out_dir / "heatmap", grid_axes[0], grid_axes[1], metric, title=title)
    return written


def run(
    algo: Any,
    config: Any,
    *,
    seeds: int,
    grid_specs: Sequence[str],
    out: str | None,
    progress: bool,
    plot: bool,
    name: str,
    checkpoint_every: int = 0,
    keep: int = 3,
    resume: bool = False,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    eval_every: int = 0,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
) -> dict[str, Any]:
    """Trains ``algo`` over seeds and grid with :func:`purejaxlib.runner.run_experiment`; prints a
    summary; writes the run directory ``out`` (if given) with summary.json, curves.npz and plots."""
    grid = parse_grid(type(config), grid_specs)
    members = seeds * int(np.prod([len(v) for v in grid.values()] or [1]))
    main = distributed.is_main()  # across processes, process 0 alone prints and writes
    processes = f" of {jax.process_count()} processes" if distributed.is_multiprocess() else ""
    if main:
        steps = f"{config.num_updates * config.steps_per_update:,} {progress_lib.step_unit(config)}"
        print(
            f"{name}: {config.env}, {members} agents x {steps} "
            f"on {jax.device_count()} {jax.default_backend()} device(s){processes}; compiling...",
            file=sys.stderr,
            flush=True,
        )
    result = run_experiment(
        algo,
        config,
        seeds=seeds,
        grid=grid,
        out=out,
        name=name,
        checkpoint_every=checkpoint_every,
        keep=keep,
        resume=resume,
        progress_bar=progress,
        tensorboard=tensorboard,
        wandb_project=wandb_project,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
    )
    summary = summarize(result)
    if main:
        print_summary(summary)
    if out and main:
        written = write_outputs(result, Path(out), f"{name} on {config.env}", plot)
        print("wrote " + ", ".join(str(p) for p in [Path(out) / "record.json", Path(out) / "metrics.jsonl", *written]))
    return summary


ConfigT = TypeVar("ConfigT")


@dataclasses.dataclass(frozen=True)
class Args(Generic[ConfigT]):
    """Options of every experiment script; the Config's fields are flags at the top level."""

    config: Annotated[ConfigT, tyro.conf.arg(name="")]
    seeds: int = 1
    """Number of seeds (0..seeds-1), trained side by side in one program."""
    grid: tuple[str, ...] = ()
    """Sweep values as name=v1,v2 (e.g. lr=1e-4,3e-4 hidden=64x64,128x128)."""
    out: str = ""
    """Run directory: record.json, metrics.jsonl, summary.json, curves.npz, plots, checkpoints
    (default runs/<algorithm>; 'none' to write nothing)."""
    progress: bool = dataclasses.field(default_factory=progress_lib.enabled_by_default)
    """Progress bar from inside the compiled program (default: on when stdout is a terminal).
    Reports come every --log-interval updates (0: about 100 per run)."""
    plot: bool = True
    """Write learning curves (IQM over seeds, 95% CI) and, for two or more grid axes, a heatmap."""
    checkpoint_every: int = 0
    """Save the whole training state every this many updates (0: never)."""
    keep: int = 3
    """Checkpoints kept."""
    resume: bool = False
    """Continue from the newest complete checkpoint in --out (same settings)."""
    tensorboard: bool = False
    """Write TensorBoard event files to <out>/tensorboard."""
    wandb: str = ""
    """Log to this Weights & Biases project (needs wandb installed; off when empty)."""
    eval_every: int = 0
    """Every this many updates, play --eval-episodes deterministic episodes of every agent inside
    the compiled program and report their mean return (0: never; a multiple of --log-interval)."""
    eval_episodes: int = DEFAULT_EVAL_EPISODES
    """Episodes per periodic evaluation, played side by side."""
    coordinator: str = ""
    """Run over several processes/hosts (jax.distributed): HOST:PORT of process 0, reachable by all."""
    num_processes: int | None = None
    """How many processes take part (with --coordinator and --process-id)."""
    process_id: int | None = None
    """This process's index, 0 .. num-processes - 1; process 0 alone writes --out."""
    distributed: bool = False
    """Join a multi-process run described by the cluster's environment (SLURM, Open MPI, Kubernetes)."""


def cli(
    algo: Any,
    name: str,
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    args_type: type | None = None,
    prepare: Callable[[Any], tuple[Any, str]] | None = None,
) -> dict[str, Any]:
    """Parses the command line for algorithm module ``algo`` (its ``Config`` and ``train``) and runs it.

    ``args_type`` extends :class:`Args` with script-specific flags; ``prepare(args) -> (config,
    name)`` then turns them into the config to run. A bad config exits with its message.
    """
    try:
        args: Any = tyro.cli(args_type or Args[algo.Config], args=argv, description=description)
        if args.distributed or args.coordinator or args.num_processes is not None or args.process_id is not None:
            distributed.initialize(args.coordinator or None, args.num_processes, args.process_id)
        config, label = prepare(args) if prepare else (args.config, name)
        out = None if args.out == "none" else (args.out or f"runs/{label.lower()}")
        return run(
            algo,
            config,
            seeds=args.seeds,
            grid_specs=args.grid,
            out=out,
            progress=args.progress,
            plot=args.plot,
            name=label,
            checkpoint_every=args.checkpoint_every,
            keep=args.keep,
            resume=args.resume,
            tensorboard=args.tensorboard,
            wandb_project=args.wandb or None,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
        )
    except (ConfigError, CheckpointError, ImportError) as err:
        distributed.fail(f"error: {err}")  # across processes: at once, so none waits for this one
