"""The papermill runner: parameter checks before any work, failing cells fail the run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit import parameters, runner

ROOT = Path(__file__).resolve().parents[1]
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Tiny

```{code-cell} ipython3
:tags: [parameters]

profile = "cpu"
seed = 0
rate = 0.5
results_path = ""
```
"""


def make_project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "chapters").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapters/00_tiny\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "references.bib").write_text((ROOT / "references.bib").read_text())
    (tmp_path / "chapters" / "00_tiny.md").write_text(HEADER + body)
    return tmp_path


WRITE_RESULTS = """
```{code-cell} ipython3
import json, pathlib
pathlib.Path(results_path).write_text(json.dumps({"profile": profile, "rate": rate, "seed": seed}))
```
"""
RAISE = """
```{code-cell} ipython3
raise RuntimeError("this cell fails on purpose")
```
"""


def test_notebook_parameters_and_chapter_lookup():
    nb = parameters.read_notebook(ROOT / "chapters" / "00_setup.md")
    params = parameters.notebook_parameters(nb)
    assert {"profile", "device", "seed", "results_path"} <= set(params)
    assert parameters.resolve_chapter(ROOT, "setup").name == "00_setup.md"
    assert parameters.toc_chapters(ROOT)[0] == "00_setup"


@pytest.mark.parametrize("text, expected", [("seed=3", ("seed", 3)), ("rate=0.1", ("rate", 0.1)),
                                            ("name=abc", ("name", "abc")), ("flag=True", ("flag", True))])
def test_parse_override(text, expected):
    assert parameters.parse_override(text) == expected


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(name="nope"), ValueError, r"unknown chapter 'nope'; allowed: 00_tiny"),
    (dict(name="tiny", profile="huge"), ValueError, r"unknown profile 'huge'"),
    (dict(name="tiny", overrides={"epochs": 3}), ValueError, r"unknown parameter\(s\) \['epochs'\]; allowed"),
    (dict(name="tiny", overrides={"seed": "one"}), TypeError, r"seed='one' has type str; expected int"),
    (dict(name="tiny", overrides={"seed": 1.5}), TypeError, r"seed=1.5 has type float"),
    (dict(name="tiny", overrides={"rate": True}), TypeError, r"rate=True"),
])
def test_bad_input_fails_before_execution(tmp_path, kwargs, error, message):
    root = make_project(tmp_path / "proj", WRITE_RESULTS)
    out = tmp_path / "out"
    name = kwargs.pop("name")
    with pytest.raises(error, match=message):
        runner.run_chapter(name, out=out, root=root, **{"profile": "smoke", **kwargs})
    assert not any(out.rglob("*.json")) and not any(out.rglob("*.ipynb"))


def test_unwritable_output_path_is_a_file(tmp_path):
    root = make_project(tmp_path / "proj", WRITE_RESULTS)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError):
        runner.run_chapter("tiny", profile="smoke", out=blocker, root=root)


