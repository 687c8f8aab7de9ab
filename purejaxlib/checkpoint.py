"""Checkpoints of whole training states with orbax-checkpoint, verified on restore.

A checkpoint is one orbax step directory holding two items: ``state``, the pytree's leaves packed
into one byte array (PRNG keys stored as their raw key data), and ``meta``, a JSON record with
the run's identity (config, grid, seeds), progress, each leaf's shape and dtype, and a SHA-256
of the packed bytes. orbax writes each step to a
temporary directory and renames it when complete, so a process killed mid-save leaves only a
``*.orbax-checkpoint-tmp*`` directory, which is skipped with a warning; a committed step that
fails to read or whose checksum disagrees is moved aside to ``<dir>/corrupt/`` with a warning
and the previous one is used.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this run (the message says why)."""


class IncompatibleCheckpoint(CheckpointError):
    """A readable checkpoint written for a different run (config, grid, seeds or state layout)."""


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_host(tree: Any) -> list[np.ndarray]:
    """The leaves of ``tree`` as numpy copies, PRNG keys as their ``uint32`` key data.

    Copies, because a background save may still be reading them when the training loop hands
    the device buffers on to the next chunk (donation).
    """
    return [np.array(jax.random.key_data(x) if _is_key(x) else x, copy=True) for x in jax.tree.leaves(tree)]


def from_host(leaves: list[np.ndarray], like: Any) -> Any:
    """Rebuilds a tree shaped like ``like`` (arrays or ShapeDtypeStructs) from :func:`to_host` leaves."""
    like_leaves, treedef = jax.tree.flatten(like)
    if len(leaves) != len(like_leaves):
        raise IncompatibleCheckpoint(f"checkpoint has {len(leaves)} arrays, this run's state has {len(like_leaves)}")
    out = []
    for i, (leaf, ref) in enumerate(zip(leaves, like_leaves)):
        if _is_key(ref):
            out.append(jax.random.wrap_key_data(jax.numpy.asarray(leaf), impl=getattr(ref.dtype, "_impl", None)))
        else:
            out.append(jax.numpy.asarray(leaf, dtype=ref.dtype))
        if out[-1].shape != ref.shape:
            raise IncompatibleCheckpoint(
                f"checkpoint array {i} has shape {out[-1].shape}, this run's state needs {ref.shape}"
            )
    return jax.tree.unflatten(treedef, out)


def host_spec(like: Any) -> list[jax.ShapeDtypeStruct]:
    """Shapes and dtypes of :func:`to_host` of a tree shaped like ``like``."""
    return [
        jax.ShapeDtypeStruct(s.shape, s.dtype)
        for s in jax.eval_shape(
            lambda t: [jax.random.key_data(x) if _is_key(x) else x for x in jax.tree.leaves(t)], like
        )
    ]


def pack(leaves: list[np.ndarray]) -> tuple[np.ndarray, list[list[Any]]]:
    """All leaves as one ``uint8`` buffer, and each leaf's ``[shape, dtype]`` to unpack it.

    One array per checkpoint rather than one per leaf: orbax's per-array writes cost about
    2 ms each, so a PPO state of 49 leaves saved in 45 ms, packed in 20.
    """
    layout = [[list(leaf.shape), leaf.dtype.str] for leaf in leaves]
    data = np.concatenate(
        [np.ascontiguousarray(leaf).reshape(-1).view(np.uint8) for leaf in leaves] or [np.zeros(0, np.uint8)]
    )
    return data, layout


def unpack(data: np.ndarray, layout: list[list[Any]]) -> list[np.ndarray]:
    """Inverse of :func:`pack`."""
    leaves, offset = [], 0
    for shape, dtype in layout:
        dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        leaves.append(data[offset : offset + size].view(dtype).reshape(shape).copy())
        offset += size
    if offset != data.size:
        raise CheckpointError(f"its buffer holds {data.size} bytes where its layout says {offset}")
    return leaves


def checksum(data: np.ndarray) -> str:
    return hashlib.sha256(data.tobytes()).hexdigest()


def _check_layout(layout: list[list[Any]], specs: list[jax.ShapeDtypeStruct]) -> None:
    """Refuses a checkpoint whose arrays are not this run's state's (names the first difference)."""
    if len(layout) != len(specs):
        raise IncompatibleCheckpoint(f"checkpoint has {len(layout)} arrays, this run's state has {len(specs)}")
    for i, ((shape, dtype), spec) in enumerate(zip(layout, specs)):
        if tuple(shape) != tuple(spec.shape) or np.dtype(dtype) != np.dtype(spec.dtype):
            raise IncompatibleCheckpoint(
                f"checkpoint array {i} is {np.dtype(dtype).name}{list(shape)}, this run's state needs "
                f"{np.dtype(spec.dtype).name}{list(spec.shape)}"
            )


