"""Experiments with files: chunked training with checkpoints, resume, logs and a run record.

:func:`run_experiment` trains a sweep (seeds x grid, vmapped and sharded as in
:func:`purejaxlib.sweep`) in *chunks* of updates: one compiled chunk, a host loop around it.
Between chunks it saves the whole training state of every member with orbax (params, optimizer
state, env states, replay buffers, normalization statistics, PRNG keys, counters), so a killed
run started again with ``resume=True`` continues from its last complete checkpoint and ends
bitwise-identical to a run never interrupted. Metrics reach the host from inside the compiled
chunk every ``log_interval`` updates (:mod:`purejaxlib.progress`) and go to a progress bar,
``metrics.jsonl``, TensorBoard and W&B as asked; the run keeps only a bounded learning curve in
memory. The run directory::

    record.json          config, grid, seeds, versions, backend, devices, git commit, command,
                         one entry per session (resumed from, wall, compile and run seconds)
    metrics.jsonl        one record per member per reported update, with its grid values and seed
    checkpoints/program-<p>/<update>/   orbax checkpoints of program p (the last ``keep``)
    tensorboard/<member>/  event files (when asked)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxlib import distributed, evaluation, loggers, progress, training
from purejaxlib.checkpoint import Checkpoints, IncompatibleCheckpoint
from purejaxlib.config import ConfigError
from purejaxlib.sweep import Job, SweepResult, Timing, execute, make_plan, select_devices

RECORD = "record.json"
METRICS = "metrics.jsonl"
# Fields that change what is logged, not what is computed: a resumed run may change them.
NON_NUMERIC_FIELDS = ("log_interval",)
DEFAULT_EVAL_EPISODES = 16


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in (
        "purejaxlib",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "chex",
        "gymnax",
        "brax",
        "distrax",
        "orbax-checkpoint",
        "numpy",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_state(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding purejaxlib's source, or None."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record() -> dict[str, Any]:
    """Where a run ran: versions, backend, devices, host, git commit of the code."""
    return {
        "versions": package_versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git": git_state(),
    }


def _identity(algorithm: str, config: Any, plan: Any, program: Any, p: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: algorithm, config, grid, seeds, program."""
    numeric = {k: v for k, v in config.to_dict().items() if k not in NON_NUMERIC_FIELDS}
    return loggers.json_value(
        {
            "algorithm": algorithm,
            "config": numeric,
            "grid": plan.grid,
            "seeds": plan.seeds,
            "program": p,
            "static": program.static,
        }
    )


def _show(value: Any) -> str:
    """A config value as a person wrote it: float32 fields print with 7 significant digits."""
    if isinstance(value, float):
        return f"{value:.7g}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _mismatch(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``name: saved (checkpoint) vs now (now)`` for every field that differs."""
    pairs = [(key, saved.get(key), now.get(key)) for key in ("algorithm", "grid", "seeds", "program")]
    old, new = saved.get("config", {}), now.get("config", {})
    pairs += [(key, old.get(key), new.get(key)) for key in sorted(set(old) | set(new))]
    return [f"{key}: {_show(a)} (checkpoint) vs {_show(b)} (now)" for key, a, b in pairs if a != b]


def _check_identity(directory: Path, expected: dict[str, Any]):
    def check(meta: dict[str, Any]) -> None:
        problems = _mismatch(meta.get("identity", {}), expected)
        if problems:
            raise IncompatibleCheckpoint(
                f"the checkpoint in {directory} was written by a different run, so it cannot be resumed "
                f"with these settings; mismatched fields: "
                + "; ".join(problems)
                + ". Run with the checkpoint's settings, or use another output directory."
            )

    return check


@dataclasses.dataclass
class _Session(Timing):
    """Timing of this invocation, for the record."""

    started: float = dataclasses.field(default_factory=time.time)
    checkpoint_seconds: float = 0.0
    resumed_from: dict[str, int] = dataclasses.field(default_factory=dict)


def _replay_curve(
    curve: progress.Curve, records: list[dict[str, Any]], members: int, label_names: Sequence[str]
) -> None:
    """Feeds a program's logged records back through ``curve``, as they first arrived."""
    by_update: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_update.setdefault(int(r["update"]), []).append(r)
    labels = {"program", "member", "update", *label_names}
    for update in sorted(by_update):
        rows = sorted(by_update[update], key=lambda r: r["member"])
        if len(rows) != members:
            continue
        names = [k for k in rows[0] if k not in labels and isinstance(rows[0][k], (int, float, type(None)))]
        curve(update, {n: np.asarray([np.nan if r.get(n) is None else r[n] for r in rows], np.float64) for n in names})


