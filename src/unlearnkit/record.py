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
      "scorecard": [{...}, ...],       # one row per claim, the fields of SCORE_FIELDS: id, claim,
                                       # paper, ours (mean; paired rows: the paired difference),
                                       # n, ci_low, ci_high (95 % t, clipped to the metric's range),
                                       # verdict (VERDICTS), rule, test, band / partly_band
                                       # ([low, high], null = unbounded), clipped, dropped,
                                       # seeds_needed (inconclusive rows), paired_mean / _low /
                                       # _high and rival (comparative rows), setting / paper_setting,
                                       # basis (the fact's), fact, arxiv, note
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
from typing import Any, Mapping, Sequence

import numpy as np

from . import dryrun
from .runtime import atomic_write_text, source_commit

VERDICTS = ("reproduced", "partly", "inconclusive", "not reproduced", "different setting", "not measured",
            "single run", "no paper value", "dry run")
"""A row's verdict (:data:`VERDICT_RULE`); every row of a dry run (:mod:`unlearnkit.dryrun`) reads "dry run"."""

FROM_FACT = object()
"""``Recorder.score``'s default ``paper``: the value of the row's fact."""

SCORE_FIELDS = ("id", "claim", "paper", "ours", "n", "ci_low", "ci_high", "verdict", "rule", "test", "band",
                "partly_band", "clipped", "dropped", "seeds_needed", "paired_mean", "paired_low", "paired_high",
                "rival", "oracle_verdict", "rule_verdict_same_seeds", "oracle_seeds", "pick_sensitive", "setting",
                "paper_setting", "basis", "fact", "arxiv", "note")
"""Every scorecard row has these fields (README: results schema). ``test``: how the verdict was
reached (``equivalence``, ``paired``, ``exact``, ``point``, ``computed``, ``setting``)."""

VERDICT_RULE = (
    "A scorecard row compares the paper's value p with our mean over n independent seeds and its 95% "
    "Student-t interval [lo, hi], clipped to the metric's range where it has one (and marked 'clipped'). "
    "The rule is an equivalence test. Reproduced: the whole interval lies inside the tolerance band around p. "
    "Partly: the whole interval lies inside the wider partly band. Not reproduced: the whole interval lies "
    "outside the tolerance band and not inside the partly band (the difference is detected). Inconclusive: "
    "anything else (the interval straddles a band edge); the row says how many seeds the observed spread "
    "would need to decide. A wider interval never earns a better verdict. "
    "A comparative claim ('A beats B') is judged on the per-seed paired difference of A and B (same original, "
    "same forget draw): reproduced when its 95% interval lies on the claimed side of zero, not reproduced "
    "when it lies on the other side, inconclusive when it contains zero; 'A beats every baseline' needs "
    "this against each baseline, and the row shows the closest rival. "
    "A single seed reads 'single run' (the mean against the bands, stated in the row); no finite value reads "
    "'not measured' (the row counts the seeds dropped); a paper number measured in another setting "
    "(dataset, model, code) is context and reads 'different setting' (its direction, where the paper "
    "claims one, is a paired row). One-sided claims ('at least p') extend the band to infinity on the side "
    "the claim allows; yes/no claims must match exactly.")
"""The verdict rule, stated once (chapter 0 shows it); :func:`interval_verdict` and
:func:`paired_verdict` implement it."""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def bands(paper: float, *, tol: float = 0.0, partly_tol: float | None = None, relative: bool = False,
          at_least: bool = False, at_most: bool = False) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """``(band, partly_band)``: the tolerance band around ``paper`` and the wider partly band
    (None without ``partly_tol``), each ``(low, high)``; widths are fractions of ``|paper|`` when
    ``relative``; ``at_least`` (``at_most``) opens the band upwards (downwards)."""
    if at_least and at_most:
        raise ValueError("a claim is at_least or at_most, not both")

    def band(width: float) -> tuple[float, float]:
        width *= abs(paper) if relative else 1.0
        return (-math.inf if at_most else paper - width, math.inf if at_least else paper + width)

    return band(tol), (band(partly_tol) if partly_tol is not None else None)


