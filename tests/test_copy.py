"""The copy test: the code a reader sees in chapters 2, 3 and 4 (the parameters cell and every cell
not hidden), in order, is a plain Python script that runs in a fresh interpreter outside the book
and returns the chapter's main results table, the same numbers as the chapter's own run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit import parameters
from unlearnkit.experiments import harness

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = {"hide-input", "remove-cell", "remove-input"}
MAIN_TABLE = {"02_dlfd": ("face_runs", "ch2-face-runs"), "03_mumis": ("runs", "ch3-runs"),
              "04_head-to-head": ("runs", "ch4-runs")}
"""Per chapter: the script's name for its main table (:func:`.harness.compare`'s rows) and the
results-file table the chapter stored from it."""
KEY = ["problem", "method", "pick", "seed", "settings"]

pytestmark = pytest.mark.chapters


def visible_script(stem: str, profile: str) -> str:
    """The chapter's visible code cells as one script, the profile set after the parameters cell
    (as papermill's injected cell does)."""
    nb = parameters.read_notebook(ROOT / "chapters" / f"{stem}.md")
    parts = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and not tags & HIDDEN:
            parts.append(cell.source)
            if "parameters" in tags:
                parts.append(f"profile = {profile!r}")
    return "\n\n".join(parts) + "\n"


def test_visible_cells_use_no_hidden_name():
    """Every chapter's visible script is closed: each name it reads is bound in it (or a builtin)."""
    import builtins
    import symtable

    def scopes(table):
        yield table
        for child in table.get_children():
            yield from scopes(child)

    for stem in MAIN_TABLE:
        symbols = [s for t in scopes(symtable.symtable(visible_script(stem, "smoke"), stem, "exec"))
                   for s in t.get_symbols()]
        bound = {s.get_name() for s in symbols if s.is_assigned() or s.is_imported() or s.is_parameter()}
        free = {s.get_name() for s in symbols if s.is_referenced()} - bound - set(dir(builtins))
        assert not free, f"{stem}: visible cells read names only hidden cells define: {sorted(free)}"


@pytest.mark.parametrize("stem", sorted(MAIN_TABLE))
def test_visible_cells_reproduce_the_main_table_outside_the_book(stem, smoke_runs, tmp_path):
    out, runs = smoke_runs
    chapter_results = json.loads(runs[stem].results.read_text())  # the chapter's own run (and its cache)
    variable, table_name = MAIN_TABLE[stem]
    script = tmp_path / f"{stem}.py"
    script.write_text(visible_script(stem, "smoke"))
    dump = tmp_path / "main_table.json"
    driver = (f"import runpy; ns = runpy.run_path({str(script)!r}); "
              f"ns[{variable!r}].drop(columns=['run_path']).to_json({str(dump)!r}, orient='records')")
    env = {**os.environ, "UNLEARNKIT_CACHE": str(runs.cache), "MPLBACKEND": "Agg",
           "UNLEARNKIT_DATA": os.environ.get("UNLEARNKIT_DATA", str(ROOT / "data"))}
    done = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    import pandas as pd

    ours = pd.read_json(dump, orient="records")
    theirs = pd.DataFrame(chapter_results["tables"][table_name])
    assert len(ours) == len(theirs) > 0
    metrics = [m for m in harness.MEASURED if m in ours and m in theirs]
    assert {"RA", "FA", "TA"} <= set(metrics)
    merged = ours.merge(theirs, on=KEY, suffixes=("", "_book"), validate="one_to_one")
    assert len(merged) == len(ours)
    for metric in metrics:
        pd.testing.assert_series_equal(merged[metric], merged[f"{metric}_book"], check_names=False, atol=1e-9)
