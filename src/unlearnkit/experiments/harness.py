"""The comparison harness: every method meets the same problem, budget, tuning rule and metrics.

Chapters compose these functions; they never import each other.

* :class:`Problem`: one forgetting task at one seed (split, original, retrained model, the
  retraining time measured in this run, provenance of every model).
* :func:`budget_settings`: a method's pass-counting hyperparameters at its declared budget:
  passes over the data it reads, as a fraction of the retrain's passes (the reference code
  bases' ratio, the same at every profile).
* :class:`Grid` and :func:`select`: the tuning grid every method gets (the same number of
  points for each), and the selection rule that never looks at the retrained model and cannot
  be met by damage (the oracle pick, which does look, is labelled as such).
* :func:`run_method` / :func:`run_methods`: one method at one setting on one problem, cached
  like a trained model; one row of metrics per run.
* :func:`compare`: tune on the first seed, run the picks on every seed, one long table.
* :func:`summarise` (95 % t-intervals, :func:`unlearnkit.metrics.t_interval`) and
  :func:`variance_components`: statistics over seeds.

Units: accuracies, attack scores and the Avg. Gap are fractions in [0, 1]; times in seconds.
Metric names are those of :func:`unlearnkit.metrics.evaluate_split`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import __version__
from ..config import as_dict, check_choice, check_range, config_hash
from ..data.core import Split
from ..methods import Diverged, get_method, unlearn
from ..metrics import accuracy, at_most, avg_gap, evaluate_split, t_interval
from ..runtime import atomic_torch_save, atomic_write_text, cache_root, writable_folder
from ..train import keys_only_active, load_entry

METRICS = ("RA", "FA", "TA", "FTA", "mia_loss_logreg", "mia_efficacy_svc", "mia_entropy_logreg",
           "forgetting_score", "nomus", "val_accuracy", "heldout_accuracy", "avg_gap", "seconds",
           "time_fraction")
"""The numeric columns of a run row (FTA is NaN where the split has no forget_test)."""
_FRACTIONS = ("RA", "FA", "TA", "FTA", "mia_loss_logreg", "mia_efficacy_svc", "mia_entropy_logreg", "forgetting_score",
              "nomus", "val_accuracy", "heldout_accuracy", "avg_gap", "MIA", "FS", "NoMUS", "probe_accuracy")
METRIC_RANGES = {**{m: (0.0, 1.0) for m in _FRACTIONS}, "seconds": (0.0, math.inf), "time_fraction": (0.0, math.inf)}
"""The range of each metric's values: :func:`summarise` clips its intervals to it (and marks them)."""
RULES = ("forget_then_val", "oracle")
SCENARIOS = ("full_class", "random_subset", "sub_class", "identity")
UTILITY_MARGIN = 0.05
"""How far (a fraction, 5 points) a run's validation accuracy may fall below the original's and
stay admissible to :func:`select`. Removing data costs a retrained model little: 2.5 and 3.1
points of test accuracy in DLFD's MUFAC and RAF-DB notebooks, about 1 point for 10 % of CIFAR-10;
and two validation accuracies on the cpu profile's 2,000 images differ by about 1.4 points (one
standard error) from sampling alone. 5 points covers both; a run 30 points down (a ruined model)
does not pass."""


@dataclass
class Problem:
    """One forgetting problem at one seed.

    task / scenario: e.g. ``"cifar10"`` / ``"full_class"``. seed: the seed of the forget draw
    (and, built by :func:`~unlearnkit.experiments.tasks.make_problem`, of the original and the
    retrained model). original / retrained: models in eval mode. retrain_seconds: retraining
    time measured in this run. retrain_epochs: the retrain recipe's epochs (budgets scale
    with it). models: provenance rows (``role, task, model, seed, cache_key, cache_hit,
    train_seconds, test_accuracy``). key: what identifies the problem in the run cache.
    """

    task: str
    scenario: str
    seed: int
    split: Split
    original: nn.Module
    retrained: nn.Module
    retrain_seconds: float
    retrain_epochs: float
    models: list[dict]
    key: dict
    original_seed: int | None = None

    def __post_init__(self):
        if self.original_seed is None:
            self.original_seed = self.seed

    @property
    def name(self) -> str:
        """``task/scenario``, e.g. ``cifar10/full_class``."""
        return f"{self.task}/{self.scenario}"


# ---------------------------------------------------------------------------- budgets

def budget_settings(method: str, retrain_epochs: float, fraction: float | None = None) -> dict[str, float]:
    """The method's pass-counting hyperparameters at its declared budget, or at ``fraction``.

    Each registered method names its pass-counting fields (``spec.passes``) and the retrain
    length of the code base its paper values come from (``spec.reference_retrain_epochs``).
    The ratio of the two is kept at every profile: ``value = paper value × retrain_epochs /
    reference``; e.g. FT's 10 epochs against SalUn's 160-epoch retrain give 0.625 epochs
    against a 10-epoch retrain. ``fraction`` in (0, 1] rescales every pass field so that
    :func:`budget_fraction` equals it. Empty for methods without pass fields (Retrain).
    """
    spec = get_method(method)
    check_range("retrain_epochs", retrain_epochs, 0, low_open=True)
    paper = spec.config.defaults("paper")
    settings = {name: paper[name] * retrain_epochs / spec.reference_retrain_epochs for name in spec.passes}
    if fraction is None or not settings:
        return settings
    check_budget(method, fraction)
    scale = fraction / budget_fraction(method, settings, retrain_epochs)
    return {name: value * scale for name, value in settings.items()}


