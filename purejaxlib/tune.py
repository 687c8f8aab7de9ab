"""Hyperparameter tuning inside the compiled programs: random search, successive halving and PBT.

A *population* of configurations of one algorithm trains side by side, vmapped in one program per
static configuration, in *chunks* of updates (:func:`purejaxlib.training.scan_updates`). After each
chunk every member plays ``eval_episodes`` deterministic episodes and its mean return is its score.
Between chunks the method acts on the host:

- ``random``: nothing; every member trains for the whole horizon (``budget / population`` env steps).
- ``halving`` (successive halving): rung ``k`` trains the survivors to ``u0 * eta**k`` updates, then
  keeps the best ``1/eta`` of them; each rung spends about the same env steps, in all ``budget``.
- ``pbt`` (population-based training, truncation selection): the worst ``pbt_fraction`` of members
  take a copy of a random member of the best ``pbt_fraction`` (parameters, optimizer state, env
  states, buffers: the whole training state but its PRNG key) and its hyperparameters, each then
  either resampled from the space (``resample_prob``) or multiplied by one of ``perturb`` and
  clipped to the space's bounds.

Members train on keys from ``tune_seeds``; the *incumbent* (the best member at the end, with its
hyperparameter schedule for PBT) is then trained again on ``test_seeds``, never used while tuning,
and so is the unchanged ``config`` (the defaults), for the same number of updates::

    from purejaxlib import tune
    from purejaxlib.algos import ppo
    space = {"lr": tune.LogUniform(1e-4, 1e-2), "ent_coef": tune.Uniform(0.0, 0.05)}
    result = tune.tune(ppo, ppo.Config(env="CartPole-v1"), space, budget=4_000_000, method="pbt")
    result.incumbent, result.test["iqm"], result.default_test["iqm"]

Static fields (e.g. ``hidden``) may be searched with :class:`Choice` by ``random`` and ``halving``
(one program per value); PBT copies parameters between members, so its space is traced fields only.
With ``out`` the tuner saves every member's state and its own after each chunk (orbax), writes
``trace.jsonl`` (every member's hyperparameters and score after every chunk) and ``result.json``,
and ``resume=True`` continues a killed run, ending bitwise-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib import evaluation, loggers, stats, training
from purejaxlib.checkpoint import Checkpoints
from purejaxlib.config import ConfigError, close_matches, is_static_field
from purejaxlib.sweep import compiled, gather, member_ids, pad_batch, padded_size, select_devices

METHODS = ("random", "halving", "pbt")
TRACE = "trace.jsonl"
RESULT = "result.json"
EVAL_OFFSET = 1_000_000  # evaluation keys: fold_in(training key, EVAL_OFFSET + chunk)


class LogUniform(NamedTuple):
    """A traced field drawn log-uniformly from ``[low, high]`` (``0 < low < high``)."""

    low: float
    high: float


class Uniform(NamedTuple):
    """A traced field drawn uniformly from ``[low, high]``."""

    low: float
    high: float


class Choice(NamedTuple):
    """A field drawn from ``values`` (static fields: one program per value)."""

    values: tuple[Any, ...]


Distribution = LogUniform | Uniform | Choice


class TuneResult(NamedTuple):
    """What :func:`tune` found.

    Attributes:
      incumbent: the best member's hyperparameters at the end (``{field: value}``).
      schedule: the incumbent's hyperparameters in each chunk (its lineage's, for PBT).
      score: the incumbent's last tuning score (mean deterministic return, one tuning seed).
      trace: one record per member per chunk: ``member``, ``chunk``, ``updates`` (done, cumulative),
        ``score`` (None where nothing was decided: random search scores the last chunk only),
        ``hyperparameters``, ``copied_from`` (PBT: the member whose state it took, or None).
      test: the incumbent trained again on ``test_seeds``: per-seed ``returns``, ``iqm``, ``ci``.
      default_test: the same for the unchanged ``config`` (None when not asked).
      env_steps: env steps spent tuning (all members), and ``updates``: the horizon of one member.
      record: method, budget, population, seeds, chunk lengths, ``seconds`` (this session's tuning
        and test runs, compiles included).
    """

    incumbent: dict[str, Any]
    schedule: list[dict[str, Any]]
    score: float
    trace: list[dict[str, Any]]
    test: dict[str, Any]
    default_test: dict[str, Any] | None
    env_steps: int
    updates: int
    record: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# the search space


def _field_kinds(config: Any) -> dict[str, bool]:
    """``{field: is_static}`` of the config's fields."""
    return {f.name: is_static_field(f) for f in dataclasses.fields(config)}


