"""Shared fixtures and helpers for the purejaxlib test suite.

Everything runs on CPU. Compiles of a PPO training program take a few seconds each on the 2-core
CI machine, so tests that only read results share compiled programs through module-scoped
fixtures, and non-learning tests use tiny sizes (2-4 updates of 4 envs x 16 steps).
"""

from __future__ import annotations

import logging
from typing import Iterator

import jax
import pytest

from purejaxlib.algos import ppo

# 4 envs x 16 steps = 64 transitions per update, 2 minibatches of 32, 2 epochs.
SMALL = dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2)


def small_config(env: str = "CartPole-v1", updates: int = 3, **overrides) -> ppo.Config:
    """A PPO config that trains for ``updates`` updates of 64 env steps each (unless overridden)."""
    fields = {**SMALL, **overrides}
    total = updates * fields["num_envs"] * fields["num_steps"]
    return ppo.Config(env=env, total_timesteps=total, **fields)


@pytest.fixture
def cartpole_config():
    """Factory for small CartPole-v1 configs: ``cartpole_config(updates=3, lr=1e-3, ...)``."""
    return lambda updates=3, **overrides: small_config("CartPole-v1", updates, **overrides)


class CompileCounter(logging.Handler):
    """Counts XLA compilations whose log message names ``fn_name`` (``jax.log_compiles`` output).

    jax logs "Compiling jit(<name>) with global shapes ..." from ``jax._src.interpreters.pxla``
    once per real compilation, i.e. not on a cache hit.
    """

    def __init__(self, fn_name: str):
        super().__init__(level=logging.DEBUG)
        self.fn_name = fn_name
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling") and f"({self.fn_name})" in message.split(" with ")[0]:
            self.messages.append(message)

    @property
    def count(self) -> int:
        return len(self.messages)


@pytest.fixture
def count_compiles() -> Iterator:
    """``with count_compiles("fn") as counter: ...`` counts compilations of ``jit(fn)``."""
    import contextlib

    @contextlib.contextmanager
    def counting(fn_name: str):
        counter = CompileCounter(fn_name)
        logger = logging.getLogger("jax")
        old_level = logger.level
        logger.addHandler(counter)
        logger.setLevel(logging.DEBUG)
        try:
            with jax.log_compiles(True):
                yield counter
        finally:
            logger.removeHandler(counter)
            logger.setLevel(old_level)

    return counting