def check_budget(method: str, fraction: float) -> float:
    """A budget fraction for ``method`` must be a number in (0, 1] (1 = as many passes as the retrain's)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"budget fraction of {method!r} must be a number in (0, 1]; got {fraction!r}")
    return check_range(f"budget fraction of {method!r}", fraction, 0, 1, low_open=True)


def budget_fraction(method: str, settings: Mapping[str, float], retrain_epochs: float) -> float:
    """Passes over the method's training data per epoch of the retrain: the sum of its pass
    fields (SCRUB's ``max_steps`` counts passes inside its epochs, so it is left out) divided
    by ``retrain_epochs``. NaN for methods without pass fields."""
    names = [n for n in get_method(method).passes if n != "max_steps"]
    if not names:
        return math.nan
    return sum(float(settings[n]) for n in names) / retrain_epochs


# ---------------------------------------------------------------------------- tuning grid

def _lr_fields(method: str) -> tuple[str, ...]:
    return tuple(n for n in get_method(method).config.defaults("paper") if n == "lr" or n.endswith("_lr"))


@dataclass(frozen=True)
class Grid:
    """The tuning grid every method gets: its learning rate(s) times each of ``lr_factors``,
    crossed with a knob of its own where ``knobs`` names one (``{method: {field: values}}``;
    none by default, so every method gets ``len(lr_factors)`` points: MU-Mis's δ stays at its
    default in comparisons and chapter 3's sensitivity study varies it).

    A method with several rates (UNSIR's impair and repair rates) scales them together. The
    grid is checked against the registry when it is built: unknown methods or fields, empty
    value lists and non-positive factors raise before any training. :func:`compare` refuses a
    grid that gives the compared methods different numbers of points.
    """

    lr_factors: tuple[float, ...] = (0.3, 1.0, 3.0)
    knobs: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "lr_factors", tuple(self.lr_factors))
        if not self.lr_factors:
            raise ValueError("Grid.lr_factors is empty; give at least one factor (1.0 = the default rate)")
        for f in self.lr_factors:
            check_range("lr factor", f, 0, low_open=True)
        for method, table in self.knobs.items():
            spec = get_method(method)
            fields = spec.config.defaults("paper")
            for name, values in table.items():
                check_choice(f"hyperparameter of {method!r} in the grid", name, tuple(fields))
                if not values:
                    raise ValueError(f"the grid's values for {method}.{name} are empty; give at least one")
                for value in values:
                    spec.config.for_profile("paper", {name: value})  # validates type and range

    def candidates(self, method: str, profile: str, base: Mapping | None = None) -> list[dict]:
        """Every grid point of ``method`` at ``profile``, as hyperparameter overrides on top of
        the method's comparison settings (``spec.comparison``) and ``base`` (settings a chapter
        fixes for a dataset; the rates scaled are base's where given)."""
        spec = get_method(method)
        fixed = {**dict(spec.comparison), **(base or {})}
        defaults = {**spec.config.defaults(profile), **fixed}
        rates = _lr_fields(method)
        lr_points = [{n: _round(defaults[n] * f) for n in rates} for f in self.lr_factors] if rates else [{}]
        knob = self.knobs.get(method, {})
        knob_points = [dict(zip(knob, values)) for values in itertools.product(*knob.values())] or [{}]
        return [{**fixed, **a, **b} for a, b in itertools.product(lr_points, knob_points)]


def check_fixed_settings(method: str, settings: Mapping, what: str) -> None:
    """In a comparison, ``settings`` of ``method`` (an override, a base or a grid knob) must not
    set a pass field (the budget rule sets those: :func:`budget_settings`) or a field the method
    fixes for comparisons (``spec.comparison``); raises ValueError naming the field."""
    spec = get_method(method)
    for name in settings:
        if name in spec.passes:
            raise ValueError(f"{what}[{method!r}] sets {name!r}, which counts passes over the data: in a "
                             f"comparison the budget rule sets it (passes {list(spec.passes)}); "
                             "change the budget with the protocol's budgets={method: fraction} instead")
        if name in dict(spec.comparison):
            raise ValueError(f"{what}[{method!r}] sets {name!r}, which every comparison fixes at "
                             f"{dict(spec.comparison)[name]!r} for {method!r}; fixed: {dict(spec.comparison)}")


def _round(value: float) -> float:
    """``value`` to 6 significant digits (``0.1 * 3`` is stored as 0.3, not 0.30000000000000004)."""
    return float(f"{value:.6g}")


def forget_target(problem_scenario: str, num_classes: int, original_heldout: float) -> float:
    """The forget accuracy the selection rule accepts, fixed before unlearning: chance (1/K) for
    a forgotten class, else the *original* model's held-out accuracy (:func:`heldout_set`), which
    a model that forgets by losing accuracy everywhere cannot lower."""
    return 1.0 / num_classes if problem_scenario in ("full_class",) else original_heldout


def select(rows: pd.DataFrame, rule: str) -> int:
    """The index of the row of ``rows`` (one method's grid on one problem) that ``rule`` picks.

    ``forget_then_val`` (never reads the retrained model): a run is *admissible* when its forget
    accuracy is at most ``forget_target`` (:func:`forget_target`, from the original model) and its
    validation accuracy at least ``original_val_accuracy`` − :data:`UTILITY_MARGIN`; the pick is
    the admissible run with the highest validation accuracy. When none is admissible: among the
    runs within the margin, the least excess FA − target; when no run is within the margin, the
    highest validation accuracy. A run that forgets only by being ruined never wins.
    ``oracle``: the least Avg. Gap to the retrained model (the field's common practice, reported
    beside it and labelled). Rows need the columns of :func:`with_original`. A diverged run
    (NaN metrics) is never admissible; when every run diverged, the first is returned.
    """
    check_choice("selection rule", rule, RULES)
    if rows.empty:
        raise ValueError("select() got no runs to choose from")
    read = ["avg_gap"] if rule == "oracle" else ["FA", "val_accuracy"]
    if rows[read].isna().all(axis=None):
        return int(rows.index[0])  # every run diverged: the pick is one of them, measured as NaN
    if rule == "oracle":
        return int(rows["avg_gap"].idxmin())
    excess = rows["FA"] - rows["forget_target"]
    useful = rows["val_accuracy"] >= rows["original_val_accuracy"] - UTILITY_MARGIN
    admissible = rows[useful & (excess <= 0)]
    if len(admissible):
        return int(admissible["val_accuracy"].idxmax())
    if useful.any():
        return int(excess[useful].idxmin())
    return int(rows["val_accuracy"].idxmax())


def with_original(rows: pd.DataFrame, problem: "Problem", original: Mapping) -> pd.DataFrame:
    """``rows`` (runs on ``problem``) with the selection rule's inputs fixed before unlearning,
    from the problem's ``original`` row (:func:`reference_rows`): ``original_heldout_accuracy``,
    ``original_val_accuracy`` and ``forget_target`` (:func:`forget_target`)."""
    held = original["heldout_accuracy"]
    return rows.assign(original_heldout_accuracy=held, original_val_accuracy=original["val_accuracy"],
                       forget_target=forget_target(problem.scenario, problem.split.num_classes, held))


# ---------------------------------------------------------------------------- runs

@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the package version and of the sources that decide a run's result (methods,
    metrics, sensitivity, transport, train, models, and this harness, which measures the runs):
    editing any of them misses the run cache."""
    package = Path(__file__).resolve().parents[1]
    files = sorted((package / "methods").glob("*.py")) + [package / f"{m}.py" for m in
                                                           ("metrics", "sensitivity", "transport", "train", "models")]
    files.append(Path(__file__).resolve())
    digest = hashlib.sha256(__version__.encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(problem: Problem, method: str, config: dict, *, seed: int, retain_eval: int | None) -> dict:
    """The run cache key: the problem, the full method config, the method seed, the
    evaluation settings and :func:`code_version`."""
    return {"problem": problem.key, "seed_forget": problem.seed, "method": method, "config": config,
            "method_seed": seed, "retain_eval": retain_eval, "code": code_version()}


def run_path(key: dict, cache_dir=None) -> Path:
    """Where the run of ``key`` is (or would be) stored: ``<cache>/runs/<hash>.pt``."""
    return cache_root(cache_dir) / "runs" / f"{config_hash(key)}.pt"


def heldout_set(split: Split):
    """The held-out data behind ``heldout_accuracy``: the unseen set where there is one and it
    is not the test set, else the validation set. DLFD's released MUFAC and RAF-DB splits use
    their test set as the attack's unseen set (``split.unseen is split.test``); the selection
    rule reads validation data there, so no selection input comes from the test set."""
    unseen = split.unseen
    if unseen is None or unseen is split.test or unseen.x is split.test.x:
        return split.val
    return unseen


MEASURED = ("RA", "FA", "TA", "mia_loss_logreg", "mia_efficacy_svc", "mia_entropy_logreg", "forgetting_score",
            "nomus", "val_accuracy", "heldout_accuracy")  # what :func:`measure` returns (and FTA, where defined)


def measure(model: nn.Module, problem: Problem, *, seed: int, device, retain_eval: int | None) -> dict:
    """Every metric of :func:`evaluate_split` plus ``val_accuracy`` (the validation set, capped
    at ``retain_eval`` samples) and ``heldout_accuracy`` (:func:`heldout_set`, capped alike):
    with the original's, the selection rule's inputs (:func:`with_original`)."""
    split = problem.split
    out = evaluate_split(model, split, device=device, seed=seed, retain_sample=retain_eval)
    out["val_accuracy"] = accuracy(model, at_most(split.val, retain_eval, seed), device=device) \
        if split.val is not None else math.nan
    held = heldout_set(split)
    out["heldout_accuracy"] = (accuracy(model, at_most(held, retain_eval, seed), device=device)
                               if held is not None and held is not split.val else out["val_accuracy"])
    out.pop("n_retain_eval", None)
    return out


def _row(problem: Problem, method: str, metrics: dict, seconds: float, **extra) -> dict:
    spec = get_method(method) if method != "original" else None
    return {"problem": problem.name, "task": problem.task, "scenario": problem.scenario, "seed": problem.seed,
            "original_seed": problem.original_seed, "method": method, "label": spec.label if spec else "Original",
            "reads_retain": spec.needs_retain if spec else None, **metrics, "FTA": metrics.get("FTA", math.nan),
            "seconds": seconds, "retrain_seconds": problem.retrain_seconds, **extra}


def run_identity(problem: Problem, method: str, settings: Mapping | None = None, *, profile: str,
                 retain_eval: int | None = None, seed: int | None = None,
                 budget: bool | float = True) -> tuple[dict, dict]:
    """``(overrides, key)`` of the run :func:`run_method` would make: the method's settings on
    top of its budget (see there) and the run cache key (:func:`run_key`); validates the settings."""
    seed = problem.seed if seed is None else seed
    spec = get_method(method)
    if spec.uses_fit:
        raise ValueError(f"{method!r} is the reference; its row comes with the problem (run_methods adds it)")
    fraction = None if isinstance(budget, bool) else budget
    passes = budget_settings(method, problem.retrain_epochs, fraction) if budget is not False else {}
    overrides = {**passes, **(settings or {})}
    config = spec.config.for_profile(profile, overrides)  # validates before any work
    return overrides, run_key(problem, method, as_dict(config), seed=seed, retain_eval=retain_eval)


def _refuse_stand_ins(what: str) -> None:
    """Never measure, and cache, the untrained stand-ins of :func:`unlearnkit.train.keys_only`."""
    if keys_only_active():
        raise RuntimeError(f"{what}: the models are stand-ins (keys_only), nothing may be measured or cached")


def run_method(problem: Problem, method: str, settings: Mapping | None = None, *, profile: str, device,
               retain_eval: int | None = None, seed: int | None = None, budget: bool | float = True,
               cache_dir=None, progress: bool = False) -> dict:
    """Run ``method`` on ``problem`` with ``settings`` (overrides of the profile defaults, on top
    of its :func:`budget_settings`: the declared budget when ``budget`` is True, that fraction of
    the retrain's passes when it is a number, none when False) and measure it; cached.

    seed: the method's seed (default the problem's). The entry ``<cache>/runs/<hash>.pt`` holds
    the unlearned state dict and the row; it is written atomically, keyed by :func:`run_key`.
    Returns the row: problem, task, scenario, seed, method, label, reads_retain, settings
    (JSON), budget_fraction, every metric of :func:`measure`, seconds (the method's wall time,
    from the run that produced the entry), retrain_seconds, cache_hit, run_path, diverged.
    A run that raises :class:`~unlearnkit.methods.Diverged` is cached as such: no model, every
    metric NaN, ``diverged`` the reason (empty for a run that finished).
    """
    seed = problem.seed if seed is None else seed
    spec = get_method(method)
    overrides, key = run_identity(problem, method, settings, profile=profile, retain_eval=retain_eval, seed=seed,
                                  budget=budget)
    path = run_path(key, cache_dir)
    entry = load_entry(path, key, what="run cache entry", redo="running again")
    if entry is None:
        _refuse_stand_ins(f"run {method} on {problem.name}")
        writable_folder(path.parent, "run cache folder", " (cache_dir=, $UNLEARNKIT_CACHE)")
        try:
            result = unlearn(method, problem.original, problem.split, profile=profile, device=str(device),
                             seed=seed, progress=progress, **overrides)
        except Diverged as err:
            entry = {"state_dict": None, "meta": {"key": key, "seconds": math.nan, "diverged": str(err),
                                                  "metrics": dict.fromkeys(MEASURED, math.nan), "timed_by": timed_by()}}
        else:
            metrics = measure(result.model, problem, seed=seed, device=device, retain_eval=retain_eval)
            entry = {"state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
                     "meta": {"key": key, "seconds": result.seconds, "metrics": metrics, "timed_by": timed_by()}}
        atomic_torch_save(entry, path)
        atomic_write_text(path.with_suffix(".json"), json.dumps(entry["meta"], indent=2, default=str))
        hit = False
    else:
        hit = True
    meta = entry["meta"]
    return _row(problem, method, meta["metrics"], float(meta["seconds"]),
                settings=json.dumps(dict(settings or {}), sort_keys=True),
                budget_fraction=budget_fraction(method, overrides, problem.retrain_epochs)
                if spec.passes else math.nan, method_seed=seed, cache_hit=hit, run_path=str(path),
                timed_here=meta.get("timed_by") == timed_by(), diverged=meta.get("diverged", ""))


def timed_by() -> str:
    """``host:pid`` of this process: a run's ``seconds`` compare with this run's retrain time only
    when the same process measured both (``timed_here``; a cached run was timed elsewhere)."""
    return f"{platform.node()}:{os.getpid()}"


def diverged(row: Mapping) -> bool:
    """Whether a run row is of a run that diverged (:func:`run_method`), so it has no model."""
    return isinstance(row.get("diverged"), str) and bool(row["diverged"])


def load_unlearned(problem: Problem, row: Mapping) -> nn.Module:
    """The unlearned model of a run row (from its cache entry), in eval mode; a row of a
    diverged run has none (:func:`diverged`) and raises :class:`~unlearnkit.methods.Diverged`."""
    if diverged(row):
        raise Diverged(row["diverged"])
    entry = torch.load(row["run_path"], map_location="cpu", weights_only=True)
    model = copy.deepcopy(problem.original).cpu()
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def reference_metrics(problem: Problem, role: str, *, device, retain_eval: int | None, cache_dir=None) -> dict:
    """:func:`measure` of the problem's ``original`` or ``retrained`` model, cached beside the
    runs (keyed by the problem, the role, the evaluation settings and :func:`code_version`)."""
    check_choice("role", role, ("original", "retrained"))
    key = {"problem": problem.key, "seed_forget": problem.seed, "role": role, "retain_eval": retain_eval,
           "code": code_version()}
    path = run_path(key, cache_dir).with_suffix(".json")
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["metrics"]
    _refuse_stand_ins(f"measure the {role} model of {problem.name}")
    model = problem.original if role == "original" else problem.retrained
    metrics = measure(model, problem, seed=problem.seed, device=device, retain_eval=retain_eval)
    writable_folder(path.parent, "run cache folder", " (cache_dir=, $UNLEARNKIT_CACHE)")
    atomic_write_text(path, json.dumps({"key": key, "metrics": metrics}, default=str))
    return metrics


def reference_rows(problem: Problem, *, device, retain_eval: int | None) -> list[dict]:
    """The Original and Retrain rows of ``problem`` (Retrain: its training time measured in this run)."""
    rows = []
    for method, role, seconds in (("original", "original", math.nan),
                                  ("retrain", "retrained", problem.retrain_seconds)):
        metrics = reference_metrics(problem, role, device=device, retain_eval=retain_eval)
        rows.append(_row(problem, method, metrics, seconds, settings="{}", budget_fraction=1.0 if method == "retrain"
                         else math.nan, method_seed=problem.seed, cache_hit=None, run_path=""))
    return rows


def add_gap(rows: pd.DataFrame) -> pd.DataFrame:
    """``avg_gap`` (:func:`unlearnkit.metrics.avg_gap` of RA, FA, TA, as fractions) to the Retrain row of
    the same problem and seed, and ``time_fraction`` = seconds / retrain_seconds."""
    reference = rows[rows["method"] == "retrain"].set_index(["problem", "seed"])
    gaps = [avg_gap(r, reference.loc[(r["problem"], r["seed"])]) for _, r in rows.iterrows()]
    return rows.assign(avg_gap=gaps, time_fraction=rows["seconds"] / rows["retrain_seconds"])


def run_methods(problem: Problem, methods: Sequence[str] | Mapping[str, Mapping], *, profile: str, device,
                retain_eval: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Original, Retrain and every method of ``methods`` (names, or ``{name: settings}``) on
    ``problem``, each at its budget: one row per model, ``avg_gap`` and ``time_fraction`` added."""
    table = dict(methods) if isinstance(methods, Mapping) else {m: {} for m in methods}
    for name, settings in table.items():
        get_method(name).config.for_profile(profile, settings)  # every setting checked before any work
    rows = reference_rows(problem, device=device, retain_eval=retain_eval)
    for name, settings in tqdm(table.items(), desc=problem.name, disable=not progress, leave=False):
        if name != "retrain":
            rows.append(run_method(problem, name, settings, profile=profile, device=device, retain_eval=retain_eval))
    return add_gap(pd.DataFrame(rows))


def check_methods(methods: Sequence[str], grid: Grid, profile: str, base: Mapping | None = None,
                  budgets: Mapping | None = None) -> None:
    """Every method known, every budget in (0, 1], no base setting or grid knob on a pass field
    or a comparison setting (:func:`check_fixed_settings`), every grid point valid at
    ``profile`` and the same number of grid points for every method, before any training."""
    if not methods:
        raise ValueError("no methods to compare; give at least one registered method name")
    for table, what in ((base, "base settings"), (budgets, "budgets")):
        unknown = sorted(set(table or {}) - set(methods))
        if unknown:
            raise ValueError(f"{what} for {unknown}, which are not compared; methods: {list(methods)}")
    for name, fraction in (budgets or {}).items():
        check_budget(name, fraction)
    sizes = {}
    for name in [m for m in methods if m != "retrain"]:
        check_fixed_settings(name, (base or {}).get(name, {}), "base settings")
        check_fixed_settings(name, grid.knobs.get(name, {}), "grid knobs")
        points = grid.candidates(name, profile, (base or {}).get(name))
        for point in points:
            get_method(name).config.for_profile(profile, point)
        sizes[name] = len(points)
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the grid gives the compared methods different numbers of points {sizes}; "
                         "every method gets the same tuning: give a knob to every method or to none")


ORACLE_SEEDS = ("every_seed", "tuning_seed", "none")
"""Where :func:`compare` runs the oracle pick: on every seed, on the tuning seed only, or nowhere."""


def tuning_rows(tuning: Problem, method: str, refs: Sequence[dict] | None = None, *, grid: Grid, profile: str,
                device, retain_eval: int | None, base: Mapping | None = None,
                budget: bool | float = True) -> pd.DataFrame:
    """Every grid point of ``method`` run on the tuning problem, one row each, ``avg_gap``,
    ``time_fraction`` (:func:`add_gap`) and the original's selection inputs (:func:`with_original`)
    added (``refs``: the problem's :func:`reference_rows`, computed if None)."""
    refs = reference_rows(tuning, device=device, retain_eval=retain_eval) if refs is None else refs
    rows = add_gap(pd.DataFrame(list(refs) + [
        run_method(tuning, method, point, profile=profile, device=device, retain_eval=retain_eval, budget=budget)
        for point in grid.candidates(method, profile, (base or {}).get(method))]))
    original = next(r for r in refs if r["method"] == "original")
    return with_original(rows[rows["method"] == method].reset_index(drop=True), tuning, original)


def picked_settings(grid_rows: pd.DataFrame, rule: str) -> dict:
    """The settings (overrides of the profile defaults) ``rule`` picks among ``grid_rows``."""
    return json.loads(grid_rows.loc[select(grid_rows, rule), "settings"])


def pick_plan(group: Sequence[Problem], oracle: str) -> list[tuple[str, str, list[Problem]]]:
    """``(pick label, selection rule, problems it runs on)`` for one scenario's seeds: the rule's
    pick on every seed, the oracle's on the seeds ``oracle`` names (:data:`ORACLE_SEEDS`)."""
    oracle_seeds = {"every_seed": list(group), "tuning_seed": list(group[:1]), "none": []}[check_choice(
        "oracle", oracle, ORACLE_SEEDS)]
    return [("rule", "forget_then_val", list(group)), ("oracle", "oracle", oracle_seeds)]


def compare(problems: Sequence[Problem], methods: Sequence[str], *, grid: Grid, profile: str, device,
            retain_eval: int | None = None, oracle: str = "every_seed", base: Mapping | None = None,
            budgets: Mapping | None = None, progress: bool = False) -> pd.DataFrame:
    """The comparison: per scenario, tune every method on the first problem's seed, then run its
    picks on every seed.

    problems: the same scenario at several seeds (several scenarios may be mixed; each is tuned
    on its first problem). Rows, one long table: Original and Retrain per problem; per method
    the grid runs on the tuning seed (``pick="grid"``), and the ``forget_then_val`` pick
    (``pick="rule"``) on every seed, and the least-gap pick (``pick="oracle"``) on the seeds
    ``oracle`` names (:data:`ORACLE_SEEDS`; the tuning seed's pick rows repeat its grid run,
    read from the run cache). Columns of
    :func:`run_method`, plus pick and ``avg_gap`` / ``time_fraction`` (:func:`add_gap`).
    base: ``{method: settings}`` every grid point of that method starts from (e.g. a dataset's
    released settings); the grid's rates scale base's rates. budgets: ``{method: fraction}``
    replacing a method's declared budget (:func:`budget_settings`).
    """
    check_choice("oracle", oracle, ORACLE_SEEDS)
    check_methods(methods, grid, profile, base, budgets)
    budgets = dict(budgets or {})
    by_scenario: dict[str, list[Problem]] = {}
    for p in problems:
        by_scenario.setdefault(p.name, []).append(p)
    rows = []
    for group in by_scenario.values():
        refs = {p.seed: reference_rows(p, device=device, retain_eval=retain_eval) for p in group}
        rows += [r for rs in refs.values() for r in rs]
        for name in tqdm([m for m in methods if m != "retrain"], desc=group[0].name, disable=not progress):
            grid_rows = tuning_rows(group[0], name, refs[group[0].seed], grid=grid, profile=profile, device=device,
                                    retain_eval=retain_eval, base=base, budget=budgets.get(name, True))
            rows += [{**r, "pick": "grid"} for r in grid_rows.to_dict("records")]
            for label, rule, seeds in pick_plan(group, oracle):
                settings = picked_settings(grid_rows, rule)
                rows += [{**run_method(p, name, settings, profile=profile, device=device, retain_eval=retain_eval,
                                       budget=budgets.get(name, True)), "pick": label} for p in seeds]
    frame = pd.DataFrame(rows)
    frame["pick"] = frame["pick"].fillna("reference")
    return add_gap(frame.drop(columns=["avg_gap", "time_fraction"], errors="ignore"))


def settings_text(settings: str | Mapping) -> str:
    """A pick's settings for reading (a run row's JSON ``settings`` or a dict): ``lr = 0.3``, or
    ``defaults`` when the pick changed nothing."""
    settings = json.loads(settings) if isinstance(settings, str) else dict(settings)
    return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in settings.items()) or "defaults"


