"""One sweep or experiment over the devices of several processes (hosts), with ``jax.distributed``.

Every process runs the same script; :func:`initialize` (first, before any JAX computation) joins
them through JAX's own multi-controller runtime, after which ``jax.devices()`` lists the devices
of all processes. The engine then splits the agent batch over one global ``Mesh`` (:func:`place`
puts each process's rows of the host-built batch on its own devices), gathers the outputs so
that every process holds the whole result (:func:`fetch`, :func:`share_reports`), lets process 0
alone touch the run directory (:func:`is_main`), and hands what process 0 read from it, or its
error, to every process (:func:`from_main`). With one process every function here is the plain
single-process path. JAX's coordination service ends every process, with a message naming the
lost task, soon after one of them dies (at once when its sockets close, else after
``heartbeat_timeout`` seconds).
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn, TypeVar

import jax
import jax.extend.backend
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxlib.config import ConfigError

T = TypeVar("T")
BATCH_AXIS = "batch"  # the mesh axis the agent batch is split along

# The arguments of the initialize() that joined this process: a second call must agree.
_JOINED: dict[str, Any] = {}


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int = 300,
    heartbeat_timeout: int = 100,
) -> None:
    """Joins this process to a multi-process run (``jax.distributed.initialize``); idempotent.

    Args:
      coordinator: ``HOST:PORT`` of process 0, which every process can reach (``--coordinator``).
      num_processes: how many processes take part (``--num-processes``).
      process_id: this process's index, ``0 .. num_processes - 1`` (``--process-id``).
      initialization_timeout: seconds to wait for every process to join before failing.
      heartbeat_timeout: seconds without a heartbeat after which a process counts as dead and
        every other process exits with an error naming it (a killed process is noticed at once).

    Left as None, all three come from JAX's cluster auto-detection (SLURM, Open MPI, Kubernetes,
    Cloud TPU; ``JAX_COORDINATOR_ADDRESS`` for the coordinator). Call it after the imports but
    before anything is computed: arrays made before it stay on a single-process backend. On CPU
    the processes' collectives go through gloo.
    """
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    _check_arguments(coordinator, num_processes, process_id)
    if _JOINED or jax.distributed.is_initialized():
        differ = [
            f"--{k.replace('_', '-')} {v} (now) vs {_JOINED.get(k)} (joined with)"
            for k, v in given.items()
            if v is not None and _JOINED.get(k) is not None and v != _JOINED[k]
        ]
        if differ:
            raise ConfigError("distributed.initialize was already called with other arguments: " + "; ".join(differ))
        return
    if getattr(jax.config, "jax_cpu_collectives_implementation", None) is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    where = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or "the auto-detected coordinator"
    print(
        f"purejaxlib: process {'?' if process_id is None else process_id} of "
        f"{'?' if num_processes is None else num_processes} joining {where} (waiting up to "
        f"{initialization_timeout} s for every process)",
        file=sys.stderr,
        flush=True,
    )
    join = functools.partial(
        jax.distributed.initialize,
        coordinator,
        num_processes,
        process_id,
        initialization_timeout=initialization_timeout,
        heartbeat_timeout_seconds=heartbeat_timeout,
    )
    try:
        try:
            join()
        except RuntimeError as err:
            if "before any JAX calls" not in str(err):
                raise
            # Importing purejaxlib started JAX's single-process backend (gymnax builds arrays at
            # import); it has run nothing yet, so it is dropped and started again across processes.
            jax.extend.backend.clear_backends()
            join()
    except ValueError as err:  # a value neither given nor auto-detected
        missing = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is None]
        raise ConfigError(
            f"distributed.initialize: {err} No cluster was detected to supply it, so give "
            f"{' '.join(missing) or 'the coordinator, process count and process id'} (or none of "
            "them inside a SLURM / MPI / Kubernetes job)"
        ) from err
    _JOINED.update(
        coordinator=where if coordinator is None else coordinator,
        num_processes=jax.process_count(),
        process_id=jax.process_index(),
    )
    if is_multiprocess():
        sys.excepthook = _exit_at_once(sys.excepthook)


def _exit_at_once(print_error: Callable[..., Any]) -> Callable[..., None]:
    """An excepthook that prints the error, then ends the process without JAX's orderly shutdown.

    That shutdown waits (minutes) for every process to arrive, while the others wait in a
    collective for this one: ending at once lets them see it gone and exit too.
    """

    def hook(*exc_info: Any) -> None:
        print_error(*exc_info)
        fail(f"process {jax.process_index()} stopped on {exc_info[0].__name__}")

    return hook


def fail(message: str) -> NoReturn:
    """Ends this process with ``message`` on stderr and exit status 1; across processes at once
    (``os._exit``), so the others are told by JAX that it died rather than waiting for it."""
    if not is_multiprocess():
        sys.exit(message)
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


def _check_arguments(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Fails, naming the flag, on arguments that cannot describe a run."""
    if coordinator is not None:
        host, sep, port = coordinator.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:1234), got {coordinator!r}")
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
    if process_id is not None and process_id < 0:
        raise ConfigError(f"--process-id must be >= 0, got {process_id}")
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ConfigError(f"--process-id must be below --num-processes ({num_processes}), got {process_id}")
    if (num_processes or 0) > 1 and process_id is None and coordinator is not None:
        raise ConfigError("--process-id is missing: with --coordinator and --num-processes each process needs its id")


