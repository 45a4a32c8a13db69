"""The layers of LeNet-5 (Sec. II-B), each split into a linear part and a squashing function.

Every layer here computes only the weighted sums a (the "linear part"); the model applies the
activation. That split is what stochastic diagonal Levenberg-Marquardt needs (Appendix C): the
Gauss-Newton second-derivative pass goes backwards through the same linear maps with every
coefficient squared, and through the activations with f'(a) squared. `curvature` does that for each
layer; layers whose weighted sums are bilinear in (inputs, coefficients) share one implementation.

Each layer also reports `fan_ins()` (weighted inputs per unit, per output map), from which the model
derives the paper initialisation (+-2.4/F) and the connection counts of the tables, and
`connections_per_weight(out_shape)`: how many connections share each of its parameters, given the
shape of its weighted sums (for SDLM's h averaged over shared connections, config.h_sharing="mean").
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from . import paper


# --- squashing functions -------------------------------------------------------------------------
class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A): f(+-1) = +-1."""

    def forward(self, a):
        return paper.SQUASH_A * torch.tanh(paper.SQUASH_S * a)

    def slope(self, a):
        return paper.SQUASH_A * paper.SQUASH_S * (1 - torch.tanh(paper.SQUASH_S * a) ** 2)


class ReLU(nn.Module):
    def forward(self, a):
        return torch.relu(a)

    def slope(self, a):
        return (a > 0).to(a.dtype)


class Identity(nn.Module):
    def forward(self, a):
        return a

    def slope(self, a):
        return torch.ones_like(a)


def c3_pairs(table):
    """C3's connections as (output map, input map), one per 5x5 kernel, in the order of the kernels
    of SparseConvolution.weight: Table I read map by map (60 pairs for the paper's table)."""
    return [(m, i) for m, inputs in enumerate(table) for i in inputs]


# --- linear parts --------------------------------------------------------------------------------
class Linear(nn.Module):
    """Base for layers whose weighted sums are bilinear in (inputs, coefficients).

    For a_i = sum_j u_ij x_j the Gauss-Newton pass of Appendix C is
        d2E/dx_j^2 = sum_i u_ij^2 d2E/da_i^2,   d2E/du_ij^2 = x_j^2 d2E/da_i^2,
    summed over every connection that shares u. Both are exactly the vector-Jacobian product of the
    same layer evaluated on x^2 with every coefficient (parameters and constant buffers) squared,
    so one autograd call gives the whole pass, weight sharing included.
    """

    def curvature(self, x, d2a):
        """Return (d2E/dx^2, {parameter name: h summed over this batch})."""
        squared = {n: t.detach() ** 2 for n, t in self.named_parameters()}
        squared.update({n: t ** 2 for n, t in self.named_buffers() if t.is_floating_point()})
        leaves = [n for n, _ in self.named_parameters()]
        for n in leaves:
            squared[n].requires_grad_(True)
        x2 = (x.detach() ** 2).requires_grad_(True)
        with torch.enable_grad():
            a2 = functional_call(self, squared, (x2,))
            grads = torch.autograd.grad(a2, [x2] + [squared[n] for n in leaves], d2a)
        return grads[0], dict(zip(leaves, grads[1:]))

    def connections_per_weight(self, out_shape):
        """{parameter name: connections that share each of its entries}, given `out_shape`, the shape of
        the weighted sums of one pattern ((maps, h, w), or (units,)). Here every entry of a parameter
        (a kernel weight, a bias) enters each unit of its output map once: one connection per unit of
        the map. The paper counts a bias as a connection (C1: 122,304 = 156 x 784)."""
        units_per_map = math.prod(out_shape[1:])
        return {n: units_per_map for n, _ in self.named_parameters()}


class Convolution(Linear):
    """C1, C5: every output map sees every input map through its own k x k kernel, plus a bias."""

    def __init__(self, in_maps, out_maps, kernel=5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_maps, in_maps, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(out_maps))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)

    def fan_ins(self):
        out_maps, in_maps, k, _ = self.weight.shape
        return [in_maps * k * k] * out_maps


class SparseConvolution(Linear):
    """C3 (Table I): output map m sees only the S2 maps listed in `table[m]`.

    Only the sum(len(set)) = 60 kernels and 16 biases are parameters (1,516 in the paper). The forward
    pass scatters them into a zero (16, 6, k, k) tensor and runs one dense convolution: the absent
    connections are constant zeros, never parameters, and receive no update.
    """

    def __init__(self, table, in_maps, kernel=5):
        super().__init__()
        self.table = tuple(tuple(s) for s in table)
        out_maps = len(self.table)
        pairs = c3_pairs(self.table)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel, kernel))
        self.bias = nn.Parameter(torch.empty(out_maps))
        self.register_buffer("slot", torch.tensor([m * in_maps + i for m, i in pairs]), persistent=False)
        self.dense_shape = (out_maps, in_maps, kernel, kernel)

    def forward(self, x):
        out_maps, in_maps, k, _ = self.dense_shape
        dense = self.weight.new_zeros(out_maps * in_maps, k, k).index_copy(0, self.slot, self.weight)
        return F.conv2d(x, dense.view(self.dense_shape), self.bias)

    def fan_ins(self):
        k = self.dense_shape[-1]
        return [len(inputs) * k * k for inputs in self.table]


def _sum_2x2(x):
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).sum((3, 5))


