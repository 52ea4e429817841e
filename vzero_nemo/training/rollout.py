"""Play one batch of games with the policy: every turn is one batched generation call.

    rollout = play_games(policy, pairs, cfg, tokenizer, seed=..., generator=...)

The game environment (`vzero_nemo.game.env.GameBatch`) emits the requests of a turn for all
games and seats; they are rendered with the model's chat template and the image each request
names, generated in one call (`vzero_nemo.generation.generate`), decoded to text and submitted
back. The result keeps, per request, the prompt, the sampled ids and their log-probs, so the
trained tokens are exactly the sampled tokens (no re-tokenisation of decoded text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vzero_nemo.config import ModelConfig, VZeroConfig
from vzero_nemo.data.pairs import GamePair
from vzero_nemo.game.env import GameBatch, TrainingSample
from vzero_nemo.game.policies import make_policy
from vzero_nemo.generation.generate import generate
from vzero_nemo.generation.sampling import SamplingParams
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.chat import ImagePatches, PromptInputs, image_patches, render_chat
from vzero_nemo.models.tokenizer import VLTokenizer
from vzero_nemo.profiling import region
from vzero_nemo.training.batching import TrainSequence


@dataclass(slots=True)
class Rollout:
    env: GameBatch
    samples: list[TrainingSample]
    sequences: dict[str, TrainSequence]
    """request_id -> prompt + sampled response + behaviour log-probs (model turns only)."""
    num_generated_tokens: int
    completions: dict[str, str]


def generate_texts(
    model,
    prompts: Sequence[PromptInputs],
    tokenizer: VLTokenizer,
    params: SamplingParams,
    generator: torch.Generator,
    max_batch: int,
    model_cfg: ModelConfig,
    lean_decode: bool = True,
) -> tuple[list[list[int]], list[list[float]]]:
    """Sample continuations of `prompts` in chunks of at most `max_batch` rows
    (`lean_decode`: see `RolloutConfig.lean_decode`)."""
    token_ids: list[list[int]] = []
    logprobs: list[list[float]] = []
    for start in range(0, len(prompts), max_batch):
        chunk = prompts[start : start + max_batch]
        with region("collate"):
            batch = collate_prompts(chunk, tokenizer, model_cfg)
        out = generate(model, batch, params, generator, lean_decode=lean_decode)
        token_ids.extend(out.token_ids)
        logprobs.extend(out.logprobs)
    return token_ids, logprobs


def render_requests(
    requests: Sequence, pairs: Sequence[GamePair], tokenizer: VLTokenizer, model_cfg: ModelConfig
) -> list[PromptInputs]:
    """The chat-rendered prompt of each request. The num_votes observer samples of a game
    share one prompt: it is rendered once and the same object is used for each; the seats
    that see the same image of a game share its patches, so a batch encodes it once."""
    rendered: dict[tuple[int, str, str], PromptInputs] = {}
    patches: dict[tuple[int, str], ImagePatches] = {}
    prompts = []
    for r in requests:
        key = (r.game_index, r.image, repr(r.messages))
        if key not in rendered:
            image_key = (r.game_index, r.image)
            if image_key not in patches:
                image = pairs[r.game_index].image(r.image)
                patches[image_key] = image_patches(image, model_cfg)
            rendered[key] = render_chat(r.messages, tokenizer, patches[image_key], model_cfg)
        prompts.append(rendered[key])
    return prompts


def decode_completion(tokenizer: VLTokenizer, ids: Sequence[int]) -> str:
    """Text of a sampled response without its stop token."""
    stop = set(tokenizer.stop_ids)
    body = [t for t in ids if t not in stop]
    return tokenizer.decode(body, skip_special_tokens=False)


def play_games(
    model,
    pairs: Sequence[GamePair],
    cfg: VZeroConfig,
    tokenizer: VLTokenizer,
    *,
    seed: int,
    generator: torch.Generator,
    vote_model=None,
) -> Rollout:
    """Play `pairs` to the end. `vote_model` (default: `model`) samples the decision turns, so
    an evaluation can judge one policy's clues with another, frozen observer."""
    env = GameBatch([p.truth for p in pairs], cfg.game, seed, grpo=cfg.grpo)
    scripted = (
        None
        if cfg.rollout.clue_policy == "model"
        else make_policy(cfg.rollout.clue_policy, cfg.game, seed)
    )
    sequences: dict[str, TrainSequence] = {}
    completions: dict[str, str] = {}
    num_tokens = 0
    while not env.done:
        requests = env.pending_requests()
        stage = env.stage
        if stage == "clue" and scripted is not None:
            turn = {r.request_id: scripted(r, pairs[r.game_index].truth) for r in requests}
            completions.update(turn)
            env.submit(turn)
            continue
        params = SamplingParams(
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            max_new_tokens=(
                cfg.rollout.max_clue_tokens if stage == "clue" else cfg.rollout.max_vote_tokens
            ),
            stop_token_ids=tokenizer.stop_ids,
            banned_token_ids=tokenizer.vision_ids,
        )
        speaker = model if stage == "clue" or vote_model is None else vote_model
        with region(stage):
            with region("render"):
                prompts = render_requests(requests, pairs, tokenizer, cfg.model)
            ids, logps = generate_texts(
                speaker,
                prompts,
                tokenizer,
                params,
                generator,
                cfg.rollout.max_batch,
                cfg.model,
                lean_decode=cfg.rollout.lean_decode,
            )
            turn = {}
            for request, prompt, resp, logp in zip(requests, prompts, ids, logps):
                sequences[request.request_id] = TrainSequence(prompt, list(resp), list(logp))
                turn[request.request_id] = decode_completion(tokenizer, resp)
                num_tokens += len(resp)
            completions.update(turn)
            env.submit(turn)
    return Rollout(
        env=env,
        samples=env.training_samples(),
        sequences=sequences,
        num_generated_tokens=num_tokens,
        completions=completions,
    )
