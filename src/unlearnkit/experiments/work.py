"""A chapter's expensive units as one plan: the chapter runs it, ``python -m unlearnkit plan``
lists it and ``python -m unlearnkit warm`` spreads it over a Ray cluster.

* A problem is data: a :class:`.tasks.ProblemSpec` (e.g. the book's CIFAR-10 full-class
  problem at seed 1), built by :func:`.tasks.build`, on any machine.
* :class:`Comparison`: problem specs plus the arguments of :func:`.harness.compare`.
* :class:`Training`: an original trained without cutting a problem (chapter 0's).
* :class:`Work`: a chapter's comparisons, and trainings it runs without comparing them.
* :func:`plan`: the units of a :class:`Work`: one ``train`` per model cache entry, one ``run``
  per grid point on a tuning problem, one ``picks`` per method and problem (the rule's and the
  oracle's picks, whose settings the grid decides). Keys come from the problems' own builders,
  run under :func:`unlearnkit.train.keys_only`, so the plan and the chapter cannot disagree.
* :func:`execute`: do one unit, writing the model or run cache (what a Ray worker calls).

Cost: ``epochs`` counts passes over the unit's training data (a training's epochs, a run's
budgeted passes, :func:`.harness.budget_fraction`); ``seconds`` is the time measured when the
entry was made, for cached units, else the epochs times the seconds per epoch of the chapter's
cached trainings of the same model (NaN when none is cached yet).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from ..runtime import cache_root
from ..train import keys_only
from . import harness
from .tasks import ImageTask, ProblemSpec, build, train_original

KINDS = ("train", "run", "picks")


@dataclass(frozen=True)
class Training:
    """The original of ``task`` at ``seed`` (:func:`.tasks.train_original`), trained without
    cutting a problem: chapter 0's originals, which every later chapter's problems start from."""

    task: ImageTask
    seed: int
    root: str | None = None

    def build(self, *, device, progress: bool = False):
        return train_original(self.task, seed=self.seed, device=device, root=self.root, progress=progress)

    @property
    def label(self) -> str:
        return f"original({self.task.dataset}, seed={self.seed})"


@dataclass(frozen=True, eq=False)
class Comparison:
    """:func:`.harness.compare` of ``methods`` on the problems of ``problems``, with its arguments."""

    name: str
    problems: tuple[ProblemSpec, ...]
    methods: tuple[str, ...]
    grid: harness.Grid
    profile: str
    retain_eval: int | None = None
    oracle: str = "every_seed"
    base: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=dict)

    def build(self, *, device, progress: bool = False) -> list[harness.Problem]:
        """Every problem, its models trained or read from the model cache."""
        return [build(s, device=device, progress=progress) for s in self.problems]

    @property
    def options(self) -> dict:
        """The keyword arguments of :func:`.harness.compare` besides the problems and the device:
        ``harness.compare(problems, **comparison.options, device=device)`` runs it."""
        return dict(methods=list(self.methods), grid=self.grid, profile=self.profile, retain_eval=self.retain_eval,
                    oracle=self.oracle, base=self.base, budgets=self.budgets)

    def run(self, problems: Sequence[harness.Problem], *, device, progress: bool = False) -> pd.DataFrame:
        """The comparison's rows (:func:`.harness.compare`) on ``problems`` (:meth:`build`'s)."""
        return harness.compare(problems, **self.options, device=device, progress=progress)

    def budget(self, method: str) -> bool | float:
        return self.budgets.get(method, True)


def comparison(name: str, problems: Sequence[ProblemSpec], methods: Sequence[str], settings, *,
               base: Mapping | None = None) -> Comparison:
    """A :class:`Comparison` of ``methods`` on ``problems`` under the protocol of ``settings`` (a
    :class:`unlearnkit.chapter.Settings`: evaluation sample, oracle seeds, budgets, the grid the
    method overrides leave) with ``base`` settings (default: the method overrides)."""
    protocol = settings.protocol
    return Comparison(name, tuple(problems), tuple(methods), protocol.grid, settings.profile, protocol.retain_eval,
                      protocol.oracle, dict(settings.method_overrides if base is None else base),
                      dict(protocol.budgets))


@dataclass(frozen=True, eq=False)
class Work:
    """A chapter's expensive work: named comparisons, and ``trainings`` run but not compared."""

    chapter: str
    comparisons: tuple[Comparison, ...] = ()
    trainings: tuple[Training, ...] = ()

    def __getitem__(self, name: str) -> Comparison:
        names = [c.name for c in self.comparisons]
        if name not in names:
            raise KeyError(f"no comparison {name!r} in {self.chapter}; comparisons: {names}")
        return self.comparisons[names.index(name)]


