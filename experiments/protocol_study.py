"""`make protocol-study`: could one protocol that the text does not state (fewer training images, the
other loss, fewer passes) explain both Fig. 9 rows that are worse in the paper than here, 3-NN (5.0%)
and the 300-10 network (4.7%)? Pre-registered in PAPER_NOTES.md ("The comparison's studies", "The
protocol study") before any of its runs. Explanatory: it decides nothing, and no row changes after it.

    knn      3-NN on raw pixels (the row "knn"), reference sets of the first KNN_SIZES training images;
             deterministic, so one run (seed 0) per reference set
    mlp-300  the 300-10 network as its row trains it (repro.combinations.row_config: the comparison's
             mu), in the factorial loss LOSSES {eq. 8, eq. 9} x passes PASSES x training set SIZES
             {the first 10,000, the first 50,000}, seeds SEEDS (the first `passes` rates of the row's
             eta schedule)
Each on the validation split (train on the first 50,000 training images, or their first 10,000;
errors on the last 10,000), then on the test set with the same settings, where "the first 50,000"
becomes all 60,000 training images; k-NN's test runs add the reference set of all 60,000. Reported
(report()): which protocol (a training set with the network's loss and passes, k-NN keeping the same
training images) gives both k-NN's and the network's test error of Fig. 9 within TOLERANCE, if any.

Writes results/protocol_study/: metrics.csv (one row per method, setting, seed and split: the error
after training), table.md (render(): from metrics.csv only), invocation.json, runs/<split>/ (each run's
config, provenance and CSVs; a network run kept there with all its passes is read, not trained again).
Runs are cached in runs/protocol_study/; only the full default run writes results/, and only from
committed code; --seeds, --passes, --train-size or --scratch write scratch/results/protocol_study/.
"""
import json
import time
from pathlib import Path

import pandas as pd
import torch

from blocks import write, write_invocation
from compare import run_all as run_classical, save_result
from runner import (VALIDATION_TRAIN, check_seeds, confirm_outputs, job, keep, kept, keep_provenance, output_dirs, quick_look,
                    run_all, study_parser, train_size, validated)
from repro import classical, combinations, paper
from repro import data as mnist

KNN, NETWORK = "knn", "mlp-300"  # the rows of Fig. 9 (repro.classical.METHODS, repro.networks.ROWS)
SPLITS = ("validation", "test")
KNN_SIZES = {"validation": (10_000, 20_000, 30_000, 40_000, 50_000),
             "test": (10_000, 20_000, 30_000, 40_000, 50_000, paper.TRAIN_SIZE)}
LOSSES = ("ml", "map")  # eq. 8, eq. 9 (the row's)
EQUATION = {"ml": "eq. 8", "map": "eq. 9"}
PASSES = (5, 20)
SIZES = (10_000, VALIDATION_TRAIN)  # the first 10,000 or 50,000 training images (on test: all 60,000)
SEEDS = [0, 1, 2]
KNN_SEED = 0  # k-NN draws nothing: one run per reference set
TOLERANCE = 0.003  # 0.3 point
RULE = ("a protocol is a training set (the first 10,000, or all 60,000 images) with the network's loss and passes, "
        "k-NN keeping the same training images as its reference set; it gives the paper's figures when k-NN's test "
        f"error and the network's mean over the seeds are both within {100 * TOLERANCE:.1f} point of Fig. 9's")


def images(size, split):
    """The training images a setting of `size` trains on: on the test set, 50,000 becomes all 60,000."""
    return paper.TRAIN_SIZE if split == "test" and size == VALIDATION_TRAIN else size


def knn_setting(size):
    return f"3-NN, first {size:,}"


def network_setting(loss, passes, size):
    return f"{EQUATION[loss]}, {passes} passes, first {size:,}"


