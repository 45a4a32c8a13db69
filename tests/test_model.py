"""The network against Sec. II-B: counts, Table I set by set, prototypes, initialisation, gradients."""
import pytest
import torch
from torch.func import functional_call

from repro import LeNet5, get_config, paper, predict
from repro.config import VARIANTS
from repro.layers import (Convolution, EuclideanRBF, NegatedLinear, ScaledTanh, SparseConvolution, init_paper_,
                          param_count)
from repro.model import LAYER_NAMES, build
from repro.prototypes import prototypes
from repro.tables import layer_rows


@pytest.fixture(scope="module")
def model():
    return LeNet5()


def test_layer_counts_match_paper(model):
    rows = {r["layer"]: r for r in layer_rows(model)}
    assert list(rows) == list(paper.LAYERS)
    for name, facts in paper.LAYERS.items():
        assert rows[name]["maps"] == facts["maps"], name
        assert rows[name]["params"] == facts["params"], name
        assert rows[name]["connections"] == facts["connections"], name
    assert param_count(model) == paper.TOTAL_PARAMS == 60_000
    assert sum(r["connections"] for r in rows.values()) == paper.TOTAL_CONNECTIONS == 340_908


def test_c3_stores_only_table_kernels(model):
    assert model.c3.weight.shape == (60, 5, 5) and model.c3.bias.shape == (16,)
    assert param_count(model.c3) == 1_516


def test_c3_connectivity_by_probing(model):
    """Change one S2 map and see which C3 maps move: must be exactly Table I's column sets."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 14, 14)
    base = model.c3(x)
    for i in range(6):
        bumped = x.clone()
        bumped[0, i] += torch.randn(14, 14)
        moved = {m for m in range(16) if not torch.equal(model.c3(bumped)[0, m], base[0, m])}
        assert moved == {m for m, inputs in enumerate(paper.C3_TABLE) if i in inputs}, f"S2 map {i}"


def test_c3_table_sets():
    assert [set(s) for s in paper.C3_TABLE[:6]] == [{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {0, 4, 5}, {0, 1, 5}]
    assert [set(s) for s in paper.C3_TABLE[6:12]] == [{0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {0, 3, 4, 5},
                                                       {0, 1, 4, 5}, {0, 1, 2, 5}]
    assert [set(s) for s in paper.C3_TABLE[12:]] == [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, set(range(6))]


def test_c5_is_a_convolution(model):
    """On a larger input C5's maps grow beyond 1x1 (Sec. II-B)."""
    record, _ = model.trace(torch.zeros(1, 1, 32, 32))
    assert dict((n, a.shape) for n, _, a in record)["c5"] == (1, 120, 1, 1)
    big = torch.zeros(1, 1, 36, 36)
    assert model.c5(model.s4(model.c3(model.s2(model.c1(big))))).shape == (1, 120, 2, 2)


def test_prototypes(model):
    p = prototypes()
    assert p.shape == (10, 84)
    assert set(p.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(r.tolist()) for r in p}) == 10
    assert not any(True for _ in model.output.parameters())
    assert torch.equal(model.output.prototypes, p)