def check_space(config: Any, space: Mapping[str, Distribution], method: str) -> None:
    """Refuses a bad space before anything trains, naming the field: unknown fields, bad bounds,
    static fields drawn from ranges, values the config refuses, static fields under PBT or that
    change the env steps of one update."""
    if not space:
        raise ConfigError("tune: the space is empty; give at least one field, e.g. {'lr': tune.LogUniform(1e-4, 1e-2)}")
    kinds = _field_kinds(config)
    for name, dist in space.items():
        if name not in kinds:
            raise ConfigError(
                f"tune: space field {name!r}: {type(config).__qualname__} has no such field; "
                f"{close_matches(name, list(kinds))}"
            )
        if not isinstance(dist, (LogUniform, Uniform, Choice)):
            raise ConfigError(
                f"tune: space field {name!r} must be tune.LogUniform, tune.Uniform or tune.Choice, got {dist!r}"
            )
        if isinstance(dist, Choice):
            if not dist.values:
                raise ConfigError(f"tune: space field {name!r}: Choice has no values")
            values = list(dist.values)
        else:
            if kinds[name]:
                raise ConfigError(
                    f"tune: space field {name!r} is static (it sets program structure); draw it with tune.Choice"
                )
            low, high = float(dist.low), float(dist.high)
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ConfigError(f"tune: space field {name!r} needs finite low < high, got [{dist.low}, {dist.high}]")
            if isinstance(dist, LogUniform) and low <= 0:
                raise ConfigError(f"tune: space field {name!r}: LogUniform needs 0 < low, got {dist.low}")
            values = [low, high]
        if kinds[name] and method == "pbt":
            raise ConfigError(
                f"tune: space field {name!r} is static; PBT copies parameters between members, so every member "
                "needs the same program: search static fields with method='random' or 'halving'"
            )
        for value in values:
            try:
                changed = config.replace(**{name: value})
            except ConfigError as err:
                raise ConfigError(f"tune: space field {name!r} value {value!r} is refused: {err}") from err
            except (TypeError, ValueError) as err:
                raise ConfigError(f"tune: space field {name!r} value {value!r} is refused: {err}") from err
            if kinds[name] and changed.steps_per_update != config.steps_per_update:
                raise ConfigError(
                    f"tune: space field {name!r} value {value!r} changes the env steps of one update "
                    f"({config.steps_per_update} -> {changed.steps_per_update}), so members would not share a "
                    "budget; keep it fixed in the config"
                )


def sample(dist: Distribution, rng: np.random.Generator) -> Any:
    """One value of ``dist``."""
    if isinstance(dist, LogUniform):
        return float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
    if isinstance(dist, Uniform):
        return float(rng.uniform(dist.low, dist.high))
    return dist.values[int(rng.integers(len(dist.values)))]


def explore(
    values: dict[str, Any],
    space: Mapping[str, Distribution],
    rng: np.random.Generator,
    perturb: Sequence[float],
    resample_prob: float,
) -> dict[str, Any]:
    """PBT's explore step: each field resampled with ``resample_prob``, else multiplied by a random
    factor of ``perturb`` (ranges; clipped to the bounds) or moved to a neighbouring value (Choice)."""
    out = {}
    for name, dist in space.items():
        if rng.uniform() < resample_prob:
            out[name] = sample(dist, rng)
        elif isinstance(dist, Choice):
            i = list(dist.values).index(values[name]) + int(rng.choice([-1, 1]))
            out[name] = dist.values[min(max(i, 0), len(dist.values) - 1)]
        else:
            factor = float(perturb[int(rng.integers(len(perturb)))])
            out[name] = float(np.clip(values[name] * factor, dist.low, dist.high))
    return out


