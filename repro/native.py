"""The hand-written CPU code (lenet5_step.c): built with the system C compiler on first use, loaded
with ctypes, and wrapped with the signatures of repro.step, repro.sdlm and repro.distortions.

Same mathematics as the PyTorch code, other arithmetic: its results are fixed by the C source (no
reassociation, no contraction, its own tanh/exp/log), so a seed gives the same bits on every x86-64
CPU, Intel or AMD (lenet5_step.c says how; tests/test_native.py builds it for several instruction
sets and tests/test_golden.py checks a short run against committed numbers). It is built for one
fixed instruction set, x86-64-v3 (AVX2 + FMA), or the x86-64 baseline on CPUs without AVX2, which
gives the same bits more slowly.

REPRO_NATIVE_FAST=1 builds for this CPU with reassociation and contraction instead (faster, but its
numbers depend on the CPU and the compiler): for exploration only; steps built so say so in their
`kind`, every run records it, and the targets that write results/ refuse it.

One build per number type and flags, cached by a hash of the source and the command in
$XDG_CACHE_HOME/repro-lenet5 (default ~/.cache).
"""
import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from . import paper
from .layers import c3_pairs
from .model import check_input

SOURCE = Path(__file__).with_name("lenet5_step.c")
PORTABLE = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]  # IEEE arithmetic, as written
FAST = ["-O3", "-march=native", "-ffp-contract=fast", "-fassociative-math", "-fno-signed-zeros",
        "-fno-trapping-math", "-fno-math-errno"]
SLOTS = ("c1.weight", "c1.bias", "s2.weight", "s2.bias", "c3.weight", "c3.bias", "s4.weight", "s4.bias",
         "c5.weight", "c5.bias", "f6.weight", "f6.bias", "output.weight", "output.bias")  # the C enum's order
CODES = dict(activation={"scaled_tanh": 0, "relu": 1}, subsampling={"trainable": 0, "average": 1, "max": 2},
             output={"rbf": 0, "linear": 1}, loss={"map": 0, "ml": 1, "ce": 2})
FORWARD, EVALUATE, ONLINE, GRADIENT = 0, 1, 2, 3  # lenet5_block's modes
TYPES = {torch.float32: ("float", ctypes.c_float, []), torch.float64: ("double", ctypes.c_double, ["-DREAL_DOUBLE"])}
_LIBRARIES = {}


class NativeUnavailable(RuntimeError):
    pass


def fast():
    """Whether REPRO_NATIVE_FAST asks for the CPU-specific build."""
    return os.environ.get("REPRO_NATIVE_FAST", "") not in ("", "0")


