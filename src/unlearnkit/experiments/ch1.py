"""Chapter 1 experiments: distributional unlearning by selective data removal.

Allouah, Guerraoui, Koyejo (2025). The chapter checks Prop. 1 numerically, simulates the
random / selective removal rates of Table 1, and reproduces Table 2: the deletion budget
(fraction of the unwanted set S1) needed to halve an unlearning metric, for every scorer of
:mod:`unlearnkit.selection`, on Gaussians, SMS spam, hate speech and CIFAR-10 "cat".

Every experiment returns a long ``pandas.DataFrame`` (one row per seed × scorer × budget), so
the notebook only plots and summarises. Profile defaults live in :data:`PAPER` and :data:`CHANGES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import dryrun, facts, theory
from ..config import (SMOKE_WHY, Change, build_config, change_rows, changes_for, check_choice, check_profile,
                      check_range, with_changes)
from ..metrics import best_of
from ..runtime import generator, single_threaded
from ..selection import SCORERS, deletion_order, removal_mask, score

SELECTIVE = ("COS-MU2", "MAHA-MU2", "LR-COS", "LR-MAHA")
"""The paper's cross-distributional scorers; Table 2's "selective" is the best of them."""


# ---------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Ch1Config:
    """Everything chapter 1 runs, per profile (see :data:`PAPER` and :data:`CHANGES`).

    seeds: repetitions of every curve (data draw, split, random scorer).
    budgets: deletion budgets, fractions of the unwanted set, increasing from 0 to 1.
    frontier_dims / frontier_trials: random (μ1, μ2, Σ) problems for the Prop. 1 check.
    gauss_*: Table 2 Gaussians: dimension, n1 = n2, separations δ = ‖μ1 − μ2‖_{Σ⁻¹} (κ = δ²/2).
    table1_*: Table 1 simulation (n2 ≫ n1): n1, separation, dimensions.
    text_data: ``"synthetic"`` or the real corpora (SMS Spam, Davidson).
    text_svd_dim: TruncatedSVD size of the TF-IDF features the scorers see.
    toxic_retain_ratio: retained tweets kept in training, as a multiple of the hate tweets.
    image_per_class: training images per class drawn (per seed) for the linear probe; the
    images, feature model and its recipe are the shared CIFAR-10 task of
    :func:`unlearnkit.experiments.tasks.cifar10_task` (synthetic images at ``smoke``).
    synergy_*: Table 5: the scorer and budget choosing the forget set of SalUn / NegGrad+, the
    methods, their epochs (``None``: each method's own default at this profile) and a cap on
    the retained images per class handed to them (``None``: all).
    bench_n / bench_d: size of the MAHA-MU2 vs matrix-product timing.
    """

    profile: str
    seeds: int
    budgets: tuple[float, ...]
    frontier_dims: tuple[int, ...]
    frontier_trials: int
    gauss_dim: int
    gauss_n: int
    gauss_low_sep: float
    gauss_high_sep: float
    table1_n1: int
    table1_sep: float
    table1_dims: tuple[int, ...]
    text_data: str
    text_svd_dim: int
    text_test_fraction: float
    toxic_retain_ratio: float
    image_per_class: int
    synergy_scorer: str
    synergy_budget: float
    synergy_methods: tuple[str, ...]
    synergy_epochs: int | None
    synergy_retain_per_class: int | None
    bench_n: int
    bench_d: int

    def __post_init__(self):
        check_profile(self.profile)
        check_range("seeds", self.seeds, 1)
        budgets = np.asarray(self.budgets, dtype=float)
        if len(budgets) < 3 or budgets[0] != 0 or budgets[-1] != 1 or np.any(np.diff(budgets) <= 0):
            raise ValueError(f"budgets={self.budgets} must increase from 0 to 1 with at least 3 values")
        for name in ("frontier_trials", "gauss_dim", "gauss_n", "table1_n1", "text_svd_dim",
                     "image_per_class", "bench_n", "bench_d"):
            check_range(name, getattr(self, name), 1)
        for name in ("gauss_low_sep", "gauss_high_sep", "table1_sep"):
            check_range(name, getattr(self, name), 0, low_open=True)
        if self.gauss_low_sep >= self.gauss_high_sep:
            raise ValueError(f"gauss_low_sep={self.gauss_low_sep} must be below gauss_high_sep={self.gauss_high_sep}")
        check_range("text_test_fraction", self.text_test_fraction, 0, 1, low_open=True, high_open=True)
        check_range("toxic_retain_ratio", self.toxic_retain_ratio, 0, low_open=True)
        check_range("synergy_budget", self.synergy_budget, 0, 1, low_open=True)
        check_choice("text_data", self.text_data, ("synthetic", "real"))
        check_choice("synergy_scorer", self.synergy_scorer, SCORERS)
        from ..methods import available_methods

        for method in self.synergy_methods:
            check_choice("synergy method", method, available_methods())
        for name in ("synergy_epochs", "synergy_retain_per_class"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 1)


def budget_grid(points: int) -> tuple[float, ...]:
    """``points`` evenly spaced deletion budgets from 0 to 1, as plain floats."""
    return tuple(round(float(b), 6) for b in np.linspace(0, 1, points))


FINE_GRID = budget_grid(101)
"""The grid of the cheap closed-form curves (Table 1 simulation)."""

PAPER = dict(seeds=10, budgets=budget_grid(21), frontier_dims=(1, 2, 5, 20, 100), frontier_trials=10,
             gauss_dim=10, gauss_n=10_000, gauss_low_sep=0.5, gauss_high_sep=2.5, table1_n1=100_000,
             table1_sep=0.3, table1_dims=(1, 10, 100), text_data="real", text_svd_dim=100,
             text_test_fraction=0.3, toxic_retain_ratio=5.0, image_per_class=4500, synergy_scorer="LR-COS",
             synergy_budget=0.6, synergy_methods=("salun", "neggrad_plus"), synergy_epochs=None,
             synergy_retain_per_class=None, bench_n=1_000_000, bench_d=384)
"""The chapter at ``paper``: the paper's datasets and method settings, 10 seeds, 21 budgets."""

_CPU_TIME = "fewer repetitions and smaller sizes: the chapter runs in about 2.5 minutes on 2 CPU cores (153 s cold)"

CHANGES: dict[str, dict[str, Change]] = {
    "paper": {},
    "cpu": {
        **changes_for(_CPU_TIME, seeds=5, budgets=budget_grid(11), frontier_trials=3, gauss_n=2000,
                      table1_n1=20_000, bench_n=100_000),
        "frontier_dims": Change((1, 2, 5, 20), _CPU_TIME + "; d = 100 runs at paper"),
        "table1_dims": Change((1, 10), _CPU_TIME + "; d = 100 runs at paper"),
        "image_per_class": Change(300, "the linear probe's CIFAR-10 features: 300 images a class instead of "
                                       "all 4,500 (the feature model is the shared task's original)"),
        "synergy_retain_per_class": Change(500, "SalUn / NegGrad+ see 500 retained images a class, "
                                                "so Table 5's runs take seconds each"),
    },
}
CHANGES["smoke"] = changes_for(
    SMOKE_WHY, seeds=2, budgets=budget_grid(6), frontier_dims=(1, 2, 5), frontier_trials=2, gauss_dim=5, gauss_n=200,
    table1_n1=1000, table1_dims=(1, 5), text_data="synthetic", text_svd_dim=10, image_per_class=40,
    synergy_epochs=1, bench_n=20_000, bench_d=64)
"""Each profile as its differences from :data:`PAPER`, with a reason per line."""


DRY_RUN = changes_for("dry run: one seed, a few samples", seeds=1, budgets=budget_grid(3), frontier_dims=(1, 2),
                      frontier_trials=1, gauss_n=200, table1_n1=500, table1_dims=(1, 5), text_svd_dim=8,
                      image_per_class=4, synergy_epochs=1, bench_n=2000, bench_d=64)
"""The chapter's lines in a dry run (:mod:`unlearnkit.dryrun`), on top of the profile's."""


def profile_changes(profile: str) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}`` of the chapter's profile block."""
    return change_rows(PAPER, CHANGES[check_profile(profile)], "chapter 1")


