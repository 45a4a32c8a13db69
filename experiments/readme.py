"""README blocks written by the make targets, so no number in README is typed by hand."""
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def update_block(name, text):
    """Replace what stands between <!-- name:start --> and <!-- name:end --> in README.md."""
    content = README.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in content or end not in content:
        raise ValueError(f"README.md has no {start} ... {end} block")
    head, rest = content.split(start, 1)
    README.write_text(head + start + "\n" + text.rstrip("\n") + "\n" + end + rest.split(end, 1)[1])
