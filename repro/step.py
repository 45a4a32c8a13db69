"""The online step: one pattern's forward pass, loss, gradient and update w_k <- w_k - eps_k dE/dw_k.

A pure function of (parameters, step sizes, image, label): `params` and `eps` are dicts keyed by
parameter name; the parameters are updated in place, and the loss and the penalties computed
before the update are returned (for the on-the-fly training error of Fig. 5).

Two implementations of the same mathematics:
- eager: `functional_call` plus `torch.autograd.grad`, the plain PyTorch way;
- compiled: the same step written with `torch.func.grad_and_value` so that `torch.compile` can turn
  forward, backward and update into one graph, free of per-operator dispatch at batch size 1.
The compiled step closes over no trainable state, so one compilation serves every run of the same
network shape and loss: it is cached per (network config, loss, device). If compilation fails or is
unavailable (no C++ compiler, an unsupported platform), `make_step` warns once and returns the eager
step. `tests/test_step.py` checks the two agree.
"""
import time
import warnings

import torch
from torch.func import functional_call, grad_and_value

from .config import Config
from .loss import make_loss
from .model import LeNet5

_COMPILED = {}
_NETWORK_FIELDS = ("activation", "subsampling", "subsampling_input", "c3", "output", "loss", "j")


def eager_step(template, loss_fn):
    def step(params, eps, x, label):
        y = functional_call(template, params, (x,))
        loss = loss_fn(y, label)
        leaves = list(params.values())
        grads = torch.autograd.grad(loss, leaves)
        with torch.no_grad():
            torch._foreach_addcmul_(leaves, grads, [eps[k] for k in params], value=-1)
        return loss.detach(), y.detach()
    return step


def functional_step(template, loss_fn):
    def loss_and_penalties(params, x, label):
        y = functional_call(template, params, (x,))
        return loss_fn(y, label), y

    gradient = grad_and_value(loss_and_penalties, has_aux=True)

    def step(params, eps, x, label):
        grads, (loss, y) = gradient(params, x, label)
        with torch.no_grad():
            for k, p in params.items():
                p.sub_(eps[k] * grads[k])
        return loss.detach(), y.detach()
    return step


def make_step(config: Config, device="cpu", compile=True):
    """(step, seconds spent compiling now: 0 when eager or cached)."""
    template = LeNet5(config).to(device)
    loss_fn = make_loss(config)
    if not compile:
        return eager_step(template, loss_fn), 0.0
    key = (tuple(getattr(config, f) for f in _NETWORK_FIELDS), str(device))
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    compiled = torch.compile(functional_step(template, loss_fn), fullgraph=True, dynamic=False)
    params = {k: p.detach().clone().requires_grad_(True) for k, p in template.named_parameters()}
    eps = {k: torch.zeros_like(p) for k, p in params.items()}
    t0 = time.perf_counter()
    try:
        compiled(params, eps, torch.zeros(1, 1, 32, 32, device=device), torch.zeros(1, dtype=torch.long, device=device))
    except Exception as e:  # noqa: BLE001 - whatever broke in the compiler, training can go on eagerly
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                      "training with the eager step instead", RuntimeWarning)
        compiled = eager_step(template, loss_fn)
    _COMPILED[key] = compiled
    return compiled, time.perf_counter() - t0
