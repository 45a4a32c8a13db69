"""The networks of Sec. III-C other than LeNet-5 (repro/networks.py): their counts against the
paper's, their native step against PyTorch's, and their configs' limits."""
import pytest
import torch

from repro import layers, networks, paper
from repro.config import Config
from repro.data import to_field
from repro.model import Network, build
from repro.step import make_step
from repro.tables import layer_rows
from repro.train import crop
from conftest import needs_native

NAMES = sorted(networks.NETWORKS)


def counts(name):
    return {r["layer"]: (r["params"], r["connections"]) for r in layer_rows(Network(Config(network=name)))}


def test_lenet1_layers_are_the_1990_network():
    """16x16 digits in a 28x28 field; 5x5 kernels; C3 has 20 kernels (8 maps on two S2 maps, 4 on one)."""
    assert counts("lenet1") == {
        "C1": (4 * 26, 4 * 24 * 24 * 26),
        "S2": (4 * 2, 4 * 12 * 12 * 5),
        "C3": (20 * 25 + 12, 8 * 8 * 8 * 51 + 4 * 8 * 8 * 26),
        "S4": (12 * 2, 12 * 4 * 4 * 5),
        "F5": (10 * 193, 10 * 193),
    }
    total = [sum(v) for v in zip(*counts("lenet1").values())]
    assert total == [paper.LENET1["params_1990"], paper.LENET1["connections_1990"]]
    assert abs(total[0] - paper.LENET1["params_about"]) < 100
    assert abs(total[1] - paper.LENET1["connections_about"]) < 2_000


def test_lenet4_layers_match_the_stated_connections_not_the_parameters():
    """LeNet-5's geometry, 8 S2 maps in pairs, C3 maps on 3 of them: about 260,000 connections (A27);
    its parameters are about 3x the stated 17,000, as any 120-unit layer on 16 maps of 5x5 makes them."""
    assert counts("lenet4") == {
        "C1": (4 * 26, 4 * 28 * 28 * 26),
        "S2": (8 * 2, 8 * 14 * 14 * 5),
        "C3": (16 * (3 * 25 + 1), 16 * 10 * 10 * 76),
        "S4": (16 * 2, 16 * 5 * 5 * 5),
        "F5": (120 * 401, 120 * 401),
        "F6": (10 * 121, 10 * 121),
    }
    params, connections = (sum(v) for v in zip(*counts("lenet4").values()))
    assert abs(connections - paper.LENET4["connections_about"]) / paper.LENET4["connections_about"] < 0.01
    assert params > 2.9 * paper.LENET4["params_about"]


def test_lenet4_c3_table_uses_every_s2_map_equally():
    uses = [sum(m in s for s in networks.LENET4_C3) for m in range(8)]
    assert uses == [6] * 8 and all(len(s) == 3 for s in networks.LENET4_C3)


@pytest.mark.parametrize("name, sizes", [("mlp-300", (784, 300, 10)), ("mlp-1000", (784, 1000, 10)),
                                         ("mlp-300-100", (784, 300, 100, 10)), ("mlp-500-150", (784, 500, 150, 10)),
                                         ("mlp-300-deslant", (400, 300, 10))])
def test_fully_connected_networks_have_the_weights_of_their_names(name, sizes):
    """Fig. 12's variables: 123,310 for 20x20-300-10, 795,010 for 28x28-1000-10, ..."""
    expected = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    assert sum(p for p, _ in counts(name).values()) == expected
    assert Network(Config(network=name)).field ** 2 == sizes[0]


def test_lenet4_s2_maps_read_their_c1_map_in_pairs():
    s2 = Network(Config(network="lenet4")).s2
    assert s2.sources.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    x = torch.randn(2, 4, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        s2.weight.copy_(torch.arange(1.0, 9.0))
        s2.bias.zero_()
    y = s2(x)
    pooled = x.view(2, 4, 14, 2, 14, 2).sum((3, 5)) * 0.25
    assert torch.allclose(y[:, 1], 2 * pooled[:, 0]) and torch.allclose(y[:, 6], 7 * pooled[:, 3])


def test_subsampling_in_pairs_gradients():
    layer = layers.Subsampling(8, average=True, in_maps=4).double()
    torch.nn.init.uniform_(layer.weight, -1, 1)
    torch.nn.init.uniform_(layer.bias, -1, 1)
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,)),
                                    (x, layer.weight.detach().requires_grad_(), layer.bias.detach().requires_grad_()))


