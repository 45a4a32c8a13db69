"""`make tables`: write results/tables/ from the code (no training involved)."""
from pathlib import Path

from repro.tables import TABLES

OUT = Path(__file__).resolve().parents[1] / "results" / "tables"

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, render in TABLES.items():
        (OUT / name).write_text(render())
        print(f"wrote {OUT / name}")
