"""One-call sweeps over seeds and hyperparameters, sharded across devices.

``sweep(train, config, seeds=8, lr=[1e-4, 3e-4], ent_coef=[0.0, 0.01])`` trains every combination
of grid values for every seed. Traced fields are stacked and vmapped, so their whole grid is one
XLA program; each distinct combination of static grid values (e.g. ``num_envs``) is its own
program, run one after another. The flat batch of agents (traced grid x seeds) is split across
``jax.devices()`` with ``shard_map`` over a one-axis ``Mesh``.
"""

from __future__ import annotations

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
      programs: one entry per compiled program: its static grid values (``static``), its config
        and final training state with leading axes (traced grid axes..., seed) (``config``,
        ``state``), compile and run seconds.
      record: the run record (config, versions, times...) when the run came from
        :func:`purejaxlib.runner.run_experiment`, else None.
    """

    metrics: dict[str, np.ndarray]
    axes: tuple[str, ...]
    grid: dict[str, list]
    programs: list[dict[str, Any]]
    record: dict[str, Any] | None = None

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


def member_ids(batch: int, padded: int) -> np.ndarray:
    """``[padded]`` int32 member indices, -1 for padding (its reports are ignored)."""
    return np.where(np.arange(padded) < batch, np.arange(padded), -1).astype(np.int32)


def with_member(fn: Callable) -> Callable:
    """``fn(*args)`` as ``wrapped(member, *args)``: reports from inside carry ``member``."""

    def wrapped(member: jax.Array, *args: Any) -> Any:
        with progress.member(member):
            return fn(*args)

    # jit names the program after the function: compile logs and profiles say "train", not "wrapped"
    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__qualname__ = getattr(fn, "__qualname__", wrapped.__name__)
    return wrapped


def vmapped(fn: Callable, devices: Sequence[Any], in_axes: Sequence[int | None] | None = None,
            donate_argnums: tuple[int, ...] = ()) -> Callable:
    """``jit(vmap(fn))``, sharded over ``devices`` along the batch axis when there are several.

    ``in_axes`` as for ``vmap`` (0: batched and sharded, None: the same for every member);
    ``donate_argnums`` lets XLA reuse those arguments' buffers for the outputs.
    """
    fn = jax.vmap(fn, in_axes=tuple(in_axes) if in_axes is not None else 0)
    if len(devices) > 1:
        mesh = Mesh(np.asarray(devices), ("batch",))
        spec = PartitionSpec("batch")
        in_specs = spec if in_axes is None else tuple(PartitionSpec() if a is None else spec for a in in_axes)
        fn = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=spec, check_vma=False)
    return jax.jit(fn, donate_argnums=donate_argnums)


def padded_size(batch: int, devices: Sequence[Any]) -> int:
    """The batch rounded up to a multiple of the device count."""
    return -(-batch // len(devices)) * len(devices)


def run_batch(
    train: Callable, config_batch: Any, keys: jax.Array, devices: Sequence[Any] | None = None
) -> tuple[Any, float, float]:
    """Runs ``vmap(train)`` over a leading batch axis, sharded over ``devices``.

    Returns ``(outputs with the original batch size, compile seconds, run seconds)``.
    """
    devices = list(devices) if devices is not None else jax.devices()
    batch = keys.shape[0]
    padded = padded_size(batch, devices)
    args = (member_ids(batch, padded), *_pad_batch((config_batch, keys), padded))
    fn = vmapped(with_member(train), devices)
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    run_s = time.perf_counter() - t0
    if padded != batch:
        out = jax.tree.map(lambda x: x[:batch], out)
    return out, compile_s, run_s


class Program(NamedTuple):
    """One compiled program of a sweep: a combination of static grid values."""

    static: dict[str, Any]  # its static grid values
    base: Any  # the config with those values
    config_batch: Any  # traced leaves with a leading member axis [G * S]
    num_points: int  # G, the traced grid points


class Plan(NamedTuple):
    """A validated sweep: its grid (env_params flattened to ``env_params.<name>`` keys), seeds and programs."""

    grid: dict[str, list[Any]]
    seeds: list[int]
    keys: jax.Array  # [S] one PRNG key per seed
    static_names: list[str]
    traced_names: list[str]
    traced_grid: dict[str, list[Any]]
    points: list[Program]

    def unflatten(self, tree: Any) -> Any:
        """Leading member axis ``[G * S]`` -> grid axes ``[traced grid..., S]``."""
        shape = tuple(len(v) for v in self.traced_grid.values()) + (len(self.seeds),)
        return jax.tree.map(lambda x: x.reshape(shape + x.shape[1:]), tree)

    def result(self, programs: list[dict[str, Any]], record: dict[str, Any] | None = None) -> SweepResult:
        """Each program's ``metrics`` (``[traced grid..., S, ...]``) placed on the whole grid."""
        metrics = _assemble(programs, self.grid, self.static_names, self.traced_names, len(self.seeds))
        values = {**{n: list(v) for n, v in self.grid.items()}, "seed": list(self.seeds)}
        return SweepResult(metrics, tuple(self.grid) + ("seed",), values, programs, record)

    def members(self, program: Program) -> list[dict[str, Any]]:
        """Each member's labels (grid values and seed) in batch order ``g * S + s``."""
        out = []
        for values in itertools.product(*self.traced_grid.values()):
            for seed in self.seeds:
                out.append({**program.static, **dict(zip(self.traced_grid, values)), "seed": seed})
        return out


