"""One-call sweeps over seeds and hyperparameters, and the run engine every run goes through.

``sweep(train, config, seeds=8, lr=[1e-4, 3e-4], ent_coef=[0.0, 0.01])`` trains every combination
of grid values for every seed. Traced fields are stacked and vmapped, so their whole grid is one
XLA program; each distinct combination of static grid values (e.g. ``num_envs``) is its own
program, run one after another. The flat batch of agents (traced grid x seeds) is split across
the devices of :func:`select_devices` with ``shard_map`` over a one-axis ``Mesh``.

:func:`execute` is the one executor: a sweep runs ``train`` as one chunk; an experiment
(:func:`purejaxlib.runner.run_experiment`) runs ``init`` and then chunks of updates with reports
and checkpoints between them. Every program comes from a compile cache (:func:`compiled`): a
later call with the same function, static fields, shapes and devices reuses the executable,
whatever its traced values."""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.api_util import shaped_abstractify
from jax.sharding import Mesh, PartitionSpec

from purejaxlib import distributed, progress
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
    static: list[str] = []
    traced: list[str] = []
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


def _batched_config(config: Any, traced_grid: Mapping[str, Sequence[Any]], num_seeds: int) -> tuple[Any, int]:
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

    columns: dict[str, Any] = {}
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


def select_devices(devices: Sequence[Any] | None = None) -> list[Any]:
    """The devices a run splits its agents over: ``devices``, or all of ``jax.devices()``.

    The one place the engine picks devices (a multi-process run swaps in the global ones here).
    """
    if devices is None:
        return list(jax.devices())
    devices = list(devices)
    if not devices:
        raise ConfigError("devices is an empty list; pass None for all of jax.devices()")
    return devices