def diverged_note(rows: pd.DataFrame) -> str:
    """A sentence naming the runs of ``rows`` that diverged (:func:`diverged`), or saying none did."""
    bad = [r for _, r in rows.iterrows() if diverged(r)]
    if not bad:
        return "No run diverged."
    named = "; ".join(f"{r['label']} on {r['problem']}, seed {r['seed']} ({settings_text(r['settings'])})"
                      for r in bad)
    return (f"{len(bad)} run(s) diverged (NaN or infinite weights or losses) and count as not measured, "
            f"which drops that seed from every mean and interval it feeds: {named}.")


def picks_view(picks: pd.DataFrame) -> pd.DataFrame:
    """:func:`picks_table` for the page: indexed by problem and method label, the picks as
    :func:`settings_text` instead of JSON."""
    shown = picks.assign(**{c: picks[c].map(settings_text, na_action="ignore")
                            for c in ("rule pick", "oracle pick") if c in picks})
    return shown.set_index(["problem", "label"]).drop(columns=["method"])


def plot_tuning_grid(rows: pd.DataFrame, problems: Sequence[str] | None = None, *, columns: int = 2):
    """What the selection rule saw: per problem (a panel), every method's grid on the tuning seed
    as validation accuracy minus the original's (x) against forget accuracy minus the rule's
    target (y), both in points, joined in grid order; the shaded corner is admissible
    (:func:`select`: y ≤ 0, x ≥ −100 × :data:`UTILITY_MARGIN`). The rule's pick is a filled dot,
    the oracle's (least Avg. Gap, reads the retrained model) an open square."""
    from matplotlib.lines import Line2D

    from ..figures import legend_below, legend_entries, method_colors, panels

    grid = rows[rows["pick"] == "grid"]
    problems = list(problems or dict.fromkeys(grid["problem"]))
    fig, axes = panels(len(problems), columns=columns, panel_height=3.4)
    colours = method_colors(grid["method"])
    for ax, problem in zip(axes, problems):
        part = grid[grid["problem"] == problem]
        tuning_seed = part["seed"].iloc[0]
        for method, runs in part.groupby("method", sort=False):
            x = 100 * (runs["val_accuracy"] - runs["original_val_accuracy"])
            y = 100 * (runs["FA"] - runs["forget_target"])
            ax.plot(x, y, "-o", color=colours[method], ms=4, lw=1, label=runs["label"].iloc[0])
            for pick, style in (("rule", dict(marker="o", ms=10, mfc=colours[method])),
                                ("oracle", dict(marker="s", ms=12, mfc="none"))):
                chosen = rows[(rows["problem"] == problem) & (rows["method"] == method) & (rows["pick"] == pick)
                              & (rows["seed"] == tuning_seed)]
                hit = runs[runs["settings"].isin(chosen["settings"])]
                ax.plot(100 * (hit["val_accuracy"] - hit["original_val_accuracy"]),
                        100 * (hit["FA"] - hit["forget_target"]), ls="none", mec=colours[method], **style)
        xmin, xmax = ax.get_xlim()
        ymin, ymax = ax.get_ylim()
        ax.fill_between([-100 * UTILITY_MARGIN, max(xmax, 1.0)], min(ymin, -1.0), 0, color="#1a7f37", alpha=0.08)
        ax.axhline(0, color="#57606a", lw=0.8)
        ax.axvline(-100 * UTILITY_MARGIN, color="#57606a", lw=0.8, ls="--")
        ax.set(title=problem, xlabel="validation acc. − original's (points)", ylabel="forget acc. − target (points)")
    handles, labels = legend_entries(axes)
    handles += [Line2D([], [], ls="none", marker="o", ms=9, color="k"), Line2D([], [], ls="none", marker="s", ms=10,
                                                                            mfc="none", color="k")]
    labels += ["rule's pick", "oracle's pick"]
    legend_below(fig, axes, handles=handles, labels=labels)
    return fig


