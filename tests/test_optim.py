"""The minibatch shuffle: optim.permutation is a permutation, uniform, deterministic per key."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from purejaxlib.optim import permutation


@pytest.mark.parametrize("n", [1, 2, 3, 5, 512, 1000, 2048, 2049])
def test_permutation_is_a_permutation(n):
    perm = np.asarray(jax.jit(permutation, static_argnums=1)(jax.random.key(n), n))
    assert perm.dtype == np.int32
    assert sorted(perm.tolist()) == list(range(n))


def test_permutation_is_uniform_and_deterministic():
    keys = jax.random.split(jax.random.key(0), 20_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 6)))(keys))
    # where element 0 lands: uniform over the 6 positions (binomial sd ~0.0026 each)
    where = np.bincount(np.argmax(perms == 0, axis=1), minlength=6) / len(keys)
    np.testing.assert_allclose(where, 1 / 6, atol=0.012)
    # all 720 orders occur, none far from 1/720
    counts = np.unique(perms, axis=0, return_counts=True)[1]
    assert len(counts) == 720 and counts.max() < 3 * len(keys) / 720
    np.testing.assert_array_equal(perms[:3], np.asarray(jax.vmap(lambda k: permutation(k, 6))(keys[:3])))
    assert not np.array_equal(perms[0], perms[1]) or not np.array_equal(perms[1], perms[2])