def _check_eval(eval_every: int, eval_episodes: int, log_interval: int) -> None:
    """Refuses periodic-evaluation settings that cannot work, naming the field."""
    if eval_every < 0:
        raise ConfigError(f"eval_every must be >= 0 updates (0: no periodic evaluation), got {eval_every}")
    if eval_episodes < 1:
        raise ConfigError(f"eval_episodes must be >= 1, got {eval_episodes}")
    if eval_every and eval_every % log_interval:
        raise ConfigError(
            f"eval_every ({eval_every}) must be a multiple of log_interval ({log_interval}) so every evaluation "
            f"is reported; e.g. eval_every={max(1, round(eval_every / log_interval)) * log_interval}"
        )


def _open_run_dir(run_dir: Path | None, resume: bool) -> dict[str, Any]:
    """Creates ``run_dir`` (None: no files) and checks it for this run; returns the record
    written there before when resuming, else ``{}``."""
    if run_dir is None:
        return {}
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted((run_dir / "checkpoints").glob("program-*/*")) if (run_dir / "checkpoints").exists() else []
    if existing and not resume:
        raise ConfigError(
            f"{run_dir} already holds checkpoints of a run; pass resume=True (--resume) to continue it, "
            "or choose another output directory"
        )
    record: dict[str, Any] = {}
    if (run_dir / RECORD).exists() and resume:
        record = json.loads((run_dir / RECORD).read_text())
    if not resume:
        (run_dir / METRICS).unlink(missing_ok=True)
    return record


def _restore_latest(
    run_dir: Path | None, p: int, keep: int, like: Any, identity: dict[str, Any]
) -> tuple[int, Any, dict[str, Any]] | None:
    """The newest usable checkpoint of program ``p`` (see :meth:`Checkpoints.restore_latest`), or None."""
    if run_dir is None:
        raise ConfigError("resume needs a run directory (out)")
    ckpt = Checkpoints(run_dir / "checkpoints" / f"program-{p}", keep)
    try:
        return ckpt.restore_latest(like, _check_identity(ckpt.directory, identity))
    finally:
        ckpt.close()