def profile_config(profile: str, **overrides) -> Ch1Config:
    """The validated chapter-1 config of ``profile`` with ``overrides`` (unknown names raise)."""
    check_profile(profile)
    values = with_changes(PAPER, CHANGES[profile])
    values = dryrun.apply(DRY_RUN, values)
    return build_config(Ch1Config, {"profile": profile, **values}, **overrides)


# ---------------------------------------------------------------------------- Gaussian problems

def random_covariance(dim: int, gen: torch.Generator, low: float = 0.3, high: float = 3.0) -> torch.Tensor:
    """Σ = Q diag(λ) Qᵀ, Q a random rotation, λ log-uniform in [low, high]; ``[dim, dim]`` float64."""
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    lam = torch.exp(math.log(low) + (math.log(high) - math.log(low)) * torch.rand(dim, generator=gen, dtype=torch.float64))
    return (q * lam) @ q.T


def gaussian_problem(dim: int, separation: float, seed: int, offset: float = 3.0):
    """Shared-covariance pair with ‖μ1 − μ2‖_{Σ⁻¹} = ``separation`` (κ = separation²/2).

    μ2 sits at Mahalanobis distance ``offset`` from the origin (cosine scores need an
    origin away from μ2); μ1 = μ2 + separation·Lv for a random unit v. Returns
    (μ1 ``[d]``, μ2 ``[d]``, Σ ``[d, d]``), float64.
    """
    gen = generator(seed)
    cov = random_covariance(dim, gen)
    chol = torch.linalg.cholesky(cov)
    u, v = (x / torch.linalg.vector_norm(x) for x in torch.randn(2, dim, generator=gen, dtype=torch.float64))
    mu2 = offset * chol @ u
    return mu2 + separation * chol @ v, mu2, cov