# ---------------------------------------------------------------------------- statistics

def summarise(rows: pd.DataFrame, metrics: Sequence[str] = ("RA", "FA", "TA", "avg_gap"),
              by: Sequence[str] = ("problem", "method", "pick")) -> pd.DataFrame:
    """Per group of ``by`` and metric: ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high`` (95 % t
    over the seeds of the group, clipped to the metric's :data:`METRIC_RANGES`: an accuracy's
    interval never leaves [0, 1]; ``clipped`` says where an end moved). Long format: one row
    per group × metric."""
    out = []
    for keys, part in rows.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for m in metrics:
            n, mean, low, high = t_interval(part[m].tolist())
            sd = float(part[m].std(ddof=1)) if n > 1 else math.nan
            floor, ceiling = METRIC_RANGES.get(m, (-math.inf, math.inf))
            clipped = n > 1 and (low < floor or high > ceiling)
            out.append({**dict(zip(by, keys)), "label": part["label"].iloc[0], "metric": m, "n": n, "mean": mean,
                        "sd": sd, "ci_low": max(low, floor) if n > 1 else low,
                        "ci_high": min(high, ceiling) if n > 1 else high, "clipped": clipped})
    return pd.DataFrame(out)


def means(rows: pd.DataFrame, metrics: Sequence[str], by: Sequence[str]) -> pd.DataFrame:
    """Wide table for figures and rankings: per group of ``by`` (order kept), the mean of each
    metric as ``col``, its standard deviation over seeds as ``col_std`` (0 for one seed), the
    number of rows ``n`` and the first ``label``."""
    metrics = [m for m in metrics if m in rows]
    grouped = rows.groupby(list(by), sort=False)
    out = grouped[metrics].mean().join(grouped[metrics].std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(grouped.size().rename("n")).join(grouped["label"].first()).reset_index()


COLUMN_NAMES = {"RA": "retain acc. (%)", "FA": "forget acc. (%)", "TA": "test acc. (%)", "FTA": "forget-class test acc. (%)",
                "nomus": "NoMUS (%)", "NoMUS": "NoMUS (%)", "MIA": "MIA acc. (%)", "FS": "forgetting score (%)",
                "avg_gap": "Avg. Gap (points)", "time_fraction": "time / retrain's (%)",
                "ulira_auc": "U-LiRA AUC (%)", "ulira_tpr_at_1pct": "U-LiRA TPR at 1 % FPR (%)",
                "ulira_tpr_at_0_1pct": "U-LiRA TPR at 0.1 % FPR (%)", "relearn_fa": "forget acc. after relearning (%)",
                "relearn_fa_k": "forget acc. after relearning with k forget samples (%)",
                "probe_fa": "linear-probe forget acc. (%)"}
"""A results table's column for each metric, in words with its unit (after :func:`display`'s ×100)."""


def display(summary: pd.DataFrame, *, scale: float = 100.0, digits: int = 1,
            index: Sequence[str] = ("label",)) -> pd.DataFrame:
    """Compact cells, metrics as columns (×``scale``: % and points by default): ``mean ± h``
    (h: the 95 % half-width), ``mean [low, high]`` where the interval was clipped to the metric's
    range, the mean alone for one seed. At the default scale the columns are named by
    :data:`COLUMN_NAMES` (whose units assume it); at any other they keep the metric's key."""
    def cell(r):
        if math.isnan(r["mean"]):
            return "–"
        if math.isnan(r["ci_low"]):
            return f"{scale * r['mean']:.{digits}f}"
        if r.get("clipped", False):
            return f"{scale * r['mean']:.{digits}f} [{scale * r['ci_low']:.{digits}f}, {scale * r['ci_high']:.{digits}f}]"
        return f"{scale * r['mean']:.{digits}f} ± {scale * (r['ci_high'] - r['mean']):.{digits}f}"

    frame = summary.assign(cell=summary.apply(cell, axis=1))
    table = frame.pivot_table(index=list(index), columns="metric", values="cell", aggfunc="first", sort=False)
    table = table[[m for m in dict.fromkeys(summary["metric"]) if m in table]]
    return table.rename(columns=COLUMN_NAMES if scale == 100.0 else {}).rename_axis(columns=None)


def variance_components(rows: pd.DataFrame, value: str,
                        factors: Sequence[str] = ("original_seed", "forget_seed", "method_seed")) -> pd.DataFrame:
    """Share of the variance of ``value`` explained by each factor's main effect (η² of a
    balanced factorial design) and by what remains (interactions and noise).

    rows: one run per combination of the ``factors`` levels. Returns rows ``factor, ss, share``.
    """
    total = rows[value] - rows[value].mean()
    ss_total = float((total ** 2).sum())
    out, explained = [], 0.0
    for f in factors:
        means = rows.groupby(f)[value].transform("mean") - rows[value].mean()
        ss = float((means ** 2).sum())
        explained += ss
        out.append({"factor": f, "ss": ss, "share": ss / ss_total if ss_total > 0 else math.nan})
    rest = ss_total - explained
    out.append({"factor": "interactions and noise", "ss": rest, "share": rest / ss_total if ss_total > 0 else math.nan})
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------- reading the table

def main_rows(rows: pd.DataFrame, pick: str = "rule") -> pd.DataFrame:
    """The Original and Retrain rows and every method's ``pick`` rows (``rule`` or ``oracle``):
    one row per model and seed, what a results table shows."""
    check_choice("pick", pick, ("rule", "oracle"))
    return rows[rows["pick"].isin(("reference", pick))].reset_index(drop=True)


def seed_values(rows: pd.DataFrame, problem: str, method: str, metric: str, pick: str = "rule") -> list[float]:
    """``metric`` of ``method`` on ``problem`` at every seed, in seed order (the values a verdict's interval uses)."""
    return [value for _, value in sorted(seed_map(rows, problem, method, metric, pick).items())]


def seed_map(rows: pd.DataFrame, problem: str, method: str, metric: str, pick: str = "rule") -> dict[int, float]:
    """``{seed: metric}`` of ``method`` on ``problem`` (:func:`seed_values` keyed by seed, so that
    two methods are paired on the same original and forget draw: :meth:`unlearnkit.record.Recorder.paired`)."""
    part = main_rows(rows, pick)
    part = part[(part["problem"] == problem) & (part["method"] == method)]
    if part.empty:
        raise ValueError(f"no {pick!r} rows of {method!r} on {problem!r}; problems: {sorted(rows['problem'].unique())}")
    return {int(seed): float(value) for seed, value in zip(part["seed"], part[metric])}


BUDGET_COLUMN = "budget (passes / retrain's passes)"
TIME_COLUMN = "time (wall time / retrain's)"


def picks_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per problem and method: the settings each rule picked on the tuning seed, the grid size,
    the budget (:func:`budget_fraction`: passes over the data the method reads per pass of the
    retrain) and its measured price, the rule pick's mean ``time_fraction`` over seeds."""
    grid = rows[rows["pick"] == "grid"]
    out = []
    for (problem, method), part in grid.groupby(["problem", "method"], sort=False):
        chosen = rows[(rows["problem"] == problem) & (rows["method"] == method)]
        row = {"problem": problem, "method": method, "label": part["label"].iloc[0], "grid points": len(part),
               BUDGET_COLUMN: part["budget_fraction"].iloc[0],
               TIME_COLUMN: chosen.loc[chosen["pick"] == "rule", "time_fraction"].mean()}
        for pick in ("rule", "oracle"):
            chosen_pick = chosen[chosen["pick"] == pick]
            if len(chosen_pick):
                row[f"{pick} pick"] = chosen_pick["settings"].iloc[0]
        out.append(row)
    return pd.DataFrame(out)


def rule_picks(rows: pd.DataFrame, problem: str | None = None) -> dict:
    """The settings the selection rule picked on the tuning seed, decoded: ``{(problem, method):
    settings}``, or ``{method: settings}`` for one ``problem``. ``rows``: :func:`compare`'s."""
    rule = rows[rows["pick"] == "rule"].drop_duplicates(["problem", "method"])
    picks = {(r.problem, r.method): json.loads(r.settings) if isinstance(r.settings, str) else dict(r.settings)
             for r in rule.itertuples()}
    if problem is None:
        return picks
    return {method: settings for (name, method), settings in picks.items() if name == problem}