def _inside(low: float, high: float, band: tuple[float, float]) -> bool:
    return band[0] <= low and high <= band[1]


def _disjoint(low: float, high: float, band: tuple[float, float]) -> bool:
    return high < band[0] or low > band[1]


def interval_verdict(paper: Any, mean: Any, low: float, high: float, *, tol: float = 0.0,
                     partly_tol: float | None = None, relative: bool = False, at_least: bool = False,
                     at_most: bool = False) -> str:
    """:data:`VERDICT_RULE` for the 95 % interval ``[low, high]`` around ``mean`` against the
    paper's value: an equivalence test against :func:`bands`.

    No paper value: "no paper value"; no finite mean: "not measured"; yes/no or text: exact
    match; no interval (NaN or None ends: one seed): "single run" (:func:`verdict` says where the
    mean alone falls).
    """
    if paper is None:
        return "no paper value"
    if _is_missing(mean):
        return "not measured"
    if isinstance(paper, (bool, str)) or isinstance(mean, (bool, str)):
        return "reproduced" if paper == mean else "not reproduced"
    if _is_missing(low) or _is_missing(high):
        return "single run"
    band, partly = bands(float(paper), tol=tol, partly_tol=partly_tol, relative=relative, at_least=at_least,
                         at_most=at_most)
    if _inside(low, high, band):
        return "reproduced"
    if partly is not None and _inside(low, high, partly):
        return "partly"
    if _disjoint(low, high, band):
        return "not reproduced"
    return "inconclusive"


def paired_verdict(low: float, high: float, *, n: int) -> str:
    """:data:`VERDICT_RULE` for a paired difference oriented so that positive is the claimed
    side: "reproduced" when ``[low, high]`` lies above zero, "not reproduced" below, else
    "inconclusive"; "single run" for one seed, "not measured" for none."""
    if n == 0:
        return "not measured"
    if n == 1 or _is_missing(low) or _is_missing(high):
        return "single run"
    if low > 0:
        return "reproduced"
    if high < 0:
        return "not reproduced"
    return "inconclusive"


def seeds_needed(mean: float, sd: float, edges, *, level: float = 0.95, most: int = 10_000) -> int | None:
    """The least number of seeds whose 95 % t half-width, at the observed spread ``sd``, falls
    below the distance from ``mean`` to the nearest finite band edge of ``edges`` (so the interval
    would decide). None when the mean sits on an edge or more than ``most`` seeds would be needed."""
    from scipy import stats

    distance = min((abs(mean - e) for e in edges if e is not None and math.isfinite(e)), default=math.inf)
    if not distance > 0 or _is_missing(sd):
        return None
    n = np.arange(2, most + 1)
    decides = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n) < distance
    return int(n[decides.argmax()]) if decides.any() else None


def interval_of(values: Sequence[Any], bounds: tuple[float, float] | None = None) -> dict:
    """``{n, mean, sd, low, high, clipped, dropped}`` of per-seed ``values``: the 95 % Student-t
    interval of the mean (:func:`unlearnkit.metrics.t_interval`) over the finite values, clipped
    to ``bounds`` (the metric's range; ``clipped`` says whether an end moved; the clipped
    interval keeps its coverage, since the true mean lies in the range); ``dropped`` counts the
    non-finite values left out."""
    from .metrics import t_interval

    raw = [math.nan if v is None else float(v) for v in _jsonable(list(values))]
    finite = [v for v in raw if math.isfinite(v)]
    n, mean, low, high = t_interval(finite)
    sd = float(np.std(finite, ddof=1)) if n >= 2 else math.nan
    clipped = False
    if bounds is not None and n >= 2:
        new_low, new_high = max(low, bounds[0]), min(high, bounds[1])
        clipped, low, high = (new_low, new_high) != (low, high), new_low, new_high
    return {"n": n, "mean": mean, "sd": sd, "low": low, "high": high, "clipped": clipped,
            "dropped": len(raw) - len(finite)}


