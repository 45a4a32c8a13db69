"""The data versions (repro/versions.py) and the classical classifiers of Fig. 9 (repro/classical/),
each on a small problem whose answer is known."""
import functools

import numpy as np
import pytest
import torch

from repro import classical, rejection, versions
from repro.classical import knn, linear, pca_quadratic, rbf, svm, tangent


def stroke(slope, side=28, width=1.5):
    """A vertical bar through the centre, sheared so that x = 14 + slope (y - 14): uint8 (side, side)."""
    y, x = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64), indexing="ij")
    centre = side / 2 + slope * (y - side / 2)
    ink = ((x - centre).abs() < width) & ((y - side / 2).abs() < 8)
    return (ink * 255).to(torch.uint8)


def blobs(n, side, seed=0):
    """Ten classes of images: class c lights a square of its own in a 4x3 grid, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 40, (n, side, side), generator=g)
    cell = side // 4
    for i, c in enumerate(labels.tolist()):
        r, k = divmod(c, 4)
        images[i, r * cell:(r + 1) * cell, k * cell:(k + 1) * cell] += 200
    return images.clamp(0, 255).to(torch.uint8), labels


# ---- data versions ----------------------------------------------------------------------------------
def test_deslant_makes_a_sheared_stroke_upright():
    images = torch.stack([stroke(s) for s in (-0.4, 0.0, 0.3)])
    assert versions.slant(images).tolist() == pytest.approx([-0.4, 0.0, 0.3], abs=0.02)
    upright = versions.deslant(images)
    assert upright.shape == (3, 20, 20) and upright.dtype == torch.uint8
    assert versions.slant(upright).abs().max() < 0.02
    def ink_columns(im):  # columns holding at least a tenth of the fullest column's ink
        c = im.double().sum(1)
        return (c > 0.1 * c.max(1, keepdim=True).values).sum(1)
    assert ink_columns(images[:, versions.BOX, versions.BOX])[[0, 2]].min() >= 7  # slanted: spread out
    assert ink_columns(upright).max() <= 5  # upright: the bar's 3 columns and interpolation's edges


def test_16x16_keeps_the_digit_box():
    images = torch.stack([stroke(0.0)])
    small = versions.reduce16(images)
    assert small.shape == (1, 16, 16) and small.dtype == torch.uint8
    ink = lambda im: im.double().sum().item() / 255
    assert ink(small) == pytest.approx(ink(images) * (16 / 20) ** 2, rel=0.05)  # the area scales, the ink stays


def test_versions_reject_bad_input():
    with pytest.raises(ValueError, match="unknown data version"):
        versions.make("deskewed", torch.zeros(1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"regular version has uint8 images of shape \(N, 28, 28\)"):
        versions.deslant(torch.zeros(2, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        versions.reduce16(torch.zeros(2, 28, 28))


# ---- the registry --------------------------------------------------------------------------------
def test_registry_rejects_unknown_methods_and_wrong_images():
    with pytest.raises(ValueError, match="unknown method 'svm'"):
        classical.get("svm")
    with pytest.raises(ValueError, match=r"deslant version has uint8 images of shape \(N, 20, 20\)"):
        classical.fit("knn-deslant", torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10))
    with pytest.raises(ValueError, match="classes 0..9"):
        classical.fit("linear", torch.zeros(2, 28, 28, dtype=torch.uint8), torch.tensor([0, 10]))
    model = classical.fit("linear", *blobs(40, 28))
    with pytest.raises(ValueError, match=r"regular version has uint8 images of shape \(N, 28, 28\)"):
        classical.scores("linear", model, torch.zeros(3, 16, 16, dtype=torch.uint8))


def test_every_method_has_the_papers_figure():
    from repro import paper
    assert set(classical.METHODS) <= set(paper.FIG9_ERROR)


# ---- linear, pairwise, PCA + quadratic --------------------------------------------------------------
@pytest.mark.parametrize("cls", [linear.Linear, linear.Pairwise, pca_quadratic.PCAQuadratic])
def test_linear_family_separates_separable_classes(cls):
    x, y = blobs(300, 28)
    tx, ty = blobs(100, 28, seed=1)
    model = cls(x, y, components=20) if cls is pca_quadratic.PCAQuadratic else cls(x, y)
    assert (model.scores(tx).argmax(1) == ty).all()


def test_linear_parameters_are_the_papers():
    x, y = blobs(50, 28)
    assert linear.Linear(x, y).parameters() == 7_850  # Sec. III-C.1: 784 x 10 + 10
    assert linear.Linear(versions.deslant(x), y).parameters() == 4_010  # 400 x 10 + 10
    assert linear.Pairwise(x, y).parameters() == 45 * 785


def test_pairwise_scores_are_votes():
    x, y = blobs(100, 28)
    model = linear.Pairwise(x, y)
    out = model.outputs(x[:5]).sign()
    for n in range(5):
        for c in range(10):
            expected = sum(out[n, u] * (1 if i == c else -1) for u, (i, j) in enumerate(linear.PAIRS) if c in (i, j))
            assert model.scores(x[n:n + 1])[0, c] == expected


def test_quadratic_has_the_papers_821_inputs():
    assert pca_quadratic.quadratic(torch.randn(3, 40, dtype=torch.float64)).shape == (3, 821)


# ---- nearest neighbours -----------------------------------------------------------------------------
def test_pca_quadratic_separates_what_no_linear_classifier_can():
    # XOR of two patches: class 0 when both are bright or both dark, class 1 otherwise; the product of
    # the two patches' principal components separates it, a weighted sum of pixels cannot (measured on
    # 400 new images: on its own 400, a 785-weight linear classifier can memorise the noise)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 2, (2, 800), generator=g)
    images = torch.randint(0, 30, (800, 28, 28), generator=g)
    images[:, 4:12, 4:12] += (200 * a).view(-1, 1, 1)
    images[:, 16:24, 16:24] += (200 * b).view(-1, 1, 1)
    images, labels = images.clamp(0, 255).to(torch.uint8), (a != b).long()
    accuracy = lambda model: (model.scores(images[400:]).argmax(1) == labels[400:]).double().mean()
    assert accuracy(pca_quadratic.PCAQuadratic(images[:400], labels[:400])) > 0.98
    assert accuracy(linear.Linear(images[:400], labels[:400])) < 0.7


def test_rbf_network_places_its_units_per_class_and_separates_blobs():
    x, y = blobs(300, 28)
    net = rbf.RBFNetwork(x, y, seed=0, units_per_class=5)
    assert net.centres.shape == (50, 784) and (net.width2 > 0).all()
    assert net.parameters() == 50 * 784 + 50 + 51 * 10  # centres, widths, second layer with its bias
    assert torch.equal(net.scores(x).argmax(1), y)


def test_knn_distances_are_exact_and_ties_go_to_the_earlier_image():
    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 256, (7, 28, 28), generator=g, dtype=torch.uint8)
    r = torch.randint(0, 256, (9, 28, 28), generator=g, dtype=torch.uint8)
    r[5] = r[2]  # a tie
    brute = ((q.long().view(7, 1, -1) - r.long().view(1, 9, -1)) ** 2).sum(2)
    assert torch.equal(knn.squared_distances(q, r), brute.double())
    assert knn.neighbours(r[2:3], r, 2).tolist() == [[2, 5]]
    full = knn.neighbours(q, r, 9)  # the whole order: distance, then index
    assert full.tolist() == [sorted(range(9), key=lambda j: (brute[i, j].item(), j)) for i in range(7)]


def test_knn_vote_breaks_ties_by_the_nearest_and_grades_the_gap():
    labels = torch.tensor([[4, 7, 1], [4, 7, 7], [2, 2, 9], [3, 3, 3], [3, 3, 3]])
    nearest = torch.full((5, 10), 100.0, dtype=torch.float64)
    for row, distances in enumerate([{4: 1, 7: 4, 1: 9}, {4: 1, 7: 4}, {2: 1, 9: 4}, {3: 1, 5: 4}, {3: 1, 5: 16}]):
        for c, d in distances.items():
            nearest[row, c] = d
    scores = knn.vote(labels, nearest)
    assert scores.argmax(1).tolist() == [4, 7, 2, 3, 3]
    votes = torch.zeros(5, 10).scatter_add_(1, labels, torch.ones(5, 3))
    assert torch.equal(scores.floor(), votes.double())  # the graded part stays below one vote
    assert scores[3, 5] == 0.25 and scores[4, 5] == 0.125  # half the distance ratio to the nearest
    gap = rejection.top_two_gap(scores)
    assert gap[4] > gap[3]  # a unanimous vote is surer when the other classes are farther


def test_knn_scores_are_votes_and_distance_ratios_by_brute_force():
    g = torch.Generator().manual_seed(3)
    r, q = torch.randint(0, 256, (40, 6, 6), generator=g, dtype=torch.uint8), torch.randint(0, 256, (7, 6, 6), generator=g, dtype=torch.uint8)
    labels = torch.arange(40) % 4  # classes 4-9 have no references: ratio 0
    scores = knn.knn_scores(q, r, labels, 3)
    d = ((q.double().view(7, 1, -1) - r.double().view(1, 40, -1)) ** 2).sum(2)
    for i in range(7):
        order = sorted(range(40), key=lambda j: (d[i, j].item(), j))[:3]
        votes = torch.bincount(labels[order], minlength=10).double()
        per_class = torch.tensor([d[i, labels == c].min().item() if c < 4 else float("inf") for c in range(10)], dtype=torch.float64)
        assert torch.allclose(scores[i], votes + (per_class.min() / per_class).sqrt() / 2, rtol=0, atol=1e-12)


def test_ovo_votes_decide_and_their_decisions_grade_the_gap():
    g = np.random.default_rng(0)
    decisions = g.normal(0, 3, (200, 45))
    scores = svm.ovo_votes(decisions).numpy()
    votes = np.zeros((200, 10))
    for p, (i, j) in enumerate(linear.PAIRS):
        votes[:, i] += decisions[:, p] > 0
        votes[:, j] += decisions[:, p] <= 0
    assert np.array_equal(np.round(scores), votes)  # the graded part stays below half a vote
    sure, unsure = np.full((1, 45), 5.0), np.full((1, 45), 0.1)  # the same votes, margins far and near
    gap = lambda d: rejection.top_two_gap(svm.ovo_votes(d)).item()
    assert gap(sure) > gap(unsure)


# ---- tangent distance ---------------------------------------------------------------------------------
def test_tangent_distance_ignores_a_small_translation():
    x = versions.reduce16(torch.stack([stroke(0.2), stroke(-0.3)]))
    shifted = torch.roll(x, 1, dims=2)
    half = ((x.double() + shifted.double()) / 2).round().to(torch.uint8)  # a half-pixel translate
    p = lambda im: im.reshape(len(im), -1).double() / 255
    t, th = tangent.tangent_vectors(x), tangent.tangent_vectors(half)
    for i in range(2):
        euclid = ((p(x)[i] - p(half)[i]) ** 2).sum()
        td = tangent.tangent_distances(p(x)[i], t[i], p(half)[i:i + 1], th[i:i + 1])[0]
        assert td < 0.1 * euclid
        assert tangent.tangent_distances(p(x)[i], t[i], p(x)[i:i + 1], t[i:i + 1])[0] == pytest.approx(0, abs=1e-12)


# ---- support vector machines --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_svm():
    x, y = blobs(200, 28)
    return svm.SVM(x, y, degree=2, c=10.0), x


def test_svm_pair_expansions_reproduce_libsvm(small_svm):
    model, x = small_svm
    px = svm.pixels(x[:20])
    ours = np.stack([model.kernel(torch.from_numpy(px), torch.from_numpy(v)).numpy() @ c + b
                     for v, c, b in (model.pair_expansion(p) for p in range(45))], 1)
    np.testing.assert_allclose(ours, model.svc.decision_function(px), rtol=1e-9, atol=1e-9)
    assert torch.equal(model.scores(x[:20]).argmax(1), torch.from_numpy(model.svc.predict(px)))


@pytest.mark.parametrize("coef0, size", [(0.0, 6), (1.0, 10)])
def test_reduced_set_reproduces_a_kernel_expansion(coef0, size):
    # a degree-2 kernel on 3 dimensions has a feature space of 6 dimensions (homogeneous) or 10 (with
    # coef0 = 1: also the 3 linear terms and a constant): that many vectors span any expansion
    g = torch.Generator().manual_seed(0)
    vectors = torch.rand(12, 3, generator=g, dtype=torch.float64)
    coef = torch.randn(12, generator=g, dtype=torch.float64)
    k = functools.partial(svm.kernel, gamma=1.0, degree=2, coef0=coef0)
    z, beta = svm.reduce_pair(vectors.numpy(), coef.numpy(), k, size=size)
    probe = torch.rand(20, 3, generator=g, dtype=torch.float64)
    full = k(probe, vectors) @ coef
    reduced = k(probe, torch.from_numpy(z)) @ torch.from_numpy(beta)
    np.testing.assert_allclose(reduced, full, rtol=1e-6, atol=1e-6 * full.abs().max())


def test_distorted_copies_are_uint8_digits():
    x, _ = blobs(4, 28)
    out = svm.distorted_copies(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == (8, 28, 28) and out.dtype == torch.uint8
    assert not torch.equal(out[:4], x)


def test_make_compare_rejects_an_unknown_method_before_any_work():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "experiments/compare.py", "--methods", "knn", "svm"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "unknown method 'svm'" in done.stderr


def test_virtual_svm_first_stage_is_computed_once_and_shared(tmp_path):
    x, y = blobs(120, 28)
    first = svm.first_stage_support(x, y, 2, 10.0, cache_dir=tmp_path)
    assert np.array_equal(first, svm.SVM(x, y, degree=2, c=10.0).support())
    (cached,) = tmp_path.glob("support-*.npy")
    np.save(cached, first[:3])  # a second call reads the file instead of training
    assert np.array_equal(svm.first_stage_support(x, y, 2, 10.0, cache_dir=tmp_path), first[:3])


# ---- the findings' changes (experiments/compare_findings.py) -------------------------------------------
def test_tanh_units_lower_the_squared_error_of_the_least_squares_start():
    x, y = blobs(200, 28)
    feats, targets = linear.features(x), linear.one_vs_rest_targets(y)
    start = linear.least_squares(feats, targets, 1e-3 * len(x) * 255**2)
    tuned = linear.tanh_units(feats, targets, start, iterations=20)
    loss = lambda w: ((torch.tanh(feats @ w) - targets) ** 2).mean().item()
    assert loss(tuned) < loss(start)
    with pytest.raises(ValueError, match="units must be 'linear' or 'tanh'"):
        linear.Linear(x, y, units="sigmoid")


def test_pca_quadratic_options_change_the_inputs_as_described():
    z = torch.randn(5, 40, dtype=torch.float64)
    assert pca_quadratic.quadratic(z).shape == (5, 821)  # the paper's 821 inputs
    full = pca_quadratic.quadratic(z, linear_terms=True)
    assert full.shape == (5, 861) and torch.equal(full[:, 820:860], z)
    x, y = blobs(300, 28)
    raw = pca_quadratic.PCAQuadratic(x, y, whiten=False)
    assert torch.allclose((raw.basis.T @ raw.basis), torch.eye(40, dtype=torch.float64), atol=1e-8)  # orthonormal


def test_a_row_can_be_changed_by_version_train_size_and_options():
    x, y = blobs(60, 16)
    model = classical.fit("knn", x, y, version="16x16", k=1)
    assert model.k == 1 and torch.equal(classical.scores("knn", model, x, "16x16").argmax(1), y)
    with pytest.raises(ValueError, match=r"regular version has uint8 images of shape \(N, 28, 28\)"):
        classical.fit("knn", x, y)  # 16x16 images for a row on the regular set, without the change


def test_svm_c_is_what_the_svm_study_chose():
    """The rows' C per degree is the pre-registered study's choice on the validation split (make svm-search)."""
    import json
    from pathlib import Path
    decision = json.loads((Path(__file__).resolve().parents[1] / "results" / "svm_search" / "decision.json").read_text())
    assert svm.C == {int(d): c for d, c in decision["chosen_C"].items()}


def test_findings_change_rows_that_exist_with_options_their_methods_take():
    import inspect
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import compare_findings
    from dataclasses import fields
    from repro.config import Config
    from repro.combinations import Boosted
    from repro.networks import ROWS
    from compare import seeds
    for label, row, name, _, _, change in compare_findings.findings():
        change = dict(change)
        assert change.pop("seed", 0) in seeds(row), label  # a seed that make compare runs for the row
        if name in ROWS:  # a network: fields of its config, which must accept them
            assert row == name and set(change) <= {f.name for f in fields(Config)}, label
            Config(network=ROWS[name][0], **change)
            continue
        if name == "boosted-lenet4-dist":  # the boosted nets: Boosted's options
            assert row == name and set(change) <= set(inspect.signature(Boosted).parameters), label
            continue
        method = classical.get(name)
        classical.get(row)
        options = set(change) - {"version", "train_size"}
        assert options <= set(inspect.signature(method.cls).parameters), label
        assert change.get("version", method.version) in versions.VERSIONS, label


def test_the_findings_rerun_every_run_of_make_compare_that_loses_a_class():
    import sys
    from pathlib import Path
    import pandas as pd
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "experiments"))
    import compare_findings
    m = pd.read_csv(root / "results" / "compare" / "metrics.csv")
    lost = m[m.classes_lost > 0]
    assert sorted(zip(lost.method, lost.seed)) == sorted(compare_findings.LOST)


def test_make_compare_refuses_a_cached_run_that_other_code_made(tmp_path):
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import compare
    now = compare.code_hashes()
    for name, hashes in (("current", now), ("old", dict(now, classical_sha256="0" * 64)), ("unfinished", None)):
        (tmp_path / name).mkdir()
        if hashes:
            (tmp_path / name / "result.json").write_text("{}")
            (tmp_path / name / "meta.json").write_text(json.dumps(hashes))
    jobs = [("knn", 0, str(tmp_path / name)) for name in ("current", "old", "unfinished")]
    assert compare.stale(jobs) == [str(tmp_path / "old")]
    with pytest.raises(SystemExit, match="1 finished run.* made by other code"):
        compare.run_all(jobs, 1)


def test_a_compare_run_of_some_rows_renders_without_the_conclusions(tmp_path):
    """make compare METHODS=... (a scratch run of some rows) renders its tables; Sec. III-D's
    conclusions need every row, and the text names the missing ones instead of failing on them."""
    import sys
    from pathlib import Path
    import pandas as pd
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "experiments"))
    import compare
    m = pd.read_csv(root / "results" / "compare" / "metrics.csv")
    m[m.method.isin(["knn", "lenet1", "lenet5", "lenet5-dist"])].to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "invocation.json").write_text('{"wall_seconds": 60.0}')
    text = compare.render(tmp_path)["table.md"]
    errors = text.split("## Rejection")[0]  # the cost table lists the paper's values of every row
    assert "| knn |" in errors and "| lenet1 |" in errors and "| linear |" not in errors
    assert "Not drawn: the conclusions need every row, and this run leaves out linear, " in text
    assert "boosted-lenet4-dist" in text.split("Not drawn")[1]


def test_a_finished_job_records_its_result_provenance_and_code(tmp_path):
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import compare
    compare.save_result(tmp_path / "run", dict(method="knn", seed=0, test_error=0.03))
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == dict(method="knn", seed=0, test_error=0.03)
    assert meta["test_error"] == 0.03 and meta["git_commit"] and meta.items() >= compare.code_hashes().items()
    assert compare.stale([("knn", 0, str(tmp_path / "run"))]) == []


# ---- multiply-accumulates per image (Fig. 11) ---------------------------------------------------------
def test_macs_of_the_linear_family_are_one_per_weight_and_product():
    x, y = blobs(300, 28)
    assert linear.Linear(x[:50], y[:50]).macs() == 785 * 10
    assert linear.Linear(versions.deslant(x[:50]), y[:50]).macs() == 401 * 10  # Fig. 11's 4 thousand
    assert linear.Pairwise(x, y).macs() == 785 * 45 + 45 * 10  # the units, then the votes' 45 x 10 product
    d = 40
    assert pca_quadratic.PCAQuadratic(x, y).macs() == 784 * d + d * (d + 1) // 2 + (d * (d + 1) // 2 + 1) * 10


def test_macs_of_the_memory_based_methods():
    x, y = blobs(50, 28)
    assert knn.KNN(x, y, k=3).macs() == 50 * 784
    net = rbf.RBFNetwork(*blobs(300, 28), seed=0, units_per_class=5)
    assert net.macs() == 50 * 784 + 51 * 10  # distances to 50 centres, then 50 units and a bias into 10
    x16, y16 = blobs(30, 16)
    p, m = 256, 14  # pixels; 2 x 7 tangents
    solve = sum((m - k) ** 2 for k in range(1, m)) + m * (m - 1)  # elimination, two triangular solves
    per_candidate = m * m * p + m * p + m * p + solve + p + m  # Gram, rhs, residual, solve, |residual|^2, spring
    query_tangents = 2 * 5 * p + 5 * 2 * p  # two 5-tap blur passes; rotation, scaling, 2 hyperbolic, thickness
    td = tangent.TangentDistance(x16, y16, candidates=5)
    assert td.macs() == 30 * p + query_tangents + 5 * per_candidate
    assert td.parameters() == 30 * p * (1 + 7)  # the images and their 7 tangents each


def test_macs_of_the_svms_count_support_vectors_and_pairs(small_svm):
    model, _ = small_svm
    vectors = int(model.svc.n_support_.sum())
    assert model.macs() == vectors * 784 + 9 * vectors  # a dot product each; each enters its class's 9 pairs
    x, y = blobs(200, 28)
    assert svm.ReducedSetSVM(x, y, degree=2, per_pair=2, c=10.0).macs() == 45 * 2 * (784 + 1)
    virtual = svm.VirtualSVM(x[:120], y[:120], degree=2, copies=1, c=10.0)
    assert virtual.macs() == int(virtual.svm.svc.n_support_.sum()) * (784 + 9)


def test_macs_match_the_matrix_products_that_scoring_runs():
    # torch's flop counter sees matrix products and convolutions (2 flops per multiply-add), not
    # elementwise products or the solve: those are added by hand
    from torch.utils.flop_counter import FlopCounterMode
    x, y = blobs(300, 28)
    x16, y16 = blobs(30, 16)
    pca = pca_quadratic.PCAQuadratic(x, y)
    td = tangent.TangentDistance(x16, y16, candidates=5)
    elementwise = {pca: 40 * 41 // 2,
                   td: 2 * 5 * 256 + 5 * (tangent.solve_macs(14) + 256 + 14)}
    for model, images in ((linear.Linear(x, y), x), (linear.Pairwise(x, y), x), (knn.KNN(x, y), x),
                          (rbf.RBFNetwork(x, y, units_per_class=5), x), (pca, x), (td, x16)):
        with FlopCounterMode(display=False) as counter:
            model.scores(images[:1])
        assert counter.get_total_flops() // 2 + elementwise.get(model, 0) == model.macs(), type(model).__name__
