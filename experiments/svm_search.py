"""`make svm-search`: the data version, kernel and soft-margin constant C of the SVMs (A22), and the
data version of the pairwise classifier, pre-registered in PAPER_NOTES.md ("The comparison's
studies": the SVM study, extended) before it ran.

The paper quotes its SVMs from other authors and gives neither C nor the preprocessing; the MNIST
page lists the degree-4 SVM, the reduced set of degree 5 and the pairwise classifier with
"deskewing". Chosen on a validation split only: train on the first 50,000 training images, count
the errors on the last 10,000; the test set is not looked at. Grid, for each degree of the rows
(4, 5, 9): version {regular, deskew} x kernel {the text's homogeneous (g x.y)^k, (g x.y + 1)^k} x C
in C_CANDIDATES; libsvm is deterministic, so one run each. The rule (decide()): per degree the
fewest validation errors wins; equal counts go to the text's reading first (regular, then the
homogeneous kernel), then to the smaller C. The pairwise classifier takes the version with the fewer
errors, equal counts to regular. Then (descriptive, no decision) the reduced set approximates the
decided degree-5 machine with RS_COUNTS vectors per pair: its validation error at the paper's 18
and the smallest count within 0.1 point of the full machine's.

Writes results/svm_search/: metrics.csv (one row per candidate: method, version, degree, coef0, C,
validation errors, support vectors, seconds), reduced_set.csv, decision.json (the rule and the
choices), table.md (render(): from those files only), runs/ (each run's meta.json). Runs are cached
in runs/svm_search/; only the full default run writes results/, and only from committed code.
"""
import json
import time
from pathlib import Path

import pandas as pd
import torch

from compare import results, run_all, save_result
from runner import confirm_outputs, finish_study, output_dirs, study_parser
from repro import data as mnist
from repro.classical.linear import Pairwise
from repro.classical.svm import SVM, ReducedSetSVM

DEGREES = (4, 5, 9)
VERSIONS = ("regular", "deskew")  # the text's first: ties go to it
COEF0S = (0.0, 1.0)  # the text's homogeneous kernel first
C_CANDIDATES = (1.0, 10.0, 100.0, 1000.0)
RS_DEGREE = 5  # the reduced set's machine (rs-svm-poly5)
RS_COUNTS = (18, 25, 35, 50, 70, 100, 140, 200)  # vectors per pair; 18 is the paper's (650,000 multiply-adds)
RS_WITHIN = 0.001  # "within 0.1 point of the full machine's"
RULE = ("per degree: the fewest validation errors on the last 10,000 training images (trained on the first 50,000) "
        "over version x kernel x C; equal counts go to the regular images, then to the homogeneous kernel, then to "
        "the smaller C. Pairwise: the version with the fewer errors, equal counts to the regular images")


def candidates():
    """(method, version, degree, coef0, C), the costliest first (degree 9, small C) so that the cores
    stay busy to the end; the pairwise classifier's two versions last."""
    svms = [("svm", v, d, k, c) for v in VERSIONS for d in DEGREES for k in COEF0S for c in C_CANDIDATES]
    return sorted(svms, key=lambda t: (-t[2], t[4], t[1], t[3])) + [("pairwise", v, None, None, None) for v in VERSIONS]


def label(method, version, degree, coef0, c):
    return f"pairwise-{version}" if method == "pairwise" else f"{version}-poly{degree}-coef0_{coef0:g}-C{c:g}"


def validation(version):
    return mnist.validation_split(mnist.load_version(version))


def run_one(job):
    """One candidate, (label, seed, run directory, candidate), trained on the first 50,000 training
    images of its version and counted on the last 10,000; for compare.run_all."""
    name, seed, where, (method, version, degree, coef0, c) = job
    torch.set_num_threads(1)
    if (Path(where) / "result.json").exists():
        return name, seed, None
    split = validation(version)
    t0 = time.perf_counter()
    model = (Pairwise(split["train_x"], split["train_y"]) if method == "pairwise"
             else SVM(split["train_x"], split["train_y"], seed, degree, c, coef0))
    fit_seconds = time.perf_counter() - t0
    misses = int((model.scores(split["test_x"]).argmax(1) != split["test_y"]).sum())
    save_result(where, dict(method=method, version=version, degree=degree, coef0=coef0, C=c, val_misses=misses,
                            val_error=misses / len(split["test_y"]),
                            support_vectors=int(len(model.support())) if method == "svm" else None,
                            fit_seconds=round(fit_seconds, 1), score_seconds=round(time.perf_counter() - t0 - fit_seconds, 1)))
    return name, seed, fit_seconds