def format_paired(test: Mapping) -> str:
    """A paired difference for reading: ``+0.012 [−0.004, 0.028] (n = 3)``."""
    if test["n"] == 0:
        return "no common seeds"
    text = f"{test['mean']:+.3g}"
    if test["n"] >= 2:
        text += f" [{test['low']:.3g}, {test['high']:.3g}]"
    return text + f" (n = {test['n']})"


def check_setting(row_id: str, quoted, setting: str | None) -> None:
    """A fact measured at a stated setting needs the row's own setting, so that a number from
    another dataset, model or code base is never scored as a match by omission."""
    if quoted.setting and setting is None:
        raise ValueError(f"scorecard row {row_id!r}: fact {quoted.id!r} was measured at {quoted.setting!r}; "
                         "pass setting= (where ours was measured) so the two can be compared")


def paired_tests(ours: Mapping[Any, float], rivals: Mapping[str, Mapping[Any, float]], *, higher_is_better: bool,
                 point: bool = False) -> tuple[str, str, dict]:
    """``(verdict, deciding rival, {rival: test})`` of "ours beats every rival" (:data:`VERDICT_RULE`).

    Per rival, on the seeds both have finite values, the paired difference ``d_s = ours_s −
    rival_s`` (negated when lower is better, so positive = ours better), its mean and 95 %
    t-interval (:func:`interval_of`) and :func:`paired_verdict`. Reproduced only when every
    rival's interval lies above zero; not reproduced when one lies below; else inconclusive
    (or "single run" / "not measured"). ``point``: a single seed is judged by the sign of its
    difference (for :func:`pick_check`, which compares two picks on the same seeds)."""
    sign = 1.0 if higher_is_better else -1.0
    tests = {}
    for name, theirs in rivals.items():
        seeds = [s for s in ours if s in theirs and math.isfinite(float(ours[s])) and math.isfinite(float(theirs[s]))]
        test = interval_of([sign * (float(ours[s]) - float(theirs[s])) for s in seeds])
        test["verdict"] = paired_verdict(test["low"], test["high"], n=test["n"])
        if point and test["n"] == 1:
            test["verdict"] = "reproduced" if test["mean"] > 0 else "not reproduced" if test["mean"] < 0 else "inconclusive"
        tests[name] = test
    order = ("not reproduced", "not measured", "single run", "inconclusive", "reproduced")
    found = min((t["verdict"] for t in tests.values()), key=order.index)
    decider = min((k for k in tests if tests[k]["verdict"] == found),  # the closest rival of the deciding kind
                  key=lambda k: tests[k]["mean"] if tests[k]["n"] else 0.0)
    return found, decider, tests


