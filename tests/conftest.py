"""Shared fixtures and helpers for the purejaxlib test suite.

Everything runs on CPU. Compiles of a PPO training program take a few seconds each on the 2-core
CI machine, so tests that only read results share compiled programs through module-scoped
fixtures, and non-learning tests use tiny sizes (2-4 updates of 4 envs x 16 steps).
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import inspect
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

# Most of the suite's time is XLA compiling small programs that then run for milliseconds, so
# tests compile with jax's "disable most optimizations" (LLVM at -O0; same semantics, looser float
# rounding): non-learning tests take about 0.6x the time (measured 2026-12-03, benchmarks/README.md,
# "Test budget"). Learning tests (marker ``learning``) compile fully optimized, as users' runs do,
# because they run for long, and so do tests of float32 rounding (marker ``optimized``). Set before
# jax is imported so that subprocesses a test starts (resume, distributed, fresh-process checks)
# compile the same way as the test. PUREJAXLIB_TEST_OPTIMIZED=1 runs every test optimized.
OPTIMIZED = os.environ.get("PUREJAXLIB_TEST_OPTIMIZED", "0") == "1"
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "0" if OPTIMIZED else "1"

# XLA:CPU's newer MLIR fusion emitters take about half of each compile of our small programs; its
# classic emitters compile the same HLO in about half the time, and run it slower (PPO, CartPole:
# test-sized at -O0 compile 3.74 -> 1.58 s; learning-sized, optimized, run 0.86 -> 1.35 s; medians,
# `python benchmarks/xla_emitters.py`, benchmarks/README.md, "Test budget"). So what compiles at -O0
# uses the classic emitters, and what compiles optimized (learning tests) XLA's default, as users'
# runs do: XLA_FLAGS for this process and the subprocesses tests start (switched with the
# optimization setting below), and a per-compile override here (_emitters_follow_optimization).
# PUREJAXLIB_TEST_FUSION_EMITTERS=1 keeps XLA's default everywhere, as PUREJAXLIB_TEST_OPTIMIZED=1 does.
# (A flag of the user's own in XLA_FLAGS wins; ours is marked in CLASSIC_SET, so that pytest-xdist's
# workers, which inherit the controller's environment, still know it for ours.)
CLASSIC_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
CLASSIC_SET = "PUREJAXLIB_TEST_CLASSIC_EMITTERS_SET"
CLASSIC = (
    not OPTIMIZED
    and os.environ.get("PUREJAXLIB_TEST_FUSION_EMITTERS", "0") != "1"
    and (os.environ.get(CLASSIC_SET) == "1" or "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""))
)


def _set_classic_flag(on: bool) -> None:
    """Adds or removes CLASSIC_EMITTERS in XLA_FLAGS (read by processes started from now on)."""
    flags = os.environ.get("XLA_FLAGS", "").replace(CLASSIC_EMITTERS, "").split()
    os.environ["XLA_FLAGS"] = " ".join([*flags, CLASSIC_EMITTERS] if on else flags)


if CLASSIC:
    os.environ[CLASSIC_SET] = "1"
    _set_classic_flag(True)

# Many test modules compile the same programs (a small PPO run on CartPole, its evaluation...) in
# separate functions and processes (two pytest-xdist workers, the subprocesses of resume and
# distributed tests). jax's persistent compilation cache, in a directory made empty for this
# session and deleted after it (pytest_configure below; never carried between sessions, so CI
# starts cold like a user), compiles each once. PUREJAXLIB_TEST_XLA_CACHE=off turns it off.
XLA_CACHE = "PUREJAXLIB_TEST_XLA_CACHE"
if os.environ.get(XLA_CACHE, "") not in ("", "off"):
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[XLA_CACHE]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from purejaxlib.algos import ppo  # noqa: E402

jax.config.update("jax_disable_most_optimizations", not OPTIMIZED)


def _emitters_follow_optimization() -> None:
    """Each compile in this process asks for XLA's fusion emitters exactly when it is optimized.

    XLA reads XLA_FLAGS once per process, so the switch is a per-compile option (what
    ``jax.jit(compiler_options=...)`` passes), added in jax's compile-options builder, a private
    function: where this jax has none of the expected shape, every compile here keeps the classic
    emitters of XLA_FLAGS (slower learning tests, same results)."""
    from jax._src import compiler

    original = getattr(compiler, "get_compile_options", None)
    if original is None or "env_options_overrides" not in inspect.signature(original).parameters:
        return

    @functools.wraps(original)
    def get_compile_options(*args, env_options_overrides=None, **kwargs):
        overrides = dict(env_options_overrides or {})
        overrides.setdefault("xla_cpu_use_fusion_emitters", not jax.config.read("jax_disable_most_optimizations"))
        return original(*args, env_options_overrides=overrides, **kwargs)

    compiler.get_compile_options = get_compile_options


if CLASSIC:
    _emitters_follow_optimization()

# A test still running after this many seconds is taken to be hung: every thread's stack is
# dumped to stderr and the test process exits (status 1), rather than CI waiting out its whole
# time limit. The slowest test (a learning test) takes about 30 s on the 2-core CI machine.
HANG_SECONDS = float(os.environ.get("PUREJAXLIB_TEST_HANG_SECONDS", 300))


def _real_stderr(config) -> object:
    """The file descriptor pytest's faulthandler plugin writes to: stderr before capture."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        return config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return sys.__stderr__


