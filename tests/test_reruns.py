"""Every chapter prints how to rerun it, and those commands, run as printed, reproduce the book.

Each chapter's header (and the README, for ``00_setup``) holds a ``Rerun this chapter``
admonition whose bash block is :func:`recipe` for that chapter: the CLI at ``smoke``, ``cpu``
and ``paper``, and a plain papermill pipeline. The tests below run the two ``smoke`` commands
exactly as printed (``bash -c``, from the repository root, the project's environment first on
``PATH``, ``UNLEARNKIT_CACHE`` a fresh folder so models are trained again, not loaded):

- the CLI command must reproduce the session's run of the chapter (fixture ``smoke_runs``, same
  seed, the models partly loaded from that session's cache): every value of ``results.json``
  equal, timing values excepted — this is the determinism check;
- the papermill command, with ``-p seed 1``, must change at least one such value, unless the
  chapter draws nothing at random (it never calls ``seed_everything(seed)``; ``05_speed`` only
  renders ``benchmarks/latest.json``), in which case every value must stay the same.

Timing values are excluded by a rule on their names, not a list: a value is a reading of the
clock or of the cache's state when its name, split at ``_`` and ``-``, contains a word of
:data:`CLOCK_WORDS` (``train_seconds``, ``bench_plain_ms``, ``ch1_bench_matmul_s``,
``cache_hit``). Values computed from timings carry the same words and go with them: speedups
and time ratios (``full_class_speedup``, ``ch1_syn_salun_time_ratio``, ``bench_ratio``), the
share of a step's time spent in OT (``ch2-ot-time-share``) and the "meets/misses" verdict of
the speed goal (``ch2-speed-goal``). The rule also drops a few fixed settings of the timing
code (``bench_batch``, ``tol_speedup``), which are constants. Tables and the scorecard are
not compared: their numbers are the values', plus timing columns. On a GPU the same holds
because ``seed_everything`` pins cuDNN to deterministic kernels (tested below; this machine
has no GPU, so the chapter runs check the CPU).
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearnkit import parameters, runtime
from unlearnkit.config import PROFILES

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = parameters.toc_chapters(ROOT)
CLOCK_WORDS = frozenset({"seconds", "s", "ms", "time", "speed", "speedup", "bench", "cache", "cached", "hit",
                         "hits"})
ADMONITION = re.compile(r"^````\{admonition\} Rerun this chapter\n.*?^```bash\n(?P<block>.*?)\n```\n.*?^````$",
                        re.S | re.M)


def recipe(stem: str) -> str:
    """The bash block every chapter's header shows for ``stem`` (comments aligned)."""
    cli = f"python -m unlearnkit run {stem} --profile"
    width = len(f"{cli} paper -p device=cuda") + 2
    return "\n".join([
        f"{cli} smoke".ljust(width) + "# synthetic stand-ins, minutes on a laptop CPU",
        f"{cli} cpu -p seed=1".ljust(width) + "# the book's profile, with another seed",
        f"{cli} paper -p device=cuda".ljust(width) + "# the papers' scale, on a GPU",
        f"mkdir -p _build/papermill && jupytext --to ipynb -o - chapters/{stem}.md \\",
        '  | UNLEARNKIT_DATA="${UNLEARNKIT_DATA:-$PWD/data}" OMP_WAIT_POLICY=PASSIVE \\',
        f"    papermill - _build/papermill/{stem}.ipynb --cwd chapters \\",
        f'    -p profile smoke -p seed 1 -p results_path "$PWD/_build/papermill/{stem}.json"',
    ])


def printed_blocks(text: str) -> list[str]:
    """The bash blocks of the ``Rerun this chapter`` admonitions in a markdown text."""
    return [m["block"] for m in ADMONITION.finditer(text)]


def commands(block: str) -> list[str]:
    """The block's shell commands, one per item, continuation lines joined."""
    return [c for c in re.sub(r"\\\n", "", block).splitlines() if c.strip()]


def smoke_command(stem: str, tool: str) -> str:
    """The printed ``smoke`` command of ``stem`` that calls ``tool`` (``unlearnkit`` or ``papermill``)."""
    (block,) = printed_blocks((ROOT / "chapters" / f"{stem}.md").read_text())
    (command,) = [c for c in commands(block) if tool in c and re.search(r"(--profile|-p profile) smoke", c)]
    return command


