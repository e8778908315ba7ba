"""Does it really forget? The head-to-head's methods under U-LiRA, relearning and a probe.

* :data:`SIZES_PAPER`, :data:`SIZES_CHANGES` / :func:`sizes`: every size of the three tests per
  profile, in one place, each profile's lines with the measurement that chose them.
* :func:`ulira_runs`: U-LiRA (:mod:`unlearnkit.audit`) per method and seed on a small shadow
  task of the book's random-forgetting kind; shadow models go through the model cache.
* :func:`relearn_probe_rows`: the relearning and probe tests on every picked model of the
  head-to-head (Original, Retrain, each method's rule pick), cached as small JSON entries.
* :func:`audit_rows`: both, one row per method, scenario and seed with the columns
  :data:`COLUMNS`; :func:`with_audit`, :func:`attack_rankings`, :func:`attack_rank_agreement`
  and :func:`verdict_flips` extend chapter 4's attack comparison to them.

U-LiRA needs its own shadow models per method, so it runs on its own task (a small pool of the
CIFAR-10 training images, or the synthetic images at ``smoke``), a random-forgetting problem
like the head-to-head's ``random_subset``: its values fill that scenario's rows and are NaN on
the others (a per-example attack on a whole forgotten class asks another question).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from scipy.stats import spearmanr
from torch import nn

from .. import audit, dryrun
from ..config import (SMOKE_WHY, Change, as_dict, change_rows, changes_for, check_choice, check_profile,
                      config_hash, with_changes)
from ..data.splits import training_pool
from ..methods import Diverged, get_method
from ..models import build_model
from ..runtime import atomic_write_text, cache_root
from ..train import TrainConfig
from .harness import Problem, budget_settings, code_version, diverged, load_unlearned, main_rows, means
from .tasks import ImageTask

ULIRA_COLUMNS = ("ulira_auc", "ulira_tpr_at_1pct", "ulira_tpr_at_0_1pct")
COLUMNS = (*ULIRA_COLUMNS, "relearn_fa", "relearn_fa_k", "probe_fa")
"""The audit's numeric columns (fractions): U-LiRA's AUC and TPR at 1 % / 0.1 % FPR, forget
accuracy after relearning on retain data (``relearn_fa``) and with k forget samples
(``relearn_fa_k``), and the linear probe's forget accuracy (``probe_fa``)."""
KEYS = ("problem", "task", "scenario", "seed", "method", "label")
ULIRA_SCENARIO = "random_subset"


@dataclass(frozen=True)
class AuditSizes:
    """The sizes of the three tests at one profile.

    task: the U-LiRA shadow task (dataset, model, recipe; ``max_train`` caps its pool).
    n_shadows: shadow pairs per seed (each an original on a random half of the pool and its
    retrained model); n_targets: target examples of the pool (each shadow forgets those in its
    half, about half of them). curve: the shadow counts of the score-against-N curve.
    ulira_seeds: how many of the comparison's seeds get their own shadows (None: all).
    ulira_methods: the methods attacked (None: every compared method but ``ulira_skip``;
    ``original``, the untouched model, is always attacked, at no training cost). relearn_*: the relearning
    budget (SGD steps, learning rate, batch size) and the forget samples shown (k).
    probe_max_train: cap on the probe's training set. max_eval: cap on the forget samples
    the relearning and the probe are scored on (seeded; None = all). relearn_methods: the
    methods relearnt and probed besides Original and Retrain (None: every compared method).
    """

    task: ImageTask
    n_shadows: int
    n_targets: int
    curve: tuple[int, ...]
    ulira_seeds: int | None
    ulira_methods: tuple[str, ...] | None
    ulira_skip: tuple[str, ...]
    relearn_steps: int
    relearn_lr: float
    relearn_batch: int
    relearn_k: int
    probe_max_train: int | None
    max_eval: int | None = None
    relearn_methods: tuple[str, ...] | None = None

    def __post_init__(self):
        audit.check_n_shadows(self.n_shadows)
        for n in self.curve:
            audit._check_int("curve point", n, 2, self.n_shadows, " (the shadows trained)")
        audit.check_relearn(self.relearn_steps, self.relearn_lr, self.relearn_batch, self.relearn_k)
        for name in (*(self.ulira_methods or ()), *self.ulira_skip, *(self.relearn_methods or ())):
            if name != "original":
                get_method(name)


