"""The Gauss-Newton Hessian-diagonal pass (Appendix C) against two independent computations."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from repro import LeNet5, get_config, paper
from repro.layers import EuclideanRBF, FullConnection, Identity, init_paper_
from repro.loss import make_loss, map_loss, ml_loss
from repro.model import trace
from repro.prototypes import prototypes
from repro.sdlm import below_mu, eps_stats, hessian_diagonal, step_sizes


def slope(a):
    return paper.SQUASH_A * paper.SQUASH_S * (1 - math.tanh(paper.SQUASH_S * a) ** 2)


def relu_slope(a):
    return 1.0 if a > 0 else 0.0


def identity_slope(a):
    return 1.0


def explicit_loop_h(model, x1):
    """Appendix C's formulas for one pattern, connection by connection, in plain Python/numpy.

    Read from model.config, not from the layers: the activation (scaled tanh, or ReLU with slope 0/1),
    the pooling (trainable subsampling w * (1 or 1/4) * sum + b then the activation; plain average
    pooling, 1/4 on each input, no parameters, no activation; max pooling, the window's first maximum
    copied, no parameters, no activation), C3's table (Table I or full) and the head (RBF with the
    eq. 8 boundary 2 at F6's outputs, or the linear head under softmax/cross-entropy, whose boundary
    at the penalties is p(1 - p) with p = softmax(-y))."""
    config = model.config
    record, _ = model.trace(x1)
    acts = {n: a[0].detach().numpy() for n, _, a in record}
    ins = {n: xi[0].detach().numpy() for n, xi, _ in record}
    P = {k: v.detach().numpy() for k, v in model.named_parameters()}
    h = {k: np.zeros_like(v) for k, v in P.items()}
    f_slope = {"scaled_tanh": slope, "relu": relu_slope}[config.activation]

    def full(name, d2a_out, f):
        """A full connection: d2a_out[i] = d2E/da_i^2 of its units, f the slope after it (None: none)."""
        a, xin, w = acts[name], ins[name].reshape(-1), P[f"{name}.weight"]
        units, inputs = w.shape
        d2in = np.zeros(inputs)
        for i in range(units):
            d2a = (f(a[i]) ** 2 if f else 1.0) * d2a_out[i]
            h[f"{name}.bias"][i] += d2a
            for j in range(inputs):
                h[f"{name}.weight"][i, j] += d2a * xin[j] ** 2
                d2in[j] += w[i, j] ** 2 * d2a  # the linear head's -1 squares to 1
        return d2in

    if config.output == "rbf":
        d2x = np.full(84, 2.0)  # eq. 8 boundary at F6's outputs
    else:  # softmax/cross-entropy on the logits -y: the exact diagonal p(1 - p) at the penalties y
        z = -acts["output"]
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        d2x = full("output", p * (1 - p), None)
    d2x = full("f6", d2x, f_slope).reshape(120, 1, 1)

    def conv(name, d2x_out, kernels_of_map):
        """kernels_of_map[m] = [(input map, weight key index)]: loops over units and their connections."""
        a, xin = acts[name], ins[name]
        maps, H, W = a.shape
        d2in = np.zeros_like(xin)
        w = P[f"{name}.weight"]
        for m in range(maps):
            for p in range(H):
                for q in range(W):
                    d2a = f_slope(a[m, p, q]) ** 2 * d2x_out[m, p, q]
                    h[f"{name}.bias"][m] += d2a
                    for i, key in kernels_of_map[m]:
                        for u in range(5):
                            for v in range(5):
                                h[f"{name}.weight"][key + (u, v)] += d2a * xin[i, p + u, q + v] ** 2
                                d2in[i, p + u, q + v] += w[key + (u, v)] ** 2 * d2a
        return d2in

    def subsample(name, d2x_out):
        a, xin = acts[name], ins[name]
        maps, H, W = a.shape
        d2in = np.zeros_like(xin)
        scale = 0.25 if config.subsampling_input == "average" else 1.0  # a = w * scale * (sum of 4) + b
        for m in range(maps):
            for p in range(H):
                for q in range(W):
                    window = [(2 * p + u, 2 * q + v) for u in range(2) for v in range(2)]  # row by row
                    if config.subsampling == "trainable":
                        d2a = f_slope(a[m, p, q]) ** 2 * d2x_out[m, p, q]
                        coef = P[f"{name}.weight"][m] * scale
                        h[f"{name}.bias"][m] += d2a
                        for r, c in window:
                            h[f"{name}.weight"][m] += d2a * (scale * xin[m, r, c]) ** 2
                            d2in[m, r, c] += coef ** 2 * d2a
                    elif config.subsampling == "average":  # 1/4 on each input; identity after it
                        d2a = identity_slope(a[m, p, q]) ** 2 * d2x_out[m, p, q]
                        for r, c in window:
                            d2in[m, r, c] += 0.25 ** 2 * d2a
                    else:  # max: the output copies the first of the window's largest inputs (coefficient 1)
                        d2a = identity_slope(a[m, p, q]) ** 2 * d2x_out[m, p, q]
                        values = [xin[m, r, c] for r, c in window]
                        r, c = window[values.index(max(values))]
                        assert xin[m, r, c] == a[m, p, q]
                        d2in[m, r, c] += 1.0 ** 2 * d2a
        return d2in

    d2x = conv("c5", d2x, [[(i, (m, i)) for i in range(16)] for m in range(120)])
    d2x = subsample("s4", d2x)
    table = paper.C3_TABLE if config.c3 == "table" else [tuple(range(6))] * 16
    k, c3_kernels = 0, []
    for inputs in table:
        c3_kernels.append([(i, (k + n,)) for n, i in enumerate(inputs)])
        k += len(inputs)
    d2x = conv("c3", d2x, c3_kernels)
    d2x = subsample("s2", d2x)
    conv("c1", d2x, [[(0, (m, 0))] for m in range(6)])
    return h


# Every network choice the curvature pass meets; "modern+tanh" and "modern+rbf" put one paper choice
# back into the modern network, "modern+sdlm" is the modern network itself (linear head, ReLU, max
# pooling, full C3) trained by SDLM.
@pytest.mark.parametrize("variant", ["paper", "paper-literal", "relu", "max-pool", "average-pool", "full-c3",
                                     "softmax-ce", "modern+tanh", "modern+rbf", "modern+sdlm"])
def test_hessian_pass_matches_explicit_loops(variant):
    torch.manual_seed(0)
    model = LeNet5(get_config(variant), seed=1).double()
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    labels = torch.tensor([3, 7])
    h = hessian_diagonal(model, x, labels, make_loss(model.config), "paper")
    loops = [explicit_loop_h(model, x[n:n + 1]) for n in range(2)]
    assert set(h) == set(loops[0]) == {k for k, _ in model.named_parameters()}
    for key, value in h.items():
        expected = (loops[0][key] + loops[1][key]) / 2
        assert np.abs(expected).max() > 0, key  # every parameter sees some curvature on these patterns
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-9, atol=1e-12, err_msg=key)


class LinearRBF(nn.Module):
    """A single linear layer without squashing, feeding the RBF output: here Gauss-Newton is exact."""

    def __init__(self):
        super().__init__()
        self.f6 = FullConnection(7, 84)
        init_paper_(self.f6, fan_power=0.5)
        self.output = EuclideanRBF(prototypes())
        self.acts = {"f6": Identity()}

    def stages(self):
        return [("f6", self.f6, self.acts["f6"]), ("output", self.output, None)]

    def trace(self, x):
        return trace(self.stages(), x)


def test_hessian_pass_is_exact_for_linear_layer_under_eq8():
    torch.manual_seed(0)
    model = LinearRBF().double()
    x = torch.randn(5, 7, dtype=torch.float64)
    labels = torch.tensor([0, 3, 3, 9, 1])
    h = hessian_diagonal(model, x, labels, ml_loss, "paper")

    def loss(w, b):
        return ml_loss(model.output(x @ w.T + b), labels)

    w, b = model.f6.weight.detach(), model.f6.bias.detach()
    hw, hb = torch.autograd.functional.hessian(loss, (w, b))[0][0], torch.autograd.functional.hessian(loss, (w, b))[1][1]
    torch.testing.assert_close(h["f6.weight"], hw.reshape(w.numel(), w.numel()).diagonal().reshape(w.shape), rtol=1e-12, atol=0)
    torch.testing.assert_close(h["f6.bias"], hb.diagonal(), rtol=1e-12, atol=0)


def test_exact_boundary_is_two_for_eq8_and_closed_form_for_eq9():
    torch.manual_seed(0)
    model = LeNet5(get_config(init_fan_power=0.5)).double()
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    labels = torch.tensor([1, 2, 3, 4])
    from repro.sdlm import boundary_curvature
    record, _ = model.trace(x)
    d2, skip = boundary_curvature(model, record, labels, ml_loss, "exact")
    assert skip == 1 and torch.allclose(d2, torch.full_like(d2, 2.0))

    j = 1.0
    d2, _ = boundary_curvature(model, record, labels, lambda y, l: map_loss(y, l, j), "exact")
    f6 = record[-1][1]
    y = model.output(f6)
    p = torch.exp(-y) / (math.exp(-j) + torch.exp(-y).sum(1, keepdim=True))  # (N, 10)
    d = f6.unsqueeze(1) - model.output.prototypes  # (N, 10, 84)
    var = (p.unsqueeze(-1) * d ** 2).sum(1) - (p.unsqueeze(-1) * d).sum(1) ** 2
    expected = 2 - 2 * p.sum(1, keepdim=True) + 4 * var
    torch.testing.assert_close(d2, expected)
    assert (d2 >= 0).all()


def test_step_sizes_and_stats():
    h = {"c1.weight": torch.tensor([0.0, 1.0]), "f6.bias": torch.tensor([100.0])}
    eps = step_sizes(h, 5e-4, 0.02)
    assert eps["c1.weight"].tolist() == pytest.approx([5e-4 / 0.02, 5e-4 / 1.02])
    stats = eps_stats(eps)
    assert stats["all"]["max"] == pytest.approx(0.025) and stats["f6"]["min"] == pytest.approx(5e-4 / 100.02)
    # h below mu: 1 of c1's 2 weights, none of f6's; the step of such a weight is within a factor 2 of eta / mu
    assert below_mu(h, 0.02) == {"all": 1 / 3, "c1": 0.5, "f6": 0.0}
    assert 5e-4 / (2 * 0.02) < eps["c1.weight"][0] <= 5e-4 / 0.02


def test_linear_head_curvature_is_the_exact_hessian_and_non_negative():
    """The modern head gives penalties y = -(W x + b): the minus is a coefficient whose square is +1.
    For weights feeding softmax/cross-entropy directly, Gauss-Newton is the exact Hessian diagonal."""
    torch.manual_seed(0)
    config = get_config("softmax-ce")
    model = LeNet5(config).double()
    x = torch.randn(6, 1, 32, 32, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    loss_fn = make_loss(config)
    h = hessian_diagonal(model, x, labels, loss_fn)
    f6 = model.trace(x)[0][-1][1].detach()

    def loss(w, b):
        return loss_fn(-(f6 @ w.T + b), labels)

    w, b = model.output.weight.detach(), model.output.bias.detach()
    hw, hb = (torch.autograd.functional.hessian(loss, (w, b))[i][i] for i in (0, 1))
    torch.testing.assert_close(h["output.weight"], hw.reshape(w.numel(), w.numel()).diagonal().reshape(w.shape), rtol=1e-12, atol=0)
    torch.testing.assert_close(h["output.bias"], hb.diagonal(), rtol=1e-12, atol=0)
    assert all((v >= 0).all() for v in h.values())


def test_max_pooling_curvature_goes_to_the_first_maximum_of_each_window():
    """Ties (ReLU's zeros) go to the first maximum, row by row, as max_pool2d's forward picks it."""
    from repro.layers import MaxPooling
    x = torch.tensor([[[[1.0, 3.0, 0.0, 0.0],
                        [3.0, 2.0, 0.0, 0.0],
                        [-1.0, -2.0, 5.0, 4.0],
                        [-1.0, -3.0, 4.0, 5.0]]]], dtype=torch.float64)
    d2a = torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]], dtype=torch.float64)
    d2x, sums = MaxPooling(1).curvature(x, d2a)
    expected = torch.tensor([[[[0.0, 10.0, 20.0, 0.0],
                               [0.0, 0.0, 0.0, 0.0],
                               [30.0, 0.0, 40.0, 0.0],
                               [0.0, 0.0, 0.0, 0.0]]]], dtype=torch.float64)
    assert sums == {}
    torch.testing.assert_close(d2x, expected, rtol=0, atol=0)
