"""Tables regenerated from the code: per-layer parameters and connections (Sec. II-B), Table I,
the variants' counts and the prototypes' distances. `make tables` writes them to results/tables/;
a test checks the committed files equal what this module renders."""
import torch

from . import networks, paper
from .config import VARIANTS, get_config
from .model import LeNet5, Network, build
from .config import Config
from .layers import param_count
from .prototypes import prototypes


def layer_rows(model):
    """One row per layer: maps, map size, trainable parameters, connections.

    Connections are counted from geometry: each unit of an output map has fan-in weighted inputs plus
    one bias (if the layer has biases), times the number of units in that map."""
    record, _ = model.trace(torch.zeros(1, 1, model.field, model.field))
    rows = []
    for name, _, a in record:
        layer = getattr(model, name)
        if isinstance(model, Network) and name == "output" and networks.get(model.config.network).output == "place":
            continue  # the place-code comparison is the loss's, not a layer of the 1990-1995 networks (A25)
        units_per_map = a[0, 0].numel() if a.dim() == 4 else 1
        bias = 1 if hasattr(layer, "bias") else 0
        rows.append(dict(layer=name.upper(), maps=a.shape[1], size=f"{a.shape[-1]}x{a.shape[-2]}" if a.dim() == 4 else "1",
                         params=param_count(layer),
                         connections=sum((f + bias) * units_per_map for f in layer.fan_ins())))
    return rows


def markdown(rows, columns):
    fmt = lambda v: f"{v:,}" if isinstance(v, int) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def lenet5_layers():
    rows = layer_rows(LeNet5())
    for r in rows:
        r.update(paper_params=paper.LAYERS[r["layer"]]["params"], paper_connections=paper.LAYERS[r["layer"]]["connections"])
    rows.append(dict(layer="TOTAL", maps="", size="", params=sum(r["params"] for r in rows),
                     connections=sum(r["connections"] for r in rows),
                     paper_params=paper.TOTAL_PARAMS, paper_connections=paper.TOTAL_CONNECTIONS))
    return rows


LAYER_COLUMNS = ("layer", "maps", "size", "params", "connections", "paper_params", "paper_connections")


def lenet5_layers_csv():
    rows = lenet5_layers()
    return "\n".join([",".join(LAYER_COLUMNS)] + [",".join(str(r[c]) for c in LAYER_COLUMNS) for r in rows]) + "\n"


def lenet5_layers_md():
    return "# LeNet-5: parameters and connections per layer (counted from the code vs Sec. II-B)\n\n" + \
        markdown(lenet5_layers(), LAYER_COLUMNS)


def c3_connections_md():
    """Table I: rows are S2 maps, columns C3 maps, X where the code's C3 connects them."""
    table = LeNet5().c3.table
    cols = [str(m) for m in range(len(table))]
    rows = [dict({"S2": i}, **{str(m): "X" if i in table[m] else "" for m in range(len(table))}) for i in range(6)]
    return "# Table I, regenerated from the C3 module: S2 map (row) feeds C3 map (column)\n\n" + \
        markdown(rows, ["S2"] + cols)


def variants_md():
    rows = []
    for name, overrides in VARIANTS.items():
        per_layer = {r["layer"]: r for r in layer_rows(build(get_config(name)))}
        changes = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "-"
        rows.append(dict(variant=name, changes=changes,
                         c3_params=per_layer["C3"]["params"], output_params=per_layer.get("OUTPUT", {"params": 0})["params"],
                         params=sum(r["params"] for r in per_layer.values()),
                         connections=sum(r["connections"] for r in per_layer.values())))
    return "# Variants: trainable parameters and connections\n\n" + \
        markdown(rows, ("variant", "changes", "c3_params", "output_params", "params", "connections"))


def prototypes_md():
    """Pairwise Hamming distances between the 7x12 prototypes (squared Euclidean = 4 x Hamming)."""
    p = prototypes()
    d = ((p[:, None] - p[None]) ** 2).sum(-1) / 4
    rows = [dict({"digit": i}, **{str(j): int(d[i, j]) for j in range(10)}) for i in range(10)]
    off = d[~torch.eye(10, dtype=torch.bool)]
    return ("# RBF prototypes: pairwise Hamming distances (pixels that differ, of 84)\n\n" + markdown(rows, ["digit"] + [str(j) for j in range(10)])
            + f"\nmin {int(off.min())}, median {off.median().item():g}, max {int(off.max())}\n")


def network_layers_md(name, facts):
    """A network of repro/networks.py layer by layer, its totals beside the paper's (`facts`: the
    repro.paper dict of its stated counts; the paper gives no per-layer counts for these)."""
    model = Network(Config(network=name))
    rows = layer_rows(model)
    rows.append(dict(layer="TOTAL", maps="", size="", params=sum(r["params"] for r in rows),
                     connections=sum(r["connections"] for r in rows)))
    stated = "; ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in facts.items())
    return (f"# {name}: parameters and connections per layer (counted from the code)\n\n"
            + markdown(rows, ("layer", "maps", "size", "params", "connections"))
            + f"\nThe paper (PAPER_NOTES.md, A25-A27): {stated}.\n")


TABLES = {
    "lenet5_layers.csv": lenet5_layers_csv,
    "lenet5_layers.md": lenet5_layers_md,
    "c3_connections.md": c3_connections_md,
    "variants.md": variants_md,
    "prototypes.md": prototypes_md,
    "lenet1_layers.md": lambda: network_layers_md("lenet1", paper.LENET1),
    "lenet4_layers.md": lambda: network_layers_md("lenet4", paper.LENET4),
}
