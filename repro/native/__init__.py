"""The hand-written CPU code of this folder (lenet5_step.c, and network_step.c for the other
networks): built with the system C compiler on first use, loaded with ctypes, and wrapped with the
signatures of repro.step, repro.sdlm and repro.distortions. The numbers that name a choice, a mode, a
layer kind or a parameter slot are read from codes.h, which both C files include.

Same mathematics as the PyTorch code, other arithmetic: its results are fixed by the C source (no
reassociation, no contraction, its own tanh/exp/log), so a seed gives the same bits on every x86-64
CPU, Intel or AMD (lenet5_step.c says how; tests/test_native.py builds it for several instruction
sets and tests/test_golden.py checks a short run against committed numbers). It is built for one
fixed instruction set, x86-64-v3 (AVX2 + FMA), or the x86-64 baseline on CPUs without AVX2, which
gives the same bits more slowly.

REPRO_NATIVE_FAST=1 builds for this CPU with reassociation and contraction instead (faster, but its
numbers depend on the CPU and the compiler): for exploration only; steps built so say so in their
`kind`, every run records it, and the targets that write results/ refuse it.

One build per number type and flags, cached by a hash of the sources and the command in
$XDG_CACHE_HOME/repro-lenet5 (default ~/.cache).
"""
import ctypes
import functools
import hashlib
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

import torch

from .. import layers, paper
from ..config import CHOICES
from ..layers import c3_pairs
from ..model import check_input, check_labels

HERE = Path(__file__).parent
SOURCES = {"lenet5": HERE / "lenet5_step.c",  # LeNet-5, written out for its sizes
           "network": HERE / "network_step.c"}  # the networks of repro/networks.py
HEADERS = sorted(HERE.glob("*.h"))  # what both include: numerics.h (the arithmetic), codes.h
PORTABLE = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]  # IEEE arithmetic, as written
FAST = ["-O3", "-march=native", "-ffp-contract=fast", "-fassociative-math", "-fno-signed-zeros",
        "-fno-trapping-math", "-fno-math-errno"]
CODED = ("activation", "subsampling", "output", "loss")  # the fields of repro.config that lenet5_step.c reads


