"""Chapter 4 experiments: every registered unlearning method on the same three tasks.

* :func:`profile_config`: the grid at one profile (frozen :class:`Ch4Config`): the tasks are
  chapter 3's CIFAR-10 scenarios (full class, random 10 %) and chapter 2's face task (CK+48,
  forget whole identities), imported from those chapters so the models are shared cache entries.
* :func:`task_problem`: one task's split with its original and retrained models (both cached).
* :func:`run_methods`: Original, Retrain and every method on one problem; every metric of
  :func:`unlearnkit.metrics.evaluate_split`, Avg. Gap to retrain and time / retrain time.
* :func:`combination_runs`: chapter 1's selective removal as the front end of MU-Mis and DLFD:
  unlearn only the most "unwanted-distribution-like" part of the forget set.
* :func:`aggregate`, :func:`time_ratios`, :func:`mia_rankings`, :func:`mia_rank_agreement`,
  :func:`which_method_when`: the tables and the guide, computed from the runs.
* :func:`chapter_finding` and :func:`beats`: the inputs of the consistency scorecard rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn
from tqdm import tqdm

from ..config import build_config, check_choice, check_profile, check_range
from ..data import Split, replace_split
from ..methods import available_methods, get_method, unlearn
from ..metrics import accuracy, evaluate_split
from ..selection import SCORERS, removal_mask, score
from . import ch2, ch3
from .ch1 import extract_features
from .tasks import ImageTask, train_original, train_retrained

TASK_KEYS = ("full_class", "random_subset", "identity")
TASK_LABELS = {"full_class": "CIFAR-10 full class", "random_subset": "CIFAR-10 random 10%",
               "identity": "faces, identity"}
LABELS = {"original": "Original", "retrain": "Retrain", "finetune": "FT", "neggrad": "NegGrad",
          "neggrad_plus": "NegGrad+", "random_labels": "RL", "salun": "SalUn", "l1_sparse": "ℓ1-sparse",
          "scrub": "SCRUB", "bad_teacher": "Bad Teacher", "unsir": "UNSIR", "cf_k": "CF-k", "eu_k": "EU-k",
          "dlfd": "DLFD", "dlfd_released": "DLFD-released", "mumis": "MU-Mis"}
MIA_VARIANTS = ("mia_loss_logreg", "mia_efficacy_svc", "mia_entropy_logreg")
METRICS = ("RA", "FA", "TA", "FTA", *MIA_VARIANTS, "forgetting_score", "nomus", "avg_gap", "seconds",
           "retrain_seconds", "time_ratio")
PASS_FIELDS = ("epochs", "impair_epochs", "repair_epochs", "max_steps")
"""Hyperparameters counting passes over the data; the one-pass budget caps them at 1."""
SMOKE_METHODS = ("retrain", "finetune", "neggrad", "dlfd", "mumis")
SMOKE_SETTINGS = {"dlfd": {"perturbation_steps": 1, "batch_size": 32}}
"""At ``smoke`` DLFD takes one perturbation step on larger batches: the code path, in seconds."""
FACE_SOURCE = {"smoke": "synthetic-faces", "cpu": "ckplus", "paper": "ckplus"}


def label(method: str) -> str:
    """The display name of a registry name (the name itself when unknown)."""
    return LABELS.get(method, method)


# ---------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TaskSpec:
    """One task of the grid: key (``full_class`` | ``random_subset`` | ``identity``), the image
    task (data, model, training recipe), ``make_split`` scenario and arguments, and the
    hyperparameters per method on this task beyond the registry's profile defaults."""

    key: str
    task: ImageTask
    scenario: str
    kwargs: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ch4Config:
    """Everything chapter 4 runs at one profile.

    tasks: the three tasks. methods: registry names (``retrain`` uses the cached retrained
    model). seeds: repetitions (forget set, retrained model and method seed; one original per
    task). one_pass: every method that reads the retain set gets at most one pass over it.
    retain_eval: retain samples scored for RA and the attacks (None: all).
    combo_*: the selective-removal front end: tasks, methods, scorers (chapter 1's) choosing the
    forget subset, and the fraction of the forget set they hand on; the scorers after the first
    are controls (RANDOM), run for ``combo_control_methods`` only. guide_slack: accuracy points
    above the lowest Avg. Gap within which the guide looks for the cheapest method.
    """

    profile: str
    tasks: tuple[TaskSpec, ...]
    methods: tuple[str, ...]
    seeds: int
    one_pass: bool
    retain_eval: int | None
    combo_tasks: tuple[str, ...]
    combo_methods: tuple[str, ...]
    combo_scorers: tuple[str, ...]
    combo_control_methods: tuple[str, ...]
    combo_budget: float
    guide_slack: float

    def __post_init__(self):
        check_profile(self.profile)
        check_range("seeds", self.seeds, 1)
        check_range("combo_budget", self.combo_budget, 0, 1, low_open=True, high_open=True)
        check_range("guide_slack", self.guide_slack, 0)
        if self.retain_eval is not None:
            check_range("retain_eval", self.retain_eval, 2)
        for name in self.methods:
            get_method(name)
        if "retrain" not in self.methods:
            raise ValueError(f"methods must include 'retrain' (every gap is measured to it); got {self.methods}")
        keys = [t.key for t in self.tasks]
        for key in keys:
            check_choice("task", key, TASK_KEYS)
        for key in self.combo_tasks:
            check_choice("combo task", key, keys)
        for name in self.combo_methods:
            check_choice("combo method", name, self.methods)
        for name in self.combo_control_methods:
            check_choice("combo control method", name, self.combo_methods)
        for name in self.combo_scorers:
            check_choice("combo scorer", name, tuple(SCORERS))
        for spec in self.tasks:
            for method, values in spec.overrides.items():
                get_method(method).config.for_profile(self.profile, values)  # validates every override

    def task(self, key: str) -> TaskSpec:
        """The task ``key``."""
        check_choice("task", key, tuple(t.key for t in self.tasks))
        return next(t for t in self.tasks if t.key == key)

    def overrides(self, key: str, method: str) -> dict:
        """Hyperparameters of ``method`` on task ``key`` beyond the registry's profile defaults."""
        return dict(self.task(key).overrides.get(method, {}))


