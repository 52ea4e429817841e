"""The shared base every recipe starts from: the paper's run shape (docs/architecture.md,
"The method, with our defaults").

4 players (3 civilians + 1 spy), 2 clue rounds, observer votes sampled 8 times (the GRPO
group), beta = lambda = 0.1, KL tau = 0.04, eps = 0.2, AdamW lr 1e-5 cosine with 10% warmup,
grad clip 1.0, temperature 0.8, 100 iterations, Iterative-SPO starting in the decision stage.
Those are the `VZeroConfig` defaults; this function only names the run.
"""

from __future__ import annotations

from vzero_nemo.config import VZeroConfig


def base_config(name: str) -> VZeroConfig:
    cfg = VZeroConfig(recipe=name)
    cfg.logging.dir = f"runs/{name}"
    return cfg
