from pathlib import Path

import pytest

from repro.tables import TABLES

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "tables"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_committed_tables_are_what_make_tables_writes(name):
    assert (COMMITTED / name).read_text() == TABLES[name](), f"results/tables/{name} is stale: run `make tables`"
