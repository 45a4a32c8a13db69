"""The neural rows of the comparison (repro/combinations.py): scores, counts, the classifiers on
LeNet-4's features and the filtering that feeds boosting."""
import pytest
import torch

from repro import combinations, networks
from repro.config import Config
from repro.model import Network
from repro.step import make_step


def lenet4(seed=0):
    return Network(Config(network="lenet4"), seed)


def images(n, seed=0):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 1.275 - 0.1


def test_scores_are_minus_the_native_penalties():
    model, x = lenet4(), images(7)
    step, _ = make_step(model.config)
    penalties = step.forward({k: p.detach() for k, p in model.named_parameters()}, x)
    s = combinations.scores(model, x, batch=3)
    assert s.dtype == torch.float64 and torch.equal(s, -penalties.double())


def test_features_are_what_the_last_layer_reads():
    """The last layer, its squashing and the output on the features give the network's penalties."""
    model, x = lenet4(), images(4)
    f = combinations.features(model, x, batch=3)
    assert f.shape == (4, 120) and next(model.parameters()).dtype == torch.float32
    model = model.double()
    with torch.no_grad():
        assert torch.allclose(model.output(model.acts["f6"](model.f6(f))), model(x.double()))


def test_feature_knn_counts():
    model, x, y = lenet4(), images(30), torch.arange(30) % 10
    knn = combinations.FeatureKNN(model, x, y, k=3)
    assert knn.scores(images(5, 1)).shape == (5, 10)
    net = combinations.TrainedNetwork(model)
    assert knn.parameters() == net.parameters() - 1_210 + 30 * 120  # F6 replaced by the stored features
    assert knn.macs() == net.macs() - 1_210 + 30 * 120


def test_feature_knn_finds_the_nearest_pattern():
    """A training pattern among the queries is its own nearest neighbour: with k=1 its class wins."""
    model, x, y = lenet4(), images(40), torch.arange(40) % 10
    knn = combinations.FeatureKNN(model, x, y, k=1)
    assert torch.equal(knn.scores(x[:12]).argmax(1), y[:12])


def test_local_learning_fits_its_neighbourhood():
    """Features that a linear map separates: the local fit on the neighbours recovers the class."""
    model = lenet4()
    local = combinations.LocalLearning(model, images(20), torch.arange(20) % 10, k=50, ridge=1e-3)
    g = torch.Generator().manual_seed(1)
    local.train_f = torch.randn(300, 120, generator=g, dtype=torch.float64)
    local.train_y = (local.train_f @ torch.randn(120, 10, generator=g, dtype=torch.float64)).argmax(1)
    assert (local.classify(local.train_f[:40]).argmax(1) == local.train_y[:40]).float().mean() >= 0.9
    d = 121
    assert local.macs() == combinations.FeatureKNN.macs(local) + 50 * d * (d + 10) + d ** 3 // 3 + 10 * d * d + 10 * d


def test_filtered_set_fills_its_quotas_in_stream_order():
    originals = images(100)
    labels = torch.arange(100) % 10
    kind = lambda x, y: y % 3  # kinds 0, 1, 2; kind 2 is dropped
    x, y = combinations.filtered_set(originals, labels, kind, {0: 50, 1: 70}, torch.Generator().manual_seed(0))
    assert len(x) == 120 and (y % 3 == 0).sum() == 50 and (y % 3 == 1).sum() == 70
    assert x.shape[1:] == (1, 32, 32)


def test_exit_threshold_is_the_largest_gap_where_net1_disagrees_with_the_sum():
    first = torch.tensor([[3.0, 0.0], [1.0, 0.5], [2.0, 0.0], [0.2, 0.0]], dtype=torch.float64)
    total = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    assert combinations.exit_threshold(first, total) == 2.0  # patterns 1-3 differ, gaps 0.5, 2.0 and 0.2
    assert combinations.exit_threshold(first, first) == 0.0  # no pattern differs
    # above the threshold net 1 alone gives the sum's answers on the patterns it was set on
    out, unsure = combinations.with_early_exit(first, lambda x: [total[x] - first[x]], torch.arange(4), 2.0)
    assert torch.equal(out.argmax(1), total.argmax(1)) and unsure.tolist() == [False, True, True, True]