def pbt_pairs(scores: Sequence[float], fraction: float, rng: np.random.Generator) -> dict[int, int]:
    """Truncation selection: ``{loser: winner}``, each of the worst ``fraction`` (rounded up, at
    least one, at most half) to a uniformly drawn member of the best as many. Ties go by index."""
    n = len(scores)
    k = min(max(1, math.ceil(fraction * n)), n // 2)
    order = sorted(range(n), key=lambda i: (-scores[i], i))  # best first
    best, worst = order[:k], order[n - k :]
    return {loser: best[int(rng.integers(k))] for loser in worst}


def halving_plan(population: int, eta: int, budget_updates: int) -> tuple[list[int], list[int]]:
    """``(members per rung, updates per rung)``: rung ``k`` trains ``population / eta**k`` members
    (rounded up) for ``u0 * eta**k - u0 * eta**(k-1)`` more updates, the total within ``budget_updates``."""
    members = [population]
    while members[-1] > 1:
        members.append(math.ceil(members[-1] / eta))
    cumulative = [eta**k for k in range(len(members))]
    cost_per_u0 = sum(m * (c - (cumulative[k - 1] if k else 0)) for k, (m, c) in enumerate(zip(members, cumulative)))
    u0 = budget_updates // cost_per_u0
    if u0 < 1:
        raise ConfigError(
            f"tune: budget of {budget_updates} updates is too small for halving {population} members with eta={eta} "
            f"(needs at least {cost_per_u0})"
        )
    lengths = [u0 * (c - (cumulative[k - 1] if k else 0)) for k, c in enumerate(cumulative)]
    return members, lengths


# ---------------------------------------------------------------------------------------------
# training members in chunks


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree: Any, n: int) -> list[Any]:
    return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(n)]


def _stack_configs(configs: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x, np.asarray(xs[0]).dtype) for x in xs]), *configs)


def _groups(configs: Sequence[Any]) -> dict[Any, list[int]]:
    """Member indices by program (static fields are part of a config's tree structure)."""
    out: dict[Any, list[int]] = {}
    for i, c in enumerate(configs):
        out.setdefault(jax.tree.structure(c), []).append(i)
    return out


COMPILE_SECONDS: list[float] = []  # seconds of each compile (appended by _call; tune reports the sum)


def _call(identity: Any, fn: Callable, batched: tuple[Any, ...], unbatched: tuple[Any, ...], n: int) -> Any:
    """``vmap(fn)`` over ``n`` members (padded to the devices), unbatched args shared; outputs ``[n, ...]``."""
    devices = select_devices(None)
    size = padded_size(n, devices)
    args = (member_ids(n, size), *pad_batch(batched, size), *unbatched)
    in_axes = (0,) * (1 + len(batched)) + (None,) * len(unbatched)
    executable, seconds = compiled(identity, fn, args, devices, in_axes)
    COMPILE_SECONDS.append(seconds)
    return gather(executable(*args), n)


def train_chunk(algo: Any, configs: Sequence[Any], states: Sequence[Any], start: int, length: int) -> list[Any]:
    """Updates ``start .. start + length - 1`` of every member (one program per static config)."""
    out: list[Any] = [None] * len(configs)
    for idx in _groups(configs).values():

        def chunk(config, state, first):
            return training.scan_updates(algo.step, config, state, first, length)[0]

        batch = (_stack_configs([configs[i] for i in idx]), _stack([states[i] for i in idx]))
        new = _call(("tune-chunk", algo.step, length), chunk, batch, (jnp.int32(start),), len(idx))
        for i, s in zip(idx, _unstack(new, len(idx))):
            out[i] = s
    return out


