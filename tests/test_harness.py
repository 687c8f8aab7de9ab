"""The test harness itself (tests/conftest.py): how tests compile."""

from __future__ import annotations

import os

import conftest
import pytest


def _fusion_emitters_option() -> object:
    """The fusion-emitter option jax's compile-options builder now passes to XLA (None: none)."""
    from jax._src import compiler

    options = compiler.get_compile_options(num_replicas=1, num_partitions=1)
    return dict(options.env_option_overrides).get("xla_cpu_use_fusion_emitters")


def test_minus_O0_compiles_use_classic_emitters_and_optimized_ones_xla_default():
    """Here and in subprocesses: a non-learning test (this one) compiles with the classic emitters;
    switched to optimized (as for a learning test), with XLA's default fusion emitters."""
    if not conftest.CLASSIC:
        pytest.skip("classic emitters are off (PUREJAXLIB_TEST_OPTIMIZED, _FUSION_EMITTERS or XLA_FLAGS of your own)")
    assert _fusion_emitters_option() is False
    assert conftest.CLASSIC_EMITTERS in os.environ["XLA_FLAGS"].split()
    conftest._set_optimized(True)
    try:
        assert _fusion_emitters_option() is True
        assert conftest.CLASSIC_EMITTERS not in os.environ["XLA_FLAGS"].split()
    finally:
        conftest._set_optimized(False)
    assert _fusion_emitters_option() is False
    assert conftest.CLASSIC_EMITTERS in os.environ["XLA_FLAGS"].split()
