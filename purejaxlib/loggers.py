"""Metric sinks for :mod:`purejaxlib.progress`: JSON lines, TensorBoard and Weights & Biases.

Each sink is called with one complete update of a program, ``(update, {metric: [members]})``,
and knows each member's labels (its grid values and seed), so every record names its run.
Nothing here touches the network unless a :class:`WandbLogger` is created.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Labels = Mapping[str, Any]  # one member's grid values and seed, e.g. {"lr": 0.001, "seed": 2}


def json_value(value: Any) -> Any:
    """A JSON-safe copy: tuples become lists, numpy scalars Python numbers, NaN/inf null."""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_value(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def member_label(labels: Labels) -> str:
    """A short, filesystem-safe name for one member, e.g. ``lr=0.001,seed=2``."""
    text = ",".join(f"{k}={_short(v)}" for k, v in labels.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text) or "run"


def _short(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class JsonlLogger:
    """Appends one JSON object per member per reported update to ``path``.

    A record is ``{"program": p, "member": i, <labels>, "update": u, <metrics>}``; values are
    exact (float32 metrics round-trip through JSON), NaN is written as null.
    """

    def __init__(self, path: str | Path, members: Sequence[Labels], program: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.members = [dict(m) for m in members]
        self.program = program
        self.file = self.path.open("a")

    def __call__(self, update: int, metrics: Mapping[str, np.ndarray]) -> None:
        lines = []
        for i, labels in enumerate(self.members):
            record = {"program": self.program, "member": i, **labels, "update": update}
            record.update({k: v[i] for k, v in metrics.items()})
            lines.append(json.dumps(json_value(record), allow_nan=False))
        self.file.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a metrics file; a torn last line (a killed writer) is dropped."""
    records: list[dict[str, Any]] = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_jsonl(path: str | Path, keep: Any) -> list[dict[str, Any]]:
    """Rewrites ``path`` (atomically) with only the records for which ``keep(record)``; returns them."""
    path = Path(path)
    records = [r for r in read_jsonl(path) if keep(r)]
    if path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
        os.replace(tmp, path)
    return records


class TensorBoardLogger:
    """One tensorboardX event directory per member under ``log_dir``, x axis env steps.

    ``purge_step`` (when resuming) makes TensorBoard drop events the resumed run rewrites.
    """

    def __init__(
        self, log_dir: str | Path, members: Sequence[Labels], steps_per_update: int, purge_step: int | None = None
    ):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:  # pragma: no cover - tensorboardX is a dependency
            raise ImportError("TensorBoard logging needs tensorboardX: pip install tensorboardX") from err
        self.steps_per_update = steps_per_update
        self.writers = [SummaryWriter(str(Path(log_dir) / member_label(m)), purge_step=purge_step) for m in members]

    def __call__(self, update: int, metrics: Mapping[str, np.ndarray]) -> None:
        step = update * self.steps_per_update
        for i, writer in enumerate(self.writers):
            for name, values in metrics.items():
                if name != "env_steps" and math.isfinite(values[i]):
                    writer.add_scalar(name, float(values[i]), step)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class WandbLogger:
    """Logs to one Weights & Biases run: per-member metrics as ``<label>/<metric>``, plus the
    mean, min and max over members. Only created when asked for; wandb is not a dependency."""

    def __init__(
        self,
        project: str,
        name: str,
        config: Mapping[str, Any],
        members: Sequence[Labels],
        run_dir: str | Path | None = None,
        run_id: str | None = None,
    ):
        try:
            import wandb
        except ImportError as err:
            raise ImportError(
                "--wandb needs the wandb package, which purejaxlib does not install: pip install wandb"
            ) from err
        self.labels = [member_label(m) for m in members]
        self.run = wandb.init(
            project=project,
            name=name,
            config=json_value(dict(config)),
            id=run_id,
            resume="allow" if run_id else None,
            dir=None if run_dir is None else str(run_dir),
        )
        self.run_id = getattr(self.run, "id", run_id)

    def __call__(self, update: int, metrics: Mapping[str, np.ndarray]) -> None:
        row: dict[str, float] = {}
        for name, values in metrics.items():
            finite = values[np.isfinite(values)]
            if len(finite):
                row[f"{name}/mean"] = float(finite.mean())
                if len(values) > 1:
                    row[f"{name}/min"], row[f"{name}/max"] = float(finite.min()), float(finite.max())
            if len(values) > 1:
                row.update({f"{label}/{name}": float(v) for label, v in zip(self.labels, values) if math.isfinite(v)})
        self.run.log(row, step=update)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.run.finish()


def close_all(sinks: Iterable[Any]) -> None:
    for sink in sinks:
        if hasattr(sink, "close"):
            sink.close()


def flush_all(sinks: Iterable[Any]) -> None:
    for sink in sinks:
        if hasattr(sink, "flush"):
            sink.flush()
