"""Chapter 3 experiments: MU-Mis, unlearning by suppressing sample contribution (Cheng et al.).

* :func:`contribution_check`: the function-space expansion on a tiny network trained by
  full-batch gradient descent, with the training input's contribution ∂f_T(x_i)/∂x_i
  differentiated *through training* (torch.func) and compared with the input sensitivity.
* :func:`sensitivity_observations`: per-sample ‖∇ₓf_k‖ at initialisation, after training and
  after retraining without the forget set.
* The main table is the book's comparison (:func:`unlearnkit.experiments.harness.compare`) on
  the book's CIFAR-10 problems (:func:`.tasks.spec`; CIFAR-20 sub-class at ``paper``).
* :func:`mumis_ablation` / :func:`unbounded_curve`: loss terms, δ, learning rate, no stopping,
  around the tuned pick.
* :func:`step_time_ratio`: a MU-Mis step against a plain training step on the same batch.

Profile settings live in :func:`profile_config` (frozen :class:`Ch3Config`).
"""

from __future__ import annotations

from typing import Mapping

import copy
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, jacrev, vmap

from .. import dryrun
from ..config import (SMOKE_WHY, Change, build_config, change_rows, changes_for, check_choice,
                      check_profile, check_range, with_changes)
from ..data.core import TensorSet
from ..methods import get_method
from ..methods.base import RunContext, as_input
from ..methods.mumis import MuMisConfig, run_mumis
from ..metrics import avg_gap
from ..runtime import generator
from ..sensitivity import class_sensitivity_norms, draw_irrelevant_classes, mumis_loss
from ..train import predict
from .harness import Problem, budget_settings, measure, reference_metrics
from .options import chapter_methods
from .tasks import TABLE_BASELINES
from .work import Work, comparison

METHOD_LABELS = {"retrain": "Retrain", "finetune": "FT", "neggrad": "GA", "random_labels": "RL",
                 "salun": "SalUn", "scrub": "SCRUB", "l1_sparse": "ℓ1-sparse", "mumis": "MU-Mis"}
"""The methods of the paper's tables, by registry name, with the tables' labels."""


# ---------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TheoryConfig:
    """The tiny network of the contribution check: a tanh MLP ``d → hidden → K`` in float64,
    trained by ``steps`` full-batch GD steps of size ``lr`` on ``n_train`` Gaussian inputs
    with random labels (so training must memorise every sample)."""

    n_train: int = 12
    hidden: int = 64
    num_classes: int = 3
    steps: int = 60
    lr: float = 1.0

    def __post_init__(self):
        for name in ("n_train", "hidden", "steps"):
            check_range(name, getattr(self, name), 1)
        check_range("num_classes", self.num_classes, 2)
        check_range("lr", self.lr, 0, low_open=True)


@dataclass(frozen=True)
class Ch3Config:
    """Everything chapter 3 runs at one profile, beyond the book's shared :func:`~.tasks.protocol`
    (seeds, evaluation sample, tuning grid) and problems (:data:`~.tasks.SCENARIOS`).

    problems: the forgetting problems of the main table (keys of :data:`~.tasks.SCENARIOS`;
    ``sub_class`` adds CIFAR-20 at ``paper``). methods: registry names (Retrain is the
    problem's retrained model). observe_n: samples per set in the sensitivity observations.
    theory / theory_dims: the contribution check and its input dimensions. ablation_*: MU-Mis
    ablations on the full-class problem of the first seed around the tuned pick: δ values and
    learning-rate factors; unbounded_steps / unbounded_every: the run without stopping rule
    and its evaluation period. bench_batch / bench_repeats: the step-time benchmark.
    """

    profile: str
    problems: tuple[str, ...]
    methods: tuple[str, ...]
    observe_n: int
    theory: TheoryConfig
    theory_dims: tuple[int, ...]
    ablation_deltas: tuple[float, ...]
    ablation_lr_factors: tuple[float, ...]
    unbounded_steps: int
    unbounded_every: int
    bench_batch: int
    bench_repeats: int

    def __post_init__(self):
        check_profile(self.profile)
        for name in self.methods:
            get_method(name)
        if "mumis" not in self.methods:
            raise ValueError(f"methods must include 'mumis'; got {self.methods}")
        for key in self.problems:
            check_choice("problem", key, ("full_class", "random_subset", "sub_class"))
        if "full_class" not in self.problems:
            raise ValueError(f"problems must include 'full_class' (the ablations run on it); got {self.problems}")
        for d in self.theory_dims:
            check_range("theory dimension", d, 1)
        for delta in self.ablation_deltas:
            check_range("ablation delta", delta, 1, low_open=True)
        for factor in self.ablation_lr_factors:
            check_range("ablation lr factor", factor, 0, low_open=True)
        check_range("observe_n", self.observe_n, 2)
        check_range("unbounded_steps", self.unbounded_steps, 1)
        check_range("unbounded_every", self.unbounded_every, 1)
        check_range("bench_batch", self.bench_batch, 1)
        check_range("bench_repeats", self.bench_repeats, 1)


