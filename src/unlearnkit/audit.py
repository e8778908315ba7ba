"""Does it really forget? A per-example membership attack, a relearning test and a probe test.

The book's other attacks (:mod:`unlearnkit.metrics`) are population attacks: one threshold
(or SVC) on a loss-like feature for all samples. The three tests here look harder:

* **U-LiRA** (Hayes et al., *Inexact unlearning needs more careful evaluations to avoid a
  false sense of privacy*, SaTML 2025, arXiv:2403.01218), built on LiRA's per-example statistic
  (Carlini et al., *Membership inference attacks from first principles*, IEEE S&P 2022, the
  online attack of its Algorithm 1):
  the logit-scaled true-class confidence ``φ = log(p / (1 − p))`` of each target example
  under many shadow models, one Gaussian per example for models that *forgot* it (trained on
  it, then unlearned) and one for models that *never saw* it (retrained without it), and the
  likelihood ratio of a held-out model's φ under the two. :func:`logit_confidence`,
  :func:`lira_scores` and :func:`lira_attack` work on arrays (testable on planted numbers);
  :func:`shadow_plan`, :func:`train_shadows` and :func:`unlearned_phi` build the shadows;
  :func:`ulira_attack` and :func:`ulira_against_n` score them.
* **Relearning** (Siddiqui et al., *From Dormant to Deleted: Tamper-Resistant Unlearning Through
  Weight-Space Regularization*, NeurIPS 2025, arXiv:2505.22310; the relearning-time idea of Golatkar et al.
  2020): fine-tune a copy for a small fixed budget (SGD steps, learning rate) on retain data,
  or with ``k`` forget samples, and measure how much forget accuracy comes back
  (:func:`relearn`, :func:`relearn_test`).
* **Probe**: a logistic regression on frozen penultimate features, trained on held-out data,
  evaluated on the forget set (:func:`probe_fa`): how much is still linearly recoverable.

Every number is a fraction in [0, 1] except the likelihood-ratio scores (log ratios). Compare
each with the retrained model given the same test: that is the model that truly never saw the
forget set. Randomness comes from explicit seeds (:func:`unlearnkit.runtime.generator`); bad
arguments raise before any training.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import dryrun
from .config import as_dict, check_choice, check_range
from .data.core import Split, TensorSet
from .metrics import Timer, at_most
from .runtime import generator, single_threaded
from .train import (TrainConfig, cached_train, channels_last_on_cpu, penultimate_features, predict, to_input,
                    train_model)

FPRS = (0.01, 0.001)
"""The false-positive rates at which the attacks report their true-positive rate (1 % and 0.1 %)."""
VARIANCES = ("global", "per_example", "fixed")
"""How :func:`lira_scores` fits the Gaussians' variances (see there)."""
VARIANCE_FLOOR = 1e-8
"""Smallest variance a Gaussian fit may have (identical φ values would divide by zero)."""


# ---------------------------------------------------------------------------- checks

