"""Training loop on a small real subset: it learns, resumes to identical numbers, and stops on NaN;
SGD, Adam, fresh distortions and the input variants run; stale checkpoints and bad sizes are refused."""
import json
import math
import shutil

import numpy as np
import pytest
import torch

from repro.config import get_config
from repro.files import atomic_save
from repro.provenance import library_sha256
from repro.train import HESSIAN, ORDER, TrainingDiverged, exact_moments, pass_patterns, prepare_inputs, train
from repro import train as train_module
from repro.train import setup as setup_run  # not `setup`: older pytest calls a module's setup() as a hook

SMALL = dict(train_size=600, passes=2, hessian_samples=100)
TIMING = ("seconds", "eval_seconds", "samples_per_s")


def drop_timing(rows):
    """The rows without their timings, NaN (Adam's eps_*) as a string: nan != nan would fail ==."""
    nan = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: nan(v) for k, v in r.items() if k not in TIMING} for r in rows]


def same_bits(a, b):
    """Nested dicts and lists of tensors and numbers, equal bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_bits(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same_bits(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def resave(ckpt, path):
    """Write a checkpoint a test has edited, with the SHA-256 of its new contents (repro.files)."""
    ckpt.pop("sha256", None)
    atomic_save(ckpt, path)


@pytest.fixture(scope="module")
def small_data(mnist_subset):
    return mnist_subset(600, 500)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, small_data):
    """(folder, metrics) of the recipe trained on the small data, seed 0: the run that several tests
    compare with or start from (read only: a test that changes a file works on a copy)."""
    folder = tmp_path_factory.mktemp("recipe")
    return folder, train(get_config(**SMALL), 0, folder, small_data, progress=None)


def test_smoke_run_learns_and_records_provenance(recipe_run):
    folder, metrics = recipe_run
    assert [m["pass"] for m in metrics] == [1, 2]
    assert metrics[-1]["train_error"] < 0.5 and metrics[-1]["test_error"] < 0.6  # chance is 0.9
    assert metrics[-1]["train_error"] != metrics[-1]["test_error"]
    meta = json.loads((folder / "meta.json").read_text())
    assert {"seed", "git_commit", "torch", "device"} <= set(meta)
    assert json.loads((folder / "config.json").read_text())["train_size"] == 600
    assert (folder / "metrics.csv").read_text().startswith("seed,pass,eta")


def test_resume_gives_the_numbers_of_an_uninterrupted_run(tmp_path, small_data, recipe_run):
    whole_dir, whole = recipe_run
    train(get_config(**dict(SMALL, passes=1)), 0, tmp_path / "cut", small_data, progress=None)
    # "interrupt" after pass 1: the checkpoint holds config passes=1, so continue with the full config
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    ckpt["config"]["passes"] = 2
    resave(ckpt, tmp_path / "cut" / "checkpoint.pt")
    resumed = train(get_config(**SMALL), 0, tmp_path / "cut", small_data, progress=None)
    assert drop_timing(resumed) == drop_timing(whole)
    a = torch.load(whole_dir / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("split", ["train", "test"])
def test_nan_pixels_stop_before_training(tmp_path, small_data, split):
    bad = dict(small_data, **{f"{split}_x": small_data[f"{split}_x"].clone()})
    bad[f"{split}_x"][[7, 123]] = float("nan")
    with pytest.raises(ValueError, match=rf"2 {split}ing images hold NaN .*#7\)"):
        train(get_config(**SMALL), 0, tmp_path, bad, progress=None)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_loss_that_turns_nan_stops_with_pass_and_sample(tmp_path, small_data, monkeypatch):
    # a pattern outside the 100 that estimate the curvature, so the pass starts and meets it mid-way
    in_hessian = torch.randperm(600, generator=torch.Generator().manual_seed(0 + HESSIAN))[:100]
    k = next(i for i in range(300, 600) if i not in in_hessian)
    sample = (torch.randperm(600, generator=torch.Generator().manual_seed(0 + ORDER)) == k).nonzero().item() + 1
    marked = small_data["train_x"][k].clone()
    real = train_module.make_step

    def diverging_step(*args, **kwargs):  # the real step, whose loss turns NaN at pattern k (a diverged network)
        step, seconds = real(*args, **kwargs)

        class Diverging:
            def __getattr__(self, name):
                return getattr(step, name)

            def __call__(self, params, eps, xs, ys):
                losses, out = step(params, eps, xs, ys)
                hit = (xs == marked).flatten(1).all(1)
                return torch.where(hit, torch.tensor(float("nan")), losses), out
        return Diverging(), seconds
    monkeypatch.setattr(train_module, "make_step", diverging_step)
    with pytest.raises(TrainingDiverged, match=rf"pass 1 at sample {sample} \(training pattern #{k}\)"):
        train(get_config(**SMALL), 0, tmp_path, small_data, progress=None)


def test_non_finite_step_sizes_stop_before_the_pass(tmp_path, small_data, monkeypatch):
    monkeypatch.setattr(train_module, "curvature_for_pass", lambda run: {
        k: torch.full_like(v, float("nan") if k.startswith("c1") else 1.0) for k, v in run.params.items()})
    with pytest.raises(TrainingDiverged, match=r"step sizes are not finite before pass 1 .*c1"):
        train(get_config(**SMALL), 0, tmp_path, small_data, progress=None)


def test_unavailable_cuda_is_a_clear_error(tmp_path, small_data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="cuda"):
        train(get_config(**SMALL), 0, tmp_path, small_data, device="cuda", progress=None)


def test_distorted_run_and_a_checkpoint_from_before_a_new_config_field(tmp_path, small_data):
    config = get_config("distortions", **dict(SMALL, passes=1))
    metrics = train(config, 0, tmp_path, small_data, progress=None)
    assert metrics[-1]["train_error_online"] < 0.9
    # a checkpoint written before the field existed resumes: a missing field counts as its default
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    plain = get_config(**dict(SMALL, passes=1))
    del ckpt["config"]["distortions"]
    ckpt["config"].update({k: v for k, v in plain.to_dict().items() if k != "distortions"})
    resave(ckpt, tmp_path / "checkpoint.pt")
    assert train(plain, 0, tmp_path, small_data, progress=None) == ckpt["metrics"]


def test_plain_sgd_follows_the_scaled_schedule_and_learns(tmp_path, small_data):
    lr, eta = 1e-3, (5e-4, 2e-4)  # two different rates, so that pass 2's scaling shows
    config = get_config("sgd", **dict(SMALL, lr=lr, eta=eta))
    metrics = train(config, 0, tmp_path / "a", small_data, progress=None)
    assert [m["pass"] for m in metrics] == [1, 2]
    for p, row in enumerate(metrics):
        rate = lr * eta[p] / eta[0]
        assert row["eta"] == pytest.approx(rate, rel=1e-12)
        # every parameter steps by the one rate (held in float32, like the parameters)
        assert row["eps_min"] == row["eps_median"] == row["eps_max"] == pytest.approx(rate, rel=1e-7)
    assert [m["eta"] for m in metrics] == pytest.approx([1e-3, 4e-4], rel=1e-12)
    assert metrics[-1]["train_error"] < 0.5 and metrics[-1]["test_error"] < 0.6  # chance is 0.9
    # no curvature pass: SDLM's mu and sample count change nothing
    other = get_config("sgd", **dict(SMALL, lr=lr, eta=eta, mu=5.0, hessian_samples=7))
    assert drop_timing(train(other, 0, tmp_path / "b", small_data, progress=None)) == drop_timing(metrics)


@pytest.mark.parametrize("variant", ["modern", "adam"])
def test_adam_resume_gives_the_numbers_and_weights_of_an_uninterrupted_run(tmp_path, small_data, variant):
    whole = train(get_config(variant, **SMALL), 3, tmp_path / "whole", small_data, progress=None)
    train(get_config(variant, **dict(SMALL, passes=1)), 3, tmp_path / "cut", small_data, progress=None)
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ckpt["adam"] is not None and ckpt["library_sha256"] == library_sha256()
    ckpt["config"]["passes"] = 2
    resave(ckpt, tmp_path / "cut" / "checkpoint.pt")
    resumed = train(get_config(variant, **SMALL), 3, tmp_path / "cut", small_data, progress=None)
    assert [m["pass"] for m in resumed] == [1, 2]
    assert json.loads((tmp_path / "cut" / "meta_pass1.json").read_text())["resumed_from_pass"] == 1
    assert drop_timing(resumed) == drop_timing(whole)
    assert whole[1]["train_loss_online"] != whole[0]["train_loss_online"]  # pass 2 trained on
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert same_bits(a["adam"], b["adam"])  # the moments (and step counts) too


def test_fresh_distortions_change_every_pass_and_repeat_with_the_seed(tmp_path, small_data, recipe_run):
    config = get_config("distortions-fresh", **SMALL)
    run = setup_run(config, 0, tmp_path / "setup", small_data, torch.device("cpu"), True, False)
    plain = run.data["train_x"][run.order]
    (x0, y0, _), (x1, y1, _) = pass_patterns(run, 0), pass_patterns(run, 1)
    assert torch.equal(y0, run.data["train_y"][run.order]) and torch.equal(y1, y0)  # same order, same labels
    assert torch.equal(pass_patterns(run, 0)[0], x0)  # drawn from the seed, not from state
    kept0 = (x0 == plain).flatten(1).all(1)
    kept1 = (x1 == plain).flatten(1).all(1)
    assert 0.04 < kept0.float().mean() < 0.18 and 0.04 < kept1.float().mean() < 0.18  # about 1 in 10 kept
    assert not torch.equal(x0, x1) and not torch.equal(kept0, kept1)  # each pass distorts anew
    changed = ~(kept0 | kept1)
    assert not (x0[changed] == x1[changed]).flatten(1).all(1).any()

    metrics = train(config, 0, tmp_path / "a", small_data, progress=None)
    again = train(config, 0, tmp_path / "b", small_data, progress=None)
    _, undistorted = recipe_run
    assert drop_timing(again) == drop_timing(metrics)
    for p in range(2):  # same seed, weights and order: only the patterns differ
        assert metrics[p]["train_loss_online"] != undistorted[p]["train_loss_online"]
    assert metrics[-1]["train_error_online"] < 0.9 and metrics[-1]["test_error"] < 0.6


def test_unit_input_maps_pixels_to_zero_one(small_data):
    x = small_data["train_x"]
    unit = prepare_inputs(x, get_config("unit-input"), x)
    assert unit.min().item() == 0.0 and unit.max().item() == pytest.approx(1.0, abs=1e-6)
    assert unit.max().item() <= 1.0
    torch.testing.assert_close(unit, (x + 0.1) / 1.275)
    assert torch.equal(prepare_inputs(x, get_config(), x), x)  # the paper's scaling is left alone


def test_standardized_input_has_zero_mean_unit_variance_from_exact_moments(small_data):
    x, test = small_data["train_x"], small_data["test_x"]
    config = get_config("standardized-input")
    out = prepare_inputs(x, config, x).double().numpy()
    assert abs(out.mean()) < 1e-6 and abs(out.std(ddof=1) - 1) < 1e-6
    unit = ((x + 0.1) / 1.275).double().numpy()
    mean, std = unit.mean(), unit.std(ddof=1)
    np.testing.assert_allclose(out, (unit - mean) / std, rtol=0, atol=1e-6)
    # the test images are scaled by the training images' moments, not their own
    expected = (((test + 0.1) / 1.275).double().numpy() - mean) / std
    np.testing.assert_allclose(prepare_inputs(test, config, x).double().numpy(), expected, rtol=0, atol=1e-6)
    for t in (torch.from_numpy(unit).float(), x, test):
        m, s = exact_moments(t)
        a = t.double().numpy()
        assert m == pytest.approx(a.mean(), rel=1e-12) and s == pytest.approx(a.std(ddof=1), rel=1e-12)


@pytest.mark.parametrize("variant", ["unit-input", "standardized-input"])
def test_input_variants_train(tmp_path, small_data, variant):
    metrics = train(get_config(variant, **dict(SMALL, passes=1)), 0, tmp_path, small_data, progress=None)
    assert metrics[-1]["train_error"] < 0.5 and metrics[-1]["test_error"] < 0.6  # chance is 0.9


def test_resume_refuses_a_checkpoint_from_other_library_code(tmp_path, small_data, recipe_run):
    shutil.copytree(recipe_run[0], tmp_path, dirs_exist_ok=True)  # a finished run is read through the same checks
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["library_sha256"] == library_sha256()
    ckpt["library_sha256"] = "0" * 64
    resave(ckpt, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="other code"):
        train(get_config(**SMALL), 0, tmp_path, small_data, progress=None)


def test_train_size_beyond_the_data_is_a_clear_error(tmp_path, small_data):
    with pytest.raises(ValueError, match=r"train_size=1000 .* only 600 images"):
        train(get_config(**dict(SMALL, train_size=1000)), 0, tmp_path, small_data, progress=None)
    assert not (tmp_path / "checkpoint.pt").exists()