def one_pass_overrides(methods, profile: str) -> dict[str, dict]:
    """``{method: {field: min(default, 1)}}`` for every pass-counting field (:data:`PASS_FIELDS`)
    of the methods that read the retain set (Retrain excluded): at most one pass over it."""
    out = {}
    for name in methods:
        spec = get_method(name)
        if not spec.needs_retain or spec.uses_fit:
            continue
        defaults = spec.config.defaults(profile)
        capped = {f: min(defaults[f], 1) for f in PASS_FIELDS if f in defaults}
        if capped:
            out[name] = capped
    return out


def merge_overrides(*tables: dict) -> dict[str, dict]:
    """Merge ``{method: {hp: value}}`` tables, later tables winning per hyperparameter."""
    out: dict[str, dict] = {}
    for table in tables:
        for method, values in table.items():
            out[method] = {**out.get(method, {}), **values}
    return out


def face_batch_overrides(cfg2: ch2.Ch2Config, methods) -> dict[str, dict]:
    """Chapter 2's face batch size for every retain-reading method with a ``batch_size``.

    Chapter 2 sets one batch size for its baselines on faces (a few hundred retain images);
    the same size goes to the retain-reading methods it does not run, so all share one budget.
    Empty when chapter 2 sets none or several.
    """
    sizes = {v["batch_size"] for v in cfg2.method_overrides.values() if "batch_size" in v}
    if len(sizes) != 1:
        return {}
    size = sizes.pop()
    return {m: {"batch_size": size} for m in methods
            if get_method(m).needs_retain and "batch_size" in get_method(m).config.defaults(cfg2.profile)}


def _task_specs(profile: str, methods, one_pass: bool, root=None) -> tuple[TaskSpec, ...]:
    """Chapter 3's CIFAR-10 scenarios and chapter 2's face task, with their method settings:
    DLFD's from chapter 2, MU-Mis's from chapter 3, the one-pass cap for the rest."""
    cfg3 = ch3.profile_config(profile)
    cfg2 = ch2.profile_config(profile, root=root, face_source=FACE_SOURCE[profile])
    cap = one_pass_overrides(methods, profile) if one_pass else {}
    mumis = {"mumis": cfg3.method_overrides.get("mumis", {})}
    smoke = SMOKE_SETTINGS if profile == "smoke" else {}

    def keep(table: dict) -> dict:
        return {m: v for m, v in table.items() if m in methods}

    specs = []
    for spec in cfg3.scenarios:
        if spec.key in ("full_class", "random_subset"):
            table = keep(merge_overrides(cap, cfg2.cifar_overrides, cfg3.method_overrides, smoke))
            specs.append(TaskSpec(spec.key, spec.task, spec.scenario, dict(spec.kwargs), table))
    face = keep(merge_overrides(cap, face_batch_overrides(cfg2, methods), cfg2.method_overrides, mumis, smoke))
    specs.append(TaskSpec("identity", cfg2.face_task, "identity",
                          {"forget_subject_fraction": cfg2.forget_subject_fraction}, face))
    return tuple(specs)


