"""One call glues a value or figure into the book and writes it to the chapter's results JSON.

Results schema (``results.json``), written atomically by :meth:`Recorder.save`::

    {
      "chapter": "00_setup", "profile": "cpu", "device": "cpu", "seed": 0,
      "data": {"cifar10": "CIFAR-10 JPEG copy (image folder at ...)"},
      "parameters": {...},             # the notebook's parameters after overrides
      "values": {"name": value, ...},  # every glued number
      "models": [{"role", "task", "model", "seed", "cache_key", "cache_hit", "train_seconds",
                  "test_accuracy"}, ...],  # every trained model used (test accuracy a fraction)
      "config": {...},                 # the resolved settings of every task and method that ran
      "changes": [{"part", "setting", "value", "paper", "why"}, ...],  # the profile block: how
                                       # this profile departs from the paper's, a reason per line
      "scorecard": [{"id", "claim", "paper", "ours", "verdict", "note",
                     "n", "ci_low", "ci_high", "rule", "fact", "arxiv"}, ...],
      "wall_time_s": 12.3,              # first Recorder call to save
      "finished": "2026-12-01T10:00:00+00:00", "commit": "4c52bba" (``+dirty``: uncommitted edits),
      "dry_run": false,                # true: a dry run (:mod:`unlearnkit.dryrun`), verdicts "dry run"
      "tables": {"name": [{column: value}, ...]}
    }
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import dryrun
from .runtime import atomic_write_text, source_commit

VERDICTS = ("reproduced", "partly", "not reproduced", "no paper value", "dry run")
"""A row's verdict; every row of a dry run (:mod:`unlearnkit.dryrun`) reads "dry run"."""

FROM_FACT = object()
"""``Recorder.score``'s default ``paper``: the value of the row's fact."""

SCORE_FIELDS = ("id", "claim", "paper", "ours", "n", "ci_low", "ci_high", "verdict", "rule", "fact", "arxiv", "note")

VERDICT_RULE = ("A scorecard row compares the paper's value p with our mean over n independent seeds "
                "and its 95% Student-t interval [lo, hi]. Reproduced: p lies inside [lo, hi], or the "
                "whole interval lies inside the tolerance band around p. Partly: the interval meets the "
                "wider 'partly' band. Otherwise not reproduced. With a single seed there is no interval "
                "and the mean alone is compared with the bands. One-sided claims ('at least p') extend "
                "the band to infinity on the side the claim allows; yes/no claims must match exactly.")
"""The verdict rule, stated once (chapter 0 shows it); :func:`interval_verdict` implements it."""


def _band(paper: float, tol: float, *, relative: bool, at_least: bool, at_most: bool) -> tuple[float, float]:
    width = tol * (abs(paper) if relative else 1.0)
    return (paper - width, math.inf if at_least else paper + width) if not at_most else (-math.inf, paper + width)


def interval_verdict(paper: Any, mean: Any, low: float, high: float, *, tol: float = 0.0,
                     partly_tol: float | None = None, relative: bool = False, at_least: bool = False,
                     at_most: bool = False) -> str:
    """:data:`VERDICT_RULE`: the verdict of an interval ``[low, high]`` around ``mean`` against
    the paper's value. Without an interval (NaN ends: one seed), :func:`verdict` of the mean."""
    if paper is None or isinstance(paper, (bool, str)) or isinstance(mean, (bool, str)) or mean is None \
            or math.isnan(low) or math.isnan(high):
        return verdict(paper, mean, tol=tol, partly_tol=partly_tol, relative=relative, at_least=at_least,
                       at_most=at_most)
    p = float(paper)
    lo_t, hi_t = _band(p, tol, relative=relative, at_least=at_least, at_most=at_most)
    if low <= p <= high or (lo_t <= low and high <= hi_t):
        return "reproduced"
    if partly_tol is not None:
        lo_p, hi_p = _band(p, partly_tol, relative=relative, at_least=at_least, at_most=at_most)
        if high >= lo_p and low <= hi_p:
            return "partly"
    return "not reproduced"


def rule_text(*, n: int, tol: float = 0.0, partly_tol: float | None = None, relative: bool = False,
              at_least: bool = False, at_most: bool = False, exact: bool = False) -> str:
    """How a row's verdict was reached, in a few words (the ``rule`` field)."""
    if exact:
        return "exact match"
    unit = " × |p|" if relative else ""
    side = "at least p − " if at_least else ("at most p + " if at_most else "p ± ")
    bands = f"{side}{tol:g}{unit}" + (f", partly {side}{partly_tol:g}{unit}" if partly_tol is not None else "")
    what = f"95% t-interval over {n} seeds" if n >= 2 else f"single value (n = {n})"
    return f"{what} vs {bands}"