def pick_check(judge, rule, oracle) -> dict:
    """Does the row's verdict hang on tuning? ``judge`` gives a verdict from per-seed data shaped
    like ``rule`` (``{seed: value}``, or ``(ours, rivals)`` of a paired row); ``oracle`` is the same
    data under the oracle's pick, which may have run on fewer seeds. Both are judged on the seeds
    the oracle ran (one seed: the point against the bands, or the sign of a difference).
    Returns ``oracle_verdict``, ``rule_verdict_same_seeds``, ``oracle_seeds`` and
    ``pick_sensitive`` (the two differ)."""
    def keep(data, seeds):
        if isinstance(data, tuple):
            return keep(data[0], seeds), {k: keep(v, seeds) for k, v in data[1].items()}
        return {s: v for s, v in data.items() if s in seeds}

    first = oracle[0] if isinstance(oracle, tuple) else oracle
    seeds = {s for s, v in first.items() if not _is_missing(v)}
    if not seeds:
        return {"oracle_verdict": "not measured", "rule_verdict_same_seeds": None, "oracle_seeds": 0,
                "pick_sensitive": None}
    on_rule, on_oracle = judge(keep(rule, seeds)), judge(keep(oracle, seeds))
    return {"oracle_verdict": on_oracle, "rule_verdict_same_seeds": on_rule, "oracle_seeds": len(seeds),
            "pick_sensitive": on_rule != on_oracle}


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
    """Where a single number falls (a deterministic computation, or a single run's mean).

    ``|ours - paper| <= tol`` → ``"reproduced"``; ``<= partly_tol`` → ``"partly"``; else
    ``"not reproduced"``. With ``relative=True`` the tolerances are fractions of
    ``|paper|``. ``at_least`` (``at_most``) makes the claim one-sided: any ``ours`` above
    (below) the paper's value counts as a difference of zero. Booleans and strings must
    match exactly. A missing paper value gives ``"no paper value"``, a missing ``ours``
    ``"not measured"``.
    """
    point = ours if isinstance(ours, (bool, str)) or _is_missing(ours) else float(ours)
    return interval_verdict(paper, ours, point, point, tol=tol, partly_tol=partly_tol, relative=relative,
                            at_least=at_least, at_most=at_most)  # a point never straddles a band edge


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
        """Glue a matplotlib figure under ``name`` (shown where a ``glue:figure`` directive asks). A figure
        that would not read in the book's column (:func:`unlearnkit.figures.legibility_problems`:
        too wide, more than two panels side by side, text too small) is refused."""
        from .figures import legibility_problems

        _check_new_name(self._glued, name)
        problems = legibility_problems(fig)
        if problems:
            raise ValueError(f"figure {name!r} would not read in the book's column: {'; '.join(problems)} "
                             "(draw it with unlearnkit.figures.panels)")
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
              at_least: bool = False, at_most: bool = False, bounds: tuple[float, float] | None = None,
              setting: str | None = None, oracle_values: Mapping[Any, float] | None = None,
              verdict_override: str | None = None) -> dict:
        """Add a scorecard row; its verdict follows :data:`VERDICT_RULE` (:func:`interval_verdict`).

        fact: the id of the quoted number in :mod:`unlearnkit.facts` (an unknown id raises); it
        gives the row's paper value, source and basis, unless ``paper`` (a quantity computed from
        facts, or None for a row without a paper value) or ``arxiv`` replace them.
        values: our per-seed values (a list, or ``{seed: value}``): ``ours`` becomes their mean,
        with a 95 % t-interval clipped to ``bounds`` (the metric's range, e.g. ``(0, 100)``);
        non-finite values are dropped and
        counted (``dropped``), and none left reads "not measured". Or ``ours`` alone: a
        deterministic number (``n`` None: the point verdict of :func:`verdict`), one run
        (``n=1``: "single run") or a yes/no claim resting on ``n`` seeds (exact match).
        setting: where our number was measured (e.g. ``"cifar10 · small_cnn"``); required when
        the fact names its own setting, and a different one reads "different setting".
        oracle_values: ``{seed: value}`` under the oracle's pick (``values`` then a mapping too):
        the row records whether its verdict hangs on tuning (:func:`pick_check`).
        ``verdict_override`` is for verdicts computed elsewhere (one of :data:`VERDICTS`).
        """
        from .facts import fact as get_fact

        if oracle_values is not None and not isinstance(values, Mapping):
            raise TypeError(f"scorecard row {id!r}: oracle_values= needs values= as {{seed: value}} to pair the seeds")
        if verdict_override is not None and verdict_override not in VERDICTS:
            raise ValueError(f"verdict {verdict_override!r} not one of {VERDICTS}")
        quoted = get_fact(fact)
        paper = quoted.value if paper is FROM_FACT else paper
        exact = isinstance(paper, (bool, str)) or isinstance(ours, (bool, str))
        if values is None and not exact and not _is_missing(ours) and (n or 1) > 1:
            raise ValueError(f"scorecard row {id!r}: a number over n = {n} seeds needs its per-seed values= "
                             "(the verdict rests on their interval), not ours= alone")
        check_setting(id, quoted, setting)
        per_seed = values.values() if isinstance(values, Mapping) else values
        spread = interval_of(per_seed, bounds) if values is not None else \
            {"n": 1 if n is None else n, "mean": ours, "low": math.nan, "high": math.nan, "sd": math.nan,
             "clipped": False, "dropped": 0}
        ours = spread["mean"]
        band_kw = dict(tol=tol, partly_tol=partly_tol, relative=relative, at_least=at_least, at_most=at_most)
        numeric = not exact and paper is not None
        band, partly = bands(float(paper), **band_kw) if numeric else (None, None)
        if verdict_override:
            found, test, rule = verdict_override, "computed", "computed: " + note
        elif exact:
            found, test, rule = interval_verdict(paper, ours, math.nan, math.nan), "exact", "exact match"
        elif values is None and n is None:
            found, test, rule = verdict(paper, ours, **band_kw), "point", "deterministic value vs " + \
                rule_text(n=1, **band_kw).split(" vs ", 1)[-1]
        else:
            found = interval_verdict(paper, ours, spread["low"], spread["high"], **band_kw)
            test, rule = "equivalence", rule_text(n=spread["n"], **band_kw)
            if found == "single run" and paper is not None:
                rule += f" (the mean alone: {verdict(paper, ours, **band_kw)})"
        if quoted.setting and setting != quoted.setting and found not in ("not measured", "no paper value"):
            found, test = "different setting", "setting"
            rule = f"context: the paper's value is from {quoted.setting}, ours from {setting}"
        needed = (seeds_needed(ours, spread["sd"], [*band, *(partly or ())]) if found == "inconclusive" else None)
        row = {"id": id, "claim": claim, "paper": paper, "ours": ours, "n": spread["n"], "ci_low": spread["low"],
               "ci_high": spread["high"], "verdict": found, "rule": rule, "test": test, "band": band,
               "partly_band": partly, "clipped": spread["clipped"], "dropped": spread["dropped"],
               "seeds_needed": needed, "setting": setting, "note": note, "fact": fact,
               "arxiv": arxiv or (quoted.citation if paper is not None else None)}
        if oracle_values is not None and test == "equivalence":
            def judge(data: Mapping) -> str:
                spread = interval_of(data.values(), bounds)
                if spread["n"] >= 2:
                    return interval_verdict(paper, spread["mean"], spread["low"], spread["high"], **band_kw)
                return verdict(paper, spread["mean"], **band_kw)

            row |= pick_check(judge, values, oracle_values)
        return self._add_row(row, quoted)

    def paired(self, id: str, claim: str, ours: Mapping[Any, float], rivals: Mapping[str, Mapping[Any, float]], *,
               fact: str, higher_is_better: bool, note: str = "", arxiv: str | None = None,
               setting: str | None = None, oracle: tuple[Mapping, Mapping] | None = None) -> dict:
        """Add a comparative row: ``ours`` beats every rival (:data:`VERDICT_RULE`, :func:`paired_tests`).

        ours / rivals: per-seed values ``{seed: value}`` of our method and of each rival
        (``{rival label: {seed: value}}``), measured on the same original and forget draw per
        seed. The row shows the closest rival among those with the deciding verdict (the least
        paired mean; ``rival``, ``paired_*``); the note lists them all. oracle: the same two
        mappings under the oracle's pick (:func:`pick_check`).
        """
        from .facts import fact as get_fact

        quoted = get_fact(fact)
        if not rivals:
            raise ValueError(f"scorecard row {id!r}: a comparative claim needs at least one rival")
        found, decider, tests = paired_tests(ours, rivals, higher_is_better=higher_is_better)
        best = tests[decider]
        listed = "; ".join(f"vs {k}: {format_paired(t)}" for k, t in tests.items())
        row = {"id": id, "claim": claim, "paper": quoted.value, "ours": best["mean"], "n": best["n"],
               "ci_low": best["low"], "ci_high": best["high"], "verdict": found,
               "rule": f"paired difference ({'higher' if higher_is_better else 'lower'} is better) per seed vs "
                       f"each of {len(tests)} rival(s), 95% t-interval above 0",
               "test": "paired", "clipped": False, "dropped": 0,
               "seeds_needed": seeds_needed(best["mean"], best["sd"], [0.0]) if found == "inconclusive" else None,
               "paired_mean": best["mean"], "paired_low": best["low"], "paired_high": best["high"], "rival": decider,
               "setting": setting, "note": (note + "; " if note else "") + listed, "fact": fact,
               "arxiv": arxiv or quoted.citation}
        if oracle is not None:
            judge = lambda pick: paired_tests(*pick, higher_is_better=higher_is_better, point=True)[0]  # noqa: E731
            row |= pick_check(judge, (ours, rivals), oracle)
        return self._add_row(row, quoted)

    def _add_row(self, row: dict, quoted) -> dict:
        """Complete ``row`` to :data:`SCORE_FIELDS` (the fact's basis and setting), stamp a dry
        run, refuse a second row of the same id, and store it."""
        if any(r["id"] == row["id"] for r in self.results["scorecard"]):
            raise ValueError(f"scorecard id {row['id']!r} recorded twice")
        row = {name: None for name in SCORE_FIELDS} | row | {"basis": quoted.basis,
                                                              "paper_setting": quoted.setting or None}
        if dryrun.active():
            row["verdict"] = "dry run"
        row = {name: _jsonable(row[name]) for name in SCORE_FIELDS}
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