PROFILE_DEFAULTS = {
    "smoke": dict(seeds=1, one_pass=True, retain_eval=None, combo_tasks=("full_class", "identity"),
                  combo_methods=("mumis", "dlfd"), combo_control_methods=()),
    "cpu": dict(seeds=3, one_pass=True, retain_eval=1000, combo_tasks=("full_class", "identity"),
                combo_methods=("mumis", "dlfd"), combo_control_methods=("mumis",)),
    "paper": dict(seeds=3, one_pass=False, retain_eval=None, combo_tasks=("full_class", "identity"),
                  combo_methods=("mumis", "dlfd"), combo_control_methods=("mumis", "dlfd")),
}
"""``combo_control_methods``: the front-end methods also run with a random part of the forget
set (the RANDOM scorer, the paper's baseline); at ``cpu`` only MU-Mis, whose runs cost seconds
(a DLFD run costs a pass over the retain set whatever part of the forget set it sees)."""


def profile_config(profile: str, *, root=None, combo_scorer: str = "LR-MAHA", combo_budget: float = 0.5,
                   guide_slack: float = 1.0, **overrides) -> Ch4Config:
    """The validated chapter-4 config of ``profile``.

    combo_scorer: chapter 1's scorer choosing the front end's part of the forget set (the
    RANDOM scorer runs beside it as the control where the profile asks for it); combo_budget:
    the fraction of the forget set handed on; guide_slack: see :class:`Ch4Config`.
    ``overrides`` replace fields by name (``methods``, ``seeds``, ...); unknown names, wrong
    types and out-of-range values raise before any work.
    """
    check_profile(profile)
    check_choice("combo_scorer", combo_scorer, tuple(SCORERS))
    values = dict(PROFILE_DEFAULTS[profile])
    control = ("RANDOM",) if values["combo_control_methods"] and combo_scorer != "RANDOM" else ()
    values.update(profile=profile, combo_scorers=(combo_scorer, *control), combo_budget=combo_budget,
                  guide_slack=guide_slack, methods=SMOKE_METHODS if profile == "smoke" else available_methods())
    values.update(overrides)
    if "tasks" not in overrides:
        methods = tuple(values["methods"])
        for name in methods:
            get_method(name)
        values["tasks"] = _task_specs(profile, methods, bool(values["one_pass"]), root)
    return build_config(Ch4Config, values)


def budget_table(cfg: Ch4Config) -> pd.DataFrame:
    """Per method: whether it reads the retain set and its settings on each task beyond the
    registry's profile defaults (empty: the defaults)."""
    rows = []
    for name in cfg.methods:
        row = {"method": label(name), "reads retain": get_method(name).needs_retain}
        for spec in cfg.tasks:
            values = spec.overrides.get(name, {})
            row[spec.key] = ", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


# ---------------------------------------------------------------------------- problems

@dataclass
class Problem:
    """One task at one seed: the split and its original and retrained models (eval mode).

    cache: ``[{"task", "seed", "role", "hit", "train_seconds", "dataset", "source"}]`` of the
    two models (from the model cache; ``source`` says where the data was read from).
    """

    key: str
    seed: int
    split: Split
    original: nn.Module
    retrained: nn.Module
    retrain_seconds: float
    cache: list[dict]


def task_problem(spec: TaskSpec, seed: int, *, original_seed: int, device, root=None,
                 progress: bool = False) -> Problem:
    """The split of ``seed``, the original of ``original_seed`` (trained on the whole pool, so
    one original serves every seed) and the retrained model of ``seed``, both cached."""
    split = spec.task.split(spec.scenario, seed=seed, root=root, **spec.kwargs)
    original, info_o = train_original(spec.task, seed=original_seed, device=device, root=root,
                                      num_classes=split.num_classes, progress=progress)
    retrained, info_r = train_retrained(spec.task, split, seed=seed, device=device, progress=progress)
    cache = [{"task": spec.key, "seed": seed, "role": role, "hit": bool(info["hit"]),
              "train_seconds": float(info["train_seconds"]), "dataset": spec.task.dataset,
              "source": split.info.get("source", spec.task.dataset)}
             for role, info in (("original", info_o), ("retrained", info_r))]
    return Problem(spec.key, seed, split, original.eval(), retrained.eval(), float(info_r["seconds_this_run"]), cache)


# ---------------------------------------------------------------------------- measurements

def measure(model: nn.Module, split: Split, *, seed: int, device, retain_eval: int | None) -> dict:
    """Every metric of :func:`evaluate_split`; accuracies in % (FTA NaN without forget_test)."""
    m = evaluate_split(model, split, device=device, seed=seed, retain_sample=retain_eval)
    return {"RA": 100 * m["RA"], "FA": 100 * m["FA"], "TA": 100 * m["TA"], "FTA": 100 * m.get("FTA", math.nan),
            **{k: m[k] for k in (*MIA_VARIANTS, "forgetting_score", "nomus")}}


