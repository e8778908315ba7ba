"""Chapter 3 experiments: MU-Mis, unlearning by suppressing sample contribution (Cheng et al.).

* :func:`contribution_check`: the function-space expansion on a tiny network trained by
  full-batch gradient descent, with the training input's contribution ∂f_T(x_i)/∂x_i
  differentiated *through training* (torch.func) and compared with the input sensitivity.
* :func:`sensitivity_observations`: per-sample ‖∇ₓf_k‖ at initialisation, after training and
  after retraining without the forget set.
* :func:`run_scenario`: Retrain, the baselines and MU-Mis on one split; RA / FA / TA / MIA /
  time. :func:`summarise` adds the Avg. Gap to retrain and mean ± std over seeds.
* :func:`mumis_ablation` / :func:`unbounded_curve`: loss terms, δ, learning rate, no stopping.
* :func:`step_time_ratio`: a MU-Mis step against a plain training step on the same batch.

Profile defaults live in :func:`profile_config` (frozen :class:`Ch3Config`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, jacrev, vmap

from ..config import as_dict, build_config, check_choice, check_profile, check_range
from ..data.core import Split, TensorSet
from ..methods import get_method, unlearn
from ..methods.base import RunContext, as_input
from ..methods.mumis import MuMisConfig, run_mumis
from ..metrics import evaluate_split
from ..models import build_model
from ..runtime import generator
from ..sensitivity import class_sensitivity_norms, draw_irrelevant_classes, mumis_loss
from ..train import TrainConfig, cached_train, predict, train_model
from .tasks import ImageTask, cifar10_task, train_original, train_retrained

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
class ScenarioSpec:
    """One forgetting scenario: the task (data, model, recipe) and ``make_split`` arguments."""

    key: str
    task: ImageTask
    scenario: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ch3Config:
    """Everything chapter 3 runs at one profile.

    scenarios: the forgetting tasks of the main table. methods: registry names (Retrain uses the
    cached retrained model). method_overrides: hyperparameters per method (else the registry's
    profile defaults). seeds: repetitions (original model, split and method seeds).
    retain_eval: retain samples scored for RA and the attacks (None: all).
    observe_n: samples per set in the sensitivity observations.
    theory / theory_dims: the contribution check and its input dimensions.
    ablation_*: MU-Mis ablations on the first scenario (seed ``seed``): δ values, learning
    rates; unbounded_steps / unbounded_every: the run without stopping rule and its eval period.
    bench_batch / bench_repeats: the step-time benchmark.
    """

    profile: str
    scenarios: tuple[ScenarioSpec, ...]
    methods: tuple[str, ...]
    method_overrides: dict
    seeds: int
    retain_eval: int | None
    observe_n: int
    theory: TheoryConfig
    theory_dims: tuple[int, ...]
    ablation_deltas: tuple[float, ...]
    ablation_lrs: tuple[float, ...]
    unbounded_steps: int
    unbounded_every: int
    bench_batch: int
    bench_repeats: int

    def __post_init__(self):
        check_profile(self.profile)
        check_range("seeds", self.seeds, 1)
        for name in self.methods:
            get_method(name)
        unknown = sorted(set(self.method_overrides) - set(self.methods))
        if unknown:
            raise ValueError(f"method_overrides for {unknown}, which are not in methods {self.methods}")
        for name, values in self.method_overrides.items():
            get_method(name).config.for_profile(self.profile, values)  # validates every override
        if "retrain" not in self.methods or "mumis" not in self.methods:
            raise ValueError(f"methods must include 'retrain' and 'mumis'; got {self.methods}")
        for spec in self.scenarios:
            check_choice("scenario", spec.scenario, ("full_class", "random_subset", "sub_class"))
        for d in self.theory_dims:
            check_range("theory dimension", d, 1)
        for delta in self.ablation_deltas:
            check_range("ablation delta", delta, 1, low_open=True)
        for lr in self.ablation_lrs:
            check_range("ablation lr", lr, 0, low_open=True)
        check_range("observe_n", self.observe_n, 2)
        check_range("unbounded_steps", self.unbounded_steps, 1)
        check_range("unbounded_every", self.unbounded_every, 1)
        check_range("bench_batch", self.bench_batch, 1)
        check_range("bench_repeats", self.bench_repeats, 1)

    def mumis(self, **changes) -> MuMisConfig:
        """The MU-Mis config of the main table at this profile, with ``changes``."""
        return MuMisConfig.for_profile(self.profile, {**self.method_overrides.get("mumis", {}), **changes})


METHODS = tuple(METHOD_LABELS)
CPU_POOL, CPU_TEST, CPU_EPOCHS, CPU_BATCH = 1000, 500, 40, 100
"""At ``cpu``: a stratified pool of 1,000 CIFAR-10 training images (100 per class) and 500 test
images, so that 8 methods × 2 scenarios × 3 seeds and the ablations fit in minutes on two
cores. The shared cpu recipe (8 epochs of batch 256, sized for a 20,000-image pool) runs 40
epochs on it so the network fits its data, in batches of 100 so that the pool (1,000) and both
retain sets (900) split into full batches: with 256, every epoch of a retrain ended on a tiny
batch at full learning rate, which cost the retrained model 25 accuracy points in our runs."""

# A cheaper budget for the baselines at cpu and smoke: one pass over the data they train on.
ONE_PASS = {"finetune": {"epochs": 1}, "random_labels": {"epochs": 1}, "salun": {"epochs": 1},
            "l1_sparse": {"epochs": 1}, "scrub": {"epochs": 1, "max_steps": 1}}


def _cifar20_task() -> ImageTask:
    return ImageTask("cifar100", "resnet18",
                     TrainConfig(model="resnet18", epochs=182, batch_size=128, lr=0.1, schedule="multistep",
                                 milestones=(91, 136)))


def _scenarios(profile: str) -> tuple[ScenarioSpec, ...]:
    if profile == "smoke":
        task = cifar10_task("smoke", load_kw={"n_per_class": 30, "n_test_per_class": 8, "size": 16})
        task = replace(task, train=replace(task.train, epochs=8, batch_size=27))  # full batches: pool 270, retain 243
        return (ScenarioSpec("full_class", task, "full_class", {"forget_class": 1}),
                ScenarioSpec("random_subset", task, "random_subset", {"forget_fraction": 0.1}))
    if profile == "cpu":
        task = cifar10_task("cpu", max_train=CPU_POOL, max_test=CPU_TEST)
        task = replace(task, train=replace(task.train, epochs=CPU_EPOCHS, batch_size=CPU_BATCH))
    else:
        task = cifar10_task("paper")
    specs = (ScenarioSpec("full_class", task, "full_class", {"forget_class": "airplane"}),
             ScenarioSpec("random_subset", task, "random_subset", {"forget_fraction": 0.1}))
    if profile == "paper":
        specs += (ScenarioSpec("sub_class", _cifar20_task(), "sub_class", {"subclass": "rocket"}),)
    return specs


PROFILE_DEFAULTS = {
    "smoke": dict(methods=METHODS, seeds=1, retain_eval=None, observe_n=8,
                  method_overrides={**ONE_PASS, "neggrad": {"epochs": 1},
                                    "mumis": {"lr": 0.05, "delta": 1.5, "max_epochs": 2}},
                  theory=TheoryConfig(n_train=4, hidden=8, steps=4), theory_dims=(4,),
                  ablation_deltas=(2.0,), ablation_lrs=(0.5,), unbounded_steps=4,
                  unbounded_every=2, bench_batch=8, bench_repeats=1),
    "cpu": dict(methods=METHODS, seeds=3, retain_eval=400, observe_n=100,
                method_overrides={**ONE_PASS, "mumis": {"lr": 0.003, "delta": 1.3, "max_epochs": 15}},
                theory=TheoryConfig(), theory_dims=(8, 32, 128),
                ablation_deltas=(1.5, 2.0), ablation_lrs=(0.001, 0.01), unbounded_steps=20,
                unbounded_every=4, bench_batch=100, bench_repeats=3),
    "paper": dict(methods=METHODS, seeds=3, retain_eval=None, observe_n=1000,
                  method_overrides={"mumis": {"lr": 0.003, "delta": 1.3}},
                  theory=TheoryConfig(), theory_dims=(8, 32, 128, 512),
                  ablation_deltas=(1.2, 2.0, 3.0), ablation_lrs=(0.001, 0.01), unbounded_steps=200,
                  unbounded_every=10, bench_batch=128, bench_repeats=10),
}


def profile_config(profile: str, **overrides) -> Ch3Config:
    """The chapter's frozen config at ``profile``; ``overrides`` replace fields by name."""
    check_profile(profile)
    values = {"profile": profile, "scenarios": _scenarios(profile), **PROFILE_DEFAULTS[profile]}
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


