"""Every generated text is a pure function of committed files: for each experiment with committed
results, render() (experiments/*.py, listed in experiments/readme.py) made from results/<experiment>/
must give the committed summary.md / table.md / stats.csv and the blocks of RESULTS.md and
README.md, character for character; and every block of the two pages is one that some render() makes.

Results written before the regenerable format lack a file that render() reads (invocation.json, or
mu_study's decision.json and test.csv); their texts cannot be checked, and the test is skipped with a
reason naming that file, until the experiment's make target writes them anew."""
import re
from pathlib import Path

import pytest

from blocks import PAGES, committed, is_block, is_current
from readme import RENDERERS

ROOT = Path(__file__).resolve().parents[1]

NEW_FORMAT = {"invocation.json", "decision.json", "test.csv"}  # what results made by the earlier code lack


def rendered(experiment):
    """render()'s texts from the committed results/<experiment>/, or a skip saying why there are none."""
    results = ROOT / "results" / experiment
    if not results.is_dir() or not any(p.is_file() for p in results.iterdir()):
        pytest.skip(f"results/{experiment}/ has no committed results")
    try:
        return RENDERERS[experiment][0](results)
    except FileNotFoundError as e:
        if Path(e.filename or "").name not in NEW_FORMAT:
            raise
        missing = Path(e.filename).relative_to(ROOT)
        pytest.skip(f"{missing} is missing: results/{experiment}/ predates the regenerable format "
                    f"(regenerate it with `{RENDERERS[experiment][1]}`)")


@pytest.mark.parametrize("experiment", sorted(RENDERERS))
def test_committed_texts_are_rendered_from_committed_files(experiment):
    results, target = ROOT / "results" / experiment, RENDERERS[experiment][1]
    texts = rendered(experiment)
    stale = [(name.replace("#", " block ") if is_block(name) else f"results/{experiment}/{name}")
             + (" (missing)" if committed(results, name) is None else "")
             for name, text in texts.items() if not is_current(results, name, text)]
    assert not stale, (f"{', '.join(stale)}: not what render() makes of the committed files in results/{experiment}/. "
                       f"Regenerate with `{target}` (it re-reads finished runs in runs/), or with `make readme`; "
                       f"`python experiments/readme.py {experiment}` writes the expected texts into scratch/rendered/.")


def test_every_block_of_the_pages_is_rendered_and_readme_has_only_its_headline():
    """A block that no render() makes would never be regenerated; README.md keeps one small block."""
    made = set()
    for experiment, (render, _) in RENDERERS.items():
        try:
            made |= set(render(ROOT / "results" / experiment))
        except FileNotFoundError:  # no committed results (yet): its blocks, if any, stay unchecked
            continue
    blocks = {f"{page}#{name}" for page in PAGES
              for name in re.findall(r"<!-- ([\w-]+):start -->", (ROOT / page).read_text())}
    assert blocks - made == set(), f"blocks that no render() makes: {sorted(blocks - made)}"
    assert {b for b in blocks if b.startswith("README.md#")} == {"README.md#headline"}