def verdict(paper: Any, ours: Any, *, tol: float = 0.0, partly_tol: float | None = None,
            relative: bool = False, at_least: bool = False, at_most: bool = False) -> str:
    """Compare our number with the paper's.

    ``|ours - paper| <= tol`` → ``"reproduced"``; ``<= partly_tol`` → ``"partly"``; else
    ``"not reproduced"``. With ``relative=True`` the tolerances are fractions of
    ``|paper|``. ``at_least`` (``at_most``) makes the claim one-sided: any ``ours`` above
    (below) the paper's value counts as a difference of zero. Booleans and strings must
    match exactly. A missing paper value gives ``"no paper value"``.
    """
    if paper is None:
        return "no paper value"
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not reproduced"
    if isinstance(paper, (bool, str)) or isinstance(ours, (bool, str)):
        return "reproduced" if paper == ours else "not reproduced"
    signed = float(ours) - float(paper)
    if (at_least and signed > 0) or (at_most and signed < 0):
        signed = 0.0
    diff = abs(signed)
    scale = abs(float(paper)) if relative else 1.0
    if diff <= tol * scale:
        return "reproduced"
    if partly_tol is not None and diff <= partly_tol * scale:
        return "partly"
    return "not reproduced"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _glue(name: str, value: Any, display: bool = False) -> None:
    from myst_nb import glue  # imported lazily: only notebooks need it

    glue(name, value, display=display)


def _check_new_name(used: set[str], name: str) -> None:
    """Glue keys share one namespace per page: a second use would break the book build."""
    if name in used:
        raise ValueError(f"glue name {name!r} is already used on this page; choose another")
    used.add(name)


