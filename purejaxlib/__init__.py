"""purejaxlib: JAX-native, end-to-end vectorized reinforcement learning.

``from purejaxlib.algos import ppo`` for an algorithm; :func:`sweep` runs seeds x hyperparameters
in one compiled program per static configuration; :func:`run_experiment` does the same in
checkpointed chunks with logs and a run record; :func:`evaluate` / :func:`evaluate_sweep` play
complete episodes; ``purejaxlib.export`` saves a policy for use without the training code.
"""

from purejaxlib.config import ConfigError
from purejaxlib.evaluation import Evaluation, evaluate, evaluate_sweep
from purejaxlib.runner import run_experiment
from purejaxlib.sweep import SweepResult, sweep

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "Evaluation",
    "evaluate",
    "evaluate_sweep",
    "run_experiment",
    "SweepResult",
    "sweep",
    "__version__",
]
