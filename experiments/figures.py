"""`make figures`: the paper's figures, redrawn from the code and from saved runs, into
results/figures/figN_<what>.png. Each figure reads only committed results (results/*/metrics.csv and
the final weights in results/*/runs/*/model.pt), so it is regenerated in seconds; a figure whose
runs are missing is skipped with a note naming the make target that produces them.

  fig3_prototypes         the ten 7x12 RBF prototypes (repro/prototypes.py)
  fig5_learning_curves    training error (on the fly and after the pass) and test error per pass
  fig6_training_size      error against training-set size, with the distortion result
  fig7_distortions        training digits and random distortions of them (repro/distortions.py)
  fig8_misclassified      the test digits the best faithful network gets wrong, true -> predicted
  fig13_feature_maps      C1, S2, C3 and S4 of that network on one test digit

It writes results/figures/ and RESULTS.md's figures block only from committed code; with --scratch it
writes scratch/results/figures/ instead (it still reads the committed results/). render() makes the
block from the committed results/*/metrics.csv only.
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from repro import paper  # noqa: E402
from repro import data as mnist  # noqa: E402
from repro import weights  # noqa: E402
from repro.distortions import distort  # noqa: E402
from repro.prototypes import prototypes  # noqa: E402
from blocks import RESULTS_MD, write  # noqa: E402
from runner import add_scratch_arg, confirm_outputs, output_dirs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
FAITHFUL = {"reproduce": ["paper"], "distortions": ["distortions"]}  # the paper's two regimes (not our -fresh row)


def last_pass(experiment, results=RESULTS):
    path = results / experiment / "metrics.csv"
    if not path.exists():
        return None
    m = pd.read_csv(path)
    return m[m["pass"] == m.groupby(["variant", "seed"])["pass"].transform("max")]


def load_run(experiment, variant, seed):
    """The network a committed run ended with."""
    return weights.load(RESULTS / experiment / "runs" / f"{variant}_seed{seed}" / "model.pt")


def fig3(out):
    fig, axes = plt.subplots(1, 10, figsize=(8, 1.9))
    for digit, (ax, code) in enumerate(zip(axes, prototypes())):
        ax.imshow(code.view(paper.BITMAP_HEIGHT, paper.BITMAP_WIDTH), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(str(digit))
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Fig. 3: the RBF output prototypes (7x12, +1 black, -1 white)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "fig3_prototypes.png", dpi=120)


def fig5(out):
    m = pd.read_csv(RESULTS / "reproduce" / "metrics.csv")
    m = m[m.variant == "paper"]
    mean = m.groupby("pass")[["train_error_online", "train_error", "test_error"]].mean() * 100
    fig, ax = plt.subplots(figsize=(6, 4))
    for col, label in [("train_error_online", "training error, on the fly during the pass (as Fig. 5)"),
                       ("test_error", "test error")]:
        color = "tab:red" if col == "test_error" else "tab:blue"
        for _, s in m.groupby("seed"):
            ax.plot(s["pass"], 100 * s[col], color=color, alpha=0.2)
        ax.plot(mean.index, mean[col], color=color, lw=2, label=label)
    last = mean.dropna().index.max()  # the whole training set is measured after the last pass
    ax.plot([last], [mean.loc[last, "train_error"]], "x", color="tab:blue", ms=8,
            label="training error on the whole set after the last pass")
    ax.axhline(100 * paper.TEST_ERROR, color="tab:red", ls=":", label="paper's test error (0.95%)")
    ax.set(xlabel="training pass", ylabel="error (%)", ylim=(0, 5), xticks=range(0, 21, 2),
           title=f"Fig. 5: the faithful recipe, mean of {m.seed.nunique()} seeds (thin: each seed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5_learning_curves.png", dpi=120)


def fig6(out):
    sizes, full = last_pass("training_size"), last_pass("reproduce")
    rows = pd.concat([sizes.assign(size=sizes.variant.str.split("-").str[-1].astype(int)),
                      full[full.variant == "paper"].assign(size=60_000)])
    g = rows.groupby("size")[["train_error", "test_error"]]
    mean, sd = g.mean() * 100, g.std().fillna(0) * 100
    fig, ax = plt.subplots(figsize=(6, 4))
    for col, color, label in [("test_error", "tab:red", "test error"), ("train_error", "tab:blue", "training error")]:
        ax.errorbar(mean.index, mean[col], sd[col], fmt="o-", color=color, capsize=3, label=label)
    dist = last_pass("distortions")
    if dist is not None and (dist.variant == "distortions").any():
        runs = dist[dist.variant == "distortions"]
        for col, color, label, dx in [("test_error", "tab:red", "test", -900),
                                      ("train_error", "tab:blue", "training", 900)]:
            e = 100 * runs[col]  # nudged apart: with distortions the two errors nearly coincide
            ax.errorbar([60_000 + dx], [e.mean()], [e.std()], fmt="s", mfc="none", color=color, capsize=3,
                        label=f"{label} error, with 540,000 distortions")
    ax.set(xlabel="training set size", ylabel="error (%)", xticks=[15_000, 30_000, 60_000], ylim=(0, None),
           title="Fig. 6: error against training-set size (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig6_training_size.png", dpi=120)


def fig7(out, data):
    x, y = data["train_x"], data["train_y"]
    first = [int((y == d).nonzero()[0]) for d in range(10)]
    g = torch.Generator().manual_seed(0)
    rows = [x[first]] + [distort(x[first], g) for _ in range(4)]
    fig, axes = plt.subplots(5, 10, figsize=(8, 4.4))
    for r, images in enumerate(rows):
        for c in range(10):
            axes[r, c].imshow(images[c, 0], cmap="gray_r", vmin=paper.INPUT_BACKGROUND, vmax=paper.INPUT_INK)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel("original" if r == 0 else f"distorted {r}", fontsize=8)
    fig.suptitle("Fig. 7: training digits and random affine distortions of them (32x32 input field)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "fig7_distortions.png", dpi=120)


def best_faithful(results=RESULTS):
    """(experiment, variant, seed, test error, test misses) of the committed faithful run with the
    lowest test error."""
    best = None
    for experiment, variants in FAITHFUL.items():
        last = last_pass(experiment, results)
        if last is None:
            continue
        for _, r in last[last.variant.isin(variants)].iterrows():
            if best is None or r.test_error < best[3]:
                best = (experiment, r.variant, int(r.seed), r.test_error, int(r.test_misses))
    return best


def fig8(out, data, model, best):
    _, variant, seed, _, misses = best
    with torch.no_grad():
        pred = model.predict(data["test_x"])
    wrong = (pred != data["test_y"]).nonzero()[:, 0]
    if len(wrong) != misses:  # render() says the run's recorded count under this figure
        raise SystemExit(f"fig8: {variant} seed {seed}'s weights miss {len(wrong)} test digits, its metrics.csv "
                         f"records {misses}")
    cols = 12
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.95 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(data["test_x"][i, 0, 2:30, 2:30], cmap="gray_r")
        ax.set_title(f"{data['test_y'][i].item()}->{pred[i].item()}", fontsize=8)
    fig.suptitle(f"Fig. 8: the {len(wrong)} test digits misclassified by {variant} seed {seed} "
                 f"(the paper's Fig. 8 shows 82); true->predicted", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "fig8_misclassified.png", dpi=120)
    return len(wrong)


def fig13(out, data, model, best):
    _, variant, seed, *_ = best
    x = data["test_x"][:1]
    with torch.no_grad():
        record, y = model.trace(x)
    acts = {name: model.acts[name](a)[0] for name, _, a in record if name in ("c1", "s2", "c3", "s4")}
    layout = [("input", x[0]), ("c1", acts["c1"]), ("s2", acts["s2"]), ("c3", acts["c3"]), ("s4", acts["s4"])]
    fig, axes = plt.subplots(len(layout), 16, figsize=(12, 4.6))
    for r, (name, maps) in enumerate(layout):
        for c in range(16):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(maps):
                ax.imshow(maps[c], cmap="gray_r", vmin=-1.7159, vmax=1.7159)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name.upper() if name != "input" else "input", fontsize=9)
    fig.suptitle(f"Feature maps of {variant} seed {seed} on test digit 0 (label {data['test_y'][0].item()}, "
                 f"recognised as {y.argmin(1).item()}); black = +1.7, white = -1.7", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "fig13_feature_maps.png", dpi=120)


# (name, file stem, caption) of the figures drawn from the code alone; then (name, file stem, drawing,
# the experiments whose committed runs it needs, caption) of those drawn from runs
FROM_CODE = [("fig3", "fig3_prototypes", "Fig. 3: the RBF prototypes as drawn in `repro/prototypes.py` (the paper prints "
              "only a picture)."),
             ("fig7", "fig7_distortions", "Fig. 7: four random distortions of one training digit per class, with the "
              "ranges of `repro/distortions.py`.")]
FROM_RUNS = [("fig5", "fig5_learning_curves", fig5, ("reproduce",), "Fig. 5: learning curves of the faithful recipe, "
              "every seed and their mean; the training error is measured on the fly during each pass, as in the paper."),
             ("fig6", "fig6_training_size", fig6, ("training_size", "reproduce"), "Fig. 6: training and test error "
              "against the training-set size (15,000, 30,000 and 60,000 originals; hollow square: the 540,000 "
              "distortions); the numbers are in results/training_size/, results/reproduce/ and results/distortions/.")]


def missing(needs, results=RESULTS):
    """Why a figure of FROM_RUNS that needs the committed runs of the experiments `needs` cannot be
    drawn; None where it can."""
    targets = [f"`make {e.replace('_', '-')}`" for e in needs if last_pass(e, results) is None]
    return f"run {' and '.join(targets)} first" if targets else None


def render(results_dir):
    """RESULTS.md's figures block: each figure that the committed runs in results/ (results_dir's
    parent) let `make figures` draw, with its caption."""
    results = Path(results_dir).parent
    lines = [line for name, stem, caption in FROM_CODE for line in (f"![{name}](results/figures/{stem}.png)", caption, "")]
    lines += [line for name, stem, _, needs, caption in FROM_RUNS if missing(needs, results) is None
              for line in (f"![{name}](results/figures/{stem}.png)", caption, "")]
    best = best_faithful(results)
    if best is not None:
        _, variant, seed, _, misses = best
        lines += ["![fig8](results/figures/fig8_misclassified.png)",
                  f"Fig. 8: the {misses} test digits that the best faithful run ({variant}, seed {seed}) gets "
                  "wrong, against the paper's 82 (its distortion-trained network).", "",
                  "![feature maps](results/figures/fig13_feature_maps.png)",
                  "Feature maps of the same network on the first test digit: C1 and S2 keep the stroke "
                  "layout, C3 and S4 respond to parts of it.", ""]
    return {RESULTS_MD + "figures": "\n".join(lines)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    add_scratch_arg(ap)
    scratch = ap.parse_args().scratch
    out, _ = output_dirs("figures", scratch)
    confirm_outputs("make figures", scratch, out)
    out.mkdir(parents=True, exist_ok=True)
    data = mnist.load_mnist()
    fig3(out)
    fig7(out, data)
    for name, _, draw, needs, _ in FROM_RUNS:
        note = missing(needs)
        if note is None:
            draw(out)
        print(f"{name}: skipped, {note}" if note else f"{name}: written")
    best = best_faithful()
    if best is None:
        print("fig8, fig13: skipped, run `make reproduce` first")
    else:
        model = load_run(*best[:3])
        wrong = fig8(out, data, model, best)
        fig13(out, data, model, best)
        print(f"fig8: {wrong} misclassified test digits ({best[1]} seed {best[2]}; the paper: 82)")
    write(out, render(RESULTS / "figures"), blocks=not scratch)
    print(f"figures in {out}")


if __name__ == "__main__":
    main()