def sample_gaussian(mu: torch.Tensor, cov: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` draws of N(μ, Σ) as ``[n, d]`` float64: μ + Z Lᵀ."""
    z = torch.randn(n, len(mu), generator=gen, dtype=torch.float64)
    return mu + z @ torch.linalg.cholesky(cov).T


def frontier_check(dims: tuple[int, ...], trials: int, seed: int,
                   alpha_over_kappa: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 9.0)) -> pd.DataFrame:
    """Prop. 1 vs an optimiser on random problems: μ1, μ2 ~ N(0, I), Σ random.

    Rows: dim, trial, kappa, alpha, eps_formula = max(0, √α − √κ)², eps_numeric (SLSQP),
    abs_error.
    """
    rows = []
    for dim in dims:
        for trial in range(trials):
            gen = generator(seed * 7919 + dim * 101 + trial)
            mu1, mu2 = torch.randn(2, dim, generator=gen, dtype=torch.float64)
            cov = random_covariance(dim, gen)
            kappa = float(theory.gaussian_kl(mu1, mu2, cov))
            for ratio in alpha_over_kappa:
                alpha = ratio * kappa
                eps_num, _ = theory.numeric_frontier(mu1, mu2, cov, alpha, seed=seed + trial)
                eps = float(theory.frontier_epsilon(alpha, kappa))
                rows.append(dict(dim=dim, trial=trial, kappa=kappa, alpha=alpha, eps_formula=eps,
                                 eps_numeric=eps_num, abs_error=abs(eps - eps_num)))
    return pd.DataFrame(rows)


def frontier_points(kappas=(0.5, 1.0, 2.0), alphas=(0.25, 1.0, 2.0, 3.0, 4.5, 6.0), dim: int = 2,
                    seed: int = 0) -> pd.DataFrame:
    """Optimiser solutions ε(α) on problems with prescribed κ (for the frontier plot).

    Rows: kappa, alpha, eps_numeric."""
    rows = []
    for kappa in kappas:
        mu1, mu2, cov = gaussian_problem(dim, math.sqrt(2 * kappa), seed)
        rows += [dict(kappa=kappa, alpha=a, eps_numeric=theory.numeric_frontier(mu1, mu2, cov, a, seed=seed)[0])
                 for a in alphas]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- Gaussian removal

def deleted_counts(budgets, n1: int) -> np.ndarray:
    """Number of deleted unwanted samples at each budget (same rounding as :func:`removal_mask`)."""
    return (np.asarray(budgets, dtype=float) * n1 + 0.5).astype(int)


def refit_means(X1: torch.Tensor, X2: torch.Tensor, order: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """Known-covariance MLE refit after deleting ``X1[order[:k]]`` for each k in ``counts``.

    m(k) = (ΣX2 + ΣX1 − Σ_{deleted} x)/(n2 + n1 − k), from one cumulative sum; ``[len(counts), d]``.
    """
    deleted = torch.cat([torch.zeros(1, X1.shape[1], dtype=X1.dtype), torch.cumsum(X1[order], 0)])
    k = torch.as_tensor(counts)
    total = X1.sum(0) + X2.sum(0)
    return (total - deleted[k]) / (len(X1) + len(X2) - k).to(X1.dtype)[:, None]


def gaussian_curves(dim: int, n: int, separation: float, budgets, seeds: int,
                    scorers=tuple(SCORERS), seed: int = 0) -> pd.DataFrame:
    """Table 2, Gaussians: refit N(m, Σ) on S2 ∪ (S1 minus the top-scored) with n1 = n2 = ``n``.

    Per seed, scorer and budget: α = KL(p1‖p), ε = KL(p2‖p) and the unlearning gap
    κ − α = E_{p1}[log p − log p2] (what the edited model still gains on p1 over a model that
    never saw it; 0 at full removal), the metric that Table 2 halves.
    """
    rows = []
    counts = deleted_counts(budgets, n)
    for s in range(seeds):
        mu1, mu2, cov = gaussian_problem(dim, separation, seed * 1000 + s)
        gen = generator(seed * 1000 + s + 500)
        X1, X2 = sample_gaussian(mu1, cov, n, gen), sample_gaussian(mu2, cov, n, gen)
        kappa = float(theory.gaussian_kl(mu1, mu2, cov))
        for name in scorers:
            means = refit_means(X1, X2, deletion_order(score(name, X1, X2, seed=s)), counts)
            alpha = theory.gaussian_kl(mu1, means, cov).numpy()
            eps = theory.gaussian_kl(mu2, means, cov).numpy()
            rows += [dict(seed=s, scorer=name, budget=b, alpha=a, epsilon=e, kappa=kappa, gap=kappa - a)
                     for b, a, e in zip(budgets, alpha, eps)]
    return pd.DataFrame(rows)


def table1_curves(dim: int, n1: int, separation: float, budgets, seeds: int,
                  scorers=("RANDOM", "MAHA-MU2", "LR-MAHA"), retained_multiple: int = 10,
                  seed: int = 0) -> pd.DataFrame:
    """Table 1 in the n2 ≫ n1 limit: normalised preservation ε(f)/ε(0) after f deletions.

    With many retained samples the refit mean is μ2 + (Σ_{kept}(x_i − μ2))/n2, so
    ε(f)/ε(0) = ‖Σ_{kept}(x_i − μ2)‖²_{Σ⁻¹} / ‖Σ_{S1}(x_i − μ2)‖²_{Σ⁻¹} (true μ2). Scorers see a
    retained sample of ``retained_multiple``·n1 points. Rows: seed, scorer, budget, eps_norm.
    """
    rows = []
    counts = deleted_counts(budgets, n1)
    for s in range(seeds):
        mu1, mu2, cov = gaussian_problem(dim, separation, seed * 1000 + s)
        gen = generator(seed * 1000 + s + 700)
        X1 = sample_gaussian(mu1, cov, n1, gen)
        X2 = sample_gaussian(mu2, cov, retained_multiple * n1, gen)
        for name in scorers:
            order = deletion_order(score(name, X1, X2, seed=s))
            pulls = torch.cat([torch.zeros(1, dim, dtype=X1.dtype), torch.cumsum(X1[order] - mu2, 0)])
            kept_pull = pulls[-1] - pulls[torch.as_tensor(counts)]
            eps = theory.mahalanobis_sq(kept_pull, cov) / theory.mahalanobis_sq(pulls[-1], cov)
            rows += [dict(seed=s, scorer=name, budget=b, eps_norm=float(e)) for b, e in zip(budgets, eps)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- budgets

def budget_to_reach(budgets, values, target: float) -> float:
    """The smallest budget at which ``values`` first fall to ``target`` or below, linearly
    interpolated between grid points; 0 if ``values[0]`` is already there, NaN if never."""
    budgets, values = np.asarray(budgets, dtype=float), np.asarray(values, dtype=float)
    below = np.nonzero(values <= target)[0]
    if len(below) == 0:
        return math.nan
    i = below[0]
    if i == 0:
        return float(budgets[0])
    b0, b1, v0, v1 = budgets[i - 1], budgets[i], values[i - 1], values[i]
    return float(b0 + (b1 - b0) * (v0 - target) / (v0 - v1))


def halving_budget(budgets, values) -> float:
    """Table 2's statistic: the deletion budget at which ``values`` reach half of ``values[0]``
    (interpolated); NaN if the initial value is ≤ 0 or it is never halved."""
    values = np.asarray(values, dtype=float)
    if not values[0] > 0:
        return math.nan
    return budget_to_reach(budgets, values, values[0] / 2)


def halving_per_seed(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The halving budget of ``metric`` per scorer and seed (NaN where it was never reached)."""
    return (curves.sort_values("budget").groupby(["scorer", "seed"])
            .apply(lambda g: halving_budget(g["budget"], g[metric]), include_groups=False)
            .rename("budget").reset_index())


def halving_table(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per scorer: mean and standard deviation over seeds of the halving budget of ``metric``,
    and the share of seeds where it was reached. Index: scorer."""
    per_seed = halving_per_seed(curves, metric)
    table = per_seed.groupby("scorer")["budget"].agg(mean="mean", std="std", reached="count")
    table["reached"] = table["reached"] / per_seed.groupby("scorer").size()
    return table.reindex([s for s in SCORERS if s in table.index])


def best_selective(table: pd.DataFrame) -> tuple[str, float]:
    """The cross-distributional scorer (:data:`SELECTIVE`) with the smallest mean halving budget."""
    candidates = table.loc[[s for s in SELECTIVE if s in table.index], "mean"].dropna()
    if candidates.empty:
        return "none", math.nan
    name = str(candidates.idxmin())
    return name, float(candidates[name])


def savings(random_budget: float, selective_budget: float) -> dict:
    """Savings of the selective budget vs full removal (1 − b_sel) and vs random (1 − b_sel/b_rand)."""
    return {"vs_full": 1 - selective_budget, "vs_random": 1 - selective_budget / random_budget}


def paper_table2(task: str) -> tuple[float, float]:
    """Table 2 of the paper (:mod:`unlearnkit.facts`): (random, selective) deletion budget, % of
    S1, to halve the metric of ``task`` (``gauss_low``, ``gauss_high``, ``sms``, ``toxic``, ``cifar_cat``)."""
    return tuple(float(facts.value(f"allouah.table2.{task}.{kind}")) for kind in ("random", "selective"))


def table2_row(task: str, curves: pd.DataFrame, metric: str) -> dict:
    """One row of our Table 2 next to the paper's: halving budgets in % (mean ± sd over seeds)
    of RANDOM and of the best cross-distributional scorer, both savings, and the per-seed
    budgets (``random_values``, ``selective_values``: ``{seed: %}``, NaN where the metric was
    never halved) that the verdicts' intervals and paired differences use."""
    table = halving_table(curves, metric)
    per_seed = halving_per_seed(curves, metric)
    best, selective = best_selective(table)
    random_budget = float(table.loc["RANDOM", "mean"])
    paper_random, paper_selective = paper_table2(task)
    ours, paper = savings(random_budget, selective), savings(paper_random / 100, paper_selective / 100)
    return {"task": task, "paper_random": paper_random, "paper_selective": paper_selective,
            "random": 100 * random_budget, "random_sd": 100 * float(table.loc["RANDOM", "std"]),
            "best_scorer": best, "selective": 100 * selective,
            "selective_sd": 100 * float(table.loc[best, "std"]) if best in table.index else math.nan,
            "saving_vs_full": 100 * ours["vs_full"], "saving_vs_random": 100 * ours["vs_random"],
            "paper_saving_vs_full": 100 * paper["vs_full"], "paper_saving_vs_random": 100 * paper["vs_random"],
            "random_values": _seed_budgets(per_seed, "RANDOM"), "selective_values": _seed_budgets(per_seed, best)}


def _seed_budgets(per_seed: pd.DataFrame, scorer: str) -> dict[int, float]:
    part = per_seed[per_seed["scorer"] == scorer]
    return {int(seed): 100 * float(budget) for seed, budget in zip(part["seed"], part["budget"])}


def table2_setting(task: str, cfg: "Ch1Config") -> str:
    """Where our Table 2 row ``task`` is measured, in the words of the facts' ``setting``
    (:mod:`unlearnkit.facts`): equal to the paper's only where data and model are the paper's."""
    text = "TF-IDF + logistic regression"
    if task in ("gauss_low", "gauss_high"):
        sep = cfg.gauss_low_sep if task == "gauss_low" else cfg.gauss_high_sep
        return f"gaussians · d = {cfg.gauss_dim}, n = {cfg.gauss_n}, δ = {sep:g}"
    if cfg.text_data == "synthetic" and task in ("sms", "toxic"):
        return f"synthetic text · {text}"
    if task == "sms":
        return f"SMS Spam · {text}"
    if task == "toxic":
        return f"Davidson hate speech · {text}"
    from .tasks import cifar10_task

    return f"CIFAR-10 cat · linear probe on frozen {cifar10_task(cfg.profile).model} features"


# ---------------------------------------------------------------------------- text

@dataclass(frozen=True)
class TextTask:
    """A binary removal task on a corpus: ``unwanted[i]`` marks the S1 domain (spam, hate)."""

    name: str
    texts: tuple[str, ...]
    unwanted: np.ndarray
    source: str
    unwanted_name: str
    retained_name: str


def text_task(name: str, data_kind: str, seed: int = 0, root=None) -> TextTask:
    """``"sms"`` (spam unwanted, ham retained) or ``"toxic"`` (Davidson: hate unwanted, offensive
    + neither retained); ``data_kind="synthetic"`` gives the two-class synthetic corpus instead."""
    from ..data import load_davidson, load_sms, synthetic_text

    check_choice("text task", name, ("sms", "toxic"))
    check_choice("text_data", data_kind, ("synthetic", "real"))
    names = {"sms": ("spam", "ham"), "toxic": ("hate", "offensive + neither")}[name]
    if data_kind == "synthetic":
        data = synthetic_text(n_per_class=100, seed=seed, classes=(names[1], names[0]))
        unwanted = data.y.numpy() == 1
    elif name == "sms":
        data = load_sms(root)
        unwanted = data.y.numpy() == data.classes.index("spam")
    else:
        data = load_davidson(root)
        unwanted = data.y.numpy() == data.classes.index("hate")
    return TextTask(name, data.texts, unwanted, data.source, *names)


def _train_test(task: TextTask, test_fraction: float, retain_ratio: float | None, seed: int):
    """Stratified train/test indices; the retained training part is cut to ``retain_ratio``
    times the unwanted part when given (the paper's 5× downsampling on Jigsaw)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(task.texts))
    train, test = train_test_split(idx, test_size=test_fraction, stratify=task.unwanted, random_state=seed)
    if retain_ratio is not None:
        rng = np.random.default_rng(seed)
        retained = train[~task.unwanted[train]]
        keep = min(len(retained), int(retain_ratio * task.unwanted[train].sum()))
        train = np.sort(np.concatenate([train[task.unwanted[train]], rng.choice(retained, keep, replace=False)]))
    return train, test


TEXT_C_GRID = (1.0, 10.0, 100.0)


@single_threaded
def choose_text_c(A, target, seed: int) -> float:
    """Inverse regularisation C of the TF-IDF logistic regression, by 3-fold cross-validated F1
    of the unwanted class on the *unedited* training split (then fixed for every budget)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(LogisticRegression(solver="liblinear", random_state=seed),
                          {"C": list(TEXT_C_GRID)}, cv=3, scoring="f1")
    return float(search.fit(A, target).best_params_["C"])


@single_threaded
def _fit_recall(A, target, rows, A_test, target_test, C: float, seed: int) -> tuple[float, float]:
    """Train logistic regression on ``rows`` of the TF-IDF matrix ``A``; return (recall of the
    unwanted class, accuracy on retained test items). No unwanted row left → recall 0."""
    from sklearn.linear_model import LogisticRegression

    y = target[rows]
    if y.all() or not y.any():
        pred = np.full(len(target_test), bool(y.any()))
    else:
        model = LogisticRegression(solver="liblinear", C=C, random_state=seed)
        pred = model.fit(A[rows], y).predict(A_test)
    return float(pred[target_test].mean()), float((~pred[~target_test]).mean())


def text_curves(task: TextTask, budgets, seeds: int, svd_dim: int, test_fraction: float,
                retain_ratio: float | None = None, scorers=tuple(SCORERS), progress: bool = False) -> pd.DataFrame:
    """Table 2, text: delete top-scored unwanted training texts, retrain a TF-IDF logistic
    regression, measure recall of the unwanted class on the test split.

    Features: TF-IDF (words, sublinear tf, min_df 2) fit once per seed on the full training
    split; the scorers see its TruncatedSVD to ``svd_dim`` dimensions (LSA). The classifier's C
    is chosen once per seed by :func:`choose_text_c`. Rows: seed, scorer, budget, recall,
    retained_accuracy, C.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = []
    jobs = [(s, name) for s in range(seeds) for name in scorers]
    texts = np.asarray(task.texts, dtype=object)
    cached = {}
    for s, name in tqdm(jobs, desc=f"{task.name} curves", disable=not progress):
        if s not in cached:
            train, test = _train_test(task, test_fraction, retain_ratio, s)
            vec = TfidfVectorizer(sublinear_tf=True, min_df=2).fit(texts[train])
            A, A_test = vec.transform(texts[train]).tocsr(), vec.transform(texts[test])
            svd = TruncatedSVD(n_components=min(svd_dim, A.shape[1] - 1), random_state=s)
            C = choose_text_c(A, task.unwanted[train], s)
            cached = {s: (A, A_test, task.unwanted[train], task.unwanted[test], svd.fit_transform(A), C)}
        A, A_test, target, target_test, Z, C = cached[s]
        unwanted_rows, retained_rows = np.nonzero(target)[0], np.nonzero(~target)[0]
        scores = score(name, torch.from_numpy(Z[unwanted_rows]), torch.from_numpy(Z[retained_rows]), seed=s)
        for b in budgets:
            keep = removal_mask(scores, b).numpy()
            rows_b = np.concatenate([retained_rows, unwanted_rows[keep]])
            recall, retained_acc = _fit_recall(A, target, rows_b, A_test, target_test, C, seed=s)
            rows.append(dict(seed=s, scorer=name, budget=b, recall=recall, retained_accuracy=retained_acc, C=C))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- images

FORGET_CLASS = 3
"""CIFAR-10 class 3 is "cat" (the synthetic smoke images call it "class3")."""


def image_setup(profile: str, *, device, root=None, progress: bool = False):
    """The shared CIFAR-10 task at ``profile``, its full-class split for "cat" and the original
    model (trained once on the training pool and cached; chapters 0, 2, 3, 4 reuse it).

    Returns (task, split, model, info) with ``info`` from the model cache (hit, train_seconds).
    """
    from .tasks import cifar10_task, train_original

    task = cifar10_task(profile)
    split = task.split("full_class", seed=0, root=root, forget_class=FORGET_CLASS)
    model, info = train_original(task, seed=0, device=device, root=root, progress=progress)
    return task, split, model, info


def split_features(model, split, *, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{part: (features [N, D], labels [N])}`` for retain, forget, test and forget_test."""
    from ..train import penultimate_features

    return {name: (penultimate_features(model, getattr(split, name), device=device), getattr(split, name).y)
            for name in ("retain", "forget", "test", "forget_test")}


def _probe(warm, C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, tol=1e-3, max_iter=300, warm_start=warm)


@single_threaded
def probe_curves(feats: dict, budgets, seeds: int, per_class: int, scorers=tuple(SCORERS),
                 C: float = 0.1, progress: bool = False) -> pd.DataFrame:
    """Table 2, CIFAR-10 "cat": refit a linear probe (multinomial logistic regression on
    standardised frozen features, inverse regularisation ``C``, tolerance 1e-3) on
    retained ∪ (cats minus the top-scored), measure the forget-class accuracy on the cat test
    images and the accuracy on the other test images.

    Per seed, ``per_class`` training images per class are drawn (cats form S1, the rest S2);
    scorers see the raw features. The probe is warm-started from the previous budget.
    Rows: seed, scorer, budget, forget_accuracy, retained_accuracy.
    """
    from sklearn.preprocessing import StandardScaler

    from ..data import stratified_sample

    X_r, y_r = feats["retain"]
    X_f, y_f = feats["forget"]
    X_test, y_test = feats["test"]
    X_ft, y_ft = feats["forget_test"]
    rows = []
    for s in tqdm(range(seeds), desc="cat probe", disable=not progress):
        gen = generator(10_000 + s)
        n_classes_r = len(torch.unique(y_r))
        ir = stratified_sample(y_r, min(len(y_r), per_class * n_classes_r), gen)
        i_f = torch.randperm(len(y_f), generator=gen)[:per_class]
        X1, X2 = X_f[i_f], X_r[ir]
        scaler = StandardScaler().fit(torch.cat([X1, X2]).numpy())
        Z1, Z2 = scaler.transform(X1.numpy()), scaler.transform(X2.numpy())
        Zt, Zft = scaler.transform(X_test.numpy()), scaler.transform(X_ft.numpy())
        for name in scorers:
            scores = score(name, X1, X2, seed=s)
            probe = _probe(True, C)
            for b in budgets:
                keep = removal_mask(scores, b).numpy()
                if not keep.any():
                    probe = _probe(False, C)  # one class fewer: no warm start
                probe.fit(np.concatenate([Z2, Z1[keep]]), np.concatenate([y_r[ir].numpy(), y_f[i_f].numpy()[keep]]))
                rows.append(dict(seed=s, scorer=name, budget=b,
                                 forget_accuracy=float((probe.predict(Zft) == y_ft.numpy()).mean()),
                                 retained_accuracy=float((probe.predict(Zt) == y_test.numpy()).mean())))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- synergy (Table 5)

def selected_forget_set(split, feats: dict, scorer: str, budget: float, seed: int = 0):
    """The split whose forget set is the ``budget`` fraction of the unwanted set with the highest
    ``scorer`` scores (features of the original model); retain, test and the rest unchanged.
    The unselected unwanted samples are handed to neither the forget nor the retain side."""
    from ..data import replace_split

    scores = score(scorer, feats["forget"][0], feats["retain"][0], seed=seed)
    selected = ~removal_mask(scores, budget)
    return replace_split(split, forget=split.forget.subset(selected))


def synergy_runs(model, split, feats: dict, cfg: Ch1Config, *, device, seed: int = 0) -> pd.DataFrame:
    """Table 5: each method of ``cfg.synergy_methods`` run with the full unwanted set and with the
    selected subset as its forget set, from the same original model.

    Rows: method, forget_set (``"full"``/``"selected"``/``"none"`` for the original), forget_size,
    retain_size, seconds, cat_test_accuracy (forget class, test images), unwanted_train_accuracy (all the
    training cats), retained_test_accuracy (other classes, test images).
    """
    from ..data import replace_split, stratified_sample
    from ..methods import unlearn
    from ..metrics import accuracy

    if cfg.synergy_retain_per_class is not None:
        cap = cfg.synergy_retain_per_class * len(torch.unique(split.retain.y))
        rows = stratified_sample(split.retain.y, min(cap, len(split.retain)), generator(20_000 + seed))
        split = replace_split(split, retain=split.retain.subset(rows))
    selected = selected_forget_set(split, feats, cfg.synergy_scorer, cfg.synergy_budget, seed)

    def measure(net) -> dict:
        return {"cat_test_accuracy": accuracy(net, split.forget_test, device=device),
                "unwanted_train_accuracy": accuracy(net, split.forget, device=device),
                "retained_test_accuracy": accuracy(net, split.test, device=device)}

    rows = [dict(method="original", forget_set="none", forget_size=0, retain_size=0, seconds=0.0,
                 **measure(model))]
    for method in cfg.synergy_methods:
        for label, sp in (("full", split), ("selected", selected)):
            epochs = {} if cfg.synergy_epochs is None else {"epochs": cfg.synergy_epochs}
            result = unlearn(method, model, sp, profile=cfg.profile, device=str(device), seed=seed, **epochs)
            rows.append(dict(method=method, forget_set=label, forget_size=len(sp.forget),
                             retain_size=len(sp.retain), seconds=result.seconds, **measure(result.model)))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- benchmark

def benchmark_maha_mu2(n: int, d: int, seed: int = 0, repeats: int = 2) -> dict:
    """Time MAHA-MU2 scoring of ``n × d`` float32 embeddings (n/2 unwanted, n/2 retained:
    covariance, Cholesky, whitening solve, norms) against one ``n × d × d`` matrix product.

    Returns the best-of-``repeats`` seconds of each (after a warm-up call) and their ratio.
    """
    gen = generator(seed)
    X = torch.randn(n, d, generator=gen)
    W = torch.randn(d, d, generator=gen)
    X1, X2 = X[: n // 2], X[n // 2:]

    matmul = best_of(lambda: X @ W, repeats)
    maha = best_of(lambda: score("MAHA-MU2", X1, X2), repeats)
    return {"n": n, "d": d, "matmul_s": matmul, "maha_mu2_s": maha, "ratio": maha / matmul}


# ---------------------------------------------------------------------------- plots

def plot_curves(curves: pd.DataFrame, metric: str, ax, *, ylabel: str, title: str = "",
                paper_budgets: tuple[float, float] | None = None) -> None:
    """Metric vs deletion budget (% of S1) for every scorer, mean ± sd over seeds.

    Cross-distributional scorers are solid, baselines dashed; a dotted line marks half the
    initial value, grey ticks the paper's random / selective budgets.
    """
    import seaborn as sns

    data = curves.assign(budget_pct=100 * curves["budget"],
                         family=np.where(curves["scorer"].isin(SELECTIVE), "cross-distributional", "baseline"))
    sns.lineplot(data=data, x="budget_pct", y=metric, hue="scorer", style="family", errorbar="sd",
                 hue_order=[s for s in SCORERS if s in set(curves["scorer"])],
                 style_order=["cross-distributional", "baseline"], ax=ax)
    start = curves.loc[curves["budget"] == 0, metric].mean()
    ax.axhline(start / 2, color="black", lw=0.8, ls=":")
    if paper_budgets is not None:
        for b in paper_budgets:
            ax.axvline(b, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("deletion budget (% of the unwanted set)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def plot_frontier(check: pd.DataFrame, points: pd.DataFrame, axes, free_point: tuple | None = None) -> None:
    """Left: ε/κ against α/κ, the closed form max(0, √(α/κ) − 1)² and every optimiser point of
    ``check`` (coloured by dimension). Right: ε*(α) for each κ of ``points`` (see
    :func:`frontier_points`) with its optimiser points and the random-removal line
    √α + √ε = √κ; ``free_point = (α, ε)`` marks a free-covariance solution that beats it."""
    import seaborn as sns

    left, right = axes
    grid = np.linspace(0, check["alpha"].div(check["kappa"]).max(), 200)
    left.plot(grid, theory.frontier_epsilon(grid, 1.0), color="black", lw=1, label="Prop. 1")
    sns.scatterplot(x=check["alpha"] / check["kappa"], y=check["eps_numeric"] / check["kappa"],
                    hue=check["dim"].astype(str), ax=left, s=25, palette="viridis")
    left.set_xlabel("removal α / κ")
    left.set_ylabel("least preservation cost ε / κ")
    left.legend(title="optimiser, dim")
    alpha = np.linspace(0, 6, 300)
    for (kappa, part), colour in zip(points.groupby("kappa"), sns.color_palette("deep")):
        right.plot(alpha, theory.frontier_epsilon(alpha, kappa), color=colour, label=f"frontier, κ = {kappa:g}")
        right.plot(part["alpha"], part["eps_numeric"], "o", color=colour, ms=5, mfc="none")
        a = np.linspace(0, kappa, 50)
        right.plot(a, (np.sqrt(kappa) - np.sqrt(a)) ** 2, color=colour, ls=":", label=f"random removal, κ = {kappa:g}")
    if free_point is not None:
        right.plot(*free_point, marker="*", ms=12, color="crimson", ls="none", label="free covariance (1-D)")
    right.set_xlabel("removal α = KL(p1‖p) (nats)")
    right.set_ylabel("preservation ε = KL(p2‖p) (nats)")
    right.legend()


def plot_table1(curves: pd.DataFrame, ax, dim: int) -> None:
    """Normalised preservation ε(f)/ε(0) (log scale) against the deleted fraction f/n1, mean over
    seeds, with Table 1's random (1 − f/n1)² and selective (1 − f/n1)⁴ curves."""
    mean = curves.groupby(["scorer", "budget"])["eps_norm"].mean().reset_index()
    for name, part in mean.groupby("scorer", sort=False):
        ax.plot(100 * part["budget"], part["eps_norm"].clip(lower=1e-8), label=name)
    r = 1 - np.asarray(FINE_GRID)
    ax.plot(100 * (1 - r), r ** 2, color="black", ls="--", lw=1, label="Table 1 random: (1 − f/n1)²")
    ax.plot(100 * (1 - r), r ** 4, color="black", ls=":", lw=1, label="Table 1 selective: (1 − f/n1)⁴")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 2)
    ax.set_xlabel("deleted fraction of the unwanted set (%)")
    ax.set_ylabel("ε(f) / ε(0)")
    ax.set_title(f"dimension {dim}")
    ax.legend()


def plot_trajectories(curves: pd.DataFrame, ax, title: str = "") -> None:
    """(α, ε) of the refit along the budget grid (mean over seeds) for every scorer, with the
    Prop. 1 frontier and the random-removal line of the mean κ."""
    kappa = float(curves["kappa"].mean())
    mean = curves.groupby(["scorer", "budget"])[["alpha", "epsilon"]].mean().reset_index()
    for name in [s for s in SCORERS if s in set(mean["scorer"])]:
        part = mean[mean["scorer"] == name]
        ax.plot(part["alpha"], part["epsilon"], marker=".", ms=4, label=name,
                ls="-" if name in SELECTIVE else "--")
    alpha = np.linspace(0, mean["alpha"].max() * 1.05, 200)
    ax.plot(alpha, theory.frontier_epsilon(alpha, kappa), color="black", lw=1.5, label="Prop. 1 frontier")
    a = np.linspace(0, kappa, 50)
    ax.plot(a, (np.sqrt(kappa) - np.sqrt(a)) ** 2, color="grey", ls=":", label="random removal (population)")
    ax.set_xlabel("removal α = KL(p1‖p) (nats)")
    ax.set_ylabel("preservation ε = KL(p2‖p) (nats)")
    ax.set_title(title)
    ax.legend()