def padded_size(batch: int, devices: Sequence[Any]) -> int:
    """The batch rounded up to a multiple of the device count."""
    return -(-batch // len(devices)) * len(devices)


def pad_batch(tree: Any, size: int) -> Any:
    """Pads every leaf's leading axis to ``size`` by repeating the last member (dropped after the run)."""

    def pad(x):
        extra = size - x.shape[0]
        return x if extra == 0 else jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


def member_ids(batch: int, padded: int) -> np.ndarray:
    """``[padded]`` int32 member indices, -1 for padding (its reports are ignored)."""
    return np.where(np.arange(padded) < batch, np.arange(padded), -1).astype(np.int32)


def gather(tree: Any, members: int) -> Any:
    """The first ``members`` rows of a program's outputs ``[padded, ...]``, readable on this host.

    The one place the engine reads results back (a multi-process run gathers across processes here).
    """
    return jax.tree.map(lambda x: x[:members], distributed.fetch(tree))


def with_member(fn: Callable) -> Callable:
    """``fn(*args)`` as ``wrapped(member, *args)``: reports from inside carry ``member``."""

    def wrapped(member: jax.Array, *args: Any) -> Any:
        with progress.member(member):
            return fn(*args)

    # jit names the program after the function: compile logs and profiles say "train", not "wrapped"
    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__qualname__ = getattr(fn, "__qualname__", wrapped.__name__)
    return wrapped


def vmapped(
    fn: Callable,
    devices: Sequence[Any],
    in_axes: Sequence[int | None] | None = None,
    donate_argnums: tuple[int, ...] = (),
) -> Any:  # a jax.jit function: call it, or .lower(...).compile() it
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


# ---------------------------------------------------------------------------------------------
# compile cache: one executable per (function, static config, shapes and dtypes, devices)

# Executables kept, least recently used dropped first (a program holds its code, not its buffers).
COMPILE_CACHE_SIZE = 64
_EXECUTABLES: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()


def signature(args: Any) -> tuple[Any, tuple[Any, ...]]:
    """``(treedef, avals)`` of ``args``: the treedef holds static config fields, the avals each
    leaf's shape, dtype and weak type; equal signatures compile to the same program."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple(shaped_abstractify(x) for x in leaves)


def compiled(
    identity: Hashable,
    fn: Callable,
    args: tuple[Any, ...],
    devices: Sequence[Any],
    in_axes: Sequence[int | None] | None = None,
    donate_argnums: tuple[int, ...] = (),
) -> tuple[Any, float]:
    """The executable of ``vmapped(with_member(fn), devices, in_axes, donate_argnums)`` for ``args``
    (``(member ids, *fn's arguments)``), compiled once per ``identity`` x :func:`signature` x
    devices; returns ``(executable, compile seconds)``.

    ``identity`` names ``fn`` and everything it closes over (e.g. ``("train", ppo.train)``): a
    later call with an equal identity, static config, shapes and devices reuses the executable
    (0 seconds) whatever its traced values, and ``fn`` is only wrapped and traced on a miss.
    """
    key = (identity, tuple(in_axes) if in_axes is not None else None, donate_argnums, tuple(devices), signature(args))
    if key in _EXECUTABLES:
        _EXECUTABLES.move_to_end(key)
        return _EXECUTABLES[key], 0.0
    t0 = time.perf_counter()
    executable = vmapped(with_member(fn), devices, in_axes, donate_argnums).lower(*args).compile()
    _EXECUTABLES[key] = executable
    while len(_EXECUTABLES) > COMPILE_CACHE_SIZE:
        _EXECUTABLES.popitem(last=False)
    return executable, time.perf_counter() - t0


def clear_compile_cache() -> None:
    """Forgets every cached executable (the next run of each program compiles again)."""
    _EXECUTABLES.clear()


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

    def program_keys(self, program: Program) -> jax.Array:
        """``[G * S]`` PRNG keys of a program's members, in batch order (member ``g * S + s`` has seed ``s``'s)."""
        return jnp.tile(self.keys, program.num_points)

    def entry(
        self, program: Program, state: Any, metrics: dict[str, Any], timing: Timing, **extra: Any
    ) -> dict[str, Any]:
        """A program's entry of :attr:`SweepResult.programs`: ``state`` and ``metrics`` (leading
        member axis ``[G * S]``) on grid axes ``[traced grid..., S]``."""
        return {
            "static": program.static,
            "config": self.unflatten(program.config_batch),
            "state": self.unflatten(state),
            "metrics": {k: self.unflatten(np.asarray(v)) for k, v in metrics.items()},
            "compile_seconds": timing.compile_seconds,
            "run_seconds": timing.run_seconds,
            **extra,
        }

    def result(self, programs: list[dict[str, Any]], record: dict[str, Any] | None = None) -> SweepResult:
        """Each program's ``metrics`` (``[traced grid..., S, ...]``) placed on the whole grid."""
        metrics = assemble(programs, self.grid, self.static_names, self.traced_names, len(self.seeds))
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
    env_params: Any = grid.get("env_params")
    if isinstance(env_params, dict):
        grid = {
            **{k: v for k, v in grid.items() if k != "env_params"},
            **{ENV_PARAM_PREFIX + k: v for k, v in env_params.items()},
        }
    static_names, traced_names = _check_grid(config, grid)
    lists = {n: list(v) for n, v in grid.items()}
    traced_grid = {n: lists[n] for n in traced_names}
    keys = jnp.stack([jax.random.key(s) for s in seed_list])
    # Build (and so validate) every program's config before running any of them: a bad value
    # late in a static grid must not cost the runs before it.
    points = []
    for static_values in itertools.product(*(lists[n] for n in static_names)):
        static_point = dict(zip(static_names, static_values))
        base = config.replace(**static_point)
        points.append(Program(static_point, base, *_batched_config(base, traced_grid, len(seed_list))))
    return Plan(lists, seed_list, keys, static_names, traced_names, traced_grid, points)


# ---------------------------------------------------------------------------------------------
# the executor: sweeps and experiments


@dataclasses.dataclass
class Timing:
    """Seconds spent compiling and running (programs add to it as they go, so an interrupted run
    still accounts for what it did)."""

    compile_seconds: float = 0.0
    run_seconds: float = 0.0


class Job(NamedTuple):
    """What the executor runs for every member of a program.

    ``begin(config, key) -> (state, metrics or None)`` starts each member (``train`` runs the
    whole training there; an experiment's ``init`` only builds the state); then, when ``chunk`` is
    given, ``chunk(length)`` is ``(config, key, state, start) -> (state, metrics or None)`` for
    updates ``start .. start + length - 1``. ``name`` identifies both functions in the compile
    cache, so it names everything they close over.
    """

    name: Hashable
    begin: Callable[[Any, jax.Array], tuple[Any, Any]]
    chunk: Callable[[int], Callable[[Any, jax.Array, Any, jax.Array], tuple[Any, Any]]] | None = None


class Run(NamedTuple):
    """What :func:`execute` returns: members' final ``state`` and the ``metrics`` the program
    returned (each ``[members, ...]``, metrics concatenated over chunks along axis 1), and the
    seconds it took."""

    state: Any
    metrics: dict[str, Any] | None
    timing: Timing


def execute(
    job: Job,
    config_batch: Any,
    keys: jax.Array,
    *,
    devices: Sequence[Any],
    total: int = 0,
    chunk: int = 0,
    state: Any = None,
    done: int = 0,
    sinks: Sequence[Any] = (),
    after_chunk: Callable[[int, Callable[[], Any]], None] | None = None,
    timing: Timing | None = None,
) -> Run:
    """Runs ``job`` for every member of ``config_batch`` (leading axis ``[members]``) and ``keys``.

    ``state`` (``[members, ...]``, e.g. restored from a checkpoint at update ``done``) replaces
    ``begin``. With ``job.chunk``, updates ``done .. total - 1`` run in chunks of ``chunk``
    updates (0: one chunk); after each, reports so far reach ``sinks`` and ``after_chunk(done,
    state)`` is called with a function returning the members' state. Members are padded to a
    multiple of the device count and split over ``devices``; every program comes from the
    compile cache (:func:`compiled`).
    """
    timing = timing if timing is not None else Timing()
    members = keys.shape[0]
    padded = padded_size(members, devices)
    # across processes: global arrays, each process placing its own devices' rows
    padded_args = (member_ids(members, padded), *pad_batch((config_batch, keys), padded))
    ids, config_batch, keys = distributed.place(padded_args, devices)
    collected: list[dict[str, Any]] = []

    def call(identity: Hashable, fn: Callable, args: tuple, in_axes=None, donate=()) -> Any:
        executable, seconds = compiled(identity, fn, args, devices, in_axes, donate)
        timing.compile_seconds += seconds
        t0 = time.perf_counter()
        out = jax.block_until_ready(executable(*args))
        jax.effects_barrier()  # every report of the program has reached the host
        timing.run_seconds += time.perf_counter() - t0
        return out

    with progress.track(members, sinks) as monitor:
        if state is None:
            state, metrics = call((job.name, "begin"), job.begin, (ids, config_batch, keys))
            if metrics is not None:
                collected.append(metrics)
        else:
            state = distributed.place(pad_batch(state, padded), devices)
        while job.chunk is not None and done < total:
            length = min(chunk or total, total - done)
            args = (ids, config_batch, keys, state, jnp.int32(done))
            state, metrics = call((job.name, "chunk", length), job.chunk(length), args, (0, 0, 0, 0, None), (3,))
            if metrics is not None:
                collected.append(metrics)
            done += length
            monitor.flush()
            if after_chunk is not None:
                after_chunk(done, functools.partial(gather, state, members))
    metrics = None
    if collected:
        metrics = gather(jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *collected), members)
    return Run(gather(state, members), metrics, timing)


def train_job(train: Callable) -> Job:
    """The job of a sweep: ``train(config, key)`` runs each member's whole training in ``begin``."""

    def begin(config: Any, key: jax.Array) -> tuple[Any, Any]:
        result = train(config, key)
        return result[0], result[1]  # (state, metrics) of a TrainResult

    # jit names the program after the function: compile logs and profiles say "train"
    begin.__name__ = getattr(train, "__name__", "train")
    begin.__qualname__ = getattr(train, "__qualname__", begin.__name__)
    return Job(("train", train), begin)


class Output(NamedTuple):
    """``train``'s outputs for a batch of members: ``state`` and ``metrics``, each ``[members, ...]``."""

    state: Any
    metrics: dict[str, Any]


def run_batch(
    train: Callable, config_batch: Any, keys: jax.Array, devices: Sequence[Any] | None = None
) -> tuple[Output, float, float]:
    """``train`` for every member of ``config_batch`` and ``keys`` (leading axis ``[members]``),
    through :func:`execute`: ``(outputs, compile seconds, run seconds)``; compile seconds are 0
    when the compile cache already holds the program."""
    run = execute(train_job(train), config_batch, keys, devices=select_devices(devices))
    return Output(run.state, run.metrics or {}), run.timing.compile_seconds, run.timing.run_seconds


def with_x_axis(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-update metrics ``[members, updates]`` with their x axis explicit: ``iteration`` (the
    updates done after each entry, 1..n) is added where the algorithm does not report it."""
    if "iteration" in metrics or not metrics:
        return metrics
    shape = next(iter(metrics.values())).shape[:2]
    return {**metrics, "iteration": np.broadcast_to(np.arange(1, shape[1] + 1, dtype=np.int32), shape)}


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

    Returns metrics ``[grid..., seed, updates]`` with their x axis ``iteration`` (1..n) and
    ``env_steps`` (per agent). A later call with the same ``train``, static fields, grid sizes,
    seed count and devices runs the cached executable: no compile, whatever the traced values.
    """
    plan = make_plan(config, seeds, grid)
    devices = select_devices(devices)
    distributed.check_same("sweep", config=config, grid=plan.grid, seeds=plan.seeds)
    show = (progress.enabled_by_default() if progress_bar is None else progress_bar) and distributed.is_main()
    job = train_job(train)
    programs = []
    for program in plan.points:
        members = program.num_points * len(plan.seeds)
        base = program.base
        bar = progress.ProgressBar(base.num_updates, base.steps_per_update, members, unit=progress.step_unit(base))
        sinks = [bar] if show else []
        run = execute(job, program.config_batch, plan.program_keys(program), devices=devices, sinks=sinks)
        metrics = with_x_axis({k: np.asarray(v) for k, v in (run.metrics or {}).items()})
        programs.append(plan.entry(program, run.state, metrics, run.timing))
    return plan.result(programs)


def assemble(
    programs: list[dict[str, Any]],
    grid: dict[str, list[Any]],
    static_names: Sequence[str],
    traced_names: Sequence[str],
    num_seeds: int,
) -> dict[str, np.ndarray]:
    """Places each program's ``metrics`` (``[traced grid..., S, ...]``) at its grid points:
    ``[grid..., S, ...]`` in the user's grid order, shorter runs NaN-padded at the end."""
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