def best(metrics, degree, version=None, coef0=None):
    """The row of the SVM candidates of `degree` (of one version or kernel, if given) that RULE picks."""
    rows = metrics[(metrics.method == "svm") & (metrics.degree == degree)]
    rows = rows[(rows.version == version) if version else rows.version.notna()]
    rows = rows[rows.coef0 == coef0] if coef0 is not None else rows
    order = rows.assign(v=rows.version.map(VERSIONS.index)).sort_values(["val_misses", "v", "coef0", "C"])
    return order.iloc[0]


def decide(metrics):
    """dict(svm={degree: dict(version, coef0, c)}, pairwise=version, text={degree: C}, inhomogeneous={degree: C})
    by RULE; `text` and `inhomogeneous` are the C of the regular images' homogeneous and inhomogeneous
    machines (their findings)."""
    pick = lambda r: dict(version=r.version, coef0=float(r.coef0), c=float(r.C))
    pw = metrics[metrics.method == "pairwise"].assign(v=lambda m: m.version.map(VERSIONS.index))
    return dict(svm={int(d): pick(best(metrics, d)) for d in DEGREES},
                pairwise=pw.sort_values(["val_misses", "v"]).version.iloc[0],
                text={int(d): float(best(metrics, d, "regular", 0.0).C) for d in DEGREES},
                inhomogeneous={int(d): float(best(metrics, d, "regular", 1.0).C) for d in DEGREES})


def reduced_set(chosen, where):
    """reduced_set.csv's rows: the decided degree-5 machine (chosen: decide()'s svm[5]) and its reduced
    sets at RS_COUNTS vectors per pair, on the validation split; cached in `where`."""
    path = Path(where) / "reduced_set.csv"
    if (Path(where) / "result.json").exists():
        return pd.read_csv(path)
    torch.set_num_threads(1)
    split = validation(chosen["version"])
    error = lambda model: float((model.scores(split["test_x"]).argmax(1) != split["test_y"]).double().mean())
    t0 = time.perf_counter()
    machine = SVM(split["train_x"], split["train_y"], 0, RS_DEGREE, chosen["c"], chosen["coef0"])
    rows = [dict(per_pair=None, vectors=int(len(machine.support())), macs=machine.macs(), val_error=error(machine),
                 seconds=round(time.perf_counter() - t0, 1))]
    t0 = time.perf_counter()
    for n, model in ReducedSetSVM.reduce(machine, RS_COUNTS).items():
        rows.append(dict(per_pair=n, vectors=45 * n, macs=model.macs(), val_error=error(model), seconds=None))
    rows[-1]["seconds"] = round(time.perf_counter() - t0, 1)  # the greedy runs to the largest count
    Path(where).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    save_result(where, dict(method="reduced-set", degree=RS_DEGREE, **chosen, counts=list(RS_COUNTS)))  # then finished
    return pd.read_csv(path)


def kernel_name(coef0):
    return "(g x.y)^k, the text's" if coef0 == 0 else f"(g x.y + {coef0:g})^k"


