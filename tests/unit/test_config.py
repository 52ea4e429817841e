"""Config tree: typed overrides, unknown keys, presets, validation, printing."""

import json

import pytest

from vzero_nemo.config import PRESET_FIELDS, VZeroConfig, flatten

pytestmark = pytest.mark.unit


def cfg_with(*overrides: str, world_size: int = 1) -> VZeroConfig:
    return VZeroConfig().apply_overrides(list(overrides)).finalize(world_size)


def test_overrides_of_every_type():
    cfg = cfg_with(
        "train.iterations=7",  # int
        "train.lr=3e-4",  # float (scientific)
        "grpo.std_normalize=false",  # bool
        "logging.wandb_project=my proj",  # str with a space
        "game.vote_mode=civilians",  # Literal
        "model.hf_path=null",  # Optional -> None
        "parallel.virtual_pipeline_model_parallel_size=None",
        "logging.tags=[a, b,c]",  # tuple[str, ...]
        "train.time_budget_s=3600",  # float | None given an int
    )
    assert cfg.train.iterations == 7 and isinstance(cfg.train.iterations, int)
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.grpo.std_normalize is False
    assert cfg.logging.wandb_project == "my proj"
    assert cfg.game.vote_mode == "civilians"
    assert cfg.model.hf_path is None
    assert cfg.logging.tags == ("a", "b", "c")
    assert cfg.train.time_budget_s == 3600.0


def test_value_is_verbatim_after_first_equals():
    cfg = cfg_with('logging.run_name=a=b "c" $(touch x)')
    assert cfg.logging.run_name == 'a=b "c" $(touch x)'


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.iterations=ten", "not an integer"),
        ("train.lr=fast", "not a number"),
        ("grpo.std_normalize=maybe", "not a boolean"),
        ("game.vote_mode=everyone", "choose one of ['observer', 'civilians']"),
        ("train", "must look like key=value"),
        ("=3", "empty key"),
        ("train=3", "is a section"),
    ],
)
def test_bad_override_values(override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        VZeroConfig().apply_overrides([override])


def test_unknown_key_suggests_closest():
    with pytest.raises(ValueError, match=r"unknown config key 'train.lrr'; did you mean train.lr"):
        VZeroConfig().apply_overrides(["train.lrr=1"])
    with pytest.raises(ValueError, match=r"did you mean game.num_players"):
        VZeroConfig().apply_overrides(["num_players=5"])
    with pytest.raises(ValueError, match=r"unknown config key 'nonsense.zzz'"):
        VZeroConfig().apply_overrides(["nonsense.zzz=1"])


def test_data_parallel_size_is_derived():
    cfg = cfg_with(
        "parallel.tensor_model_parallel_size=2",
        "parallel.pipeline_model_parallel_size=2",
        "data.games_per_iteration=8",
        world_size=8,
    )
    assert cfg.parallel.data_parallel_size == 2
    assert cfg.world_size == 8


@pytest.mark.parametrize(
    "overrides, world_size, message",
    [
        (["parallel.tensor_model_parallel_size=3"], 4, "not divisible by TP\\*PP = 3\\*1"),
        (["parallel.pipeline_model_parallel_size=0"], 1, "must be >= 1"),
        (["parallel.data_parallel_size=4"], 2, "data_parallel_size=4 but world size 2"),
        (["data.games_per_iteration=5"], 2, "not divisible by the data-parallel size 2"),
        (["parallel.sequence_parallel=true"], 1, "sequence_parallel=true needs"),
        (["parallel.virtual_pipeline_model_parallel_size=2"], 1, "needs >= 2 and PP >= 2"),
        (["game.num_players=2"], 1, "num_players=2 must be >= 3"),
        (["game.num_spies=2"], 1, "spies must be fewer than civilians"),
        (["game.num_votes=1"], 1, "GRPO group needs >= 2"),
        (["rollout.temperature=0"], 1, "temperature=0.0 must be > 0"),
        (["train.min_lr=1"], 1, "min_lr=1.0 must be in"),
        (["train.steps_per_iteration=0"], 1, "steps_per_iteration=0 must be >= 1"),
        (["model.size=72b"], 1, "needs model.hf_path"),
        (
            ["train.share_prompts=true", "grpo.loss_aggregation=sequence_mean"],
            1,
            "share_prompts=true packs several samples",
        ),
    ],
)
def test_finalize_rejects_bad_values(overrides, world_size, message):
    cfg = VZeroConfig().apply_overrides(overrides)
    with pytest.raises(ValueError, match=message):
        cfg.finalize(world_size)


def test_finalize_rechecks_types_set_in_code():
    cfg = VZeroConfig()
    cfg.train.iterations = "many"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="not an integer"):
        cfg.finalize()


def test_presets_select_whole_set_and_later_overrides_win():
    cfg = cfg_with("grpo.rae_alpha=0.5", "preset=official_code")
    for key, value in PRESET_FIELDS["official_code"].items():
        if key != "grpo.rae_alpha":
            assert flatten(cfg)[key] == value
    assert cfg.grpo.rae_alpha == 0.5  # explicit override beats the preset, whatever the order
    assert cfg.preset == "official_code"
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        VZeroConfig().apply_overrides(["preset=nope"])


def test_default_is_paper_preset():
    cfg = cfg_with()
    for key, value in PRESET_FIELDS["paper"].items():
        assert flatten(cfg)[key] == value


def test_resolved_config_prints_every_field():
    cfg = cfg_with("train.lr=2e-5")
    text = cfg.format()
    assert "train.lr = 2e-05" in text
    assert "parallel.data_parallel_size = 1" in text
    assert len(text.splitlines()) == len(flatten(cfg))
    assert json.loads(cfg.to_json())["train"]["lr"] == 2e-5
