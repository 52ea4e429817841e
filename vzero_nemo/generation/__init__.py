"""Batched KV-cached sampling and sequence log-probs for rollouts (see generate.py)."""

from vzero_nemo.generation.generate import GenerationOutput, generate
from vzero_nemo.generation.sampling import SamplingParams

__all__ = ["GenerationOutput", "SamplingParams", "generate"]