VERDICT_COLOURS = {"reproduced": "#1a7f37", "partly": "#9a6700", "inconclusive": "#6e7781",
                   "not reproduced": "#cf222e", "different setting": "#0969da", "not measured": "#57606a",
                   "single run": "#8c959f", "no paper value": "#57606a", "dry run": "#8250df"}


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
    """An HTML table of scorecard rows: the full claim (and note), the paper's value with its
    basis (and its setting where ours differs), our mean with its 95 % interval and ``n`` (for a
    comparative row the paired difference against the deciding rival), the unit (from the row's
    fact), the verdict as a coloured badge (with the seeds an inconclusive row would need), and
    where the claim is quoted from."""
    import html

    def small(text: str) -> str:
        return f'<br><small style="color:#57606a">{html.escape(text)}</small>'

    def interval(row: dict) -> str:
        if row.get("ci_low") is None or row.get("ci_high") is None:
            return ""
        return f" [{format_number(row['ci_low'])}, {format_number(row['ci_high'])}]" + \
            ("<sup>clipped</sup>" if row.get("clipped") else "")

    def ours(row: dict) -> str:
        text = ("Δ " if row.get("test") == "paired" else "") + html.escape(format_number(row["ours"])) + interval(row)
        text += f" <small>n = {row['n']}</small>" if row.get("n") else ""
        if row.get("test") == "paired" and row.get("rival"):
            text += small(f"vs {row['rival']} (closest rival)")
        return text + (small(f"{row['dropped']} seed(s) dropped: no finite value") if row.get("dropped") else "")

    def paper(row: dict) -> str:
        text = html.escape(format_number(row["paper"]))
        if row.get("basis"):
            text += small(row["basis"])
        if row.get("verdict") == "different setting" and row.get("paper_setting"):
            text += small(f"at {row['paper_setting']}; ours at {row.get('setting')}")
        return text

    def badge(row: dict) -> str:
        verdict = row["verdict"]
        colour = VERDICT_COLOURS.get(verdict, "#57606a")
        text = (f'<span style="background:{colour};color:#fff;border-radius:0.6em;padding:0.1em 0.55em;'
                f'white-space:nowrap">{html.escape(verdict)}</span>')
        if verdict == "inconclusive":
            needed = row.get("seeds_needed")
            text += small(f"≈ {needed} seeds would decide" if needed else "more seeds would not decide")
        if row.get("pick_sensitive"):
            text += small(f"⚑ hangs on tuning: on {row['oracle_seeds']} seed(s) the rule's pick gives "
                          f"{row['rule_verdict_same_seeds']}, the oracle's {row['oracle_verdict']}")
        return text

    def unit(row: dict) -> str:
        from .facts import all_facts

        quoted = all_facts().get(row.get("fact") or "")
        return html.escape(quoted.unit) if quoted and quoted.unit else "–"

    body = []
    for row in rows:
        note = small(str(row["note"])) if row.get("note") else ""
        row_id = f' id="score-{html.escape(str(row["id"]), quote=True)}"' if row.get("id") else ""
        body.append(f"<tr{row_id}><td>{html.escape(str(row['claim']))}{note}</td><td>{paper(row)}</td><td>{ours(row)}</td>"
                    f"<td><small>{unit(row)}</small></td><td>{badge(row)}</td>"
                    f"<td><small>{html.escape(str(row.get('arxiv') or '–'))}</small></td></tr>")
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