def _shadow_task(dataset: str, model: str, pool: int | None, epochs: int, batch: int, lr: float, **kw) -> ImageTask:
    return ImageTask(dataset, model, TrainConfig(model=model, epochs=epochs, batch_size=batch, lr=lr, augment=False),
                     max_train=pool, **kw)


SIZES_PAPER = AuditSizes(
    task=_shadow_task("cifar10", "resnet18", 10_000, 30, 128, 0.1),
    n_shadows=64, n_targets=1000, curve=(8, 16, 32, 64), ulira_seeds=None, ulira_methods=None, ulira_skip=(),
    relearn_steps=200, relearn_lr=0.01, relearn_batch=128, relearn_k=64, probe_max_train=None, max_eval=None)
"""The audit at GPU scale: the project's suggestion, not run here and not a paper's setting
(Hayes et al. and the unlearning competition's metric use hundreds of shadow models)."""

_CPU_SHADOWS = ("one shadow pair (CIFAR-10, small_cnn, 8 epochs, batch 64) took 16.7 s on a 2,000-image pool "
                "and 7.6 s on 1,000 images (2 shared cores, load 2-3): 16 pairs a seed, 2 seeds, must fit "
                "the audit's 25 minutes")
_CPU_MEMORY = ("shadows train on 500 images: the original's U-LiRA AUC is 0.88, enough memorisation for the "
               "attack to have something to find (face_cnn on 1,000 images: 0.60)")
_CPU_TARGETS = ("each held-out shadow forgets about 100 of them, 1,600 non-member scores in all, so the TPR "
                "at 0.1% FPR rests on about two false positives")
_CPU_RELEARN = ("relearning and the probe on one CIFAR-10 model took 10.4 s with the whole 2,000-image forget "
                "set and a 2,000-image probe: 144 models would take 25 minutes alone; 500 scored images "
                "(standard error about 2 points) and 1,000 probe images halve it")

SIZES_CHANGES = {
    "paper": {},
    "cpu": {
        "task.model": Change("small_cnn", _CPU_SHADOWS),
        "task.train.model": Change("small_cnn", _CPU_SHADOWS),
        "task.train.epochs": Change(8, _CPU_SHADOWS),
        "task.train.batch_size": Change(64, _CPU_SHADOWS),
        "task.max_train": Change(1000, _CPU_MEMORY),
        "task.max_test": Change(1000, "the shadows' test part only feeds the methods that read it"),
        "n_shadows": Change(16, "the floor the issue sets; " + _CPU_SHADOWS),
        "n_targets": Change(200, _CPU_TARGETS),
        "curve": Change((4, 8, 12, 16), "the shadow counts 16 shadows can show"),
        "ulira_seeds": Change(2, "two seeds give an interval (a wide one) within the budget; " + _CPU_SHADOWS),
        "ulira_skip": Change(("unsir",), "UNSIR's noise step cost 190 s a seed on the shadows, more than the "
                                         "13 other methods together (140 s)"),
        "relearn_steps": Change(20, "a small fixed budget; " + _CPU_RELEARN),
        "relearn_lr": Change(0.02, "a small fixed budget (FT's cpu rate is 0.01 per pass of thousands of steps)"),
        "relearn_batch": Change(64, _CPU_RELEARN),
        "relearn_k": Change(16, "16 forget images: under 1% of a CIFAR-10 forget set"),
        "probe_max_train": Change(1000, _CPU_RELEARN),
        "max_eval": Change(500, _CPU_RELEARN),
    },
    "smoke": changes_for(SMOKE_WHY + " (synthetic 16x16 images, 12 a class; FT alone attacked)",
                         **{"task.dataset": "synthetic-images", "task.model": "small_cnn",
                            "task.train.model": "small_cnn", "task.train.epochs": 4, "task.train.batch_size": 32,
                            "task.train.lr": 0.05, "task.max_train": None,
                            "task.load_kw": {"n_per_class": 12, "size": 16}, "n_shadows": 16, "n_targets": 40,
                            "curve": (4, 8, 16), "ulira_seeds": 1, "ulira_methods": ("finetune",),
                            "relearn_steps": 5, "relearn_batch": 32, "relearn_k": 4}),
}
"""Each profile's audit sizes as differences from :data:`SIZES_PAPER`, a measured reason per line."""

