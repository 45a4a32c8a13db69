"""The classical classifiers of Fig. 9 (repro/classical/), each on a small problem whose answer is
known, the options the findings change, and their multiply-adds and memory (Figs. 11-12)."""
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from repro import classical, rejection, versions
from repro.classical import knn, linear, pca_quadratic, rbf, svm, tangent
from test_versions import stroke

ROOT = Path(__file__).resolve().parents[1]


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
    (z, beta), = svm.reduce_pair(vectors.numpy(), coef.numpy(), k, [size])
    probe = torch.rand(20, 3, generator=g, dtype=torch.float64)
    full = k(probe, vectors) @ coef
    reduced = k(probe, torch.from_numpy(z)) @ torch.from_numpy(beta)
    np.testing.assert_allclose(reduced, full, rtol=1e-6, atol=1e-6 * full.abs().max())


def test_distorted_copies_are_uint8_digits():
    x, _ = blobs(4, 28)
    out = svm.distorted_copies(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == (8, 28, 28) and out.dtype == torch.uint8
    assert not torch.equal(out[:4], x)


def test_translated_copies_move_each_image_one_pixel_in_each_direction():
    x = torch.zeros(2, 28, 28, dtype=torch.uint8)
    x[0, 10, 12], x[1, 0, 27] = 200, 90  # the second one's ink sits in a corner: moved out, it is lost
    out = svm.translated_copies(x)
    assert out.shape == (8, 28, 28) and out.dtype == torch.uint8
    for k, (dy, dx) in enumerate(svm.SHIFTS):
        assert out[k * 2, 10 + dy, 12 + dx] == 200 and out[k * 2].sum() == 200
    assert [int(out[k * 2 + 1].sum()) for k in range(4)] == [0, 90, 90, 0]  # right and up leave the field


def test_virtual_svm_refuses_an_unknown_kind_of_copy():
    x, y = blobs(40, 28)
    with pytest.raises(ValueError, match="virtual must be"):
        svm.VirtualSVM(x, y, degree=2, c=10.0, virtual="rotations")
    with pytest.raises(ValueError, match="make 4 copies"):
        svm.VirtualSVM(x, y, degree=2, c=10.0, copies=2, virtual="translations")


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


def test_a_smaller_reduced_set_is_the_start_of_a_larger_one():
    """The SVM study's report reduces once to the largest count: each smaller count is exactly what a
    run to that count gives."""
    g = torch.Generator().manual_seed(1)
    vectors, coef = torch.rand(30, 5, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    k = functools.partial(svm.kernel, gamma=0.5, degree=3)
    path = svm.reduce_pair(vectors.numpy(), coef.numpy(), k, [2, 4])
    for (z, beta), size in zip(path, (2, 4)):
        (z1, beta1), = svm.reduce_pair(vectors.numpy(), coef.numpy(), k, [size])
        assert z.shape == (size, 5) and np.array_equal(z, z1) and np.array_equal(beta, beta1)


def test_the_svm_rows_are_what_the_svm_study_chose():
    """Per degree the version, kernel and C of the SVM rows, and the pairwise classifier's version, are
    the pre-registered study's choices on the validation split (make svm-search)."""
    decision = json.loads((ROOT / "results" / "svm_search" / "decision.json").read_text())
    assert svm.CHOSEN == {int(d): c for d, c in decision["svm"].items()}
    assert classical.PAIRWISE_VERSION == decision["pairwise"] == classical.get("pairwise").version
    for name, degree in (("svm-poly4", 4), ("rs-svm-poly5", 5), ("v-svm-poly9-dist", 9)):
        assert classical.get(name).version == svm.CHOSEN[degree]["version"]


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
