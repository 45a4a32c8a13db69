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
from repro.sdlm import eps_stats, hessian_diagonal, step_sizes


def slope(a):
    return paper.SQUASH_A * paper.SQUASH_S * (1 - math.tanh(paper.SQUASH_S * a) ** 2)


def explicit_loop_h(model, x1):
    """Appendix C's formulas for one pattern, connection by connection, in plain Python/numpy."""
    record, _ = model.trace(x1)
    acts = {n: a[0].detach().numpy() for n, _, a in record}
    ins = {n: xi[0].detach().numpy() for n, xi, _ in record}
    P = {k: v.detach().numpy() for k, v in model.named_parameters()}
    h = {k: np.zeros_like(v) for k, v in P.items()}

    d2x = np.full(84, 2.0)  # eq. 8 boundary at F6's outputs
    # F6: 84 units, 120 inputs each, plus bias
    a, xin = acts["f6"], ins["f6"].reshape(-1)
    d2a = np.array([slope(a[i]) ** 2 * d2x[i] for i in range(84)])
    d2x = np.zeros(120)
    for i in range(84):
        h["f6.bias"][i] += d2a[i]
        for j in range(120):
            h["f6.weight"][i, j] += d2a[i] * xin[j] ** 2
            d2x[j] += P["f6.weight"][i, j] ** 2 * d2a[i]
    d2x = d2x.reshape(120, 1, 1)

    def conv(name, d2x_out, kernels_of_map):
        """kernels_of_map[m] = [(input map, weight key index)]: loops over units and their connections."""
        a, xin = acts[name], ins[name]
        maps, H, W = a.shape
        d2in = np.zeros_like(xin)
        w = P[f"{name}.weight"]
        for m in range(maps):
            for p in range(H):
                for q in range(W):
                    d2a = slope(a[m, p, q]) ** 2 * d2x_out[m, p, q]
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
        coef = P[f"{name}.weight"]
        for m in range(maps):
            for p in range(H):
                for q in range(W):
                    d2a = slope(a[m, p, q]) ** 2 * d2x_out[m, p, q]
                    h[f"{name}.bias"][m] += d2a
                    for u in range(2):
                        for v in range(2):
                            h[f"{name}.weight"][m] += d2a * xin[m, 2 * p + u, 2 * q + v] ** 2
                            d2in[m, 2 * p + u, 2 * q + v] += coef[m] ** 2 * d2a
        return d2in

    d2x = conv("c5", d2x, [[(i, (m, i)) for i in range(16)] for m in range(120)])
    d2x = subsample("s4", d2x)
    k, c3_kernels = 0, []
    for inputs in paper.C3_TABLE:
        c3_kernels.append([(i, (k + n,)) for n, i in enumerate(inputs)])
        k += len(inputs)
    d2x = conv("c3", d2x, c3_kernels)
    d2x = subsample("s2", d2x)
    conv("c1", d2x, [[(0, (m, 0))] for m in range(6)])
    return h


@pytest.mark.parametrize("variant", ["paper", "paper-literal"])
def test_hessian_pass_matches_explicit_loops(variant):
    torch.manual_seed(0)
    model = LeNet5(get_config(variant), seed=1).double()
    average = model.config.subsampling_input == "average"
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    labels = torch.tensor([3, 7])
    h = hessian_diagonal(model, x, labels, make_loss(model.config), "paper")
    if average:  # the loops above add the four inputs: fold the 1/4 into the coefficients
        for name in ("s2", "s4"):
            getattr(model, name).weight.data *= 0.25
            getattr(model, name).scale.fill_(1.0)
    loops = [explicit_loop_h(model, x[n:n + 1]) for n in range(2)]
    for key, value in h.items():
        expected = (loops[0][key] + loops[1][key]) / 2
        if key in ("s2.weight", "s4.weight") and average:
            expected = expected / 16  # h of the coefficient w is (1/4)^2 h of the coefficient w/4
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
