"""Execute chapters with papermill and build the book.

``python -m unlearnkit run CHAPTER --profile smoke -p key=value`` reads the MyST
markdown chapter with jupytext, checks every override against the notebook's
``parameters`` cell (papermill only warns on unknown names; we refuse them, and
refuse values of another type), executes it with papermill, and leaves
``_build/runs/<profile>/chapters/<stem>.ipynb`` plus ``.../results/<stem>.json``.
``build`` runs every chapter of ``_toc.yml`` and builds the static HTML book.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from .config import PROFILES
from .parameters import check_overrides, parse_override, prepare_chapter, project_root, toc_chapters

BOOK_FILES = ("_config.yml", "intro.md", "bibliography.md", "references.bib", "appendix")


@contextmanager
def _kernel_environment(root: Path) -> Iterator[None]:
    """Environment of the chapter's kernel, restored afterwards.

    Kernel "python3" resolves to this interpreter's ipykernel (not a user-wide one), the
    data root defaults to the project's ``data/`` (the kernel's working directory is chapters/),
    OpenMP's idle threads default to sleeping (``OMP_WAIT_POLICY=PASSIVE``) and tqdm bars to one
    update per 10 s (``TQDM_MININTERVAL``).
    """
    saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", "UNLEARNKIT_DATA", "OMP_WAIT_POLICY",
                                                  "TQDM_MININTERVAL")}
    ours = str(Path(sys.prefix) / "share" / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [ours, saved["JUPYTER_PATH"]]))
    os.environ["UNLEARNKIT_DATA"] = saved["UNLEARNKIT_DATA"] or str(root / "data")
    # idle OpenMP threads sleep rather than spin: a contended CPU training step ran 5x faster
    os.environ["OMP_WAIT_POLICY"] = saved["OMP_WAIT_POLICY"] or "PASSIVE"
    # progress bars update every 10 s at most: they go to the terminal and the executed notebook
    os.environ["TQDM_MININTERVAL"] = saved["TQDM_MININTERVAL"] or "10"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class RunResult:
    notebook: Path
    results: Path
    seconds: float


HEARTBEAT_S = 30.0
"""Seconds between the build's progress lines while a chapter runs."""


def _first_line(source: str | None, width: int = 60) -> str:
    """The first non-blank line of a cell's source, cut to ``width`` characters (names a cell)."""
    return next((line for line in (source or "").splitlines() if line.strip()), "")[:width]


def running_cell(nb) -> tuple[int, int, str] | None:
    """``(i, n, first line)`` of the cell papermill marks as running (1-based i), else None."""
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return i + 1, len(cells), _first_line(cell.source)
    return None


def _report_progress(label: str, nb_man, stop, start: float, every: float) -> None:
    while not stop.wait(every):
        where = running_cell(nb_man.nb)
        cell = f"cell {where[0]}/{where[1]} ({where[2]})" if where else "between cells"
        print(f"[unlearnkit] {label}: {cell}, {_clock(time.perf_counter() - start)} elapsed",
              file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _progress_engine(label: str, every: float):
    """Papermill's nbclient engine, plus a line on stderr every ``every`` s naming the running cell."""
    import threading

    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            stop = threading.Event()
            reporter = threading.Thread(target=_report_progress, daemon=True,
                                        args=(label, nb_man, stop, time.perf_counter(), every))
            reporter.start()
            try:
                return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
            finally:
                stop.set()
                reporter.join()

    return ProgressEngine


class ChapterFailed(RuntimeError):
    """A chapter's cell raised: names the chapter, the cell and the error."""


def chapter_failure(stem: str, err) -> ChapterFailed:
    """The :class:`ChapterFailed` of papermill's ``PapermillExecutionError`` ``err`` in chapter ``stem``."""
    return ChapterFailed(f"chapter {stem} failed in cell {err.cell_index + 1} ({_first_line(err.source)!r}): "
                         f"{err.ename}: {err.evalue}")


def run_folder(root: Path, profile: str, overrides: dict[str, Any]) -> Path:
    """``_build/runs/<profile>``, or ``_build/runs/<profile>-dry-run`` for ``dry_run=True``: a dry
    run never overwrites a real run's notebooks and results."""
    return root / "_build" / "runs" / (f"{profile}-dry-run" if overrides.get("dry_run") is True else profile)


def chapter_work(name: str, *, profile: str, overrides: dict[str, Any] | None = None, root: Path | None = None):
    """``(work, context)``: the chapter's :class:`~unlearnkit.experiments.work.Work` at its
    parameters (:func:`unlearnkit.chapter.work` of :func:`unlearnkit.chapter.settings`, the
    objects the chapter's own first cells build), and the
    :class:`~unlearnkit.experiments.work.Context` a worker needs to act like the chapter's kernel."""
    from . import chapter
    from .experiments.work import Context
    from .runtime import cache_root, data_root

    root, path, _, _, overrides = prepare_chapter(name, profile, overrides, root)
    if overrides.get("data_root"):  # the recipes travel to workers that run elsewhere: absolute
        overrides["data_root"] = str((path.parent / Path(overrides["data_root"]).expanduser()).resolve())
    with _kernel_environment(root):
        settings = chapter.settings(path.stem, book=root, profile=profile, **overrides)
        context = Context(env={"UNLEARNKIT_DATA": str(data_root(settings.root)), "UNLEARNKIT_CACHE": str(cache_root()),
                               "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"]},
                          plugins=tuple(settings.values.get("plugins", ())),
                          deterministic=bool(settings.values.get("deterministic")),
                          device=str(settings.values.get("device", "auto")))
        return chapter.work(settings), context


KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""The kernel logs errors only: its start-up warning about TCP transport (the kernel listens on
127.0.0.1 for this process alone) said nothing about the chapter."""


def run_chapter(name: str, *, profile: str = "smoke", overrides: dict[str, Any] | None = None,
                out: Path | None = None, root: Path | None = None, log_output: bool = False,
                echo: bool = False) -> RunResult:
    """Execute one chapter with papermill; returns the executed notebook and results paths.

    Every check (chapter, profile, parameter names and types, output folder) happens
    before the kernel starts. A failing cell raises ``PapermillExecutionError``. ``echo``:
    the kernel's stderr (the package's progress bars) goes to this terminal, with a line every
    :data:`HEARTBEAT_S` seconds naming the running cell.
    """
    import papermill
    from papermill.engines import papermill_engines

    from .runtime import writable_folder

    root, path, nb, defaults, overrides = prepare_chapter(name, profile, overrides, root)
    out = Path(out or run_folder(root, profile, overrides)).resolve()
    notebook_out = out / "chapters" / f"{path.stem}.ipynb"
    results_out = out / "results" / f"{path.stem}.json"
    for folder in (notebook_out.parent, results_out.parent):
        writable_folder(folder, "output folder", " (out=, --out)")
    results_out.unlink(missing_ok=True)
    parameters = {**overrides, "profile": profile, "results_path": str(results_out)}
    check_overrides(defaults, parameters)
    start = time.perf_counter()
    engine = {}
    if echo:
        papermill_engines.register("unlearnkit", _progress_engine(path.stem, HEARTBEAT_S))
        engine = {"engine_name": "unlearnkit", "stderr_file": sys.stderr}
    with _kernel_environment(root):
        papermill.execute_notebook(nb, str(notebook_out), parameters=parameters, kernel_name="python3",
                                   cwd=str(path.parent), log_output=log_output, progress_bar=False,
                                   extra_arguments=KERNEL_ARGUMENTS, **engine)
    return RunResult(notebook_out, results_out, time.perf_counter() - start)


def staged_config(config: dict) -> dict:
    """The book's ``_config.yml`` for a build from executed notebooks: execution off; the
    repository and issue buttons on exactly when ``repository.url`` is set."""
    config = {**config, "execute": {**config.get("execute", {}), "execute_notebooks": "off"}}
    url = (config.get("repository") or {}).get("url") or ""
    config["html"] = {**config.get("html", {}), "use_repository_button": bool(url), "use_issues_button": bool(url)}
    if not url:
        config.pop("repository", None)
    return config


def hide_injected_parameters(source: Path, target: Path) -> None:
    """Copy an executed notebook, tagging papermill's ``injected-parameters`` cell ``remove-cell``:
    it holds this run's paths (the ``parameters`` cell above it shows the defaults)."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, target)


