"""One-call sweeps over seeds and hyperparameters, sharded across devices.

``sweep(train, config, seeds=8, lr=[1e-4, 3e-4], ent_coef=[0.0, 0.01])`` trains every combination
of grid values for every seed. Traced fields are stacked and vmapped, so their whole grid is one
XLA program; each distinct combination of static grid values (e.g. ``num_envs``) is its own
program, run one after another. The flat batch of agents (traced grid x seeds) is split across
``jax.devices()`` with ``shard_map`` over a one-axis ``Mesh``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from purejaxlib import progress
from purejaxlib.config import ConfigError, close_matches, is_static_field


class SweepResult(NamedTuple):
    """Results of a sweep.

    Attributes:
      metrics: each metric with leading axes ``axes`` (grid axes in the order given, then
        ``seed``), then the metric's own axes (e.g. ``[num_updates]``). Where static grid values
        give runs of different lengths, shorter runs are padded at the end with NaN.
      axes: names of the leading axes, e.g. ``("lr", "ent_coef", "seed")``.
      grid: the values along each leading axis (``grid["seed"]`` lists the seeds).
      programs: one entry per compiled program: its static grid values, the final training
        state with leading axes (traced grid axes..., seed), compile and run seconds.
    """

    metrics: dict[str, np.ndarray]
    axes: tuple[str, ...]
    grid: dict[str, list]
    programs: list[dict[str, Any]]

    @property
    def compile_seconds(self) -> float:
        return float(sum(p["compile_seconds"] for p in self.programs))

    @property
    def run_seconds(self) -> float:
        return float(sum(p["run_seconds"] for p in self.programs))


# Grid names "env_params.<param>" sweep one of the env's (traced) params.
ENV_PARAM_PREFIX = "env_params."


def _check_grid(config: Any, grid: dict[str, Sequence[Any]]) -> tuple[list[str], list[str]]:
    """Splits grid names into (static, traced), failing on unknown fields or empty lists."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    static, traced = [], []
    for name, values in grid.items():
        if name.startswith(ENV_PARAM_PREFIX) and "env_params" in fields:
            traced.append(name)  # names and values are checked when the batched config is built
            _check_values(name, values)
            continue
        if name not in fields:
            raise ConfigError(
                f"sweep grid: {type(config).__qualname__} has no field {name!r}; {close_matches(name, fields)}"
            )
        _check_values(name, values)
        (static if is_static_field(fields[name]) else traced).append(name)
    return static, traced


def _check_values(name: str, values: Any) -> None:
    is_list = isinstance(values, (Sequence, np.ndarray)) and not isinstance(values, (str, bytes))
    if not is_list:
        raise ConfigError(f"sweep grid: {name} must be a list of values, got {values!r}")
    if len(values) == 0:
        raise ConfigError(f"sweep grid: {name} needs at least one value")


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ConfigError(f"sweep: seeds must be >= 1, got {seeds}")
        return list(range(int(seeds)))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("sweep: seeds is an empty list")
    return seeds


def _batched_config(config: Any, traced_grid: dict[str, Sequence[Any]], num_seeds: int) -> tuple[Any, int]:
    """Config whose traced leaves have a leading flat batch axis ``[G * S]``, index ``g * S + s``.

    Returns the batched config and ``G``, the number of traced grid points.
    """
    points = list(itertools.product(*traced_grid.values()))
    batch = len(points) * num_seeds
    names = list(traced_grid)

    def column(name: str, dtype: Any = np.float32) -> np.ndarray:
        return np.repeat(np.asarray([p[names.index(name)] for p in points], dtype), num_seeds, axis=0)

    def broadcast(value: Any) -> Any:
        return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (batch,) + np.shape(x)), value)

    columns = {}
    for f in dataclasses.fields(config):
        if is_static_field(f):
            continue
        if f.name in traced_grid:
            columns[f.name] = column(f.name)
        else:
            columns[f.name] = broadcast(getattr(config, f.name))
    env_grid = [n for n in names if n.startswith(ENV_PARAM_PREFIX)]
    if env_grid:
        # Env param values keep their own dtype; the config casts them to the param's.
        columns["env_params"] = {
            **(columns["env_params"] or {}),
            **{n[len(ENV_PARAM_PREFIX) :]: column(n, None) for n in env_grid},
        }
    # Constructing with whole columns validates every grid value at once, before compiling.
    return config.replace(**columns), len(points)


def _pad_batch(tree: Any, size: int) -> Any:
    """Pads the leading axis to ``size`` by repeating the last member (dropped after the run)."""

    def pad(x):
        extra = size - x.shape[0]
        return x if extra == 0 else jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


def _vmapped(train: Callable, devices: Sequence[Any]) -> Callable:
    fn = jax.vmap(train)
    if len(devices) > 1:
        mesh = Mesh(np.asarray(devices), ("batch",))
        spec = PartitionSpec("batch")
        fn = jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    return jax.jit(fn)


