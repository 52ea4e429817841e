"""Batched KV-cached sampling and sequence log-probs for rollouts.

    from vzero_nemo.generation import SamplingParams, generate, sequence_logprobs

`generate` (generate.py) samples every prompt of a batch with a KV cache at any TP / PP;
`sequence_logprobs` (logprobs.py) scores given sequences for the policy or the reference.
"""

from vzero_nemo.generation.generate import GenerationOutput, generate
from vzero_nemo.generation.logprobs import sequence_logprobs
from vzero_nemo.generation.sampling import SamplingParams

__all__ = ["GenerationOutput", "SamplingParams", "generate", "sequence_logprobs"]
