"""Live reports from inside a compiled training program (``jax.debug.callback``).

Every algorithm's update loop calls :func:`report` after each update; every ``log_interval``
updates (and at the last) it sends that update's scalar metrics to the host, tagged with the
run's *member* index. Under ``vmap`` (a sweep) the host callback runs once per member, and under
``shard_map`` once per member on each device, in no fixed order. An active :class:`Monitor`
(:func:`track`) gathers the members of one update and hands the complete update, as arrays
``[members]``, to its sinks: a :class:`ProgressBar` (drawn by tqdm), the file loggers of
:mod:`purejaxlib.loggers`, a bounded :class:`Curve`. Without one, each report prints a line.

The callbacks read values and return nothing, so they cannot change the numbers of a run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import tqdm.auto
import tqdm.std

from purejaxlib import distributed, stats

Metrics = dict[str, np.ndarray]  # metric name -> [members] values of one update
Sink = Callable[[int, Metrics], None]  # (update number counted from 1, metrics)

# Trace-time stack of member indices: the runner wraps each vmapped member in member(i), so
# report() can tag its callback without every train() taking a member argument.
_MEMBER: list[Any] = []


@contextlib.contextmanager
def member(index: Any) -> Iterator[None]:
    """While tracing inside this block, reports carry ``index`` (a traced int32 under vmap)."""
    _MEMBER.append(index)
    try:
        yield
    finally:
        _MEMBER.pop()


def due(index: jax.Array, total: int, interval: int) -> jax.Array:
    """Whether update ``index`` (from 0) reports: every ``interval`` updates and at the last."""
    return ((index + 1) % interval == 0) | (index + 1 == total)


def report(index: jax.Array, config: Any, metrics: Mapping[str, jax.Array]) -> None:
    """Sends ``metrics`` (scalars only) to the host when update ``index`` is due.

    ``index`` counts updates from 0 and must not be batched under ``vmap`` (use the scan index),
    so the ``cond`` stays a branch rather than a select that would call the host every update.
    """
    interval = int(getattr(config, "log_interval", 0))
    if interval <= 0:
        return
    scalars = {k: v for k, v in metrics.items() if jnp.ndim(v) == 0}
    tag = _MEMBER[-1] if _MEMBER else jnp.int32(0)
    names, packed = pack_scalars(scalars)
    jax.lax.cond(
        due(index, config.num_updates, interval),
        lambda: jax.debug.callback(functools.partial(_deliver, names), index, tag, packed),
        lambda: None,
    )


def pack_scalars(scalars: Mapping[str, jax.Array]) -> tuple[tuple[tuple[str, ...], ...], tuple[jax.Array, ...]]:
    """Scalars grouped by dtype, each group stacked into one ``[n]`` array: ``(names, arrays)``.

    A host callback pays about 60 us per argument on CPU, so 15 scalars cost 1.1 ms a report
    and packed into one array 0.4 ms (a 244-step scan of a 64x64 matmul, 2-core CPU). Grouping by
    dtype keeps integer counters exact.
    """
    groups: dict[Any, list[str]] = {}
    for name in sorted(scalars):
        groups.setdefault(jnp.result_type(scalars[name]), []).append(name)
    names = tuple(tuple(group) for group in groups.values())
    arrays = tuple(jnp.stack([jnp.asarray(scalars[n], dtype) for n in group]) for dtype, group in zip(groups, names))
    return names, arrays


def unpack_scalars(names: Sequence[Sequence[str]], arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_scalars` on the host: ``{name: 0-d array}``."""
    return {name: np.asarray(array)[i] for group, array in zip(names, arrays) for i, name in enumerate(group)}


class Monitor:
    """Host-side gatherer for one compiled program: ``members`` reports make one update."""

    def __init__(self, members: int, sinks: Sequence[Sink] = ()):
        self.members = members
        self.sinks = list(sinks)
        self.pending: dict[int, dict[int, Mapping[str, float]]] = defaultdict(dict)

    def add(self, update: int, member: int, metrics: Mapping[str, Any]) -> None:
        if not 0 <= member < self.members:  # padding (batch rounded up to the device count) is -1
            return
        reports = self.pending[update]
        reports[member] = {k: float(v) for k, v in metrics.items()}
        if len(reports) == self.members:
            self._emit(update)

    def flush(self) -> None:
        """Emits incomplete updates (in order), e.g. at the end of a chunk.

        Across processes each holds only its own devices' members' reports until here, where
        they are shared (a collective: every process flushes at the same points).
        """
        if distributed.is_multiprocess():
            self.pending = defaultdict(dict, distributed.share_reports(self.pending))
        for update in sorted(self.pending):
            self._emit(update)

    def _emit(self, update: int) -> None:
        reports = self.pending.pop(update)
        names = sorted({k for r in reports.values() for k in r})
        values = {
            n: np.asarray([reports.get(m, {}).get(n, math.nan) for m in range(self.members)], np.float64) for n in names
        }
        for sink in self.sinks:
            sink(update, values)