def is_main() -> bool:
    """Whether this is process 0: the one that writes the run directory, logs and checkpoints."""
    return jax.process_index() == 0


def is_multiprocess() -> bool:
    """Whether this run spans several processes."""
    return jax.process_count() > 1


def batch_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A one-axis ``Mesh`` (axis ``"batch"``) over ``devices`` (default ``jax.devices()``: every
    process's devices)."""
    return Mesh(np.asarray(list(devices) if devices is not None else jax.devices()), (BATCH_AXIS,))


def batch_sharding(devices: Sequence[Any] | None = None) -> NamedSharding:
    """Leading axis split over ``devices`` in order: member ``i`` of ``[B, ...]`` on device
    ``i // (B / len(devices))``; B must be a multiple of the device count."""
    return NamedSharding(batch_mesh(devices), PartitionSpec(BATCH_AXIS))


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_global(x: Any) -> bool:
    return isinstance(x, jax.Array) and not x.is_fully_addressable


def place(tree: Any, devices: Sequence[Any] | None = None) -> Any:
    """Leaves ``[B, ...]``, the same on every process, as global arrays split over ``devices``.

    Each process puts only its own devices' rows (``jax.make_array_from_callback``). With one
    process, and for leaves that are already global arrays, ``tree`` comes back unchanged.
    """
    if not is_multiprocess():
        return tree
    sharding = batch_sharding(devices)

    def one(x: Any) -> Any:
        if _is_global(x):
            return x
        if _is_key(x):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def fetch(tree: Any) -> Any:
    """Every leaf whole on every process (``process_allgather``; a collective: every process calls
    it); PRNG keys stay keys. With one process, ``tree`` comes back unchanged."""
    if not is_multiprocess():
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    datas = [jax.random.key_data(x) if _is_key(x) else x for x in leaves]
    gathered = multihost_utils.process_allgather([d for d in datas if _is_global(d)], tiled=True)
    it = iter(gathered)
    out = []
    for x, d in zip(leaves, datas):
        value = next(it) if _is_global(d) else d
        out.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(x)) if _is_key(x) else value)
    return jax.tree.unflatten(treedef, out)


def _bucket(size: int) -> int:
    """``size`` rounded up to a power of two (>= 256): few shapes, so few collective compiles."""
    return max(256, 1 << max(0, size - 1).bit_length())


