"""purejaxlib.export: policies saved with jax.export run without the training code.

Round trips use untrained (``init``) states of tiny configs: the point is that the loaded policy
computes the same actions as the in-process ``policy(config, state)``, not that it is good. The
exported policy of a really trained CartPole PPO is played in a fresh process by tests/test_learning.py.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np
import pytest
from conftest import SMALL

from purejaxlib.algos import dqn, ppo, pqn, sac, td3
from purejaxlib.export import FORMAT_VERSION, load_policy, save_policy

OFFPOLICY_TINY = dict(hidden=(16, 16), batch_size=8, buffer_size=256, learning_starts=32)

# name -> (module, config). eps_end 0.5 so epsilon-greedy samples visibly differ between keys;
# normalize_obs exercises statistics baked into the exported program.
CASES = {
    "ppo": (ppo, lambda: ppo.Config(env="CartPole-v1", total_timesteps=128, **SMALL)),
    "ppo-continuous": (ppo, lambda: ppo.Config(env="Pendulum-v1", total_timesteps=128, normalize_obs=True, **SMALL)),
    "pqn": (pqn, lambda: pqn.Config(env="CartPole-v1", total_timesteps=128, hidden=(16, 16), eps_end=0.5, **SMALL)),
    "dqn": (
        dqn,
        lambda: dqn.Config(
            env="CartPole-v1",
            total_timesteps=512,
            hidden=(16, 16),
            batch_size=8,
            buffer_size=256,
            learning_starts=64,
            eps_end=0.5,
        ),
    ),
    "sac": (sac, lambda: sac.Config(env="Pendulum-v1", total_timesteps=96, **OFFPOLICY_TINY)),
    "td3": (td3, lambda: td3.Config(env="Pendulum-v1", total_timesteps=96, **OFFPOLICY_TINY)),
}


def observations(config: Any, n: int, seed: int = 0) -> np.ndarray:
    """``[n, *obs_shape]`` float32 observations of roughly the env's scale."""
    return np.random.default_rng(seed).normal(size=(n, *config.spec.obs_shape)).astype(np.float32)


def assert_actions_equal(discrete: bool, got: np.ndarray, want: Any) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    if discrete:
        np.testing.assert_array_equal(got, want)
    else:  # one XLA program vs. another: float32 rounding may differ in the last bits
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    """An init state of each algorithm, saved deterministic and stochastic."""
    module, make_config = CASES[request.param]
    config = make_config()
    state = jax.jit(module.init)(config, jax.random.key(0))  # compiling beats running it op by op
    root = tmp_path_factory.mktemp(request.param)
    save_policy(root / "greedy", config, state)
    save_policy(root / "sampled", config, state, deterministic=False)
    return module, config, state, root