def run_batch(
    train: Callable, config_batch: Any, keys: jax.Array, devices: Sequence[Any] | None = None
) -> tuple[Any, float, float]:
    """Runs ``vmap(train)`` over a leading batch axis, sharded over ``devices``.

    Returns ``(outputs with the original batch size, compile seconds, run seconds)``.
    """
    devices = list(devices) if devices is not None else jax.devices()
    batch = keys.shape[0]
    padded = -(-batch // len(devices)) * len(devices)
    args = _pad_batch((config_batch, keys), padded)
    fn = _vmapped(train, devices)
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    run_s = time.perf_counter() - t0
    if padded != batch:
        out = jax.tree.map(lambda x: x[:batch], out)
    return out, compile_s, run_s


def sweep(
    train: Callable,
    config: Any,
    seeds: int | Sequence[int] = 1,
    *,
    devices: Sequence[Any] | None = None,
    **grid: Sequence[Any],
) -> SweepResult:
    """Trains every grid point x seed; returns metrics with leading axes (grid..., seed).

    Args:
      train: ``train(config, key) -> result`` with ``result.metrics`` and ``result.state``.
      config: base config; grid values replace its fields.
      seeds: number of seeds (0..n-1) or an explicit list; seed ``s`` uses ``jax.random.key(s)``,
        so entry ``[..., j]`` equals ``train(config_i, jax.random.key(seeds[j]))``.
      devices: devices to shard the agent batch over (default: all of ``jax.devices()``).
      **grid: field name -> list of values; ``env_params={"gravity": [5.0, 9.8]}`` (or the key
        ``"env_params.gravity"``) sweeps an env param.
    """
    seed_list = _seed_list(seeds)
    if "env_params" in grid and not isinstance(grid["env_params"], dict):
        raise ConfigError(
            "sweep grid: env_params takes a dict of param name to list of values, e.g. "
            f"env_params={{'gravity': [5.0, 9.8]}}; got {grid['env_params']!r}"
        )
    if isinstance(grid.get("env_params"), dict):
        grid = {**{k: v for k, v in grid.items() if k != "env_params"},
                **{ENV_PARAM_PREFIX + k: v for k, v in grid["env_params"].items()}}
    static_names, traced_names = _check_grid(config, grid)
    traced_grid = {n: list(grid[n]) for n in traced_names}
    keys = jnp.stack([jax.random.key(s) for s in seed_list])
    num_seeds = len(seed_list)

    # Build (and so validate) every program's config before running any of them: a bad value
    # late in a static grid must not cost the runs before it.
    points = []
    for static_values in itertools.product(*(grid[n] for n in static_names)):
        static_point = dict(zip(static_names, static_values))
        base = config.replace(**static_point)
        points.append((static_point, base, *_batched_config(base, traced_grid, num_seeds)))

    programs = []
    for static_point, base, config_batch, num_points in points:
        batch_keys = jnp.tile(keys, num_points)
        members = num_points * num_seeds
        if getattr(base, "log_interval", 0) > 0:
            ctx = progress.track(base.num_updates, members, base.steps_per_update)
        else:
            ctx = contextlib.nullcontext()
        with ctx:
            out, compile_s, run_s = run_batch(train, config_batch, batch_keys, devices)
        traced_shape = tuple(len(v) for v in traced_grid.values())
        programs.append(
            {
                "static": static_point,
                "state": jax.tree.map(lambda x: x.reshape(traced_shape + (num_seeds,) + x.shape[1:]), out.state),
                "metrics": {k: np.asarray(v).reshape(traced_shape + (num_seeds,) + v.shape[1:]) for k, v in out.metrics.items()},
                "compile_seconds": compile_s,
                "run_seconds": run_s,
            }
        )

    axes = tuple(grid) + ("seed",)
    metrics = _assemble(programs, grid, static_names, traced_names, num_seeds)
    values = {n: list(grid[n]) for n in grid}
    values["seed"] = seed_list
    return SweepResult(metrics, axes, values, programs)


def _assemble(programs, grid, static_names, traced_names, num_seeds) -> dict[str, np.ndarray]:
    """Places each program's metrics at its grid points, axes in the user's grid order."""
    names = list(grid)
    sizes = tuple(len(grid[n]) for n in names)
    out = {}
    for metric in programs[0]["metrics"]:
        own_shapes = [p["metrics"][metric].shape[len(traced_names) + 1 :] for p in programs]
        length = tuple(int(n) for n in np.max(np.asarray(own_shapes, dtype=int).reshape(len(programs), -1), axis=0))
        cells = []
        for index in itertools.product(*(range(s) for s in sizes)):
            point = dict(zip(names, index))
            static_index = 0
            for n in static_names:  # row-major over static names, as programs were built
                static_index = static_index * len(grid[n]) + point[n]
            traced_index = tuple(point[n] for n in traced_names)
            cell = programs[static_index]["metrics"][metric][traced_index]
            cells.append(_pad_to(cell, (num_seeds,) + length))
        out[metric] = np.stack(cells).reshape(sizes + (num_seeds,) + length)
    return out


def _pad_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if x.shape == shape:
        return x
    padded = np.full(shape, np.nan, dtype=np.result_type(x.dtype, np.float32))
    padded[tuple(slice(0, s) for s in x.shape)] = x
    return padded