SIZES = {profile: with_changes(SIZES_PAPER, block) for profile, block in SIZES_CHANGES.items()}
"""The audit's sizes per profile (see :class:`AuditSizes`)."""

DRY_RUN = changes_for("dry run: a few shadows and steps; one method relearnt and probed (the same code for every "
                      "model: relearning ResNet-18 copies was half of chapter 4's 445-s dry run)", n_shadows=2,
                      n_targets=8, curve=(2,), ulira_seeds=1, ulira_methods=("finetune",), relearn_steps=2,
                      relearn_k=1, max_eval=8, probe_max_train=16, relearn_methods=("finetune",))
"""The audit's lines in a dry run (:mod:`unlearnkit.dryrun`), on top of the profile's."""


def sizes(profile: str, **overrides) -> AuditSizes:
    """The audit sizes of ``profile`` (the dry run's lines applied when one is active), with fields
    replaced by ``overrides`` (validated)."""
    cfg = SIZES[check_profile(profile)]
    cfg = dryrun.apply(DRY_RUN, cfg)
    return replace(cfg, **overrides)


def profile_changes(profile: str) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}`` of the audit's profile block (the settings section)."""
    return change_rows(SIZES_PAPER, SIZES_CHANGES[check_profile(profile)], "audit")


# ---------------------------------------------------------------------------- small JSON cache

def _audit_code() -> str:
    """A digest of :func:`.harness.code_version` and the audit sources (a change misses the cache)."""
    digest = hashlib.sha256(code_version().encode())
    for path in (Path(audit.__file__), Path(__file__)):
        digest.update(path.resolve().read_bytes())
    return digest.hexdigest()[:16]


def _cached(key: dict, compute, cache_dir=None):
    """``compute()`` (JSON-ready), stored once per ``key`` under ``<cache>/audit/<hash>.json``."""
    path = cache_root(cache_dir) / "audit" / f"{config_hash(key)}.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == json.loads(json.dumps(key, default=str)):
                return stored["value"]
        except (OSError, ValueError):
            pass
    value = compute()
    atomic_write_text(path, json.dumps({"key": key, "value": value}, default=str))
    return value


# ---------------------------------------------------------------------------- U-LiRA

def shadow_data(task: ImageTask, *, root=None):
    """``(pool, split)``: the shadow task's training pool and a split of it whose val / test /
    unseen parts serve every shadow (the pool is the same at every seed, drawn by ``pool_seed``)."""
    pool, _ = training_pool(task.dataset, root=root, pool_seed=task.pool_seed, val_fraction=task.val_fraction,
                            max_train=task.max_train, load_kw=task.load_kw)
    split = task.split("random_subset", seed=0, root=root, forget_fraction=0.1)
    return pool, split


def build_shadows(cfg: AuditSizes, *, seed: int, device, root=None, cache_dir=None) -> audit.Shadows:
    """The ``cfg.n_shadows`` shadow pairs of seed ``seed`` on ``cfg.task``, through the model cache."""
    task = cfg.task
    pool, split = shadow_data(task, root=root)
    plan = audit.shadow_plan(len(pool), cfg.n_targets, cfg.n_shadows, seed=seed)
    channels, size = pool.x.shape[1], pool.x.shape[-1]

    def build() -> nn.Module:
        return build_model(task.model, split.num_classes, in_channels=channels, image_size=size)

    key = {"task": as_dict(task), "n_targets": cfg.n_targets}
    return audit.train_shadows(pool, plan, build, replace(task.train, seed=seed), test=split.test, val=split.val,
                               num_classes=split.num_classes, device=device, key=key, cache_dir=cache_dir)


def _method_settings(rows: pd.DataFrame, method: str, retrain_epochs: float) -> dict:
    """The method's budget on the shadow task plus its rule pick on the head-to-head's
    random-subset problem (the first problem that has the method when that one is absent)."""
    picked = rows[(rows["method"] == method) & (rows["pick"] == "rule")]
    preferred = picked[picked["scenario"] == ULIRA_SCENARIO]
    picked = preferred if len(preferred) else picked
    chosen = json.loads(picked["settings"].iloc[0]) if len(picked) else {}
    return {**budget_settings(method, retrain_epochs), **chosen}