# ---------------------------------------------------------------------------- models and splits

def initial_model(task: ImageTask, num_classes: int, example: torch.Tensor, seed: int) -> nn.Module:
    """The untrained network the original of ``seed`` started from (same builder, same seed)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(task.model, num_classes, in_channels=example.shape[0], image_size=example.shape[-1]).eval()


def superclass_original(task: ImageTask, split: Split, *, seed: int, device,
                        progress: bool = False) -> tuple[nn.Module, dict]:
    """The original model of a sub-class split: ``task.train`` on ``split.train`` with the
    superclass labels (CIFAR-20), cached like every trained model.

    :func:`~unlearnkit.experiments.tasks.train_original` trains on the fine labels; the
    sub-class task needs the coarse ones, and its pool does not depend on the forget class.
    """
    cfg = replace(task.train, seed=seed)
    key = {"role": "original-superclass", "task": as_dict(replace(task, train=cfg))}

    def fit(model: nn.Module) -> nn.Module:
        return train_model(model, split.train, cfg, device=device, progress=progress, desc=f"original seed {seed}")

    return cached_train(key, lambda: initial_model(task, split.num_classes, split.forget.x[0], seed), fit,
                        device=device)


def scenario_models(spec: ScenarioSpec, seed: int, *, original_seed: int, device, root=None,
                    progress: bool = False) -> dict:
    """The split, the original model and the retrained model (both cached) of ``spec`` at ``seed``.

    One original (``original_seed``) serves every repetition: it is trained on the whole pool,
    before any forget set is drawn. A random subset is drawn anew for every ``seed`` and gets
    its own retrained model; a full-class or sub-class forget set is the same for every seed,
    so its split and retrained model are those of ``original_seed`` (only the methods' seeds
    change). Returns ``{"split", "original", "retrained", "retrain_seconds", "hits"}``;
    ``retrain_seconds`` is the retraining time measured in this run (tasks.retrain_seconds_this_run).
    """
    split_seed = seed if spec.scenario == "random_subset" else original_seed
    split = spec.task.split(spec.scenario, seed=split_seed, root=root, **spec.kwargs)
    if spec.scenario == "sub_class":
        original, info_o = superclass_original(spec.task, split, seed=original_seed, device=device, progress=progress)
    else:
        original, info_o = train_original(spec.task, seed=original_seed, device=device, root=root, progress=progress)
    retrained, info_r = train_retrained(spec.task, split, seed=split_seed, device=device, progress=progress)
    return {"split": split, "original": original, "retrained": retrained,
            "retrain_seconds": info_r["seconds_this_run"], "hits": (info_o["hit"], info_r["hit"])}


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


# ---------------------------------------------------------------------------- main experiment

def _pct(metrics: dict) -> dict:
    return {"RA": 100 * metrics["RA"], "FA": 100 * metrics["FA"], "TA": 100 * metrics["TA"],
            "MIA": 100 * metrics["mia_entropy_logreg"]}


def run_scenario(cfg: Ch3Config, spec: ScenarioSpec, seed: int, *, original_seed: int, device, root=None,
                 progress: bool = False) -> pd.DataFrame:
    """Every method of ``cfg.methods`` on ``spec`` at ``seed``: one row per method.

    Columns: scenario, seed, method, RA, FA, TA (accuracies in %), MIA (``mia_entropy_logreg``
    in %: forget samples flagged as members), seconds (the method's wall time; Retrain: the
    cached retrained model's training time). A last row "Original" scores the original model.
    """
    parts = scenario_models(spec, seed, original_seed=original_seed, device=device, root=root, progress=progress)
    split = parts["split"]
    rows = []
    for name in cfg.methods:
        if name == "retrain":
            model, seconds = parts["retrained"], parts["retrain_seconds"]
        else:
            result = unlearn(name, parts["original"], split, profile=cfg.profile, device=str(device), seed=seed,
                             **cfg.method_overrides.get(name, {}))
            model, seconds = result.model, result.seconds
        metrics = evaluate_split(model, split, device=device, seed=seed, retain_sample=cfg.retain_eval)
        rows.append({"scenario": spec.key, "seed": seed, "method": METHOD_LABELS.get(name, name),
                     **_pct(metrics), "seconds": seconds})
    original = evaluate_split(parts["original"], split, device=device, seed=seed, retain_sample=cfg.retain_eval)
    rows.append({"scenario": spec.key, "seed": seed, "method": "Original", **_pct(original),
                 "seconds": float("nan")})
    return pd.DataFrame(rows)


def add_avg_gap(results: pd.DataFrame) -> pd.DataFrame:
    """Add ``gap`` = mean(|ΔRA|, |ΔFA|, |ΔTA|) to the Retrain row of the same scenario and seed."""
    keys = ["scenario", "seed"]
    reference = results.loc[results["method"] == "Retrain", [*keys, "RA", "FA", "TA"]]
    joined = results.merge(reference, on=keys, how="left", suffixes=("", "_retrain"))
    gap = sum((joined[m] - joined[f"{m}_retrain"]).abs() for m in ("RA", "FA", "TA")) / 3
    return results.assign(gap=gap.to_numpy())


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per scenario × method (method order kept)."""
    cols = ["RA", "FA", "TA", "MIA", "gap", "seconds"]
    order = list(dict.fromkeys(results["method"]))
    grouped = results.groupby(["scenario", "method"], sort=False)[cols]
    spread = grouped.std(ddof=1 if results["seed"].nunique() > 1 else 0).add_suffix("_std")
    summary = grouped.mean().join(spread)
    summary = summary.reset_index()
    summary["method"] = pd.Categorical(summary["method"], order, ordered=True)
    return summary.sort_values(["scenario", "method"]).set_index(["scenario", "method"])


def format_summary(summary: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """``mean ± std`` strings per metric, for display."""
    cols = ["RA", "FA", "TA", "MIA", "gap", "seconds"]
    out = pd.DataFrame(index=summary.index)
    for c in cols:
        out[c] = [f"{m:.{digits}f} ± {s:.{digits}f}" if not math.isnan(m) else "–"
                  for m, s in zip(summary[c], summary[f"{c}_std"])]
    return out.rename(columns={"gap": "Avg. Gap", "seconds": "time (s)", "MIA": "MIA (entropy)"})


# ---------------------------------------------------------------------------- ablations

def mumis_run(original: nn.Module, split: Split, cfg: MuMisConfig, seed: int, *, device, retain_eval=None,
              on_step=None) -> tuple[nn.Module, dict]:
    """MU-Mis from a copy of ``original`` on ``split.forget`` only; returns the model and a
    record ``{RA, FA, TA, MIA (in %), steps, stopped, seconds, final_loss}``."""
    model = copy.deepcopy(original).to(device)
    ctx = RunContext(torch.device(device), seed)
    start = time.perf_counter()
    trace = run_mumis(model, split.without_retain().forget, split.num_classes, cfg, ctx, on_step=on_step)
    seconds = time.perf_counter() - start
    metrics = evaluate_split(model, split, device=device, seed=seed, retain_sample=retain_eval)
    return model, {**_pct(metrics), "steps": trace.steps, "stopped": trace.stopped_by_rule,
                   "seconds": seconds, "final_loss": trace.losses[-1]}


def mumis_ablation(cfg: Ch3Config, original: nn.Module, split: Split, seed: int, *, device) -> pd.DataFrame:
    """MU-Mis with one knob changed at a time: the default run, each loss term alone, the δ
    values and learning rates of ``cfg`` (those equal to the default are not rerun).

    One row per run: knob, value and the record of :func:`mumis_run`.
    """
    default = cfg.mumis()
    runs = [("default", "", default)]
    runs += [("terms", t, cfg.mumis(terms=t)) for t in ("target", "irrelevant")]
    runs += [("delta", d, cfg.mumis(delta=d)) for d in cfg.ablation_deltas if d != default.delta]
    runs += [("lr", lr, cfg.mumis(lr=lr)) for lr in cfg.ablation_lrs if lr != default.lr]
    rows = []
    for knob, value, mcfg in runs:
        _, record = mumis_run(original, split, mcfg, seed, device=device, retain_eval=cfg.retain_eval)
        rows.append({"knob": knob, "value": str(value), **record})
    return pd.DataFrame(rows)


def unbounded_curve(cfg: Ch3Config, original: nn.Module, split: Split, seed: int, *, device,
                    eval_n: int = 500) -> pd.DataFrame:
    """MU-Mis without the stopping rule for ``cfg.unbounded_steps`` updates.

    Every ``cfg.unbounded_every`` steps records the loss on the whole forget set (one fixed
    draw of c'), the stopping ratio, and test / forget accuracy (test capped at ``eval_n``).
    Stops early once the loss is no longer finite (float overflow: the last row shows it).
    """
    dev = torch.device(device)
    forget = split.forget
    test = _sample(split.test, eval_n, seed)
    x_f, y_f = as_input(forget.x, dev), forget.y.to(dev)
    fixed_c = draw_irrelevant_classes(y_f, split.num_classes, generator(seed + 7))
    steps_per_epoch = math.ceil(len(forget) / cfg.mumis().batch_size)
    mcfg = cfg.mumis(delta=None, max_epochs=math.ceil(cfg.unbounded_steps / steps_per_epoch))
    rows = []

    def record(step: int, model: nn.Module) -> bool:
        if step % cfg.unbounded_every == 0:
            out = mumis_loss(model, x_f, y_f, fixed_c)
            rows.append({"step": step, "loss": out.loss.item(),
                         "irrelevant_norm": out.irrelevant_sq.sum().sqrt().item(),
                         "TA": 100 * _acc(model, test, dev), "FA": 100 * _acc(model, forget, dev)})
            if not math.isfinite(rows[-1]["loss"]):
                return True
        return step >= cfg.unbounded_steps

    model = copy.deepcopy(original).to(dev).eval()
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
