"""LeNet-5 (Sec. II-B, Fig. 2), assembled from a Config, and the other networks of Sec. III-C
(repro/networks.py) from the same layer types.

    input  1@32x32
    C1     6@28x28   5x5 convolution, squash
    S2     6@14x14   2x2 trainable subsampling, squash
    C3    16@10x10   5x5 convolution on the S2 maps of Table I, squash
    S4    16@5x5     2x2 trainable subsampling, squash
    C5   120@1x1     5x5 convolution, squash
    F6    84         full connection, squash
    output 10        Euclidean RBF penalties (argmin = prediction)
"""
import functools

import torch
from torch import nn

from . import layers, networks, paper
from .config import Config
from .prototypes import prototypes

LAYER_NAMES = ("c1", "s2", "c3", "s4", "c5", "f6", "output")
PREDICT_BATCH = 10_000  # images per forward pass in predict: ~650 MB for LeNet-5
ACTIVATIONS = {"scaled_tanh": layers.ScaledTanh, "relu": layers.ReLU}
POOLING = {"trainable": layers.Subsampling, "average": layers.AveragePooling, "max": layers.MaxPooling}


class FeedForward(nn.Module):
    """A stack of linear parts, each followed by its squashing function, ending in an output layer
    without one: what the training, the curvature pass and the tables need of a network.
    Subclasses set `field` (the input's side), `layer_names` (input to output, the output last)
    and `acts`."""

    def reset_parameters(self, seed):
        g = torch.random.fork_rng(devices=[])
        with g:
            torch.manual_seed(seed)
            for name in self.layer_names:
                layer = getattr(self, name)
                if self.config.init == "paper":
                    layers.init_paper_(layer, self.config.init_scale, self.config.init_fan_power, self.config.bias_init)
                else:  # PyTorch's defaults (kaiming-uniform a=sqrt(5)) come to +-1/sqrt(F) for weights and biases
                    layers.init_paper_(layer, scale=1.0, fan_power=0.5)
        if self.config.subsampling_init != "uniform":  # after every draw: the other weights stay those of "uniform"
            with torch.no_grad():
                for _, layer, _ in self.stages():
                    if isinstance(layer, layers.Subsampling):
                        # "authors": 1/sqrt(4) times the field's sum, whatever the coefficient multiplies
                        layer.weight.fill_(1.0 if self.config.subsampling_init == "one" else 0.5 / layer.scale.item())
                        layer.bias.zero_()

    @torch.no_grad()
    def connections_per_weight(self):
        """{parameter name: how many connections share each of its entries}, from each layer's
        connections_per_weight and the shape of its weighted sums in a forward pass of one blank image:
        for LeNet-5 784 for C1's kernel weights and biases, 784 for S2's coefficients and 196 for its
        biases, 100 for C3's, 100 and 25 for S4's, 1 for C5's and F6's (the paper's connections per
        layer are the sums of these over the layer's parameters)."""
        weight = next(self.parameters())
        record, _ = self.trace(torch.zeros(1, 1, self.field, self.field, dtype=weight.dtype, device=weight.device))
        counts = {}
        for (name, layer, _), (_, _, a) in zip(self.stages(), record):
            counts.update({f"{name}.{k}": n for k, n in layer.connections_per_weight(tuple(a.shape[1:])).items()})
        return counts

    def stages(self):
        """(name, linear part, squashing function) from input to output; the output has none."""
        return [(n, getattr(self, n), self.acts[n] if n in self.acts else None) for n in self.layer_names]

    def check_input(self, x):
        check_input(x, next(self.parameters()).dtype, self.field, type(self).__name__)

    def forward(self, x):
        self.check_input(x)
        for _, layer, act in self.stages():
            x = layer(x)
            if act is not None:
                x = act(x)
        return x

    def trace(self, x):
        self.check_input(x)
        return trace(self.stages(), x)

    @torch.no_grad()
    def outputs(self, x, batch=PREDICT_BATCH):
        """The outputs of images in the scaling the network was trained on (check_scaling), computed
        `batch` images at a time: a forward pass of LeNet-5 peaks at ~65 KB per image (measured), so
        MNIST's 70,000 at once would take 4.5 GB. The same outputs as one pass."""
        self.check_input(x)  # on the whole batch, so that a refusal counts and indexes its images, not a chunk's
        check_scaling(x, self.config.input)
        return torch.cat([self(chunk) for chunk in x.split(batch)])

    def predict(self, x, batch=PREDICT_BATCH):
        """Classes: every output is a penalty (the RBF's distance, or the linear head's negated logit),
        so the class is the smallest, not the largest (`model(x).argmax(1)` is almost always wrong)."""
        return self.outputs(x, batch).argmin(dim=1)

    def scores(self, x, batch=PREDICT_BATCH):
        """(N, 10) scores, the largest wins: the negated penalties. To reject doubtful digits, threshold
        the gap between the top two (repro.rejection.top_two_gap), the paper's criterion (Fig. 10).
        (repro.combinations.scores gives the same by the native forward pass, the same bits on every CPU.)"""
        return -self.outputs(x, batch)