class Recorder:
    """Collects a chapter's numbers, glues them into the notebook and saves ``results.json``.

    Parameters
    ----------
    chapter, profile, device, seed: identify the run.
    results_path: where ``results.json`` goes (the runner passes it; empty → no file).
    parameters: the notebook's parameters after overrides.
    glue: glue into the notebook (off in unit tests run outside a kernel).
    """

    def __init__(self, chapter: str, *, profile: str, device: str, seed: int,
                 results_path: str | Path = "", parameters: dict | None = None, glue: bool = True):
        self.results_path = Path(results_path) if results_path else None
        self.glue_enabled = glue
        self._glued: set[str] = set()
        self._start = time.perf_counter()
        self.results: dict[str, Any] = {
            "chapter": chapter, "profile": profile, "device": str(device), "seed": seed,
            "data": {}, "parameters": _jsonable(parameters or {}), "values": {},
            "models": [], "config": {}, "changes": [], "scorecard": [], "tables": {}, "wall_time_s": None,
            "finished": None, "commit": None, "dry_run": dryrun.active() is not None,
        }
        if dryrun.active() is not None and glue:
            from IPython.display import Markdown, display

            display(Markdown(dryrun.describe(dryrun.active())))

    def models(self, rows) -> None:
        """Add provenance rows of trained models (``Problem.models``); a model used twice is listed once."""
        seen = {r["cache_key"] for r in self.results["models"]}
        for row in rows:
            if row["cache_key"] not in seen:
                self.results["models"].append(_jsonable(dict(row)))
                seen.add(row["cache_key"])

    def config(self, name: str, settings: Any) -> None:
        """Store the resolved settings ``settings`` (a dataclass or plain data) under ``config[name]``."""
        if dataclasses.is_dataclass(settings):
            settings = dataclasses.asdict(settings)
        self.results["config"][name] = json.loads(json.dumps(_jsonable(settings), default=str))

    def configs(self, **parts: Any) -> None:
        """:meth:`config` for each ``name=settings`` (one call for a section's bookkeeping)."""
        for name, settings in parts.items():
            self.config(name, settings)

    def changes(self, rows) -> None:
        """Store the profile block (rows ``{part, setting, value, paper, why}``, e.g. from
        :func:`unlearnkit.experiments.options.profile_block`); a setting listed twice once."""
        seen = {(r["part"], r["setting"]) for r in self.results["changes"]}
        for row in rows:
            if (row["part"], row["setting"]) not in seen:
                self.results["changes"].append({k: str(row[k]) for k in ("part", "setting", "value", "paper", "why")})
                seen.add((row["part"], row["setting"]))

    def changes_view(self):
        """The profile block as a table: what this run changes from the paper profile, and why."""
        import pandas as pd

        frame = pd.DataFrame(self.results["changes"], columns=["part", "setting", "value", "paper", "why"])
        return frame.rename(columns={"value": "this run", "paper": "paper profile"}).set_index(["part", "setting"])

    def values(self, **named: Any) -> None:
        """:meth:`value` for each ``name=value`` (glued, not displayed)."""
        for name, value in named.items():
            self.value(name, value)

    def config_view(self):
        """The resolved settings of this run (:func:`config_rows`) as a table for the page."""
        import pandas as pd

        return pd.DataFrame(config_rows(self.results["config"])).set_index(["part", "setting"])

    def data_source(self, dataset: str, source: str) -> None:
        """Record where a dataset was read from (e.g. ``"CIFAR-10 JPEG copy"``)."""
        self.results["data"][dataset] = source

    def value(self, name: str, value: Any, *, display: bool = False) -> Any:
        """Glue ``value`` under ``name`` and store it in ``values``; returns ``value``."""
        _check_new_name(self._glued, name)
        value = _jsonable(value)
        self.results["values"][name] = value
        if self.glue_enabled:
            _glue(name, value, display=display)
        return value

    def figure(self, name: str, fig) -> None:
        """Glue a matplotlib figure under ``name`` (shown where ``{glue:figure}`` asks)."""
        _check_new_name(self._glued, name)
        if self.glue_enabled:
            _glue(name, fig, display=False)
        import matplotlib.pyplot as plt

        plt.close(fig)

    def table(self, name: str, frame, *, display: bool = False) -> None:
        """Store a pandas DataFrame as rows and glue it (as HTML) under ``name``."""
        _check_new_name(self._glued, name)
        self.results["tables"][name] = _jsonable(frame.reset_index().to_dict(orient="records"))
        if self.glue_enabled:
            _glue(name, frame, display=display)

    def score(self, id: str, claim: str, paper: Any = FROM_FACT, ours: Any = None, *, fact: str,
              arxiv: str | None = None, values=None, n: int | None = None, note: str = "",
              tol: float = 0.0, partly_tol: float | None = None, relative: bool = False,
              at_least: bool = False, at_most: bool = False, verdict_override: str | None = None) -> dict:
        """Add a scorecard row; its verdict follows :data:`VERDICT_RULE`.

        fact: the id of the quoted number in :mod:`unlearnkit.facts` (an unknown id raises); it
        gives the row's paper value and source, unless ``paper`` (a quantity computed from
        facts, or None for a row without a paper value) or ``arxiv`` replace them.
        values: our per-seed values (``ours`` becomes their mean, with a 95 % t-interval); or
        ``ours`` alone (one value, no interval; ``n`` says how many seeds a yes/no claim or a
        derived number rests on).
        ``verdict_override`` is for verdicts computed elsewhere (one of :data:`VERDICTS`).
        """
        from .facts import fact as get_fact
        from .metrics import t_interval

        if verdict_override is not None and verdict_override not in VERDICTS:
            raise ValueError(f"verdict {verdict_override!r} not one of {VERDICTS}")
        quoted = get_fact(fact)
        paper = quoted.value if paper is FROM_FACT else paper
        arxiv = arxiv or (quoted.citation if paper is not None else None)
        if values is not None:
            count, ours, low, high = t_interval(_jsonable(list(values)))
        else:
            count, low, high = (1 if n is None else n), math.nan, math.nan
        exact = isinstance(paper, (bool, str)) or isinstance(ours, (bool, str))
        bands = dict(tol=tol, partly_tol=partly_tol, relative=relative, at_least=at_least, at_most=at_most)
        row = {"id": id, "claim": claim, "paper": _jsonable(paper), "ours": _jsonable(ours),
               "verdict": "dry run" if dryrun.active() else
               verdict_override or interval_verdict(paper, ours, low, high, **bands),
               "note": note, "n": count, "ci_low": _jsonable(low), "ci_high": _jsonable(high),
               "rule": "computed: " + note if verdict_override else rule_text(n=count, exact=exact, **bands),
               "fact": fact, "arxiv": arxiv}
        if any(r["id"] == id for r in self.results["scorecard"]):
            raise ValueError(f"scorecard id {id!r} recorded twice")
        self.results["scorecard"].append(row)
        return row

    def scorecard_frame(self):
        """The scorecard as a pandas DataFrame (one column per :data:`SCORE_FIELDS`)."""
        import pandas as pd

        return pd.DataFrame(self.results["scorecard"], columns=list(SCORE_FIELDS))

    def scorecard_view(self):
        """The scorecard for the page (:func:`scorecard_html`), as an IPython HTML display."""
        from IPython.display import HTML

        return HTML(scorecard_html(self.results["scorecard"]))

    def save(self) -> dict:
        """Stamp the wall time and write ``results.json`` atomically (if a path was given)."""
        self.results["wall_time_s"] = round(time.perf_counter() - self._start, 3)
        self.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.results["commit"] = source_commit()
        if self.results_path is not None:
            atomic_write_text(self.results_path, json.dumps(self.results, indent=2, sort_keys=False))
        return self.results


def execution_stats(folder: str | Path | None) -> "pd.DataFrame":
    """One row per chapter results file in ``folder`` (a run's ``results/``): chapter, profile,
    device, wall time (s), finished, commit, models trained in that run and read from the cache."""
    import pandas as pd

    columns = ["chapter", "profile", "device", "wall_time_s", "finished", "commit", "models_trained",
               "models_cached"]
    rows = []
    for path in sorted(Path(folder).glob("*.json")) if folder else []:
        data = json.loads(path.read_text())
        models = data.get("models", [])
        rows.append({"chapter": data.get("chapter", path.stem), "profile": data.get("profile"),
                     "device": data.get("device"), "wall_time_s": data.get("wall_time_s"),
                     "finished": data.get("finished"), "commit": data.get("commit"),
                     "models_trained": sum(not m.get("cache_hit") for m in models),
                     "models_cached": sum(bool(m.get("cache_hit")) for m in models)})
    return pd.DataFrame(rows, columns=columns)


VERDICT_COLOURS = {"reproduced": "#1a7f37", "partly": "#9a6700", "not reproduced": "#cf222e",
                   "no paper value": "#57606a", "dry run": "#8250df"}


def format_number(value: Any) -> str:
    """A scorecard value for reading: ``–`` for none, yes/no, thousands separators, 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and not 1e-3 <= abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def scorecard_html(rows: list[dict]) -> str:
    """An HTML table of scorecard rows: the full claim (and note), the paper's value, our mean with
    its 95 % interval and ``n``, the unit (from the row's fact), the verdict as a coloured badge,
    and where the claim is quoted from."""
    import html

    def ours(row: dict) -> str:
        text = format_number(row["ours"])
        if row.get("ci_low") is not None and row.get("ci_high") is not None:
            text += f" [{format_number(row['ci_low'])}, {format_number(row['ci_high'])}]"
        return text + (f" <small>n = {row['n']}</small>" if row.get("n") else "")

    def badge(verdict: str) -> str:
        colour = VERDICT_COLOURS.get(verdict, "#57606a")
        return (f'<span style="background:{colour};color:#fff;border-radius:0.6em;padding:0.1em 0.55em;'
                f'white-space:nowrap">{html.escape(verdict)}</span>')

    def unit(row: dict) -> str:
        from .facts import all_facts

        quoted = all_facts().get(row.get("fact") or "")
        return html.escape(quoted.unit) if quoted and quoted.unit else "–"

    body = []
    for row in rows:
        note = f'<br><small style="color:#57606a">{html.escape(str(row["note"]))}</small>' if row.get("note") else ""
        body.append(f"<tr><td>{html.escape(str(row['claim']))}{note}</td>"
                    f"<td>{html.escape(format_number(row['paper']))}</td><td>{ours(row)}</td><td><small>{unit(row)}</small></td>"
                    f"<td>{badge(row['verdict'])}</td><td><small>{html.escape(str(row.get('arxiv') or '–'))}</small></td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Claim", "Paper", "Ours: mean [95 % CI]", "Unit", "Verdict", "Source"))
    return (f'<table class="scorecard table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def config_rows(config: dict) -> list[dict]:
    """``config`` flattened to rows ``{part, setting, value}``: one row per leaf, nested keys
    joined with dots, lists shown as JSON."""
    rows = []

    def walk(part: str, prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(part, f"{prefix}.{key}" if prefix else str(key), value)
        else:
            text = json.dumps(node, ensure_ascii=False) if isinstance(node, (list, dict)) else str(node)
            rows.append({"part": part, "setting": prefix or "–", "value": text})

    for part, node in config.items():
        walk(part, "", node)
    return rows
