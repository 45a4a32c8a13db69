"""The native code (repro/native.py): the same bits whatever instruction set it is built for, and
the same mathematics as the PyTorch reference for the curvature pass, the gradient, Adam and the
distortions. (The online step against the eager one: tests/test_step.py.)"""
import hashlib
import platform

import pytest
import torch
from torch.func import functional_call

from repro import LeNet5, get_config, native
from repro.distortions import random_affine, resample
from repro.loss import make_loss
from repro.sdlm import hessian_diagonal, step_sizes
from repro.step import Adam, make_step
from conftest import needs_native
from test_step import ONLINE

pytestmark = needs_native


def cpu_flags():
    try:
        return set(next(line.split() for line in open("/proc/cpuinfo") if line.startswith("flags")))
    except (OSError, StopIteration):
        return set()


# Instruction sets this CPU can run: the baseline, SSE4.2, AVX2 + FMA (the default build), AVX-512.
ARCHS = [a for a, needs in [("x86-64", set()), ("x86-64-v2", {"sse4_2"}), ("x86-64-v3", {"avx2", "fma"}),
                            ("x86-64-v4", {"avx512f", "avx512bw", "avx512dq", "avx512vl"})] if needs <= cpu_flags()]


def fingerprint(variant, arch, x, y):
    """sha256 of the curvature, the parameters after 300 online steps, the losses and penalties."""
    config = get_config(variant)
    model = LeNet5(config, seed=0)
    params = {k: p.detach() for k, p in model.named_parameters()}
    step = native.LeNet5Step(model, arch=arch)
    h = step.curvature(params, x[:100], y[:100], "exact" if config.output == "rbf" else "paper")
    eps = step_sizes(h, config.eta[0], config.mu)
    losses, _ = step(params, eps, x, y)
    test_losses, penalties = step.evaluate(params, x[:200], y[:200])
    digest = hashlib.sha256()
    for t in [*h.values(), *params.values(), losses, test_losses, penalties]:
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the instruction-set builds are x86-64's")
@pytest.mark.parametrize("variant", ["paper", "max-pool", "modern+sdlm", "average-pool"])
def test_every_instruction_set_gives_the_same_bits(variant, mnist):
    """Vector width and instruction choice change nothing: the results are fixed by the C source."""
    x, y = mnist["train_x"][:300], mnist["train_y"][:300]
    prints = {arch: fingerprint(variant, arch, x, y) for arch in ARCHS}
    assert len(set(prints.values())) == 1, prints


@pytest.mark.parametrize("boundary", ["paper", "exact"])
@pytest.mark.parametrize("variant", ONLINE)
def test_curvature_matches_the_pytorch_pass(variant, boundary, mnist):
    config = get_config(variant, boundary=boundary)
    model = LeNet5(config, seed=3).double()
    x, y = mnist["train_x"][:20].double(), mnist["train_y"][:20]
    step, _ = make_step(config)
    h = step.curvature({k: p.detach() for k, p in model.named_parameters()}, x, y, boundary)
    expected = hessian_diagonal(model, x, y, make_loss(config), boundary)
    for k in expected:
        torch.testing.assert_close(h[k], expected[k], rtol=1e-10, atol=1e-14, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("variant", ["paper", "modern", "modern+rbf", "max-pool"])
def test_gradient_sums_what_autograd_gives(variant, mnist):
    config = get_config(variant)
    model = LeNet5(config, seed=1).double()
    x, y = mnist["train_x"][:16].double(), mnist["train_y"][:16]
    params = {k: p.detach() for k, p in model.named_parameters()}
    before = {k: v.clone() for k, v in params.items()}
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    step, _ = make_step(config)
    losses, _ = step.gradient(params, grads, x, y)
    loss_fn = make_loss(config)
    torch.testing.assert_close(losses, loss_fn(model(x), y, per_pattern=True).detach(), rtol=0, atol=1e-12)
    expected = torch.autograd.grad(loss_fn(model(x), y) * len(x), list(model.parameters()))
    for (k, g), e in zip(grads.items(), expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12, msg=lambda m: f"{k}: {m}")
        assert torch.equal(params[k], before[k])  # the gradient mode leaves the weights alone


def test_adam_matches_torch_optim_adam(mnist):
    config = get_config("modern", lr=3e-3)
    x, y = mnist["train_x"][:96].double(), mnist["train_y"][:96]
    step, _ = make_step(config)
    runs = []
    for use_native in (True, False):
        model = LeNet5(config, seed=0).double()
        params = {k: p.detach().requires_grad_(not use_native) for k, p in model.named_parameters()}
        if use_native:
            adam = Adam(step, params, config.lr)
        else:
            adam = torch.optim.Adam(params.values(), lr=config.lr)
        for i in range(0, 96, 32):
            if use_native:
                adam(x[i:i + 32], y[i:i + 32])
            else:
                adam.zero_grad()
                make_loss(config)(functional_call(model, params, (x[i:i + 32],)), y[i:i + 32]).backward()
                adam.step()
        runs.append(params)
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k].detach(), rtol=0, atol=1e-10, msg=lambda m: f"{k}: {m}")


def test_distortions_match_grid_sample(mnist):
    x = mnist["train_x"][:200]
    theta = random_affine(len(x), torch.Generator().manual_seed(0))
    torch.testing.assert_close(native.distort_images(x, theta, -0.1), resample(x, theta), rtol=0, atol=1e-5)


def test_bad_parameters_and_labels_are_clear_errors():
    config = get_config("paper")
    step, _ = make_step(config)
    params = {k: p.detach() for k, p in LeNet5(config).named_parameters()}
    eps = {k: torch.full_like(v, 1e-4) for k, v in params.items()}
    x = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match="must have the entries"):
        step(dict(list(params.items())[:-1]), eps, x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"of shape \(60, 5, 5\)"):
        step(dict(params, **{"c3.weight": torch.zeros(96, 5, 5)}), eps, x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="label 10 of pattern 1 is not a class"):
        step(params, eps, x, torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="label -1 of pattern 0"):
        step.curvature(params, x, torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match="2 images need 2 labels"):
        step.evaluate(params, x, torch.tensor([1, 2, 3]))


def test_a_struct_that_disagrees_with_the_c_layout_is_refused(monkeypatch):
    import ctypes

    def short_struct(real):
        class Net(ctypes.Structure):
            _fields_ = [("act", ctypes.c_int), ("prototypes", ctypes.c_void_p)]
        return Net
    monkeypatch.setattr(native, "net_struct", short_struct)
    monkeypatch.setattr(native, "_LIBRARIES", {})
    with pytest.raises(native.NativeUnavailable, match="layout"):
        native.library(torch.float32)
