"""AlphaZero on tic-tac-toe (and connect four): 4 seeds, then matches against a uniform random player
and against OpenSpiel's MCTS bot.

    python benchmarks/alphazero.py                          # tic-tac-toe (results/alphazero/tic_tac_toe.json)
    python benchmarks/alphazero.py --cell connect_four      # connect four at a CPU-sized budget
    python benchmarks/alphazero.py --mcts-games 10 --mcts-sims 100 1000
    python benchmarks/alphazero.py --report                 # results/alphazero.md from the results so far

Each cell trains its 4 seeds vmapped in one program. Each seed's agent then plays, both greedily
with its network (no search) and with its search (``num_simulations`` of the config, no Gumbel
noise):

- ``--random-games`` games (default 200) against the uniform random legal player, inside one
  jitted program (:func:`purejaxlib.algos.alphazero.play_match`), moving first in half;
- ``--mcts-games`` games against ``open_spiel.python.algorithms.mcts.MCTSBot`` (UCT c=2, random
  rollouts, ``solve=True``) at each of ``--mcts-sims`` simulations, played host-side in OpenSpiel,
  moving first in half. Each move, OpenSpiel's state is converted to the agent's observation (the
  mover's stones, then the opponent's; connect four's rows flipped, OpenSpiel counts from the
  bottom), and checked against the pgx state replayed from OpenSpiel's move history (same
  observation, same legal moves); the network acts on the converted observation, the search
  from the replayed pgx state.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from stamp import machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "alphazero"
SEEDS = 4

CELLS: dict[str, dict[str, Any]] = {
    # 300 updates x 64 games x 9 moves = 172,800 self-play moves per seed
    "tic_tac_toe": dict(
        game="pgx/tic_tac_toe", num_envs=64, num_steps=9, num_simulations=32, batch_size=256, buffer_size=20_000,
        hidden=(128, 128), gradient_steps=16, random_move_prob=0.25, total_timesteps=64 * 9 * 300,
    ),
    # 150 updates x 64 games x 16 moves = 153,600 self-play moves per seed
    "connect_four": dict(
        game="pgx/connect_four", num_envs=64, num_steps=16, num_simulations=32, batch_size=256,
        buffer_size=50_000, hidden=(256, 256), gradient_steps=16, random_move_prob=0.1,
        total_timesteps=64 * 16 * 150,
    ),
}  # fmt: skip

OPENSPIEL_PLANES = {"tic_tac_toe": (2, 1), "connect_four": (0, 1)}
"""The planes of OpenSpiel's observation tensor holding player 0's and player 1's stones."""


def openspiel_obs(name: str, state: Any) -> Any:
    """The mover's observation ``[rows, cols, 2]`` (own stones, then the opponent's) as pgx gives it."""
    import numpy as np

    tensor = np.asarray(state.observation_tensor(state.current_player()), np.float32)
    tensor = tensor.reshape(state.get_game().observation_tensor_shape())
    planes = OPENSPIEL_PLANES[name]
    mover = state.current_player()
    obs = np.stack([tensor[planes[mover]], tensor[planes[1 - mover]]], axis=-1)
    return obs[::-1] if name == "connect_four" else obs  # OpenSpiel's row 0 is the bottom, pgx's the top


class Agent:
    """One trained seed acting host-side on OpenSpiel states, greedily or by search."""

    def __init__(self, config: Any, params: Any, name: str, searched: bool):
        import jax

        from purejaxlib.algos import alphazero

        self.name, self.searched = name, searched
        self.env = alphazero.load_game(config.game).pgx_env
        self.init = jax.jit(self.env.init)
        self.step = jax.jit(self.env.step)
        self.search = jax.jit(alphazero.search_player(config, params))
        self.greedy = jax.jit(alphazero.network_policy(config, params))

    def replay(self, history: list[int]) -> Any:
        """The pgx state after OpenSpiel's moves (whichever pgx player id moves first: the search
        and the observation are the mover's)."""
        import jax

        state = self.init(jax.random.key(0))
        for move in history:
            state = self.step(state, move)
        return state

    def act(self, os_state: Any, key: Any) -> int:
        import jax
        import jax.numpy as jnp
        import numpy as np

        pgx_state = self.replay(os_state.history())
        obs = openspiel_obs(self.name, os_state)
        legal = np.zeros(pgx_state.legal_action_mask.shape[0], bool)
        legal[os_state.legal_actions()] = True
        np.testing.assert_array_equal(np.asarray(pgx_state.observation, np.float32), obs)
        np.testing.assert_array_equal(np.asarray(pgx_state.legal_action_mask), legal)
        if self.searched:
            batch = jax.tree.map(lambda x: x[None], pgx_state)
            return int(self.search(batch, key)[0])
        return int(self.greedy(jnp.asarray(obs), key, jnp.asarray(legal)))


