"""ESL: evolutionary sparse structure learning (ER init, prune and regrow during training).

``er``: initial masks (ER / ERK, global-ε solve); ``rules``: prune and growth rules and
the cosine schedule; ``pools``: core-aware input pools (``ESLConfig(pool_size=...)``);
``sparsifier``: ``ESLSparsifier``, which wraps a model and its optimizer and is called
after every ``optimizer.step()``.
"""

from esl_train.esl.er import er_count, er_mask, solve_eps
from esl_train.esl.pools import Pools, draw_pools, pool_size_for
from esl_train.esl.rules import GROW_RULES, PRUNE_RULES, alpha_at, is_update_step
from esl_train.esl.sparsifier import ESLConfig, ESLSparsifier, esl_factory, select_layers

__all__ = [
    "GROW_RULES",
    "PRUNE_RULES",
    "ESLConfig",
    "ESLSparsifier",
    "Pools",
    "alpha_at",
    "draw_pools",
    "er_count",
    "er_mask",
    "esl_factory",
    "is_update_step",
    "pool_size_for",
    "select_layers",
    "solve_eps",
]
