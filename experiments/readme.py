"""README blocks written by the make targets, so no number in README is typed by hand; and the
generated texts as a function of committed files.

Each experiment script has `render(results_dir) -> {name: text}`, made only from files committed in
results/<experiment>/ (and the committed code): a name is a file in results_dir ("summary.md") or a
README block ("README.md#reproduce"). Its full run writes those texts (write()); tests/test_generated.py
checks that the committed texts are what render() makes of the committed files.

`python experiments/readme.py [EXPERIMENT ...]` renders from results/ into scratch/rendered/ (it
never writes results/ or README.md) and says which committed texts differ; with --write (`make
readme`, from committed code only) it writes them in place: texts only, from the committed files,
no training.
"""
import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = "README.md#"  # prefix of a render() name that is a README block
TARGETS = {"reproduce": "make reproduce", "distortions": "make distortions", "training_size": "make training-size",
           "ablations": "make ablations", "search": "make search", "eps_range": "make eps-range",
           "compare": "make compare", "svm_search": "make svm-search",
           "compare_findings": "make compare-findings"}


def renderers():
    """{experiment: its render function}, imported here (the scripts import this module)."""
    import ablations
    import compare
    import compare_findings
    import eps_range
    import reproduce
    import search
    import svm_search
    return {"reproduce": reproduce.render, "distortions": reproduce.render, "training_size": reproduce.render,
            "ablations": ablations.render, "search": search.render, "eps_range": eps_range.render,
            "compare": compare.render, "svm_search": svm_search.render,
            "compare_findings": compare_findings.render}


def _split(content, name):
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in content or end not in content:
        raise ValueError(f"README.md has no {start} ... {end} block")
    head, rest = content.split(start, 1)
    body, tail = rest.split(end, 1)
    return head + start, body, end + tail


def block_body(text):
    """What a block holds once `text` is written into it."""
    return "\n" + text.rstrip("\n") + "\n"


def read_block(name):
    return _split(README.read_text(), name)[1]


def update_block(name, text):
    """Replace what stands between <!-- name:start --> and <!-- name:end --> in README.md."""
    head, _, tail = _split(README.read_text(), name)
    README.write_text(head + block_body(text) + tail)


def committed(results_dir, name):
    """The committed text that render()'s `name` stands for (None if there is none)."""
    if name.startswith(BLOCK):
        try:
            return read_block(name[len(BLOCK):])
        except ValueError:
            return None
    path = Path(results_dir) / name
    return path.read_text() if path.exists() else None


def is_current(results_dir, name, text):
    expected = block_body(text) if name.startswith(BLOCK) else text
    return committed(results_dir, name) == expected


def write(results_dir, texts, readme):
    """Write render()'s texts: files into results_dir, README blocks only with `readme`."""
    for name, text in texts.items():
        if not name.startswith(BLOCK):
            (Path(results_dir) / name).write_text(text)
        elif readme:
            update_block(name[len(BLOCK):], text)


def write_invocation(results_dir, wall_seconds):
    """invocation.json: what a generated text says about the invocation and no CSV holds."""
    (Path(results_dir) / "invocation.json").write_text(json.dumps(dict(wall_seconds=round(wall_seconds, 1))) + "\n")


def invocation(results_dir):
    return json.loads((Path(results_dir) / "invocation.json").read_text())


def main(experiments, write_in_place=False):
    for experiment in experiments or TARGETS:
        results = ROOT / "results" / experiment
        out = results if write_in_place else ROOT / "scratch" / "rendered" / experiment
        try:
            texts = renderers()[experiment](results)
        except FileNotFoundError as e:
            print(f"{experiment}: cannot render ({e}); its results predate the regenerable format")
            continue
        if write_in_place:
            write(results, texts, readme=True)
            print(f"{experiment}: rewrote {', '.join(texts)} from the committed files")
            continue
        out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (out / name.replace(BLOCK, "README-block-")).write_text(text)
            state = "current" if is_current(results, name, text) else f"differs: `{TARGETS[experiment]}` rewrites it"
            print(f"{experiment}: {name} {state} (rendered into {out})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help=f"default: all ({', '.join(TARGETS)})")
    ap.add_argument("--write", action="store_true", help="rewrite the committed texts in place (make readme)")
    args = ap.parse_args()
    unknown = [e for e in args.experiments if e not in TARGETS]
    if unknown:  # not choices=: Python 3.11's argparse refuses the empty default list against them
        ap.error(f"unknown experiment {unknown[0]!r}; experiments: {', '.join(TARGETS)}")
    if args.write:
        from runner import confirm_outputs
        confirm_outputs("make readme", False, ROOT / "results")
    main(args.experiments, args.write)