def play_mcts(agent: Agent, sims: int, games: int, seed: int) -> dict[str, int]:
    """``games`` OpenSpiel games of ``agent`` against MCTS with ``sims`` simulations; the agent
    moves first in the even-numbered ones. Counts from the agent's side."""
    import jax
    import numpy as np
    import pyspiel
    from open_spiel.python.algorithms import mcts

    game = pyspiel.load_game(agent.name)
    rng = np.random.RandomState(seed)
    bot = mcts.MCTSBot(game, 2.0, sims, mcts.RandomRolloutEvaluator(1, rng), random_state=rng, solve=True)
    key = jax.random.key(seed)
    out = {"wins": 0, "draws": 0, "losses": 0}
    for g in range(games):
        ours = g % 2  # OpenSpiel's player 0 moves first
        state = game.new_initial_state()
        while not state.is_terminal():
            if state.current_player() == ours:
                key, sub = jax.random.split(key)
                state.apply_action(agent.act(state, sub))
            else:
                state.apply_action(bot.step(state))
        result = state.returns()[ours]
        out["wins" if result > 0 else "losses" if result < 0 else "draws"] += 1
    return out


def run_cell(name: str, random_games: int, mcts_games: int, mcts_sims: list[int]) -> dict[str, Any]:
    import jax
    import numpy as np

    from purejaxlib.algos import alphazero

    config = alphazero.Config(**CELLS[name])
    keys = jax.random.split(jax.random.key(0), SEEDS)
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(jax.vmap(lambda k: alphazero.train(config, k)))(keys))
    train_seconds = time.perf_counter() - start
    params = result.state.params
    rand = alphazero.random_player(config)
    players = {
        "network": lambda p: p,
        "search": lambda p: alphazero.search_player(config, p),
    }
    rows: list[dict[str, Any]] = []
    eval_keys = jax.random.split(jax.random.key(1), SEEDS)
    for kind, make in players.items():
        match = jax.jit(jax.vmap(lambda p, k, make=make: alphazero.play_match(config, make(p), rand, k, random_games)))
        m = match(params, eval_keys)
        for seed in range(SEEDS):
            rows.append(
                dict(seed=seed, agent=kind, opponent="uniform random", games=random_games,
                     wins=int(m.wins[seed]), draws=int(m.draws[seed]), losses=int(m.losses[seed]))
            )  # fmt: skip
    mcts_seconds = 0.0
    for seed in range(SEEDS):
        member = jax.tree.map(lambda x, seed=seed: x[seed], params)
        for kind in players:
            agent = Agent(config, member, name, searched=kind == "search")
            for sims in mcts_sims:
                t = time.perf_counter()
                wdl = play_mcts(agent, sims, mcts_games, seed=1000 * seed + sims)
                mcts_seconds += time.perf_counter() - t
                rows.append(dict(seed=seed, agent=kind, opponent=f"OpenSpiel MCTS {sims}", games=mcts_games, **wdl))
                print(name, f"seed {seed}", kind, f"vs MCTS {sims}", wdl, flush=True)
    curve = lambda k: np.asarray(result.metrics[k]).mean(0)[:: max(1, config.num_updates // 30)].round(3).tolist()
    out = {
        "cell": name,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in CELLS[name].items()},
        "updates": config.num_updates,
        "self_play_moves_per_seed": config.num_updates * config.steps_per_update,
        "seeds": SEEDS,
        "rows": rows,
        "train_seconds_with_compile": train_seconds,
        "mcts_seconds": mcts_seconds,
        "mcts": "open_spiel.python.algorithms.mcts.MCTSBot(uct_c=2, RandomRolloutEvaluator(n_rollouts=1), solve=True)",
        "curves_seed_mean": {k: curve(k) for k in ("policy_loss", "value_loss", "game_length", "draws")},
        "machine": machine(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: W/D/L summed over seeds, each seed's in brackets."""
    lines = [
        f"### {result['cell']}: {result['seeds']} seeds x {result['self_play_moves_per_seed']:,} self-play moves "
        f"(train {result['train_seconds_with_compile']:.0f} s with compile, {result['machine']['date']}, "
        f"{result['machine']['cpus']} CPUs)",
        "",
        "| agent | opponent | games per seed | W / D / L (all seeds) | losses per seed |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in result["rows"]:
        groups.setdefault((row["agent"], row["opponent"]), []).append(row)
    for (agent, opponent), rows in groups.items():
        w, d, lost = (sum(r[k] for r in rows) for k in ("wins", "draws", "losses"))
        per_seed = ", ".join(str(r["losses"]) for r in rows)
        lines.append(f"| {agent} | {opponent} | {rows[0]['games']} | {w} / {d} / {lost} | {per_seed} |")
    return lines


def report() -> str:
    lines = ["# AlphaZero (benchmarks/alphazero.py)", ""]
    for path in sorted(OUT.glob("*.json")):
        lines += table(json.loads(path.read_text())) + [""]
    text = "\n".join(lines)
    (HERE / "results" / "alphazero.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(CELLS), action="append")
    parser.add_argument("--random-games", type=int, default=200)
    parser.add_argument("--mcts-games", type=int, default=10)
    parser.add_argument("--mcts-sims", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--report", action="store_true", help="only rewrite results/alphazero.md")
    args = parser.parse_args(argv)
    if not args.report:
        for name in args.cell or ["tic_tac_toe"]:
            print("\n".join(table(run_cell(name, args.random_games, args.mcts_games, args.mcts_sims))))
    print(report())


if __name__ == "__main__":
    main()