def settings(seeds=SEEDS, cap=None):
    """Every run of the study: dicts of method, setting, split, loss, passes, size (the setting's
    training set), train_size (the images it trains on; at most `cap`, a quick look's --train-size),
    seed, and name (its folder). A quick look's --passes is applied by config()."""
    capped = lambda n: min(n, cap or paper.TRAIN_SIZE)
    out = []
    for split in SPLITS:  # k-NN's reference sets are the same on both splits; the test set adds all 60,000
        out += [dict(method=KNN, setting=knn_setting(size), split=split, loss="", passes=0, size=size,
                     train_size=capped(size), seed=KNN_SEED, name=f"{split}/knn_n{size}")
                for size in KNN_SIZES[split]]
        out += [dict(method=NETWORK, setting=network_setting(loss, passes, size), split=split, loss=loss, passes=passes,
                     size=size, train_size=capped(images(size, split)), seed=s, name=f"{split}/{NETWORK}_{loss}_p{passes}_n{size}_seed{s}")
                for loss in LOSSES for passes in PASSES for size in SIZES for s in seeds]
    return out


def config(run, passes=None):
    """The network's config for a run of settings(): the row's recipe with the setting's loss, passes
    (a quick look's `passes` instead) and training images."""
    network, distortions = combinations.network_of(NETWORK)
    return combinations.row_config(network, distortions, dict(loss=run["loss"], passes=passes or run["passes"],
                                                              train_size=run["train_size"]))


def run_knn(job):
    """One k-NN run, (label, seed, run directory, references, split); for compare.run_all."""
    name, seed, where, size, split = job
    torch.set_num_threads(1)
    if (Path(where) / "result.json").exists():
        return name, seed, None
    data = mnist.load_version(classical.get(KNN).version)
    if split == "validation":
        data = mnist.validation_split(data)
    t0 = time.perf_counter()
    model = classical.fit(KNN, data["train_x"][:size], data["train_y"][:size], seed)
    misses = int((model.scores(data["test_x"]).argmax(1) != data["test_y"]).sum())
    save_result(where, dict(method=KNN, split=split, train_size=size, seed=seed, misses=misses,
                            error=misses / len(data["test_y"]), seconds=round(time.perf_counter() - t0, 1)))
    return name, seed, time.perf_counter() - t0


def run_networks(runs, configs, kept_dir, cache, workers):
    """Train the network runs not yet kept in `kept_dir`, the validation split's first and the longest
    first within each split, keeping each (runner.keep) as it ends."""
    split = lambda r: "validation" if r["split"] == "validation" else "train"  # run_one's
    todo = [r for r in runs if not kept(kept_dir / r["name"], configs[r["name"]], r["seed"], split(r))]
    print(f"{len(runs) - len(todo)} network runs already kept in {kept_dir}, {len(todo)} to train", flush=True)
    todo.sort(key=lambda r: (SPLITS.index(r["split"]), -configs[r["name"]].passes * r["train_size"]))
    by_label = {f"{r['split']} {r['setting']} seed {r['seed']}": r for r in todo}
    run_all([job(label, configs[r["name"]], r["seed"], cache / r["name"], split(r),
                 eval_train="last", may_fail=True)
             for label, r in by_label.items()], workers,
            on_finish=lambda label: keep(cache / by_label[label]["name"], kept_dir / by_label[label]["name"]))


def collect(runs, kept_dir):
    """metrics.csv's rows: each run's error after training (the network's last pass)."""
    rows = []
    for r in runs:
        where = kept_dir / r["name"]
        if r["method"] == KNN:
            result = json.loads((where / "result.json").read_text())
            error, misses, failed = result["error"], result["misses"], False
        else:
            last = pd.read_csv(where / "metrics.csv").iloc[-1]
            error, misses, failed = float(last.test_error), int(last.test_misses), bool(last.failed)
        rows.append(dict(method=r["method"], setting=r["setting"], split=r["split"], loss=r["loss"],
                         passes=r["passes"] if r["method"] == NETWORK else "", size=r["size"], train_size=r["train_size"],
                         seed=r["seed"], error=error, misses=misses, failed=failed))
    return pd.DataFrame(rows)


# ---- the report, from metrics.csv only -------------------------------------------------------------

def near(error, figure):
    """Within TOLERANCE of the paper's figure (rounded, so that 5.30% against 5.0% counts as within)."""
    return round(abs(error - figure), 9) <= TOLERANCE


def first(n):
    return f"all {n:,}" if n == paper.TRAIN_SIZE else f"first {n:,}"