@dataclass
class Unit:
    """One unit of work. ``id``: ``train:<hash>``, ``run:<hash>`` or ``picks:…``; ``key``: the
    cache entry's hash (a ``picks`` unit: its entries' hashes, empty while the grid is not run);
    ``deps``: ids of the units it needs; ``job``: what :func:`execute` does."""

    id: str
    kind: str
    label: str
    key: str
    cached: bool
    deps: tuple[str, ...]
    epochs: float
    seconds: float
    job: tuple = field(repr=False)

    def row(self) -> dict:
        return {"kind": self.kind, "unit": self.label, "key": self.key or "after tuning", "cached": self.cached,
                "epochs": self.epochs, "seconds": self.seconds, "needs": len(self.deps)}


# ---------------------------------------------------------------------------- planning

def _build_keys(r: ProblemSpec | Training) -> tuple[harness.Problem, list[dict]]:
    """The problem with its cached models and stand-ins for the missing ones, and every model
    entry it reads (``{"hash", "path", "key", "hit"}``)."""
    entries: list[dict] = []
    with keys_only(record=entries):
        problem = r.build(device="cpu")
    return problem, entries


def _train_label(key: Mapping) -> str:
    task = key.get("task", {})
    dataset = task.get("dataset") or key.get("dataset", "?")
    train = task.get("train") or key.get("train", {})
    forget = key.get("split", {})
    what = ", ".join(f"{k}={v}" for k, v in forget.items() if k in ("scenario", "forget_class", "forget_fraction",
                                                                     "forget_subject_fraction", "subclass"))
    return f"{key.get('role', 'model')} {dataset}{f' ({what})' if what else ''} seed {train.get('seed', '?')}"


def _epochs_of(key: Mapping) -> float:
    train = key.get("task", {}).get("train") or key.get("train", {})
    return float(train.get("epochs", math.nan))


def _model_of(key: Mapping) -> str:
    train = key.get("task", {}).get("train") or key.get("train", {})
    return str(train.get("model", "?"))


def _stored(path: str | Path, field_name: str) -> float:
    """A number the cache entry's ``.json`` sidecar holds (NaN when absent)."""
    sidecar = Path(path).with_suffix(".json")
    try:
        return float(json.loads(sidecar.read_text()).get(field_name, math.nan))
    except (OSError, ValueError, TypeError):
        return math.nan


def _run_cached(key: dict) -> tuple[bool, float, Path]:
    """Whether the run of ``key`` is cached (its sidecar's key matches), its measured seconds, its path."""
    path = harness.run_path(key)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False, math.nan, path
    hit = path.is_file() and meta.get("key") == json.loads(json.dumps(key, default=str))
    return hit, float(meta.get("seconds", math.nan)) if hit else math.nan, path


def plan(work: Work) -> list[Unit]:
    """Every unit of ``work`` in dependency order (trainings, grid runs, picks), with keys,
    cache status and costs. Builds each problem once under :func:`~unlearnkit.train.keys_only`
    (data are loaded, nothing is trained or measured)."""
    units: dict[str, Unit] = {}
    items = [r for c in work.comparisons for r in c.problems] + list(work.trainings)
    built: dict[int, tuple[harness.Problem, list[str]]] = {}
    for r in items:
        if id(r) in built:
            continue
        problem, entries = _build_keys(r)
        ids = []
        for e in entries:
            uid = f"train:{e['hash']}"
            ids.append(uid)
            seconds = _stored(e["path"], "train_seconds") if e["hit"] else math.nan
            units.setdefault(uid, Unit(uid, "train", _train_label(e["key"]), e["hash"], e["hit"], (),
                                       _epochs_of(e["key"]), seconds, ("train", r, e["hash"], _model_of(e["key"]))))
        built[id(r)] = (problem, ids)
    for c in work.comparisons:
        harness.check_methods(list(c.methods), c.grid, c.profile, c.base, c.budgets)
        groups: dict[str, list[ProblemSpec]] = {}
        for r in c.problems:
            groups.setdefault(built[id(r)][0].name, []).append(r)
        for group in groups.values():
            _plan_group(c, group, built, units)
    out = list(units.values())
    _estimate_seconds(out)
    return out