def test_loaded_actions_equal_in_process_policy(exported):
    module, config, state, root = exported
    policy = load_policy(root / "greedy")
    obs = observations(config, 64)
    want = module.policy(config, state, deterministic=True)(obs, jax.random.key(0))
    assert_actions_equal(config.spec.discrete, policy(obs), want)

    one = policy(obs[3])
    if config.spec.discrete:
        assert isinstance(one, int) and one == int(want[3])
    else:
        assert isinstance(one, np.ndarray) and one.shape == config.spec.action_shape
        np.testing.assert_allclose(one, np.asarray(want[3]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(policy(obs[3].tolist()), one)  # lists are observations too
    assert policy(obs[:0]).shape == (0, *np.shape(want)[1:])


def test_stochastic_export_follows_its_key(exported):
    module, config, state, root = exported
    policy = load_policy(root / "sampled", seed=5)
    obs = observations(config, 64)
    want = module.policy(config, state, deterministic=False)(obs, jax.random.key(3))
    assert_actions_equal(config.spec.discrete, policy(obs, 3), want)
    np.testing.assert_array_equal(policy(obs, 3), policy(obs, jax.random.key(3)))
    assert not np.array_equal(policy(obs, 3), policy(obs, 4))
    # without a key: a fresh key every call, the same sequence for the same seed
    first, second = policy(obs), policy(obs)
    assert not np.array_equal(first, second)
    again = load_policy(root / "sampled", seed=5)
    np.testing.assert_array_equal(again(obs), first)


def test_metadata_describes_the_policy(exported):
    module, config, _, root = exported
    policy = load_policy(root / "greedy")
    meta = json.loads((root / "greedy" / "policy.json").read_text())
    assert policy.metadata == meta
    assert meta["format_version"] == FORMAT_VERSION and meta["algorithm"] == module.__name__
    assert meta["env"] == config.env and meta["config"]["env"] == config.env
    assert policy.observation_shape == config.spec.obs_shape == tuple(meta["observation"]["shape"])
    assert policy.deterministic and not load_policy(root / "sampled").deterministic
    action = meta["action"]
    assert action["discrete"] == config.spec.discrete
    if config.spec.discrete:
        assert action["num_actions"] == config.spec.num_actions
    else:
        assert action["shape"] == list(config.spec.action_shape)
        np.testing.assert_array_equal(action["low"], config.spec.action_low)
    assert "cpu" in meta["platforms"]


# ---------------------------------------------------------------------------------------------
# errors


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    config = ppo.Config(env="CartPole-v1", total_timesteps=128, **SMALL)
    state = jax.jit(ppo.init)(config, jax.random.key(0))
    path = save_policy(tmp_path_factory.mktemp("cartpole") / "policy", config, state)
    return config, state, path


def copy_of(path, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("policy.json", "policy.jaxexport"):
        (out / name).write_bytes((path / name).read_bytes())
    return out


def test_corrupted_module_is_refused(cartpole, tmp_path):
    path = copy_of(cartpole[2], tmp_path)
    blob = bytearray((path / "policy.jaxexport").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "policy.jaxexport").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"corrupted.*sha256"):
        load_policy(path)


def test_missing_files_and_unknown_versions_are_refused(cartpole, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_policy(tmp_path / "nowhere")
    path = copy_of(cartpole[2], tmp_path)
    meta = json.loads((path / "policy.json").read_text())
    (path / "policy.json").write_text(json.dumps({**meta, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}"):
        load_policy(path)
    (path / "policy.jaxexport").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing policy\.jaxexport"):
        load_policy(path)


def test_wrong_observation_shape_and_key_are_refused(cartpole):
    policy = load_policy(cartpole[2])
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(4,\)"):
        policy(np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(2, 5\); expected \(4,\)"):
        policy(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="key must be"):
        policy(np.zeros(4), key=np.zeros(3, np.uint32))


def test_sweep_states_and_batched_configs_are_refused(cartpole, tmp_path):
    config, state, _ = cartpole
    states = jax.tree.map(lambda x: jax.numpy.stack([x, x]), state)  # as a sweep of 2 seeds returns
    with pytest.raises(ValueError, match=r"leading axes \(2,\).*x\[i\]"):
        save_policy(tmp_path / "sweep", config, states)
    batched = config.replace(lr=np.array([1e-3, 3e-3], np.float32))
    with pytest.raises(ValueError, match=r"config\.lr has shape \(2,\).*batched"):
        save_policy(tmp_path / "sweep", batched, state)
    assert not (tmp_path / "sweep").exists()


def test_other_platforms_are_exported_alongside_cpu(cartpole, tmp_path):
    """Lowering for an accelerator needs no accelerator; a module without this platform is refused."""
    config, state, path = cartpole
    both = load_policy(save_policy(tmp_path / "both", config, state, platforms=("cpu", "cuda")))
    assert both.metadata["platforms"] == ["cpu", "cuda"]
    obs = observations(config, 8)
    np.testing.assert_array_equal(both(obs), load_policy(path)(obs))
    if jax.export.default_export_platform() != "cuda":
        save_policy(tmp_path / "cuda", config, state, platforms=("cuda",))
        with pytest.raises(RuntimeError, match=r"exported for platforms \['cuda'\]"):
            load_policy(tmp_path / "cuda")


def test_training_results_and_foreign_states_are_refused(cartpole, tmp_path):
    config, state, _ = cartpole
    with pytest.raises(TypeError, match=r"ppo.train\(config, key\).state"):
        save_policy(tmp_path / "result", config, (state, {}))


# ---------------------------------------------------------------------------------------------
# a trained policy in a fresh process

PLAY = """
import json, sys
import gymnasium
import gymnax
import jax
import numpy as np
from purejaxlib.export import load_policy

policy = load_policy(sys.argv[1])
assert "purejaxlib.algos" not in sys.modules, "loading a policy imported the training code"

env, params = gymnax.make("CartPole-v1")
reset, step = jax.jit(env.reset), jax.jit(env.step)
gymnax_returns = []
for episode in range(10):
    key = jax.random.key(episode)
    obs, state = reset(key, params)
    total, done = 0.0, False
    while not done:
        key, step_key = jax.random.split(key)
        obs, state, reward, terminated, truncated, _ = step(step_key, state, policy(np.asarray(obs)), params)
        total += float(reward)
        done = bool(terminated) or bool(truncated)
    gymnax_returns.append(total)

gym_env = gymnasium.make("CartPole-v1")
gymnasium_returns = []
for episode in range(5):
    obs, _ = gym_env.reset(seed=episode)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = gym_env.step(policy(obs))
        total += float(reward)
        done = terminated or truncated
    gymnasium_returns.append(total)

assert "purejaxlib.algos" not in sys.modules
print(json.dumps({"gymnax": gymnax_returns, "gymnasium": gymnasium_returns}))
"""