def ulira_runs(rows: pd.DataFrame, *, profile: str, device, seeds: Sequence[int], cfg: AuditSizes | None = None,
               root=None, cache_dir=None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """U-LiRA of every attacked method at each of ``seeds`` (own shadows per seed).

    rows: the head-to-head's runs (:func:`.harness.compare`; the rule picks' settings are
    read from them). Returns ``(scores, curve)``: scores has one row per method and seed with
    :data:`ULIRA_COLUMNS`, ``ulira_seconds`` (the method's summed wall time over the shadows)
    and ``n_shadows`` (a method whose run diverged on a shadow: NaN, with ``diverged`` saying
    why); curve has the same per shadow count of ``cfg.curve`` (:func:`unlearnkit.audit.ulira_against_n`).
    """
    from tqdm import tqdm

    cfg = cfg or sizes(profile)
    methods = [m for m in dict.fromkeys(rows["method"]) if m not in ("original", "retrain")]
    if cfg.ulira_methods is not None:
        methods = [m for m in cfg.ulira_methods if m in methods or m == "original"]
    methods = [m for m in methods if m not in cfg.ulira_skip]
    methods = ["original", *[m for m in methods if m != "original"]]
    seeds = list(seeds)[: cfg.ulira_seeds] if cfg.ulira_seeds is not None else list(seeds)
    settings = {m: _method_settings(rows, m, cfg.task.train.epochs) for m in methods if m != "original"}
    for m, s in settings.items():
        get_method(m).config.for_profile(profile, s)  # every setting checked before any training
    scores, curves = [], []
    for seed in seeds:
        shadows = build_shadows(cfg, seed=seed, device=device, root=root, cache_dir=cache_dir)
        phi_r = audit.retrained_phi(shadows, device=device)
        forgotten = shadows.plan.forgotten.numpy()
        for m in tqdm(methods, desc=f"U-LiRA seed {seed}", disable=not progress, leave=False):
            try:
                phi_u, seconds = audit.unlearned_phi(shadows, m, device=device, seed=seed, profile=profile,
                                                     settings=settings.get(m), key={"code": code_version()},
                                                     cache_dir=cache_dir)
            except Diverged as err:  # a shadow's run blew up: no attack, the row reads "not measured"
                scores.append({"method": m, "seed": seed, **dict.fromkeys(ULIRA_COLUMNS, math.nan),
                               "ulira_seconds": math.nan, "n_shadows": cfg.n_shadows, "diverged": str(err)})
                continue
            result = audit.ulira_attack(phi_u, phi_r, forgotten)
            scores.append({"method": m, "seed": seed, "ulira_auc": result["auc"],
                           "ulira_tpr_at_1pct": result["tpr_at_1pct"], "ulira_tpr_at_0_1pct": result["tpr_at_0_1pct"],
                           "ulira_seconds": seconds, "n_shadows": cfg.n_shadows})
            curve = audit.ulira_against_n(phi_u, phi_r, forgotten, cfg.curve)
            curves.append(curve.assign(method=m, seed=seed))
    curve = pd.concat(curves, ignore_index=True).rename(columns={"auc": "ulira_auc", "tpr_at_1pct": "ulira_tpr_at_1pct",
                                                                "tpr_at_0_1pct": "ulira_tpr_at_0_1pct"})
    return pd.DataFrame(scores), curve


# ---------------------------------------------------------------------------- relearning and probe

def picked_model(problem: Problem, row) -> nn.Module:
    """The model of a picked row: the problem's original or retrained model, else the run's."""
    if row["method"] == "original":
        return problem.original
    if row["method"] == "retrain":
        return problem.retrained
    return load_unlearned(problem, row)


def relearn_probe_rows(problems: Sequence[Problem], rows: pd.DataFrame, *, profile: str, device,
                       cfg: AuditSizes | None = None, cache_dir=None, progress: bool = False) -> pd.DataFrame:
    """The relearning test (:func:`unlearnkit.audit.relearn_test`) and the probe
    (:func:`unlearnkit.audit.probe_fa`) on every picked model of every problem.

    rows: the head-to-head's runs (the picked rows are taken with :func:`.harness.main_rows`).
    Returns one row per problem, seed and method: :data:`KEYS`, ``fa_before`` (forget accuracy
    on the samples the relearning is measured on), ``relearn_fa``, ``relearn_fa_k``, ``probe_fa``
    (NaN for a diverged run and for a method outside ``cfg.relearn_methods``).
    Each result is cached (keyed by the problem, the run, the sizes and the audit code).
    """
    from tqdm import tqdm

    cfg = cfg or sizes(profile)
    picked = main_rows(rows)
    by_key = {(p.name, p.seed): p for p in problems}
    out = []
    for _, row in tqdm(list(picked.iterrows()), desc="relearn / probe", disable=not progress, leave=False):
        problem = by_key.get((row["problem"], row["seed"]))
        if problem is None:
            continue
        skipped = cfg.relearn_methods is not None and row["method"] not in ("original", "retrain",
                                                                           *cfg.relearn_methods)
        if diverged(row) or skipped:  # no model to relearn or probe, or not one this audit tests
            out.append({**{k: row[k] for k in KEYS}, **dict.fromkeys(("fa_before", "relearn_fa", "relearn_fa_k", "probe_fa"), math.nan)})
            continue
        key = {"problem": problem.key, "seed": problem.seed, "method": row["method"],
               "run": Path(row["run_path"]).stem if row.get("run_path") else row["method"],
               "relearn": [cfg.relearn_steps, cfg.relearn_lr, cfg.relearn_batch, cfg.relearn_k],
               "probe_max_train": cfg.probe_max_train, "max_eval": cfg.max_eval, "code": _audit_code()}

        def compute(problem=problem, row=row):
            model = picked_model(problem, row)
            result = audit.relearn_test(model, problem.split, steps=cfg.relearn_steps, lr=cfg.relearn_lr,
                                        batch_size=cfg.relearn_batch, k=cfg.relearn_k, seed=problem.seed,
                                        device=device, max_eval=cfg.max_eval)
            result["probe_fa"] = audit.probe_fa(model, problem.split, device=device, seed=problem.seed,
                                                max_train=cfg.probe_max_train, max_eval=cfg.max_eval)
            return result

        values = _cached(key, compute, cache_dir)
        out.append({**{k: row[k] for k in KEYS}, **values})
    return pd.DataFrame(out)


def audit_rows(problems: Sequence[Problem], rows: pd.DataFrame, *, profile: str, device,
               cfg: AuditSizes | None = None, root=None, cache_dir=None,
               progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(table, curve)``: the three tests on the head-to-head's picked models.

    table: one row per problem (scenario), seed and method (Original, Retrain and each method's
    rule pick) with :data:`KEYS` and :data:`COLUMNS` plus ``fa_before``; the U-LiRA columns
    are filled on the ``random_subset`` rows of the seeds that got shadows (NaN elsewhere;
    Retrain has none, its attack value is chance by construction). curve: U-LiRA against the
    number of shadows (:func:`ulira_runs`).
    """
    cfg = cfg or sizes(profile)
    seeds = sorted({p.seed for p in problems})
    scores, curve = ulira_runs(rows, profile=profile, device=device, seeds=seeds, cfg=cfg, root=root,
                               cache_dir=cache_dir, progress=progress)
    table = relearn_probe_rows(problems, rows, profile=profile, device=device, cfg=cfg, cache_dir=cache_dir,
                               progress=progress)
    scores = scores.assign(scenario=ULIRA_SCENARIO)
    table = table.merge(scores[["scenario", "seed", "method", *ULIRA_COLUMNS, "ulira_seconds"]],
                        on=["scenario", "seed", "method"], how="left")
    return table[[*KEYS, *COLUMNS, "fa_before", "ulira_seconds"]], curve


# ---------------------------------------------------------------------------- attacks compared

ATTACK_CONVENTIONS = {
    "mia_loss_logreg": ("forgetting_score", False, None),
    "mia_efficacy_svc": ("mia_efficacy_svc", True, None),
    "mia_entropy_logreg": ("mia_entropy_logreg", False, None),
    "ulira_auc": ("ulira_auc", False, 0.5),
    "ulira_tpr_at_1pct": ("ulira_tpr_at_1pct", False, 0.01),
    "ulira_tpr_at_0_1pct": ("ulira_tpr_at_0_1pct", False, 0.001),
    "relearn_fa": ("relearn_fa", False, None),
    "relearn_fa_k": ("relearn_fa_k", False, None),
    "probe_fa": ("probe_fa", False, None),
}
"""Every attack: (column read under the ``paper`` convention, higher = more forgetting, the
value the retrained model has by construction, or None to read it from the Retrain row). The
first three are chapter 4's (:data:`.ch4.MIA_CONVENTIONS`); U-LiRA, relearning and the probe
read lower as more forgetting; U-LiRA's retrained value is chance (AUC 0.5, TPR = FPR)."""
ATTACKS = tuple(ATTACK_CONVENTIONS)


def with_audit(summary: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Chapter 4's per-task summary (:func:`.ch4.aggregate`) with the mean over seeds of each of
    :data:`COLUMNS` (as ``col``; ``col_std`` their standard deviation) joined on task and method."""
    extra = means(table.assign(task=table["scenario"]), COLUMNS, by=("task", "method")).drop(columns=["n", "label"])
    return summary.drop(columns=[c for c in extra if c in summary and c not in ("task", "method")]).merge(
        extra, on=["task", "method"], how="left")


def _target(part: pd.DataFrame, attack: str) -> float:
    column, _, chance = ATTACK_CONVENTIONS[attack]
    retrain = part.loc[part["method"] == "retrain", attack]
    value = float(retrain.iloc[0]) if len(retrain) else math.nan
    return chance if math.isnan(value) and chance is not None else value


def attack_rankings(summary: pd.DataFrame, task: str, convention: str = "paper",
                    attacks: Sequence[str] = ATTACKS) -> pd.DataFrame:
    """Rank of every model of ``task`` under each attack (1 = most forgetting; ties share the
    mean rank; NaN where the attack has no value for the model). ``paper``: each attack read
    by its column and direction (:data:`ATTACK_CONVENTIONS`); ``retrain``: by the distance of its
    value to the retrained model's (1 = closest). Rows: labels; columns: attacks present."""
    check_choice("convention", convention, ("paper", "retrain"))
    part = summary[summary["task"] == task]
    ranks = {}
    for attack in attacks:
        column, higher, _ = ATTACK_CONVENTIONS[attack]
        if attack not in part or column not in part:
            continue
        if convention == "paper":
            values = part[column]
            ranks[attack] = values.rank(ascending=not higher, method="average").to_numpy()
        else:
            ranks[attack] = (part[attack] - _target(part, attack)).abs().rank(method="average").to_numpy()
    return pd.DataFrame(ranks, index=part["label"].to_numpy())


def attack_rank_agreement(summary: pd.DataFrame, attacks: Sequence[str] = ATTACKS) -> pd.DataFrame:
    """Spearman ρ over models between the rankings of every pair of attacks, per task and
    convention (on the models both rank; NaN below three such models or for a constant ranking).
    Rows: task, convention, a, b, pair (``a vs b``), rho, models."""
    rows = []
    for task in summary["task"].unique():
        for convention in ("paper", "retrain"):
            ranks = attack_rankings(summary, task, convention, attacks)
            names = list(ranks)
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    both = ranks[[a, b]].dropna()
                    ok = len(both) >= 3 and both[a].nunique() > 1 and both[b].nunique() > 1
                    rho = spearmanr(both[a], both[b]).statistic if ok else math.nan
                    rows.append({"task": task, "convention": convention, "a": a, "b": b, "pair": f"{a} vs {b}",
                                 "rho": float(rho), "models": len(both)})
    return pd.DataFrame(rows)


TOLERANCES = {"ulira_tpr_at_1pct": 0.01, "ulira_tpr_at_0_1pct": 0.002}
"""Per-attack tolerances of :func:`verdict_flips` where the default (0.05) is too loose: a TPR
of 2 % at 1 % FPR, or 0.3 % at 0.1 %, is already twice chance."""


def verdict_flips(summary: pd.DataFrame, tol: float = 0.05, attacks: Sequence[str] = ATTACKS,
                  tolerances: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per task and unlearning method, each attack's verdict "forgets like retraining"
    (``|value − the retrained model's| <= tol``, in the attack's units, fractions; the attacks of
    ``tolerances``, default :data:`TOLERANCES`, use their own), and whether the attacks disagree.
    Rows: task, method, label, one bool (or None: no value) column per attack,
    ``like_retrain`` / ``not_like_retrain`` (the attacks of each verdict) and ``flips`` (True
    when both lists are non-empty). Original and Retrain are left out."""
    tolerances = TOLERANCES if tolerances is None else tolerances
    rows = []
    for task in summary["task"].unique():
        part = summary[summary["task"] == task]
        present = [a for a in attacks if a in part]
        targets = {a: _target(part, a) for a in present}
        for _, r in part[~part["method"].isin(("original", "retrain"))].iterrows():
            verdicts = {a: (None if math.isnan(r[a]) or math.isnan(targets[a])
                            else bool(abs(r[a] - targets[a]) <= tolerances.get(a, tol) + 1e-12))
                        for a in present}
            yes = [a for a, v in verdicts.items() if v is True]
            no = [a for a, v in verdicts.items() if v is False]
            rows.append({"task": task, "method": r["method"], "label": r["label"], **verdicts,
                         "like_retrain": ", ".join(yes), "not_like_retrain": ", ".join(no),
                         "flips": bool(yes and no)})
    return pd.DataFrame(rows)


GUIDE_QUESTIONS = {
    "ulira": ("ulira_auc", "to be hardest to tell from retraining example by example (U-LiRA AUC closest to 0.5)"),
    "relearn": ("relearn_fa", "for forget accuracy that comes back least on relearning from retain data "
                              "(closest to the retrained model's)"),
    "probe": ("probe_fa", "for features that give away no more than the retrained model's (probe closest to it)"),
}
"""The guide's questions on the audit columns: key → (attack, the sentence's question)."""


def guide_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Per task and :data:`GUIDE_QUESTIONS` question, the method (Original and Retrain excluded)
    whose mean value is closest to the retrained model's (U-LiRA: to chance); skipped where no
    method has a value. Rows: task, question, method, label, value, target, sentence."""
    rows = []
    for task in summary["task"].unique():
        part = summary[summary["task"] == task]
        methods = part[~part["method"].isin(("original", "retrain"))].set_index("method")
        for question, (attack, text) in GUIDE_QUESTIONS.items():
            if attack not in methods or methods[attack].isna().all():
                continue
            target = _target(part, attack)
            if math.isnan(target):
                continue
            best = (methods[attack] - target).abs().idxmin()
            r = methods.loc[best]
            rows.append({"task": task, "question": question, "method": best, "label": r["label"],
                         "value": float(r[attack]), "target": target,
                         "sentence": f"{text}: **{r['label']}** ({attack} {r[attack]:.3f}, retraining {target:.3f})"})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- figures

def plot_ulira_curve(curve: pd.DataFrame, labels: Mapping[str, str] | None = None):
    """U-LiRA's AUC (left) and TPR at 1 % FPR (right) against the number of shadow pairs used,
    one line per method (mean over seeds, bars: min to max); the dotted line is chance."""
    from ..figures import legend_below, method_colors, panels

    fig, axes = panels(2, panel_height=3.2)
    colors = method_colors(curve["method"])
    for method, part in curve.groupby("method", sort=False):
        for ax, col in zip(axes, ("ulira_auc", "ulira_tpr_at_1pct")):
            g = part.groupby("n_shadows")[col]
            mean, low, high = g.mean(), g.min(), g.max()
            ax.errorbar(mean.index, mean, yerr=[mean - low, high - mean], fmt="o-", ms=4, capsize=2,
                        color=colors[method], label=(labels or {}).get(method, method))
    for ax, col, chance, name in ((axes[0], "ulira_auc", 0.5, "AUC"), (axes[1], "ulira_tpr_at_1pct", 0.01,
                                                                        "TPR at 1% FPR")):
        ax.axhline(chance, color="k", ls=":", lw=0.8)
        ax.set(xlabel="shadow pairs used", ylabel=f"U-LiRA {name}")
        ax.grid(alpha=0.3)
    legend_below(fig, axes[:1])
    return fig