class LeNet5(FeedForward):
    field = paper.INPUT_SIZE
    layer_names = LAYER_NAMES

    def __init__(self, config: Config = Config(), seed: int = 0):
        super().__init__()
        self.config = config
        act = ACTIVATIONS[config.activation]
        pool = POOLING[config.subsampling]
        if config.subsampling == "trainable":
            pool = functools.partial(pool, average=config.subsampling_input == "average")
        table = paper.C3_TABLE if config.c3 == "table" else [tuple(range(6))] * 16
        self.c1 = layers.Convolution(1, 6)
        self.s2 = pool(6)
        self.c3 = layers.SparseConvolution(table, 6)
        self.s4 = pool(16)
        self.c5 = layers.Convolution(16, 120)
        self.f6 = layers.FullConnection(120, 84)
        self.output = (layers.EuclideanRBF(prototypes(config.prototypes)) if config.output == "rbf"
                       else layers.NegatedLinear(84, 10))
        # Each layer's squashing function; plain pooling is the whole modern pooling step, unsquashed.
        plain_pool = config.subsampling != "trainable"
        self.acts = nn.ModuleDict({n: layers.Identity() if (n in ("s2", "s4") and plain_pool) else act()
                                   for n in LAYER_NAMES[:-1]})
        self.reset_parameters(seed)


def trace(stages, x):
    """Forward pass keeping each layer's (name, input, weighted sums), for the curvature pass and figures."""
    record = []
    for name, layer, act in stages:
        a = layer(x)
        record.append((name, x, a))
        x = act(a) if act is not None else a
    return record, x


class Network(FeedForward):
    """One of repro/networks.py's networks: its layers, each squashed by the scaled tanh, and the
    output of its spec: a Euclidean RBF on the last layer, to the place code (10 units: argmin = the
    largest unit) or to LeNet-5's bitmaps (84 units)."""

    def __init__(self, config: Config, seed: int = 0):
        super().__init__()
        self.config, spec = config, networks.get(config.network)
        self.field = spec.field
        maps, side = 1, spec.field
        for name, (kind, size, *rest) in spec.layers:
            if kind == "conv":
                kernel, table = rest
                layer = (layers.Convolution(maps, size, kernel) if table is None
                         else layers.SparseConvolution(table, maps, kernel))
                side -= kernel - 1
            elif kind == "pool":
                layer = layers.Subsampling(size, average=config.subsampling_input == "average", in_maps=maps)
                side //= 2
            else:
                layer, side = layers.FullConnection(maps * side * side, size), 1
            setattr(self, name, layer)
            maps = size
        self.output = layers.EuclideanRBF(prototypes() if spec.output == "bitmaps" else networks.place_code(maps))
        self.layer_names = tuple(n for n, _ in spec.layers) + ("output",)
        self.acts = nn.ModuleDict({n: layers.ScaledTanh() for n, _ in spec.layers})
        self.reset_parameters(seed)


def build(config: Config = Config(), seed: int = 0):
    """The network `config.network` names, initialised from `seed`."""
    return LeNet5(config, seed) if config.network == networks.LENET5 else Network(config, seed)


def check_input(x, dtype=None, side=paper.INPUT_SIZE, name="LeNet5"):
    """A clear error for what network `name` (input side x side) cannot take; `dtype`, if given, is
    the parameters' dtype."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} expects a torch.Tensor of shape (N, 1, {side}, {side}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects a floating-point image tensor, got dtype {x.dtype} "
                         "(use repro.data.preprocess to scale uint8 MNIST images)")
    if dtype is not None and x.dtype != dtype:
        dtype_name = lambda t: str(t).removeprefix("torch.")
        raise ValueError(f"{name}'s parameters are {dtype_name(dtype)} but the images are {dtype_name(x.dtype)}; "
                         f"convert the images with x.to({dtype}) (or the model with model.to({x.dtype}))")
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[-2:] != (side, side):
        hint = (" (28x28 MNIST digits are padded to 32x32 by repro.data.preprocess)" if side == paper.INPUT_SIZE
                else " (repro.data.load_field gives each network its images)")
        raise ValueError(f"{name} expects images of shape (N, 1, {side}, {side}), got {tuple(x.shape)}{hint}")
    # A NaN pixel gives NaN penalties and class 0, an infinite one some class: neither is a prediction.
    # Inside torch.compile's graph a test on values cannot be traced; TorchStep checks the block before.
    if not torch.compiler.is_compiling() and not torch.isfinite(x).all():
        bad = ~torch.isfinite(x).flatten(1).all(dim=1)
        raise ValueError(f"{name} got {int(bad.sum())} of {len(x)} images with NaN or infinite pixels "
                         f"(the first: image {int(bad.nonzero()[0])}); the pixels must be finite")


def check_labels(labels, n):
    """A clear error for labels that are not n integer classes: a float label 3.5 would be truncated
    to 3 by the conversion the steps make."""
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype.is_complex \
            or labels.dtype == torch.bool:
        what = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of classes 0..9 (torch.int64), got {what}")
    if labels.shape != (n,):
        raise ValueError(f"{n} images need {n} labels, got labels of shape {tuple(labels.shape)}")


# Each image of an input scaling spans exactly these values, its background being the lowest
SCALINGS = {"paper": (paper.INPUT_BACKGROUND, paper.INPUT_INK), "unit": (0.0, 1.0)}


def check_scaling(x, scaling="paper", tolerance=1e-3):
    """A clear error for images not in the scaling a network was trained on: with the paper's, every
    pixel lies in [-0.1, 1.175] and every image has background (-0.1) around the digit. This catches
    pixels in 0..1 or 0..255 and torchvision's MNIST normalisation, which run without a word and give
    half the classes wrong. ("standardized" inputs are not checked: their range depends on the data.)"""
    if scaling not in SCALINGS or not len(x):
        return
    low, high = SCALINGS[scaling]
    lowest = x.flatten(1).min(dim=1).values
    if (lowest - low).abs().max() > tolerance or x.max() > high + tolerance:
        raise ValueError(f"images must be in the {scaling!r} input scaling (background {low:g}, full ink {high:g}; "
                         f"repro.data.preprocess makes it from uint8 digits), got pixels from {x.min().item():.4g} "
                         f"to {x.max().item():.4g}")


def predict(model, x, batch=PREDICT_BATCH):
    return model.predict(x, batch)
