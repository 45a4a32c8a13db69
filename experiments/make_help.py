"""`make help`: every target of the Makefile with its `## ` description and the wall time of its last
full run (results/<folder>/invocation.json, where the description names [results/<folder>]).
Standard library only: it runs before the virtualenv exists."""
import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = re.compile(r"^([a-z][a-z-]*):[^=]*?##\s*(.*)$")


def lines(makefile=ROOT / "Makefile"):
    out = []
    for line in makefile.read_text().splitlines():
        if m := TARGET.match(line):
            name, text = m.groups()
            folder = re.search(r"\[(results/[a-z_]+)\]", text)
            took = ""
            if folder and (ROOT / folder.group(1) / "invocation.json").exists():
                seconds = json.loads((ROOT / folder.group(1) / "invocation.json").read_text())["wall_seconds"]
                took = f"  (last run: {seconds / 60:.0f} min)" if seconds >= 60 else f"  (last run: {seconds:.0f} s)"
            out.append(f"  make {name:<17} {text}{took}")
    return out


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, allow_abbrev=False).parse_args()  # --help, and nothing else
    print("Targets (results/ is written only by a target's full default run, from committed code):")
    print("\n".join(lines()))
