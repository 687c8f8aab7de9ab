"""Conformance (purejaxlib.envs.check) of every registered environment.

A file of its own so that pytest-xdist (``--dist loadscope``) runs it beside the other modules.
"""

from __future__ import annotations

import pytest

from purejaxlib import envs

# A brax env takes 10-30 s to build and compile on this CPU, so brax envs are checked at a few
# steps; tests/test_brax.py covers the adapter itself.
BRAX_CHECK = {"num_steps": 8, "num_envs": 2}

# Batched-equals-unbatched costs a second compile per env, so it runs on one env of each family
# (each family's step is one code path); every env gets all the other rules.
UNBATCHED_COMPARED = (
    "CartPole-v1",
    "Acrobot-v1",
    "Breakout-MinAtar",
    "Catch-bsuite",
    "FourRooms-misc",
    "Probe5-ActionObservationReward-continuous",
    "LQR",
    "gymnasium/CartPole-v1",
    "brax/inverted_pendulum",
)


# `make test` checks one env of each family and action kind (every family's envs share its adapter
# and step code path); `make test-all` checks every registered env (slow). Brax's conformance (30 s
# of compiling its physics) is in make test-all only; tests/test_brax.py checks its adapter in make test.
FAST = (
    *(name for name in UNBATCHED_COMPARED if not name.startswith("brax/")),
    "Pendulum-v1",
    "MemoryChain-bsuite",
    "Probe5-ActionObservationReward",
    "gymnasium/Pendulum-v1",
    "jaxmarl/MPE_simple_spread_v3",
    "pgx/tic_tac_toe",
    "craftax/Craftax-Classic-Symbolic-v1",
    "jumanji/Snake-v1",
    "navix/Navix-Empty-5x5-v0",
    "xminigrid/MiniGrid-Empty-5x5",
)

# The optional extra each prefix needs (the test skips where it is not installed).
EXTRAS = {
    "jaxmarl": "jaxmarl",
    "pgx": "pgx",
    "craftax": "craftax",
    "jumanji": "jumanji",
    "navix": "navix",
    "xminigrid": "xminigrid",
}


def _env_params(names: list[str]) -> list:
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _env_params(envs.list()))
def test_every_registered_env_passes_the_conformance_check(name):
    prefix = name.partition("/")[0]
    if prefix in EXTRAS and "/" in name:
        pytest.importorskip(EXTRAS[prefix], reason=f"{EXTRAS[prefix]} is an optional extra (see pyproject.toml)")
    options = dict(BRAX_CHECK) if name.startswith("brax/") else {}
    # check raises ConformanceError naming every rule the env breaks.
    report = envs.check(*envs.make(name), compare_unbatched=name in UNBATCHED_COMPARED, **options)
    assert report["steps"] == options.get("num_envs", 2) * options.get("num_steps", 48)


def test_the_compared_envs_are_registered():
    assert set(UNBATCHED_COMPARED) <= set(envs.list())
    assert set(FAST) <= set(envs.list())