def codes(path=HERE / "codes.h"):
    """The enums of codes.h, in order: a list of [(name, value), ...] (a name without a value counts
    on from the one before, as in C)."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    enums = []
    for body in re.findall(r"enum\s*\{([^}]*)\}", text):
        value, enum = -1, []
        for item in filter(str.strip, body.split(",")):
            name, _, given = (part.strip() for part in item.partition("="))
            value = int(given) if given else value + 1
            enum.append((name, value))
        enums.append(enum)
    return enums


ENUMS = codes()
C_CODES = {name: value for enum in ENUMS for name, value in enum}  # every name of codes.h
CODES = {field: {name[len(field) + 1:].lower(): code for name, code in C_CODES.items()
                 if name.startswith(f"{field.upper()}_")} for field in CODED}  # ACTIVATION_RELU: activation "relu"
FORWARD, EVALUATE, ONLINE, GRADIENT = (C_CODES[f"MODE_{m}"] for m in ("FORWARD", "EVALUATE", "ONLINE", "GRADIENT"))
CONV, POOL, FULL = C_CODES["CONV"], C_CODES["POOL"], C_CODES["FULL"]  # network_step.c's layer kinds


def slot(name):
    """The parameter of a slot of codes.h: C1W is c1.weight, OUTB output.bias."""
    layer, kind = name[:-1], name[-1]
    return f"{'output' if layer == 'OUT' else layer.lower()}.{dict(W='weight', B='bias')[kind]}"


SLOTS = tuple(slot(name) for name, _ in next(e for e in ENUMS if e[-1][0] == "SLOTS")[:-1])  # in the C enum's order
TYPES = {torch.float32: ("float", ctypes.c_float, []), torch.float64: ("double", ctypes.c_double, ["-DREAL_DOUBLE"])}
_LIBRARIES = {}


class NativeUnavailable(RuntimeError):
    pass


def cpu_specific():
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
    """The compiler flags: the portable build for `arch` ("default": default_arch()), or the CPU-specific one."""
    if cpu_specific():
        return list(FAST)
    arch = default_arch() if arch == "default" else arch
    return PORTABLE + ([f"-march={arch}", "-mtune=generic"] if arch else [])


def library(dtype, arch="default", source="lenet5"):
    """The compiled library of SOURCES[source] for `dtype` (float32 or float64), built now if this
    machine has none."""
    if dtype not in TYPES:
        raise NativeUnavailable(f"the native code computes in float32 or float64, not {dtype}")
    key = (dtype, arch, cpu_specific(), source)
    if key in _LIBRARIES:
        return _LIBRARIES[key]
    if platform.system() != "Linux":
        raise NativeUnavailable(f"the native code is built for Linux, not {platform.system()}")
    check_codes()
    real, ctype, defines = TYPES[dtype]
    command = [os.environ.get("CC", "gcc"), *build_flags(arch), *defines, "-fPIC", "-shared"]
    path_c = SOURCES[source]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [path_c, *HEADERS]) + " ".join(command).encode()
                            + platform.machine().encode())
    path = cache_dir() / f"{path_c.stem}_{real}_{digest.hexdigest()[:16]}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:  # built aside, then moved: processes may race
            out = Path(tmp) / path.name
            try:
                done = subprocess.run([*command, str(path_c), "-o", str(out), "-lm"], capture_output=True, text=True)
            except OSError as e:
                raise NativeUnavailable(f"no C compiler ({e})") from e
            if done.returncode:
                raise NativeUnavailable(f"building {path_c.name} failed: {done.stderr.strip()[:300]}")
            os.replace(out, path)
    lib = ctypes.CDLL(str(path))
    layout = (ctypes.c_long * 4)()
    if source == "lenet5":
        for name in ("lenet5_layout", "adam_update", "distort_images"):
            getattr(lib, name).restype = None
        lib.lenet5_layout(layout)
        struct = net_struct(ctype)
        expected, what = [ctypes.sizeof(ctype), ctypes.sizeof(struct), struct.prototypes.offset, len(SLOTS)], "slots"
    else:
        lib.network_layout.restype, lib.network_workspace.restype = None, ctypes.c_long
        lib.network_layout(layout)
        layer, struct = network_structs(ctype)
        expected, what = [ctypes.sizeof(ctype), ctypes.sizeof(struct), struct.prototypes.offset,
                          ctypes.sizeof(layer)], "sizeof Layer"
    if list(layout) != expected:  # the structs here and the C typedefs must agree, field by field
        raise NativeUnavailable(f"{path.name}: layout (sizeof real, sizeof Net, offset of prototypes, {what}) "
                                f"{list(layout)} differs from repro/native/__init__.py's {expected}")
    _LIBRARIES[key] = lib
    return lib


def check_codes():
    """codes.h codes the same values as repro.config.CHOICES offers, field by field: a choice without
    a code would reach the C code as another choice's number."""
    for field in CODED:
        if set(CODES[field]) != set(CHOICES[field]):
            raise NativeUnavailable(f"codes.h codes {field} as {sorted(CODES[field])}, but repro.config's choices are "
                                    f"{sorted(CHOICES[field])}: give each choice its {field.upper()}_<VALUE> in codes.h")


@functools.cache
def available():
    """(True, "") where the native code builds and loads on this machine, else (False, why), e.g.
    (False, "no C compiler (...)"): tried once per process (tests/conftest.py skips the tests that
    need it, and says so, where it is False)."""
    try:
        library(torch.float32)
    except NativeUnavailable as e:
        return False, str(e)
    return True, ""


def net_struct(real):
    """The C `Net` struct for reals of ctypes type `real`."""
    class Net(ctypes.Structure):
        _fields_ = [("act", ctypes.c_int), ("pool", ctypes.c_int), ("head", ctypes.c_int), ("loss", ctypes.c_int),
                    ("pairs", ctypes.c_int), ("squash_a", real), ("squash_s", real), ("pool_scale", real),
                    ("j", real), ("pair_out", ctypes.c_void_p), ("pair_in", ctypes.c_void_p),
                    ("prototypes", ctypes.c_void_p)]
    return Net


def network_structs(real):
    """The C `Layer` and `Net` structs of network_step.c for reals of ctypes type `real`."""
    class Layer(ctypes.Structure):
        _fields_ = [(n, ctypes.c_int) for n in ("kind", "in_maps", "in_side", "out_maps", "out_side", "k", "pairs")] + \
                   [("pair_out", ctypes.c_void_p), ("pair_in", ctypes.c_void_p), ("pool_scale", real)]

    class Net(ctypes.Structure):
        _fields_ = [("layers", ctypes.c_int), ("units", ctypes.c_int), ("loss_ml", ctypes.c_int),
                    ("squash_a", real), ("squash_s", real), ("j", real),
                    ("layer", ctypes.c_void_p), ("prototypes", ctypes.c_void_p)]
    return Layer, Net