def overrides_in(command: str) -> tuple[str, dict]:
    """``(profile, {name: value})`` a printed command asks for (CLI ``-p k=v`` or papermill ``-p k v``)."""
    words = shlex.split(command, comments=True)
    if "papermill" in words:
        words = words[words.index("papermill"):]
        params = {words[i + 1]: words[i + 2] for i, w in enumerate(words) if w == "-p"}
        return params.pop("profile"), params
    params = dict(parameters.parse_override(words[i + 1]) for i, w in enumerate(words) if w == "-p")
    return words[words.index("--profile") + 1], params


def is_timing(name: str) -> bool:
    """A value read from the clock or the cache's state (see the module docstring)."""
    return not CLOCK_WORDS.isdisjoint(re.split(r"[-_]", name.lower()))


def comparable_values(results_path: Path) -> dict:
    return {k: v for k, v in json.loads(results_path.read_text())["values"].items() if not is_timing(k)}


def run_as_printed(command: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "UNLEARNKIT_CACHE": str(cache)}
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{command}\nfailed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_chapter_and_the_readme_print_the_uniform_recipe():
    for stem in CHAPTERS:
        blocks = printed_blocks((ROOT / "chapters" / f"{stem}.md").read_text())
        assert blocks == [recipe(stem)], f"{stem}: the 'Rerun this chapter' block is missing or not uniform"
    readme_blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert recipe("00_setup") in readme_blocks, "the README shows 00_setup's recipe"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_printed_commands_name_real_profiles_and_parameters(stem):
    """The commands not run by the tests (``cpu``, ``paper``) are at least valid requests."""
    defaults = parameters.notebook_parameters(parameters.read_notebook(ROOT / "chapters" / f"{stem}.md"))
    for command in commands(recipe(stem)):
        profile, params = overrides_in(command)
        assert profile in PROFILES
        if "papermill" in command:
            assert set(params) <= set(defaults), f"{command}: unknown parameter(s) {set(params) - set(defaults)}"
        else:
            parameters.check_overrides(defaults, params)


@pytest.mark.parametrize("name, timing", [
    ("train_seconds", True), ("ch1_bench_matmul_s", True), ("bench_plain_ms", True), ("cache_hit", True),
    ("ch1_cnn_cached", True), ("full_class_speedup", True), ("ch1_syn_salun_time_ratio", True),
    ("ch2-ot-time-share", True), ("ch2-speed-goal", True), ("ch4_cache_hits", True),
    ("test_accuracy_pct", False), ("ch2-nomus_dlfd", False), ("sens_trained_vs_init", False),
    ("ch2-forget-share", False), ("unbounded_steps", False), ("ch2-sink-marginal", False)])
def test_timing_rule(name, timing):
    assert is_timing(name) is timing


def test_seeding_makes_cudnn_choose_kernels_deterministically(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # restored after the test
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    runtime.seed_everything(0)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


@pytest.mark.chapters
@pytest.mark.parametrize("stem", CHAPTERS)
def test_cli_recipe_reproduces_the_session_run(smoke_runs, stem, tmp_path):
    _, runs = smoke_runs
    expected = comparable_values(runs[stem].results)
    proc = run_as_printed(smoke_command(stem, "unlearnkit"), tmp_path / "fresh-cache")
    rerun = comparable_values(Path(json.loads(proc.stdout.strip().splitlines()[-1])["results"]))
    assert rerun.keys() == expected.keys()
    differ = {k: (expected[k], rerun[k]) for k in expected if rerun[k] != expected[k]}
    assert not differ, f"{stem} is not deterministic under one seed (session run, rerun): {differ}"


def _seeds_its_draws(stem):
    """A chapter seeds its draws by calling seed_everything itself or through chapter.settings."""
    text = (ROOT / "chapters" / f"{stem}.md").read_text()
    return "seed_everything(seed)" in text or "chapter.settings(" in text


@pytest.mark.chapters
@pytest.mark.parametrize("stem", CHAPTERS)
def test_papermill_recipe_with_another_seed(smoke_runs, stem, tmp_path):
    _, runs = smoke_runs
    expected = comparable_values(runs[stem].results)
    results_path = ROOT / "_build" / "papermill" / f"{stem}.json"
    results_path.unlink(missing_ok=True)
    run_as_printed(smoke_command(stem, "papermill"), tmp_path / "fresh-cache")
    results = json.loads(results_path.read_text())
    assert (results["profile"], results["seed"], results["parameters"]["seed"]) == ("smoke", 1, 1)
    other = comparable_values(results_path)
    assert other.keys() == expected.keys()
    differ = {k for k in expected if other[k] != expected[k]}
    if _seeds_its_draws(stem):
        assert differ, f"{stem}: seed=1 changed no value (is the seed used?)"
    else:
        assert not differ, f"{stem} draws nothing at random, yet seed=1 changed {sorted(differ)}"
