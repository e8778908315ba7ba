"""examples/quickstart.py: a researcher's comparison from the public API, run as a script in a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_prints_the_comparison_table_and_a_paired_verdict(tmp_path):
    script = ROOT / "examples" / "quickstart.py"
    assert len(script.read_text().splitlines()) <= 30, "the quickstart stays short enough to read at a glance"
    env = {**os.environ, "UNLEARNKIT_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, str(script), "smoke"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "forget acc. (%)" in lines[0] and "Avg. Gap (points)" in lines[0]
    assert [line.split()[0] for line in lines[2:6]] == ["Original", "Retrain", "FT", "NegGrad"]
    verdict = lines[-1]
    assert verdict.startswith("FT closer to Retrain than NegGrad (Avg. Gap, paired over 2 seeds)")
    assert verdict.rsplit("-> ", 1)[1] in ("reproduced", "not reproduced", "inconclusive")