def _check_labels(bad, labels):
    """The C code returns 1 + the index of the first label outside 0..9, or 0."""
    if bad:
        raise ValueError(f"label {labels[bad - 1].item()} of pattern {bad - 1} is not a class (0..9)")


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else None


class LeNet5Step:
    """LeNet-5's native step (lenet5_step.c; NetworkStep serves the other networks):
    step(params, eps, xs, labels) -> (losses, penalties), as repro.step's steps; and forward,
    evaluate, gradient and curvature on the same network. Parameters are updated in place through
    their storage; the number type is that of the tensors given (float32 for training, float64 for
    the tests). `arch` selects another instruction set for the build (tests)."""

    def __init__(self, template, arch="default"):
        self.config, self.arch = template.config, arch
        self.kind = "native-fast" if cpu_specific() else "native"
        pairs = c3_pairs(template.c3.table)
        self.pair_out = torch.tensor([m for m, _ in pairs], dtype=torch.int32)
        self.pair_in = torch.tensor([i for _, i in pairs], dtype=torch.int32)
        self.shapes = {k: tuple(p.shape) for k, p in template.named_parameters()}
        self.order = SLOTS  # the C code's slot of each parameter; a slot the network lacks stays NULL
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
            self._nets[dtype] = (lib, net, None, prototypes)  # the tensors the struct points into stay alive here
        return self._nets[dtype][:3]

    def _pointers(self, tensors, dtype, what):
        """The C array of parameter slots, after checking names, shapes, number type and layout."""
        if tensors.keys() != self.shapes.keys():
            raise ValueError(f"native step: {what} must have the entries {sorted(self.shapes)}, got {sorted(tensors)}")
        slots = (ctypes.c_void_p * len(self.order))()
        for k, t in tensors.items():
            if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous() or tuple(t.shape) != self.shapes[k]:
                raise ValueError(f"native step: {what}[{k!r}] must be a contiguous CPU {dtype} tensor of shape "
                                 f"{self.shapes[k]}, got {t.dtype} {tuple(t.shape)} on {t.device}")
            slots[self.order.index(k)] = t.data_ptr()
        return slots

    def _check(self, x):
        check_input(x)

    def _block(self, lib, net, work, args):
        return lib.lenet5_block(ctypes.byref(net), *args)

    def _curvature(self, lib, net, work, args):
        return lib.lenet5_curvature(ctypes.byref(net), *args)

    def _run(self, params, xs, labels, mode, eps=None, dst=None):
        self._check(xs)
        dtype = next(iter(params.values())).dtype
        lib, net, work = self._net(dtype)
        p = self._pointers(params, dtype, "params")
        xs = xs.to(dtype).contiguous()
        n = len(xs)
        losses, outs = xs.new_empty(n), xs.new_empty(n, 10)
        if labels is not None:
            check_labels(labels, n)
            labels = labels.to(torch.int64).contiguous()
        bad = self._block(lib, net, work, (p, self._pointers(eps, dtype, "eps") if eps is not None else None,
                                           self._pointers(dst, dtype, "gradient") if dst is not None else p, _ptr(xs),
                                           _ptr(labels), ctypes.c_int(n), ctypes.c_int(mode), _ptr(losses), _ptr(outs)))
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
        self._check(x)
        dtype = next(iter(params.values())).dtype
        lib, net, work = self._net(dtype)
        h = {k: torch.zeros_like(v) for k, v in params.items()}
        check_labels(labels, len(x))
        labels = labels.to(torch.int64).contiguous()
        x = x.to(dtype).contiguous()
        bad = self._curvature(lib, net, work, (self._pointers(params, dtype, "params"), _ptr(x), _ptr(labels),
                                               ctypes.c_int(len(x)), ctypes.c_int(boundary == "exact"),
                                               self._pointers(h, dtype, "h")))
        _check_labels(bad, labels)
        return {k: v / len(x) for k, v in h.items()}


CONV, POOL, FULL = 0, 1, 2  # network_step.c's layer kinds


