"""Multi-agent learning: IPPO and MAPPO (PPO with critic='local' / 'centralized') on JaxMARL's MPE
simple_spread and SMAX, 4 seeds each, at a CPU-sized budget; both curves on one plot per task.

    python benchmarks/marl.py mpe [--steps 2000000]     # results/marl/mpe.json, mpe.png
    python benchmarks/marl.py smax [--steps 1000000]    # results/marl/smax.json, smax.png
    python benchmarks/marl.py --report                  # results/marl.md from the results so far

Each method trains its 4 seeds vmapped in one program. Afterwards each seed's policy plays
``EPISODES`` episodes greedily (``evaluation.evaluate``: an episode's return is the mean over the
agents of their returns) and, on SMAX, the win rate is counted as JaxMARL counts it (the team's
reward on the episode's last step is at least 1, the win bonus). MPE returns are per agent; JaxMARL's
logs multiply them by the number of agents (3), so -20 here is -60 in their plots.

Hyperparameters: JaxMARL's baseline configs (baselines/IPPO/config/ippo_ff_mpe.yaml for MPE; for SMAX
their RNN config's rates with our MLP torso, see CONFIGS), the same for IPPO and MAPPO.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from onpolicy_cells import plot_curves, train_and_evaluate
from stamp import machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "marl"
SEEDS = 4
EPISODES = 32

CONFIGS: dict[str, dict[str, Any]] = {
    # baselines/IPPO/config/ippo_ff_mpe.yaml (JaxMARL): 16 envs x 128 steps, 4 epochs x 4 minibatches
    "mpe": dict(
        env="jaxmarl/MPE_simple_spread_v3",
        num_envs=16,
        num_steps=128,
        update_epochs=4,
        num_minibatches=4,
        lr=2.5e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        activation="tanh",
        hidden=(64, 64),
        anneal_lr=True,
        steps=2_000_000,
    ),
    # ippo_rnn_smax.yaml's rates (lr 4e-3 was for the GRU; the MLP takes 1e-3), 128-unit relu MLP
    "smax": dict(
        env="jaxmarl/smax:scenario=3m",
        num_envs=64,
        num_steps=128,
        update_epochs=4,
        num_minibatches=4,
        lr=1e-3,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.25,
        activation="relu",
        hidden=(128, 128),
        anneal_lr=True,
        steps=1_000_000,
    ),
}


def smax_win_rate(config: Any, state: Any, key: Any, episodes: int) -> Any:
    """Fraction of ``episodes`` greedy episodes won (last step's team reward >= 1, JaxMARL's rule)."""
    import jax
    import jax.numpy as jnp

    from purejaxlib import envs
    from purejaxlib.algos import ppo

    env, params = envs.from_config(config)
    env = envs.VecEnv(env, episodes)
    act = ppo.policy(config, state, deterministic=True)
    reset_key, key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, params)

    def body(carry, step_key):
        env_state, obs, done, won = carry
        act_key, env_key = jax.random.split(step_key)
        obs, env_state, reward, _, _, info = env.step(env_key, env_state, act(obs, act_key), params)
        end = info["episode_end"][:, 0] & ~done
        won = won | (end & (reward[:, 0] >= 1.0))
        return (env_state, obs, done | end, won), None

    init = (env_state, obs, jnp.zeros(episodes, bool), jnp.zeros(episodes, bool))
    steps = int(env.max_steps_in_episode)
    (_, _, done, won), _ = jax.lax.scan(body, init, jax.random.split(key, steps))
    return won.mean(), done.mean()


def run(task: str, steps: int | None) -> dict[str, Any]:
    import jax
    import numpy as np

    from purejaxlib.algos import ppo

    cell = dict(CONFIGS[task])
    total = int(steps or cell.pop("steps"))
    cell.pop("steps", None)
    out: dict[str, Any] = {"task": task, "config": {**cell, "total_timesteps": total}, "seeds": SEEDS, "methods": {}}
    for method, make in (("ippo", ppo.ippo_config), ("mappo", ppo.mappo_config)):
        config = make(**cell, total_timesteps=total)
        result, _, record = train_and_evaluate(config, SEEDS, EPISODES)
        eval_keys = jax.random.split(jax.random.key(1), SEEDS)
        if task == "smax":
            win_rate = jax.jit(jax.vmap(smax_win_rate, in_axes=(None, 0, 0, None)), static_argnums=3)
            wins = win_rate(config, result.state, eval_keys, EPISODES)
            record["win_rate"] = np.asarray(wins[0]).tolist()
            record["episodes_finished"] = np.asarray(wins[1]).tolist()
        out["methods"][method] = record
        print(method, json.dumps({k: v for k, v in record.items() if k not in ("curve", "env_steps")}), flush=True)
    out["machine"] = machine()
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    curves = {m.upper(): (r["env_steps"], r["curve"]) for m, r in result["methods"].items()}
    title = f"{result['config']['env']}: IPPO vs MAPPO"
    plot_curves(curves, title, "episode return (mean over agents)", path)


def report() -> str:
    lines = ["| task | method | env steps | seconds | eval return per seed | IQM [95% CI] | win rate per seed |"]
    lines.append("|---|---|---|---|---|---|---|")
    for path in sorted(OUT.glob("*.json")):
        result = json.loads(path.read_text())
        for method, r in result["methods"].items():
            point, low, high = r["eval_iqm_ci"]
            wins = ", ".join(f"{w:.2f}" for w in r.get("win_rate", [])) or "-"
            steps = result["config"]["total_timesteps"]
            lines.append(
                f"| {result['task']} | {method.upper()} | {steps:,} | {r['seconds']:.0f} | "
                + ", ".join(f"{s:.1f}" for s in r["eval_return"])
                + f" | {point:.2f} [{low:.2f}, {high:.2f}] | {wins} |"
            )
        lines.append(f"\n({result['task']}: {result['machine']['date']}, `{result['machine']['command']}`)\n")
    text = "\n".join(lines)
    (HERE / "results" / "marl.md").write_text(text + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", nargs="?", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: the task's)")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.task:
        OUT.mkdir(parents=True, exist_ok=True)
        result = run(args.task, args.steps)
        (OUT / f"{args.task}.json").write_text(json.dumps(result, indent=1))
        plot(result, OUT / f"{args.task}.png")
    print(report())


if __name__ == "__main__":
    main()