def trained_on(size, g):
    """A setting's training set, with the images its runs trained on where they differ (on the test
    set, all 60,000 for the first 50,000; a quick look's --train-size)."""
    counts = {split: sorted(g[g.split == split].train_size.unique()) for split in SPLITS}
    if all(c in ([], [size]) for c in counts.values()):
        return first(size)
    return f"{first(size)} (" + ", ".join(f"{split}: {', '.join(f'{n:,}' for n in c)}"
                                           for split, c in counts.items() if c and c != [size]) + ")"


def cell(errors):
    errors = errors.dropna()
    if errors.empty:
        return "–"
    return f"{errors.mean():.2%}" if len(errors) == 1 else f"{errors.mean():.2%} ± {errors.std():.2%}"


def protocols(metrics):
    """Per network setting on the test set: the training set it shares with k-NN, the network's mean
    test error, k-NN's on the same training images, and whether each and both are near the paper's."""
    test = metrics[metrics.split == "test"]
    knn = test[test.method == KNN].groupby("train_size").error.mean()
    net = test[test.method == NETWORK]
    out = []
    for (loss, passes, size, n), g in net.groupby(["loss", "passes", "size", "train_size"], sort=False):
        k = knn.get(n)
        e = g.error.mean()
        out.append(dict(loss=loss, passes=int(passes), size=int(size), train_size=int(n), network=e, seeds=len(g), knn=k,
                        network_near=near(e, paper.FIG9_ERROR[NETWORK]),
                        knn_near=k is not None and near(k, paper.FIG9_ERROR[KNN])))
    for p in out:
        p["both"] = p["network_near"] and p["knn_near"]
    return out


def report(metrics):
    """The pre-registered statement, either way."""
    figures = f"k-NN's {paper.FIG9_ERROR[KNN]:.1%} and the network's {paper.FIG9_ERROR[NETWORK]:.1%}"
    both = [p for p in protocols(metrics) if p["both"]]
    name = lambda p: f"the {first(p['train_size'])} images with {EQUATION[p['loss']]} and {p['passes']} passes"
    if both:
        head = (f"**{len(both)} protocol{'s' * (len(both) > 1)} give{'s' * (len(both) == 1)} both {figures} within "
                f"{100 * TOLERANCE:.1f} point on the test set: " + "; ".join(
                    f"{name(p)} (k-NN {p['knn']:.2%}, network {p['network']:.2%})" for p in both) + ".**")
    else:
        head = f"**No protocol gives both {figures} within {100 * TOLERANCE:.1f} point on the test set.**"
    test = metrics[metrics.split == "test"]
    knn = test[test.method == KNN].groupby("train_size").error.mean()
    knn_near = [f"the {first(n)} images ({e:.2%})" for n, e in knn.items() if near(e, paper.FIG9_ERROR[KNN])]
    net = test[test.method == NETWORK].groupby("setting", sort=False).error.mean()
    net_near = [f"{s} ({e:.2%})" for s, e in net.items() if near(e, paper.FIG9_ERROR[NETWORK])]
    nearest = (net - paper.FIG9_ERROR[NETWORK]).abs().idxmin() if len(net) else None
    alone = (f" Alone, k-NN is within {100 * TOLERANCE:.1f} point of {paper.FIG9_ERROR[KNN]:.1%} with "
             f"{', '.join(knn_near) or 'no reference set'}; the network within it of {paper.FIG9_ERROR[NETWORK]:.1%} in "
             f"{', '.join(net_near) or 'no setting'}"
             + (f" (the nearest: {nearest}, {net[nearest]:.2%})" if nearest is not None and not net_near else "") + ".")
    return head + alone


