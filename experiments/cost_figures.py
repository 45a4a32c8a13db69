"""Figs. 10-12 of Sec. III-D with our measurements beside the paper's, and their table; used by
experiments/compare.py.

`rows` is a pandas DataFrame with one row per method (the names of repro.paper.FIG9_ERROR) and the
columns method, rejection (the fraction of the test patterns rejected to reach
paper.REJECTION_TARGET error, repro/rejection.py; NaN where not measured), macs (multiply-accumulates
to recognise one image) and memory (variables stored at recognition time). Every method with a
value, ours or the paper's, gets a line, in Fig. 9's order; a missing value gets no bar, and "–" in
the table.
"""
import pandas as pd

from repro import paper

COLUMNS = ("method", "rejection", "macs", "memory")
# column -> (the paper's figure, its values, the axis); the counts are drawn in thousands, as printed
FIGURES = {
    "rejection": ("Fig. 10", paper.FIG10_REJECTION,
                  f"% of test patterns rejected to reach {paper.REJECTION_TARGET:.1%} error"),
    "macs": ("Fig. 11", paper.FIG11_MACS, "multiply-accumulates per image, thousands (log scale)"),
    "memory": ("Fig. 12", paper.FIG12_MEMORY, "variables stored, thousands (log scale)"),
}


def by_method(rows):
    """rows indexed by method, after one clear error for a missing column, a repeated method or one
    that Fig. 9 does not have."""
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack the column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    if rows.method.duplicated().any():
        raise ValueError(f"one row per method expected; repeated: {', '.join(rows.method[rows.method.duplicated()])}")
    unknown = sorted(set(rows.method) - set(paper.FIG9_ERROR))
    if unknown:
        raise ValueError(f"methods not in Fig. 9: {', '.join(unknown)}")
    return rows.set_index("method")


def values(rows, column):
    """{method: our value} where we have one."""
    col = by_method(rows)[column]
    return {n: float(v) for n, v in col.items() if pd.notna(v)}


def ordered(*tables):
    """The methods with a value in any of the {method: value} tables, in Fig. 9's order."""
    return [n for n in paper.FIG9_ERROR if any(n in t for t in tables)]


def label(column, v):
    """A bar's printed value: a percentage for the rejection, else thousands as the paper prints them."""
    if column == "rejection":
        return f"{100 * v:.1f}%"
    return f"{v / 1000:,.0f}" if v >= 10_000 else f"{v / 1000:.1f}"


def bars(rows, column, path):
    """Horizontal bars of the paper's values and ours for one column, into the PNG `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, papers, xlabel = FIGURES[column]
    ours = values(rows, column)
    names = ordered(papers, ours)
    unit = 100 if column == "rejection" else 1 / 1000  # percent, or thousands
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(names) + 1.2))
    for offset, table, colour, name in ((-0.2, papers, "tab:gray", f"paper ({figure})"), (0.2, ours, "tab:blue", "ours")):
        at = [(i + offset, table[n]) for i, n in enumerate(names) if n in table]
        if not at:
            continue
        ax.barh([y for y, _ in at], [unit * v for _, v in at], height=0.4, color=colour, label=name,
                log=column != "rejection")
        for y, v in at:
            ax.text(unit * v, y, " " + label(column, v), va="center", fontsize=7)
    ax.set(yticks=range(len(names)), yticklabels=names, xlabel=xlabel)
    ax.margins(x=0.1)  # room for the printed values
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig10(rows, path):
    """Fig. 10: the fraction rejected to reach paper.REJECTION_TARGET error, in percent."""
    bars(rows, "rejection", path)


def fig11(rows, path):
    """Fig. 11: multiply-accumulates to recognise one image, log scale."""
    bars(rows, "macs", path)


def fig12(rows, path):
    """Fig. 12: variables stored at recognition time, log scale."""
    bars(rows, "memory", path)


def cell(column, table, name, digits):
    """One table cell: the value, or "–" where there is none."""
    if name not in table:
        return "–"
    v = table[name]
    return f"{100 * v:.{digits}f}%" if column == "rejection" else f"{round(v):,}"


def cost_table(rows):
    """Markdown lines: per method, the rejection to reach paper.REJECTION_TARGET, the
    multiply-accumulates and the memory, ours beside the paper's (whose rejection is printed to a
    tenth of a percent)."""
    ours = {c: values(rows, c) for c in FIGURES}
    lines = [f"| method | rejection to {paper.REJECTION_TARGET:.1%}, ours | paper | MACs, ours | paper "
             "| memory, ours | paper |", "|---|---|---|---|---|---|---|"]
    for n in ordered(*ours.values(), *(p for _, p, _ in FIGURES.values())):
        cells = [f"{cell(c, ours[c], n, 2)} | {cell(c, p, n, 1)}" for c, (_, p, _) in FIGURES.items()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines
