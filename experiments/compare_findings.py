"""`make compare-findings`: where a row of `make compare` misses the paper's figure, what changes
it. Each finding changes one thing of one row (the data version, k, the units, the kernel, the
number of training images; for a network one field of its recipe) and measures the test error again; the row itself keeps the text's
reading (results/compare/). These are explanations, not choices: nothing here feeds back into a
row, so looking at the test set is what they are for.

The SVM findings take their C from the SVM study's validation runs (results/svm_search/decision.json):
the text's reading (regular images, homogeneous kernel) where the study chose otherwise, and the
inhomogeneous kernel on the regular images, each with the C that did best for it.

Writes results/compare_findings/: findings.csv (one row per finding: the row it explains, what
changed, the test error, the row's and the paper's), ink_loss.csv (ink_loss(): what the distortions cut
from the 28x28 networks' view), table.md and RESULTS.md's findings block (render(): from those two and
results/compare/metrics.csv only), runs/ (each run's meta.json).
Runs are cached in runs/compare_findings/ and run in parallel like make compare's; only the full
default run writes results/, and only from committed code.
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from compare import run_all, seeds
from blocks import RESULTS_MD, write, write_invocation
from runner import ROOT, add_scratch_arg, at_least_one, confirm_outputs, keep_provenance, output_dirs
from repro import data as mnist
from repro import networks, paper
from repro.distortions import RANGE_SETS, distort, ink_outside
from repro.classical.svm import CHOSEN


def svm_study():
    """results/svm_search/decision.json, its degrees as ints."""
    d = json.loads((ROOT / "results" / "svm_search" / "decision.json").read_text())
    return {**{k: {int(deg): v for deg, v in d[k].items()} for k in ("svm", "text", "inhomogeneous")}, "pairwise": d["pairwise"]}


# (row, seed) of the runs of make compare that give no test pattern to some class (results/compare/metrics.csv)
LOST = [("mlp-300-100", 2), ("mlp-500-150", 0), ("mlp-500-150-dist", 0)]


SVM_ROWS = {4: "svm-poly4", 5: "rs-svm-poly5", 9: "v-svm-poly9-dist"}


def svm_findings(study):
    """Per SVM row, the readings the SVM study did not choose: the text's (the regular images, the
    homogeneous kernel) and the inhomogeneous kernel on the regular images, each with the C that did
    best for it on the validation split (`study`: svm_study()); the pairwise classifier on the regular
    images, the text's, if the study chose the deskewed ones."""
    out = [] if study["pairwise"] == "regular" else [
        ("pairwise_text", "pairwise", "pairwise", "preprocessing", "the text's reading: the regular images", dict(version="regular"))]
    for degree, row in SVM_ROWS.items():
        seed = ", seed 0" if degree == 9 else ""
        for tag, kernel, coef0, c in (("text", "the text's reading: the regular images, the homogeneous kernel (g x.y)^", 0.0,
                                       study["text"][degree]),
                                      ("coef0", "the regular images, the inhomogeneous kernel (g x.y + 1)^", 1.0,
                                       study["inhomogeneous"][degree])):
            reading = dict(version="regular", coef0=coef0, c=c)
            if reading != study["svm"][degree]:  # else it is the row
                out.append((f"{row}_{tag}", row, row, "preprocessing and kernel", f"{kernel}{degree}, C = {c:g}{seed}", reading))
    return out


