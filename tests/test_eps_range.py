"""`make eps-range` and what it reads: connections per shared weight, h averaged over them
(config.h_sharing), constant subsampling coefficients (config.subsampling_init), and the diagnostic's
step sizes, which must be those a real training run uses in its first pass."""
import math

import pandas as pd
import pytest
import torch

from repro import LeNet5, get_config, paper
from repro.sdlm import shared_curvature, step_sizes
from repro.train import curvature_for_pass, step_sizes_for_pass, train
from repro.train import setup as setup_run  # not `setup`: older pytest calls a module's setup() as a hook

import eps_range

# Counted by hand from Sec. II-B: a kernel weight or bias of a convolution enters every unit of its
# output map once (C1 28x28, C3 10x10, C5 1x1); a subsampling coefficient enters the 4 inputs of every
# unit of its map (4 x 14x14, 4 x 5x5), its bias every unit once; F6 is fully connected.
PAPER_COUNTS = {"c1.weight": 784, "c1.bias": 784, "s2.weight": 784, "s2.bias": 196, "c3.weight": 100,
                "c3.bias": 100, "s4.weight": 100, "s4.bias": 25, "c5.weight": 1, "c5.bias": 1,
                "f6.weight": 1, "f6.bias": 1}
SMALL = dict(train_size=600, passes=1, hessian_samples=100)


@pytest.fixture(scope="module")
def small_data(mnist_subset):
    return mnist_subset(600, 200)


def connections(model, counts):
    """{layer: connections}, the sum over its parameters of entries x connections per entry."""
    out = {}
    for k, p in model.named_parameters():
        layer = k.split(".")[0].upper()
        out[layer] = out.get(layer, 0) + p.numel() * counts[k]
    return out


def test_connections_per_weight_of_the_paper_network():
    model = LeNet5(get_config("paper"))
    counts = model.connections_per_weight()
    assert counts == PAPER_COUNTS
    assert connections(model, counts) == {k: v["connections"] for k, v in paper.LAYERS.items() if k != "OUTPUT"}
    assert sum(connections(model, counts).values()) == paper.TOTAL_CONNECTIONS - paper.LAYERS["OUTPUT"]["connections"]


def test_connections_per_weight_of_the_full_c3_table_and_other_networks():
    model = LeNet5(get_config("paper", c3="full"))
    assert model.connections_per_weight() == PAPER_COUNTS
    assert connections(model, PAPER_COUNTS)["C3"] == (16 * 6 * 25 + 16) * 100  # 241,600
    assert LeNet5(get_config("paper-literal")).connections_per_weight() == PAPER_COUNTS  # summed subsampling
    modern = LeNet5(get_config("modern")).connections_per_weight()  # max pooling (no parameters), linear head
    assert modern == {**{k: v for k, v in PAPER_COUNTS.items() if k[0] != "s"}, "output.weight": 1, "output.bias": 1}
    assert modern.keys() == dict(LeNet5(get_config("modern")).named_parameters()).keys()


def test_h_sharing_mean_divides_the_summed_h_exactly(small_data, tmp_path):
    runs = {sharing: setup_run(get_config(h_sharing=sharing, **SMALL), 3, tmp_path / sharing, small_data,
                               torch.device("cpu"), True, False) for sharing in ("sum", "mean")}
    counts = runs["mean"].model.connections_per_weight()
    h = {sharing: curvature_for_pass(run) for sharing, run in runs.items()}  # the same seed: the same 100 patterns
    assert h["sum"].keys() == h["mean"].keys() == counts.keys()
    for k, v in h["sum"].items():
        assert torch.equal(h["mean"][k], v / counts[k]), k
        assert counts[k] == 1 or not torch.equal(h["mean"][k], v), k
    assert shared_curvature(h["sum"], "sum") is h["sum"]
    # and the step sizes of the pass are eta / (mu + h / count)
    run = setup_run(get_config(h_sharing="mean", **SMALL), 3, tmp_path / "eps", small_data, torch.device("cpu"), True, False)
    eps, _ = step_sizes_for_pass(run, 0)
    expected = step_sizes({k: v / counts[k] for k, v in h["sum"].items()}, paper.ETA_SCHEDULE[0], run.config.mu)
    assert all(torch.equal(eps[k], expected[k]) for k in expected)


@pytest.mark.parametrize("subsampling_input", ["average", "sum"])
def test_subsampling_init_one_sets_coefficients_to_1_and_biases_to_0(subsampling_input):
    one = LeNet5(get_config(subsampling_init="one", subsampling_input=subsampling_input), seed=4)
    drawn = LeNet5(get_config(subsampling_input=subsampling_input), seed=4)
    for layer in ("s2", "s4"):
        assert torch.equal(getattr(one, layer).weight, torch.ones_like(getattr(one, layer).weight))
        assert torch.equal(getattr(one, layer).bias, torch.zeros_like(getattr(one, layer).bias))
        assert not torch.equal(getattr(drawn, layer).weight, getattr(one, layer).weight)
    drawn_params = dict(drawn.named_parameters())
    for k, p in one.named_parameters():  # every other weight is the one "uniform" draws
        if k[:2] not in ("s2", "s4"):
            assert torch.equal(p, drawn_params[k]), k