def _plan_group(c: Comparison, group: list[ProblemSpec], built: dict, units: dict[str, Unit]) -> None:
    tuning, tuning_trains = built[id(group[0])]
    rules = {id(r): [rule for _, rule, on in harness.pick_plan(group, c.oracle) if r in on] for r in group}
    for method in [m for m in c.methods if m != "retrain"]:
        grid_ids, epochs = [], math.nan
        for point in c.grid.candidates(method, c.profile, c.base.get(method)):
            overrides, key = harness.run_identity(tuning, method, point, profile=c.profile,
                                                  retain_eval=c.retain_eval, budget=c.budget(method))
            hit, seconds, path = _run_cached(key)
            epochs = _run_epochs(method, overrides, tuning.retrain_epochs)
            uid = f"run:{path.stem}"
            grid_ids.append(uid)
            units.setdefault(uid, Unit(uid, "run", f"{method} {_settings_text(point)} on {tuning.name} seed "
                                                   f"{tuning.seed}", path.stem, hit, tuple(tuning_trains), epochs,
                                       seconds, ("run", group[0], method, point, c)))
        for r in group:
            target, target_trains = built[id(r)]
            uid = f"picks:{c.name}/{target.name}/seed {target.seed}/{method}"
            keys, cached, seconds = _resolve_picks(c, tuning, target, method, rules[id(r)], grid_ids, units)
            units[uid] = Unit(uid, "picks", f"{method} {'+'.join(rules[id(r)])} pick(s) on {target.name} seed "
                                            f"{target.seed}", " ".join(keys), cached,
                              tuple(dict.fromkeys(grid_ids + target_trains)),
                              0.0 if r is group[0] else epochs * len(rules[id(r)]), seconds,  # tuning seed: grid runs
                              ("picks", group[0], r, method, tuple(rules[id(r)]), c))


def _settings_text(point: Mapping) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()) or "defaults"


def _run_epochs(method: str, overrides: Mapping, retrain_epochs: float) -> float:
    fraction = harness.budget_fraction(method, overrides, retrain_epochs) if harness.get_method(method).passes \
        else math.nan
    return fraction * retrain_epochs


def _resolve_picks(c: Comparison, tuning, target, method: str, rules: Sequence[str], grid_ids: list[str],
                   units: dict[str, Unit]) -> tuple[list[str], bool, float]:
    """The picks' cache hashes, whether all are cached and their measured seconds, once the
    grid and the tuning problem's reference metrics are cached; else ``([], False, nan)``."""
    if not all(units[g].cached for g in grid_ids):
        return [], False, math.nan
    try:
        with keys_only():
            rows = harness.tuning_rows(tuning, method, grid=c.grid, profile=c.profile, device="cpu",
                                       retain_eval=c.retain_eval, base=c.base, budget=c.budget(method))
    except RuntimeError:  # the reference metrics are not cached yet
        return [], False, math.nan
    keys, cached, seconds = [], True, 0.0
    for rule in rules:
        _, key = harness.run_identity(target, method, harness.picked_settings(rows, rule), profile=c.profile,
                                      retain_eval=c.retain_eval, budget=c.budget(method))
        hit, took, path = _run_cached(key)
        if path.stem not in keys:
            keys.append(path.stem)
            cached, seconds = cached and hit, seconds + took
    return keys, cached, seconds if cached else math.nan