def findings():
    """(label, the row it explains, the method fitted, question, change described, changes), the
    costliest first. The method is the row's except where the finding asks what the row starts from.
    A "seed" among the changes picks the seed (default 0)."""
    return svm_findings(svm_study()) + [
        *[(f"boosted-lenet4-dist_exit{'' if seed == 0 else f'_seed{seed}'}", "boosted-lenet4-dist",
           "boosted-lenet4-dist", "early exit", "net 1 alone where its top-two gap is above the largest at which "
           f"it disagrees with the three nets on the training images (A29), seed {seed}",
           dict(early_exit=True, seed=seed)) for seed in seeds("boosted-lenet4-dist")],
        ("v-svm-poly9-dist_translations", "v-svm-poly9-dist", "v-svm-poly9-dist", "virtual SVs",
         "the 4 one-pixel translations of each support vector (Burges & Schoelkopf 1997) instead of 4 distorted "
         "copies, seed 0", dict(virtual="translations")),
        ("v-svm-poly9-dist_first", "v-svm-poly9-dist", "svm-poly4", "virtual SVs",
         f"no virtual SVs: the degree-9 SVM (C = {CHOSEN[9]['c']:g}) that the virtual SVs start from",
         dict(degree=9, **CHOSEN[9])),
        ("rs-svm-poly5_unreduced", "rs-svm-poly5", "svm-poly4", "reduction",
         f"no reduction: the degree-5 SVM (C = {CHOSEN[5]['c']:g}) that the reduced set approximates",
         dict(degree=5, **CHOSEN[5])),
        ("rs-svm-poly5_60", "rs-svm-poly5", "rs-svm-poly5", "reduction", "60 reduced-set vectors per pair (2,700 in all)",
         dict(per_pair=60)),
        ("tangent-distance_300", "tangent-distance", "tangent-distance", "prefilter", "300 Euclidean candidates",
         dict(candidates=300)),
        ("tangent-distance_blur", "tangent-distance", "tangent-distance", "smoothing",
         "tangents of the image blurred with sigma 1.5 pixels", dict(smoothing=1.5)),
        ("linear_tanh", "linear", "linear", "units", "tanh units fitted by gradient descent (L-BFGS) from the least squares",
         dict(units="tanh")),
        ("linear-deslant_tanh", "linear-deslant", "linear-deslant", "units", "the same on the deslanted set",
         dict(units="tanh")),
        ("knn_k1", "knn", "knn", "k", "k = 1", dict(k=1)),
        ("knn_k5", "knn", "knn", "k", "k = 5", dict(k=5)),
        ("knn_16x16", "knn", "knn", "data version", "the 16x16 images, k = 3", dict(version="16x16")),
        ("knn_20000", "knn", "knn", "training images", "the first 20,000 training images, k = 3", dict(train_size=20000)),
        ("knn_10000", "knn", "knn", "training images", "the first 10,000 training images, k = 3", dict(train_size=10000)),
        ("knn-deslant_k1", "knn-deslant", "knn-deslant", "k", "k = 1", dict(k=1)),
        ("rbf-network_ridge", "rbf-network", "rbf-network", "regulariser",
         "ridge 1e-5 (the linear classifiers' 1e-3 / 100), seed 0", dict(ridge=1e-5)),
        ("rbf-network_ridge-linear", "rbf-network", "rbf-network", "regulariser",
         "the linear classifiers' ridge 1e-3 (the row before make rbf-search), seed 0", dict(ridge=1e-3)),
        ("rbf-network_wide", "rbf-network", "rbf-network", "widths", "every width doubled, seed 0", dict(width_scale=2.0)),
        ("pca-quadratic_raw", "pca-quadratic", "pca-quadratic", "scaling", "the 40 projections not whitened",
         dict(whiten=False)),
        ("pca-quadratic_linear", "pca-quadratic", "pca-quadratic", "inputs", "with the 40 linear terms (861 inputs)",
         dict(linear_terms=True)),
        # the networks: one field of the recipe (repro.config.Config) changed, seed 0
        ("lenet5-dist_huge", "lenet5-dist", "lenet5-dist", "distortion ranges",
         "the \"huge\" ranges (repro.distortions.RANGE_SETS; the MNIST page's \"huge distortions\": "
         f"{paper.MNIST_PAGE_HUGE_DISTORTIONS:.2%}), seed 0", dict(distortion_ranges="huge")),
        ("lenet4_rbf-head", "lenet4", "lenet4", "head", "LeNet-5's head: F6's 84 units and the RBF on the 7x12 bitmaps "
         "(the head study), seed 0", dict(network="lenet4-rbf")),
        ("mlp-300_field32", "mlp-300", "mlp-300", "input field", "LeNet-5's 32x32 field (1,024 inputs), seed 0",
         dict(network="mlp-300-field32")),
        ("mlp-300-dist_field32", "mlp-300-dist", "mlp-300-dist", "input field", "LeNet-5's 32x32 field (1,024 inputs): "
         "no distorted digit loses ink to a crop, seed 0", dict(network="mlp-300-field32")),
        ("mlp-300_eq8", "mlp-300", "mlp-300", "loss", "eq. 8: the mean-squared error to the place code, seed 0",
         dict(loss="ml")),
        ("mlp-300_init", "mlp-300", "mlp-300", "initialisation", "the text's +-2.4/F initialisation, seed 0",
         dict(init_fan_power=1.0)),
        ("mlp-300_passes", "mlp-300", "mlp-300", "passes", "10 passes (the text's lower end), seed 0", dict(passes=10)),
        ("mlp-300_passes2", "mlp-300", "mlp-300", "passes", "2 passes, seed 0", dict(passes=2)),
        ("mlp-300_eta", "mlp-300", "mlp-300", "rates", "every pass's eta ten times smaller, seed 0",
         dict(eta=tuple(r / 10 for r in paper.ETA_SCHEDULE))),
        ("mlp-300_10000", "mlp-300", "mlp-300", "training images", "the first 10,000 training images, seed 0",
         dict(train_size=10_000)),
        ("mlp-1000_eq8", "mlp-1000", "mlp-1000", "loss", "eq. 8: the mean-squared error to the place code, seed 0",
         dict(loss="ml")),
        ("lenet4_eq8", "lenet4", "lenet4", "loss", "eq. 8: the mean-squared error to the place code, seed 0",
         dict(loss="ml")),
        # the rows with a seed that loses a class under the recipe (A31): every seed with steps capped 5x
        # lower, the failed one first, so that the cap's effect on the seeds that train is measured too
        *[(f"{row}_seed{seed}_mu", row, row, "step cap", f"mu = 0.1 (steps at most eta / 0.1), seed {seed}",
           dict(mu=0.1, seed=seed)) for row, failed in LOST for seed in [failed, *(s for s in seeds(row) if s != failed)]],
    ]


