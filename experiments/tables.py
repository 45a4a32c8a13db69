"""`make tables`: write results/tables/ from the code (no training involved). Only from committed
code; with --scratch it writes scratch/results/tables/ instead."""
import argparse

from repro.tables import TABLES
from runner import add_scratch_arg, confirm_outputs, output_dirs

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    add_scratch_arg(ap)
    scratch = ap.parse_args().scratch
    out, _ = output_dirs("tables", scratch)
    confirm_outputs("make tables", scratch, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, render in TABLES.items():
        (out / name).write_text(render())
        print(f"wrote {out / name}")