_ACTIVE: list[Monitor] = []


@contextlib.contextmanager
def track(members: int = 1, sinks: Sequence[Sink] = ()) -> Iterator[Monitor]:
    """Within this block, reports go to a :class:`Monitor` of ``members`` members and ``sinks``."""
    monitor = Monitor(members, sinks)
    _ACTIVE.append(monitor)
    try:
        yield monitor
    finally:
        jax.effects_barrier()  # every callback of the program has run
        monitor.flush()
        _ACTIVE.remove(monitor)


def _deliver(
    names: Sequence[Sequence[str]], index: np.ndarray, member_index: np.ndarray, arrays: Sequence[np.ndarray]
) -> None:
    metrics = unpack_scalars(names, arrays)
    update = int(index) + 1
    if _ACTIVE:
        _ACTIVE[-1].add(update, int(member_index), metrics)
    else:
        ret = metrics.get("episode_return", math.nan)
        print(f"[update {update}] return {float(ret):.1f}", file=sys.stderr, flush=True)


def enabled_by_default() -> bool:
    """Progress display is on for interactive runs: stderr (where the bar draws) a terminal, not under pytest."""
    return sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ


MIN_BAR = 10
"""Narrowest bar worth drawing, in columns; below it the text gives way first, then the bar."""

SHRINK = ("return", "rate", "steps", "rate", "eta", "return", "bar")
"""What gives way, in order, when a progress line is wider than the terminal: each step takes the
next shorter variant of that part (the last variant, ``""``, leaves it out); ``"bar"`` drops the bar."""


def _count(n: float) -> str:
    """``640`` -> ``"640"``, ``2560`` -> ``"2.56k"``, ``1.2e6`` -> ``"1.20M"`` (tqdm's SI prefixes)."""
    return str(round(n)) if n < 999.5 else tqdm.std.tqdm.format_sizeof(n)