def test_squashing_function():
    f = ScaledTanh()
    assert f(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([1.0, -1.0], abs=1e-4)
    assert f(torch.tensor([100.0])).item() == pytest.approx(paper.SQUASH_A)


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_paper_initialisation_ranges(power):
    m = LeNet5(get_config(init_fan_power=power), seed=3)
    fan = {"c1": [25] * 6, "s2": [4] * 6, "s4": [4] * 16, "c5": [400] * 120, "f6": [120] * 84,
           "c3": [len(s) * 25 for s in paper.C3_TABLE]}
    for name, fans in fan.items():
        layer = getattr(m, name)
        bounds = torch.tensor([paper.INIT_SCALE / f ** power for f in fans])
        b = layer.bias.detach()
        assert (b.abs() <= bounds).all(), name
        w = layer.weight.detach()
        if isinstance(layer, SparseConvolution):
            per_kernel = torch.tensor([bounds[mm] for mm, s in enumerate(paper.C3_TABLE) for _ in s])
            assert (w.abs() <= per_kernel.view(-1, 1, 1)).all()
            assert (w.abs().amax((1, 2)) > 0.8 * per_kernel).all()  # 25 draws per kernel reach near the bound
        else:
            wb = bounds.view(-1, *[1] * (w.dim() - 1))
            assert (w.abs() <= wb).all(), name
            assert w.abs().max() > 0.8 * bounds.max(), name


def test_seed_gives_same_weights():
    a, b, c = LeNet5(seed=1), LeNet5(seed=1), LeNet5(seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.c1.weight, c.c1.weight)


def _gradcheck_layer(layer, x):
    layer = layer.double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    fn = lambda x, *ps: functional_call(layer, dict(zip(names, ps)), (x,))
    assert torch.autograd.gradcheck(fn, (x.double().requires_grad_(True), *params))


def test_gradcheck_custom_layers():
    torch.manual_seed(0)
    m = LeNet5()
    _gradcheck_layer(m.c1, torch.randn(2, 1, 9, 9))
    _gradcheck_layer(m.s2, torch.randn(1, 6, 4, 4))
    _gradcheck_layer(m.c3, torch.randn(1, 6, 6, 6))
    # C5 is C1's class (Convolution: F.conv2d) with 16 input maps and 48,120 weights, whose finite
    # differences took most of this test's time; 3 input maps run the same code, with several input maps
    # and a 1x1 output as C5's.
    c5 = Convolution(3, 4)
    init_paper_(c5)
    _gradcheck_layer(c5, torch.randn(1, 3, 5, 5))
    _gradcheck_layer(m.f6, torch.randn(2, 120, 1, 1))
    _gradcheck_layer(EuclideanRBF(prototypes()), torch.randn(2, 84))
    head = NegatedLinear(84, 10)
    init_paper_(head)
    _gradcheck_layer(head, torch.randn(2, 84))
    _gradcheck_layer(ScaledTanh(), torch.randn(3, 5))


def paper_scaled(n, seed=0):
    """Random images in the paper's input scaling: background -0.1 with its 2-pixel margin, each image's
    28x28 box inked (1.175) at a random density of its own (so that the classes vary)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 32, 32), -0.1)
    ink = torch.rand(n, 1, 28, 28, generator=g) < torch.rand(n, 1, 1, 1, generator=g)
    x[..., 2:30, 2:30] = torch.where(ink, torch.tensor(1.175), torch.tensor(-0.1))
    return x


def test_predict_is_argmin_of_penalties(model):
    x = paper_scaled(5)
    assert torch.equal(predict(model, x), model(x).argmin(1))
    # An F6 output equal to prototype d gives penalty 0 for d: the RBF must pick it.
    p = prototypes()
    assert model.output(p).argmin(1).tolist() == list(range(10))


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(1, 32, 32), "shape"),
    (torch.zeros(1, 1, 28, 28), "32, 32"),
    (torch.zeros(1, 3, 32, 32), "shape"),
    (torch.zeros(1, 1, 32, 32, dtype=torch.uint8), "floating-point"),
    (torch.zeros(1, 1, 32, 32, dtype=torch.float64), r"parameters are float32 but the images are float64.*x\.to"),
    ([[0.0]], "torch.Tensor"),
])
def test_bad_input_is_a_clear_error(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model(bad)


def test_images_of_another_float_dtype_are_a_clear_error():
    double = LeNet5().double()
    for run in (double, double.trace):
        with pytest.raises(ValueError, match="parameters are float64 but the images are float32"):
            run(torch.zeros(1, 1, 32, 32))
    assert double(torch.zeros(2, 1, 32, 32, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="parameters are float32 but the images are float64"):
        LeNet5().trace(torch.zeros(1, 1, 32, 32, dtype=torch.float64))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_are_refused(model, value):
    """A NaN pixel would give NaN penalties and class 0, an infinite one some class."""
    x = torch.zeros(300, 1, 32, 32)
    x[17, 0, 3, 4] = x[200, 0, 31, 31] = value
    # predict in chunks of 100 still counts and indexes the whole batch
    for run in (model, model.trace, model.predict, lambda x: predict(model, x, batch=100)):
        with pytest.raises(ValueError, match=r"LeNet5 got 2 of 300 images with NaN or infinite pixels "
                                             r"\(the first: image 17\)"):
            run(x)


def test_predict_in_chunks_gives_the_classes_of_one_pass():
    model = LeNet5(get_config(init_scale=10.0))  # untrained at the paper's scale, every image would get one class
    x = paper_scaled(300)
    whole = model(x).argmin(1)
    assert len(whole.unique()) >= 5
    assert torch.equal(model.predict(x, batch=64), whole)  # 4 chunks of 64 and one of 44
    assert torch.equal(predict(model, x, batch=7), whole)
    assert predict(model, x[:0]).shape == (0,)


def test_variants_counts():
    assert param_count(LeNet5(get_config(c3="full")).c3) == 2_416
    assert param_count(LeNet5(get_config("modern"))) == 61_706
    for name in VARIANTS:
        build(get_config(name))(torch.zeros(2, 1, 32, 32))


def test_layer_names():
    assert LAYER_NAMES == ("c1", "s2", "c3", "s4", "c5", "f6", "output")


def test_distant_codes_are_farther_apart_than_the_bitmaps():
    """The distant-codes ablation (A4): +-1 codes 40 to 42 apart, where the bitmaps put 0 and 6 11 apart."""
    hamming = lambda p: (p[:, None] != p[None]).sum(-1)[~torch.eye(10, dtype=torch.bool)]
    codes, bitmaps = prototypes("distant"), prototypes()
    assert codes.shape == bitmaps.shape == (10, 84) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert (hamming(codes).min(), hamming(codes).max(), hamming(bitmaps).min()) == (40, 42, 11)
    assert torch.equal(LeNet5(get_config("distant-codes")).output.prototypes, codes)
