"""Progress reports from inside a compiled training program (``jax.debug.callback``).

Training functions call :func:`report` every ``log_interval`` updates. Under ``vmap`` the host
callback runs once per batch member; an active :class:`Progress` (see :func:`track`) gathers the
members of one update and prints one line with the mean, best and worst return. Without one,
each call prints its own line.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from typing import Callable, Iterator, TextIO

import jax
import numpy as np


class Progress:
    """Host-side aggregator for one (possibly vmapped) training run."""

    def __init__(self, total_updates: int, members: int, steps_per_update: int, stream: TextIO | None = None,
                 on_update: Callable[[int, np.ndarray], None] | None = None):
        self.total_updates = total_updates
        self.on_update = on_update
        self.members = members
        self.steps_per_update = steps_per_update
        self.stream = stream or sys.stderr
        self.pending: dict[int, list[float]] = defaultdict(list)
        self.start = time.perf_counter()
        self.first: tuple[float, int] | None = None  # (time, update) of the first report

    def add(self, update: int, episode_return: float) -> None:
        values = self.pending[update]
        values.append(episode_return)
        if len(values) >= self.members:
            del self.pending[update]
            if self.on_update is not None:
                self.on_update(update, np.asarray(values))
            else:
                self._print(update, np.asarray(values))

    def _print(self, update: int, returns: np.ndarray) -> None:
        now = time.perf_counter()
        done = update + 1
        steps = done * self.steps_per_update
        if self.first is None:
            self.first = (now, done)
            rate = ""
            eta = ""
        else:
            t0, u0 = self.first
            per_update = (now - t0) / max(done - u0, 1)
            sps = self.steps_per_update * self.members / max(per_update, 1e-9)
            rate = f"  {sps:,.0f} steps/s"
            eta = f"  eta {per_update * (self.total_updates - done):.0f}s"
        spread = ""
        if len(returns) > 1:
            spread = f" (worst {returns.min():.1f}, best {returns.max():.1f})"
        print(
            f"[{done:>{len(str(self.total_updates))}}/{self.total_updates}] steps {steps:,}"
            f"  return {returns.mean():.1f}{spread}{rate}{eta}",
            file=self.stream,
            flush=True,
        )


_ACTIVE: list[Progress] = []


@contextlib.contextmanager
def track(total_updates: int, members: int = 1, steps_per_update: int = 1, stream: TextIO | None = None,
          on_update: Callable[[int, np.ndarray], None] | None = None) -> Iterator[Progress]:
    """Within this block, reports from ``members`` vmapped runs print as one line per update.

    With ``on_update``, each complete update calls ``on_update(update, returns [members])``
    instead of printing (e.g. to timestamp a run's progress).
    """
    progress = Progress(total_updates, members, steps_per_update, stream, on_update)
    _ACTIVE.append(progress)
    try:
        yield progress
    finally:
        _ACTIVE.remove(progress)


def _host_report(update: np.ndarray, total: np.ndarray, episode_return: np.ndarray) -> None:
    if _ACTIVE:
        _ACTIVE[-1].add(int(update), float(episode_return))
    else:
        print(f"[{int(update) + 1}/{int(total)}] return {float(episode_return):.1f}", file=sys.stderr, flush=True)


def report(update: jax.Array, total: int, episode_return: jax.Array, interval: int) -> None:
    """Calls the host every ``interval`` updates (and at the last); ``update`` counts from 0.

    ``update`` must not be batched under ``vmap`` (use the scan index), so the ``cond`` stays
    a branch rather than becoming a select that would call the host on every update.
    """
    if interval <= 0:
        return
    due = ((update + 1) % interval == 0) | (update + 1 == total)
    jax.lax.cond(
        due,
        lambda: jax.debug.callback(_host_report, update, total, episode_return),
        lambda: None,
    )
