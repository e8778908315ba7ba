"""Fixtures shared by several test files: one torch thread for tiny tensors, and the chapters' smoke runs
(test_chapters.py, test_reruns.py)."""

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from unlearnkit import parameters, runner

ROOT = Path(__file__).resolve().parents[1]


SMOKE_FIXTURES = frozenset({"smoke_runs", "smoke_book"})


def pytest_collection_modifyitems(config, items):
    """Groups for ``pytest -n 2 --dist loadgroup`` (``make test``): every test that reads the
    chapters' smoke runs in one group, so the session runs them once; every other test with the
    rest of its file, so a module's fixtures (a Ray cluster, a trained model) are built once."""
    for item in items:
        group = "smoke-runs" if SMOKE_FIXTURES & set(getattr(item, "fixturenames", ())) else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


def load_script(relative: str):
    """A script of the repository (e.g. ``benchmarks/run.py``) imported as a module."""
    import importlib.util

    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SmokeRuns(Mapping):
    """``{stem: RunResult}`` of the chapters at ``smoke``, each executed on first access, once.

    All runs write under ``out`` and share one fresh model cache, so no test depends on what
    ``~/.cache/unlearnkit`` holds; in a full session the chapters are asked for in reading
    order, so later chapters load what earlier ones trained, as in a book build. A chapter
    whose run failed raises the same error on every access instead of running again.
    """

    def __init__(self, out: Path, cache: Path):
        self.out, self.cache = out, cache
        self.stems = parameters.toc_chapters(ROOT)
        self._runs: dict[str, object] = {}

    def __getitem__(self, stem: str) -> runner.RunResult:
        if stem not in self.stems:
            raise KeyError(f"{stem!r} is not a chapter of _toc.yml; allowed: {self.stems}")
        if stem not in self._runs:
            with pytest.MonkeyPatch.context() as env:
                env.setenv("UNLEARNKIT_CACHE", str(self.cache))
                try:
                    self._runs[stem] = runner.run_chapter(stem, profile="smoke", out=self.out, root=ROOT)
                except Exception as err:  # noqa: BLE001 - re-raised on every access below
                    self._runs[stem] = err
        run = self._runs[stem]
        if isinstance(run, Exception):
            raise run
        return run

    def __iter__(self):
        return iter(self.stems)

    def __len__(self) -> int:
        return len(self.stems)


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """``(out, runs)``: the run folder and the lazily executed :class:`SmokeRuns`."""
    out = tmp_path_factory.mktemp("smoke-runs")
    return out, SmokeRuns(out, tmp_path_factory.mktemp("smoke-cache"))


@pytest.fixture(scope="session")
def smoke_book(smoke_runs):
    """The HTML book built from every chapter's smoke run (shared by the page and browser tests)."""
    out, runs = smoke_runs
    assert all(runs.values())  # the book needs every chapter executed
    return runner.build_book(ROOT, out)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster and steadier on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
