"""Config sections validate themselves; `finalize` adds the checks across sections; one value
parser serves override text and values set in code."""

import dataclasses

import pytest

from vzero_nemo.config import (
    GameConfig,
    ParallelConfig,
    PretrainConfig,
    VZeroConfig,
    parse_value,
)

pytestmark = pytest.mark.unit


def test_every_section_has_validate_and_defaults_pass():
    cfg = VZeroConfig()
    sections = cfg.sections()
    assert [type(s).__name__ for s in sections] == [
        type(getattr(cfg, f.name)).__name__
        for f in dataclasses.fields(cfg)
        if dataclasses.is_dataclass(getattr(cfg, f.name))
    ]
    assert len(sections) == 13
    for section in sections:
        section.validate()


@pytest.mark.parametrize(
    "section, message",
    [
        (GameConfig(num_players=2), "game.num_players=2 must be >= 3"),
        (ParallelConfig(pipeline_model_parallel_size=0), "pipeline_model_parallel_size=0"),
        (PretrainConfig(tasks=("caption", "sing")), r"pretrain.tasks=\['caption', 'sing'\]"),
    ],
)
def test_a_section_alone_and_finalize_give_the_same_message(section, message):
    with pytest.raises(ValueError, match=message) as alone:
        section.validate()
    cfg = VZeroConfig()
    name = {GameConfig: "game", ParallelConfig: "parallel", PretrainConfig: "pretrain"}
    setattr(cfg, name[type(section)], section)
    with pytest.raises(ValueError) as whole:
        cfg.finalize()
    assert str(whole.value) == str(alone.value)


def test_cross_section_checks_stay_in_finalize():
    """games_per_iteration is fine alone; it must divide by the DP size of the world."""
    cfg = VZeroConfig().apply_overrides(["data.games_per_iteration=3"])
    cfg.data.validate()
    with pytest.raises(ValueError, match="not divisible by the data-parallel size 2"):
        cfg.finalize(world_size=2)


@pytest.mark.parametrize(
    "value, tp, expected",
    [
        ("3", int, 3),
        (3, int, 3),
        ("2.5", float, 2.5),
        (2, float, 2.0),
        ("off", bool, False),
        (True, bool, True),
        ("null", int | None, None),
        (None, int | None, None),
        ("[a, b]", tuple[str, ...], ("a", "b")),
        (["a", "b"], tuple[str, ...], ("a", "b")),
        (("1", 2), tuple[int, ...], (1, 2)),
    ],
)
def test_one_parser_for_text_and_values(value, tp, expected):
    parsed = parse_value(value, tp, "k")
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(
    "value, tp, message",
    [
        ("x", int, "k='x' is not an integer"),
        (2.5, int, "k=2.5 is not of type int"),
        (True, int, "k=True is not of type int"),
        ("maybe", bool, "not a boolean; use true or false"),
        ("x", float | None, "k='x' is not a number"),
        (1.5, int | None, "k=1.5 does not match type int | None"),
        (3, tuple[str, ...], "k=3 is not a sequence"),
    ],
)
def test_parser_errors_name_key_and_value(value, tp, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        parse_value(value, tp, "k")