def make_plan(config: Any, seeds: int | Sequence[int], grid: dict[str, Sequence[Any]]) -> Plan:
    """Validates the grid and seeds and builds every program's config before anything runs."""
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
    grid = {n: list(v) for n, v in grid.items()}
    traced_grid = {n: grid[n] for n in traced_names}
    keys = jnp.stack([jax.random.key(s) for s in seed_list])
    # Build (and so validate) every program's config before running any of them: a bad value
    # late in a static grid must not cost the runs before it.
    points = []
    for static_values in itertools.product(*(grid[n] for n in static_names)):
        static_point = dict(zip(static_names, static_values))
        base = config.replace(**static_point)
        points.append(Program(static_point, base, *_batched_config(base, traced_grid, len(seed_list))))
    return Plan(grid, seed_list, keys, static_names, traced_names, traced_grid, points)


def sweep(
    train: Callable,
    config: Any,
    seeds: int | Sequence[int] = 1,
    *,
    devices: Sequence[Any] | None = None,
    progress_bar: bool | None = None,
    **grid: Sequence[Any],
) -> SweepResult:
    """Trains every grid point x seed; returns metrics with leading axes (grid..., seed).

    Args:
      train: ``train(config, key) -> result`` with ``result.metrics`` and ``result.state``.
      config: base config; grid values replace its fields.
      seeds: number of seeds (0..n-1) or an explicit list; seed ``s`` uses ``jax.random.key(s)``,
        so entry ``[..., j]`` equals ``train(config_i, jax.random.key(seeds[j]))``.
      devices: devices to shard the agent batch over (default: all of ``jax.devices()``).
      progress_bar: draw a progress bar from the config's ``log_interval`` reports (default: when
        stdout is a terminal and not under pytest).
      **grid: field name -> list of values; ``env_params={"gravity": [5.0, 9.8]}`` (or the key
        ``"env_params.gravity"``) sweeps an env param.
    """
    plan = make_plan(config, seeds, grid)
    num_seeds = len(plan.seeds)
    programs = []
    for program in plan.points:
        batch_keys = jnp.tile(plan.keys, program.num_points)
        members = program.num_points * num_seeds
        base = program.base
        show = progress.enabled_by_default() if progress_bar is None else progress_bar
        sinks = [progress.ProgressBar(base.num_updates, base.steps_per_update, members)] if show else []
        with progress.track(members, sinks):
            out, compile_s, run_s = run_batch(train, program.config_batch, batch_keys, devices)
        programs.append(
            {
                "static": program.static,
                "config": plan.unflatten(program.config_batch),
                "state": plan.unflatten(out.state),
                "metrics": {k: plan.unflatten(np.asarray(v)) for k, v in out.metrics.items()},
                "compile_seconds": compile_s,
                "run_seconds": run_s,
            }
        )
    return plan.result(programs)


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
