"""`make readme`: every generated text (RESULTS.md's blocks, README.md's headline, the summaries and
tables of results/) made anew from the committed files, no training; and which script renders
which experiment. The scripts import the block I/O from blocks.py; this module imports the scripts,
never the reverse. tests/test_generated.py checks that the committed texts are what render() makes
of the committed files.

`python experiments/readme.py [EXPERIMENT ...]` renders from results/ into scratch/rendered/ (it
never writes results/, RESULTS.md or README.md) and says which committed texts differ; with --write
(`make readme`, from committed code only) it writes them in place: texts only, from the committed
files, no training.
"""
import argparse

import ablations
import bench
import compare
import compare_findings
import eps_range
import figures
import head_study
import mu_study
import protocol_study
import rbf_search
import recipe_study
import reproduce
import svm_search
from blocks import ROOT, is_current, write
from runner import confirm_outputs

# experiment (its folder in results/): (its render function, the make target that writes it)
RENDERERS = {"reproduce": (reproduce.render, "make reproduce"),
             "distortions": (reproduce.render, "make distortions"),
             "training_size": (reproduce.render, "make training-size"),
             "ablations": (ablations.render, "make ablations"),
             "mu_study": (mu_study.render, "make mu-study"),
             "eps_range": (eps_range.render, "make eps-range"),
             "recipe_study": (recipe_study.render, "make recipe-study"),
             "head_study": (head_study.render, "make head-study"),
             "compare": (compare.render, "make compare"),
             "svm_search": (svm_search.render, "make svm-search"),
             "rbf_search": (rbf_search.render, "make rbf-search"),
             "protocol_study": (protocol_study.render, "make protocol-study"),
             "compare_findings": (compare_findings.render, "make compare-findings"),
             "figures": (figures.render, "make figures"),
             "bench": (bench.render, "make bench")}


def main(experiments, write_in_place=False):
    for experiment in experiments or RENDERERS:
        render, target = RENDERERS[experiment]
        results = ROOT / "results" / experiment
        out = results if write_in_place else ROOT / "scratch" / "rendered" / experiment
        if not results.is_dir():
            print(f"{experiment}: no committed results (`{target}` writes them)")
            continue
        try:
            texts = render(results)
        except FileNotFoundError as e:
            print(f"{experiment}: cannot render ({e}); its results predate the regenerable format")
            continue
        if write_in_place:
            write(results, texts, blocks=True)
            print(f"{experiment}: rewrote {', '.join(texts)} from the committed files")
            continue
        out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (out / name.replace(".md#", "-block-")).write_text(text)
            state = "current" if is_current(results, name, text) else f"differs: `{target}` rewrites it"
            print(f"{experiment}: {name} {state} (rendered into {out})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help=f"default: all ({', '.join(RENDERERS)})")
    ap.add_argument("--write", action="store_true", help="rewrite the committed texts in place (make readme)")
    args = ap.parse_args()
    unknown = [e for e in args.experiments if e not in RENDERERS]
    if unknown:  # not choices=: Python 3.11's argparse refuses the empty default list against them
        ap.error(f"unknown experiment {unknown[0]!r}; experiments: {', '.join(RENDERERS)}")
    if args.write:
        confirm_outputs("make readme", False, ROOT / "results")
    main(args.experiments, args.write)