class Checkpoints:
    """The checkpoints of one program under ``directory``, keeping the newest ``keep``.

    With ``background=True`` a save returns once the arrays are copied to host memory; packing,
    hashing and the whole orbax save run in one writer thread while training goes on, and the
    next save, any read and :meth:`close` wait for it (re-raising its error, if any). orbax's own
    async mode still blocked the caller for about 20 ms per save (its setup runs on the calling
    thread); with this thread B1 checkpointed every 25 updates went from 0.82 to 0.94 of the
    throughput without reports (benchmarks/README.md). A process killed
    meanwhile leaves an unfinished directory, never a half-committed step.
    """

    def __init__(self, directory: str | Path, keep: int = 3, background: bool = False):
        import orbax.checkpoint as ocp

        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.ocp = ocp
        self.directory = Path(directory).absolute()
        self.keep = keep
        self.background = background
        # One writer thread: saves stay in order and the manager is never used by two threads at once.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") if background else None
        self._pending: Future | None = None
        self._open()

    def _open(self) -> None:
        ocp = self.ocp
        # Across processes one process writes (purejaxlib.distributed: process 0): orbax must not
        # wait for the others at its barriers (and then cannot create the directory itself).
        alone: dict[str, Any] = {}
        if jax.process_count() > 1:
            self.directory.mkdir(parents=True, exist_ok=True)
            me = jax.process_index()
            only_me = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
            alone = {"multiprocessing_options": only_me}
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.keep, create=not alone, enable_async_checkpointing=False, **alone
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def wait(self) -> None:
        """Blocks until the background save (if any) is committed; re-raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def steps(self) -> list[int]:
        """Committed steps, oldest first."""
        self.wait()
        return sorted(self.manager.all_steps())

    def unfinished(self) -> list[Path]:
        """Temporary directories of saves that never completed (the writer was killed)."""
        self.wait()
        if not self.directory.exists():
            return []
        return sorted(p for p in self.directory.iterdir() if "orbax-checkpoint-tmp" in p.name)

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Saves ``state`` as step ``step`` (in the background when so constructed)."""
        leaves = to_host(state)  # copied now: the caller may donate the device buffers next
        self.wait()
        if self._writer is None:
            self._write(step, leaves, meta)
        else:
            self._pending = self._writer.submit(self._write, step, leaves, meta)

    def _write(self, step: int, leaves: list[np.ndarray], meta: dict[str, Any]) -> None:
        data, layout = pack(leaves)
        meta = {**meta, "format": FORMAT, "step": step, "checksum": checksum(data), "layout": layout}
        ocp = self.ocp
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave({"data": data}), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self.manager.wait_until_finished()

    def read_meta(self, step: int) -> dict[str, Any]:
        self.wait()
        return dict(self.manager.restore(step, args=self.ocp.args.Composite(meta=self.ocp.args.JsonRestore()))["meta"])

    def read_state(self, step: int, like: Any, meta: dict[str, Any]) -> Any:
        self.wait()
        layout: list[list[Any]] = meta.get("layout") or []
        _check_layout(layout, host_spec(like))
        size = sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize for shape, dtype in layout)
        ocp = self.ocp
        target = {"data": np.zeros(size, np.uint8)}
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
        data = np.asarray(restored["data"])
        if checksum(data) != meta.get("checksum"):
            raise CheckpointError("its arrays do not match the checksum written with them")
        return from_host(unpack(data, layout), like)

    def quarantine(self, step: int, reason: str) -> Path:
        """Moves a bad step out of orbax's way (kept for inspection, nothing deleted)."""
        self.wait()
        source = self.directory / str(step)
        target = self.directory.parent / "corrupt" / f"{self.directory.name}-step{step}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.move(str(source), str(target))
        warnings.warn(
            f"checkpoint {source} is unreadable ({reason}); moved it to {target} and using the one before it",
            stacklevel=3,
        )
        self.manager.close()
        self._open()
        return target

    def restore_latest(
        self, like: Any, check: Callable[[dict[str, Any]], None] | None = None
    ) -> tuple[int, Any, dict[str, Any]] | None:
        """``(step, state, meta)`` of the newest checkpoint that reads and verifies, else None.

        ``check(meta)`` runs before the state is read and may raise (e.g. a config mismatch);
        its error is not taken for corruption.
        """
        for path in self.unfinished():
            warnings.warn(
                f"skipping unfinished checkpoint {path} (its writer stopped before it was complete)", stacklevel=2
            )
        for step in reversed(self.steps()):
            try:
                meta = self.read_meta(step)
            except Exception as err:
                self.quarantine(step, f"its metadata cannot be read: {type(err).__name__}: {err}")
                continue
            if meta.get("format") != FORMAT:
                where = self.directory / str(step)
                raise IncompatibleCheckpoint(
                    f"checkpoint {where} has format {meta.get('format')}, this purejaxlib reads {FORMAT}"
                )
            if check is not None:
                check(meta)
            try:
                state = self.read_state(step, like, meta)
            except IncompatibleCheckpoint:
                raise
            except CheckpointError as err:
                self.quarantine(step, str(err))
                continue
            except Exception as err:
                self.quarantine(step, f"{type(err).__name__}: {err}")
                continue
            return step, state, meta
        return None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
            self.manager.close()