def test_run_passes_parameters_and_writes_results(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARNKIT_DATA", raising=False)
    root = make_project(tmp_path / "proj", WRITE_RESULTS)
    result = runner.run_chapter("tiny", profile="smoke", overrides={"rate": 2}, out=tmp_path / "out", root=root)
    assert "UNLEARNKIT_DATA" not in os.environ, "the runner must not leak the kernel's environment"
    assert json.loads(result.results.read_text()) == {"profile": "smoke", "rate": 2, "seed": 0}
    assert result.notebook.is_file()


def test_a_failing_cell_fails_the_run_and_leaves_no_results(tmp_path):
    import papermill

    root = make_project(tmp_path / "proj", RAISE + WRITE_RESULTS)
    with pytest.raises(papermill.PapermillExecutionError, match="fails on purpose"):
        runner.run_chapter("tiny", profile="smoke", out=tmp_path / "out", root=root)
    assert not (tmp_path / "out" / "results" / "00_tiny.json").exists()


def test_cli_rejects_unknown_parameter_with_one_clear_message(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unlearnkit", "run", "setup", "--profile", "smoke",
                           "-p", "epochz=1", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown parameter(s) ['epochz']" in proc.stderr
    assert not any(tmp_path.rglob("*.json"))


SLOW = """
```{code-cell} ipython3
import time, sys
for step in range(3):
    print(f"step {step}", file=sys.stderr, flush=True)
    time.sleep(0.4)
```
"""


def test_a_build_reports_the_running_cell_and_ends_with_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.3)
    root = make_project(tmp_path / "proj", SLOW + WRITE_RESULTS)
    results = runner.run_all(profile="smoke", out=tmp_path / "out", root=root)
    err = capsys.readouterr().err
    assert "step 2" in err, "the kernel's stderr (progress bars) reaches the terminal"
    assert "[unlearnkit] 00_tiny: cell 4/5 (import time, sys)" in err
    rows = runner.summary_rows(results)
    assert [r["chapter"] for r in rows] == ["00_tiny"] and rows[0]["trained"] == rows[0]["cached"] == 0


WRITE_SCORECARD = """
```{code-cell} ipython3
import json, pathlib
pathlib.Path(results_path).write_text(json.dumps({"scorecard": [{"verdict": "reproduced"}, {"verdict": "inconclusive"}]}))
```
"""


def test_cli_run_says_where_it_is_and_ends_with_its_results(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.3)
    root = make_project(tmp_path / "proj", SLOW + WRITE_SCORECARD)
    monkeypatch.chdir(root)
    out_dir = tmp_path / "out"
    assert runner.main(["run", "tiny", "--profile", "smoke", "--out", str(out_dir)]) == 0
    out, err = capfd.readouterr()
    assert "[unlearnkit] 00_tiny: cell 4/5 (import time, sys)" in err and "step 2" in err  # heartbeat, progress
    assert "without encryption" not in err  # the kernel's start-up warning is not shown
    assert json.loads(out.strip().splitlines()[-1])["results"] == str(out_dir.resolve() / "results" / "00_tiny.json")
    last = err.strip().splitlines()[-1]  # the reader's line, after the JSON line scripts read
    assert last.startswith("[unlearnkit] 00_tiny done in 0m")
    assert f"results {out_dir.resolve() / 'results' / '00_tiny.json'}" in last
    assert last.endswith("verdicts: inconclusive 1, reproduced 1")
    assert runner.main(["run", "tiny", "--profile", "smoke", "--out", str(out_dir), "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert "cell 4/5" not in err and "step 2" not in err and "done in" in err.strip().splitlines()[-1]
    assert "results" in json.loads(out.strip().splitlines()[-1])


def test_summary_counts_models_and_verdicts(tmp_path):
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"models": [{"cache_hit": False}, {"cache_hit": True}, {"cache_hit": True}],
                                   "scorecard": [{"verdict": "reproduced"}, {"verdict": "not reproduced"},
                                                 {"verdict": "reproduced"}]}))
    run = runner.RunResult(tmp_path / "03_mumis.ipynb", results, 12.0)
    assert runner.summary_rows([run]) == [{"chapter": "03_mumis", "seconds": 12.0, "trained": 1, "cached": 2,
                                           "verdicts": {"reproduced": 2, "not reproduced": 1}}]
    table = runner.build_summary([run]).splitlines()
    assert table[0].split()[:4] == ["chapter", "seconds", "trained", "cached"]
    assert table[1].split()[:4] == ["03_mumis", "12", "1", "2"] and "not reproduced 1" in table[1]
    assert table[-1].split()[:4] == ["total", "12", "1", "2"]


def test_a_failing_cell_names_the_chapter_and_the_cell(tmp_path):
    root = make_project(tmp_path / "proj", RAISE)
    with pytest.raises(runner.ChapterFailed, match=r"chapter 00_tiny failed in cell 4 .*RuntimeError: this cell"):
        runner.run_all(profile="smoke", out=tmp_path / "out", root=root)


def test_repository_buttons_follow_the_configured_url():
    config = {"execute": {"timeout": 5}, "repository": {"url": "", "branch": "main"}, "html": {"x": 1}}
    staged = runner.staged_config(config)
    assert staged["execute"] == {"timeout": 5, "execute_notebooks": "off"} and "repository" not in staged
    assert staged["html"] == {"x": 1, "use_repository_button": False, "use_issues_button": False}
    config["repository"]["url"] = "https://example.org/book"
    staged = runner.staged_config(config)
    assert staged["repository"]["url"] == "https://example.org/book"
    assert staged["html"]["use_repository_button"] and staged["html"]["use_issues_button"]
    assert config["execute"] == {"timeout": 5}, "the project's config is not modified"


def test_the_injected_parameters_cell_is_removed_from_the_page(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]})])
    nbformat.write(nb, tmp_path / "in.ipynb")
    runner.hide_injected_parameters(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    tags = [c.metadata.get("tags") for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells]
    assert tags == [["parameters"], ["injected-parameters", "remove-cell"]]
