"""Training loop on a small real subset: it learns, resumes to identical numbers, and stops on NaN."""
import json

import pytest
import torch

from repro import data as mnist
from repro.config import get_config
from repro.train import HESSIAN, ORDER, TrainingDiverged, train

SMALL = dict(train_size=600, passes=2, hessian_samples=100)


@pytest.fixture(scope="module")
def small_data():
    d = mnist.load_mnist()
    return dict(train_x=d["train_x"][:600], train_y=d["train_y"][:600],
                test_x=d["test_x"][:500], test_y=d["test_y"][:500])


def test_smoke_run_learns_and_records_provenance(tmp_path, small_data):
    metrics = train(get_config(**SMALL), 0, tmp_path, small_data, progress=None)
    assert [m["pass"] for m in metrics] == [1, 2]
    assert metrics[-1]["train_error"] < 0.5 and metrics[-1]["test_error"] < 0.6  # chance is 0.9
    assert metrics[-1]["train_error"] != metrics[-1]["test_error"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert {"seed", "git_commit", "torch", "device"} <= set(meta)
    assert json.loads((tmp_path / "config.json").read_text())["train_size"] == 600
    assert (tmp_path / "metrics.csv").read_text().startswith("seed,pass,eta")


def test_resume_gives_the_numbers_of_an_uninterrupted_run(tmp_path, small_data):
    whole = train(get_config(**SMALL), 5, tmp_path / "whole", small_data, progress=None)
    train(get_config(**dict(SMALL, passes=1)), 5, tmp_path / "cut", small_data, progress=None)
    # "interrupt" after pass 1: the checkpoint holds config passes=1, so continue with the full config
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    ckpt["config"]["passes"] = 2
    torch.save(ckpt, tmp_path / "cut" / "checkpoint.pt")
    resumed = train(get_config(**SMALL), 5, tmp_path / "cut", small_data, progress=None)
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "eval_seconds", "samples_per_s")} for r in rows]
    assert drop(resumed) == drop(whole)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_stops_with_pass_and_sample(tmp_path, small_data):
    # a pattern outside the 100 that estimate the curvature, so the pass starts and meets it mid-way
    in_hessian = torch.randperm(600, generator=torch.Generator().manual_seed(0 + HESSIAN))[:100]
    k = next(i for i in range(300, 600) if i not in in_hessian)
    sample = (torch.randperm(600, generator=torch.Generator().manual_seed(0 + ORDER)) == k).nonzero().item() + 1
    bad = dict(small_data, train_x=small_data["train_x"].clone())
    bad["train_x"][k] = float("nan")
    with pytest.raises(TrainingDiverged, match=rf"pass 1 at sample {sample} \(training pattern #{k}\)"):
        train(get_config(**SMALL), 0, tmp_path, bad, progress=None)


def test_nan_curvature_stops_before_the_pass(tmp_path, small_data):
    bad = dict(small_data, train_x=small_data["train_x"].clone())
    bad["train_x"][:] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step sizes are not finite before pass 1 .*c1"):
        train(get_config(**SMALL), 0, tmp_path, bad, progress=None)


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
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    plain = get_config(**dict(SMALL, passes=1))
    del ckpt["config"]["distortions"]
    ckpt["config"].update({k: v for k, v in plain.to_dict().items() if k != "distortions"})
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    assert train(plain, 0, tmp_path, small_data, progress=None) == ckpt["metrics"]
