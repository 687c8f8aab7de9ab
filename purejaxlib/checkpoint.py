"""Checkpoints of whole training states with orbax-checkpoint, verified on restore.

A checkpoint is one orbax step directory holding two items: ``state``, the flattened pytree
(PRNG keys stored as their raw key data), and ``meta``, a JSON record with the run's identity
(config, grid, seeds), progress and a SHA-256 of every leaf. orbax writes each step to a
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
from pathlib import Path
from typing import Any, Callable

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
    """The leaves of ``tree`` as numpy arrays, PRNG keys as their ``uint32`` key data."""
    return [np.asarray(jax.random.key_data(x) if _is_key(x) else x) for x in jax.tree.leaves(tree)]


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
            raise IncompatibleCheckpoint(f"checkpoint array {i} has shape {out[-1].shape}, this run's state needs {ref.shape}")
    return jax.tree.unflatten(treedef, out)


def host_spec(like: Any) -> list[jax.ShapeDtypeStruct]:
    """Shapes and dtypes of :func:`to_host` of a tree shaped like ``like``."""
    return [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in jax.eval_shape(lambda t: [jax.random.key_data(x) if _is_key(x) else x for x in jax.tree.leaves(t)], like)]


def checksum(leaves: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for leaf in leaves:
        digest.update(str((leaf.shape, leaf.dtype.str)).encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def _names(count: int) -> list[str]:
    return [f"leaf_{i:05d}" for i in range(count)]


class Checkpoints:
    """The checkpoints of one program under ``directory``, keeping the newest ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3):
        import orbax.checkpoint as ocp

        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.ocp = ocp
        self.directory = Path(directory).absolute()
        self.keep = keep
        self._open()

    def _open(self) -> None:
        ocp = self.ocp
        options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        """Committed steps, oldest first."""
        return sorted(self.manager.all_steps())

    def unfinished(self) -> list[Path]:
        """Temporary directories of saves that never completed (the writer was killed)."""
        if not self.directory.exists():
            return []
        return sorted(p for p in self.directory.iterdir() if "orbax-checkpoint-tmp" in p.name)

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        leaves = to_host(state)
        meta = {**meta, "format": FORMAT, "step": step, "checksum": checksum(leaves), "arrays": len(leaves)}
        ocp = self.ocp
        items = dict(zip(_names(len(leaves)), leaves))
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def read_meta(self, step: int) -> dict[str, Any]:
        return dict(self.manager.restore(step, args=self.ocp.args.Composite(meta=self.ocp.args.JsonRestore()))["meta"])

    def read_state(self, step: int, like: Any, meta: dict[str, Any]) -> Any:
        specs = host_spec(like)
        if meta.get("arrays") != len(specs):
            raise IncompatibleCheckpoint(f"checkpoint has {meta.get('arrays')} arrays, this run's state has {len(specs)}")
        target = dict(zip(_names(len(specs)), [np.zeros(s.shape, s.dtype) for s in specs]))
        ocp = self.ocp
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
        leaves = [np.asarray(restored[n]) for n in _names(len(specs))]
        if checksum(leaves) != meta.get("checksum"):
            raise CheckpointError("its arrays do not match the checksum written with them")
        return from_host(leaves, like)

    def quarantine(self, step: int, reason: str) -> Path:
        """Moves a bad step out of orbax's way (kept for inspection, nothing deleted)."""
        source = self.directory / str(step)
        target = self.directory.parent / "corrupt" / f"{self.directory.name}-step{step}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.move(str(source), str(target))
        warnings.warn(f"checkpoint {source} is unreadable ({reason}); moved it to {target} and using the one before it",
                      stacklevel=3)
        self.manager.close()
        self._open()
        return target

    def restore_latest(self, like: Any, check: Callable[[dict[str, Any]], None] | None = None) -> tuple[int, Any, dict[str, Any]] | None:
        """``(step, state, meta)`` of the newest checkpoint that reads and verifies, else None.

        ``check(meta)`` runs before the state is read and may raise (e.g. a config mismatch);
        its error is not taken for corruption.
        """
        for path in self.unfinished():
            warnings.warn(f"skipping unfinished checkpoint {path} (its writer stopped before it was complete)", stacklevel=2)
        for step in reversed(self.steps()):
            try:
                meta = self.read_meta(step)
            except Exception as err:  # noqa: BLE001 - any read failure means this step is unusable
                self.quarantine(step, f"its metadata cannot be read: {type(err).__name__}: {err}")
                continue
            if meta.get("format") != FORMAT:
                raise IncompatibleCheckpoint(f"checkpoint {self.directory / str(step)} has format {meta.get('format')}, this purejaxlib reads {FORMAT}")
            if check is not None:
                check(meta)
            try:
                state = self.read_state(step, like, meta)
            except IncompatibleCheckpoint:
                raise
            except CheckpointError as err:
                self.quarantine(step, str(err))
                continue
            except Exception as err:  # noqa: BLE001
                self.quarantine(step, f"{type(err).__name__}: {err}")
                continue
            return step, state, meta
        return None

    def close(self) -> None:
        self.manager.close()
