"""What every experiment script shares: grid parsing, the sweep, a summary, files and a plot.

An algorithm's script (``experiments/ppo.py``) is a call of :func:`cli`: a typed command line
(tyro) over every field of the algorithm's Config plus :class:`Args`, then :func:`run`. Grid values
come as ``name=v1,v2`` strings and are converted by the field's declared type, never evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Generic, Sequence, TypeVar

import jax
import numpy as np
import tyro

from purejaxlib.config import ConfigError, close_matches
from purejaxlib.plotting import learning_curves
from purejaxlib.sweep import ENV_PARAM_PREFIX, SweepResult, sweep


def _convert(config_cls: type, name: str, text: str) -> Any:
    """Converts one grid value by the field's annotation (float, int, bool, str, tuple of ints)."""
    hint = typing.get_type_hints(config_cls)[name]
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "1")
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if origin is tuple:  # e.g. hidden=64x64
            return tuple(int(part) for part in text.split("x"))
        return text.strip()
    except ValueError:
        raise ConfigError(f"--grid {name}: cannot read {text!r} as {hint}") from None


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
            try:
                grid[name] = [float(v) for v in values.split(",")]
            except ValueError:
                raise ConfigError(f"--grid {name}: env param values must be numbers, got {values!r}") from None
            continue
        if name not in names:
            raise ConfigError(f"--grid: {config_cls.__qualname__} has no field {name!r}; {close_matches(name, names)}")
        if name in grid:
            raise ConfigError(f"--grid: {name} given twice")
        grid[name] = [_convert(config_cls, name, v) for v in values.split(",")]
    return grid


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on, for the run record."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("purejaxlib", "jax", "jaxlib", "flax", "optax", "gymnax", "distrax", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def summarize(result: SweepResult, steps_per_agent: int) -> dict[str, Any]:
    """Final return per member, their mean, compile time and env steps per second."""
    returns = np.asarray(result.metrics["episode_return"])
    final = returns[..., -1]
    agents = int(np.prod(final.shape))
    return {
        "axes": list(result.axes),
        "grid": {k: [v if isinstance(v, (int, float, str, bool)) else list(v) for v in vals] for k, vals in result.grid.items()},
        "final_return": final.tolist(),
        "final_return_mean": float(np.nanmean(final)),
        "agents": agents,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "env_steps_per_second": agents * steps_per_agent / max(result.run_seconds, 1e-9),
    }


def print_summary(summary: dict[str, Any], stream=None) -> None:
    stream = stream or sys.stdout  # looked up per call, so redirection of stdout is honoured
    final = np.asarray(summary["final_return"], dtype=np.float64)
    grid_names = [a for a in summary["axes"] if a != "seed"]
    seeds = summary["grid"]["seed"]
    print("\nfinal episode return (last update):", file=stream)
    for index in np.ndindex(*final.shape[:-1]):
        label = ", ".join(f"{n}={summary['grid'][n][i]}" for n, i in zip(grid_names, index))
        per_seed = "  ".join(f"seed {s}: {r:.1f}" for s, r in zip(seeds, final[index]))
        prefix = f"  [{label}] " if label else "  "
        print(f"{prefix}{per_seed}  | mean {np.nanmean(final[index]):.1f}", file=stream)
    print(
        f"mean over all {summary['agents']} agents: {summary['final_return_mean']:.1f}\n"
        f"compile: {summary['compile_seconds']:.1f} s   run: {summary['run_seconds']:.1f} s   "
        f"env steps/s (all agents, excluding compile): {summary['env_steps_per_second']:,.0f}",
        file=stream,
    )


def run(
    train: Callable,
    config: Any,
    *,
    seeds: int,
    grid_specs: Sequence[str],
    out: str | None,
    progress: bool,
    plot: bool,
    name: str,
) -> dict[str, Any]:
    """Sweeps ``train`` over seeds and grid; prints a summary; writes summary.json, metrics.npz and
    learning_curve.png under ``out`` (if given)."""
    grid = parse_grid(type(config), grid_specs)
    if progress and config.log_interval == 0:
        config = config.replace(log_interval=max(1, config.num_updates // 20))
    members = seeds * int(np.prod([len(v) for v in grid.values()] or [1]))
    print(
        f"{name}: {config.env}, {members} agents x {config.num_updates * config.steps_per_update:,} env steps "
        f"on {jax.device_count()} {jax.default_backend()} device(s); compiling...",
        file=sys.stderr,
        flush=True,
    )
    result = sweep(train, config, seeds=seeds, **grid)
    summary = summarize(result, config.num_updates * config.steps_per_update)
    print_summary(summary)
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "algorithm": name,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.to_dict().items()},
            "command": sys.argv,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "versions": package_versions(),
            **summary,
        }
        (out_dir / "summary.json").write_text(json.dumps(record, indent=2))
        np.savez(out_dir / "metrics.npz", **{k: np.asarray(v) for k, v in result.metrics.items()})
        written = [out_dir / "summary.json", out_dir / "metrics.npz"]
        if plot:
            written.append(learning_curves(result, out_dir / "learning_curve.png", title=f"{name} on {config.env}"))
        print("wrote " + ", ".join(str(p) for p in written))
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
    """Directory for summary.json, metrics.npz and learning_curve.png (default runs/<algorithm>;
    'none' to write nothing)."""
    progress: bool = True
    """Print progress from inside the compiled program (sets log_interval when it is 0)."""
    plot: bool = True
    """Write the learning-curve PNG."""


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
        args = tyro.cli(args_type or Args[algo.Config], args=argv, description=description)
        config, label = prepare(args) if prepare else (args.config, name)
        out = None if args.out == "none" else (args.out or f"runs/{label.lower()}")
        return run(
            algo.train, config, seeds=args.seeds, grid_specs=args.grid, out=out,
            progress=args.progress, plot=args.plot, name=label,
        )
    except ConfigError as err:
        sys.exit(f"error: {err}")