def _check_int(name: str, value, low: int, high: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {low}{hint}; got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"{low}..{high}"
        raise ValueError(f"{name}={value!r} is out of range; allowed: an int {allowed}{hint}")
    return int(value)


def check_n_shadows(n: int) -> int:
    """A shadow count must be an int >= 2 (one shadow is held out, the others fit the Gaussians)."""
    return _check_int("n_shadows", n, 2, hint=" (one is held out, the rest fit the Gaussians)")


def _check_shadows(n: int, variance: str) -> int:
    """``n`` shadows are enough for U-LiRA with ``variance``: :func:`check_n_shadows`, and at
    least 3 for ``per_example`` (each example's own variance needs two "in" and two "out"
    values on the shadows left when one is held out)."""
    check_choice("variance", variance, VARIANCES)
    check_n_shadows(n)
    if variance == "per_example" and n < 3:
        raise ValueError(f"variance='per_example' needs at least 3 shadows (leave-one-shadow-out must leave each "
                         f"example two 'in' and two 'out' shadows to fit its own variances); got {n}")
    return n


def _check_finite(name: str, values: np.ndarray, *, nan_ok: bool = False) -> np.ndarray:
    """``values`` if no entry is ±inf (one spoils every mean and pooled variance it enters) nor,
    unless ``nan_ok``, NaN (it would drop an example from one side of a paired attack only);
    else a ValueError naming ``name`` and how many entries are bad."""
    n_inf, n_nan = int(np.isinf(values).sum()), 0 if nan_ok else int(np.isnan(values).sum())
    if n_inf:
        raise ValueError(f"{name} has {n_inf} infinite (±inf) of {values.size} entries; every value must be finite")
    if n_nan:
        raise ValueError(f"{name} has {n_nan} NaN of {values.size} entries; drop those examples from every argument "
                         "or fix the model that gave them")
    return values


def check_fprs(fprs: Sequence[float]) -> tuple[float, ...]:
    """Each false-positive rate must be a number in the open interval (0, 1)."""
    fprs = tuple(fprs)
    if not fprs:
        raise ValueError("fprs is empty; give at least one false-positive rate in (0, 1)")
    for f in fprs:
        if isinstance(f, bool) or not isinstance(f, (int, float)):
            raise TypeError(f"false-positive rate must be a number in (0, 1); got {f!r}")
        check_range("false-positive rate", f, 0, 1, low_open=True, high_open=True)
    return fprs


def fpr_label(fpr: float) -> str:
    """The column name of the TPR at ``fpr``: 0.01 → ``tpr_at_1pct``, 0.001 → ``tpr_at_0_1pct``."""
    return "tpr_at_" + f"{100 * fpr:g}".replace(".", "_") + "pct"


# ---------------------------------------------------------------------------- the statistic

def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """LiRA's ``φ = log(p_y / (1 − p_y))`` of ``p = softmax(logits)``, ``[N]`` (float64).

    Computed stably as ``z_y − logsumexp_{c≠y} z_c`` (Carlini et al. 2022: the logit scaling
    makes the per-example confidence approximately Gaussian). logits ``[N, K]``, y ``[N]``,
    finite (NaN or ±inf raise).
    """
    z = logits.detach().double().cpu()
    _check_finite("logits", z.numpy())
    y = y.cpu()
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], -math.inf)
    return (true - torch.logsumexp(others, 1)).numpy()


def model_phi(model: nn.Module, data: TensorSet, *, device) -> np.ndarray:
    """:func:`logit_confidence` of ``model`` on every sample of ``data``, ``[N]``."""
    return logit_confidence(predict(model, data, device=device), data.y)