METHODS = (*TABLE_BASELINES["cheng2024mumis"], "mumis")
"""The methods of the paper's tables (Retrain is every problem's reference row)."""


PAPER = dict(problems=("full_class", "random_subset", "sub_class"), observe_n=1000, theory=TheoryConfig(),
             theory_dims=(8, 32, 128, 512), ablation_deltas=(1.2, 2.0, 3.0), ablation_lr_factors=(0.3, 3.0),
             unbounded_steps=200, unbounded_every=10, bench_batch=128, bench_repeats=10)
"""The chapter at ``paper``: the paper's three scenarios (sub-class on CIFAR-20)."""

_CPU_TIME = "smaller sizes for a CPU chapter of about 24 minutes (1,444 s cold)"

CHANGES: dict[str, dict[str, Change]] = {
    "paper": {},
    "cpu": {
        "problems": Change(("full_class", "random_subset"), "sub-class forgetting needs CIFAR-100 (its CIFAR-20 "
                                                            "superclasses), not among the offline data"),
        **changes_for(_CPU_TIME, observe_n=100, unbounded_steps=20, unbounded_every=4, bench_batch=100,
                      bench_repeats=3),
        "theory_dims": Change((8, 32, 128), _CPU_TIME + "; d = 512 runs at paper"),
        "ablation_deltas": Change((1.5, 3.0), _CPU_TIME + "; two δ beside the default"),
    },
}
CHANGES["smoke"] = {
    "problems": CHANGES["cpu"]["problems"],
    **changes_for(SMOKE_WHY, observe_n=8, theory=TheoryConfig(n_train=4, hidden=8, steps=4), theory_dims=(4,),
                  ablation_deltas=(2.0,), ablation_lr_factors=(3.0,), unbounded_steps=4, unbounded_every=2,
                  bench_batch=8, bench_repeats=1),
}
"""Each profile as its differences from :data:`PAPER`, with a reason per line."""


DRY_RUN = changes_for("dry run: a few samples, steps and repeats", observe_n=8,
                      theory=TheoryConfig(n_train=4, hidden=8, steps=4), theory_dims=(4,), ablation_deltas=(2.0,),
                      ablation_lr_factors=(3.0,), unbounded_steps=2, unbounded_every=1, bench_batch=8,
                      bench_repeats=1)
"""The chapter's lines in a dry run (:mod:`unlearnkit.dryrun`), on top of the profile's."""


def profile_changes(profile: str) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}`` of the chapter's profile block."""
    return change_rows(PAPER, CHANGES[check_profile(profile)], "chapter 3")


def profile_config(profile: str, **overrides) -> Ch3Config:
    """The chapter's frozen config at ``profile``; ``overrides`` replace fields by name."""
    check_profile(profile)
    values = with_changes(PAPER, CHANGES[profile])
    values = {"profile": profile, "methods": METHODS, **dryrun.apply(DRY_RUN, values)}
    return build_config(Ch3Config, values, **overrides)


# ---------------------------------------------------------------------------- theory check

def _mlp(params: dict, x: torch.Tensor) -> torch.Tensor:
    """``tanh(x W1ᵀ + b1) W2ᵀ + b2``: ``[n, d] -> [n, K]``."""
    return torch.tanh(x @ params["w1"].T + params["b1"]) @ params["w2"].T + params["b2"]