CROPPED = networks.get("mlp-300").field  # the side the 28x28 networks crop the distorted 32x32 field to


def ink_loss(images):
    """ink_loss.csv's rows: per range set of repro.distortions, the share of ink that one draw of
    distortions of `images` (uint8 28x28) puts outside the central CROPPED box."""
    x = mnist.preprocess(images)
    rows = []
    for name, ranges in RANGE_SETS.items():
        lost = ink_outside(distort(x, torch.Generator().manual_seed(0), ranges), CROPPED)
        rows.append(dict(ranges=name, over_1pct=float((lost > 0.01).double().mean()), mean=float(lost.mean()),
                         max=float(lost.max())))
    return pd.DataFrame(rows)


def render(results_dir):
    """table.md and RESULTS.md's findings block, from findings.csv, ink_loss.csv and results/compare/metrics.csv."""
    f = pd.read_csv(Path(results_dir) / "findings.csv")
    ink = pd.read_csv(Path(results_dir) / "ink_loss.csv")
    rows = pd.read_csv(Path(results_dir).parent / "compare" / "metrics.csv").set_index(["method", "seed"])
    lines = ["| row | what changes | row's error, same seed | with the change | paper |", "|---|---|---|---|---|"]
    for r in f.itertuples():
        lines.append(f"| {r.row} | {r.change} | {rows.test_error[r.row, r.seed]:.2%} | {r.test_error:.2%} | "
                     f"{paper.FIG9_ERROR[r.row]:.2%} |")
    costs = [f"{r.row}, {r.change}: {rows.macs[r.row, r.seed]:,} to {r.macs:,}" for r in f.itertuples()
             if r.macs != rows.macs[r.row, r.seed]]
    capped = f[f.question == "step cap"].groupby("row").test_error
    every = [row for row, n in capped.count().items() if n == rows.loc[row].shape[0]]
    cap = "; ".join(f"{row} {capped.mean()[row]:.2%} and {capped.median()[row]:.2%} against "
                    f"{rows.test_error[row].mean():.2%} and {rows.test_error[row].median():.2%} (paper "
                    f"{paper.FIG9_ERROR[row]:.2%})" for row in every)
    exits = f[f.question == "early exit"]
    boosted, lenet4 = rows.loc["boosted-lenet4-dist"], rows.macs["lenet4"].mean()
    exit_line = (f"Boosting's early exit on {len(exits)} seed{'s' * (len(exits) > 1)}: test error {exits.test_error.mean():.2%} (the row's "
                 f"{boosted.test_error[exits.seed].mean():.2%} on the same seeds), {exits.macs.mean():,.0f} multiply-adds "
                 f"per recognition, {exits.macs.mean() / lenet4:.2f}x LeNet-4's (all three nets: "
                 f"{boosted.macs[exits.seed].mean() / lenet4:.2f}x; the paper: {paper.BOOSTED_NETS_RUN:.2f}x).")
    ink_line = (f"Ink that distortions put outside the central {CROPPED}x{CROPPED} box that the {CROPPED}x{CROPPED} networks' "
                "[dist] rows see (one draw for the 60,000 training digits, repro.distortions.ink_outside): "
                + "; ".join(f"{r.ranges} ranges: {r.over_1pct:.1%} of the digits lose more than 1% of their ink (mean "
                            f"{r.mean:.2%}, at most {r.max:.0%})" for r in ink.itertuples()) + ".")
    table = "\n".join(lines) + "\n\n" + ink_line + "\n\nMultiply-adds per recognition where a finding changes them (the row's, same seed, " \
        "to the finding's): " + "; ".join(costs) + ".\n\nWith mu = 0.1 on every seed of a row, its test error (mean " \
        "and median over the seeds) against the row's: " + cap + ".\n\n" + exit_line + "\n"
    head = ("# What moves the rows that miss the paper\n\nGenerated by `make compare-findings`: each line changes "
            "one thing of one row of `make compare` (results/compare/) and measures the test error again. The rows "
            "keep the text's reading where no pre-registered study chose another (the SVMs and the pairwise classifier: "
            "make svm-search; the RBF network's ridge: make rbf-search; LeNet-5's mu: make recipe-study); these lines "
            "explain, they choose nothing.\n\n")
    return {"table.md": head + table, RESULTS_MD + "comparison-findings": table}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--workers", type=at_least_one, default=None)
    add_scratch_arg(ap)
    args = ap.parse_args()
    out, runs = output_dirs("compare_findings", args.scratch)
    confirm_outputs("make compare-findings", args.scratch, out, runs)
    mnist.ensure_mnist()
    items = findings()
    jobs = [(method, change.get("seed", 0), str(runs / label / f"seed{change.get('seed', 0)}"),
             {k: v for k, v in change.items() if k != "seed"}) for label, _, method, _, _, change in items]
    t0 = time.time()
    run_all(jobs, args.workers)
    f = []
    shutil.rmtree(out / "runs", ignore_errors=True)  # a run of a finding since removed must not pass for one of these
    for (label, row, _, question, change, _), (*_, where, _) in zip(items, jobs):
        result = json.loads((Path(where) / "result.json").read_text())
        f.append(dict(finding=label, row=row, seed=result["seed"], question=question, change=change,
                      version=result["version"],
                      test_error=result["test_error"], test_misses=result["test_misses"],
                      rejection=result["rejection"], macs=result["macs"],
                      fit_seconds=result["fit_seconds"], score_seconds=result["score_seconds"]))
        keep_provenance(where, out / "runs" / label)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(f).to_csv(out / "findings.csv", index=False)
    ink_loss(mnist.load_split("train")[0]).to_csv(out / "ink_loss.csv", index=False)
    write_invocation(out, time.time() - t0)
    texts = render(out)
    write(out, texts, blocks=not args.scratch)
    print(texts["table.md"])


if __name__ == "__main__":
    main()
