"""experiments/quickstart.ipynb runs top to bottom as plain Python and writes what it promises.

The notebook's code cells are executed in order in one namespace (no Jupyter kernel: nbclient and
ipykernel are not needed), in a temporary working directory, so its relative ``runs/quickstart``
lands there. Most of its time is XLA compiling the notebook's training programs (train, sweep,
the experiment runner's chunk); the notebook keeps its budgets small for that reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.ipynb"


def load_notebook() -> dict:
    notebook = json.loads(NOTEBOOK.read_text())
    try:  # the full schema check when nbformat is around; the structure below either way
        import nbformat
    except ImportError:
        pass
    else:
        nbformat.validate(nbformat.reads(NOTEBOOK.read_text(), as_version=4))
    return notebook


def code_cells(notebook: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_notebook_is_clean_nbformat_4():
    notebook = load_notebook()
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    kinds = [cell["cell_type"] for cell in notebook["cells"]]
    assert set(kinds) <= {"markdown", "code"}
    assert kinds.count("code") >= 6 and kinds.count("markdown") >= 6
    for cell in notebook["cells"]:
        assert isinstance(cell["metadata"], dict) and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            # committed without outputs, so diffs show code changes only
            assert cell["outputs"] == [] and cell["execution_count"] is None
    for source in code_cells(notebook):
        # plain Python: no IPython magics or shell escapes, so exec() runs it as it stands
        assert not any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()), source


@pytest.fixture
def executed(tmp_path, monkeypatch):
    """Runs every code cell of the notebook, in order, in one namespace, from ``tmp_path``."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    cells = code_cells(load_notebook())
    namespace: dict = {"__name__": "__main__"}
    for n, source in enumerate(cells):
        exec(compile(source, f"{NOTEBOOK.name} code cell {n + 1}", "exec"), namespace)
    return tmp_path, cells, namespace


# make test-all: every step it takes (train, sweep, plot, evaluate, export) has its own tests in make test
@pytest.mark.slow
def test_quickstart_notebook_trains_sweeps_plots_evaluates_and_exports(executed):
    root, cells, ns = executed
    out = root / "runs" / "quickstart"
    config = ns["config"]
    assert config.total_timesteps == ns["TOTAL_TIMESTEPS"]

    # 2. one agent: it learned, and its greedy evaluation played complete episodes
    returns = ns["returns"]
    assert returns.shape == (config.num_updates,)
    assert np.nanmean(returns[-10:]) > 3 * returns[0], returns
    evaluation = ns["evaluation"]
    assert evaluation.returns.shape == (16,) and evaluation.lengths.shape == (16,)
    assert np.all(np.asarray(evaluation.returns) >= 1) and bool(np.all(evaluation.finished))

    # 3. the sweep: grid axes first, one score per run, statistics in range
    swept = ns["swept"]
    grid_shape = (len(ns["LRS"]), len(ns["ENT_COEFS"]), ns["SEEDS"])
    assert swept.axes == ("lr", "ent_coef", "seed")
    assert swept.metrics["episode_return"].shape == grid_shape + (config.num_updates,)
    assert len(swept.programs) == 1  # traced hyperparameters: one compiled program
    final = ns["final"]
    assert final.shape == grid_shape and np.all(np.isfinite(final))
    point, low, high = ns["improvement"]
    assert 0.0 <= low <= point <= high <= 1.0

    # 4. plots, as PNG and SVG
    for name in ("learning_curves", "heatmap"):
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()
    assert [Path(p) for p in ns["curve_files"] + ns["heatmap_files"]] == [
        Path("runs/quickstart") / f
        for f in ("learning_curves.png", "learning_curves.svg", "heatmap.png", "heatmap.svg")
    ]

    # 5. the experiment directory: record, one metrics stream per member, the last 3 checkpoints
    run_dir = out / "experiment"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["algorithm"] == "PPO" and record["env"] == "CartPole-v1"
    assert record["seeds"] == [0, 1] and record["grid"] == {"lr": ns["LRS"]}
    assert record["sessions"][-1]["status"] == "finished"
    assert {"versions", "backend", "devices", "git", "command"} <= set(record["sessions"][-1])
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {(r["lr"], r["seed"]) for r in lines} == {(lr, s) for lr in ns["LRS"] for s in (0, 1)}
    assert len(list((run_dir / "checkpoints" / "program-0").iterdir())) == 3
    experiment = ns["experiment"]
    assert experiment.metrics["episode_return"].shape[:2] == (2, 2)

    # 6. the exported policy: a complete export, plain int actions, full episodes played
    assert {p.name for p in (out / "policy").iterdir()} >= {"policy.json", "policy.jaxexport"}
    act = ns["act"]
    obs = np.zeros(4, np.float32)
    action = act(obs)
    assert isinstance(action, int) and action in (0, 1)
    assert set(np.asarray(act(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))).tolist()) <= {0, 1}
    assert len(ns["gymnax_returns"]) == 3 and all(r >= 1 for r in ns["gymnax_returns"])
    if ns.get("gymnasium") is not None:
        assert len(ns["gymnasium_returns"]) == 3 and all(r >= 1 for r in ns["gymnasium_returns"])

    # Running the experiment cell again (as the notebook says) loads the finished run back from
    # its checkpoints and logs instead of failing or training again.
    experiment_cell = next(source for source in cells if "run_experiment(" in source)
    exec(compile(experiment_cell, f"{NOTEBOOK.name} experiment cell, again", "exec"), ns)
    again = ns["experiment"]
    assert again.record["sessions"][-1]["status"] == "finished" and len(again.record["sessions"]) == 2
    assert again.record["sessions"][-1]["resumed_from"] == {"0": config.num_updates}
    np.testing.assert_allclose(again.metrics["episode_return"], experiment.metrics["episode_return"], rtol=1e-6)
