"""Chapter 4 experiments: every registered unlearning method on the book's three problems.

* :func:`profile_config`: what the chapter runs at one profile (frozen :class:`Ch4Config`); the
  problems, seeds, budgets and tuning are the book's (:mod:`.tasks`, :mod:`.harness`), so every
  run that chapters 2 and 3 made is a cache hit here.
* :func:`combination_runs`: chapter 1's selective removal as the front end of MU-Mis and DLFD:
  unlearn only the most "unwanted-distribution-like" part of the forget set.
* :func:`variance_runs`: a 2×2×2 design (original seed × forget draw × method seed) for the
  variance decomposition (:func:`unlearnkit.experiments.harness.variance_components`).
* :func:`aggregate`, :func:`mia_rankings`, :func:`mia_rank_agreement`, :func:`which_method_when`:
  the tables and the guide, computed from the runs.
* :func:`beats`: the inputs of the scorecard rows (computed on this chapter's own runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from .. import dryrun
from ..config import (SMOKE_WHY, Change, build_config, change_rows, changes_for, check_choice, check_profile,
                      check_range, with_changes)
from ..data import replace_split
from ..methods import available_methods, get_method, unlearn
from ..metrics import accuracy, avg_gap
from ..selection import SCORERS, removal_mask, score
from ..train import penultimate_features
from .harness import Problem, budget_settings, means, measure, reference_metrics, run_method
from .options import chapter_methods
from .tasks import SCENARIOS, ProblemSpec, build
from .work import Work, comparison

TASK_LABELS = {"full_class": "CIFAR-10 full class", "random_subset": "CIFAR-10 random 10%",
               "identity": "faces, identity"}
MIA_VARIANTS = ("mia_loss_logreg", "mia_efficacy_svc", "mia_entropy_logreg")
METRICS = ("RA", "FA", "TA", "FTA", *MIA_VARIANTS,
           "forgetting_score", "nomus", "avg_gap", "seconds", "retrain_seconds", "time_fraction")
SMOKE_METHODS = ("retrain", "finetune", "neggrad", "dlfd", "mumis")


def label(method: str) -> str:
    """The display name of a registry name (``Original`` for the untouched model)."""
    return "Original" if method == "original" else get_method(method).label


# ---------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Ch4Config:
    """What chapter 4 runs at one profile, beyond the book's protocol (:func:`.tasks.protocol`).

    problems: keys of :data:`.tasks.SCENARIOS`. methods: registry names (Retrain is every
    problem's reference row). combo_*: the selective-removal front end: problems, methods,
    scorers (chapter 1's) choosing the forget subset, and the fraction of the forget set they
    hand on; the scorers after the first are controls (RANDOM), run for
    ``combo_control_methods`` only. guide_slack: Avg. Gap (fraction) above the lowest within
    which the guide looks for the cheapest method. variance_methods: the methods of the
    variance study (on the random subset, seeds 0 and 1 of each factor).
    """

    profile: str
    problems: tuple[str, ...]
    methods: tuple[str, ...]
    combo_problems: tuple[str, ...]
    combo_methods: tuple[str, ...]
    combo_scorers: tuple[str, ...]
    combo_control_methods: tuple[str, ...]
    combo_budget: float
    guide_slack: float
    variance_methods: tuple[str, ...]

    def __post_init__(self):
        check_profile(self.profile)
        check_range("combo_budget", self.combo_budget, 0, 1, low_open=True, high_open=True)
        check_range("guide_slack", self.guide_slack, 0)
        for name in self.methods:
            get_method(name)
        for key in self.problems:
            check_choice("problem", key, tuple(SCENARIOS))
        for key in self.combo_problems:
            check_choice("combo problem", key, self.problems)
        for name in (*self.combo_methods, *self.variance_methods):
            check_choice("combo / variance method", name, self.methods)
        for name in self.combo_control_methods:
            check_choice("combo control method", name, self.combo_methods)
        for name in self.combo_scorers:
            check_choice("combo scorer", name, tuple(SCORERS))


PAPER = dict(combo_problems=("full_class", "identity"), combo_methods=("mumis", "dlfd"),
             combo_control_methods=("mumis", "dlfd"), variance_methods=("finetune", "mumis"))
"""``combo_control_methods``: the front-end methods also run with a random part of the forget
set (the RANDOM scorer, the paper's baseline)."""

CHANGES: dict[str, dict[str, Change]] = {
    "paper": {},
    "cpu": {"combo_control_methods": Change(("mumis",), "the random-part control for MU-Mis only, whose runs "
                                                        "cost seconds; DLFD's control runs at paper")},
    "smoke": changes_for(SMOKE_WHY, combo_control_methods=(), variance_methods=("finetune",)),
}
"""Each profile as its differences from :data:`PAPER`, with a reason per line."""

DRY_RUN = changes_for("dry run: one method through the variance study's and the control's loops",
                      combo_control_methods=("mumis",), variance_methods=("finetune",))
"""The chapter's lines in a dry run (:mod:`unlearnkit.dryrun`), on top of the profile's."""


def profile_changes(profile: str) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}`` of the chapter's profile block."""
    return change_rows(PAPER, CHANGES[check_profile(profile)], "chapter 4")


def profile_config(profile: str, *, combo_scorer: str = "LR-MAHA", combo_budget: float = 0.5,
                   guide_slack: float = 0.01, methods: Sequence[str] = (), **overrides) -> Ch4Config:
    """The validated chapter-4 config of ``profile``.

    combo_scorer: chapter 1's scorer choosing the front end's part of the forget set (the
    RANDOM scorer runs beside it as the control where the profile asks for it); combo_budget:
    the fraction of the forget set handed on; guide_slack: see :class:`Ch4Config`. methods: the
    methods to rank (empty: the profile's, every registered method above ``smoke``); Retrain and
    the front-end and variance-study methods run either way (:func:`.options.chapter_methods`).
    ``overrides`` replace fields by name (``methods``, ...); unknown names, wrong types and
    out-of-range values raise before any work.
    """
    check_profile(profile)
    check_choice("combo_scorer", combo_scorer, tuple(SCORERS))
    values = dryrun.apply(DRY_RUN, with_changes(PAPER, CHANGES[profile]))
    control = ("RANDOM",) if values["combo_control_methods"] and combo_scorer != "RANDOM" else ()
    values.update(profile=profile, problems=tuple(SCENARIOS), combo_scorers=(combo_scorer, *control),
                  combo_budget=combo_budget, guide_slack=guide_slack,
                  methods=chapter_methods(("retrain", *values["combo_methods"], *values["variance_methods"]),
                                          SMOKE_METHODS if profile == "smoke" else available_methods(), methods))
    values.update(overrides)
    return build_config(Ch4Config, values)


# ---------------------------------------------------------------------------- combination

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


def combination_runs(cfg: Ch4Config, problem: Problem, picks: dict[str, dict], *, device,
                     retain_eval: int | None) -> pd.DataFrame:
    """Each of ``cfg.combo_methods`` (at its budget and tuned ``picks[method]``) handed only the
    part of the forget set that each scorer of ``cfg.combo_scorers`` selects
    (``cfg.combo_budget`` of it), evaluated on the whole split.

    Rows: problem, task, seed, method, front_end, scorer, forget_size, seconds, every metric of
    :func:`.harness.measure`, avg_gap, FA_selected / FA_rest (on the handed-on part and the rest).
    """
    split, seed = problem.split, problem.seed
    features = {part: penultimate_features(problem.original, getattr(split, part), device=device)
                for part in ("forget", "retain")}
    reference = reference_metrics(problem, "retrained", device=device, retain_eval=retain_eval)
    rows = []
    for scorer in cfg.combo_scorers:
        chosen = selected_part(features, scorer, cfg.combo_budget, seed)
        sub = replace_split(split, forget=split.forget.subset(chosen))
        methods = cfg.combo_methods if scorer == cfg.combo_scorers[0] else cfg.combo_control_methods
        for name in methods:
            settings = {**budget_settings(name, problem.retrain_epochs), **picks[name]}
            result = unlearn(name, problem.original, sub, profile=cfg.profile, device=str(device), seed=seed,
                             **settings)
            metrics = measure(result.model, problem, seed=seed, device=device, retain_eval=retain_eval)
            rows.append({"problem": problem.name, "task": problem.scenario, "seed": seed, "method": name,
                         "label": label(name), "front_end": front_end_name(cfg, scorer), "scorer": scorer,
                         "forget_size": int(chosen.sum()), "seconds": result.seconds, **metrics,
                         "avg_gap": avg_gap(metrics, reference),
                         "FA_selected": accuracy(result.model, split.forget.subset(chosen), device=device),
                         "FA_rest": accuracy(result.model, split.forget.subset(~chosen), device=device)})
    return pd.DataFrame(rows)


def combination_table(runs: pd.DataFrame, combos: pd.DataFrame) -> pd.DataFrame:
    """The front-end runs next to the same methods' rule-pick runs on the whole forget set
    (``front_end="full"``)."""
    full = runs[(runs["pick"] == "rule") & runs["method"].isin(combos["method"].unique())
                & runs["problem"].isin(combos["problem"].unique())]
    full = full.assign(task=full["scenario"], front_end="full", scorer="none", forget_size=np.nan)
    return pd.concat([full[[c for c in combos.columns if c in full]], combos], ignore_index=True)


def combination_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per task × method × front end of the columns the chapter discusses."""
    cols = [c for c in ("forget_size", "FA", "FTA", "FA_rest", "TA", "forgetting_score", "nomus", "avg_gap",
                        "seconds") if c in table]
    return table.groupby(["task", "method", "front_end"], sort=False)[cols].mean()


def combination_findings(cfg: Ch4Config, summary: pd.DataFrame) -> dict:
    """The numbers the prose quotes about the combination study: the scorer, budget (%) and
    control methods of ``cfg``, and per task × method × front end of ``summary``
    (:func:`combination_summary`) FA, Avg. Gap (%) and seconds, plus FA on the rest of the
    forget set (%) where a scorer chose a part: ``ch4_combo_{task}_{method}_{front}_{FA|gap|…}``."""
    out = {"ch4_combo_scorer": cfg.combo_scorers[0], "ch4_combo_budget_pct": 100 * cfg.combo_budget,
           "ch4_combo_controls": ", ".join(label(m) for m in cfg.combo_control_methods) or "no method"}
    for (task, name, front), row in summary.iterrows():
        key = f"ch4_combo_{task}_{name}_{front}"
        out.update({f"{key}_FA": 100 * row["FA"], f"{key}_seconds": row["seconds"], f"{key}_gap": 100 * row["avg_gap"]})
        if front != "full":
            out[f"{key}_FA_rest"] = 100 * row["FA_rest"]
    return out


# ---------------------------------------------------------------------------- the plan

def chapter_config(values: Mapping, root=None) -> Ch4Config:
    """The chapter's config from its parameter values (:func:`unlearnkit.chapter.settings`)."""
    return profile_config(values["profile"], combo_scorer=values["combo_scorer"], combo_budget=values["combo_budget"],
                          guide_slack=values["guide_slack"], methods=values["methods"])


def work(settings) -> Work:
    """The chapter's trainings and comparison runs (:mod:`.work`; ``python -m unlearnkit plan``
    lists them): every method of the config's ``methods`` on the book's problems at every seed
    of ``settings`` (:class:`unlearnkit.chapter.Settings`)."""
    cfg = settings.config
    problems = [settings.spec(key, s) for key in cfg.problems for s in settings.seeds]
    return Work("04_head-to-head", (comparison("head_to_head", problems, cfg.methods, settings),))


# ---------------------------------------------------------------------------- variance study

def variance_runs(cfg: Ch4Config, picks: dict[str, dict], base: ProblemSpec, *, device, retain_eval: int | None,
                  levels: tuple[int, ...] = (0, 1)) -> pd.DataFrame:
    """Every method of ``cfg.variance_methods`` (its tuned pick on the random subset) at every
    combination of original seed, forget draw and method seed in ``levels`` (2×2×2 runs each,
    cached like every run), on the problem of ``base`` (the run's random-subset spec, its knobs
    and data root) with its seeds replaced. Rows: method, original_seed, forget_seed,
    method_seed, FA, TA, avg_gap (to the retrained model of the forget draw)."""
    rows = []
    for original_seed in levels:
        for forget_seed in levels:
            problem = build(replace(base, seed=forget_seed, original_seed=original_seed), device=device)
            reference = reference_metrics(problem, "retrained", device=device, retain_eval=retain_eval)
            for name in cfg.variance_methods:
                for method_seed in levels:
                    row = run_method(problem, name, picks[name], profile=cfg.profile, device=device,
                                     retain_eval=retain_eval, seed=method_seed)
                    rows.append({"method": name, "label": label(name), "original_seed": original_seed,
                                 "forget_seed": forget_seed, "method_seed": method_seed, "FA": row["FA"],
                                 "TA": row["TA"], "avg_gap": avg_gap(row, reference)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- tables

def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per task (the problem's scenario) × method of the
    rows (Original, Retrain and one pick per method), as ``col`` and ``col_std`` (fractions,
    :func:`.harness.means`), with ``label``, ``reads_retain`` and ``seeds``."""
    rows = rows.assign(task=rows["scenario"])
    out = means(rows, METRICS, by=("task", "method"))
    retain = rows.groupby(["task", "method"], sort=False)["reads_retain"].first().reset_index()
    return out.merge(retain, on=["task", "method"]).rename(columns={"n": "seeds"})


def _methods_only(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    return summary[(summary["task"] == task) & ~summary["method"].isin(("original", "retrain"))].set_index("method")


def summary_findings(summary: pd.DataFrame) -> dict:
    """The numbers the chapter's prose quotes from :func:`aggregate`'s table, per task ``t``:
    ``ch4_{t}_best_gap_method`` / ``_best_gap`` (the method, Retrain and Original aside, of least
    mean Avg. Gap, in points), ``ch4_{t}_best_nomus_method`` / ``_best_nomus``, and the retrained
    model's ``nomus``, ``fs`` (forgetting score), ``FA``, ``TA`` (%) and ``seconds``; plus
    ``ch4_full_class_ft_FA`` (%) where fine-tuning ran. Orderings of means: the paired rows of
    the scorecard decide the claims."""
    out = {}
    for task in summary["task"].unique():
        part = _methods_only(summary, task)
        best = part["avg_gap"].idxmin()
        retrain = summary[(summary["task"] == task) & (summary["method"] == "retrain")].iloc[0]
        out.update({f"ch4_{task}_best_gap_method": label(best), f"ch4_{task}_best_gap": 100 * part.loc[best, "avg_gap"],
                    f"ch4_{task}_best_nomus_method": label(part["nomus"].idxmax()),
                    f"ch4_{task}_best_nomus": part["nomus"].max(),
                    f"ch4_{task}_retrain_nomus": retrain["nomus"], f"ch4_{task}_retrain_fs": retrain["forgetting_score"],
                    f"ch4_{task}_retrain_FA": 100 * retrain["FA"], f"ch4_{task}_retrain_TA": 100 * retrain["TA"],
                    f"ch4_{task}_retrain_seconds": retrain["seconds"]})
    ft = summary[(summary["task"] == "full_class") & (summary["method"] == "finetune")]
    if len(ft):
        out["ch4_full_class_ft_FA"] = 100 * ft["FA"].iloc[0]
    return out


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


def mia_findings(summary: pd.DataFrame, agreement: pd.DataFrame) -> dict:
    """The numbers the prose quotes about the attacks' agreement: min, max and median Spearman ρ
    of the paper convention in ``agreement`` (:func:`mia_rank_agreement` of ``summary``), the
    number of models ranked, and per task the model the variants rank most differently
    (:func:`top_disagreement`) with its best and worst rank."""
    paper = agreement[agreement["convention"] == "paper"]
    out = {"ch4_mia_rho_min": paper["rho"].min(), "ch4_mia_rho_max": paper["rho"].max(),
           "ch4_mia_rho_median": paper["rho"].median(), "ch4_mia_models": int(paper["models"].max())}
    for task in summary["task"].unique():
        top = top_disagreement(summary, task)
        out.update({f"ch4_{task}_mia_model": top["model"],
                    f"ch4_{task}_mia_best": f"{top['best_rank']:.0f} by {top['best_variant']}",
                    f"ch4_{task}_mia_worst": f"{top['worst_rank']:.0f} by {top['worst_variant']}"})
    return out


# ---------------------------------------------------------------------------- the guide

def which_method_when(summary: pd.DataFrame, slack: float) -> pd.DataFrame:
    """Per task, the method each question picks from the measured means (no opinion involved).

    Questions: ``closest`` (lowest Avg. Gap), ``retain_free`` (lowest gap among methods that
    never read the retain set), ``cheapest`` (least wall time among methods within ``slack``
    points of the lowest gap), ``nomus`` (highest NoMUS), ``fastest`` (least wall time).
    Rows: task, question, method, label, avg_gap, time_fraction, nomus.
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
                         "avg_gap": r["avg_gap"], "time_fraction": r["time_fraction"], "nomus": r["nomus"]})
    return pd.DataFrame(rows)


QUESTIONS = {"closest": "to come closest to retraining (lowest Avg. Gap)",
             "retain_free": "when the retain set cannot be read",
             "cheapest": "for the least time within {slack_points:g} points of the lowest gap",
             "nomus": "for the best privacy–utility score (highest NoMUS)",
             "fastest": "for the least time, whatever the quality"}


def guide_sentences(guide: pd.DataFrame, slack: float, labels: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per task and question, built from :func:`which_method_when`'s rows;
    ``labels`` name the tasks (default :data:`TASK_LABELS`; :func:`.tasks.problem_label` follows the knobs)."""
    out = []
    for _, r in guide.iterrows():
        question = QUESTIONS[r["question"]].format(slack_points=100 * slack)
        out.append(f"On {(labels or TASK_LABELS).get(r['task'], r['task'])}, {question}: **{r['label']}** "
                   f"(Avg. Gap {100 * r['avg_gap']:.2f} points, {100 * r['time_fraction']:.1f}% of retraining time, "
                   f"NoMUS {r['nomus']:.3f}).")
    return out


def consistent_picks(guide: pd.DataFrame, slack: float) -> list[str]:
    """Per question, a sentence saying which method every task picks, or that they differ."""
    out = []
    for question, part in guide.groupby("question", sort=False):
        labels = list(dict.fromkeys(part["label"]))
        text = QUESTIONS[question].format(slack_points=100 * slack)
        if len(labels) == 1:
            out.append(f"{text}, every task picks **{labels[0]}**.")
        else:
            out.append(f"{text}, the tasks differ ({', '.join(labels)}): the choice depends on the task.")
    return [s[0].upper() + s[1:] for s in out]


# ---------------------------------------------------------------------------- scorecard inputs

def remaining_fraction(after: float, before: float) -> float:
    """``after / before``: the share of an accuracy left after unlearning. With ``before = 0``
    there was nothing to forget: 0 when ``after`` is 0 too, else 1 (no reduction). NaN when
    either is NaN (a missing measurement stays missing, :meth:`unlearnkit.record.Recorder.score`
    counts it)."""
    if math.isnan(after) or math.isnan(before):
        return math.nan
    if before > 0:
        return after / before
    return 0.0 if after <= 0 else 1.0


# ---------------------------------------------------------------------------- figures

def _marker(method: str, reads_retain: bool) -> tuple[str, float]:
    """Retrain a star, Original a cross, methods that read the retain set a dot, others a triangle."""
    return {"retrain": ("*", 13), "original": ("X", 8)}.get(method, ("o" if reads_retain else "^", 6))


def plot_utility_forgetting(summary: pd.DataFrame, labels: Mapping[str, str] | None = None):
    """Per task (a panel, two side by side): test accuracy against forget accuracy (mean ± std
    over seeds) of every model; Retrain is the star (the target: dotted lines), Original the grey
    cross; triangles never read the retain set. Methods are named in the legend below."""
    from ..figures import legend_below, method_colors, panels

    tasks = list(summary["task"].unique())
    colors = method_colors(summary["method"])
    fig, axes = panels(len(tasks))
    for ax, task in zip(axes, tasks):
        part = summary[summary["task"] == task]
        for _, r in part.iterrows():
            marker, size = _marker(r["method"], r["reads_retain"])
            ax.errorbar(100 * r["FA"], 100 * r["TA"], xerr=100 * r["FA_std"], yerr=100 * r["TA_std"], fmt=marker,
                        ms=size, color=colors[r["method"]], ecolor="lightgrey", capsize=2, label=r["label"],
                        zorder=3 if r["method"] == "retrain" else 2)
        target = part[part["method"] == "retrain"].iloc[0]
        ax.axvline(100 * target["FA"], color="k", ls=":", lw=0.8)
        ax.axhline(100 * target["TA"], color="k", ls=":", lw=0.8)
        ax.set(xlabel="forget accuracy (%)", ylabel="test accuracy (%)", title=(labels or TASK_LABELS).get(task, task))
        ax.grid(alpha=0.3)
    legend_below(fig, axes)
    return fig


def plot_quality_time(summary: pd.DataFrame, labels: Mapping[str, str] | None = None):
    """Per task (a panel, two side by side): Avg. Gap to Retrain (points) against wall time as
    a fraction of the retrain's (log), mean ± std over seeds; lower left is better."""
    from matplotlib.ticker import NullFormatter

    from ..figures import legend_below, method_colors, panels

    tasks = list(summary["task"].unique())
    colors = method_colors(summary["method"])
    fig, axes = panels(len(tasks))
    for ax, task in zip(axes, tasks):
        part = summary[(summary["task"] == task) & (summary["method"] != "original")]
        for _, r in part.iterrows():
            marker, size = _marker(r["method"], r["reads_retain"])
            ax.errorbar(r["time_fraction"], 100 * r["avg_gap"], yerr=100 * r["avg_gap_std"], fmt=marker, ms=size,
                        color=colors[r["method"]], ecolor="lightgrey", capsize=2, label=r["label"])
        ax.set(xscale="log", xlabel="wall time / retrain's (log)", ylabel="Avg. Gap to Retrain (points)",
               title=(labels or TASK_LABELS).get(task, task))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
    legend_below(fig, axes)
    return fig


def plot_mia_ranks(summary: pd.DataFrame, labels: Mapping[str, str] | None = None):
    """Per task (a panel, two side by side): every model's rank under each MIA variant (paper
    conventions, 1 = most forgetting), one line per model: crossing lines are disagreements."""
    from ..figures import legend_below, method_colors, panels

    tasks = list(summary["task"].unique())
    colors = method_colors(summary["method"])
    fig, axes = panels(len(tasks), panel_height=3.6)
    short = {"mia_loss_logreg": "loss-LR\n(FS)", "mia_efficacy_svc": "conf-SVC\n(efficacy)",
             "mia_entropy_logreg": "entropy-LR\n(members)"}
    for ax, task in zip(axes, tasks):
        ranks = mia_rankings(summary, task, "paper")
        methods = summary[summary["task"] == task].set_index("label")["method"]
        for name, r in ranks.iterrows():
            ax.plot(range(len(MIA_VARIANTS)), r[list(MIA_VARIANTS)], "o-", color=colors[methods[name]], lw=1.2,
                    label=name)
        ax.set_xticks(range(len(MIA_VARIANTS)), [short[v] for v in MIA_VARIANTS])
        ax.set_xlim(-0.3, len(MIA_VARIANTS) - 0.7)
        ax.invert_yaxis()
        ax.set(ylabel="rank (1 = most forgetting)", title=(labels or TASK_LABELS).get(task, task))
        ax.grid(alpha=0.3, axis="y")
    legend_below(fig, axes)
    return fig


def plot_combination(table: pd.DataFrame, labels: Mapping[str, str] | None = None):
    """Per task (a row of two panels): forget accuracy on the whole forget set (left) and wall
    time (right) of each front-end method with the full forget set and with the part each
    scorer selected (mean, bars: std)."""
    import seaborn as sns

    from ..figures import legend_below, panels

    tasks = list(table["task"].unique())
    fig, axes = panels(2 * len(tasks), panel_height=3.0)
    order = list(dict.fromkeys(table["front_end"]))
    for row, task in enumerate(tasks):
        part = table[table["task"] == task]
        for col, (y, ylabel) in enumerate((("FA", "forget acc., whole forget set (%)"), ("seconds", "wall time (s)"))):
            ax = axes[2 * row + col]
            sns.barplot(data=part.assign(FA=100 * part["FA"]), x="label", y=y, hue="front_end", hue_order=order,
                        errorbar="sd", ax=ax)
            ax.set(xlabel="", ylabel=ylabel, title=(labels or TASK_LABELS).get(task, task))
            ax.legend_.remove()
    legend_below(fig, axes[:1], columns=3, title="forget set given to the method")
    return fig