def _as_matrix(values, name: str, *, nan_ok: bool = False) -> np.ndarray:
    """φ ``values`` as a float64 ``[n_models, n_examples]`` array, checked by :func:`_check_finite`."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n_models, n_examples]; got shape {arr.shape}")
    return _check_finite(name, arr, nan_ok=nan_ok)


def _gaussians(phi: np.ndarray, mask: np.ndarray, variance: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean ``[E]`` and variance ``[E]`` of the entries of ``phi [M, E]`` where ``mask``.

    ``global``: one variance pooled over examples (the within-example sum of squares over its
    degrees of freedom); ``per_example``: each example's own (NaN below two samples); ``fixed``:
    the variance (ddof 0) of all selected values, every example together. Where no example has
    two samples ``global`` falls back to ``fixed``.
    """
    counts = mask.sum(0)
    filled = np.where(mask, phi, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(counts > 0, filled.sum(0) / np.maximum(counts, 1), np.nan)
        sq = np.where(mask, (phi - mu) ** 2, 0.0).sum(0)
        if variance == "per_example":
            var = np.where(counts > 1, sq / np.maximum(counts - 1, 1), np.nan)
        else:
            dof = (counts - 1).clip(min=0).sum()
            spread = np.var(phi[mask]) if mask.any() else np.nan
            var = np.full(phi.shape[1], sq.sum() / dof if variance == "global" and dof > 0 else spread)
    return mu, np.maximum(var, VARIANCE_FLOOR)


def _log_normal(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2 * math.pi * var) - (x - mu) ** 2 / (2 * var)


def lira_scores(phi: np.ndarray, member: np.ndarray, phi_target: np.ndarray, *,
                variance: str = "global") -> np.ndarray:
    """Per-example log likelihood ratios ``log N(φ_t; μ_in, σ²_in) − log N(φ_t; μ_out, σ²_out)``.

    phi:        ``[n_models, n_examples]`` φ of each example under each shadow model; NaN marks
                an entry that takes no part (±inf raises).
    member:     bool ``[n_models, n_examples]``: True where the model is an "in" model for the
                example (for U-LiRA: it was trained on it and then unlearned it), False where
                it is "out" (never saw it).
    phi_target: ``[n_targets, n_examples]`` φ under the models attacked (finite: NaN or ±inf raise).
    Returns ``[n_targets, n_examples]`` (higher = more likely "in"); NaN where an example has
    no "in" or no "out" sample. The means are fitted per example (Carlini et al. 2022, the
    online attack, Algorithm 1), the variances by ``variance``:

    * ``"global"``: one variance per side shared by every example, the within-example
      variance pooled over examples, fitted separately on the "in" and on the "out" values
      (ours; it is not the reference's fixed variance).
    * ``"per_example"``: each example's own variance per side (NaN below two values a side).
    * ``"fixed"``: the fixed variance of Carlini et al.'s LiRA code (``fix_variance``), which
      they found better with few shadow models: the variance of all "in" values, every example
      together (between-example spread included), used for both sides. Their code also takes
      medians for the means and first truncates each example to the smallest "in" count.
    """
    check_choice("variance", variance, VARIANCES)
    phi, phi_target = _as_matrix(phi, "phi", nan_ok=True), _as_matrix(phi_target, "phi_target")
    member = np.asarray(member, dtype=bool)
    if member.shape != phi.shape or phi_target.shape[1] != phi.shape[1]:
        raise ValueError(f"shapes disagree: phi {phi.shape}, member {member.shape}, phi_target {phi_target.shape}; "
                         "phi and member must match and phi_target must have as many examples (columns)")
    present = ~np.isnan(phi)
    mu_in, var_in = _gaussians(phi, present & member, variance)
    mu_out, var_out = _gaussians(phi, present & ~member, variance)
    if variance == "fixed":
        var_out = var_in                                   # the reference uses the "in" variance for both
    return _log_normal(phi_target, mu_in, var_in) - _log_normal(phi_target, mu_out, var_out)


def roc_metrics(scores: np.ndarray, labels: np.ndarray, fprs: Sequence[float] = FPRS) -> dict:
    """AUC and the TPR at each of ``fprs`` (linear interpolation on the ROC of
    :func:`sklearn.metrics.roc_curve`, taking the highest TPR at a repeated FPR), of ``scores``
    (higher = member) against bool ``labels``. Keys ``auc``, :func:`fpr_label` of each FPR,
    ``n_members``, ``n_nonmembers``. With fewer than ``1 / fpr`` non-members the TPR at ``fpr``
    is read between the ROC's first points and is coarse."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fprs = check_fprs(fprs)
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels, dtype=bool).ravel()
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    if labels.all() or not labels.any():
        raise ValueError(f"the attack needs members and non-members to score; got {labels.sum()} members "
                         f"and {(~labels).sum()} non-members")
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    unique = np.unique(fpr)
    best = np.array([tpr[fpr == f].max() for f in unique])
    out = {"auc": float(roc_auc_score(labels, scores))}
    out.update({fpr_label(f): float(np.interp(f, unique, best)) for f in fprs})
    return {**out, "n_members": int(labels.sum()), "n_nonmembers": int((~labels).sum())}


def lira_attack(phi: np.ndarray, member: np.ndarray, groups: Sequence[int], *, score: np.ndarray | None = None,
                fprs: Sequence[float] = FPRS, variance: str = "global") -> dict:
    """Leave-one-group-out LiRA: for each group of models (a shadow's pair), fit the Gaussians on
    the other groups, score this group's models, and pool every score into one ROC.

    phi, member: ``[n_models, n_examples]`` as in :func:`lira_scores`. groups: ``[n_models]``
    group id of each model (models of one group are held out together; at least 2 groups).
    score: bool ``[n_models, n_examples]``, the entries scored when their model is held out
    (default: every non-NaN entry; naming a NaN entry raises); the label of a scored entry is
    its ``member`` value. Returns :func:`roc_metrics` plus ``n_groups``.
    """
    phi = _as_matrix(phi, "phi", nan_ok=True)
    member = np.asarray(member, dtype=bool)
    groups = np.asarray(groups)
    if groups.shape != (phi.shape[0],):
        raise ValueError(f"groups must have one id per model ({phi.shape[0]}); got shape {groups.shape}")
    ids = np.unique(groups)
    check_n_shadows(len(ids))
    score = ~np.isnan(phi) if score is None else np.asarray(score, dtype=bool)
    _check_finite("phi where score is True", phi[score])
    all_scores, all_labels = [], []
    for g in ids:
        held = groups == g
        s = lira_scores(phi[~held], member[~held], np.nan_to_num(phi[held]), variance=variance)
        all_scores.append(s[score[held]])
        all_labels.append(member[held][score[held]])
    return {**roc_metrics(np.concatenate(all_scores), np.concatenate(all_labels), fprs), "n_groups": len(ids)}


def _ulira_arrays(phi_unlearned, phi_retrained, forgotten, variance):
    phi_u, phi_r = _as_matrix(phi_unlearned, "phi_unlearned"), _as_matrix(phi_retrained, "phi_retrained")
    forgotten = np.asarray(forgotten, dtype=bool)
    if not (phi_u.shape == phi_r.shape == forgotten.shape):
        raise ValueError(f"phi_unlearned {phi_u.shape}, phi_retrained {phi_r.shape} and forgotten {forgotten.shape} "
                         "must all be [n_shadows, n_targets]")
    _check_shadows(phi_u.shape[0], variance)
    return phi_u, phi_r, forgotten


def ulira_attack(phi_unlearned: np.ndarray, phi_retrained: np.ndarray, forgotten: np.ndarray, *,
                 fprs: Sequence[float] = FPRS, variance: str = "global") -> dict:
    """U-LiRA (Hayes et al. 2025) from the shadows' φ, leave-one-shadow-out.

    phi_unlearned: ``[n_shadows, n_targets]`` φ of each target example under shadow i's
    unlearned model (its original, trained on a random half of the pool, unlearned with
    ``forget_i`` = the targets in that half). phi_retrained: the same under shadow i's
    retrained model (trained on the half without ``forget_i``: it never saw any target).
    forgotten: bool ``[n_shadows, n_targets]``, target j in ``forget_i``. Every φ must be
    finite (NaN or ±inf raise); variance: see :func:`lira_scores` (``per_example`` needs 3
    shadows, the others 2).

    For each target the "in" Gaussian is fitted on the unlearned models that forgot it, the
    "out" Gaussian on every retrained model (none saw it); each shadow in turn is held out and
    its pair is attacked on its forget set: the unlearned model's entries are members, the
    retrained model's entries of the same examples non-members (a paired design). AUC 0.5 and
    TPR = FPR mean the unlearned models cannot be told from retraining. Returns
    :func:`roc_metrics` plus ``n_groups``.
    """
    phi_u, phi_r, forgotten = _ulira_arrays(phi_unlearned, phi_retrained, forgotten, variance)
    n = phi_u.shape[0]
    phi = np.concatenate([np.where(forgotten, phi_u, np.nan), phi_r])
    member = np.concatenate([forgotten, np.zeros_like(forgotten)])
    score = np.concatenate([forgotten, forgotten])
    return lira_attack(phi, member, np.concatenate([np.arange(n), np.arange(n)]), score=score, fprs=fprs,
                       variance=variance)


def ulira_against_n(phi_unlearned: np.ndarray, phi_retrained: np.ndarray, forgotten: np.ndarray,
                    ns: Sequence[int], *, fprs: Sequence[float] = FPRS, variance: str = "global") -> pd.DataFrame:
    """:func:`ulira_attack` on the first ``n`` shadows for each ``n`` of ``ns`` (does it settle?).

    Rows: ``n_shadows``, ``auc`` and the TPR columns of :func:`roc_metrics`. Each ``n`` must be
    in 2..n_shadows (3.. with ``per_example``).
    """
    phi_u, phi_r, forgotten = _ulira_arrays(phi_unlearned, phi_retrained, forgotten, variance)
    check_fprs(fprs)
    ns = [_check_shadows(_check_int("n in ns", n, 2, phi_u.shape[0], " (shadows available)"), variance)
          for n in ns]
    rows = [{"n_shadows": n, **ulira_attack(phi_u[:n], phi_r[:n], forgotten[:n], fprs=fprs, variance=variance)}
            for n in ns]
    return pd.DataFrame(rows).drop(columns=["n_groups"])


# ---------------------------------------------------------------------------- the shadows

@dataclass(frozen=True)
class ShadowPlan:
    """Which pool examples each shadow trains on, and which of them are targets.

    halves: bool ``[n_shadows, n_pool]``, shadow i's training half. targets: long
    ``[n_targets]``, pool indices of the target examples. seed: what drew them.
    """

    halves: torch.Tensor
    targets: torch.Tensor
    seed: int

    @property
    def n_shadows(self) -> int:
        return int(self.halves.shape[0])

    @property
    def forgotten(self) -> torch.Tensor:
        """bool ``[n_shadows, n_targets]``: target j is in shadow i's half, hence in its forget set."""
        return self.halves[:, self.targets]


def shadow_plan(n_pool: int, n_targets: int, n_shadows: int, *, seed: int) -> ShadowPlan:
    """``n_targets`` target examples drawn from a pool of ``n_pool`` (``generator(seed)``) and
    ``n_shadows`` random halves, shadow i's from ``generator(seed * 1_000_003 + 1 + i)`` (so a
    larger ``n_shadows`` keeps the first shadows)."""
    check_n_shadows(n_shadows)
    _check_int("n_pool", n_pool, 2)
    _check_int("n_targets", n_targets, 1, n_pool, f" (the pool has {n_pool} examples)")
    targets = torch.randperm(n_pool, generator=generator(seed))[:n_targets].sort().values
    halves = torch.zeros(n_shadows, n_pool, dtype=torch.bool)
    for i in range(n_shadows):
        halves[i, torch.randperm(n_pool, generator=generator(seed * 1_000_003 + 1 + i))[:n_pool // 2]] = True
    return ShadowPlan(halves, targets, seed)


def shadow_split(pool: TensorSet, plan: ShadowPlan, i: int, *, test: TensorSet, num_classes: int,
                 val: TensorSet | None = None, unseen: TensorSet | None = None) -> Split:
    """Shadow i's unlearning split: retain = its half without the targets, forget = the targets
    in its half; test / val / unseen are the task's held-out parts."""
    is_target = torch.zeros(len(pool), dtype=torch.bool)
    is_target[plan.targets] = True
    forget = plan.halves[i] & is_target
    if not forget.any():
        raise ValueError(f"shadow {i} holds no target example; use more targets (n_targets={len(plan.targets)})")
    return Split(retain=pool.subset(plan.halves[i] & ~is_target), forget=pool.subset(forget), test=test,
                 num_classes=num_classes, val=val, unseen=unseen,
                 info={"scenario": "ulira_shadow", "shadow": i, "seed": plan.seed})


@dataclass
class Shadows:
    """Trained shadows: per shadow its split, original (trained on its half) and retrained
    model (trained on the half without its forget set), and the target set ``targets``
    (the pool rows of ``plan.targets``). infos: ``cached_train`` info per model
    (``{"original": [...], "retrained": [...]}``), keys: the cache keys of the originals."""

    plan: ShadowPlan
    targets: TensorSet
    splits: list[Split]
    originals: list[nn.Module]
    retrained: list[nn.Module]
    infos: dict
    keys: list[dict]


def train_shadows(pool: TensorSet, plan: ShadowPlan, build: Callable[[], nn.Module], train: TrainConfig, *,
                  test: TensorSet, num_classes: int, device, val: TensorSet | None = None,
                  key: dict | None = None, cache_dir=None) -> Shadows:
    """Train every shadow pair of ``plan`` with ``train`` (shadow i's recipe seeded
    ``train.seed * 1000 + i``; weights from ``build()`` under that seed).

    key: a JSON-ready description of the pool and task; with it every model goes through the
    model cache (:func:`unlearnkit.train.cached_train`) keyed by ``key``, the role, the shadow,
    its recipe and the plan's seed and targets; without it nothing is cached.
    """
    splits, originals, retrained, keys = [], [], [], []
    infos = {"original": [], "retrained": []}
    for i in range(plan.n_shadows):
        split = shadow_split(pool, plan, i, test=test, num_classes=num_classes, val=val)
        cfg = replace(train, seed=train.seed * 1000 + i)
        half = pool.subset(plan.halves[i])
        base = {"shadow": i, "plan_seed": plan.seed, "n_pool": len(pool), "train": as_dict(cfg), "data": key}
        for role, data, extra in (("original", half, {}),
                                  ("retrained", split.retain, {"targets": plan.targets.tolist()})):
            model_key = {"role": f"ulira_{role}", **base, **extra}
            model, info = _fit(model_key if key is not None else None, build, data, cfg, device, cache_dir)
            (originals if role == "original" else retrained).append(model)
            infos[role].append(info)
            if role == "original":
                keys.append(model_key)
        splits.append(split)
    return Shadows(plan, pool.subset(plan.targets), splits, originals, retrained, infos, keys)


def _fit(key, build, data, cfg, device, cache_dir):
    def seeded_build():
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            return build()

    def fit(model):
        return train_model(model, data, cfg, device=device, progress=False, desc="shadow")

    if key is None:
        return fit(seeded_build()).eval(), {"hit": False}
    return cached_train(key, seeded_build, fit, device=device, cache_dir=cache_dir)


UnlearnFn = Callable[[nn.Module, Split, int], nn.Module]
"""``fn(original, split, seed) -> unlearned model`` (a method outside the registry, e.g. in tests)."""


def unlearned_phi(shadows: Shadows, method: str | UnlearnFn, *, device, seed: int = 0, profile: str = "cpu",
                  settings: dict | None = None, key: dict | None = None, cache_dir=None) -> tuple[np.ndarray, float]:
    """``(φ [n_shadows, n_targets], seconds)``: φ of the targets under each shadow's unlearned
    model, and the summed wall time of the unlearning runs (a cached model's is the time of the
    run that made it; 0 for ``"original"`` and for callables).

    method: a registry name (run by :func:`unlearnkit.methods.unlearn` at ``profile`` with
    ``settings``, seed ``seed * 1000 + i`` for shadow i), ``"original"`` (no unlearning: the
    original itself, the attack's upper reference), or an :data:`UnlearnFn`. key: with a
    registry name, a JSON-ready dict (e.g. a code digest) that, with the method, its full
    config, the seed and the shadow's original, keys each unlearned model in the model cache.
    """
    from .methods import get_method, unlearn

    if method == "original":
        return np.stack([model_phi(m, shadows.targets, device=device) for m in shadows.originals]), 0.0
    if isinstance(method, str):
        config = as_dict(get_method(method).config.for_profile(profile, settings))  # validates before work
    elif not callable(method):
        raise TypeError(f"method must be a registry name, 'original' or a callable; got {method!r}")
    phis, seconds = [], 0.0
    for i, (original, split) in enumerate(zip(shadows.originals, shadows.splits)):
        run_seed = seed * 1000 + i
        if not isinstance(method, str):
            model = method(original, split, run_seed).eval()
            phis.append(model_phi(model, shadows.targets, device=device))
            continue
        else:
            def fit(_, original=original, split=split, run_seed=run_seed):
                return unlearn(method, original, split, profile=profile, device=str(device), seed=run_seed,
                               **(settings or {})).model

            if key is None:
                with Timer(device) as timer:
                    model = fit(None)
                seconds += timer.seconds
            else:
                entry = {"role": "ulira_unlearned", "original": shadows.keys[i], "method": method,
                         "config": config, "method_seed": run_seed, "targets": shadows.plan.targets.tolist(),
                         "extra": key}
                model, info = cached_train(entry, lambda original=original: copy.deepcopy(original), fit,
                                           device=device, cache_dir=cache_dir)
                seconds += info["train_seconds"]
        phis.append(model_phi(model, shadows.targets, device=device))
    return np.stack(phis), seconds


def retrained_phi(shadows: Shadows, *, device) -> np.ndarray:
    """φ ``[n_shadows, n_targets]`` of the targets under each shadow's retrained model."""
    return np.stack([model_phi(m, shadows.targets, device=device) for m in shadows.retrained])


# ---------------------------------------------------------------------------- relearning

def check_relearn(steps: int, lr: float, batch_size: int, k: int | None = None, n_forget: int | None = None) -> None:
    """steps and batch_size ints >= 1, lr > 0, and k (when given) in 1..n_forget − 1 (at least
    one forget sample must stay out of the relearning to measure it on)."""
    _check_int("relearning steps", steps, 1, hint=" (the relearning budget)")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"relearning lr must be a number > 0; got {lr!r}")
    check_range("relearning lr", lr, 0, low_open=True)
    _check_int("relearning batch_size", batch_size, 1)
    if k is not None:
        high = None if n_forget is None else n_forget - 1
        _check_int("k (forget samples relearnt)", k, 1, high,
                   "" if n_forget is None else f" (the forget set has {n_forget}; one must stay out)")


def relearn(model: nn.Module, data: TensorSet, *, steps: int, lr: float, batch_size: int, seed: int, device,
            extra: TensorSet | None = None, momentum: float = 0.9, weight_decay: float = 5e-4) -> nn.Module:
    """A copy of ``model`` after ``steps`` SGD steps (momentum, weight decay, train mode) of
    cross-entropy on shuffled batches of ``batch_size`` from ``data`` (reshuffled at each pass,
    order from ``generator(seed)``); ``extra`` (e.g. ``k`` forget samples) joins every batch.
    Returns the copy in eval mode; ``model`` is untouched. A dry run (:mod:`unlearnkit.dryrun`)
    caps the steps and the batch (before ``extra`` joins it) like every training."""
    check_relearn(steps, lr, batch_size)
    if len(data) == 0:
        raise ValueError("cannot relearn from an empty data set")
    steps = dryrun.train_steps(steps)
    device = torch.device(device)
    work = copy.deepcopy(model).to(device).train()
    opt = torch.optim.SGD(work.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = generator(seed)
    done = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), channels_last_on_cpu(work, device):
        torch.manual_seed(seed)
        while done < steps:
            for x, y in data.batches(batch_size, shuffle=True, generator=gen):
                x, y = dryrun.cap_batch(x, y)
                if extra is not None:
                    x, y = torch.cat([x, extra.x]), torch.cat([y, extra.y])
                loss = F.cross_entropy(work(to_input(x, device)), y.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                if done == steps:
                    break
    return work.eval()


def relearn_split(forget: TensorSet, k: int, seed: int) -> tuple[TensorSet, TensorSet]:
    """``(k forget samples, the rest)``: a seeded draw (``generator(seed)``) of ``k`` of ``forget``."""
    check_relearn(1, 1.0, 1, k, len(forget))
    order = torch.randperm(len(forget), generator=generator(seed))
    return forget.subset(order[:k].sort().values), forget.subset(order[k:].sort().values)


def relearn_test(model: nn.Module, split: Split, *, steps: int, lr: float, batch_size: int, k: int, seed: int,
                 device, max_eval: int | None = None) -> dict:
    """Forget accuracy after relearning, two ways, both on the forget samples not relearnt.

    ``relearn_fa``: ``steps`` steps on the retain set only. ``relearn_fa_k``: the same steps
    with ``k`` forget samples in every batch beside the retain samples (so the model cannot
    score by predicting their label everywhere). Both are measured on the forget set less those
    ``k`` samples (:func:`relearn_split`, seeded; at most ``max_eval`` of them, a seeded
    subsample), as is ``fa_before``. Give the retrained model the same test: the gap between
    the two is what the unlearned model still remembers.
    """
    check_relearn(steps, lr, batch_size, k, len(split.forget))
    if max_eval is not None:
        _check_int("max_eval", max_eval, 1)
    shown, rest = relearn_split(split.forget, k, seed)
    rest = at_most(rest, max_eval, seed)
    out = {"fa_before": _acc(model, rest, device)}
    for name, extra in (("relearn_fa", None), ("relearn_fa_k", shown)):
        relearnt = relearn(model, split.retain, steps=steps, lr=lr, batch_size=batch_size, seed=seed, device=device,
                           extra=extra)
        out[name] = _acc(relearnt, rest, device)
    return out


def _acc(model: nn.Module, data: TensorSet, device) -> float:
    return (predict(model, data, device=device).argmax(1) == data.y).float().mean().item()


# ---------------------------------------------------------------------------- probe

def probe_data(split: Split) -> TensorSet:
    """The probe's training set: held-out data of every class the task has, never the forget
    set: the validation part (the test part when there is none), plus ``forget_test`` where
    the split has one (the forgotten class's test images, which full-class forgetting removes
    from val and test)."""
    parts = [split.val if split.val is not None else split.test]
    if split.forget_test is not None:
        parts.append(split.forget_test)
    return TensorSet.concat(parts) if len(parts) > 1 else parts[0]


def probe_fa(model: nn.Module, split: Split, *, device, seed: int = 0, max_train: int | None = None,
             max_eval: int | None = None, C: float = 1.0) -> float:
    """Forget accuracy of a linear probe on ``model``'s frozen penultimate features.

    A logistic regression (standardised features, ``C``) is trained on :func:`probe_data`
    (at most ``max_train`` samples, seeded) and scored on ``split.forget`` (at most
    ``max_eval`` of it, seeded): how much of the forget set's labels the features still carry,
    whatever the head says.
    """
    for name, value in (("probe max_train", max_train), ("probe max_eval", max_eval)):
        if value is not None:
            _check_int(name, value, 2)
    train = at_most(probe_data(split), max_train, seed)
    forget = at_most(split.forget, max_eval, seed)
    feats = [penultimate_features(model, d, device=device, dtype=torch.float32).numpy() for d in (train, forget)]
    return _probe(feats[0], train.y.numpy(), feats[1], forget.y.numpy(), C, seed)


@single_threaded
def _probe(x_train, y_train, x_eval, y_eval, C: float, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    clf.fit(x_train, y_train)
    return float((clf.predict(x_eval) == y_eval).mean())
