"""purejaxlib: JAX-native, end-to-end vectorized reinforcement learning.

``from purejaxlib.algos import ppo`` for an algorithm; :func:`sweep` runs seeds x hyperparameters
in one compiled program per static configuration.
"""

from purejaxlib.config import ConfigError
from purejaxlib.evaluation import Evaluation, evaluate
from purejaxlib.sweep import SweepResult, sweep

__version__ = "0.1.0"
__all__ = ["ConfigError", "Evaluation", "evaluate", "SweepResult", "sweep", "__version__"]
