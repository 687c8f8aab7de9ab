"""AlphaZero self-play from the command line: several seeds in one program, then matches against a
uniform random player.

    python experiments/alphazero.py --game pgx/tic_tac_toe --seeds 4 --total-timesteps 172800 --random-move-prob 0.25
    python experiments/alphazero.py --game pgx/connect_four --num-simulations 32 --total-timesteps 1000000
    python experiments/alphazero.py --out runs/alphazero   # also writes summary.json and each seed's params
    python experiments/alphazero.py --help                  # every Config field is a flag

Each seed's trained agent plays ``--games`` games against the uniform random player (moving first
in half of them), greedily with its network and with search; the W/D/L of both are printed. With
``--out`` the summary is JSON and the params flax's msgpack (``flax.serialization``): no pickle.
Needs the optional extra: pip install 'purejaxlib[games]'.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import tyro

from purejaxlib.algos import alphazero
from purejaxlib.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Args:
    """Options; the Config's fields are flags at the top level."""

    config: Annotated[alphazero.Config, tyro.conf.arg(name="")]
    seeds: int = 1
    """Number of seeds (0..seeds-1), trained side by side in one program."""
    games: int = 200
    """Games of each seed's agent against the uniform random player."""
    out: str = ""
    """Directory for summary.json and params_seed<i>.msgpack (empty: write nothing)."""


def wdl(match: Any, seed: int) -> dict[str, int]:
    return {k: int(getattr(match, k)[seed]) for k in ("wins", "draws", "losses")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import jax
    from flax import serialization

    try:
        args = tyro.cli(Args, args=argv, description=__doc__)
    except (ConfigError, ImportError) as err:
        sys.exit(f"error: {err}")
    config = args.config
    keys = jax.random.split(jax.random.key(0), args.seeds)
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(jax.vmap(lambda k: alphazero.train(config, k)))(keys))
    seconds = time.perf_counter() - start
    params = result.state.params
    rand = alphazero.random_player(config)
    eval_keys = jax.random.split(jax.random.key(1), args.seeds)
    greedy = jax.jit(jax.vmap(lambda p, k: alphazero.play_match(config, p, rand, k, args.games)))(params, eval_keys)
    searched = jax.jit(
        jax.vmap(lambda p, k: alphazero.play_match(config, alphazero.search_player(config, p), rand, k, args.games))
    )(params, eval_keys)
    print(f"AlphaZero on {config.game}: {args.seeds} seeds x {config.num_updates} updates in {seconds:.1f} s")
    print(f"vs uniform random, {args.games} games each (W/D/L):")
    rows = []
    for seed in range(args.seeds):
        row = {"seed": seed, "greedy": wdl(greedy, seed), "search": wdl(searched, seed)}
        rows.append(row)
        g, s = row["greedy"], row["search"]
        print(
            f"  seed {seed}: network {g['wins']}/{g['draws']}/{g['losses']}, "
            f"search ({config.num_simulations} sims) {s['wins']}/{s['draws']}/{s['losses']}"
        )
    summary = {"config": config.to_dict(), "seconds_with_compile": seconds, "vs_random": rows}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=list))
        for seed in range(args.seeds):
            member = jax.tree.map(lambda x, seed=seed: x[seed], params)
            (out / f"params_seed{seed}.msgpack").write_bytes(serialization.to_bytes(member))
        print(f"wrote {out}/summary.json and the params")
    return summary


if __name__ == "__main__":
    main()
