"""The configuration (repro/config.py): an out-of-range or wrong-typed value is one clear error naming
the field; unknown names and choices that do not go together are refused; the variants build and
round-trip through JSON."""
import json
from pathlib import Path

import numpy as np
import pytest

from repro import LeNet5, get_config, paper
from repro.config import VARIANTS, Config

NAN, INF = float("nan"), float("inf")
ETA = paper.ETA_SCHEDULE


@pytest.mark.parametrize("field, bad", [
    ("mu", -1.0), ("mu", 0), ("mu", 0.0), ("mu", "x"), ("mu", NAN), ("mu", INF), ("mu", True), ("mu", None),
    ("eta", ETA[:-1] + (-1.0,)), ("eta", ETA[:-1] + (0.0,)), ("eta", ETA[:-1] + (NAN,)), ("eta", ETA[:-1] + ("a",)),
    ("eta", ETA[:-1] + (True,)), ("eta", "abc"), ("eta", 1e-3), ("eta", None), ("eta", ETA[:-1]),
    ("passes", 0), ("passes", -1), ("passes", 2.5), ("passes", 2.0), ("passes", True), ("passes", "2"),
    ("train_size", 70_000), ("train_size", 60_001), ("train_size", 0), ("train_size", 600.0), ("train_size", False),
    ("hessian_samples", 0), ("hessian_samples", 1.5), ("hessian_samples", True),
    ("lr", 0), ("lr", -1e-3), ("lr", INF), ("lr", NAN), ("lr", "1e-3"),
    ("batch_size", 0), ("batch_size", -64), ("batch_size", 64.0), ("batch_size", True),
    ("j", "a"), ("j", INF), ("j", -INF), ("j", NAN), ("j", None), ("j", 1j),
    ("init_scale", 0), ("init_scale", -2.4), ("init_scale", INF), ("init_scale", "2.4"),
    ("init_fan_power", -0.5), ("init_fan_power", NAN), ("init_fan_power", INF), ("init_fan_power", "1"),
])
def test_bad_values_are_a_clear_error(field, bad):
    with pytest.raises(ValueError, match=rf"^config\.{field}\b") as e:
        get_config("paper", **{field: bad})
    assert "expected" in str(e.value) or "rates for" in str(e.value)


@pytest.mark.parametrize("field, good", [
    ("mu", 1), ("mu", np.float32(0.05)), ("lr", np.float64(1e-3)),
    ("passes", np.int64(3)), ("train_size", 60_000), ("train_size", 1), ("hessian_samples", 1),
    ("j", 0), ("j", -2.5), ("init_fan_power", 0), ("init_scale", 1), ("eta", [1e-4] * 20),
    ("eta", tuple(np.full(20, 1e-4))),
])
def test_good_values_are_kept_as_given(field, good):
    config = get_config("paper", **{field: good})
    expected = tuple(good) if isinstance(good, list) else good
    assert getattr(config, field) == expected and type(getattr(config, field)) is type(expected)


def test_eta_list_becomes_a_tuple():
    config = Config(eta=list(ETA))
    assert config.eta == ETA and isinstance(config.eta, tuple)
    hash(config)


@pytest.mark.parametrize("bad, message", [
    (dict(loss="hinge"), "expected one of"), (dict(activation="sigmoid"), "expected one of"),
    (dict(passes=21), "rates for"),
    (dict(optimizer="adam"), "mini-batches"),  # Adam with batch_size 1
    (dict(batch_size=64), "online"),  # SDLM with mini-batches
    (dict(loss="ce"), "linear output"), (dict(output="linear"), "linear output"),
])
def test_choices_that_do_not_go_together_are_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        Config(**bad)


def test_unknown_names_are_a_clear_error():
    with pytest.raises(ValueError, match="unknown variant"):
        get_config("lenet-9")
    with pytest.raises(ValueError, match="unknown config field"):
        get_config(learning_rate=1)


@pytest.mark.parametrize("field, bad", [("h_sharing", "average"), ("h_sharing", None), ("subsampling_init", "1"),
                                        ("subsampling_init", 1.0), ("subsampling_init", "zero")])
def test_h_sharing_and_subsampling_init_take_their_choices_only(field, bad):
    with pytest.raises(ValueError, match=rf"^config\.{field}=.*expected one of"):
        get_config("paper", **{field: bad})


def test_h_sharing_and_subsampling_init_default_to_what_the_code_did_before():
    config = Config()
    assert config.h_sharing == "sum" and config.subsampling_init == "uniform"
    for name in ("paper", "paper-literal", "paper-mu0.02"):
        assert get_config(name).h_sharing == "sum" and get_config(name).subsampling_init == "uniform"
    one = get_config(h_sharing="mean", subsampling_init="one")
    assert Config(**one.to_dict()) == one


def test_overrides_win_over_the_variant():
    assert get_config("adam").batch_size == 64 and get_config("adam", batch_size=32).batch_size == 32
    assert get_config("modern+sdlm").optimizer == "sdlm" and get_config("modern+sdlm").activation == "relu"


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_builds(name):
    config = get_config(name)
    assert isinstance(config, Config)
    LeNet5(config)


@pytest.mark.parametrize("name", ["paper", "paper-literal", "adam", "modern+sdlm", "distortions-fresh"])
def test_json_round_trip(name):
    config = get_config(name, j=0.5, train_size=600)
    assert Config(**json.loads(json.dumps(config.to_dict()))) == config


def test_the_recipe_is_the_recipe_studys_choice():
    """mu, the distortion ranges and the initialisation of the recipe are what the pre-registered recipe
    study (make recipe-study) chose on the validation split; the text's mu stays a named variant."""
    decision = json.loads((Path(__file__).resolve().parents[1] / "results" / "recipe_study" / "decision.json").read_text())
    recipe = get_config("paper")
    assert recipe.mu == decision["mu"]
    assert get_config("distortions").distortion_ranges == decision["ranges"]
    assert decision["init"] == "recipe" and (recipe.init_fan_power, recipe.subsampling_init) == (0.5, "uniform")
    assert get_config("paper-mu0.02").mu == paper.MU != recipe.mu