def _ce(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(_mlp(params, x), y)


def _gd_step(params: dict, x: torch.Tensor, y: torch.Tensor, lr: float) -> dict:
    """One full-batch gradient-descent step on the mean cross-entropy."""
    g = grad(_ce)(params, x, y)
    return {k: v - lr * g[k] for k, v in params.items()}


def _logit(params: dict, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The logit ``f_c(x)`` of one input ``x [d]`` (a scalar)."""
    return _mlp(params, x[None])[0].gather(0, c.view(1)).squeeze(0)


def _inner(a: dict, b: dict) -> torch.Tensor:
    return sum((a[k] * b[k]).sum() for k in a)


def _input_sensitivity(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``∇ₓ f_{y_i}(x_i)`` for every row: ``[n, d]``."""
    return vmap(grad(_logit, argnums=1), in_dims=(None, 0, 0))(params, x, y)


def contribution_check(cfg: TheoryConfig, input_dim: int, seed: int) -> dict[str, torch.Tensor]:
    """The sensitivity–contribution link, every term computed exactly on a tiny network.

    GD on L(w) = (1/n) Σ_j ℓ(f(x_j; w), y_j) gives, to first order in the step size η,
    f_{t+1}(x) − f_t(x) = −(η/n) Σ_j Θ_t(x, x_j) r_{j,t}, with the NTK Θ_t(x, x') = J_t(x) J_t(x')ᵀ
    and r = softmax(f) − e_y. Returns per-sample vectors ``[n, d]`` (c = y_i throughout):

    contribution ``C_i = ∂ f_{T,c}(x_i^eval) / ∂ x_i`` through all T steps (exact, jacrev of the
    unrolled training; the evaluation point is held fixed);
    direct ``= −(η/n) Σ_t ∂_{x_i} ⟨∇_w f_c(x_i^eval; w_t), ∇_w ℓ_i(w_t)⟩``, the trajectory frozen,
    split into kernel ``A`` (r held fixed: −(η/n) Σ_t ∂₂Θ_t(x_i, x_i) r_i) and curvature
    ``B = direct − A`` (−(η/n) Σ_t Θ_t(x_i, x_i) ∂_{x_i} r_i, with ∂r/∂x = (diag p − ppᵀ) ∇ₓf);
    sensitivity ``G_T = ∇ₓ f_{T,c}(x_i)`` and ``G_0`` at initialisation;
    self ``S = −(η/n) Σ_t ∂₁Θ_t(x_i, x_i) r_i`` (the j = i term of the first-order change of
    G) and linear ``= −(η/n) Σ_t Σ_j ∂₁Θ_t(x_i, x_j) r_j`` (all j; ``linear − S`` are the cross
    terms j ≠ i). Also ``train_acc`` (scalar tensor).
    """
    gen = generator(seed)
    n, h, k, lr = cfg.n_train, cfg.hidden, cfg.num_classes, cfg.lr
    dtype = torch.float64
    x = torch.randn(n, input_dim, generator=gen, dtype=dtype)
    y = torch.randint(0, k, (n,), generator=gen)
    w0 = {"w1": torch.randn(h, input_dim, generator=gen, dtype=dtype) / math.sqrt(input_dim),
          "b1": torch.zeros(h, dtype=dtype),
          "w2": torch.randn(k, h, generator=gen, dtype=dtype) / math.sqrt(h),
          "b2": torch.zeros(k, dtype=dtype)}
    x_eval = x.clone()

    def trained_logits(x_train: torch.Tensor) -> torch.Tensor:  # [n]: f_{T, y_i}(x_i^eval)
        params = w0
        for _ in range(cfg.steps):
            params = _gd_step(params, x_train, y, lr)
        return _mlp(params, x_eval).gather(1, y[:, None]).squeeze(1)

    diagonal = torch.arange(n)
    contribution = jacrev(trained_logits)(x)[diagonal, diagonal]
    terms = {name: torch.zeros_like(x) for name in ("direct", "kernel", "self", "linear")}
    params = w0
    for _ in range(cfg.steps):
        residual = torch.softmax(_mlp(params, x), 1) - F.one_hot(y, k).to(dtype)

        def pairing(x_i, y_i, r_i, x_e, frozen_r: bool):  # ⟨∇_w f_y(x_e), ∇_w ℓ(x_i)⟩
            grad_f = grad(_logit)(params, x_e, y_i)
            if frozen_r:
                grad_l = grad(lambda p: (_mlp(p, x_i[None])[0] * r_i).sum())(params)
            else:
                grad_l = grad(lambda p: _ce(p, x_i[None], y_i[None]))(params)
            return _inner(grad_f, grad_l)

        terms["direct"] += vmap(grad(pairing, argnums=0), in_dims=(0, 0, 0, 0, None))(x, y, residual, x_eval, False)
        kernel, self_term = vmap(grad(pairing, argnums=(0, 3)), in_dims=(0, 0, 0, 0, None))(
            x, y, residual, x_eval, True)
        terms["kernel"] += kernel
        terms["self"] += self_term
        new = _gd_step(params, x, y, lr)
        step = {name: new[name] - params[name] for name in params}
        terms["linear"] += vmap(grad(lambda x_e, y_i: _inner(grad(_logit)(params, x_e, y_i), step)))(x_eval, y)
        params = new
    for name in ("direct", "kernel", "self"):
        terms[name] *= -lr / n
    terms["curvature"] = terms["direct"] - terms["kernel"]
    train_acc = (_mlp(params, x).argmax(1) == y).to(dtype).mean()
    return {"contribution": contribution, "sens_trained": _input_sensitivity(params, x, y),
            "sens_init": _input_sensitivity(w0, x, y), **terms, "train_acc": train_acc}


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a, b, dim=1)


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.norm(dim=1) / b.norm(dim=1)


def contribution_links(v: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Each link of the derivation as (mean cosine, mean norm ratio) over the training samples.

    Rows follow the chain: contribution ← direct (trajectory frozen) ← kernel + curvature;
    kernel ↔ self (symmetry of Θ); self + cross ≈ change of the sensitivity; and the bottom
    line, contribution vs the trained sensitivity (and, as a control, other samples' sensitivity).
    """
    c, g = v["contribution"], v["sens_trained"]
    change = g - v["sens_init"]
    off = ~torch.eye(len(c), dtype=torch.bool)
    control = F.cosine_similarity(c[:, None], g[None], dim=2)[off].abs().mean()
    rows = [
        ("contribution vs trained sensitivity G_T", _cos(c, g).mean(), _ratio(c, g).mean()),
        ("contribution vs sensitivity change G_T − G_0", _cos(c, change).mean(), _ratio(c, change).mean()),
        ("total derivative of the fitted logit G_T + C vs G_T", _cos(g + c, g).mean(), _ratio(g + c, g).mean()),
        ("control: |cos| contribution_i vs G_T of other samples j", control, float("nan")),
        ("contribution vs direct term (trajectory feedback dropped)", _cos(c, v["direct"]).mean(),
         _ratio(c, v["direct"]).mean()),
        ("curvature term B vs direct term", _cos(v["curvature"], v["direct"]).mean(),
         _ratio(v["curvature"], v["direct"]).mean()),
        ("kernel term A vs direct term", _cos(v["kernel"], v["direct"]).mean(),
         _ratio(v["kernel"], v["direct"]).mean()),
        ("curvature term B vs −G_T", _cos(v["curvature"], -g).mean(), float("nan")),
        ("kernel term A vs self term S (symmetry of Θ)", _cos(v["kernel"], v["self"]).mean(),
         _ratio(v["kernel"], v["self"]).mean()),
        ("self term S vs first-order change (all j)", _cos(v["self"], v["linear"]).mean(),
         _ratio(v["self"], v["linear"]).mean()),
        ("cross terms j ≠ i vs first-order change", _cos(v["linear"] - v["self"], v["linear"]).mean(),
         _ratio(v["linear"] - v["self"], v["linear"]).mean()),
        ("first-order change vs exact change G_T − G_0", _cos(v["linear"], change).mean(),
         _ratio(v["linear"], change).mean()),
        ("initial sensitivity G_0 vs G_T", _cos(v["sens_init"], g).mean(), _ratio(v["sens_init"], g).mean()),
    ]
    return pd.DataFrame([(name, float(cos), float(r)) for name, cos, r in rows],
                        columns=["link", "cosine", "norm ratio"]).set_index("link")


def contribution_sweep(cfg: Ch3Config, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`contribution_check` at every input dimension of ``cfg.theory_dims``.

    Returns ``(links, samples)``: the link table with a ``d`` column, and per-sample norms
    ``‖C_i‖``, ``‖G_T(x_i)‖`` and the cosine between them (for a scatter plot).
    """
    links, samples = [], []
    for d in cfg.theory_dims:
        v = contribution_check(cfg.theory, d, seed)
        table = contribution_links(v).reset_index()
        table["d"], table["train_acc"] = d, float(v["train_acc"])
        links.append(table)
        samples.append(pd.DataFrame({"d": d, "contribution_norm": v["contribution"].norm(dim=1).numpy(),
                                     "sensitivity_norm": v["sens_trained"].norm(dim=1).numpy(),
                                     "cosine": _cos(v["contribution"], v["sens_trained"]).numpy()}))
    return pd.concat(links, ignore_index=True), pd.concat(samples, ignore_index=True)


# ---------------------------------------------------------------------------- the plan

def chapter_config(values: Mapping, root=None) -> Ch3Config:
    """The chapter's config from its parameter values (:func:`unlearnkit.chapter.settings`):
    MU-Mis and the methods asked for (none: the paper's baselines)."""
    return profile_config(values["profile"], methods=chapter_methods(("mumis",), METHODS, values["methods"]))


def work(settings) -> Work:
    """The chapter's trainings and comparison runs (:mod:`.work`; ``python -m unlearnkit plan``
    lists them): Retrain and the config's ``methods`` on its problems at every seed of
    ``settings`` (:class:`unlearnkit.chapter.Settings`)."""
    cfg = settings.config
    problems = [settings.spec(key, s) for key in cfg.problems for s in settings.seeds]
    return Work("03_mumis", (comparison("cifar", problems, ("retrain", *cfg.methods), settings),))


THEORY_LINKS = {"cg": "contribution vs trained sensitivity G_T", "ratio_cg": "contribution vs trained sensitivity G_T",
                "total": "total derivative of the fitted logit G_T + C vs G_T",
                "control": "control: |cos| contribution_i vs G_T of other samples j",
                "direct": "contribution vs direct term (trajectory feedback dropped)",
                "curv": "curvature term B vs direct term", "kern": "kernel term A vs direct term",
                "sym": "kernel term A vs self term S (symmetry of Θ)",
                "self": "self term S vs first-order change (all j)", "init": "initial sensitivity G_0 vs G_T"}
"""Short names of :func:`contribution_sweep`'s links (its ``link`` column), as the prose quotes them."""


def theory_findings(links: pd.DataFrame, cfg: Ch3Config) -> dict:
    """The numbers the prose quotes from :func:`contribution_sweep`'s ``links``: the sweep's
    sizes, the lowest training accuracy (%), and at the smallest and largest width (``first``,
    ``last``) the mean cosine (``theory_{name}_cos_{first|last}``) and mean norm ratio
    (``theory_{name}_ratio_…``) of the links of :data:`THEORY_LINKS`."""
    mean = links.groupby(["link", "d"])[["cosine", "norm ratio"]].mean()
    dims = {"first": cfg.theory_dims[0], "last": cfg.theory_dims[-1]}
    out = {"theory_first_d": dims["first"], "theory_last_d": dims["last"], "theory_n": cfg.theory.n_train,
           "theory_steps": cfg.theory.steps, "theory_train_acc_min": 100 * links["train_acc"].min()}
    for column, names, tag in (("cosine", ("cg", "control", "direct", "curv", "sym", "self"), "cos"),
                               ("norm ratio", ("ratio_cg", "total", "direct", "kern", "self", "init"), "ratio")):
        for name in names:
            for label, d in dims.items():
                out[f"theory_{name}_{tag}_{label}"] = mean.loc[(THEORY_LINKS[name], d), column]
    return out


def comparison_findings(table: pd.DataFrame) -> dict:
    """The numbers the chapter's prose quotes about its comparison, per scenario ``key`` of
    ``table`` (:func:`.harness.main_rows` of :func:`.harness.compare`'s rows), means over seeds:
    ``{key}_{mumis|retrain}_{avg_gap|FA|TA|RA}`` (%), ``..._seconds``, ``{key}_speedup`` (retrain
    time / MU-Mis time), ``{key}_best_baseline`` (label) and ``_gap`` (%): the baseline of least
    Avg. Gap, and ``{key}_mumis_beats_baselines`` (MU-Mis's mean gap below every baseline's; the
    scorecard's paired test decides the claim, this only names the ordering of the means)."""
    means = table.groupby(["scenario", "method"])[["RA", "FA", "TA", "avg_gap", "seconds", "time_fraction"]].mean()
    out = {}
    for key in table["scenario"].unique():
        for col in ("avg_gap", "FA", "TA", "RA", "seconds"):
            scale = 1 if col == "seconds" else 100
            for method in ("mumis", "retrain"):
                out[f"{key}_{method}_{col}"] = scale * means.loc[(key, method), col]
        out[f"{key}_speedup"] = 1 / means.loc[(key, "mumis"), "time_fraction"]
        baselines = means.loc[key].drop(index=["original", "retrain", "mumis"])
        best = baselines["avg_gap"].idxmin()
        out[f"{key}_best_baseline"] = get_method(best).label
        out[f"{key}_best_baseline_gap"] = 100 * baselines.loc[best, "avg_gap"]
        out[f"{key}_mumis_beats_baselines"] = bool(means.loc[(key, "mumis"), "avg_gap"] < baselines["avg_gap"].min())
    return out


# ---------------------------------------------------------------------------- observations

def _sample(data: TensorSet, n: int, seed: int) -> TensorSet:
    if len(data) <= n:
        return data
    return data.subset(torch.randperm(len(data), generator=generator(seed))[:n])


def sensitivity_observations(models: dict[str, nn.Module], sets: dict[str, TensorSet], *, n: int, seed: int,
                             device) -> pd.DataFrame:
    """Per-sample input-sensitivity norms for every model × set (``n`` samples per set).

    Columns: model, set, target (‖∇ₓf_y‖_F, the true-class logit), irrelevant (mean over the
    K − 1 other logits of ‖∇ₓf_k‖_F, the expectation of MU-Mis's random draw), gap =
    target − irrelevant, and the ratio target / irrelevant.
    """
    rows = []
    for set_name, data in sets.items():
        part = _sample(data, n, seed)
        x = as_input(part.x, torch.device(device))
        for model_name, model in models.items():
            norms = class_sensitivity_norms(model.to(device).eval(), x).cpu()  # [n, K]
            target = norms.gather(1, part.y[:, None]).squeeze(1)
            irrelevant = (norms.sum(1) - target) / (norms.shape[1] - 1)
            rows.append(pd.DataFrame({"model": model_name, "set": set_name, "target": target.numpy(),
                                      "irrelevant": irrelevant.numpy()}))
    frame = pd.concat(rows, ignore_index=True)
    frame["gap"] = frame["target"] - frame["irrelevant"]
    frame["ratio"] = frame["target"] / frame["irrelevant"]
    return frame


# ---------------------------------------------------------------------------- ablations

def mumis_config(profile: str, problem: Problem, settings: dict, **changes) -> MuMisConfig:
    """MU-Mis's config on ``problem``: its budget (:func:`~.harness.budget_settings`), the
    ``settings`` of a pick, then ``changes``."""
    budget = budget_settings("mumis", problem.retrain_epochs)
    return MuMisConfig.for_profile(profile, {**budget, **settings, **changes})


def mumis_run(problem: Problem, cfg: MuMisConfig, *, device, retain_eval=None, on_step=None) -> tuple[nn.Module, dict]:
    """MU-Mis from a copy of ``problem.original`` on its forget set only; returns the model and
    a record: every metric of :func:`~.harness.measure` (fractions), ``avg_gap`` to the
    retrained model, steps, stopped (by the rule), seconds, final_loss."""
    model = copy.deepcopy(problem.original).to(device)
    ctx = RunContext(torch.device(device), problem.seed)
    start = time.perf_counter()
    trace = run_mumis(model, problem.split.without_retain().forget, problem.split.num_classes, cfg, ctx,
                      on_step=on_step)
    seconds = time.perf_counter() - start
    metrics = measure(model, problem, seed=problem.seed, device=device, retain_eval=retain_eval)
    reference = reference_metrics(problem, "retrained", device=device, retain_eval=retain_eval)
    return model, {**metrics, "avg_gap": avg_gap(metrics, reference), "steps": trace.steps,
                   "stopped": trace.stopped_by_rule, "seconds": seconds, "final_loss": trace.losses[-1]}


def observation_findings(obs: pd.DataFrame, obs_full: pd.DataFrame) -> dict:
    """The numbers the prose quotes from :func:`sensitivity_observations` on the random subset
    (``obs``) and on the full-class problem (``obs_full``): median target-class sensitivity at
    initialisation and after training and their ratio, the share of samples (%) whose target
    sensitivity exceeds the irrelevant classes', and the median target − irrelevant gap on the
    forget set of the original and the retrained model (both problems)."""
    med = obs.groupby(["model", "set"])[["target", "irrelevant", "gap"]].median()
    above = obs.assign(above=obs["target"] > obs["irrelevant"]).groupby(["model", "set"])["above"].mean()
    full = obs_full.groupby("model")["gap"].median()
    init, trained = med.loc[("initialisation", "retain"), "target"], med.loc[("original", "retain"), "target"]
    return {"sens_init_median": init, "sens_trained_median": trained, "sens_trained_vs_init": trained / init,
            "above_train_pct": 100 * above.loc[("original", "retain")],
            "above_test_pct": 100 * above.loc[("original", "test")],
            "above_init_pct": 100 * above.loc[("initialisation", "retain")],
            "gap_forget_original": med.loc[("original", "forget"), "gap"],
            "gap_forget_retrained": med.loc[("retrained", "forget"), "gap"],
            "gap_full_original": full["original"], "gap_full_retrained": full["retrained"]}


def mumis_ablation(cfg: Ch3Config, problem: Problem, pick: dict, *, device, retain_eval=None) -> pd.DataFrame:
    """MU-Mis with one knob changed at a time from the tuned ``pick`` (at its budget): each loss
    term alone, the δ values of ``cfg`` and the learning rate times each of its factors.

    One row per run: knob, value and the record of :func:`mumis_run`.
    """
    default = mumis_config(cfg.profile, problem, pick)
    runs = [("default", "", default)]
    runs += [("terms", t, replace(default, terms=t)) for t in ("target", "irrelevant")]
    runs += [("delta", d, replace(default, delta=d)) for d in cfg.ablation_deltas if d != default.delta]
    runs += [("lr", f"{f:g}× = {default.lr * f:.3g}", replace(default, lr=default.lr * f))
             for f in cfg.ablation_lr_factors if f != 1]
    rows = []
    for knob, value, mcfg in runs:
        _, record = mumis_run(problem, mcfg, device=device, retain_eval=retain_eval)
        rows.append({"knob": knob, "value": str(value), **record})
    return pd.DataFrame(rows)


def ablation_findings(ablation: pd.DataFrame) -> dict:
    """FA, TA and Avg. Gap (%) of :func:`mumis_ablation`'s default run (``both`` terms) and of
    each loss term alone (``target``, ``irrelevant``): ``ablate_{term}_{FA|TA|gap}``."""
    rows = {"both": ablation[ablation["knob"] == "default"].iloc[0]}
    rows.update({term: ablation[(ablation["knob"] == "terms") & (ablation["value"] == term)].iloc[0]
                 for term in ("target", "irrelevant")})
    return {f"ablate_{term}_{name}": 100 * row[col] for term, row in rows.items()
            for name, col in (("FA", "FA"), ("TA", "TA"), ("gap", "avg_gap"))}


def unbounded_findings(curve: pd.DataFrame) -> dict:
    """The numbers the prose quotes from :func:`unbounded_curve`: the last finite step, the loss,
    test accuracy (%) and sensitivity ratio at its start and end, and its fate (overflowed or
    still falling)."""
    finite = curve[np.isfinite(curve["loss"]) & np.isfinite(curve["ratio"])]
    overflowed = len(finite) < len(curve)
    last = curve.iloc[-1]
    return {"unbounded_steps": int(finite["step"].iloc[-1]), "unbounded_loss_start": finite["loss"].iloc[0],
            "unbounded_loss_end": finite["loss"].iloc[-1], "unbounded_ta_start": 100 * finite["TA"].iloc[0],
            "unbounded_ta_end": 100 * finite["TA"].iloc[-1], "unbounded_ratio_end": finite["ratio"].iloc[-1],
            "unbounded_fate": f"by step {int(last['step'])} it overflowed to {last['loss']} (test accuracy "
                              f"{100 * last['TA']:.1f}%)" if overflowed else "it keeps falling"}


def unbounded_curve(cfg: Ch3Config, problem: Problem, pick: dict, *, device, eval_n: int = 500) -> pd.DataFrame:
    """MU-Mis (the tuned ``pick``) without the stopping rule for ``cfg.unbounded_steps`` updates.

    Every ``cfg.unbounded_every`` steps records the loss on the whole forget set (one fixed
    draw of c'), the stopping ratio, and test / forget accuracy (fractions; test capped at
    ``eval_n``). Stops early once the loss is no longer finite (the last row shows it).
    """
    dev = torch.device(device)
    split, seed = problem.split, problem.seed
    forget = split.forget
    test = _sample(split.test, eval_n, seed)
    x_f, y_f = as_input(forget.x, dev), forget.y.to(dev)
    fixed_c = draw_irrelevant_classes(y_f, split.num_classes, generator(seed + 7))
    base = mumis_config(cfg.profile, problem, pick)
    steps_per_epoch = math.ceil(len(forget) / base.batch_size)
    mcfg = replace(base, delta=None, max_epochs=math.ceil(cfg.unbounded_steps / steps_per_epoch))
    rows = []

    def record(step: int, model: nn.Module) -> bool:
        if step % cfg.unbounded_every == 0:
            out = mumis_loss(model, x_f, y_f, fixed_c)
            rows.append({"step": step, "loss": out.loss.item(),
                         "irrelevant_norm": out.irrelevant_sq.sum().sqrt().item(),
                         "TA": _acc(model, test, dev), "FA": _acc(model, forget, dev)})
            if not math.isfinite(rows[-1]["loss"]):
                return True
        return step >= cfg.unbounded_steps

    model = copy.deepcopy(problem.original).to(dev).eval()
    record(0, model)
    run_mumis(model, forget, split.num_classes, mcfg, RunContext(dev, seed), on_step=record)
    frame = pd.DataFrame(rows)
    frame["ratio"] = frame["irrelevant_norm"] / frame["irrelevant_norm"].iloc[0]
    return frame


def _acc(model: nn.Module, data: TensorSet, device) -> float:
    return (predict(model, data, device=device).argmax(1) == data.y).float().mean().item()


# ---------------------------------------------------------------------------- benchmark

def step_time_ratio(model: nn.Module, data: TensorSet, num_classes: int, *, batch: int, repeats: int,
                    device) -> dict[str, float]:
    """Median seconds of one MU-Mis step and one plain training step on the same batch.

    Plain: train-mode forward, cross-entropy, backward, SGD step. MU-Mis: eval-mode loss
    (two input gradients with graphs), backward through them, SGD step. Returns
    ``{"plain_s", "mumis_s", "ratio"}`` (ratio = MU-Mis / plain).
    """
    dev = torch.device(device)
    part = _sample(data, batch, 0)
    x, y = as_input(part.x, dev), part.y.to(dev)
    irrelevant = draw_irrelevant_classes(y, num_classes, generator(0))
    work = copy.deepcopy(model).to(dev)
    optimizer = torch.optim.SGD(work.parameters(), lr=1e-6)

    def plain():
        work.train()
        loss = F.cross_entropy(work(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def mumis_step():
        work.eval()
        loss = mumis_loss(work, x, y, irrelevant).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = {}
    for name, fn in (("plain_s", plain), ("mumis_s", mumis_step)):
        fn()  # warm-up
        samples = []
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            samples.append(time.perf_counter() - start)
        times[name] = float(np.median(samples))
    return {**times, "ratio": times["mumis_s"] / times["plain_s"]}


# ---------------------------------------------------------------------------- scorecard

def ratio_verdict(ratio: float, *, reproduced_at: float, partly_at: float) -> str:
    """Verdict for a qualitative "≫ 1" claim: reproduced if ``ratio >= reproduced_at``,
    partly if ``ratio >= partly_at``, else not reproduced."""
    if not partly_at <= reproduced_at:
        raise ValueError(f"need partly_at <= reproduced_at; got {partly_at} and {reproduced_at}")
    if ratio >= reproduced_at:
        return "reproduced"
    return "partly" if ratio >= partly_at else "not reproduced"