def run_experiment(
    algo: Any,
    config: Any,
    *,
    seeds: int | Sequence[int] = 1,
    grid: Mapping[str, Sequence[Any]] | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    log_interval: int | None = None,
    checkpoint_every: int = 0,
    keep: int = 3,
    resume: bool = False,
    progress_bar: bool | None = None,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    devices: Sequence[Any] | None = None,
    curve_points: int = 256,
    command: Sequence[str] | None = None,
    eval_every: int = 0,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
) -> SweepResult:
    """Trains ``algo`` (a module of purejaxlib.algos) over seeds x grid, with files under ``out``.

    Args:
      algo: the algorithm's module (its ``init``, ``step`` and ``Config``).
      config: the base config; ``grid`` values replace its fields (see :func:`purejaxlib.sweep`).
      seeds: number of seeds or a list of them.
      out: run directory (None: nothing written, no checkpoints).
      log_interval: report every this many updates (default: the config's, or about 100 reports
        per run, on every periodic evaluation, when it is 0).
      checkpoint_every: save every this many updates (0: never); needs ``out``.
      keep: checkpoints kept per program.
      resume: continue from the newest complete checkpoint under ``out``.
      progress_bar: draw a progress bar (default: stdout is a terminal and not under pytest).
      tensorboard: write TensorBoard event files under ``out/tensorboard``.
      wandb_project: log to this Weights & Biases project (needs wandb; never contacted otherwise).
      curve_points: the most points per member the in-memory learning curve keeps.
      eval_every: every this many updates (0: never), play ``eval_episodes`` deterministic
        episodes of each member inside the compiled chunk and report their mean return and
        length as ``eval_return`` / ``eval_length`` (NaN at the other reports); a multiple of
        ``log_interval``, so every evaluation is reported.
      eval_episodes: episodes per periodic evaluation, vmapped side by side.

    Returns:
      a :class:`SweepResult` whose ``metrics`` are the learning curves (``[grid..., seed, points]``,
      one point per kept report, ``metrics["iteration"]`` their update numbers and
      ``metrics["env_steps"]`` their env steps per agent, so ``[..., -1]`` is the last update
      as in :func:`purejaxlib.sweep`) and whose ``record`` is the run record.
    """
    name = name or algo.__name__.rsplit(".", 1)[-1].upper()
    grid = dict(grid or {})
    if checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 updates, got {checkpoint_every}")
    if (checkpoint_every or resume or tensorboard) and out is None:
        raise ConfigError("checkpoints, resume and TensorBoard need a run directory (out)")
    if log_interval is not None and log_interval < 1:
        raise ConfigError(f"log_interval must be >= 1 update, got {log_interval}")
    if log_interval is not None:
        config = config.replace(log_interval=log_interval)
    elif config.log_interval == 0:  # about 100 reports, falling on every periodic evaluation
        interval = max(1, config.num_updates // 100)
        config = config.replace(log_interval=math.gcd(interval, eval_every) if eval_every > 0 else interval)
    _check_eval(eval_every, eval_episodes, config.log_interval)
    plan = make_plan(config, seeds, grid)
    devices = select_devices(devices)
    distributed.check_same(
        "run_experiment",
        config=config,
        grid=plan.grid,
        seeds=plan.seeds,
        resume=resume,
        checkpoint_every=checkpoint_every,
        eval_every=eval_every,
        writes=out is not None,
    )
    # Across processes (purejaxlib.distributed) process 0 alone reads and writes the run directory.
    run_dir = Path(out) if out is not None and distributed.is_main() else None
    show = (progress.enabled_by_default() if progress_bar is None else progress_bar) and distributed.is_main()
    session = _Session()
    wall_start = time.perf_counter()

    record: dict[str, Any] = distributed.from_main(lambda: _open_run_dir(run_dir, resume))
    record.update(
        {
            "algorithm": name,
            "env": config.env,
            "config": loggers.json_value(config.to_dict()),
            "grid": loggers.json_value(plan.grid),
            "seeds": plan.seeds,
            "num_updates": [p.base.num_updates for p in plan.points],
            "steps_per_update": [p.base.steps_per_update for p in plan.points],
            "log_interval": config.log_interval,
            "checkpoint_every": checkpoint_every,
            "eval_every": eval_every,
            "eval_episodes": eval_episodes if eval_every else 0,
        }
    )
    record.setdefault("sessions", [])
    this_session = {
        "command": list(command if command is not None else sys.argv),
        "cwd": os.getcwd(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment_record(),
    }
    record["sessions"].append(this_session)

    def write_record(status: str) -> None:
        if run_dir is None:
            return
        this_session.update(
            status=status,
            wall_seconds=time.perf_counter() - wall_start,
            compile_seconds=session.compile_seconds,
            run_seconds=session.run_seconds,
            checkpoint_seconds=session.checkpoint_seconds,
            resumed_from=session.resumed_from,
        )
        tmp = run_dir / (RECORD + ".tmp")
        tmp.write_text(json.dumps(loggers.json_value(record), indent=2))
        os.replace(tmp, run_dir / RECORD)

    # Resume points of every program first: the metrics file is cut back to them in one pass.
    restored: list[tuple[int, Any] | None] = []
    for p, program in enumerate(plan.points):
        found = None
        if resume:
            like = jax.eval_shape(jax.vmap(algo.init), program.config_batch, plan.program_keys(program))
            identity = _identity(name, program.base, plan, program, p)
            found = distributed.from_main(lambda: _restore_latest(run_dir, p, keep, like, identity))  # noqa: B023
        restored.append(None if found is None else (found[0], found[1]))
        session.resumed_from[str(p)] = 0 if found is None else found[0]
    if resume and run_dir is not None:
        if not any(restored):
            print(f"{run_dir}: no checkpoint to resume; starting from the beginning", file=sys.stderr)
        done_at = {p: (r[0] if r else 0) for p, r in enumerate(restored)}
        kept = loggers.truncate_jsonl(
            run_dir / METRICS, lambda r: r.get("update", 0) <= done_at.get(r.get("program"), 0)
        )
    else:
        kept = []
    kept = distributed.broadcast_object(kept)  # the curve so far, for every process's result
    write_record("running")

    programs = []
    try:
        for p, program in enumerate(plan.points):
            programs.append(
                _run_program(
                    algo,
                    plan,
                    program,
                    p,
                    restored[p],
                    run_dir,
                    name,
                    config,
                    checkpoint_every,
                    keep,
                    show,
                    tensorboard,
                    wandb_project,
                    devices,
                    curve_points,
                    session,
                    record,
                    [r for r in kept if r.get("program") == p],
                    eval_every,
                    eval_episodes,
                )
            )
    except BaseException:
        write_record("interrupted")
        raise
    write_record("finished")
    return plan.result(programs, loggers.json_value(record))


def _run_program(
    algo,
    plan,
    program,
    p,
    restored,
    run_dir,
    name,
    config,
    checkpoint_every,
    keep,
    show,
    tensorboard,
    wandb_project,
    devices,
    curve_points,
    session,
    record,
    kept_records,
    eval_every,
    eval_episodes,
) -> dict[str, Any]:
    """Trains one static grid point's members to the end; returns its ``programs`` entry."""
    base = program.base
    members = program.num_points * len(plan.seeds)
    labels = plan.members(program)
    total = base.num_updates

    curve = progress.Curve(curve_points, names=None)
    _replay_curve(curve, kept_records, members, list(labels[0]))
    sinks: list[Any] = [curve]
    if show:
        sinks.append(
            progress.ProgressBar(
                total,
                base.steps_per_update,
                members,
                label=f"[{p + 1}/{len(plan.points)}]" if len(plan.points) > 1 else "",
                unit=progress.step_unit(base),
            )
        )
    done = restored[0] if restored else 0
    start_update, compile_before, run_before = done, session.compile_seconds, session.run_seconds
    if run_dir is not None:
        sinks.append(loggers.JsonlLogger(run_dir / METRICS, labels, program=p))
        if tensorboard:
            sinks.append(
                loggers.TensorBoardLogger(
                    run_dir / "tensorboard",
                    labels,
                    base.steps_per_update,
                    purge_step=done * base.steps_per_update + 1 if done else None,
                )
            )
    if wandb_project and distributed.is_main():  # one W&B run per program (updates from 1), resumed by id
        ids_by_program = record.setdefault("wandb_ids", {})
        suffix = f"-program{p}" if len(plan.points) > 1 else ""
        sinks.append(
            loggers.WandbLogger(
                wandb_project,
                f"{name}-{run_dir.name if run_dir else 'run'}{suffix}",
                record,
                labels,
                run_dir,
                run_id=ids_by_program.get(str(p)),
            )
        )
        ids_by_program[str(p)] = sinks[-1].run_id
    ckpt = (
        Checkpoints(run_dir / "checkpoints" / f"program-{p}", keep, background=True)
        if checkpoint_every and run_dir
        else None
    )
    identity = _identity(name, base, plan, program, p)

    def after_chunk(done: int, state: Any) -> None:
        loggers.flush_all(sinks)
        if checkpoint_every:  # every process fetches the state (across processes a collective); one saves
            t0 = time.perf_counter()
            whole = state()
            if ckpt is not None:
                ckpt.save(done, whole, {"identity": identity, "update": done, "num_updates": total})
            session.checkpoint_seconds += time.perf_counter() - t0

    try:
        run = execute(
            experiment_job(algo, eval_every, eval_episodes),
            program.config_batch,
            plan.program_keys(program),
            devices=devices,
            total=total,
            chunk=checkpoint_every,
            state=restored[1] if restored else None,
            done=done,
            sinks=sinks,
            after_chunk=after_chunk,
            timing=session,
        )
    finally:
        loggers.close_all(sinks)
        if ckpt is not None:
            ckpt.close()
    iterations, curves = curve.arrays()
    curves["iteration"] = np.broadcast_to(iterations, (members, len(iterations)))  # the report's update number
    timing = Timing(session.compile_seconds - compile_before, session.run_seconds - run_before)
    return plan.entry(
        program,
        run.state,
        curves,
        timing,
        members=labels,
        env_steps_run=(total - start_update) * base.steps_per_update * members,
    )


def experiment_job(algo: Any, eval_every: int = 0, eval_episodes: int = DEFAULT_EVAL_EPISODES) -> Job:
    """The job of an experiment: ``algo.init`` from each member's key, then chunks of ``algo.step``.

    A chunk's per-update metrics are not returned (XLA drops them): they reach the host through
    the progress reports, so device memory does not grow with the run. With ``eval_every``, every
    ``eval_every``-th update also plays ``eval_episodes`` deterministic episodes inside the chunk
    (:func:`purejaxlib.evaluation.periodic`) and reports ``eval_return`` / ``eval_length``.
    """

    def begin(config: Any, key: jax.Array) -> tuple[Any, None]:
        return algo.init(config, key), None

    def chunk(length: int):
        def run(config: Any, key: jax.Array, state: Any, start: jax.Array) -> tuple[Any, None]:
            extra = evaluation.periodic(key, eval_every, eval_episodes) if eval_every else None
            state, _ = training.scan_updates(algo.step, config, state, start, length, extra)
            return state, None

        run.__name__ = run.__qualname__ = "chunk"  # compile logs and profiles say "chunk"
        return run

    begin.__name__ = begin.__qualname__ = "init"
    return Job(("experiment", algo.init, algo.step, eval_every, eval_episodes if eval_every else 0), begin, chunk)


def load_state(run_dir: str | Path, like: Any, program: int = 0) -> tuple[int, Any, dict[str, Any]]:
    """The newest complete checkpoint of ``program`` in ``run_dir``: ``(update, state, meta)``.

    ``like`` gives the state's structure (e.g. ``jax.eval_shape`` of the vmapped ``init``).
    """
    ckpt = Checkpoints(Path(run_dir) / "checkpoints" / f"program-{program}")
    try:
        found = ckpt.restore_latest(like)
    finally:
        ckpt.close()
    if found is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint of program {program}")
    return found
