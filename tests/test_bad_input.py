"""Bad configs fail at construction (before any tracing or compiling) with a ConfigError whose
message names the field and what would be valid."""

from __future__ import annotations

import re

import pytest
from conftest import small_config

import purejaxlib
from purejaxlib import ConfigError
from purejaxlib.algos import ppo


def _config_error(**fields) -> str:
    with pytest.raises(ConfigError) as info:
        ppo.Config(**fields)
    return str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_unknown_env_name():
    message = _config_error(env="CartPole-v2")
    assert "env" in message and "'CartPole-v2'" in message
    assert "CartPole-v1" in message  # close match


def test_batch_not_divisible_into_minibatches():
    message = _config_error(num_envs=4, num_steps=10, num_minibatches=3)
    assert "num_minibatches" in message
    assert "40" in message  # the batch size it must divide
    # valid choices are listed: divisors of 40
    assert re.search(r"\b5\b", message) and re.search(r"\b8\b", message)


@pytest.mark.parametrize(
    "fields,name",
    [
        (dict(num_envs=0), "num_envs"),
        (dict(num_envs=-4), "num_envs"),
        (dict(num_steps=-1), "num_steps"),
        (dict(num_steps=0), "num_steps"),
        (dict(update_epochs=0), "update_epochs"),
        (dict(num_minibatches=0), "num_minibatches"),
        (dict(total_timesteps=0), "total_timesteps"),
        (dict(total_timesteps=-100), "total_timesteps"),
    ],
)
def test_zero_or_negative_sizes(fields, name):
    message = _config_error(**fields)
    assert name in message
    assert "> 0" in message or "positive" in message


def test_total_timesteps_smaller_than_one_batch():
    message = _config_error(num_envs=4, num_steps=128, total_timesteps=100)
    assert "total_timesteps" in message
    assert "512" in message  # the size of one update's batch


@pytest.mark.parametrize("dist", ["normal", "tanh_normal"])
def test_continuous_distribution_on_discrete_env(dist):
    message = _config_error(env="CartPole-v1", action_dist=dist)
    assert "action_dist" in message and dist in message
    assert "categorical" in message  # what would be valid


def test_categorical_on_continuous_env():
    message = _config_error(env="Pendulum-v1", action_dist="categorical")
    assert "action_dist" in message
    assert "normal" in message and "tanh_normal" in message


def test_unknown_choice_fields():
    message = _config_error(action_dist="beta")
    assert "action_dist" in message and "tanh_normal" in message
    message = _config_error(activation="sigmoid")
    assert "activation" in message and "relu" in message


@pytest.mark.parametrize(
    "fields,name",
    [
        (dict(lr=-1e-3), "lr"),
        (dict(lr=0.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(clip_eps=-0.2), "clip_eps"),
        (dict(ent_coef=-0.01), "ent_coef"),
        (dict(max_grad_norm=0.0), "max_grad_norm"),
    ],
)
def test_non_positive_hyperparameters(fields, name):
    message = _config_error(**fields)
    assert name in message and (">" in message)


@pytest.mark.parametrize(
    "fields,name", [(dict(gamma=1.01), "gamma"), (dict(gamma=-0.5), "gamma"), (dict(gae_lambda=1.5), "gae_lambda")]
)
def test_discount_out_of_range(fields, name):
    message = _config_error(**fields)
    assert name in message
    assert "[0.0, 1.0]" in message


def test_replace_validates_too():
    config = small_config()
    with pytest.raises(ConfigError, match="num_envs"):
        config.replace(num_envs=0)
    with pytest.raises(ConfigError, match="gamma"):
        config.replace(gamma=2.0)


# ---------------------------------------------------------------------------------------------
# sweep: errors come before the training function is ever traced


class SpyTrain:
    """A ``train`` that records whether it was ever called (i.e. traced for compilation)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, config, key):
        self.calls += 1
        return ppo.train(config, key)


def _sweep_error(config=None, **kwargs) -> str:
    spy = SpyTrain()
    with pytest.raises(ConfigError) as info:
        purejaxlib.sweep(spy, config if config is not None else small_config(), **kwargs)
    assert spy.calls == 0, "sweep traced train before rejecting the grid"
    return str(info.value)


def test_sweep_grid_over_unknown_field():
    message = _sweep_error(seeds=1, learning_rate=[1e-3])
    assert "'learning_rate'" in message
    assert re.search(r"\blr\b", message), message  # the field that was meant


def test_sweep_grid_unknown_field_close_match():
    message = _sweep_error(seeds=1, ent_coeff=[0.0, 0.01])
    assert "'ent_coeff'" in message and "'ent_coef'" in message


def test_sweep_invalid_traced_grid_value():
    message = _sweep_error(seeds=1, lr=[1e-3, -1.0])
    assert "lr" in message and "> 0" in message


def test_sweep_invalid_gamma_grid_value():
    message = _sweep_error(seeds=2, gamma=[0.9, 1.2])
    assert "gamma" in message


@pytest.mark.parametrize("seeds", [0, -1, []])
def test_sweep_needs_at_least_one_seed(seeds):
    message = _sweep_error(seeds=seeds)
    assert "seeds" in message


def test_sweep_grid_needs_a_list_of_values():
    message = _sweep_error(seeds=1, lr=1e-3)
    assert "lr" in message and "list" in message
    message = _sweep_error(seeds=1, lr=[])
    assert "lr" in message


def test_sweep_invalid_static_grid_value():
    message = _sweep_error(seeds=1, num_envs=[0])
    assert "num_envs" in message


def test_sweep_invalid_later_static_grid_value_fails_before_any_program_runs():
    """num_envs=4 is valid, num_envs=0 is not: the sweep must reject the grid up front rather
    than compile and train the num_envs=4 program first and fail afterwards."""
    message = _sweep_error(seeds=1, num_envs=[4, 0])
    assert "num_envs" in message
    message = _sweep_error(seeds=1, num_minibatches=[2, 3])
    assert "num_minibatches" in message