class Subsampling(Linear):
    """S2, S4: the four inputs of each non-overlapping 2x2 field are added, multiplied by one trainable
    coefficient per map, and a trainable bias per map is added (Sec. II-B). `average=True` multiplies
    the coefficient by 1/4 (Sec. II-A calls the operation a local average), a buffer that `curvature`
    squares like any other coefficient."""

    def __init__(self, maps, average=False, in_maps=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(maps))
        self.bias = nn.Parameter(torch.empty(maps))
        self.register_buffer("scale", torch.tensor(0.25 if average else 1.0), persistent=False)
        # LeNet-4's S2 has twice the maps of its input, "connected in pairs" to each: map m reads
        # input map m * in_maps // maps (None: as many maps as its input, map m reads map m)
        in_maps = in_maps or maps
        if maps % in_maps:
            raise ValueError(f"subsampling: {maps} maps cannot read {in_maps} input maps evenly")
        self.register_buffer("sources", torch.arange(maps) * in_maps // maps if in_maps != maps else None,
                             persistent=False)

    def forward(self, x):
        sums = _sum_2x2(x) if self.sources is None else _sum_2x2(x).index_select(1, self.sources)
        return (self.weight * self.scale).view(1, -1, 1, 1) * sums + self.bias.view(1, -1, 1, 1)

    def fan_ins(self):
        return [4] * self.weight.numel()

    def connections_per_weight(self, out_shape):
        """The coefficient multiplies each of the fan_in (4) inputs of every unit of its map, the bias
        enters every unit once: 4 x 196 = 784 and 196 in S2, 4 x 25 = 100 and 25 in S4."""
        units_per_map = math.prod(out_shape[1:])
        (fan_in,) = set(self.fan_ins())
        return {"weight": fan_in * units_per_map, "bias": units_per_map}


class AveragePooling(Linear):
    """Modern plain 2x2 average pooling: no parameters. The 1/4 is a buffer so `curvature` squares it."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps
        self.register_buffer("scale", torch.tensor(0.25), persistent=False)

    def forward(self, x):
        return self.scale * _sum_2x2(x)

    def fan_ins(self):
        return [4] * self.maps


class MaxPooling(nn.Module):
    """Modern 2x2 max pooling: no parameters. Each output copies one input (coefficient 1), so the
    Gauss-Newton pass routes d2E/da^2 to the selected input, like the gradient."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def forward(self, x):
        return F.max_pool2d(x, 2)

    def curvature(self, x, d2a):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (d2x,) = torch.autograd.grad(F.max_pool2d(x, 2), x, d2a)
        return d2x, {}

    def fan_ins(self):
        return [4] * self.maps

    def connections_per_weight(self, out_shape):
        return {}


class FullConnection(Linear):
    """F6 (and the modern linear output): a dot product plus bias on the flattened input."""

    def __init__(self, in_units, out_units):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_units, in_units))
        self.bias = nn.Parameter(torch.empty(out_units))

    def forward(self, x):
        return F.linear(x.flatten(1), self.weight, self.bias)

    def fan_ins(self):
        out_units, in_units = self.weight.shape
        return [in_units] * out_units


class EuclideanRBF(nn.Module):
    """Output layer (eq. 7): y_i = sum_j (x_j - w_ij)^2, a penalty; the prediction is the argmin.
    The w_ij are the fixed +-1 prototypes, a buffer: never trained, never counted as parameters."""

    def __init__(self, prototypes):
        super().__init__()
        self.register_buffer("prototypes", prototypes.clone())

    def forward(self, x):
        return ((x.flatten(1).unsqueeze(1) - self.prototypes) ** 2).sum(-1)

    def fan_ins(self):
        classes, units = self.prototypes.shape
        return [units] * classes

    def connections_per_weight(self, out_shape):
        return {}  # the prototypes are fixed, not trained


class NegatedLinear(FullConnection):
    """The modern output: a linear layer whose logits z give penalties y = -z, so that every head is
    read the same way (argmin) and softmax/cross-entropy is eq. 9 without its e^-j term."""

    def __init__(self, in_units, out_units):
        super().__init__(in_units, out_units)
        # A buffer, not a bare minus: `curvature` squares coefficients, and (-1)^2 = 1.
        self.register_buffer("sign", torch.tensor(-1.0), persistent=False)

    def forward(self, x):
        return self.sign * super().forward(x)


def init_paper_(layer, scale=paper.INIT_SCALE, fan_power=1.0, bias="uniform"):
    """Appendix A: weights uniform in +-scale / F^fan_power, F the unit's fan-in (per output map:
    C3's maps have 75, 100 or 150). Biases count as connections in the paper's tables, so by default
    they are drawn the same way (the paper does not say; see PAPER_NOTES.md)."""
    params = dict(layer.named_parameters())
    if not params:
        return
    bounds = torch.tensor([scale / f ** fan_power for f in layer.fan_ins()])
    with torch.no_grad():
        for name, p in params.items():
            if name == "bias" and bias == "zero":
                p.zero_()
                continue
            per_map = _per_output_map_bounds(layer, name, bounds)
            p.uniform_(-1, 1).mul_(per_map)


def _per_output_map_bounds(layer, name, bounds):
    """Broadcast one bound per output map onto parameter `name` (its leading dim is output maps,
    except C3's weight, whose leading dim runs over the 60 kernels)."""
    p = getattr(layer, name)
    if isinstance(layer, SparseConvolution) and name == "weight":
        per_kernel = torch.tensor([bounds[m].item() for m, _ in c3_pairs(layer.table)])
        return per_kernel.view(-1, 1, 1)
    return bounds.view(-1, *([1] * (p.dim() - 1)))


def param_count(module):
    return sum(p.numel() for p in module.parameters())