def test_place_code_output_picks_the_largest_unit():
    net = Network(Config(network="mlp-300-deslant"))
    units = torch.randn(50, 10)
    assert torch.equal(net.output(units).argmin(1), units.argmax(1))
    assert torch.equal(networks.place_code(), 2 * torch.eye(10) - 1)


@needs_native
@pytest.mark.parametrize("name", NAMES)
def test_native_step_matches_pytorch(name):
    """The online step (losses, penalties, updated weights) and the curvature pass of network_step.c
    against the eager PyTorch step and repro.sdlm's pass, in float64."""
    config = Config(network=name)
    model = build(config, seed=3).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, model.field, model.field, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (5,), generator=g)
    native, _ = make_step(config)
    eager, _ = make_step(config, fast=False)
    assert native.kind == "native"
    eager.template.double()
    a = {k: p.detach().clone() for k, p in model.named_parameters()}
    b = {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters()}
    eps = {k: torch.full_like(p, 0.01) for k, p in a.items()}
    (la, ya), (lb, yb) = native(a, eps, x, y), eager(b, eps, x, y)
    assert torch.allclose(la, lb, rtol=1e-12, atol=1e-12) and torch.allclose(ya, yb, rtol=1e-12, atol=1e-12)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-12, atol=1e-14), k
    for boundary in ("paper", "exact"):
        ha = native.curvature(a, x, y, boundary)
        hb = eager.curvature({k: v.detach() for k, v in a.items()}, x, y, boundary)
        for k in ha:
            assert torch.allclose(ha[k], hb[k], rtol=1e-10, atol=1e-14), (boundary, k)


def test_native_step_refuses_the_wrong_image_size():
    step, _ = make_step(Config(network="lenet1"))
    params = {k: p.detach() for k, p in build(Config(network="lenet1")).named_parameters()}
    with pytest.raises(ValueError, match=r"Network expects images of shape \(N, 1, 28, 28\)"):
        step.forward(params, torch.zeros(2, 1, 32, 32))


def test_configs_of_other_networks_keep_the_paper_layers():
    with pytest.raises(ValueError, match="unknown network|expected one of"):
        Config(network="lenet3")
    with pytest.raises(ValueError, match="LeNet-5's ablations"):
        Config(network="mlp-300", activation="relu")
    with pytest.raises(ValueError, match="distortions are drawn on the regular"):
        Config(network="lenet1", distortions="paper")
    Config(network="mlp-300", distortions="paper")  # the regular networks take them


def test_fields_centre_the_digits():
    """A 16x16 digit sits in the middle of LeNet-1's 28x28 field; the 28x28 networks read the centre
    of LeNet-5's padded 32x32 images, i.e. the MNIST images themselves."""
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    x = to_field(img, 28)
    assert x.shape == (3, 1, 28, 28) and torch.equal(x[:, 0, 6:22, 6:22], to_field(img, 16)[:, 0])
    assert (x[:, 0, :6] == -0.1).all()
    mnist = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    assert torch.equal(crop(to_field(mnist, 32), Config(network="mlp-300")), to_field(mnist, 28))
    with pytest.raises(ValueError, match="cannot be centred"):
        to_field(img, 27)


@needs_native
@pytest.mark.parametrize("name", ["lenet4", "mlp-300-100"])
def test_every_instruction_set_gives_the_same_bits(name):
    """network_step.c built for each instruction set this CPU runs: identical curvature, weights
    after 200 online steps, losses and penalties (tests/test_native.py does the same for LeNet-5)."""
    import hashlib
    from repro import native
    from repro.sdlm import step_sizes
    from test_native import ARCHS
    config = Config(network=name)
    g = torch.Generator().manual_seed(0)
    model = build(config, seed=0)
    x = torch.rand(200, 1, model.field, model.field, generator=g) * 1.275 - 0.1
    y = torch.randint(0, 10, (200,), generator=g)
    prints = set()
    for arch in ARCHS:
        params = {k: p.detach().clone() for k, p in model.named_parameters()}
        step = native.NetworkStep(model, arch=arch)
        h = step.curvature(params, x[:50], y[:50], "exact")
        losses, penalties = step(params, step_sizes(h, config.eta[0], config.mu), x, y)
        digest = hashlib.sha256()
        for t in [*h.values(), *params.values(), losses, penalties]:
            digest.update(t.numpy().tobytes())
        prints.add(digest.hexdigest())
    assert len(prints) == 1