def add_gap_and_ratio(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``avg_gap`` = mean(|ΔRA|, |ΔFA|, |ΔTA|) (points) to the Retrain row of the same task
    and seed, and ``time_ratio`` = seconds / retrain_seconds."""
    keys = ["task", "seed"]
    reference = runs.loc[runs["method"] == "retrain", [*keys, "RA", "FA", "TA"]]
    joined = runs.merge(reference, on=keys, how="left", suffixes=("", "_retrain"))
    gap = sum((joined[m] - joined[f"{m}_retrain"]).abs() for m in ("RA", "FA", "TA")) / 3
    return runs.assign(avg_gap=gap.to_numpy(), time_ratio=runs["seconds"] / runs["retrain_seconds"])


def run_methods(cfg: Ch4Config, problem: Problem, *, device, progress: bool = False) -> pd.DataFrame:
    """One row per model on ``problem``: Original, then every method of ``cfg.methods``.

    Columns: task, seed, method, label, reads_retain, RA / FA / TA / FTA (%), the three MIA
    variants, forgetting_score, nomus, seconds (the method's wall time; Retrain: the cached
    model's training time; Original: NaN), retrain_seconds. Gap and ratio: :func:`add_gap_and_ratio`.
    """
    split, seed = problem.split, problem.seed

    def row(method: str, model: nn.Module, seconds: float, reads_retain) -> dict:
        return {"task": problem.key, "seed": seed, "method": method, "label": label(method),
                "reads_retain": reads_retain, **measure(model, split, seed=seed, device=device,
                                                        retain_eval=cfg.retain_eval),
                "seconds": seconds, "retrain_seconds": problem.retrain_seconds}

    rows = [row("original", problem.original, math.nan, None)]
    for name in tqdm(cfg.methods, desc=f"{problem.key} seed {seed}", disable=not progress, leave=False):
        if name == "retrain":
            model, seconds = problem.retrained, problem.retrain_seconds
        else:
            result = unlearn(name, problem.original, split, profile=cfg.profile, device=str(device), seed=seed,
                             **cfg.overrides(problem.key, name))
            model, seconds = result.model, result.seconds
        rows.append(row(name, model, seconds, get_method(name).needs_retain))
    return pd.DataFrame(rows)


def selected_part(features: dict[str, torch.Tensor], scorer: str, budget: float, seed: int) -> torch.Tensor:
    """Bool mask ``[N_f]`` of the forget samples chapter 1's ``scorer`` deletes first at ``budget``.

    features: ``{"forget": [N_f, D], "retain": [N_r, D]}`` (the original model's penultimate
    features); the forget set plays the unwanted sample S1, the retain set the retained S2.
    """
    scores = score(scorer, features["forget"], features["retain"], seed=seed)
    return ~removal_mask(scores, budget)


def front_end_name(cfg: Ch4Config, scorer: str) -> str:
    """``selected`` for the chapter's scorer, ``random`` for the RANDOM control, else the name."""
    if scorer == cfg.combo_scorers[0]:
        return "selected"
    return "random" if scorer == "RANDOM" else scorer


def combination_runs(cfg: Ch4Config, problem: Problem, *, device) -> pd.DataFrame:
    """Each of ``cfg.combo_methods`` handed only the part of the forget set that each scorer of
    ``cfg.combo_scorers`` selects (``cfg.combo_budget`` of it), evaluated on the whole split.

    Rows: task, seed, method, front_end (``selected`` for the first scorer, ``random`` for the
    RANDOM control, else the scorer's name), scorer, forget_size, seconds, every metric of
    :func:`measure`, FA_selected / FA_rest (% on the handed-on part and on the part left out).
    """
    split, seed = problem.split, problem.seed
    features = {part: extract_features(problem.original, getattr(split, part), device=device)
                for part in ("forget", "retain")}
    rows = []
    for scorer in cfg.combo_scorers:
        chosen = selected_part(features, scorer, cfg.combo_budget, seed)
        sub = replace_split(split, forget=split.forget.subset(chosen))
        methods = cfg.combo_methods if scorer == cfg.combo_scorers[0] else cfg.combo_control_methods
        for name in methods:
            result = unlearn(name, problem.original, sub, profile=cfg.profile, device=str(device), seed=seed,
                             **cfg.overrides(problem.key, name))
            rows.append({"task": problem.key, "seed": seed, "method": name,
                         "front_end": front_end_name(cfg, scorer), "scorer": scorer,
                         "forget_size": int(chosen.sum()), "seconds": result.seconds,
                         **measure(result.model, split, seed=seed, device=device, retain_eval=cfg.retain_eval),
                         "FA_selected": 100 * accuracy(result.model, split.forget.subset(chosen), device=device),
                         "FA_rest": 100 * accuracy(result.model, split.forget.subset(~chosen), device=device),
                         "retrain_seconds": problem.retrain_seconds})
    return pd.DataFrame(rows)


def run_all(cfg: Ch4Config, seeds, *, original_seed: int, device, root=None,
            progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The whole grid: ``(runs, combos, cache)`` over every task × seed (one problem at a time,
    so at most one split and its models are held in memory)."""
    runs, combos, cache = [], [], []
    jobs = [(spec, s) for spec in cfg.tasks for s in seeds]
    for spec, s in tqdm(jobs, desc="tasks × seeds", disable=not progress):
        problem = task_problem(spec, s, original_seed=original_seed, device=device, root=root, progress=progress)
        cache.extend(problem.cache)
        runs.append(run_methods(cfg, problem, device=device, progress=progress))
        if spec.key in cfg.combo_tasks:
            combos.append(combination_runs(cfg, problem, device=device))
    runs = add_gap_and_ratio(pd.concat(runs, ignore_index=True))
    combos = pd.concat(combos, ignore_index=True) if combos else pd.DataFrame()
    return runs, combos, pd.DataFrame(cache)


# ---------------------------------------------------------------------------- tables

def _spread(frame: pd.DataFrame) -> int:
    return 1 if frame["seed"].nunique() > 1 else 0


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per task × method (order kept), as ``col`` and
    ``col_std``, with ``label``, ``reads_retain`` and ``seeds`` (the number of seeds)."""
    cols = [c for c in METRICS if c in runs]
    grouped = runs.groupby(["task", "method"], sort=False)
    out = grouped[cols].mean().join(grouped[cols].std(ddof=_spread(runs)).add_suffix("_std"))
    out = out.join(grouped["seed"].nunique().rename("seeds"))
    out = out.join(grouped[["label", "reads_retain"]].first()).reset_index()
    return out


def display_table(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """``mean ± std`` strings of one task's rows (for the book); MIA and scores to 3 digits."""
    part = summary[summary["task"] == task]
    table = pd.DataFrame({"method": part["label"],
                          "reads retain": part["reads_retain"].map({True: "yes", False: "no"}).fillna("–")})
    digits = {"RA": 1, "FA": 1, "TA": 1, "FTA": 1, "mia_loss_logreg": 3, "mia_efficacy_svc": 3,
              "mia_entropy_logreg": 3, "forgetting_score": 3, "nomus": 3, "avg_gap": 2, "seconds": 1,
              "time_ratio": 3}
    for col, d in digits.items():
        if col not in part or part[col].isna().all():
            continue
        table[col] = [("–" if math.isnan(m) else f"{m:.{d}f} ± {s:.{d}f}") for m, s in zip(part[col], part[f"{col}_std"])]
    names = {"avg_gap": "Avg. Gap", "seconds": "time (s)", "time_ratio": "time / retrain",
             "forgetting_score": "FS", "nomus": "NoMUS"}
    return table.rename(columns=names).set_index("method")


def time_ratios(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ``seconds`` and ``retrain_seconds`` over seeds per task × method (methods only:
    Original and Retrain left out); ``task`` keys as in :data:`TASK_KEYS`."""
    part = runs[~runs["method"].isin(("original", "retrain"))]
    out = part.groupby(["task", "method"], sort=False)[["seconds", "retrain_seconds"]].mean().reset_index()
    return out.assign(ratio=out["seconds"] / out["retrain_seconds"])


def combination_table(runs: pd.DataFrame, combos: pd.DataFrame) -> pd.DataFrame:
    """The front-end runs next to the same methods' full-forget-set runs (``front_end="full"``),
    with Avg. Gap to the retrained model of the same task and seed (points)."""
    full = runs[runs["method"].isin(combos["method"].unique()) & runs["task"].isin(combos["task"].unique())]
    full = full.assign(front_end="full", scorer="none", forget_size=np.nan)
    frame = pd.concat([full[[c for c in combos.columns if c in full]], combos], ignore_index=True)
    reference = runs.loc[runs["method"] == "retrain", ["task", "seed", "RA", "FA", "TA"]]
    joined = frame.merge(reference, on=["task", "seed"], how="left", suffixes=("", "_retrain"))
    gap = sum((joined[m] - joined[f"{m}_retrain"]).abs() for m in ("RA", "FA", "TA")) / 3
    return frame.assign(avg_gap=gap.to_numpy(), label=frame["method"].map(label))


def combination_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per task × method × front end of the columns the chapter discusses."""
    cols = [c for c in ("forget_size", "FA", "FTA", "FA_rest", "TA", "forgetting_score", "nomus", "avg_gap",
                        "seconds") if c in table]
    return table.groupby(["task", "method", "front_end"], sort=False)[cols].mean()


# ---------------------------------------------------------------------------- MIA disagreement

MIA_CONVENTIONS = {"mia_loss_logreg": ("forgetting_score", False),
                   "mia_efficacy_svc": ("mia_efficacy_svc", True),
                   "mia_entropy_logreg": ("mia_entropy_logreg", False)}
"""How each paper reads its attack: (column, higher = more forgetting). DLFD reads the loss
attack through FS = 2·|MIA − 0.5| (lower is better), SalUn's efficacy is the share of forget
samples called non-members (higher is better), the entropy attack's share called members is
read as lower is better."""


def mia_rankings(summary: pd.DataFrame, task: str, convention: str = "paper") -> pd.DataFrame:
    """Rank of every model of ``task`` under each MIA variant (1 = most forgetting).

    convention ``paper``: each variant read as its paper does (:data:`MIA_CONVENTIONS`);
    ``retrain``: by closeness of the variant's value to the retrained model's (1 = closest).
    Ties share the mean rank. Rows: method labels; columns: the variants.
    """
    check_choice("convention", convention, ("paper", "retrain"))
    part = summary[summary["task"] == task].set_index("label")
    ranks = {}
    for variant, (col, higher) in MIA_CONVENTIONS.items():
        if convention == "paper":
            values = part[col]
            ranks[variant] = values.rank(ascending=not higher, method="average")
        else:
            target = part.loc[part["method"] == "retrain", variant].iloc[0]
            ranks[variant] = (part[variant] - target).abs().rank(method="average")
    return pd.DataFrame(ranks)


def mia_rank_agreement(summary: pd.DataFrame) -> pd.DataFrame:
    """Spearman ρ between the rankings of every pair of MIA variants, per task and convention.

    Rows: task, convention, pair (``a vs b``), rho (NaN when a ranking is constant), models.
    """
    rows = []
    for task in summary["task"].unique():
        for convention in ("paper", "retrain"):
            ranks = mia_rankings(summary, task, convention)
            for i, a in enumerate(MIA_VARIANTS):
                for b in MIA_VARIANTS[i + 1:]:
                    rho = (spearmanr(ranks[a], ranks[b]).statistic
                           if ranks[a].nunique() > 1 and ranks[b].nunique() > 1 else math.nan)
                    rows.append({"task": task, "convention": convention, "pair": f"{a} vs {b}",
                                 "rho": float(rho), "models": len(ranks)})
    return pd.DataFrame(rows)


def top_disagreement(summary: pd.DataFrame, task: str) -> dict:
    """The model whose rank differs most between two variants (paper convention) on ``task``."""
    ranks = mia_rankings(summary, task, "paper")
    spread = ranks.max(axis=1) - ranks.min(axis=1)
    model = spread.idxmax()
    return {"model": model, "spread": float(spread[model]), "best_variant": ranks.loc[model].idxmin(),
            "best_rank": float(ranks.loc[model].min()), "worst_variant": ranks.loc[model].idxmax(),
            "worst_rank": float(ranks.loc[model].max()), "models": len(ranks)}


# ---------------------------------------------------------------------------- the guide

def _methods_only(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    return summary[(summary["task"] == task) & ~summary["method"].isin(("original", "retrain"))].set_index("method")


def which_method_when(summary: pd.DataFrame, slack: float) -> pd.DataFrame:
    """Per task, the method each question picks from the measured means (no opinion involved).

    Questions: ``closest`` (lowest Avg. Gap), ``retain_free`` (lowest gap among methods that
    never read the retain set), ``cheapest`` (least wall time among methods within ``slack``
    points of the lowest gap), ``nomus`` (highest NoMUS), ``fastest`` (least wall time).
    Rows: task, question, method, label, avg_gap, time_ratio, nomus.
    """
    rows = []
    for task in summary["task"].unique():
        part = _methods_only(summary, task)
        free = part[part["reads_retain"] == False]  # noqa: E712 (a column of booleans)
        picks = {"closest": part["avg_gap"].idxmin(),
                 "retain_free": free["avg_gap"].idxmin() if len(free) else None,
                 "cheapest": part.loc[part["avg_gap"] <= part["avg_gap"].min() + slack, "seconds"].idxmin(),
                 "nomus": part["nomus"].idxmax(),
                 "fastest": part["seconds"].idxmin()}
        for question, method in picks.items():
            if method is None:
                continue
            r = part.loc[method]
            rows.append({"task": task, "question": question, "method": method, "label": r["label"],
                         "avg_gap": r["avg_gap"], "time_ratio": r["time_ratio"], "nomus": r["nomus"]})
    return pd.DataFrame(rows)


QUESTIONS = {"closest": "to come closest to retraining (lowest Avg. Gap)",
             "retain_free": "when the retain set cannot be read",
             "cheapest": "for the least time within {slack:g} points of the lowest gap",
             "nomus": "for the best privacy–utility score (highest NoMUS)",
             "fastest": "for the least time, whatever the quality"}


def guide_sentences(guide: pd.DataFrame, slack: float) -> list[str]:
    """One sentence per task and question, built from :func:`which_method_when`'s rows."""
    out = []
    for _, r in guide.iterrows():
        question = QUESTIONS[r["question"]].format(slack=slack)
        out.append(f"On {TASK_LABELS.get(r['task'], r['task'])}, {question}: **{r['label']}** "
                   f"(Avg. Gap {r['avg_gap']:.2f} points, {100 * r['time_ratio']:.1f}% of retraining time, "
                   f"NoMUS {r['nomus']:.3f}).")
    return out


def consistent_picks(guide: pd.DataFrame, slack: float) -> list[str]:
    """Per question, a sentence saying which method every task picks, or that they differ."""
    out = []
    for question, part in guide.groupby("question", sort=False):
        labels = list(dict.fromkeys(part["label"]))
        text = QUESTIONS[question].format(slack=slack)
        if len(labels) == 1:
            out.append(f"{text}, every task picks **{labels[0]}**.")
        else:
            out.append(f"{text}, the tasks differ ({', '.join(labels)}): the choice depends on the task.")
    return [s[0].upper() + s[1:] for s in out]


# ---------------------------------------------------------------------------- scorecard inputs

def beats(summary: pd.DataFrame, task: str, method: str, rivals, metric: str, *, higher_is_better: bool) -> dict:
    """Whether ``method``'s mean ``metric`` on ``task`` beats every rival present, and its rank.

    Returns ``{"beats", "rank", "of", "best_rival", "value", "best_rival_value"}`` (rank 1 = best
    among ``method`` and the rivals).
    """
    part = summary[summary["task"] == task].set_index("method")[metric]
    rivals = [r for r in rivals if r in part.index and r != method]
    if method not in part.index or not rivals:
        raise ValueError(f"{method!r} or its rivals {rivals} missing from the {task!r} rows {list(part.index)}")
    values = part[[method, *rivals]]
    best_rival = (values[rivals].idxmax() if higher_is_better else values[rivals].idxmin())
    rank = int(values.rank(ascending=not higher_is_better, method="min")[method])
    better = values[method] > values[best_rival] if higher_is_better else values[method] < values[best_rival]
    return {"beats": bool(better), "rank": rank, "of": len(values), "best_rival": label(best_rival),
            "value": float(values[method]), "best_rival_value": float(values[best_rival])}


def remaining_fraction(after: float, before: float) -> float:
    """``after / before``: the share of an accuracy left after unlearning. With ``before = 0``
    there was nothing to forget: 0 when ``after`` is 0 too, else 1 (no reduction)."""
    if before > 0:
        return after / before
    return 0.0 if after <= 0 else 1.0


def sibling_results(results_path: str, stem: str) -> dict | None:
    """The results JSON ``<dir>/<stem>.json`` beside ``results_path`` (None when absent)."""
    if not results_path:
        return None
    path = Path(results_path).with_name(f"{stem}.json")
    return json.loads(path.read_text()) if path.is_file() else None


def chapter_finding(results: dict | None, profile: str, chapter: int) -> tuple[bool, str]:
    """What chapter 2 or 3 found, and where that came from.

    Chapter 2: DLFD's NoMUS beats every chapter-2 baseline on faces (its scorecard row
    ``dlfd_beats_baselines``). Chapter 3: MU-Mis's Avg. Gap on the full-class task is below the
    best baseline's (its values ``full_class_mumis_gap`` and ``full_class_best_baseline_gap``).
    Without a results file of the same profile, the paper's claim (True for both) is used.
    """
    check_choice("chapter", chapter, (2, 3))
    if results is not None and results.get("profile") == profile:
        if chapter == 2:
            row = next((r for r in results.get("scorecard", []) if r["id"] == "dlfd_beats_baselines"), None)
            if row is not None and isinstance(row["ours"], bool):
                return row["ours"], f"chapter 2's {profile} run"
        else:
            values = results.get("values", {})
            if "full_class_mumis_gap" in values and "full_class_best_baseline_gap" in values:
                return (values["full_class_mumis_gap"] < values["full_class_best_baseline_gap"],
                        f"chapter 3's {profile} run")
    return True, "the paper's claim (no chapter results of this profile found)"


def plain_settings(cfg: Ch4Config) -> dict:
    """The config as plain data for results.json (tasks by key, scenario and overrides)."""
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "tasks"}
    out["tasks"] = {t.key: {"dataset": t.task.dataset, "model": t.task.model, "scenario": t.scenario,
                            "kwargs": t.kwargs, "overrides": t.overrides} for t in cfg.tasks}
    return out


# ---------------------------------------------------------------------------- figures

def _palette(methods) -> dict[str, tuple]:
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab20").colors
    return {m: colors[i % len(colors)] for i, m in enumerate(methods)}


def _panels(n: int, width: float = 5.2, height: float = 4.2):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def plot_utility_forgetting(summary: pd.DataFrame):
    """Per task: test accuracy against forget accuracy (mean ± std over seeds) of every model;
    Retrain is the star (the target), Original the grey cross; triangles never read the retain set."""
    tasks = list(summary["task"].unique())
    colors = _palette(summary["method"].unique())
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks):
        part = summary[summary["task"] == task]
        for _, r in part.iterrows():
            style = {"retrain": ("*", 16, "k"), "original": ("X", 10, "grey")}.get(
                r["method"], ("o" if r["reads_retain"] else "^", 7, colors[r["method"]]))
            ax.errorbar(r["FA"], r["TA"], xerr=r["FA_std"], yerr=r["TA_std"], fmt=style[0], ms=style[1],
                        color=style[2], ecolor="lightgrey", capsize=2, zorder=3 if r["method"] == "retrain" else 2)
            ax.annotate(r["label"], (r["FA"], r["TA"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
        target = part[part["method"] == "retrain"].iloc[0]
        ax.axvline(target["FA"], color="k", ls=":", lw=0.8)
        ax.axhline(target["TA"], color="k", ls=":", lw=0.8)
        ax.set(xlabel="forget accuracy FA (%)", ylabel="test accuracy TA (%)", title=TASK_LABELS.get(task, task))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_quality_time(summary: pd.DataFrame):
    """Per task: Avg. Gap to Retrain (points) against time / retrain time (log), mean ± std."""
    from matplotlib.ticker import NullFormatter

    tasks = list(summary["task"].unique())
    colors = _palette(summary["method"].unique())
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks):
        part = summary[(summary["task"] == task) & (summary["method"] != "original")]
        for _, r in part.iterrows():
            marker = "*" if r["method"] == "retrain" else ("o" if r["reads_retain"] else "^")
            ax.errorbar(r["time_ratio"], r["avg_gap"], yerr=r["avg_gap_std"], fmt=marker,
                        ms=14 if marker == "*" else 7, color="k" if marker == "*" else colors[r["method"]],
                        ecolor="lightgrey", capsize=2)
            ax.annotate(r["label"], (r["time_ratio"], r["avg_gap"]), textcoords="offset points", xytext=(4, 3),
                        fontsize=7)
        ax.set(xscale="log", xlabel="wall time / retrain time (log)", ylabel="Avg. Gap to Retrain (points)",
               title=TASK_LABELS.get(task, task))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_mia_ranks(summary: pd.DataFrame):
    """Per task: every model's rank under each MIA variant (paper conventions, 1 = most
    forgetting), one line per model: crossing lines are disagreements."""
    tasks = list(summary["task"].unique())
    colors = _palette(summary["method"].unique())
    fig, axes = _panels(len(tasks), width=4.6, height=4.8)
    short = {"mia_loss_logreg": "loss-LR\n(FS)", "mia_efficacy_svc": "conf-SVC\n(efficacy)",
             "mia_entropy_logreg": "entropy-LR\n(members)"}
    for ax, task in zip(axes, tasks):
        ranks = mia_rankings(summary, task, "paper")
        methods = summary[summary["task"] == task].set_index("label")["method"]
        for name, r in ranks.iterrows():
            ax.plot(range(len(MIA_VARIANTS)), r[list(MIA_VARIANTS)], "o-", color=colors[methods[name]], lw=1.2)
            ax.annotate(name, (0, r[MIA_VARIANTS[0]]), textcoords="offset points", xytext=(-6, 0), ha="right",
                        va="center", fontsize=7)
        ax.set_xticks(range(len(MIA_VARIANTS)), [short[v] for v in MIA_VARIANTS], fontsize=8)
        ax.set_xlim(-0.9, len(MIA_VARIANTS) - 0.8)
        ax.invert_yaxis()
        ax.set(ylabel="rank (1 = most forgetting)", title=TASK_LABELS.get(task, task))
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_combination(table: pd.DataFrame):
    """Per task: forget accuracy on the whole forget set and wall time of each front-end method
    with the full forget set and with the part each scorer selected (mean, bars: std)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    tasks = list(table["task"].unique())
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.2 * len(tasks), 6.4), squeeze=False)
    order = list(dict.fromkeys(table["front_end"]))
    for col, task in enumerate(tasks):
        part = table[table["task"] == task]
        for row, (y, ylabel) in enumerate((("FA", "forget accuracy, whole forget set (%)"),
                                           ("seconds", "wall time (s)"))):
            ax = axes[row][col]
            sns.barplot(data=part, x="label", y=y, hue="front_end", hue_order=order, errorbar="sd", ax=ax)
            ax.set(xlabel="", ylabel=ylabel, title=TASK_LABELS.get(task, task) if row == 0 else "")
            ax.legend(fontsize=7, title=None)
    fig.tight_layout()
    return fig