def stage_book(root: Path, runs: Path, stage: Path) -> Path:
    """Assemble a book source folder: the project's book files plus executed chapters.

    The staged ``_config.yml`` turns execution off: papermill already executed them, and names
    the run's ``results/`` folder (Sphinx config value ``unlearnkit_results``) for the findings
    boxes of :mod:`unlearnkit.bookext`.
    """
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "chapters").mkdir(parents=True)
    for name in (*BOOK_FILES, "_toc.yml", "src", "benchmarks"):
        source = root / name
        if source.exists():
            (stage / name).symlink_to(source)
    config = staged_config(yaml.safe_load((root / "_config.yml").read_text()))
    # the findings boxes ({chapter-findings}, {book-findings}: unlearnkit.bookext) read this run's results files
    sphinx = config.setdefault("sphinx", {})
    sphinx["config"] = {**(sphinx.get("config") or {}), "unlearnkit_results": str((runs / "results").resolve())}
    (stage / "_config.yml").unlink()
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for stem in toc_chapters(root):
        executed = runs / "chapters" / f"{stem}.ipynb"
        if not executed.is_file():
            raise FileNotFoundError(f"chapter {stem} has no executed notebook at {executed}; run it first")
        hide_injected_parameters(executed, stage / "chapters" / executed.name)
    for asset in (root / "chapters").iterdir():  # images or data files the chapters include
        if asset.suffix not in (".md", ".ipynb") and asset.is_file():
            shutil.copy(asset, stage / "chapters" / asset.name)
    return stage


def build_book(root: Path, runs: Path, html_out: Path | None = None) -> Path:
    """Build the static HTML book from executed chapters, warnings as errors; returns the html folder."""
    stage = stage_book(root, runs, runs / "book-src")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(stage),
           "--path-output", str(runs), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"book build failed ({' '.join(cmd)}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    html = runs / "_build" / "html"
    if html_out is not None:
        if html_out.exists():
            shutil.rmtree(html_out)
        shutil.copytree(html, html_out)
        return html_out
    return html


def run_all(*, profile: str, overrides: dict[str, Any] | None = None, out: Path | None = None,
            root: Path | None = None) -> list[RunResult]:
    """Run every chapter of ``_toc.yml`` at ``profile``; overrides must suit every chapter."""
    from papermill.exceptions import PapermillExecutionError

    root = project_root(root)
    results = []
    for stem in toc_chapters(root):
        print(f"[unlearnkit] running {stem} at profile={profile}", flush=True)
        try:
            result = run_chapter(stem, profile=profile, overrides=overrides, out=out, root=root, echo=True)
        except PapermillExecutionError as err:
            raise chapter_failure(stem, err) from None
        print(f"[unlearnkit] {stem}: {result.seconds:.1f} s", flush=True)
        results.append(result)
    print(build_summary(results), flush=True)
    return results


def summary_rows(results: list[RunResult]) -> list[dict]:
    """Per chapter: seconds, models trained / read from the cache, scorecard verdict counts."""
    rows = []
    for result in results:
        data = json.loads(result.results.read_text()) if result.results.is_file() else {}
        models = data.get("models", [])
        verdicts: dict[str, int] = {}
        for row in data.get("scorecard", []):
            verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
        rows.append({"chapter": result.notebook.stem, "seconds": result.seconds,
                     "trained": sum(not m["cache_hit"] for m in models),
                     "cached": sum(bool(m["cache_hit"]) for m in models), "verdicts": verdicts})
    return rows


def run_line(result: RunResult) -> str:
    """The last line of ``python -m unlearnkit run``: the chapter, its wall time, its results file
    and its verdict counts (:func:`summary_rows`)."""
    row = summary_rows([result])[0]
    minutes, seconds = divmod(round(result.seconds), 60)
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(row["verdicts"].items())) or "no scorecard rows"
    return f"[unlearnkit] {row['chapter']} done in {minutes}m{seconds:02d}s; results {result.results}; verdicts: {verdicts}"


