"""The online step: for each pattern of a block, in order, the forward pass, loss, gradient and update
w_k <- w_k - eps_k dE/dw_k. Online training stays online: pattern i+1 sees the weights pattern i left.

A pure function of (parameters, step sizes, images, labels): `params` and `eps` are dicts keyed by
parameter name; the parameters are updated in place, and each pattern's loss and output penalties,
computed before its own update, are returned (for the on-the-fly training error of Fig. 5).

Three implementations of the same mathematics:
- eager: `functional_call` plus `torch.autograd.grad`, one pattern at a time, the plain PyTorch way;
- native (repro/native/, the CPU default): the whole step written out in C, with the same bits on
  every x86-64 CPU, several times faster than compiled (make bench);
- compiled (CUDA, and CPUs without a C compiler): the same updates written with
  `torch.func.grad_and_value`, BLOCK patterns unrolled into one graph that `torch.compile` turns
  into one C++ function on a CPU (inductor's `cpp_wrapper`), so the per-call costs (guards, Python
  wrapper, dispatch) are paid once per block instead of per pattern.
  Unrolling changes no arithmetic: the parameters after 4,000 patterns are bit-identical to those of
  a compiled single-pattern step (measured; PAPER_NOTES.md, "Speed").
The compiled step closes over no trainable state, so one compilation serves every run of the same
network shape and loss: it is cached per (network config, loss, device) in this process and by
inductor on disk across processes. If compilation fails or is unavailable (no C++ compiler, an
unsupported platform), `make_step` warns once and returns the eager step. `tests/test_step.py` checks
that each agrees with the eager step.
"""
import time
import warnings

import torch
from torch.func import functional_call, grad_and_value

from .config import Config
from .loss import make_loss
from .model import build, check_input
from .native import LeNet5Step, NativeUnavailable, NetworkStep, adam_update
from .native import cpu_specific
from .sdlm import hessian_diagonal

BLOCK = 8  # patterns per compiled call: 4 gives 4,200/s, 8 gives 5,100/s, 16 no more (make bench, 1 core)
_FAST_STEPS = {}  # the fast steps (native or compiled) built in this process, by network, device and build
_NETWORK_FIELDS = ("network", "activation", "subsampling", "subsampling_input", "c3", "output", "prototypes", "loss", "j")


def eager_step(template, loss_fn):
    def step(params, eps, xs, labels):
        leaves, rates = list(params.values()), [eps[k] for k in params]
        losses, outputs = [], []
        for x, label in zip(xs.split(1), labels.split(1)):
            y = functional_call(template, params, (x,))
            loss = loss_fn(y, label)
            grads = torch.autograd.grad(loss, leaves)
            with torch.no_grad():
                torch._foreach_addcmul_(leaves, grads, rates, value=-1)
            losses.append(loss.detach())
            outputs.append(y.detach())
        return torch.stack(losses), torch.cat(outputs)
    return step


def functional_step(template, loss_fn):
    def loss_and_penalties(params, x, label):
        y = functional_call(template, params, (x,))
        return loss_fn(y, label), y

    gradient = grad_and_value(loss_and_penalties, has_aux=True)

    def step(params, eps, xs, labels):
        current, losses, outputs = dict(params), [], []
        for i in range(len(xs)):  # unrolled when compiled: the block size is a static shape
            grads, (loss, y) = gradient(current, xs[i:i + 1], labels[i:i + 1])
            current = {k: w - eps[k] * grads[k] for k, w in current.items()}
            losses.append(loss.detach())
            outputs.append(y.detach())
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(current[k])
        return torch.stack(losses), torch.cat(outputs)
    return step


class TorchStep:
    """The eager or compiled step, with the native step's other entry points computed by PyTorch on
    the template network: forward, evaluate (per-pattern losses) and the curvature pass of
    repro.sdlm. Where these run, numbers depend on the CPU's kernels (the CUDA path; CPUs without a
    C compiler)."""

    def __init__(self, fn, kind, template, loss_fn):
        self.fn, self.kind, self.template, self.loss_fn = fn, kind, template, loss_fn

    def __call__(self, params, eps, xs, labels):
        # The compiled graph cannot test pixel values (repro.model.check_input): the block is tested here.
        check_input(xs, None, self.template.field, type(self.template).__name__)
        return self.fn(params, eps, xs, labels)

    @torch.no_grad()
    def forward(self, params, x):
        return functional_call(self.template, params, (x,))

    def evaluate(self, params, x, labels):
        y = self.forward(params, x)
        return self.loss_fn(y, labels, per_pattern=True), y

    def curvature(self, params, x, labels, boundary="paper"):
        self.template.load_state_dict({k: v.detach() for k, v in params.items()}, strict=False)
        return hessian_diagonal(self.template, x, labels, self.loss_fn, boundary)