def status_parts(
    steps: int,
    total_steps: int,
    steps_per_second: float | None,
    eta_seconds: float | None,
    returns: np.ndarray | None,
    unit: str = "env steps",
) -> dict[str, tuple[str, ...]]:
    """The parts of a progress line in display order, each as its variants from longest to ``""``.

    ``steps``/``total_steps`` count one agent's env steps (``unit``: offline runs count gradient
    steps); ``steps_per_second`` counts all agents' together; ``returns`` is ``[members]`` (NaN:
    no episode finished yet), shown as the IQM over members (with the worst and best) when there
    are several.
    """
    parts: dict[str, tuple[str, ...]] = {
        "steps": (
            f"{_count(steps)}/{_count(total_steps)} {unit}/agent",
            f"{_count(steps)}/{_count(total_steps)} steps/agent",
        )
    }
    if steps_per_second is not None and eta_seconds is not None:
        rate = _count(steps_per_second)
        parts["rate"] = (f"{rate} {unit}/s total", f"{rate}/s total", "")
        parts["eta"] = (f"ETA {tqdm.std.tqdm.format_interval(eta_seconds)}", "")
    finite = np.asarray([] if returns is None else returns, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size and returns is not None and len(returns) == 1:
        parts["return"] = (f"return {finite[0]:.1f}",) * 2 + ("",)
    elif finite.size:
        short = f"IQM return {stats.iqm(finite):.1f}"
        parts["return"] = (f"{short} (worst {finite.min():.1f}, best {finite.max():.1f})", short, "")
    return parts


def fit_status(label: str, parts: Mapping[str, Sequence[str]], ncols: int | None) -> tuple[bool, str]:
    """``(draw the bar, text after it)`` such that ``label|bar| text`` fits ``ncols`` columns.

    Parts give way in the order of :data:`SHRINK` until the line fits with a bar of at least
    :data:`MIN_BAR` columns; ``ncols`` None (no terminal width known) keeps everything.
    """
    choice = dict.fromkeys(parts, 0)
    bar = True

    def text() -> str:
        return ", ".join(variants[choice[name]] for name, variants in parts.items() if variants[choice[name]])

    for step in SHRINK:
        if ncols is None or len(label) + len(text()) + (len("|| ") + MIN_BAR if bar else 0) <= ncols:
            break
        if step == "bar":
            bar = False
        elif step in parts:
            choice[step] = min(choice[step] + 1, len(parts[step]) - 1)
    return bar, text()


def _bar_format(label: str, text: str, bar: bool) -> str:
    """tqdm's ``bar_format`` drawing ``label|bar| text`` (or ``label text``), literal text escaped."""
    return _escape(label) + ("|{bar}| " if bar else "") + _escape(text)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _in_notebook() -> bool:
    """Whether tqdm.auto draws notebook widgets (a Jupyter kernel with ipywidgets)."""
    import tqdm.notebook  # imports IPython where it is installed, so only when a bar is made

    return issubclass(tqdm.auto.tqdm, tqdm.notebook.tqdm)


def step_unit(config: Any) -> str:
    """What a run counts: "gradient steps" for an offline run (``config.offline``), else "env steps"."""
    return "gradient steps" if getattr(config, "offline", False) else "env steps"


class ProgressBar:
    """Sink showing env steps per agent, total env steps/s of all agents, the ETA and the latest
    return (IQM over members when there are several) through tqdm.

    On a terminal one bar redraws in place, fitted to ``ncols`` (default: the terminal's width,
    followed when it changes); in a Jupyter notebook it is tqdm's widget; on any other stream
    each report is one line (``ncols`` wide if given). A terminal redraws at most every
    ``mininterval`` seconds (and at the last update). Rates and ETA count from the first report,
    so compile time is left out; ``clock`` (seconds) is for tests.
    """

    def __init__(
        self,
        total_updates: int,
        steps_per_update: int,
        members: int = 1,
        stream: TextIO | None = None,
        label: str = "",
        ncols: int | None = None,
        mininterval: float = 0.1,
        clock: Callable[[], float] = time.perf_counter,
        unit: str = "env steps",
    ):
        self.unit = unit
        self.total = total_updates
        self.steps_per_update = steps_per_update
        self.members = members
        self.stream = stream if stream is not None else sys.stderr
        self.label = f"{label} " if label else ""
        self.ncols = ncols
        self.clock = clock
        self.first: tuple[float, int] | None = None  # (time, update) of this session's first report
        self.bar: tqdm.std.tqdm | None = None
        if _in_notebook() or getattr(self.stream, "isatty", lambda: False)():
            empty = fit_status(self.label, status_parts(0, self.total_steps, None, None, None, unit), ncols)
            self.bar = tqdm.auto.tqdm(
                total=self.total_steps,
                file=self.stream,
                ncols=ncols,
                dynamic_ncols=ncols is None,
                bar_format=_bar_format(self.label, empty[1], empty[0]),
                mininterval=mininterval,
                leave=True,
            )

    @property
    def total_steps(self) -> int:
        """Env steps of one agent over the whole run."""
        return self.total * self.steps_per_update

    def __call__(self, update: int, metrics: Metrics) -> None:
        now = self.clock()
        if self.first is None:
            self.first = (now, update)
        t0, u0 = self.first
        rate = eta = None
        if update > u0:
            per_update = (now - t0) / (update - u0)
            rate = self.steps_per_update * self.members / max(per_update, 1e-9)
            eta = per_update * max(self.total - update, 0)
        steps = update * self.steps_per_update
        parts = status_parts(steps, self.total_steps, rate, eta, metrics.get("episode_return"), self.unit)
        if self.bar is None:
            bar, text = fit_status(self.label, parts, self.ncols)
            line = tqdm.std.tqdm.format_meter(
                steps,
                self.total_steps,
                now - t0,
                ncols=self.ncols,
                bar_format=_bar_format(self.label, text, bar),
                ascii=True,
            )
            print(line, file=self.stream, flush=True)
            return
        ncols = self.bar.format_dict["ncols"]  # the terminal's width now (tqdm's dynamic_ncols)
        bar, text = fit_status(self.label, parts, ncols if isinstance(ncols, int) else None)
        self.bar.bar_format = _bar_format(self.label, text, bar)
        self.bar.update(steps - self.bar.n)
        if update >= self.total:
            self.close()

    def close(self) -> None:
        """Leaves the bar's last line on the terminal (idempotent)."""
        if self.bar is not None:
            self.bar.close()


class Curve:
    """Sink keeping a bounded learning curve: at most ``capacity`` reports plus the latest.

    When full it drops every other stored report and keeps only every second report after that,
    so a run 10x longer holds the same memory at half the resolution.
    """

    def __init__(
        self, capacity: int = 256, names: Sequence[str] | None = ("episode_return", "episode_length", "env_steps")
    ):
        if capacity < 2:
            raise ValueError(f"Curve capacity must be >= 2, got {capacity}")
        self.capacity = capacity
        self.names = None if names is None else tuple(names)
        self.points: list[tuple[int, Metrics]] = []
        self.last: tuple[int, Metrics] | None = None
        self.stride = 1
        self.count = 0

    def __call__(self, update: int, metrics: Metrics) -> None:
        kept = {k: v for k, v in metrics.items() if self.names is None or k in self.names}
        self.last = (update, kept)
        if self.count % self.stride == 0:
            self.points.append((update, kept))
            if len(self.points) > self.capacity:
                self.points = self.points[::2]
                self.stride *= 2
        self.count += 1

    def arrays(self) -> tuple[np.ndarray, Metrics]:
        """``(updates [P], {name: [members, P]})``, the latest report always included."""
        points = list(self.points)
        if self.last is not None and (not points or points[-1][0] != self.last[0]):
            points.append(self.last)
        updates = np.asarray([u for u, _ in points], np.int64)
        names = sorted({k for _, m in points for k in m})
        return updates, {n: np.stack([m[n] for _, m in points], axis=-1) if points else np.zeros((0, 0)) for n in names}