def init_members(algo: Any, configs: Sequence[Any], keys: Sequence[jax.Array]) -> list[Any]:
    out: list[Any] = [None] * len(configs)
    for idx in _groups(configs).values():
        batch = (_stack_configs([configs[i] for i in idx]), jnp.stack([keys[i] for i in idx]))
        new = _call(("tune-init", algo.init), algo.init, batch, (), len(idx))
        for i, s in zip(idx, _unstack(new, len(idx))):
            out[i] = s
    return out


def score_members(
    configs: Sequence[Any], states: Sequence[Any], keys: Sequence[jax.Array], episodes: int
) -> np.ndarray:
    """Mean deterministic return of ``episodes`` episodes of each member: ``[members]``."""
    out = np.zeros(len(configs))
    for idx in _groups(configs).values():

        def play(config, state, key):
            return evaluation.evaluate(config, state, key, episodes).returns.mean()

        batch = (
            _stack_configs([configs[i] for i in idx]),
            _stack([states[i] for i in idx]),
            jnp.stack([keys[i] for i in idx]),
        )
        out[idx] = np.asarray(_call(("tune-score", episodes), play, batch, (), len(idx)))
    return out


def run_schedule(
    algo: Any,
    config: Any,
    schedule: Sequence[dict[str, Any]],
    lengths: Sequence[int],
    seeds: Sequence[int],
    episodes: int,
) -> dict[str, Any]:
    """Trains ``config`` with ``schedule[c]`` in chunk ``c`` (``lengths[c]`` updates) on each of
    ``seeds`` (keys ``jax.random.key(seed)``), then scores each: per-seed ``returns``, ``iqm``, ``ci``."""
    keys = [jax.random.key(int(s)) for s in seeds]
    configs = [config.replace(**schedule[0])] * len(seeds)
    states = init_members(algo, configs, keys)
    start = 0
    for values, length in zip(schedule, lengths):
        configs = [config.replace(**values)] * len(seeds)
        states = train_chunk(algo, configs, states, start, length)
        start += length
    eval_keys = [jax.random.fold_in(k, EVAL_OFFSET + len(lengths)) for k in keys]
    returns = score_members(configs, states, eval_keys, episodes)
    point, low, high = stats.stratified_bootstrap_ci(returns)
    return {"seeds": [int(s) for s in seeds], "returns": returns.tolist(), "iqm": point, "ci": [low, high]}


# ---------------------------------------------------------------------------------------------
# the tuner


