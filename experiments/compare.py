"""`make compare`: the paper's comparison of classifiers on MNIST (Sec. III-C, Fig. 9), part 1: the
classical rows (repro/classical/), each trained on the 60,000 training images of its data version
(repro/versions.py) and measured on the 10,000 test images. The LeNet-5 rows are read from
results/reproduce/ and results/distortions/, not trained again. Writes results/compare/:

  metrics.csv          one row per method and seed: data version, test error, the paper's error,
                       seconds to train and to score the test set, numbers stored at recognition time
  table.md             per method: what it is, our error (mean +- std over seeds), the paper's, the
                       difference, the time; render() makes it and RESULTS.md's block from metrics.csv
  fig9_comparison.png  our errors beside the paper's, in the paper's order
  versions.png         examples of the regular, deslanted and 16x16 images
  invocation.json      this invocation's wall time
  runs/                each run's meta.json (seed, versions, git commit, machine)

Every method and seed is one job; jobs run one process per core, the longest first (but the seeds
that wait for their first seed's shared work last), with a progress line each. A finished job
keeps its test scores and result in runs/compare/<method>/seed<N>/ and is read, not recomputed, by
the next invocation if the same code made it (its meta.json holds the hashes of repro/ and
repro/classical/; a run that other code made stops the invocation with a message naming it).
Randomised methods (K-means, the distortions of the virtual support vectors) run SEEDS; the others
are deterministic and run seed 0. Only the full default run writes results/ and RESULTS.md, and
only from committed code; --methods or --scratch write scratch/results/compare/.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cost_figures
from blocks import README_MD, RESULTS_MD, invocation, write, write_invocation
from runner import ROOT, add_scratch_arg, at_least_one, confirm_outputs, in_scratch, keep_provenance, output_dirs
from stats import holm, paired
from repro import classical, combinations, networks, paper, versions, weights
from repro import data as mnist
from repro.classical import METHODS, get
from repro.layers import param_count
from repro.provenance import LIBRARY, library_sha256, provenance
from repro.rejection import rejection_to_reach

SEEDS = [0, 1, 2]
LENET5 = {"lenet5": ("reproduce", "paper", "LeNet-5 (make reproduce)"),
          "lenet5-dist": ("distortions", "distortions", "LeNet-5 with distortions (make distortions)")}
# the same two trainings with the text's mu (A10), shown beside the recipe's in README's headline
LENET5_TEXT = {"lenet5": ("reproduce", "paper-mu0.02"), "lenet5-dist": ("distortions", "distortions-mu0.02")}
# the costliest first, so that the cores stay busy to the end (measured on the 2-core machine); the
# rows on LeNet-4's features wait for its training (a file lock), so they come after it
ORDER = ["v-svm-poly9-dist", "boosted-lenet4-dist", "rs-svm-poly5", "mlp-1000-dist", "mlp-1000", "svm-poly4",
         "tangent-distance", "mlp-500-150-dist", "mlp-500-150", "knn", "knn-deslant", "rbf-network", "lenet4",
         "mlp-300-100-dist", "mlp-300-dist", "mlp-300-100", "mlp-300", "lenet1", "mlp-300-deslant", "pca-quadratic",
         "pairwise", "linear", "linear-deslant", "lenet4-local", "lenet4-knn"]


def rows():
    """Every row make compare runs: the classical methods and the neural ones."""
    return [*METHODS, *networks.ROWS, *combinations.COMBINED]


def seeds(name):
    """Randomised rows (K-means, distortions, every network's initial weights) run SEEDS; the others seed 0."""
    return SEEDS if name not in METHODS or get(name).randomised else [0]


def shares_work(name):
    """Whether a row's later seeds wait on work its first seed does (the virtual SVs' first SVM)."""
    return name in METHODS and get(name).shares_work


def run_dir(runs, name, seed):
    return Path(runs) / name / f"seed{seed}"


def run_one(job):
    """Train and score one row for one seed in this process; write its test scores and result.json;
    return the name of its run directory (the row, or a finding's label), the seed and the seconds.
    A job's optional fourth element changes the row (compare_findings.py): for a classical row
    `version`, `train_size` (the first that many training images) and the method's options; for a
    network the fields of its config."""
    name, seed, where, change = (*job, {})[:4]
    torch.set_num_threads(1)
    where = Path(where)
    if (where / "result.json").exists():
        return where.parent.name, seed, None
    t0 = time.perf_counter()
    if name in classical.METHODS:
        change = dict(change)
        version, size = change.pop("version", None) or classical.get(name).version, change.pop("train_size", None)
        data = mnist.load_version(version)
        model = classical.fit(name, data["train_x"][:size], data["train_y"][:size], seed,
                              cache_dir=where.parent.parent / "shared", version=version, **change)
        test_x, test_y = data["test_x"], data["test_y"]
        check = lambda images: classical.scores(name, model, images, version)
    else:
        model, test_x, test_y, version = combinations.fit(name, seed, where, not in_scratch(where), **change)
        check = model.scores
    fit_seconds = time.perf_counter() - t0
    s = check(test_x)
    score_seconds = time.perf_counter() - t0 - fit_seconds
    predicted = s.argmax(1)
    result = dict(method=name, seed=seed, version=version,
                  test_error=float((predicted != test_y).double().mean()),
                  test_misses=int((predicted != test_y).sum()), classes_lost=classes_lost(predicted),
                  rejection=rejection_to_reach(s, test_y), fit_seconds=round(fit_seconds, 2), score_seconds=round(score_seconds, 2),
                  ms_per_digit=round(1000 * score_seconds / len(test_x), 4),
                  parameters=int(model.parameters()), macs=int(model.macs()))
    where.mkdir(parents=True, exist_ok=True)
    np.save(where / "scores.npy", s.numpy())
    save_result(where, result)
    return where.parent.name, seed, fit_seconds + score_seconds


def classes_lost(predicted, classes=10):
    """How many classes no test pattern is given: a network whose output unit for a class has saturated."""
    return int((predicted.bincount(minlength=classes) == 0).sum())


def save_result(where, result):
    """A finished job's meta.json (its result, provenance and code hashes) and then result.json,
    atomically: a result.json means a finished job."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    (where / "meta.json").write_text(json.dumps({**result, **provenance("cpu"), **code_hashes()}, indent=1))
    (where / "result.json.tmp").write_text(json.dumps(result))
    os.replace(where / "result.json.tmp", where / "result.json")


def code_hashes():
    """The hashes of the code a classical run depends on: the library and its classical package."""
    return dict(library_sha256=library_sha256(), classical_sha256=library_sha256(LIBRARY / "classical"))


def stale(jobs):
    """The finished runs among `jobs` that other code made (their meta.json's hashes differ, or lack
    the classical one): the cache would otherwise pass them off as this code's."""
    now = code_hashes()
    return [where for _, _, where, *_ in jobs if (Path(where) / "result.json").exists()
            and any(json.loads((Path(where) / "meta.json").read_text()).get(k) != v for k, v in now.items())]


def run_all(jobs, workers, run=run_one):
    """`run` over the jobs, (label, seed, run directory, ...) each, one process per core, a progress
    line per job; `run` returns (label, seed, seconds, or None for a job read from the cache). Stops
    first, with one message, if a finished job was made by other code."""
    if old := stale(jobs):
        sys.exit(f"{len(old)} finished run(s) in the cache were made by other code than this checkout's: "
                 f"{', '.join(old)}. Delete them to recompute them with this code.")
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    done = 0
    with mp.get_context("spawn").Pool(workers) as pool:
        for name, seed, secs in pool.imap_unordered(run, jobs):
            done += 1
            state = "cached" if secs is None else f"{secs / 60:.1f} min"
            print(f"[{done}/{len(jobs)}] {name} seed {seed}: {state}", flush=True)


def results(jobs):
    """The finished jobs' result.json, a row each."""
    return [json.loads((Path(where) / "result.json").read_text()) for _, _, where, *_ in jobs]


def lenet_rows():
    """The LeNet-5 rows: the last pass of each seed in the committed results of the two targets, with
    the rejection of Fig. 10 from each seed's committed weights and the counts of Figs. 11-12."""
    test = mnist.load_mnist()
    rows = []
    for name, (experiment, variant, _) in LENET5.items():
        m = pd.read_csv(ROOT / "results" / experiment / "metrics.csv")
        last = m[m.variant == variant].groupby("seed").tail(1)
        for r in last.itertuples():
            run = ROOT / "results" / experiment / "runs" / f"{variant}_seed{r.seed}"
            model = weights.load(run / "model.pt")
            s = combinations.scores(model, test["test_x"])
            if int((s.argmax(1) != test["test_y"]).sum()) != r.test_misses:
                sys.exit(f"{run}/model.pt does not give the {r.test_misses} test misses its metrics.csv records")
            rows.append(dict(method=name, seed=r.seed, version=combinations.data_label(model.config), test_error=r.test_error,
                             test_misses=r.test_misses, classes_lost=classes_lost(s.argmax(1)),
                             rejection=rejection_to_reach(s, test["test_y"]),
                             fit_seconds=None, score_seconds=None, ms_per_digit=None,
                             parameters=param_count(model), macs=combinations.connections(model)))
    return rows


def agreement(m):
    """One sentence: which rows are within the paper's stated uncertainty, and which miss it which way."""
    diff = (m.groupby("method").test_error.mean() - m.groupby("method").paper_error.first()).round(6)
    ordered = [n for n in paper.FIG9_ERROR if n in diff.index]
    tol = paper.ERROR_UNCERTAINTY
    within = [n for n in ordered if abs(diff[n]) <= tol]
    worse = [f"{n} ({100 * diff[n]:+.2f})" for n in ordered if diff[n] > tol]
    better = [f"{n} ({100 * diff[n]:+.2f})" for n in ordered if diff[n] < -tol]
    names = lambda xs: ", ".join(xs) or "none"
    return (f"Within the paper's {100 * tol:.1f} point: {len(within)} of {len(ordered)} rows ({names(within)}). "
            f"Worse by more: {names(worse)}. Better by more: {names(better)}.")


def lost(m):
    """One sentence: the runs that never give some class to any test pattern (A31)."""
    bad = m[m.classes_lost > 0]
    if bad.empty:
        return "Every run gives every class to some test pattern."
    return ("Runs that give no test pattern to one class or more (A31): " + ", ".join(
        f"{r.method} seed {r.seed} ({r.classes_lost} class{'es' if r.classes_lost > 1 else ''}, {r.test_error:.2%})"
        for r in bad.itertuples()) + ".")


def claims(m):
    """Sec. III-D's conclusions, each with our numbers beside it (means over seeds; with three seeds
    per network, a difference here is a direction, not a tested result), as markdown bullets."""
    e, r = m.groupby("method").test_error.mean(), m.groupby("method").rejection.mean()
    med = m.groupby("method").test_error.median()  # the fully connected nets: robust to a failed seed
    macs, memory = m.groupby("method").macs.mean(), m.groupby("method").parameters.mean()
    pct = lambda v: f"{v:.2%}"
    thousands = lambda v: f"{v / 1000:,.0f}k"
    best = e.idxmin()
    rejecting = r.dropna()
    lines = [
        f"- *Boosted LeNet-4 is best (0.7%), LeNet-5 close (0.8% with distortions).* Ours: boosted LeNet-4 "
        f"{pct(e['boosted-lenet4-dist'])}, LeNet-5 {pct(e['lenet5'])} and {pct(e['lenet5-dist'])} with distortions; "
        f"the lowest error of all rows is {best}'s ({pct(e[best])}).",
        f"- *Boosted LeNet-4 is also best at rejection.* Ours: it rejects {pct(r['boosted-lenet4-dist'])} to reach "
        f"{paper.REJECTION_TARGET:.1%} error; the least of all rows is {rejecting.idxmin()}'s ({pct(rejecting.min())}).",
        f"- *LeNet-4 / K-NN and LeNet-4 / Local reject fewer patterns than LeNet-4 for the same raw error.* Ours: "
        f"rejection {pct(r['lenet4-knn'])} and {pct(r['lenet4-local'])} against LeNet-4's {pct(r['lenet4'])}; "
        f"errors {pct(e['lenet4-knn'])}, {pct(e['lenet4-local'])} and {pct(e['lenet4'])}.",
        f"- *Boosting buys a substantial gain for a modest cost.* Ours: {pct(e['lenet4'])} to "
        f"{pct(e['boosted-lenet4-dist'])} for {macs['boosted-lenet4-dist'] / macs['lenet4']:.1f}x LeNet-4's "
        f"multiply-adds (all three nets always run; the paper's early exit gives {paper.BOOSTED_NETS_RUN:.2f}x) and "
        f"{memory['boosted-lenet4-dist'] / memory['lenet4']:.0f}x its memory.",
        f"- *The networks need far fewer operations and far less memory than the memory-based methods.* Ours: "
        f"LeNet-5 {thousands(macs['lenet5'])} multiply-adds and {thousands(memory['lenet5'])} numbers; the deslanted "
        f"K-NN {thousands(macs['knn-deslant'])} and {thousands(memory['knn-deslant'])}, tangent distance "
        f"{thousands(macs['tangent-distance'])} and {thousands(memory['tangent-distance'])}, the degree-4 SVM "
        f"{thousands(macs['svm-poly4'])} and {thousands(memory['svm-poly4'])}.",
        f"- *The reduced-set SVM comes within a factor of two of the convolutional networks' cost, with very close "
        f"error.* Ours: {macs['rs-svm-poly5'] / macs['lenet5']:.1f}x LeNet-5's multiply-adds and "
        f"{pct(e['rs-svm-poly5'])} error (A23).",
        "- *Distortions help.* Ours, median error over seeds without and with them: " + "; ".join(
            f"{n} {pct(med[n])} to {pct(med[n + '-dist'])}" for n in ("mlp-300", "mlp-1000", "mlp-300-100", "mlp-500-150",
                                                                  "lenet5") if n + "-dist" in e) + ".",
        f"- *Two hidden layers do much better than one for marginally more weights; 1,000 hidden units gain only "
        f"marginally over 300.* Ours, medians over seeds: 300-100 {pct(med['mlp-300-100'])} against 300 "
        f"{pct(med['mlp-300'])} ({memory['mlp-300-100'] / memory['mlp-300']:.2f}x the weights); 1000 "
        f"{pct(med['mlp-1000'])}; the means ({pct(e['mlp-300-100'])}, {pct(e['mlp-300'])}, {pct(e['mlp-1000'])}) "
        "include the failed seeds.",
        f"- *Local learning, optimal-margin classifiers and tangent distance beat LeNet-1.* Ours: LeNet-1 "
        f"{pct(e['lenet1'])}; LeNet-4 / Local {pct(e['lenet4-local'])}, the degree-4 SVM {pct(e['svm-poly4'])}, "
        f"tangent distance {pct(e['tangent-distance'])}.",
    ]
    return lines


# README's headline: LeNet-5 with and without distortions, and the rows that carry the paper's orderings
HEADLINE = ("lenet5", "lenet5-dist", "lenet4", "boosted-lenet4-dist", "svm-poly4", "tangent-distance", "knn", "mlp-300")


def headline(m):
    """README.md's headline: the paper against ours for the key rows, and whether the paper's three
    orderings about LeNet-5 hold here."""
    lines = ["| | paper | ours | seeds |", "|---|---|---|---|"]
    row = lambda label, name, e: (f"| {label} | {paper.FIG9_ERROR[name]:.2%} | {e.mean():.2%}"
                                  f"{f' ± {e.std():.2%}' if len(e) > 1 else ''} | {len(e)} |")
    for name in [n for n in HEADLINE if n in set(m.method)]:
        lines.append(row(name, name, m[m.method == name].test_error))
        if name in LENET5_TEXT:
            experiment, variant = LENET5_TEXT[name]
            runs = pd.read_csv(ROOT / "results" / experiment / "metrics.csv")
            lines.append(row(f"{name}, the text's mu = {paper.MU:g}", name,
                             runs[runs.variant == variant].groupby("seed").tail(1).test_error))
    # the paper's orderings, each a paired t-test over the seeds both rows share, Holm over the three
    claims = (("distortions help LeNet-5", "lenet5-dist", "lenet5"), ("LeNet-5 beats LeNet-4", "lenet5", "lenet4"),
              ("boosted LeNet-4 beats LeNet-5 with distortions", "boosted-lenet4-dist", "lenet5-dist"))
    by_seed = lambda name: dict(zip(m[m.method == name].seed, m[m.method == name].test_error))
    tests = []
    for _, better, worse in claims:
        common = sorted(set(by_seed(better)) & set(by_seed(worse)))
        tests.append(paired([by_seed(better)[s] for s in common], [by_seed(worse)[s] for s in common]))
    said = []
    for (claim, _, _), t, h in zip(claims, tests, holm([t["p"] for t in tests])):
        verdict = ("holds" if t["diff"] < 0 else "is reversed") if h["reject"] else "is not separated"
        said.append(f"\"{claim}\" {verdict} here ({t['diff'] * 100:+.2f} points over {t['n']} paired seeds, "
                    f"Holm-adjusted p = {h['p_holm']:.3f})")
    lines += ["", "Test error on MNIST's 10,000 test images ([RESULTS.md](RESULTS.md), \"The comparison of Fig. 9\"). "
              f"The paper's {said[0]}; its {said[1]}; its {said[2]}. {why()}"]
    return "\n".join(lines) + "\n"


def why():
    """The two pre-registered studies' main effects on the validation split, from their decision.json."""
    decision = lambda study: json.loads((ROOT / "results" / study / "decision.json").read_text())
    recipe, head = decision("recipe_study"), decision("head_study")
    mu = next(c for c in recipe["comparisons"] if c["factor"] == "mu" and c["candidate"] == recipe["mu"])
    rbf = next(c for c in head["comparisons"] if c["test"] == "head")
    return (f"Why, on the validation split: the text's mu = {paper.MU:g} costs LeNet-5 {-mu['diff'] * 100:.2f} point "
            f"against the recipe study's {recipe['mu']:g} (its pre-registered main effect, over both regimes and both "
            "initialisations: `results/recipe_study/`), and at matched mu LeNet-5's "
            f"F6 + RBF head costs {rbf['diff'] * 100:.2f} point against LeNet-4's place code (`results/head_study/`).")


def render(results_dir):
    """table.md and RESULTS.md's comparison blocks, from metrics.csv and invocation.json only."""
    m = pd.read_csv(Path(results_dir) / "metrics.csv")
    wall = invocation(results_dir)["wall_seconds"]
    lines = ["# The comparison of Fig. 9: classical classifiers, the other networks and LeNet-5\n",
             "Generated by `make compare`. Test error on the 10,000 test images, mean ± standard deviation over "
             "seeds where the method is randomised (one seed otherwise). The paper's figures are Fig. 9's, "
             f"whose caption gives their uncertainty as about {paper.ERROR_UNCERTAINTY:.1%}. \"time\" is training "
             "plus scoring the test set, one core; \"per digit\" is the scoring alone, divided by 10,000. The "
             "LeNet-5 rows are read from `make reproduce` and `make distortions`.\n",
             "| method | what it is | data | seeds | test error | paper | difference (points) | time | per digit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in [n for n in paper.FIG9_ERROR if n in set(m.method)]:
        g = m[m.method == name]
        what = METHODS[name].what if name in METHODS else LENET5[name][2] if name in LENET5 else combinations.what(name)
        sd = f" ± {g.test_error.std():.2%}" if len(g) > 1 else ""
        minutes = (g.fit_seconds + g.score_seconds).mean() / 60
        time_cell = "–" if math.isnan(minutes) else f"{minutes:.1f} min"
        per_digit = "–" if g.ms_per_digit.isna().all() else f"{g.ms_per_digit.mean():.3g} ms"
        lines.append(f"| {name} | {what} | {g.version.iloc[0]} | {len(g)} | {g.test_error.mean():.2%}{sd} | "
                     f"{paper.FIG9_ERROR[name]:.2%} | {100 * (g.test_error.mean() - paper.FIG9_ERROR[name]):+.2f} | "
                     f"{time_cell} | {per_digit} |")
    costs = ["\n## Rejection, operations and memory (Figs. 10-12)\n",
             f"Rejection: the share of the test patterns whose top-two score gap falls below a threshold raised until "
             f"the accepted ones have at most {paper.REJECTION_TARGET:.1%} error (mean over seeds). MACs: "
             "multiply-accumulates to recognise one image, and memory: the numbers stored to do it, both counted "
             "from our models' data structures (a network's connections and parameters, as its tables count them).\n",
             *cost_figures.cost_table(per_method(m))]
    text = "\n".join(lines) + f"\n\n{agreement(m)}\n\n{lost(m)}\n" + "\n".join(costs) + \
        f"\n\nThis invocation took {wall / 60:.1f} min of wall time (cached runs are read, not recomputed).\n"
    figures = "".join(f"\n![{f}](results/compare/{f}.png)\n" for f in
                      ("fig9_comparison", "fig10_rejection", "fig11_macs", "fig12_memory"))
    missing = [n for n in paper.FIG9_ERROR if n not in set(m.method)]
    said = "\n".join(claims(m)) + "\n" if not missing else \
        f"Not drawn: the conclusions need every row, and this run leaves out {', '.join(missing)}.\n"
    return {"table.md": text + "\n## Sec. III-D's conclusions against our numbers\n\n" + said,
            RESULTS_MD + "comparison": text.split("\n", 1)[1] + figures, RESULTS_MD + "comparison-claims": said,
            README_MD + "headline": headline(m)}


def plot(m, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n in paper.FIG9_ERROR if n in set(m.method)]
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(names) + 1.2))
    for i, n in enumerate(names):
        ours = 100 * m[m.method == n].test_error
        ax.barh(i - 0.2, 100 * paper.FIG9_ERROR[n], height=0.4, color="tab:gray", label="paper (Fig. 9)" if i == 0 else None)
        ax.barh(i + 0.2, ours.mean(), height=0.4, color="tab:blue", label="ours (mean over seeds)" if i == 0 else None)
        ax.plot(ours, [i + 0.2] * len(ours), "k.", markersize=3)
    # the MNIST page's tag for the rows the SVM study moved to the deskewed images
    labels = [n + (" [deskew]" if (m[m.method == n].version == "deskew").any() else "") for n in names]
    ax.set(yticks=range(len(names)), yticklabels=labels, xlabel="test error (%)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def versions_figure(path, count=8):
    """The first `count` test images in each data version."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images, _ = mnist.load_split("test")
    images = images[:count]
    fig, axes = plt.subplots(len(versions.VERSIONS), count, figsize=(count * 0.9, len(versions.VERSIONS) * 1.0))
    for row, version in enumerate(versions.VERSIONS):
        for col, im in enumerate(versions.make(version, images)):
            axes[row, col].imshow(im, cmap="gray_r", vmin=0, vmax=255)
            axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(f"{version}\n{versions.VERSIONS[version]}x{versions.VERSIONS[version]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--methods", nargs="+", default=rows(), metavar="METHOD")
    ap.add_argument("--workers", type=at_least_one, default=None)
    add_scratch_arg(ap)
    args = ap.parse_args()
    unknown = [n for n in args.methods if n not in rows()]
    if unknown:
        ap.error(f"unknown method {unknown[0]!r}; methods: {', '.join(rows())}")
    if len(set(args.methods)) != len(args.methods):  # a repeated method would run twice into one directory
        ap.error(f"argument --methods: name each method once, got {' '.join(args.methods)}")
    scratch = args.scratch or args.methods != rows()
    out, runs = output_dirs("compare", scratch)
    confirm_outputs("make compare", scratch, out, runs)
    mnist.ensure_mnist()
    # a seed that waits for work its first seed shares (the virtual SVs' first SVM) goes after the rest
    jobs = sorted([(n, s, str(run_dir(runs, n, s))) for n in args.methods for s in seeds(n)],
                  key=lambda j: (shares_work(j[0]) and j[1] != seeds(j[0])[0], ORDER.index(j[0]), j[1]))
    t0 = time.time()
    run_all(jobs, args.workers)
    m = pd.DataFrame(results(jobs) + lenet_rows())
    m["paper_error"] = m.method.map(paper.FIG9_ERROR)
    order = {n: i for i, n in enumerate(paper.FIG9_ERROR)}
    m = m.sort_values(["method", "seed"], key=lambda c: c.map(order) if c.name == "method" else c)
    out.mkdir(parents=True, exist_ok=True)
    m.to_csv(out / "metrics.csv", index=False)
    shutil.rmtree(out / "runs", ignore_errors=True)  # a run of a row since removed must not pass for one of these
    for name, seed, where in jobs:
        keep_provenance(where, out / "runs" / f"{name}_seed{seed}")
    write_invocation(out, time.time() - t0)
    plot(m, out / "fig9_comparison.png")
    costs = per_method(m)
    cost_figures.fig10(costs, out / "fig10_rejection.png")
    cost_figures.fig11(costs, out / "fig11_macs.png")
    cost_figures.fig12(costs, out / "fig12_memory.png")
    versions_figure(out / "versions.png")
    texts = render(out)
    write(out, texts, blocks=not scratch)
    print(texts["table.md"])


def per_method(m):
    """One row per method for Figs. 10-12: the mean rejection over seeds, the counts (the same for
    every seed of a network; the mean for the classifiers whose size depends on the seed)."""
    g = m.groupby("method", sort=False)
    return pd.DataFrame(dict(rejection=g.rejection.mean(), macs=g.macs.mean(), memory=g.parameters.mean())).reset_index()


if __name__ == "__main__":
    main()
