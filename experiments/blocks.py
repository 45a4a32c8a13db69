"""The generated texts' input and output, shared by every script (experiments/readme.py knows which
script renders what; this module imports none of them).

Each experiment script has `render(results_dir) -> {name: text}`, made only from files committed in
results/<experiment>/ (and the committed code). A name is a file of results_dir ("summary.md") or a
block of a page at the top of the repository, "RESULTS.md#reproduce": what stands between
<!-- reproduce:start --> and <!-- reproduce:end --> in RESULTS.md. RESULTS.md holds every generated
result; README.md holds one small block, its headline.
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "RESULTS.md")  # the pages with generated blocks
README_MD, RESULTS_MD = "README.md#", "RESULTS.md#"  # how the render() name of a block on each page starts


def is_block(name):
    return "#" in name


def _split(name):
    """(page path, text up to and with the start marker, the block's body, the rest) of a block's name."""
    page, block = name.split("#", 1)
    path = ROOT / page
    content = path.read_text()
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    if start not in content or end not in content:
        raise ValueError(f"{page} has no {start} ... {end} block")
    head, rest = content.split(start, 1)
    body, tail = rest.split(end, 1)
    return path, head + start, body, end + tail


def block_body(text):
    """What a block holds once `text` is written into it."""
    return "\n" + text.rstrip("\n") + "\n"


def read_block(name):
    """The body of the block `name` ("RESULTS.md#ablations"); ValueError where the page lacks it."""
    return _split(name)[2]


def update_block(name, text):
    """Replace what stands between the block's start and end markers."""
    path, head, _, tail = _split(name)
    path.write_text(head + block_body(text) + tail)


def committed(results_dir, name):
    """The committed text that render()'s `name` stands for (None if there is none)."""
    if is_block(name):
        try:
            return read_block(name)
        except ValueError:
            return None
    path = Path(results_dir) / name
    return path.read_text() if path.exists() else None


def is_current(results_dir, name, text):
    expected = block_body(text) if is_block(name) else text
    return committed(results_dir, name) == expected


def write(results_dir, texts, blocks):
    """Write render()'s texts: files into results_dir, and the pages' blocks only with `blocks` (the
    full run's; a quick look in scratch/ must leave the pages alone)."""
    for name, text in texts.items():
        if not is_block(name):
            (Path(results_dir) / name).write_text(text)
        elif blocks:
            update_block(name, text)


def write_invocation(results_dir, wall_seconds):
    """invocation.json: what a generated text says about the invocation and no CSV holds."""
    (Path(results_dir) / "invocation.json").write_text(json.dumps(dict(wall_seconds=round(wall_seconds, 1))) + "\n")


def invocation(results_dir):
    return json.loads((Path(results_dir) / "invocation.json").read_text())