def _plan(method: str, config: Any, budget: int, population: int, chunks: int, eta: int) -> tuple[list[int], list[int]]:
    """``(chunk lengths in updates, members after each chunk)``."""
    budget_updates = budget // config.steps_per_update
    if method == "halving":
        members, lengths = halving_plan(population, eta, budget_updates)
        return lengths, members[1:] + [members[-1]]
    horizon = budget_updates // population
    if horizon < 1:
        raise ConfigError(
            f"tune: budget {budget} env steps is less than one update ({config.steps_per_update} env steps) for each "
            f"of {population} members"
        )
    # equal chunks (the horizon rounded down to a multiple of them): one compiled chunk program, not two
    chunks = max(1, min(chunks, horizon))
    lengths = [horizon // chunks] * chunks
    return lengths, [population] * len(lengths)


def tune(
    algo: Any,
    config: Any,
    space: Mapping[str, Distribution],
    budget: int,
    method: str = "random",
    *,
    population: int = 16,
    tune_seeds: Sequence[int] = (0,),
    test_seeds: Sequence[int] = (1000, 1001, 1002, 1003),
    chunks: int = 8,
    eta: int = 2,
    pbt_fraction: float = 0.25,
    perturb: Sequence[float] = (0.8, 1.25),
    resample_prob: float = 0.25,
    eval_episodes: int = 16,
    seed: int = 0,
    compare_default: bool = True,
    out: str | Path | None = None,
    resume: bool = False,
    progress_bar: bool | None = None,
) -> TuneResult:
    """Tunes ``space`` of ``algo``'s ``config`` with ``budget`` env steps in all (see the module).

    Args:
      algo: the algorithm's module (``init``, ``step``, ``policy``, ``Config``).
      config: the base config; its ``total_timesteps`` is replaced by the members' horizon.
      space: ``{field: LogUniform | Uniform | Choice}``.
      budget: env steps of all members together while tuning (test runs not counted).
      method: ``"random"``, ``"halving"`` or ``"pbt"``.
      population: members (random, pbt) or members of the first rung (halving).
      tune_seeds: seeds of the members' training keys (member ``i`` uses
        ``fold_in(key(tune_seeds[i % n]), i // n)``); never any of ``test_seeds``.
      test_seeds: seeds the incumbent (and the defaults) train on afterwards.
      chunks: equal chunks of the horizon for random and pbt (PBT exploits between them); the
        horizon (``budget / population`` env steps) is rounded down to a multiple of them.
      eta: halving's reduction factor (keeps the best ``1/eta`` per rung).
      pbt_fraction, perturb, resample_prob: PBT's truncation fraction and explore step.
      eval_episodes: deterministic episodes per score.
      seed: the tuner's own randomness (sampling, PBT's choices).
      compare_default: also train the unchanged ``config`` on the test seeds.
      out, resume: a run directory (checkpoints after every chunk, trace, result) and continuing it.
      progress_bar: a bar over chunks (default: stderr is a terminal).
    """
    if method not in METHODS:
        raise ConfigError(f"tune: method must be one of {METHODS}, got {method!r}")
    check_space(config, space, method)
    tune_seeds, test_seeds = [int(s) for s in tune_seeds], [int(s) for s in test_seeds]
    if not tune_seeds or not test_seeds:
        raise ConfigError("tune: tune_seeds and test_seeds each need at least one seed")
    overlap = sorted(set(tune_seeds) & set(test_seeds))
    if overlap:
        raise ConfigError(f"tune: seeds {overlap} are in both tune_seeds and test_seeds; test seeds must be unseen")
    if population < 2:
        raise ConfigError(f"tune: population must be >= 2, got {population}")
    if eta < 2:
        raise ConfigError(f"tune: eta must be >= 2, got {eta}")
    if not 0.0 < pbt_fraction <= 0.5:
        raise ConfigError(f"tune: pbt_fraction must lie in (0, 0.5], got {pbt_fraction}")
    if eval_episodes < 1:
        raise ConfigError(f"tune: eval_episodes must be >= 1, got {eval_episodes}")
    if resume and out is None:
        raise ConfigError("tune: resume needs the run directory (out)")

    started = time.perf_counter()
    compiles = len(COMPILE_SECONDS)
    lengths, keep = _plan(method, config, budget, population, chunks, eta)
    horizon = sum(lengths)
    base = config.replace(total_timesteps=horizon * config.steps_per_update, log_interval=0)
    rng = np.random.default_rng(seed)
    values = [{name: sample(dist, rng) for name, dist in space.items()} for _ in range(population)]
    keys = [
        jax.random.fold_in(jax.random.key(tune_seeds[i % len(tune_seeds)]), i // len(tune_seeds))
        for i in range(population)
    ]
    alive = list(range(population))  # member ids still training
    history: dict[int, list[dict[str, Any]]] = {i: [] for i in range(population)}
    trace: list[dict[str, Any]] = []
    states: list[Any] | None = None
    first_chunk = 0
    record = {
        "method": method,
        "config": loggers.json_value({k: v for k, v in base.to_dict().items() if k != "log_interval"}),
        "budget": int(budget),
        "population": population,
        "chunk_updates": lengths,
        "steps_per_update": config.steps_per_update,
        "tune_seeds": tune_seeds,
        "test_seeds": test_seeds,
        "space": {
            k: [type(v).__name__, *loggers.json_value(v.values if isinstance(v, Choice) else list(v))]
            for k, v in space.items()
        },
    }

    ckpt = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ckpt = Checkpoints(out / "checkpoints", keep=2)
        if ckpt.steps() and not resume:
            ckpt.close()
            raise ConfigError(
                f"tune: {out} already has checkpoints; pass resume=True to continue it or pick another out"
            )
        if resume and ckpt.steps():
            meta = ckpt.read_meta(ckpt.steps()[-1])
            saved, now = meta["tuner"]["record"], loggers.json_value(record)
            if saved != now:
                ckpt.close()
                differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
                raise ConfigError(f"tune: {out} holds a different tuning run ({', '.join(differ)} differ)")
            like = [
                jax.eval_shape(algo.init, base.replace(**values_i), keys[i])
                for i, values_i in zip(meta["tuner"]["alive"], meta["tuner"]["values_alive"])
            ]
            found = ckpt.restore_latest(like)
            if found is not None:
                _, states, meta = found
                t = meta["tuner"]
                first_chunk, alive, trace, values = t["chunk"], t["alive"], t["trace"], t["values"]
                history = {int(k): v for k, v in t["history"].items()}
                rng.bit_generator.state = t["rng"]

    def configs_of(ids: Sequence[int]) -> list[Any]:
        return [base.replace(**values[i]) for i in ids]

    if states is None:
        states = init_members(algo, configs_of(alive), [keys[i] for i in alive])
    bar = _bar(progress_bar, len(lengths), first_chunk)
    start = sum(lengths[:first_chunk])
    try:
        for c in range(first_chunk, len(lengths)):
            configs = configs_of(alive)
            for i in alive:
                history[i].append(dict(values[i]))
            states = train_chunk(algo, configs, states, start, lengths[c])
            start += lengths[c]
            last = c == len(lengths) - 1
            copied: dict[int, int] = {}
            if method == "random" and not last:  # random search decides nothing between chunks: no scores
                scores = np.full(len(alive), np.nan)
            else:
                eval_keys = [jax.random.fold_in(keys[i], EVAL_OFFSET + c + 1) for i in alive]
                scores = score_members(configs, states, eval_keys, eval_episodes)
            for i, s in zip(alive, scores):
                score = None if np.isnan(s) else float(s)
                trace.append(
                    {"member": i, "chunk": c, "updates": start, "score": score, "hyperparameters": dict(values[i])}
                )
            if method == "halving" and not last:
                order = sorted(range(len(alive)), key=lambda j: (-scores[j], alive[j]))[: keep[c]]
                order.sort()
                alive, states = [alive[j] for j in order], [states[j] for j in order]
            elif method == "pbt" and not last:
                pairs = pbt_pairs(list(scores), pbt_fraction, rng)
                for loser, winner in sorted(pairs.items()):
                    i, w = alive[loser], alive[winner]
                    states[loser] = copy_state(states[winner], states[loser])
                    values[i] = explore(values[w], space, rng, perturb, resample_prob)
                    history[i] = [dict(h) for h in history[w]]
                    copied[i] = w
            for rec in trace[-len(scores) :]:
                rec["copied_from"] = copied.get(rec["member"])
            if ckpt is not None:
                tuner = {
                    "chunk": c + 1,
                    "alive": alive,
                    "values": values,
                    "values_alive": [values[i] for i in alive],
                    "history": {str(i): h for i, h in history.items()},
                    "trace": trace,
                    "rng": rng.bit_generator.state,
                    "record": record,
                }
                ckpt.save(c + 1, states, {"tuner": loggers.json_value(tuner)})
                with open(out / TRACE, "w") as f:  # type: ignore[operator]
                    for rec in trace:
                        f.write(json.dumps(loggers.json_value(rec)) + "\n")
            if bar is not None:
                bar.update(1)
                if not np.all(np.isnan(scores)):
                    bar.set_postfix(best=f"{np.nanmax(scores):.1f}", members=len(alive))
    finally:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt.close()

    tuning_seconds = time.perf_counter() - started
    tuning_compile = sum(COMPILE_SECONDS[compiles:])
    final = [r for r in trace if r["chunk"] == len(lengths) - 1]
    best = min(final, key=lambda r: (-r["score"], r["member"]))
    schedule = history[best["member"]] if method == "pbt" else [dict(values[best["member"]])] * len(lengths)
    test = run_schedule(algo, base, schedule, lengths, test_seeds, eval_episodes)
    default_test = (
        run_schedule(algo, base, [{}] * len(lengths), lengths, test_seeds, eval_episodes) if compare_default else None
    )
    record["seconds"] = {
        "tuning": tuning_seconds,
        "tuning_compile": tuning_compile,
        "tests": time.perf_counter() - started - tuning_seconds,
    }
    spent = sum(n * u for n, u in zip([population] + keep[:-1], lengths)) * config.steps_per_update
    result = TuneResult(
        incumbent=dict(values[best["member"]]),
        schedule=schedule,
        score=float(best["score"]),
        trace=trace,
        test=test,
        default_test=default_test,
        env_steps=int(spent),
        updates=horizon,
        record=record,
    )
    if out is not None:
        summary = {k: v for k, v in result._asdict().items() if k != "trace"}
        (out / RESULT).write_text(json.dumps(loggers.json_value(summary), indent=1) + "\n")
    return result


def copy_state(winner: Any, loser: Any) -> Any:
    """The winner's whole training state with the loser's own PRNG key (so the copy's future
    differs from the original's)."""
    if hasattr(winner, "_replace") and hasattr(winner, "key"):
        return winner._replace(key=loser.key)
    return winner


def _bar(progress_bar: bool | None, total: int, done: int) -> Any:
    import sys

    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    if not progress_bar:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="chunk", desc="tune")


# ---------------------------------------------------------------------------------------------
# plots


def plot_schedules(result: TuneResult, path: str | Path) -> list[Path]:
    """PBT's hyperparameter schedules: every member's value of each field over updates (the
    incumbent's lineage drawn bold); one panel per field. Returns the files written."""
    from purejaxlib.plotting import pyplot, save_figure

    plt = pyplot()
    names = list(result.incumbent)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    members = sorted({r["member"] for r in result.trace})
    lengths = result.record["chunk_updates"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for ax, name in zip(axes[0], names):
        for m in members:
            recs = sorted((r for r in result.trace if r["member"] == m), key=lambda r: r["chunk"])
            x = [starts[r["chunk"]] for r in recs]
            y = [r["hyperparameters"][name] for r in recs]
            ax.step(x, y, where="post", color="0.7", lw=0.8)
        y = [h[name] for h in result.schedule]
        ax.step(starts[: len(y)], y, where="post", color="C3", lw=2.2, label="incumbent")
        if isinstance(y[0], float) and min(y) > 0 and max(y) / min(y) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("updates")
        ax.set_title(name)
    axes[0][0].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_landscape(result: TuneResult, path: str | Path) -> list[Path]:
    """The final-score landscape: each member's last score against each searched field."""
    from purejaxlib.plotting import pyplot, save_figure

    plt = pyplot()
    names = list(result.incumbent)
    last: dict[int, dict[str, Any]] = {}
    for r in result.trace:
        last[r["member"]] = r
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        xs = [r["hyperparameters"][name] for r in last.values()]
        ys = [r["score"] for r in last.values()]
        ups = [r["updates"] for r in last.values()]
        sc = ax.scatter(xs, ys, c=ups, cmap="viridis", s=22)
        ax.scatter([result.incumbent[name]], [result.score], marker="*", s=180, color="C3", label="incumbent")
        if all(isinstance(x, float) for x in xs) and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("final score")
    fig.colorbar(sc, ax=axes[0][-1], label="updates trained")
    axes[0][0].legend()
    fig.tight_layout()
    return save_figure(fig, path)
