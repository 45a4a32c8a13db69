"""Every generated text is a pure function of committed files: for each experiment with committed
results, render() (experiments/*.py) made from results/<experiment>/ must give the committed
summary.md / table.md / stats.csv and README's blocks, character for character.

Results written before the regenerable format lack a file that render() reads (invocation.json, or
search's decision.json and test.csv); their texts cannot be checked, and the test is skipped with a
reason naming that file, until the experiment's make target writes them anew."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import readme  # noqa: E402

NEW_FORMAT = {"invocation.json", "decision.json", "test.csv"}  # what results made by the earlier code lack


@pytest.mark.parametrize("experiment", sorted(readme.TARGETS))
def test_committed_texts_are_rendered_from_committed_files(experiment):
    results = ROOT / "results" / experiment
    if not list(results.glob("*.csv")):
        pytest.skip(f"results/{experiment}/ has no committed results")
    target = readme.TARGETS[experiment]
    try:
        texts = readme.renderers()[experiment](results)
    except FileNotFoundError as e:
        if Path(e.filename or "").name not in NEW_FORMAT:
            raise
        missing = Path(e.filename).relative_to(ROOT)
        pytest.skip(f"{missing} is missing: results/{experiment}/ predates the regenerable format "
                    f"(regenerate it with `{target}`)")
    stale = [(name.replace(readme.BLOCK, "README.md block ") if name.startswith(readme.BLOCK)
              else f"results/{experiment}/{name}") + (" (missing)" if readme.committed(results, name) is None else "")
             for name, text in texts.items() if not readme.is_current(results, name, text)]
    assert not stale, (f"{', '.join(stale)}: not what render() makes of the committed files in results/{experiment}/. "
                       f"Regenerate with `{target}` (it re-reads finished runs in runs/); "
                       f"`python experiments/readme.py {experiment}` writes the expected texts into scratch/rendered/.")