def pytest_configure(config):
    """The session's compilation cache directory (see XLA_CACHE), made by the first process
    (pytest-xdist's controller, whose workers and their subprocesses inherit the variable)."""
    if os.environ.get(XLA_CACHE, "") == "" and not hasattr(config, "workerinput"):
        path = tempfile.mkdtemp(prefix="purejaxlib-test-xla-")
        os.environ[XLA_CACHE] = path
        config.stash[_CACHE_OWNED] = path
    path = os.environ.get(XLA_CACHE, "off")
    if path != "off":
        os.environ["JAX_COMPILATION_CACHE_DIR"] = path
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def pytest_unconfigure(config):
    path = config.stash.get(_CACHE_OWNED, None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(XLA_CACHE, None)


_CACHE_OWNED = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Turns a hang (setup, call or teardown) into a loud failure with every thread's stack.

    jaxlib 0.10's batched LAPACK kernels can deadlock XLA:CPU's intra-op thread pool on machines
    with few cores (see the sweep tests), which would otherwise stall CI until its time limit.
    """
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=_real_stderr(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """A learning or ``optimized`` test, and every fixture first set up for it, compiles fully optimized."""
    if _wants_optimized(item):
        _set_optimized(True)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if _wants_optimized(item):
        _set_optimized(False)


def _wants_optimized(item) -> bool:
    return not OPTIMIZED and any(item.get_closest_marker(m) is not None for m in ("learning", "optimized"))


def _set_optimized(optimized: bool) -> None:
    """Switches jax's optimization setting here and for subprocesses started from now on."""
    jax.config.update("jax_disable_most_optimizations", not optimized)
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "0" if optimized else "1"
    if CLASSIC:
        _set_classic_flag(not optimized)


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

    @contextlib.contextmanager
    def counting(fn_name: str):
        counter = CompileCounter(fn_name)
        # jax.log_compiles raises the "Compiling ..." message to WARNING level, so no logger
        # level needs changing.
        logger = logging.getLogger("jax._src.interpreters.pxla")
        logger.addHandler(counter)
        try:
            with jax.log_compiles(True):
                yield counter
        finally:
            logger.removeHandler(counter)

    return counting


def key_data(tree):
    """``tree`` with every PRNG key array replaced by its raw key data (comparable with numpy)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)


def tree_equal(a, b) -> bool:
    """Same structure and bitwise-equal leaves (NaN equal to NaN)."""
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(leaves_a, leaves_b)
    )