def build_summary(results: list[RunResult]) -> str:
    """The table printed at the end of a build (:func:`summary_rows`), with a total line."""
    rows = summary_rows(results)
    lines = [f"{'chapter':<22}{'seconds':>9}{'trained':>9}{'cached':>8}  verdicts"]
    for row in rows:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(row["verdicts"].items())) or "-"
        lines.append(f"{row['chapter']:<22}{row['seconds']:>9.0f}{row['trained']:>9}{row['cached']:>8}  {verdicts}")
    lines.append(f"{'total':<22}{sum(r['seconds'] for r in rows):>9.0f}{sum(r['trained'] for r in rows):>9}"
                 f"{sum(r['cached'] for r in rows):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m unlearnkit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute one chapter with papermill")
    run_p.add_argument("chapter")
    run_p.add_argument("--quiet", action="store_true", help="no progress bars or heartbeat (for scripts)")
    build_p = sub.add_parser("build", help="execute every chapter, then build the HTML book")
    build_p.add_argument("--skip-run", action="store_true", help="reuse executed notebooks")
    for p in (run_p, build_p):
        p.add_argument("--profile", default="cpu", choices=PROFILES)
        p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                       help="override a notebook parameter (repeatable)")
        p.add_argument("--out", type=Path, default=None,
                       help="run folder (default _build/runs/PROFILE, or PROFILE-dry-run with -p dry_run=True)")
    plan_p = sub.add_parser("plan", help="list a chapter's trainings and unlearning runs, cached or not")
    plan_p.add_argument("--json", action="store_true", help="one JSON object per unit instead of a table")
    warm_p = sub.add_parser("warm", help="run a chapter's missing units as Ray tasks, filling the caches")
    warm_p.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="an existing Ray cluster (default: a local Ray started in this process)")
    warm_p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    for p in (plan_p, warm_p):
        p.add_argument("chapter")
        p.add_argument("--profile", default="cpu", choices=PROFILES)
        p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                       help="override a notebook parameter (repeatable)")
    sub.add_parser("list", help="list the chapters in reading order")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except ChapterFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError, PermissionError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    root = project_root()
    if args.command == "list":
        print("\n".join(toc_chapters(root)))
        return 0
    overrides = dict(parse_override(p) for p in args.param)
    if args.command in ("plan", "warm"):
        return plan_or_warm(args, overrides, root)
    out = (args.out or run_folder(root, args.profile, overrides)).resolve()
    if args.command == "run":
        result = run_chapter(args.chapter, profile=args.profile, overrides=overrides, out=out, root=root,
                             echo=not args.quiet)
        print(json.dumps({"notebook": str(result.notebook), "results": str(result.results),
                          "seconds": round(result.seconds, 1)}))
        print(run_line(result), file=sys.stderr)  # for the reader; stdout's last line stays the JSON
        return 0
    if not args.skip_run:
        run_all(profile=args.profile, overrides=overrides, out=out, root=root)
    html = build_book(root, out, root / "_build" / "html")
    print(f"[unlearnkit] book built at {html}/index.html")
    return 0


def plan_or_warm(args, overrides: dict[str, Any], root: Path) -> int:
    """``plan``: print the chapter's units; ``warm``: run the missing ones on Ray, then plan again."""
    from .experiments import work as work_mod

    if args.command == "warm":
        if overrides.get("dry_run") is True:
            raise ValueError("warm fills the shared caches; a dry run writes a temporary cache of its own "
                             "process, so there is nothing to warm (drop -p dry_run=True)")
        if args.address is not None:
            from .cluster import check_reachable

            check_reachable(args.address)  # before any work
    work, context = chapter_work(args.chapter, profile=args.profile, overrides=overrides, root=root)
    units = work_mod.plan(work)
    if args.command == "plan":
        if args.json:
            for u in units:
                print(json.dumps({"id": u.id, **u.row(), "deps": list(u.deps)}, default=str))
        else:
            print(work_mod.table(units).to_string(index=False) if units else f"{work.chapter}: no planned units")
            print(work_mod.summary(units).to_string() if units else "")
        return 0
    from .cluster import warm

    report = warm(units, context, address=args.address, num_cpus=args.num_cpus)
    left = [u for u in work_mod.plan(work) if not u.cached]
    print(json.dumps({"submitted": report.submitted, "done": report.done, "failed": report.failed,
                      "seconds": round(report.seconds, 1), "still_missing": [u.label for u in left]}))
    return 1 if report.failed or left else 0