def render(results_dir):
    """table.md, made only from the committed metrics.csv, reduced_set.csv and decision.json."""
    results_dir = Path(results_dir)
    m = pd.read_csv(results_dir / "metrics.csv")
    decision = json.loads((results_dir / "decision.json").read_text())
    chosen = {int(d): c for d, c in decision["svm"].items()}
    lines = ["# The SVM study: data version, kernel and C per degree, on a validation split\n",
             f"Generated by `make svm-search`. Rule, written before the runs (PAPER_NOTES.md, \"The comparison's studies\"): "
             f"{RULE}. Kernel (g x.y + coef0)^k, g = 1 / mean |x|^2 over the training images, pixels in [0, 1]; "
             "deskew: the 28x28 images sheared upright about their centre of mass (repro/versions.py).\n",
             "| degree | version | kernel | C | validation errors | validation error | support vectors | fit | chosen |",
             "|---|---|---|---|---|---|---|---|---|"]
    svms = m[m.method == "svm"].assign(v=lambda d: d.version.map(VERSIONS.index))
    for r in svms.sort_values(["degree", "v", "coef0", "C"]).itertuples():
        c = chosen[int(r.degree)]
        mark = "yes" if (c["version"], c["coef0"], c["c"]) == (r.version, r.coef0, r.C) else ""
        lines.append(f"| {int(r.degree)} | {r.version} | {kernel_name(r.coef0)} | {r.C:g} | {r.val_misses} | "
                     f"{r.val_error:.2%} | {int(r.support_vectors):,} | {r.fit_seconds / 60:.1f} min | {mark} |")
    lines += ["", "| pairwise classifier | validation errors | validation error | chosen |", "|---|---|---|---|"]
    lines += [f"| {r.version} | {r.val_misses} | {r.val_error:.2%} | {'yes' if r.version == decision['pairwise'] else ''} |"
              for r in m[m.method == "pairwise"].itertuples()]
    decided = "; ".join(f"degree {d}: {c['version']}, {kernel_name(c['coef0'])}, C = {c['c']:g}" for d, c in chosen.items())
    lines += ["", f"**Decided:** {decided}; pairwise: {decision['pairwise']}.", ""]
    rs = pd.read_csv(results_dir / "reduced_set.csv")
    full, reduced = rs[rs.per_pair.isna()].iloc[0], rs[rs.per_pair.notna()]
    c5 = chosen[RS_DEGREE]
    lines += [f"The reduced set (Burges 1996, repro/classical/svm.py) of the decided degree-{RS_DEGREE} machine "
              f"({c5['version']}, {kernel_name(c5['coef0'])}, C = {c5['c']:g}: {int(full.vectors):,} support vectors, "
              f"{int(full.macs):,} multiply-adds, validation error {full.val_error:.2%}); descriptive, no decision:", "",
              "| vectors per pair | vectors | multiply-adds | validation error | minus the full machine's |", "|---|---|---|---|---|"]
    lines += [f"| {int(r.per_pair)} | {int(r.vectors):,} | {int(r.macs):,} | {r.val_error:.2%} | "
              f"{(r.val_error - full.val_error) * 100:+.2f} points |" for r in reduced.itertuples()]
    close = reduced[reduced.val_error <= full.val_error + RS_WITHIN + 1e-12]
    at18 = reduced[reduced.per_pair == 18].iloc[0]
    lines += ["", f"At the paper's 18 vectors per pair: {at18.val_error:.2%} against the full machine's "
              f"{full.val_error:.2%}. " + (f"The smallest count tried within {RS_WITHIN * 100:.1f} point of the full "
                                           f"machine: {int(close.per_pair.min())} per pair."
                                           if len(close) else f"No count tried up to {max(RS_COUNTS)} per pair comes "
                                           f"within {RS_WITHIN * 100:.1f} point of the full machine."), ""]
    return {"table.md": "\n".join(lines) + "\n"}


def main():
    args = study_parser(__doc__).parse_args()
    out, runs = output_dirs("svm_search", args.scratch)
    confirm_outputs("make svm-search", args.scratch, out, runs)
    mnist.ensure_mnist()
    jobs = [(label(*t), 0, str(runs / label(*t)), t) for t in candidates()]
    t0 = time.time()
    run_all(jobs, args.workers, run_one)
    m = pd.DataFrame(results(jobs))
    decision = decide(m)
    rs = reduced_set(decision["svm"][RS_DEGREE], runs / "reduced_set")
    out.mkdir(parents=True, exist_ok=True)
    m.to_csv(out / "metrics.csv", index=False)
    rs.to_csv(out / "reduced_set.csv", index=False)
    (out / "decision.json").write_text(json.dumps(dict(rule=RULE, **decision), indent=1) + "\n")
    finish_study(out, render, [where for _, _, where, _ in jobs] + [runs / "reduced_set"], t0)


if __name__ == "__main__":
    main()