def default_arch():
    """x86-64-v3 where the CPU has AVX2 and FMA, else the x86-64 baseline (the same bits, slower)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        flags = next((line.split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    except OSError:
        flags = []
    return "x86-64-v3" if {"avx2", "fma", "bmi2"} <= set(flags) else "x86-64"


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "repro-lenet5"


def build_flags(arch="default"):
    """The compiler flags: the portable build for `arch` ("default": default_arch()), or the fast one."""
    if fast():
        return list(FAST)
    arch = default_arch() if arch == "default" else arch
    return PORTABLE + ([f"-march={arch}", "-mtune=generic"] if arch else [])


def library(dtype, arch="default"):
    """The compiled library for `dtype` (float32 or float64), built now if this machine has none."""
    if dtype not in TYPES:
        raise NativeUnavailable(f"the native code computes in float32 or float64, not {dtype}")
    key = (dtype, arch, fast())
    if key in _LIBRARIES:
        return _LIBRARIES[key]
    if platform.system() != "Linux":
        raise NativeUnavailable(f"the native code is built for Linux, not {platform.system()}")
    real, ctype, defines = TYPES[dtype]
    command = [os.environ.get("CC", "gcc"), *build_flags(arch), *defines, "-fPIC", "-shared"]
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(command).encode() + platform.machine().encode())
    path = cache_dir() / f"lenet5_step_{real}_{digest.hexdigest()[:16]}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:  # built aside, then moved: processes may race
            out = Path(tmp) / path.name
            try:
                done = subprocess.run([*command, str(SOURCE), "-o", str(out), "-lm"], capture_output=True, text=True)
            except OSError as e:
                raise NativeUnavailable(f"no C compiler ({e})") from e
            if done.returncode:
                raise NativeUnavailable(f"building {SOURCE.name} failed: {done.stderr.strip()[:300]}")
            os.replace(out, path)
    lib = ctypes.CDLL(str(path))
    for name in ("lenet5_layout", "adam_update", "distort_images"):
        getattr(lib, name).restype = None
    layout = (ctypes.c_long * 4)()
    lib.lenet5_layout(layout)
    struct = net_struct(ctype)
    expected = [ctypes.sizeof(ctype), ctypes.sizeof(struct), struct.prototypes.offset, len(SLOTS)]
    if list(layout) != expected:  # the struct below and the C typedef must agree, field by field
        raise NativeUnavailable(f"{path.name}: layout (sizeof real, sizeof Net, offset of prototypes, slots) "
                                f"{list(layout)} differs from native.py's {expected}")
    _LIBRARIES[key] = lib
    return lib


def net_struct(real):
    """The C `Net` struct for reals of ctypes type `real`."""
    class Net(ctypes.Structure):
        _fields_ = [("act", ctypes.c_int), ("pool", ctypes.c_int), ("head", ctypes.c_int), ("loss", ctypes.c_int),
                    ("pairs", ctypes.c_int), ("squash_a", real), ("squash_s", real), ("pool_scale", real),
                    ("j", real), ("pair_out", ctypes.c_void_p), ("pair_in", ctypes.c_void_p),
                    ("prototypes", ctypes.c_void_p)]
    return Net


def _check_labels(bad, labels):
    """The C code returns 1 + the index of the first label outside 0..9, or 0."""
    if bad:
        raise ValueError(f"label {labels[bad - 1].item()} of pattern {bad - 1} is not a class (0..9)")


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else None


class NativeStep:
    """step(params, eps, xs, labels) -> (losses, penalties), as repro.step's steps; and forward,
    evaluate, gradient and curvature on the same network. Parameters are updated in place through
    their storage; the number type is that of the tensors given (float32 for training, float64 for
    the tests). `arch` selects another instruction set for the build (tests)."""

    def __init__(self, template, arch="default"):
        self.config, self.arch = template.config, arch
        self.kind = "native-fast" if fast() else "native"
        pairs = c3_pairs(template.c3.table)
        self.pair_out = torch.tensor([m for m, _ in pairs], dtype=torch.int32)
        self.pair_in = torch.tensor([i for _, i in pairs], dtype=torch.int32)
        self.shapes = {k: tuple(p.shape) for k, p in template.named_parameters()}
        unknown = set(self.shapes) - set(SLOTS)
        if unknown:
            raise NativeUnavailable(f"the native code has no slot for parameters {sorted(unknown)}")
        self.prototypes = template.output.prototypes if self.config.output == "rbf" else None
        scale = getattr(template.s2, "scale", None)  # the 1/4 of averaging, a buffer of the layer (none for max)
        self.pool_scale = float(scale) if scale is not None else 1.0
        self._nets = {}
        self._net(torch.float32)  # build now, so that a missing compiler shows at once

    def _net(self, dtype):
        """(library, network description) for computing in `dtype`."""
        if dtype not in self._nets:
            lib, c = library(dtype, self.arch), self.config
            prototypes = self.prototypes.to(dtype).contiguous() if self.prototypes is not None else None
            net = net_struct(TYPES[dtype][1])(
                CODES["activation"][c.activation], CODES["subsampling"][c.subsampling], CODES["output"][c.output],
                CODES["loss"][c.loss], len(self.pair_out), paper.SQUASH_A, paper.SQUASH_S, self.pool_scale,
                float(c.j), self.pair_out.data_ptr(), self.pair_in.data_ptr(),
                prototypes.data_ptr() if prototypes is not None else None)
            self._nets[dtype] = (lib, net, prototypes)  # the tensors the struct points into stay alive here
        return self._nets[dtype][:2]

    def _pointers(self, tensors, dtype, what):
        """The C array of parameter slots, after checking names, shapes, number type and layout."""
        if tensors.keys() != self.shapes.keys():
            raise ValueError(f"native step: {what} must have the entries {sorted(self.shapes)}, got {sorted(tensors)}")
        slots = (ctypes.c_void_p * len(SLOTS))()
        for k, t in tensors.items():
            if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous() or tuple(t.shape) != self.shapes[k]:
                raise ValueError(f"native step: {what}[{k!r}] must be a contiguous CPU {dtype} tensor of shape "
                                 f"{self.shapes[k]}, got {t.dtype} {tuple(t.shape)} on {t.device}")
            slots[SLOTS.index(k)] = t.data_ptr()
        return slots

    def _run(self, params, xs, labels, mode, eps=None, dst=None):
        check_input(xs)
        dtype = next(iter(params.values())).dtype
        lib, net = self._net(dtype)
        p = self._pointers(params, dtype, "params")
        xs = xs.to(dtype).contiguous()
        n = len(xs)
        losses, outs = xs.new_empty(n), xs.new_empty(n, 10)
        if labels is not None:
            labels = labels.to(torch.int64).contiguous()
            if labels.shape != (n,):
                raise ValueError(f"native step: {n} images need {n} labels, got shape {tuple(labels.shape)}")
        bad = lib.lenet5_block(ctypes.byref(net), p, self._pointers(eps, dtype, "eps") if eps is not None else None,
                               self._pointers(dst, dtype, "gradient") if dst is not None else p, _ptr(xs),
                               _ptr(labels), ctypes.c_int(n), ctypes.c_int(mode), _ptr(losses), _ptr(outs))
        _check_labels(bad, labels)
        return losses, outs

    def __call__(self, params, eps, xs, labels):
        """The online step: each pattern's loss and penalties before its update, then the update."""
        with torch.no_grad():
            return self._run(params, xs, labels, ONLINE, eps=eps)

    def forward(self, params, x):
        return self._run(params, x, None, FORWARD)[1]

    def evaluate(self, params, x, labels):
        """(per-pattern losses, penalties) without an update."""
        return self._run(params, x, labels, EVALUATE)

    def gradient(self, params, grads, xs, labels):
        """Adds the gradient of each pattern's loss to `grads` (a dict like params); params unchanged."""
        return self._run(params, xs, labels, GRADIENT, dst=grads)

    def curvature(self, params, x, labels, boundary="paper"):
        """h_kk averaged over the patterns: repro.sdlm.hessian_diagonal's pass, in C."""
        check_input(x)
        dtype = next(iter(params.values())).dtype
        lib, net = self._net(dtype)
        h = {k: torch.zeros_like(v) for k, v in params.items()}
        labels = labels.to(torch.int64).contiguous()
        x = x.to(dtype).contiguous()
        bad = lib.lenet5_curvature(ctypes.byref(net), self._pointers(params, dtype, "params"), _ptr(x), _ptr(labels),
                                   ctypes.c_int(len(x)), ctypes.c_int(boundary == "exact"),
                                   self._pointers(h, dtype, "h"))
        _check_labels(bad, labels)
        return {k: v / len(x) for k, v in h.items()}


def adam_update(param, m, v, grad, batch, lr, betas, eps, corrections):
    """One Adam step on a flat contiguous tensor: grad is the sum over a mini-batch of `batch`
    patterns; corrections = (1 - beta1^t, 1 - beta2^t)."""
    real = TYPES[param.dtype][1]
    library(param.dtype).adam_update(_ptr(param), _ptr(m), _ptr(v), _ptr(grad), ctypes.c_long(param.numel()),
                                     real(batch), real(lr), real(betas[0]), real(betas[1]), real(eps),
                                     real(corrections[0]), real(corrections[1]))


def distort_images(images, theta, background):
    """Bilinear resampling of float32 images (N, 1, 32, 32) by float64 matrices theta (N, 2, 3)."""
    images, theta = images.contiguous(), theta.to(torch.float64).contiguous()
    out = torch.empty_like(images)
    library(torch.float32).distort_images(_ptr(images), _ptr(out), _ptr(theta), ctypes.c_long(len(images)),
                                          ctypes.c_float(background))
    return out