@pytest.mark.parametrize("reading", [{}, dict(h_sharing="mean", subsampling_init="one", bias_init="zero", mu=paper.MU)],
                         ids=["recipe", "mean-one-zero-mu0.02"])
def test_diagnostic_gives_the_first_pass_eps_of_a_real_training_run(small_data, tmp_path, reading):
    config = get_config("paper", **reading, **SMALL)
    train(config, 0, tmp_path / "train", small_data, progress=None)
    recorded = pd.read_csv(tmp_path / "train" / "eps.csv")
    recorded = recorded[recorded["pass"] == 1].set_index("layer")
    stats, kind = eps_range.first_pass_stats(config, 0, small_data, tmp_path / "diagnostic")
    assert kind in ("native", "native-fast", "compiled", "eager")
    assert set(stats) == set(recorded.index) == set(eps_range.LAYERS)
    for layer, s in stats.items():
        assert s == {k: recorded.loc[layer, k] for k in ("min", "median", "max")}, layer


def test_diagnose_writes_one_row_per_reading_seed_and_layer(small_data):
    readings = [eps_range.reading_of(get_config("paper")), eps_range.reading_of(get_config("paper-literal"))]
    eps, kinds = eps_range.diagnose(readings, [0, 1], small_data, dict(train_size=600, hessian_samples=50), show=None)
    assert len(eps) == 2 * 2 * len(eps_range.LAYERS) and kinds
    assert set(eps.reading) == {eps_range.name(r) for r in readings}
    assert (eps["min"] <= eps["median"]).all() and (eps["median"] <= eps["max"]).all()


def test_table_sorts_by_the_larger_factor_and_flags_readings_within_2(tmp_path):
    low, high = paper.FIRST_PASS_EPS_RANGE
    close = dict(eps_range.reading_of(get_config("paper")), h_sharing="mean", mu=paper.MU)
    closer = dict(close, bias_init="zero")
    ends = {eps_range.name(close): (1.9 * low, 0.6 * high), eps_range.name(closer): (low, 1.2 * high)}
    rows = []
    for reading in eps_range.readings():
        lo, hi = ends.get(eps_range.name(reading), (0.1 * low, 3 * high))
        for seed in (0, 1):
            rows += [dict(reading, reading=eps_range.name(reading), seed=seed, layer=layer, min=lo, median=math.sqrt(lo * hi),
                          max=hi) for layer in eps_range.LAYERS]
    (tmp_path / "eps_range.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    summary = eps_range.summarise(pd.read_csv(tmp_path / "eps_range.csv"))
    assert list(summary.reading[:2]) == [eps_range.name(closer), eps_range.name(close)]
    assert summary.within.tolist() == [True, True] + [False] * (len(summary) - 2)
    assert summary.factor[0] == pytest.approx(1.2) and summary.factor[1] == pytest.approx(1.9)
    text = eps_range.render(tmp_path)["table.md"]
    assert f"2 of {len(summary)} readings land within a factor of 2 of both ends" in text
    assert "Per layer, the faithful recipe" in text and "Per layer, reading #2" in text and "trained" not in text
    trained = pd.DataFrame([dict(reading=eps_range.name(r), seed=s, **{"pass": 20}, test_error=0.01 + s / 1000,
                                 test_misses=100, train_error=0.004, train_error_online=0.005)
                            for r in (close, closer) for s in (0, 1)])
    trained.to_csv(tmp_path / "trained.csv", index=False)
    text = eps_range.render(tmp_path)["table.md"]
    assert "## The readings within a factor of 2, trained" in text and "1.05% ± 0.07%" in text and "0.95%" in text


@pytest.mark.parametrize("subsampling_input", ["average", "sum"])
def test_authors_subsampling_init_is_half_the_sum_of_the_field(subsampling_input):
    """EBLearn's s_layer::forget: the constant 1/sqrt(4) times the sum of the 2x2 field, bias 0,
    whichever of the sum or the average the coefficient multiplies."""
    net = LeNet5(get_config(subsampling_init="authors", subsampling_input=subsampling_input), seed=4)
    x = torch.randn(3, 6, 28, 28)
    sums = x.unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2))
    assert torch.allclose(net.s2(x), 0.5 * sums, rtol=0, atol=1e-6)
    assert torch.equal(net.s4.bias, torch.zeros_like(net.s4.bias))