def _estimate_seconds(units: list[Unit]) -> None:
    """Missing units' seconds: their epochs × the median seconds per epoch of the cached trainings
    of the same model architecture; NaN while none is cached (no guess across models)."""
    rates: dict[str, list[float]] = {}
    for u in units:
        if u.kind == "train" and u.cached and u.epochs > 0 and not math.isnan(u.seconds):
            rates.setdefault(u.job[3], []).append(u.seconds / u.epochs)
    model_of = {u.id: u.job[3] for u in units if u.kind == "train"}
    for u in units:
        if not math.isnan(u.seconds):
            continue
        model = model_of.get(u.id) or next((model_of[d] for d in u.deps if d in model_of), "?")
        rate = sorted(rates.get(model, []))
        u.seconds = u.epochs * rate[len(rate) // 2] if rate else math.nan


def table(units: Sequence[Unit]) -> pd.DataFrame:
    """One row per unit: kind, unit, key, cached, epochs, seconds, needs (number of dependencies)."""
    return pd.DataFrame([u.row() for u in units], columns=["kind", "unit", "key", "cached", "epochs", "seconds",
                                                           "needs"])


def summary(units: Sequence[Unit]) -> pd.DataFrame:
    """Per kind: units, cached, missing, and the missing units' estimated seconds."""
    frame = table(units)
    out = frame.groupby("kind", sort=False).agg(units=("unit", "size"), cached=("cached", "sum"))
    out["missing"] = out["units"] - out["cached"]
    out["missing seconds (est.)"] = frame[~frame["cached"]].groupby("kind", sort=False)["seconds"].sum(min_count=1)
    return out.reindex([k for k in KINDS if k in out.index])


# ---------------------------------------------------------------------------- execution

@dataclass(frozen=True)
class Context:
    """What a worker process needs to act like the chapter's kernel: environment variables
    (absolute data and cache roots), plugin files, deterministic kernels, the device name."""

    env: dict
    plugins: tuple[str, ...] = ()
    deterministic: bool = False
    device: str = "auto"

    def enter(self):
        """Apply it in this process; returns the torch device."""
        from .. import runtime
        from . import options

        os.environ.update(self.env)
        options.load_plugins(list(self.plugins))
        runtime.deterministic(self.deterministic)
        return runtime.resolve_device(self.device)


def execute(job: tuple, context: Context) -> dict:
    """Do one unit's ``job`` (:attr:`Unit.job`) in this process and return ``{"kind", "trained"}``
    or ``{"kind", "runs"}`` (entries written) and ``"seconds"``. Writes the model or run cache
    (atomically); a unit whose entries exist writes nothing."""
    start = time.perf_counter()
    out = _execute(job, context.enter())
    return {**out, "seconds": time.perf_counter() - start}


def _execute(job: tuple, device) -> dict:
    kind = job[0]
    if kind == "train":
        _, r, digest, _ = job
        entries: list[dict] = []
        with keys_only(train=digest, record=entries):
            r.build(device=device)
        asked = [e for e in entries if e["hash"] == digest]
        if not asked:
            raise RuntimeError(f"{r.label} does not train the model entry {digest}")
        return {"kind": kind, "trained": int(not asked[0]["hit"])}
    if kind == "run":
        _, r, method, point, c = job
        problem = _trained(r, device)
        row = harness.run_method(problem, method, point, profile=c.profile, device=device,
                                 retain_eval=c.retain_eval, budget=c.budget(method))
        return {"kind": kind, "runs": int(not row["cache_hit"])}
    if kind == "picks":
        _, tuning_spec, target_spec, method, rules, c = job
        tuning = _trained(tuning_spec, device)
        target = tuning if target_spec is tuning_spec else _trained(target_spec, device)
        rows = harness.tuning_rows(tuning, method, grid=c.grid, profile=c.profile, device=device,
                                   retain_eval=c.retain_eval, base=c.base, budget=c.budget(method))
        done = [harness.run_method(target, method, harness.picked_settings(rows, rule), profile=c.profile,
                                   device=device, retain_eval=c.retain_eval, budget=c.budget(method))
                for rule in rules]
        return {"kind": kind, "runs": sum(not d["cache_hit"] for d in done)}
    raise ValueError(f"unknown unit kind {kind!r}; allowed: {KINDS}")


KEEP_PROBLEMS = 2
"""Problems a process (a Ray worker) keeps after a run or picks unit built them, for the next
unit on the same problem: the tuning and the target problem of a picks unit."""
_BUILT: OrderedDict[str, harness.Problem] = OrderedDict()


def _problem_key(r: ProblemSpec, device) -> str:
    """What decides a built problem: its spec, the device and the cache it reads its models from."""
    return json.dumps({"spec": repr(r), "device": str(device), "cache": str(cache_root())}, sort_keys=True)


def _trained(r: ProblemSpec, device) -> harness.Problem:
    """The problem of ``r`` with every model read from the cache (a run unit's trainings are its
    dependencies); raises naming the missing models instead of training them here. The last
    :data:`KEEP_PROBLEMS` problems built in this process are kept and returned again (their
    models are read-only: a run unlearns a copy of the original)."""
    key = _problem_key(r, device)
    if key in _BUILT:
        _BUILT.move_to_end(key)
        return _BUILT[key]
    entries: list[dict] = []
    with keys_only(record=entries):
        problem = r.build(device=device)
    missing = [_train_label(e["key"]) for e in entries if not e["hit"]]
    if missing:
        raise RuntimeError(f"{r.label}: models not trained yet: {missing}; their train units come first")
    _BUILT[key] = problem
    while len(_BUILT) > KEEP_PROBLEMS:
        _BUILT.popitem(last=False)
    return problem


def execute_all(units: Sequence[Unit], context: Context, *, report: Callable[[str], None] = print) -> list[dict]:
    """Every missing unit of ``units``, in turn, in this process (the single-process baseline)."""
    out = []
    todo = [u for u in units if not u.cached]
    for i, u in enumerate(todo, 1):
        out.append(execute(u.job, context))
        report(f"[warm] {i}/{len(todo)} done: {u.label}")
    return out


def without_cached(units: Sequence[Unit]) -> list[Unit]:
    """The units still to do, each with the dependencies that are still to do."""
    todo = {u.id for u in units if not u.cached}
    return [replace(u, deps=tuple(d for d in u.deps if d in todo)) for u in units if u.id in todo]