def table(metrics):
    m = metrics.copy()
    lines = ["# The protocol study: k-NN's and the 300-10 network's training protocol\n",
             "Generated by `make protocol-study` (pre-registered: PAPER_NOTES.md, \"The comparison's studies\", \"The "
             "protocol study\"; explanatory, it decides nothing; each run in results/protocol_study/runs/). Validation: "
             "train on the first 10,000 to 50,000 training images, error on the last 10,000. Test: the same settings, "
             "all 60,000 images where a setting says the first 50,000. Errors: mean ± std over the seeds.\n",
             f"## 3-NN (Fig. 9: {paper.FIG9_ERROR[KNN]:.1%})\n",
             "| reference set | validation | test | within 0.3 point on test |", "|---|---|---|---|"]
    knn = m[m.method == KNN]
    for size in sorted(knn["size"].unique()):
        g = knn[knn["size"] == size]
        val, test = g[g.split == "validation"].error, g[g.split == "test"].error
        lines.append(f"| {trained_on(size, g)} | {cell(val)} | {cell(test)} | "
                     f"{('yes' if near(test.mean(), paper.FIG9_ERROR[KNN]) else 'no') if len(test) else '–'} |")
    net = m[m.method == NETWORK]
    lines += ["", f"## The 300-10 network (Fig. 9: {paper.FIG9_ERROR[NETWORK]:.1%})\n",
              "| loss | passes | training set | seeds | validation | test | within 0.3 point on test |", "|---|---|---|---|---|---|---|"]
    for (loss, passes, size), g in net.groupby(["loss", "passes", "size"], sort=False):
        val, test = g[g.split == "validation"], g[g.split == "test"]
        lines.append(f"| {EQUATION[loss]} | {int(passes)} | {trained_on(size, g)} | {g.seed.nunique()} | {cell(val.error)} | "
                     f"{cell(test.error)} | {('yes' if near(test.error.mean(), paper.FIG9_ERROR[NETWORK]) else 'no') if len(test) else '–'} |")
    lines += ["", "## The protocols, on the test set\n", f"\"Which protocol\", read before the runs: {RULE}.\n",
              "| training set | loss | passes | 3-NN | 300-10 network | both within 0.3 point |", "|---|---|---|---|---|---|"]
    for p in protocols(m):
        knn_cell = f"{p['knn']:.2%}" if p["knn"] is not None else "–"
        lines.append(f"| {first(p['train_size'])} | {EQUATION[p['loss']]} | {p['passes']} | {knn_cell} | "
                     f"{p['network']:.2%} | {'yes' if p['both'] else 'no'} |")
    failed = m[m.failed.astype(bool)]
    if len(failed):
        lines += ["", "Runs that stayed at chance (counted in the means): " + ", ".join(
            f"{r.split} {r.setting} seed {r.seed} ({r.error:.2%})" for r in failed.itertuples()) + "."]
    lines += ["", report(m)]
    return "\n".join(lines) + "\n"


def render(results_dir):
    return {"table.md": table(pd.read_csv(Path(results_dir) / "metrics.csv"))}


def main():
    ap = study_parser(__doc__, SEEDS, seeds_help="the network's seeds (k-NN draws nothing)",
                      passes_help="every network trains this many passes, for a quick look (not the study)")
    ap.add_argument("--train-size", type=train_size,
                    help="at most this many training images (and k-NN references) per run, for a quick look (not the study)")
    args = ap.parse_args()
    quick, scratch = quick_look(args, SEEDS)
    out, cache = output_dirs("protocol_study", scratch, overrides=quick)

    def build():  # every run and config, checked before anything trains
        check_seeds(args.seeds)
        k = classical.get(KNN).options["k"]
        if args.train_size is not None and args.train_size < k:
            raise ValueError(f"argument --train-size: 3-NN needs at least {k} reference images, got {args.train_size}")
        runs = settings(args.seeds, args.train_size)
        return runs, {r["name"]: config(r, args.passes) for r in runs if r["method"] == NETWORK}
    runs, configs = validated(ap, build)
    confirm_outputs("make protocol-study", scratch, out, cache)
    mnist.ensure_mnist()
    kept_dir, t0 = out / "runs", time.time()
    knn = [r for r in runs if r["method"] == KNN]
    run_classical([(f"{r['split']} {r['setting']}", r["seed"], str(cache / r["name"]), r["train_size"], r["split"]) for r in knn],
                  args.workers, run_knn)
    for r in knn:
        keep_provenance(cache / r["name"], kept_dir / r["name"])
    run_networks([r for r in runs if r["method"] == NETWORK], configs, kept_dir, cache, args.workers)
    metrics = collect(runs, kept_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out / "metrics.csv", index=False)
    write_invocation(out, time.time() - t0)
    write(out, render(out), blocks=False)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