def describe(template):
    """network_step.c's description of each layer of `template` (a repro.model.Network), from a
    forward pass of one blank image: (kind, in_maps, in_side, out_maps, out_side, kernel, pairs of
    (output map, input map) in the order of the kernels, pool scale)."""
    record, _ = template.trace(torch.zeros(1, 1, template.field, template.field))
    out = []
    for (_, layer, _), (_, x, a) in zip(template.stages()[:-1], record):
        in_maps, in_side = x.shape[1], (x.shape[-1] if x.dim() == 4 else 1)
        out_maps, out_side = a.shape[1], (a.shape[-1] if a.dim() == 4 else 1)
        if isinstance(layer, layers.SparseConvolution):
            out.append((CONV, in_maps, in_side, out_maps, out_side, layer.dense_shape[-1], c3_pairs(layer.table), 1.0))
        elif isinstance(layer, layers.Convolution):
            pairs = [(o, i) for o in range(out_maps) for i in range(in_maps)]  # weight (out, in, k, k)
            out.append((CONV, in_maps, in_side, out_maps, out_side, layer.weight.shape[-1], pairs, 1.0))
        elif isinstance(layer, layers.Subsampling):
            sources = layer.sources.tolist() if layer.sources is not None else list(range(out_maps))
            out.append((POOL, in_maps, in_side, out_maps, out_side, 2, list(enumerate(sources)), float(layer.scale)))
        elif isinstance(layer, layers.FullConnection):
            out.append((FULL, in_maps, in_side, out_maps, 1, 0, [], 1.0))
        else:
            raise NativeUnavailable(f"network_step.c has no layer like {type(layer).__name__}")
    return out


class NetworkStep(LeNet5Step):
    """The native step of the networks of repro/networks.py (network_step.c): LeNet5Step's entry
    points (it reuses their code) and signatures, the parameters passed as (weight, bias) per layer
    from input to output (`order`)."""

    def __init__(self, template, arch="default"):
        self.config, self.arch, self.field = template.config, arch, template.field
        self.kind = "native-fast" if cpu_specific() else "native"
        self.name = type(template).__name__
        self.layers = describe(template)
        names = [n for n, _, _ in template.stages()[:-1]]
        self.order = [f"{n}.{p}" for n in names for p in ("weight", "bias")]
        self.shapes = {k: tuple(p.shape) for k, p in template.named_parameters()}
        if sorted(self.order) != sorted(self.shapes):
            raise NativeUnavailable(f"network_step.c expects a weight and a bias per layer, got {sorted(self.shapes)}")
        self.prototypes = template.output.prototypes
        self._nets = {}
        self._net(torch.float32)

    def _net(self, dtype):
        if dtype not in self._nets:
            lib = library(dtype, self.arch, "network")
            layer_t, net_t = network_structs(TYPES[dtype][1])
            keep = []  # the index tensors the structs point into, alive as long as the structs
            descs = (layer_t * len(self.layers))()
            for d, (kind, in_maps, in_side, out_maps, out_side, k, pairs, scale) in zip(descs, self.layers):
                pair_out = torch.tensor([o for o, _ in pairs], dtype=torch.int32)
                pair_in = torch.tensor([i for _, i in pairs], dtype=torch.int32)
                keep += [pair_out, pair_in]
                d.kind, d.in_maps, d.in_side, d.out_maps, d.out_side, d.k, d.pairs = \
                    kind, in_maps, in_side, out_maps, out_side, k, len(pairs)
                d.pair_out, d.pair_in, d.pool_scale = pair_out.data_ptr(), pair_in.data_ptr(), scale
            prototypes = self.prototypes.to(dtype).contiguous()
            net = net_t(len(self.layers), prototypes.shape[1], int(self.config.loss == "ml"), paper.SQUASH_A,
                        paper.SQUASH_S, float(self.config.j), ctypes.addressof(descs), prototypes.data_ptr())
            work = torch.empty(lib.network_workspace(ctypes.byref(net)), dtype=dtype)
            self._nets[dtype] = (lib, net, work, descs, prototypes, keep)
        return self._nets[dtype][:3]

    def _check(self, x):
        check_input(x, None, self.field, self.name)

    def _block(self, lib, net, work, args):
        return lib.network_block(ctypes.byref(net), *args, _ptr(work))

    def _curvature(self, lib, net, work, args):
        return lib.network_curvature(ctypes.byref(net), *args, _ptr(work))


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