def test_early_exit_runs_the_later_nets_on_the_unsure_patterns_only():
    first = torch.tensor([[4.0, 0.0, 0.0], [1.0, 0.8, 0.0], [0.0, 0.0, 5.0], [0.0, 0.5, 0.0]], dtype=torch.float64)
    seen = []

    def later(x):  # the later nets' scores of patterns x, in the order the sum adds them
        seen.append(x.clone())
        return [torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64).expand(len(x), 3)] * 2

    out, unsure = combinations.with_early_exit(first, later, torch.arange(4), threshold=1.0)
    assert unsure.tolist() == [False, True, False, True] and seen[0].tolist() == [1, 3]
    assert torch.equal(out[[0, 2]], 3 * first[[0, 2]])  # a sum of three's scale for Fig. 10's gaps
    assert torch.equal(out[[1, 3]], first[[1, 3]] + torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64))
    assert out.argmax(1).tolist() == [0, 1, 2, 1]


def test_boosted_counts_nets_2_and_3_on_the_unsure_share_of_the_patterns_scored():
    import pytest
    from repro.rejection import top_two_gap
    boosted = object.__new__(combinations.Boosted)  # three untrained LeNet-4s, without the training
    boosted.nets, boosted.threshold, boosted.unsure = (lenet4(0), lenet4(1), lenet4(2)), None, None
    x, one = images(50), combinations.connections(lenet4())
    full = boosted.scores(x)
    assert boosted.macs() == 3 * one
    assert torch.equal(full, sum(combinations.scores(net, x) for net in boosted.nets))
    boosted.threshold = top_two_gap(combinations.scores(boosted.nets[0], x)).median().item()
    with pytest.raises(RuntimeError, match="call scores"):
        boosted.macs()
    exits = boosted.scores(x)
    assert 0 < boosted.unsure < 1 and boosted.macs() == round(one + boosted.unsure * 2 * one)
    unsure = top_two_gap(combinations.scores(boosted.nets[0], x)) <= boosted.threshold
    assert torch.equal(exits[unsure], full[unsure])  # the unsure patterns get the full sum, bit for bit


def test_rows_are_fig9_rows():
    from repro import paper
    assert set(networks.ROWS) | set(combinations.COMBINED) <= set(paper.FIG9_ERROR)
    assert all(combinations.what(r) for r in [*networks.ROWS, *combinations.COMBINED])


def test_each_network_of_the_comparison_trains_with_its_own_mu():
    """LeNet-5 takes the recipe study's mu; the networks no study measured keep the text's (A10), and a
    finding that swaps the network takes the new network's."""
    from repro import paper
    assert combinations.row_config(*combinations.network_of("lenet5-dist")).mu == Config.mu != paper.MU
    assert combinations.row_config(*combinations.network_of("lenet4-knn")) == Config(network="lenet4", mu=paper.MU)
    for row in networks.ROWS:
        assert combinations.row_config(*combinations.network_of(row)).mu == paper.MU, row
    swapped = combinations.row_config("lenet4", "none", dict(network="lenet5", loss="ml"))
    assert (swapped.network, swapped.mu, swapped.loss) == ("lenet5", Config.mu, "ml")


def test_lenet4s_rows_take_the_mu_the_head_study_decided():
    """LeNet-4's rows (and the finding with LeNet-5's head) take the mu that the pre-registered head study's
    rule gave them on the validation split (results/head_study/decision.json)."""
    import json
    from pathlib import Path
    decision = json.loads((Path(__file__).resolve().parents[1] / "results" / "head_study" / "decision.json").read_text())
    for row in ("lenet4", "lenet4-knn", "boosted-lenet4-dist"):
        assert combinations.row_config(*combinations.network_of(row)).mu == decision["lenet4_mu"], row
    assert combinations.row_config("lenet4", "none", dict(network="lenet4-rbf")).mu == decision["lenet4_mu"]


def test_a_comparison_row_records_a_seed_that_stays_at_chance(monkeypatch, tmp_path):
    """make compare reports a seed that does not train (A31: mlp-500-150-dist seed 0 ends at 90%)
    instead of stopping on train()'s TrainingFailed: every row's training may fail."""
    asked = {}

    class Stop(Exception):
        pass

    def trained(config, seed, run_dir, data, require_portable, may_fail=False):
        asked["may_fail"] = may_fail
        raise Stop  # before any training

    monkeypatch.setattr(combinations, "trained", trained)
    with pytest.raises(Stop):
        combinations.fit("mlp-500-150-dist", 0, tmp_path / "mlp-500-150-dist" / "seed0")
    assert asked["may_fail"] is True