def allgather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in process order (a collective: every process calls it)."""
    if not is_multiprocess():
        return [obj]
    data = np.frombuffer(pickle.dumps(obj), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int64))).reshape(-1)
    padded = np.zeros(_bucket(int(sizes.max())), np.uint8)
    padded[: data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded))
    return [pickle.loads(rows[p, : int(n)].tobytes()) for p, n in enumerate(sizes)]


def check_same(what: str, **values: Any) -> None:
    """Fails on every process, naming the setting, when ``values`` differ between processes (a
    collective). Every process must run the same program with the same settings; one that was
    started differently would otherwise pair its collectives with the wrong ones of the others."""
    if not is_multiprocess():
        return
    everyone = allgather_objects({k: repr(v) for k, v in values.items()})
    differ = [k for k in values if len({part[k] for part in everyone}) > 1]
    if differ:
        seen = "; ".join(
            f"{k}: " + ", ".join(f"{part[k]} (process {i})" for i, part in enumerate(everyone)) for k in differ
        )
        raise ConfigError(f"{what}: every process must be started with the same settings, but {seen}")


def broadcast_object(obj: Any) -> Any:
    """Process 0's ``obj`` (picklable) on every process (a collective: every process calls it;
    the others' ``obj`` is ignored)."""
    if not is_multiprocess():
        return obj
    data = np.frombuffer(pickle.dumps(obj), np.uint8) if is_main() else np.zeros(0, np.uint8)
    size = int(np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(data.size, np.int64))))
    padded = np.zeros(_bucket(size), np.uint8)
    padded[: data.size] = data
    return pickle.loads(np.asarray(multihost_utils.broadcast_one_to_all(padded))[:size].tobytes())


def from_main(read: Callable[[], T]) -> T:
    """``read()`` run on process 0 only, its value on every process; its error, if it raised one,
    raised on every process (so no process waits for a peer that has failed).

    For what lives in process 0's run directory (the record, checkpoints on resume): the other
    processes need no shared filesystem. The value must be picklable (arrays travel as numpy,
    PRNG keys as keys).
    """
    if not is_multiprocess():
        return read()
    outcome: tuple[bool, Any] = (True, None)
    error: Exception | None = None
    if is_main():
        try:
            outcome = (True, _to_host(read()))
        except Exception as err:
            error = err
            outcome = (False, err if _picklable(err) else RuntimeError(f"process 0: {type(err).__name__}: {err}"))
    ok, value = broadcast_object(outcome)
    if error is not None:
        raise error  # process 0 keeps its own traceback
    if not ok:
        raise value
    return _from_host(value)


def _picklable(obj: Any) -> bool:
    try:
        pickle.loads(pickle.dumps(obj))
    except Exception:
        return False
    return True


class _HostKeys(NamedTuple):
    """PRNG keys in transit: their raw data and implementation (a jax array would carry its device)."""

    data: np.ndarray
    impl: Any


def _to_host(tree: Any) -> Any:
    """jax arrays (on this process's devices) as numpy, PRNG keys as :class:`_HostKeys`."""

    def one(x: Any) -> Any:
        if _is_key(x):
            return _HostKeys(np.asarray(jax.random.key_data(x)), jax.random.key_impl(x))
        return np.asarray(x) if isinstance(x, jax.Array) else x

    return jax.tree.map(one, tree)


def _from_host(tree: Any) -> Any:
    """Inverse of :func:`_to_host`: keys again (on this process's default device)."""

    def one(x: Any) -> Any:
        return jax.random.wrap_key_data(jnp.asarray(x.data), impl=x.impl) if isinstance(x, _HostKeys) else x

    return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, _HostKeys))


Reports = dict[int, dict[int, Mapping[str, float]]]  # update -> member -> metric name -> value


def share_reports(pending: Reports) -> Reports:
    """Every process's pending progress reports merged (a collective: every process calls it).

    Each process's host callbacks see only the members on its own devices; after this, every
    process holds every member's reports, so loggers and learning curves see whole updates.
    """
    if not is_multiprocess():
        return pending
    merged: Reports = {}
    for part in allgather_objects({u: dict(m) for u, m in pending.items()}):
        for update, members in part.items():
            merged.setdefault(update, {}).update(members)
    return merged
