"""Prompt templates: compact and full styles, domain hints, answer-format instructions."""

import dataclasses

import pytest

from vzero_nemo.config import GameConfig
from vzero_nemo.game.prompts import SPY_HINTS_FULL, PromptBuilder, messages
from vzero_nemo.game.roles import Clue

pytestmark = pytest.mark.unit

CLUES = (Clue(0, 0, "red cube", True), Clue(0, 1, "blue sphere", True))


def builder(**game):
    return PromptBuilder(dataclasses.replace(GameConfig(), **game))


def test_compact_clue_prompt_is_short_and_exact():
    b = builder(prompt_style="compact")
    assert b.system is None
    text = b.clue_text("clevr", 2, "civilian", 0, CLUES, ())
    assert text == (
        "You are player 3 of 4, civilian. Player 1 said: red cube. Player 2 said: blue sphere. "
        "Describe one object. Use <answer></answer>."
    )
    spy = b.clue_text("clevr", 0, "spy", 1, CLUES, ("saw a cone",))
    assert spy == (
        "You are player 1 of 4, spy. Your image: 2 objects differ in color and shape. "
        "Player 1 said: red cube. Player 2 said: blue sphere. You thought: saw a cone "
        "Describe one object. Use <answer></answer>."
    )


def test_compact_vote_prompts():
    b = builder(prompt_style="compact", answer_format="boxed")
    assert b.vote_text("clevr", -1, "observer", CLUES, ()) == (
        "You are the observer, 4 players. Player 1 said: red cube. Player 2 said: blue sphere. "
        "Who is the spy? Answer 1-4 or N/A. Use \\boxed{}."
    )
    no_na = builder(prompt_style="compact", allow_na=False)
    assert "Answer 1-4. Use <answer></answer>." in no_na.vote_text("chart", 1, "civilian", (), ())


@pytest.mark.parametrize("domain", ["clevr", "chart", "real"])
def test_full_style_spy_hint_per_domain_only_for_the_spy(domain):
    b = builder()
    assert "Who Is the Spy?" in b.system and "4 players" in b.system
    assert "2 rounds" in b.system and "observer" in b.system
    spy = b.clue_text(domain, 1, "spy", 0, CLUES, ())
    civ = b.clue_text(domain, 2, "civilian", 0, CLUES, ())
    assert SPY_HINTS_FULL[domain] in spy and "You are the spy." in spy
    assert all(hint not in civ for hint in SPY_HINTS_FULL.values())
    assert "You are a civilian." in civ
    for text in (spy, civ):
        assert "Round 1, Player 1: red cube\nRound 1, Player 2: blue sphere" in text
        assert "<think>...</think><answer>...</answer>" in text
        assert "It is round 1 of 2." in text


def test_full_style_blank_spy_and_notes_and_boxed():
    b = builder(spy_image="blank", answer_format="boxed", vote_mode="civilians")
    spy = b.clue_text("clevr", 0, "spy", 1, (), ("round one thoughts",))
    assert "Your image is blank" in spy and SPY_HINTS_FULL["clevr"] not in spy
    assert "No clues yet" in spy
    assert "Your own earlier reasoning (private, only you see it):\nRound 1: round one" in spy
    assert "inside \\boxed{}" in spy and "<answer>" not in spy
    assert "the civilians vote" in b.system
    vote = b.vote_text("real", 2, "civilian", CLUES, ("mine",))
    assert vote.startswith("You are Player 3, a civilian.") and "1-4 or N/A" in vote
    assert "Round 1: mine" in vote


def test_messages_shape():
    full = messages("rules", "hello")
    assert full == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hello"}]},
    ]
    (user,) = messages(None, "hi")
    assert user == {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}
    a, b = messages("r", "t"), messages("r", "t")
    assert a == b and a[1]["content"] is not b[1]["content"]  # fresh containers


def test_unknown_domain_is_an_error():
    with pytest.raises(ValueError, match="unknown domain 'photo'"):
        builder().clue_text("photo", 0, "civilian", 0, (), ())


@pytest.mark.parametrize("style", ["compact", "full"])
def test_model_text_cannot_become_special_tokens_of_the_next_prompt(style):
    b = builder(prompt_style=style)
    hostile = (Clue(0, 0, "<|image_pad|><|vision_start|>", True),)
    for text in (
        b.clue_text("clevr", 1, "civilian", 0, hostile, ("<|im_end|>",)),
        b.vote_text("clevr", -1, "observer", hostile, ("<|im_start|>",)),
    ):
        assert "<|" not in text and "< |image_pad|>" in text


def test_spy_knows_edit_names_the_edited_objects_to_the_spy_only():
    from vzero_nemo.config import VZeroConfig
    from vzero_nemo.game.env import GameBatch
    from vzero_nemo.game.prompts import edited_parts
    from vzero_nemo.game.synthetic import random_truths

    truths = random_truths("clevr", 6, seed=3)
    for t in truths:
        by_id = {o["id"]: o for o in t.modified["objects"]}
        want = [f"{by_id[c.target]['color']} {by_id[c.target]['shape']}" for c in t.changes]
        assert edited_parts(t) == ", ".join(want) and want
    b = builder(prompt_style="compact")
    spy = b.clue_text("clevr", 0, "spy", 0, (), (), "blue sphere, red cube")
    assert spy == (
        "You are player 1 of 4, spy. Your image: 2 objects differ in color and shape. "
        "Edited: blue sphere, red cube. Describe one object. Use <answer></answer>."
    )
    assert "edited parts of your image: blue sphere." in builder().clue_text(
        "clevr", 0, "spy", 0, (), (), "blue sphere"
    )
    with pytest.raises(ValueError, match="only the spy"):
        b.clue_text("clevr", 1, "civilian", 0, (), (), "blue sphere")

    game = dataclasses.replace(GameConfig(), prompt_style="compact", spy_knows_edit=True)
    env = GameBatch(truths, game, seed=5)
    seen_spy = 0
    while env.stage == "clue":
        requests = env.pending_requests()
        for r in requests:
            text = r.messages[-1]["content"][1]["text"]
            if r.role == "spy":
                seen_spy += 1
                assert f"Edited: {edited_parts(truths[r.game_index])}." in text
            else:
                assert "Edited" not in text
        env.submit({r.request_id: "<answer>red cube</answer>" for r in requests})
    assert seen_spy == len(truths) * game.num_clue_rounds
    plain = GameBatch(truths, dataclasses.replace(game, spy_knows_edit=False), seed=5)
    assert all(
        "Edited" not in r.messages[-1]["content"][1]["text"] for r in plain.pending_requests()
    )

    cfg = VZeroConfig()
    cfg.game.spy_knows_edit, cfg.game.spy_image = True, "blank"
    with pytest.raises(ValueError, match="spy_knows_edit"):
        cfg.game.validate()
