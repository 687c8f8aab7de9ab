"""purejaxlib.replay: circular row inserts, sampling only written and time-ordered rows, buffers
per seed under vmap, n-step returns against a plain Python reference, and Polyak averaging.

Buffers here are tiny and filled with values that name their origin (time step, env, seed), so
every sampled value can be traced back to the row it came from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import replay

OBS_DIM = 2


def _rows(ts, num_envs: int, seed: int = 0, ended: dict | None = None, rewards=None) -> replay.Stored:
    """Stored rows for the time steps ``ts``: obs = (t, env + 100 * seed) (nonzero offset so an
    unfilled all-zero slot can never look like a written one), next_obs = obs + 0.5.

    ``ended`` maps (t, env) -> "terminated" / "truncated" / "both".
    """
    ended = ended or {}
    ts = np.asarray(ts)
    T = len(ts)
    obs = np.zeros((T, num_envs, OBS_DIM), np.float32)
    obs[..., 0] = 1.0 + ts[:, None]
    obs[..., 1] = 1.0 + np.arange(num_envs)[None, :] + 100 * seed
    term = np.zeros((T, num_envs), bool)
    trunc = np.zeros((T, num_envs), bool)
    for i, t in enumerate(ts):
        for e in range(num_envs):
            kind = ended.get((int(t), e))
            term[i, e] = kind in ("terminated", "both")
            trunc[i, e] = kind in ("truncated", "both")
    reward = obs[..., 0] * 10 + obs[..., 1] if rewards is None else np.asarray(rewards, np.float32)[ts]
    action = (ts[:, None] + np.arange(num_envs)[None, :]).astype(np.int32) % 3
    return replay.Stored(
        jnp.asarray(obs),
        jnp.asarray(action),
        jnp.asarray(reward, jnp.float32),
        jnp.asarray(term),
        jnp.asarray(trunc),
        jnp.asarray(obs + 0.5),
    )


def _empty(rows: int, num_envs: int) -> replay.Buffer:
    example = jax.tree.map(lambda x: x[0], _rows([0], num_envs))
    return replay.init(example, rows)


def _fill(buffer: replay.Buffer, steps: int, chunk: int, num_envs: int, **kw) -> replay.Buffer:
    """Adds time steps 0..steps-1 in chunks of ``chunk`` rows."""
    add = jax.jit(replay.add)
    for start in range(0, steps, chunk):
        buffer = add(buffer, _rows(np.arange(start, start + chunk), num_envs, **kw))
    return buffer


def _t(obs) -> np.ndarray:
    """Time step encoded in an observation."""
    return np.asarray(obs)[..., 0].round().astype(int) - 1


def _env(obs, seed: int = 0) -> np.ndarray:
    return np.asarray(obs)[..., 1].round().astype(int) - 1 - 100 * seed


# ---------------------------------------------------------------------------------------------
# insert


def test_init_add_and_sample_shapes():
    buffer = _empty(8, 3)
    assert replay.capacity(buffer) == 8
    assert buffer.data.obs.shape == (8, 3, OBS_DIM) and buffer.data.obs.dtype == jnp.float32
    assert buffer.data.action.shape == (8, 3) and buffer.data.action.dtype == jnp.int32
    assert buffer.data.terminated.dtype == jnp.bool_ and buffer.data.truncated.shape == (8, 3)
    assert int(buffer.pos) == 0 and int(buffer.size) == 0

    buffer = replay.add(buffer, _rows([0, 1], 3))
    assert int(buffer.pos) == 2 and int(buffer.size) == 2
    np.testing.assert_array_equal(_t(buffer.data.obs[:2]), [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(_env(buffer.data.obs[:2]), [[0, 1, 2], [0, 1, 2]])

    batch = replay.sample(buffer, jax.random.key(0), 5, jnp.float32(0.9))
    assert batch.obs.shape == (5, OBS_DIM) and batch.next_obs.shape == (5, OBS_DIM)
    assert batch.action.shape == (5,) and batch.action.dtype == jnp.int32
    assert batch.reward.shape == (5,) and batch.discount.shape == (5,)
    batch = replay.sample(buffer, jax.random.key(0), 7, jnp.float32(0.9), n_step=2)
    assert batch.obs.shape == (7, OBS_DIM) and batch.reward.shape == (7,)


@pytest.mark.parametrize(
    "capacity,chunk,steps",
    [
        (5, 1, 7),  # count == 1: dynamic_update_index path
        (6, 3, 12),  # cap % count == 0, count > 1: contiguous slice path
        (5, 2, 8),  # cap % count != 0: scatter path, writes straddle the end
        (5, 3, 12),  # scatter, several wraps
    ],
    ids=["count1", "slice", "scatter", "scatter-multiwrap"],
)
def test_add_wraps_around_and_overwrites_the_oldest_rows(capacity, chunk, steps):
    num_envs = 2
    buffer = _fill(_empty(capacity, num_envs), steps, chunk, num_envs)
    assert int(buffer.pos) == steps % capacity
    assert int(buffer.size) == capacity
    # Row r holds the latest time step t < steps with t % capacity == r.
    expected = np.array([max(t for t in range(steps) if t % capacity == r) for r in range(capacity)])
    np.testing.assert_array_equal(_t(buffer.data.obs), np.repeat(expected[:, None], num_envs, axis=1))
    np.testing.assert_array_equal(_env(buffer.data.obs), np.tile(np.arange(num_envs), (capacity, 1)))
    np.testing.assert_array_equal(_t(buffer.data.next_obs - 0.5), _t(buffer.data.obs))
    # The oldest steps are gone.
    assert set(_t(buffer.data.obs).ravel()) == set(range(steps - capacity, steps))


def test_add_before_full_tracks_size_and_pos():
    buffer = _fill(_empty(7, 1), 4, 2, 1)
    assert int(buffer.pos) == 4 and int(buffer.size) == 4
    np.testing.assert_array_equal(_t(buffer.data.obs[:4, 0]), [0, 1, 2, 3])
    np.testing.assert_array_equal(np.asarray(buffer.data.obs[4:]), 0.0)  # untouched
    buffer = replay.add(buffer, _rows([4, 5], 1))
    buffer = replay.add(buffer, _rows([6, 7], 1))  # straddles the end: rows 6, 0
    assert int(buffer.pos) == 1 and int(buffer.size) == 7
    np.testing.assert_array_equal(_t(buffer.data.obs[:, 0]), [7, 1, 2, 3, 4, 5, 6])


def test_add_more_rows_than_capacity_is_an_error():
    with pytest.raises(ValueError, match="cannot add 4 rows to a buffer of 3 rows"):
        replay.add(_empty(3, 1), _rows(np.arange(4), 1))


# ---------------------------------------------------------------------------------------------
# sample: only written rows, runs in time order


@pytest.mark.parametrize("n_step", [1, 3])
def test_sampling_never_reads_unfilled_slots(n_step):
    """10 of 64 rows written: every sampled start, successor and run lies in rows 0..9."""
    num_envs = 2
    buffer = _fill(_empty(64, num_envs), 10, 1, num_envs)
    batch = jax.jit(replay.sample, static_argnums=(2, 4))(buffer, jax.random.key(1), 4096, jnp.float32(0.9), n_step)
    t, env = _t(batch.obs), _env(batch.obs)
    # all starts whose n-step run stays inside the written rows, and nothing else
    assert set(t) == set(range(10 - n_step + 1))
    assert set(env) == {0, 1}
    # the bootstrap observation is the successor of the run's last step (no episode ends here)
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.stack([t + n_step - 1 + 1.5, env + 1.5], -1))
    np.testing.assert_allclose(np.asarray(batch.discount), 0.9**n_step, rtol=1e-6)
    assert np.all(np.asarray(batch.obs) != 0) and np.all(np.asarray(batch.next_obs) != 0)


@pytest.mark.parametrize("n_step", [1, 3])
def test_sampling_a_wrapped_buffer_keeps_runs_in_time_order(n_step):
    """11 steps into 8 rows: the buffer holds steps 3..10 with the newest (10) at row 2 and the
    oldest (3) at row 3. A run must never continue from the newest row into the oldest one."""
    buffer = _fill(_empty(8, 1), 11, 1, 1)
    assert int(buffer.pos) == 3
    batch = replay.sample(buffer, jax.random.key(2), 4096, jnp.float32(0.9), n_step)
    t = _t(batch.obs)
    assert set(t) == set(range(3, 11 - n_step + 1))
    np.testing.assert_array_equal(_t(batch.next_obs - 0.5), t + n_step - 1)
    # the reward sums steps t..t+n-1 (reward of step t is 10 * (t + 1) + 1)
    gammas = 0.9 ** np.arange(n_step)
    expected = np.array([sum(g * (10 * (s + k + 1) + 1) for k, g in enumerate(gammas)) for s in t])
    np.testing.assert_allclose(np.asarray(batch.reward), expected, rtol=1e-5)


def test_sampling_is_roughly_uniform_over_rows_and_envs():
    buffer = _fill(_empty(16, 4), 16, 4, 4)
    batch = replay.sample(buffer, jax.random.key(3), 16_000, jnp.float32(0.9))
    counts = np.zeros((16, 4))
    np.add.at(counts, (_t(batch.obs), _env(batch.obs)), 1)
    # 250 expected per cell; +-40% is far outside the binomial spread (std ~16)
    assert counts.min() > 150 and counts.max() < 350, counts


def test_vmapped_buffers_keep_seeds_apart():
    """One buffer per seed, each with its own contents: every sample of seed s comes from s."""
    seeds, num_envs = 3, 2
    per_seed = [_rows(np.arange(6), num_envs, seed=s) for s in range(seeds)]
    rows = jax.tree.map(lambda *x: jnp.stack(x), *per_seed)
    buffers = jax.vmap(lambda _: _empty(8, num_envs))(jnp.arange(seeds))
    buffers = jax.jit(jax.vmap(replay.add))(buffers, rows)
    assert buffers.data.obs.shape == (seeds, 8, num_envs, OBS_DIM)
    np.testing.assert_array_equal(np.asarray(buffers.size), [6, 6, 6])
    keys = jax.random.split(jax.random.key(4), seeds)
    batch = jax.jit(jax.vmap(lambda b, k: replay.sample(b, k, 512, jnp.float32(0.9), 2)))(buffers, keys)
    assert batch.obs.shape == (seeds, 512, OBS_DIM)
    for s in range(seeds):
        seed_of_sample = (np.asarray(batch.obs[s, :, 1]).round().astype(int) - 1) // 100
        np.testing.assert_array_equal(seed_of_sample, s)
        np.testing.assert_array_equal((np.asarray(batch.next_obs[s, :, 1]).round().astype(int) - 1) // 100, s)
        assert set(_env(batch.obs[s], seed=s)) == {0, 1}
        assert set(_t(batch.obs[s])) == set(range(5))
    # and the seeds' keys were used: the draws differ between seeds
    assert not np.array_equal(_t(batch.obs[0]), _t(batch.obs[1]))


# ---------------------------------------------------------------------------------------------
# n-step returns against a plain Python reference

GAMMA = 0.9
# env 0: terminated at t=4, truncated at t=8; env 1: truncated at t=2, terminated at t=3 and
# both at once at t=7 (a true terminal that also hit the time limit: no bootstrap).
ENDED = {(4, 0): "terminated", (8, 0): "truncated", (2, 1): "truncated", (3, 1): "terminated", (7, 1): "both"}
STEPS = 12


def _reference(rewards, n_step: int, gamma: float):
    """{(t, env): (n-step reward, discount, t of the bootstrap successor)} by plain loops."""
    out = {}
    for env in range(2):
        for t in range(STEPS - n_step + 1):
            total, discount, last = 0.0, None, None
            for k in range(n_step):
                total += gamma**k * rewards[t + k, env]
                kind = ENDED.get((t + k, env))
                if kind in ("terminated", "both"):
                    discount, last = 0.0, t + k
                    break
                if kind == "truncated":
                    discount, last = gamma ** (k + 1), t + k  # bootstrap from the true successor
                    break
            if last is None:
                discount, last = gamma**n_step, t + n_step - 1
            out[(t, env)] = (total, discount, last)
    return out


@pytest.mark.parametrize("n_step", [1, 2, 3, 5])
def test_n_step_returns_match_a_python_reference(n_step):
    rewards = np.asarray(jax.random.uniform(jax.random.key(7), (STEPS, 2), minval=-1.0, maxval=2.0))
    buffer = _empty(16, 2)
    buffer = replay.add(buffer, _rows(np.arange(STEPS), 2, ended=ENDED, rewards=rewards))
    batch = jax.jit(replay.sample, static_argnums=(2, 4))(buffer, jax.random.key(8), 8192, jnp.float32(GAMMA), n_step)
    reference = _reference(rewards, n_step, GAMMA)
    t, env = _t(batch.obs), _env(batch.obs)
    assert set(zip(t, env)) == set(reference)  # every valid start was drawn, no other
    expected = np.array([reference[(a, b)] for a, b in zip(t, env)])
    np.testing.assert_allclose(np.asarray(batch.reward), expected[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(batch.discount), expected[:, 1], rtol=1e-5, atol=0)
    np.testing.assert_array_equal(_t(batch.next_obs - 0.5), expected[:, 2].astype(int))
    np.testing.assert_array_equal(_env(batch.next_obs - 0.5), env)
    # the stored action is the first step's
    np.testing.assert_array_equal(np.asarray(batch.action), (t + env) % 3)
    if n_step > 1:  # the reference really exercises both kinds of end inside a run
        assert any(d == 0.0 and last > a for (a, _), (_, d, last) in reference.items())
        assert any(GAMMA**n_step < d < 1.0 for (_, d, _) in reference.values())  # truncated early


def test_one_step_sample_is_the_stored_transition():
    rewards = np.asarray(jax.random.uniform(jax.random.key(9), (STEPS, 2)))
    buffer = replay.add(_empty(12, 2), _rows(np.arange(STEPS), 2, ended=ENDED, rewards=rewards))
    batch = replay.sample(buffer, jax.random.key(10), 4096, jnp.float32(GAMMA), 1)
    t, env = _t(batch.obs), _env(batch.obs)
    assert len(set(zip(t, env))) == 2 * STEPS
    np.testing.assert_allclose(np.asarray(batch.reward), rewards[t, env], rtol=1e-6)
    terminated = np.array([ENDED.get((a, b)) in ("terminated", "both") for a, b in zip(t, env)])
    np.testing.assert_allclose(np.asarray(batch.discount), GAMMA * (1.0 - terminated), rtol=1e-6)
    np.testing.assert_array_equal(_t(batch.next_obs - 0.5), t)  # own successor, even when truncated


def test_n_step_discount_follows_a_traced_gamma():
    buffer = _fill(_empty(8, 1), 8, 1, 1)
    sample = jax.jit(lambda g: replay.sample(buffer, jax.random.key(0), 64, g, 3).discount)
    np.testing.assert_allclose(np.asarray(sample(jnp.float32(0.5))), 0.125, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sample(jnp.float32(0.99))), 0.99**3, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# polyak


def test_polyak_averaging():
    target = {"a": jnp.array([1.0, 2.0, -3.0]), "b": {"w": jnp.full((2, 2), 4.0)}}
    online = {"a": jnp.array([3.0, -2.0, 5.0]), "b": {"w": jnp.full((2, 2), -4.0)}}
    polyak = jax.jit(replay.polyak)
    same = polyak(target, online, jnp.float32(0.0))
    jax.tree.map(np.testing.assert_array_equal, same, target)
    copied = polyak(target, online, jnp.float32(1.0))
    jax.tree.map(np.testing.assert_array_equal, copied, online)
    half = polyak(target, online, jnp.float32(0.5))
    np.testing.assert_allclose(half["a"], [2.0, 0.0, 1.0])
    np.testing.assert_allclose(half["b"]["w"], np.zeros((2, 2)))
    small = polyak(target, online, jnp.float32(0.25))
    np.testing.assert_allclose(small["a"], [1.5, 1.0, -1.0])
    assert jax.tree.structure(small) == jax.tree.structure(target)


def test_add_rows_shaped_unlike_the_buffer_name_the_field():
    buffer = _empty(8, 3)
    rows = _rows([0, 1], 3)
    with pytest.raises(AssertionError, match=r"rows\.obs must be \[T, \*\(3, 2\)\]"):
        replay.add(buffer, rows._replace(obs=rows.obs[..., :1]))
    with pytest.raises(AssertionError, match=r"rows\.reward"):
        replay.add(buffer, rows._replace(reward=rows.reward[:, :2]))  # 2 envs, buffer has 3


def test_sample_checks_the_buffer_rank_and_a_scalar_gamma():
    buffer = _fill(_empty(8, 2), 4, 2, 2)
    with pytest.raises(AssertionError, match="gamma must be a scalar"):
        replay.sample(buffer, jax.random.key(0), 4, jnp.full((2,), 0.9))
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), buffer)  # a batch of buffers, not vmapped
    with pytest.raises(AssertionError, match=r"\[rows, num_envs, \.\.\.\]"):
        replay.sample(batched, jax.random.key(0), 4, jnp.float32(0.9))