def make_step(config: Config, device="cpu", fast=True, native=True):
    """(step, seconds spent building or compiling now: 0 when eager or cached). `step.kind` says which
    implementation it is: "native" (repro/native/, the CPU default; "native-fast" for the opt-in
    CPU-specific build), "compiled" (torch.compile: CUDA, or a CPU without a C compiler) or
    "eager". Steps take blocks of any size; the compiled one is compiled for BLOCK patterns (and
    once more for a shorter last block). `fast=False` gives the eager step; `native=False` skips the
    native step (to test the torch.compile one on a CPU)."""
    template = build(config).to(device)
    loss_fn = make_loss(config)
    if not fast:
        return TorchStep(eager_step(template, loss_fn), "eager", template, loss_fn), 0.0
    key = (tuple(getattr(config, f) for f in _NETWORK_FIELDS), str(device), native, cpu_specific())
    if key in _FAST_STEPS:
        return _FAST_STEPS[key], 0.0
    if native and torch.device(device).type == "cpu":
        t0 = time.perf_counter()
        try:
            _FAST_STEPS[key] = LeNet5Step(template) if config.network == "lenet5" else NetworkStep(template)
            return _FAST_STEPS[key], time.perf_counter() - t0
        except NativeUnavailable as e:
            warnings.warn(f"the native CPU step is unavailable ({e}); using torch.compile instead", RuntimeWarning)
    options = {"cpp_wrapper": True} if torch.device(device).type == "cpu" else {}
    compiled = torch.compile(functional_step(template, loss_fn), fullgraph=True, dynamic=False, options=options)
    params = {k: p.detach().clone().requires_grad_(True) for k, p in template.named_parameters()}
    eps = {k: torch.zeros_like(p) for k, p in params.items()}
    t0 = time.perf_counter()
    try:
        compiled(params, eps, torch.zeros(BLOCK, 1, template.field, template.field, device=device),
                 torch.zeros(BLOCK, dtype=torch.long, device=device))
    except Exception as e:  # noqa: BLE001 - whatever broke in the compiler, training can go on eagerly
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                      "training with the eager step instead", RuntimeWarning)
        step = TorchStep(eager_step(template, loss_fn), "eager", template, loss_fn)
    else:
        step = TorchStep(compiled, "compiled", template, loss_fn)
    _FAST_STEPS[key] = step
    return step, time.perf_counter() - t0


class Adam:
    """The modern recipe's update: Adam with PyTorch's defaults but the rate (betas 0.9 and 0.999,
    eps 1e-8), one step per mini-batch on the batch-mean loss. `adam(xs, labels)` returns each
    pattern's loss and penalties before the step.

    With the native step the gradient is summed pattern by pattern and the update computed in C,
    with the same bits on every CPU; otherwise (CUDA, no C compiler) it is torch.optim.Adam."""
    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, step, params, lr):
        self.step, self.params, self.lr = step, params, lr
        self.native = isinstance(step, (LeNet5Step, NetworkStep))
        if self.native:
            self.state = dict(m={k: torch.zeros_like(p) for k, p in params.items()},
                              v={k: torch.zeros_like(p) for k, p in params.items()},
                              decay=[1.0, 1.0])  # beta1^t, beta2^t, as exact products
        else:
            self.optimizer = torch.optim.Adam(params.values(), lr=lr, betas=self.BETAS, eps=self.EPS)

    def __call__(self, xs, labels):
        if not self.native:
            y = functional_call(self.step.template, self.params, (xs,))
            losses = self.step.loss_fn(y, labels, per_pattern=True)
            self.optimizer.zero_grad(set_to_none=True)
            losses.mean().backward()
            self.optimizer.step()
            return losses.detach(), y.detach()
        grads = {k: torch.zeros_like(p) for k, p in self.params.items()}
        losses, y = self.step.gradient(self.params, grads, xs, labels)
        decay = self.state["decay"]
        decay[:] = [d * b for d, b in zip(decay, self.BETAS)]
        for k, p in self.params.items():
            adam_update(p.data, self.state["m"][k], self.state["v"][k], grads[k], len(xs), self.lr, self.BETAS,
                        self.EPS, (1 - decay[0], 1 - decay[1]))
        return losses, y

    def state_dict(self):
        return self.state if self.native else self.optimizer.state_dict()

    def load_state_dict(self, state):
        if self.native:
            for k in ("m", "v"):
                for name, t in state[k].items():
                    self.state[k][name].copy_(t)
            self.state["decay"][:] = state["decay"]
        else:
            self.optimizer.load_state_dict(state)
