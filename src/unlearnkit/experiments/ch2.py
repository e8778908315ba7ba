"""Chapter 2 experiments: DLFD, distribution-level feature distancing (Choi & Na, AAAI 2025).

* :func:`face_problem` / :func:`cifar_problem`: a split with its original and retrained models
  (both cached): identity forgetting on faces (CK+48 at ``cpu``; MUFAC or RAF-DB at ``paper``
  when present) and CIFAR-10 random 10 % forgetting (the book's shared CIFAR-10 task).
* :func:`run_methods`: Original, Retrain, the baselines, DLFD and DLFD-released on one problem:
  test accuracy, loss-MIA (forget vs unseen), forgetting score, NoMUS, wall time, and the
  feature–label correlation of :func:`feature_label_correlation` (correlation collapse).
* :func:`dlfd_traces`: per-batch OT distance, gate and forgetting score of both DLFD variants.
* :func:`ot_step_share`: the share of a DLFD step spent on the OT term, measured.
* :func:`summarise` and :func:`scorecard_inputs`: mean ± std over seeds and the verdict inputs.

Profile defaults live in :func:`profile_config` (frozen :class:`Ch2Config`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..config import as_dict, build_config, check_choice, check_profile, check_range
from ..data.core import Split, TensorSet
from ..data.faces import MUFAC_FOLDER, RAF_FOLDER, load_mufac, load_rafdb, mufac_split, rafdb_split
from ..methods import get_method, unlearn
from ..methods.base import RunContext, as_input
from ..methods.dlfd import DLFDConfig, PAPER_SETTINGS, dlfd_train, perturb_batch
from ..metrics import evaluate_split
from ..models import build_model
from ..runtime import data_root, generator, single_threaded
from ..train import TrainConfig, cached_train, train_model
from .tasks import ImageTask, cifar10_task, train_original, train_retrained

FACE_SOURCES = ("synthetic-faces", "ckplus", "mufac", "rafdb", "auto")
BASELINES = ("finetune", "neggrad", "random_labels", "cf_k", "eu_k", "unsir", "bad_teacher", "scrub")
DLFD_VARIANTS = ("dlfd", "dlfd_released")
METHODS = BASELINES + DLFD_VARIANTS
COLLAPSE_METHODS = ("original", "retrain", "finetune", "neggrad", "random_labels", "dlfd", "dlfd_released")
LABELS = {"original": "Original", "retrain": "Retrain", "finetune": "FT", "neggrad": "NegGrad",
          "random_labels": "RL", "cf_k": "CF-k", "eu_k": "EU-k", "unsir": "UNSIR",
          "bad_teacher": "Bad Teacher", "scrub": "SCRUB", "dlfd": "DLFD", "dlfd_released": "DLFD-released",
          "dlfd_no_ot": "DLFD, w_f = 0"}
ABLATIONS = {"dlfd_no_ot": ("dlfd", {"forget_weight": 0.0})}
"""Extra runs on faces: the intended DLFD without its OT term isolates what that term contributes."""

# The official emotion (RAF-DB) notebook's outputs, FACTS.md §2: test accuracy / MIA / NoMUS.
OFFICIAL_EMOTION = {"original": (0.750, 0.674, 0.701), "retrain": (0.719, 0.520, 0.840),
                    "finetune": (0.752, 0.683, 0.693), "neggrad": (0.732, 0.647, 0.720),
                    "unsir": (0.622, 0.520, 0.791), "bad_teacher": (0.515, 0.521, 0.737),
                    "scrub": (0.751, 0.638, 0.738), "dlfd_released": (0.661, 0.547, 0.784)}
OFFICIAL_AGE = {"original": (0.633, 0.692, 0.624), "retrain": (0.608, 0.555, 0.749),
                "finetune": (0.638, 0.688, 0.630), "neggrad": (0.412, 0.475, 0.681),
                "unsir": (0.491, 0.531, 0.714), "bad_teacher": (0.420, 0.563, 0.647),
                "scrub": (0.646, 0.664, 0.659), "dlfd_released": (0.620, 0.528, 0.782)}
# DLFD's baseline settings (FACTS.md §2), used at the paper profile.
PAPER_BASELINES = {"finetune": {"epochs": 2, "lr": 1e-3}, "neggrad": {"epochs": 1, "lr": 1e-3},
                   "cf_k": {"epochs": 2}, "eu_k": {"epochs": 2}}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Ch2Config:
    """Everything chapter 2 runs at one profile.

    face_source: ``synthetic-faces`` | ``ckplus`` | ``mufac`` | ``rafdb`` | ``auto`` (MUFAC, else
    RAF-DB, else CK+48, by what is under the data root). face_task: model and training recipe
    of the face original / retrained models (its dataset is the registry name for CK+ and the
    synthetic set). face_image_size: side of MUFAC / RAF-DB images. cifar_task: the shared
    CIFAR-10 task (``None``: skip CIFAR-10). seeds / cifar_seeds: repetitions (original model,
    forget set, method seeds). method_overrides / cifar_overrides: hyperparameters per method
    on faces / CIFAR-10 on top of the registry's profile defaults. retain_eval: retain samples
    used for RA (``None``: all). probe_samples: cap per set for the linear probe.
    ot_timing_repeats: repetitions of the timed DLFD step.
    """

    profile: str
    face_source: str
    face_task: ImageTask
    face_image_size: int
    forget_subject_fraction: float
    seeds: int
    cifar_task: ImageTask | None
    cifar_seeds: int
    cifar_forget_fraction: float
    methods: tuple[str, ...]
    method_overrides: dict = field(default_factory=dict)
    cifar_overrides: dict = field(default_factory=dict)
    retain_eval: int | None = 1000
    probe_samples: int = 1000
    ot_timing_repeats: int = 3

    def __post_init__(self):
        check_profile(self.profile)
        check_choice("face_source", self.face_source, FACE_SOURCES)
        check_range("forget_subject_fraction", self.forget_subject_fraction, 0, 1, low_open=True, high_open=True)
        check_range("cifar_forget_fraction", self.cifar_forget_fraction, 0, 1, low_open=True, high_open=True)
        for name in ("seeds", "cifar_seeds", "probe_samples", "ot_timing_repeats", "face_image_size"):
            check_range(name, getattr(self, name), 1)
        for method in self.methods:
            get_method(method)
        for name in ("dlfd", "dlfd_released"):
            if name not in self.methods:
                raise ValueError(f"methods must include {name!r} (the chapter compares both DLFD variants)")
        for table in (self.method_overrides, self.cifar_overrides):
            for method, values in table.items():
                get_method(method).config.for_profile(self.profile, values)

    def overrides(self, method: str, dataset: str) -> dict:
        """Hyperparameters of ``method`` on ``dataset`` (``faces`` or ``cifar``) beyond the registry's."""
        table = self.method_overrides if dataset == "faces" else self.cifar_overrides
        return dict(table.get(method, {}))


def _face_task(profile: str) -> ImageTask:
    if profile == "smoke":
        return ImageTask("synthetic-faces", "face_cnn",
                         TrainConfig(model="face_cnn", epochs=6, batch_size=32, lr=0.05, augment=False),
                         load_kw={"num_subjects": 40, "images_per_subject": 6, "size": 24})
    if profile == "cpu":
        return ImageTask("ckplus", "face_cnn", TrainConfig(model="face_cnn", epochs=30, batch_size=64, lr=0.1))
    return ImageTask("ckplus", "resnet18_dlfd", TrainConfig(model="resnet18_dlfd", epochs=100, batch_size=32,
                                                          lr=0.01, schedule="cosine"))


_FACE_BATCH = {name: {"batch_size": 32} for name in BASELINES}
"""At ``cpu`` the baselines use DLFD's MUFAC batch size on faces (CK+ has a few hundred retain images)."""
_SMOKE_METHODS = {**{name: {"epochs": 1} for name in ("finetune", "neggrad", "random_labels", "cf_k", "eu_k",
                                                       "bad_teacher")},
                  "scrub": {"epochs": 1, "max_steps": 1}, "unsir": {"noise_steps": 3, "repair_epochs": 1},
                  "dlfd": {"monitor_every": 4}, "dlfd_released": {"monitor_every": 4}}
"""At ``smoke`` every method does the least that still exercises its code path."""
PROFILE_DEFAULTS: dict[str, dict] = {
    "smoke": dict(face_source="synthetic-faces", face_image_size=24, forget_subject_fraction=0.15,
                  seeds=1, cifar_seeds=1, cifar_forget_fraction=0.1, methods=METHODS, retain_eval=None,
                  probe_samples=200, ot_timing_repeats=1, method_overrides=_SMOKE_METHODS,
                  cifar_overrides=_SMOKE_METHODS),
    "cpu": dict(face_source="ckplus", face_image_size=48, forget_subject_fraction=0.15, seeds=3,
                cifar_seeds=1, cifar_forget_fraction=0.1, methods=METHODS, retain_eval=1000,
                probe_samples=1000, ot_timing_repeats=3,
                method_overrides=_FACE_BATCH,
                cifar_overrides={name: {"batch_size": 128, "perturbation_steps": 3, "step_size": 0.02,
                                        "monitor_every": 5} for name in DLFD_VARIANTS}),
    "paper": dict(face_source="auto", face_image_size=128, forget_subject_fraction=0.15, seeds=3,
                  cifar_seeds=3, cifar_forget_fraction=0.1, methods=METHODS, retain_eval=None,
                  probe_samples=2000, ot_timing_repeats=5, method_overrides=PAPER_BASELINES,
                  cifar_overrides={}),
}
CPU_CIFAR_POOL, CPU_CIFAR_TEST = 5000, 2000
"""CIFAR-10 at ``cpu``: the same 5,000-image pool (4,500 after validation) and 2,000 test images
as chapter 3, so the original and retrained models are shared cache entries."""


def _cifar_task(profile: str) -> ImageTask:
    if profile == "cpu":
        return cifar10_task("cpu", max_train=CPU_CIFAR_POOL, max_test=CPU_CIFAR_TEST)
    if profile == "smoke":
        return cifar10_task("smoke", load_kw={"num_classes": 4, "n_per_class": 40, "n_test_per_class": 10, "size": 16})
    return cifar10_task(profile)


def resolve_face_source(source: str, root=None) -> str:
    """``auto`` → ``mufac`` if its folder is under the data root, else ``rafdb``, else ``ckplus``."""
    if source != "auto":
        return source
    base = data_root(root)
    if (base / MUFAC_FOLDER).is_dir():
        return "mufac"
    return "rafdb" if (base / RAF_FOLDER).is_dir() else "ckplus"


def profile_config(profile: str, root=None, **overrides) -> Ch2Config:
    """The validated chapter-2 config of ``profile`` with ``overrides`` (unknown names raise).

    At ``paper`` the face source is resolved against ``root`` and, for MUFAC / RAF-DB, DLFD
    takes the official notebook's settings of that dataset (:data:`PAPER_SETTINGS`).
    """
    check_profile(profile)
    values = {"profile": profile, "face_task": _face_task(profile), "cifar_task": _cifar_task(profile),
              **PROFILE_DEFAULTS[profile]}
    values.update(overrides)
    values["face_source"] = resolve_face_source(values["face_source"], root)
    if profile == "paper" and values["face_source"] in PAPER_SETTINGS:
        dlfd = PAPER_SETTINGS[values["face_source"]]
        values["method_overrides"] = {**values["method_overrides"], "dlfd": dlfd, "dlfd_released": dlfd}
    return build_config(Ch2Config, values)


# ---------------------------------------------------------------------------- problems

@dataclass
class Problem:
    """One split with its original and retrained models (both in eval mode)."""

    name: str
    seed: int
    split: Split
    original: nn.Module
    retrained: nn.Module
    retrain_seconds: float
    cache_hits: tuple[bool, bool]


def _model_for(name: str, split: Split, mean, std) -> nn.Module:
    example = split.retain.x[0]
    return build_model(name, split.num_classes, in_channels=example.shape[0], image_size=example.shape[-1],
                       mean=mean, std=std)


def _cached(role: str, data: TensorSet, split: Split, recipe: TrainConfig, key: dict, seed: int, *,
            mean, std, device, progress: bool) -> tuple[nn.Module, dict]:
    recipe = replace(recipe, seed=seed)

    def build() -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _model_for(recipe.model, split, mean, std)

    def fit(model: nn.Module) -> nn.Module:
        return train_model(model, data, recipe, device=device, progress=progress, desc=f"{role} seed {seed}")

    return cached_train({"role": role, "train": as_dict(recipe), **key}, build, fit, device=device)


def _released_face_split(source: str, cfg: Ch2Config, root) -> tuple[Split, tuple, tuple]:
    """MUFAC or RAF-DB with the released split and normalisation (ImageNet stats for MUFAC)."""
    if source == "mufac":
        return mufac_split(load_mufac(root, size=cfg.face_image_size)), IMAGENET_MEAN, IMAGENET_STD
    return rafdb_split(load_rafdb(root, size=cfg.face_image_size)), 0.5, 0.5


def face_problem(cfg: Ch2Config, seed: int, *, device, root=None, progress: bool = False) -> Problem:
    """Identity forgetting on faces: forget every image of ``forget_subject_fraction`` of the subjects
    (registry faces), or DLFD's released split of MUFAC / RAF-DB."""
    task = cfg.face_task
    if cfg.face_source in ("mufac", "rafdb"):
        split, mean, std = _released_face_split(cfg.face_source, cfg, root)
        key = {"dataset": cfg.face_source, "size": cfg.face_image_size}
        original, info_o = _cached("original", split.train, split, task.train, key, seed, mean=mean, std=std,
                                   device=device, progress=progress)
        retrained, info_r = _cached("retrained", split.retain, split, task.train, key, seed, mean=mean, std=std,
                                    device=device, progress=progress)
    else:
        task = replace(task, dataset=cfg.face_source) if cfg.face_source != task.dataset else task
        split = task.split("identity", seed=seed, root=root, forget_subject_fraction=cfg.forget_subject_fraction)
        original, info_o = train_original(task, seed=seed, device=device, root=root, progress=progress,
                                          num_classes=split.num_classes)
        retrained, info_r = train_retrained(task, split, seed=seed, device=device, progress=progress)
    # MUFAC / RAF-DB models come from _cached, which reports the stored time on a cache hit
    seconds = info_r.get("seconds_this_run", info_r["train_seconds"])
    return Problem("faces", seed, split, original, retrained, seconds, (info_o["hit"], info_r["hit"]))


def cifar_problem(cfg: Ch2Config, seed: int, *, device, root=None, progress: bool = False) -> Problem:
    """CIFAR-10 random ``cifar_forget_fraction`` forgetting on the shared CIFAR-10 task."""
    task = cfg.cifar_task
    split = task.split("random_subset", seed=seed, root=root, forget_fraction=cfg.cifar_forget_fraction)
    original, info_o = train_original(task, seed=seed, device=device, root=root, progress=progress,
                                      num_classes=split.num_classes)
    retrained, info_r = train_retrained(task, split, seed=seed, device=device, progress=progress)
    return Problem("cifar10", seed, split, original, retrained, info_r["seconds_this_run"],
                   (info_o["hit"], info_r["hit"]))


# ---------------------------------------------------------------------------- measurements

@torch.no_grad()
def features_of(model: nn.Module, data: TensorSet, *, device, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features ``[N, D]`` (eval mode, CPU float32)."""
    model.eval()
    return torch.cat([model.features(as_input(data.x[i:i + batch_size], device)).float().cpu()
                      for i in range(0, len(data), batch_size)])


def class_separation(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Fisher ratio ``tr(S_B) / tr(S_W)`` of features ``[N, D]`` with labels ``[N]``.

    ``S_B = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ``, ``S_W = Σ_c Σ_{i∈c} (x_i − μ_c)(x_i − μ_c)ᵀ``: the
    between-class spread relative to the within-class spread (scale-free; 0 = no class structure).
    """
    feats = features.double()
    mu = feats.mean(0)
    between = within = 0.0
    for c in labels.unique():
        part = feats[labels == c]
        between += len(part) * float(((part.mean(0) - mu) ** 2).sum())
        within += float(((part - part.mean(0)) ** 2).sum())
    return between / max(within, 1e-12)


@single_threaded
def probe_accuracy(f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of a logistic-regression probe on standardised features ``[N, D]``."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(f_train.numpy(), y_train.numpy())
    return float(probe.score(f_test.numpy(), y_test.numpy()))


def feature_label_correlation(model: nn.Module, split: Split, *, device, max_samples: int, seed: int) -> dict:
    """How much label information the penultimate features still carry.

    probe_accuracy: a logistic-regression probe (standardised features) fitted on retain
    features and scored on test features; separation_test / separation_retain: Fisher ratios.
    Error-maximising unlearning that weakens the feature–label correlation ("correlation
    collapse") lowers both.
    """
    gen = generator(seed)

    def cap(data: TensorSet) -> TensorSet:
        return data if len(data) <= max_samples else data.subset(torch.randperm(len(data), generator=gen)[:max_samples])

    retain, test = cap(split.retain), cap(split.test)
    f_retain, f_test = features_of(model, retain, device=device), features_of(model, test, device=device)
    return {"probe_accuracy": probe_accuracy(f_retain, retain.y, f_test, test.y),
            "separation_test": class_separation(f_test, test.y),
            "separation_retain": class_separation(f_retain, retain.y)}


def _measure(model: nn.Module, problem: Problem, method: str, seconds: float, cfg: Ch2Config, device) -> dict:
    metrics = evaluate_split(model, problem.split, device=device, seed=problem.seed, retain_sample=cfg.retain_eval)
    row = {"dataset": problem.name, "seed": problem.seed, "method": method, "label": LABELS[method],
           "TA": metrics["TA"], "FA": metrics["FA"], "RA": metrics["RA"], "MIA": metrics["mia_loss_logreg"],
           "FS": metrics["forgetting_score"], "NoMUS": metrics["nomus"], "seconds": seconds}
    if method in COLLAPSE_METHODS:
        row.update(feature_label_correlation(model, problem.split, device=device, max_samples=cfg.probe_samples,
                                             seed=problem.seed))
    return row


def run_methods(problem: Problem, cfg: Ch2Config, *, device, progress: bool = False) -> pd.DataFrame:
    """One row per model: Original, Retrain, every method of ``cfg.methods`` and, on faces, the
    :data:`ABLATIONS` on ``problem``."""
    dataset = "faces" if problem.name == "faces" else "cifar"
    rows = [_measure(problem.original, problem, "original", 0.0, cfg, device),
            _measure(problem.retrained, problem, "retrain", problem.retrain_seconds, cfg, device)]
    runs = [(method, method, {}) for method in cfg.methods]
    if dataset == "faces":
        runs += [(name, method, changes) for name, (method, changes) in ABLATIONS.items()]
    for name, method, changes in runs:
        result = unlearn(method, problem.original, problem.split, profile=cfg.profile, device=str(device),
                         seed=problem.seed, progress=progress, **{**cfg.overrides(method, dataset), **changes})
        rows.append(_measure(result.model, problem, name, result.seconds, cfg, device))
    return pd.DataFrame(rows)


def dlfd_traces(problem: Problem, cfg: Ch2Config, *, device) -> pd.DataFrame:
    """Per-batch trace of both DLFD variants: λ, gate, OT before/after the perturbation, FS, val accuracy."""
    frames = []
    for method in DLFD_VARIANTS:
        dlfd_cfg = DLFDConfig.for_profile(cfg.profile, cfg.overrides(method, "faces"))
        ctx = RunContext(torch.device(device), problem.seed)
        with torch.random.fork_rng():
            torch.manual_seed(problem.seed)
            _, trace = dlfd_train(copy.deepcopy(problem.original).to(device), problem.split, dlfd_cfg, ctx,
                                  released=method == "dlfd_released", trace_ot=True)
        frame = pd.DataFrame({"batch": range(len(trace.lam)), "lambda": trace.lam, "perturbed": trace.perturbed,
                              "val_accuracy": trace.val_accuracy, "FS": trace.forgetting_score})
        perturbed = frame.index[frame["perturbed"]]
        frame.loc[perturbed, "OT before"] = trace.ot_before
        frame.loc[perturbed, "OT after"] = trace.ot_after
        frame["variant"], frame["selected"] = LABELS[method], frame["batch"] == trace.selected_batch
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _timed_step(model: nn.Module, x_r, y_r, x_f, cfg: DLFDConfig, repeats: int) -> float:
    """Median seconds of one DLFD batch (perturbation in eval mode + one SGD step) on a copy."""
    times = []
    for _ in range(repeats):
        work = copy.deepcopy(model)
        optimizer = torch.optim.SGD(work.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        start = time.perf_counter()
        x_tilde = perturb_batch(work.eval(), x_r, y_r, x_f, cfg, lam=0.5)
        work.train()
        optimizer.zero_grad()
        F.cross_entropy(work(x_tilde), y_r).backward()
        optimizer.step()
        if x_r.device.type == "cuda":
            torch.cuda.synchronize(x_r.device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def ot_step_share(problem: Problem, cfg: Ch2Config, *, device) -> dict:
    """Seconds of one DLFD batch with and without the OT term (same batch, same steps) and the
    OT share ``1 − t_without / t_with`` (forward, Sinkhorn iterations and their backward)."""
    dlfd_cfg = DLFDConfig.for_profile(cfg.profile, cfg.overrides("dlfd", "faces"))
    gen = generator(problem.seed)
    index = torch.randperm(len(problem.split.retain), generator=gen)[:dlfd_cfg.batch_size]
    forget_index = torch.randperm(len(problem.split.forget), generator=gen)[:dlfd_cfg.batch_size]
    x_r = as_input(problem.split.retain.x[index], device)
    y_r = problem.split.retain.y[index].to(device)
    x_f = as_input(problem.split.forget.x[forget_index], device)
    model = problem.original.to(device)
    with_ot = _timed_step(model, x_r, y_r, x_f, dlfd_cfg, cfg.ot_timing_repeats)
    without = _timed_step(model, x_r, y_r, x_f, replace(dlfd_cfg, forget_weight=0.0), cfg.ot_timing_repeats)
    return {"step_seconds_with_ot": with_ot, "step_seconds_without_ot": without,
            "ot_share": max(0.0, 1.0 - without / with_ot)}


# ---------------------------------------------------------------------------- summaries

def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per dataset × method (method order kept), as ``col`` / ``col_std``,
    with the number of seeds in ``n``."""
    columns = [c for c in ("TA", "MIA", "FS", "NoMUS", "seconds", "probe_accuracy", "separation_test")
               if c in frame]
    order = list(dict.fromkeys(frame["method"]))
    grouped = frame.groupby(["dataset", "method"], sort=False)[columns]
    out = grouped.mean().join(grouped.std(ddof=1).fillna(0.0).add_suffix("_std"))
    out = out.join(grouped.size().rename("n")).reset_index()
    out["label"] = out["method"].map(LABELS)
    out["method"] = pd.Categorical(out["method"], order, ordered=True)
    return out.sort_values(["dataset", "method"]).reset_index(drop=True)


def display_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """``mean ± std`` strings per method for one dataset (the mean alone from a single seed)."""
    part = summary[summary["dataset"] == dataset]
    table = pd.DataFrame({"method": part["label"]})
    for col, digits in (("TA", 3), ("MIA", 3), ("FS", 3), ("NoMUS", 3), ("seconds", 1)):
        table[col] = [f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if n > 1 else "")
                      for m, s, n in zip(part[col], part[f"{col}_std"], part["n"])]
    return table.set_index("method")


def scorecard_inputs(summary: pd.DataFrame, dataset: str = "faces") -> dict:
    """NoMUS of Original, Retrain, both DLFD variants and the best baseline (means over seeds),
    whether DLFD beats every baseline, the OT-term effect and DLFD's time relative to Retrain."""
    part = summary[summary["dataset"] == dataset].set_index("method", drop=False)
    nomus = part["NoMUS"].astype(float)
    baselines = [m for m in BASELINES if m in nomus.index]
    best = max(baselines, key=lambda m: nomus[m])
    return {"nomus_original": nomus["original"], "nomus_retrain": nomus["retrain"],
            "nomus_dlfd": nomus["dlfd"], "nomus_dlfd_released": nomus["dlfd_released"],
            "nomus_best_baseline": nomus[best], "best_baseline": LABELS[best],
            "dlfd_beats_baselines": bool(nomus["dlfd"] > nomus[best]),
            "ot_term_effect": nomus["dlfd"] - nomus["dlfd_released"],
            "ot_term_effect_clean": nomus["dlfd"] - nomus["dlfd_no_ot"] if "dlfd_no_ot" in nomus else float("nan"),
            "dlfd_time_ratio": float(part.loc["dlfd", "seconds"] / part.loc["retrain", "seconds"]),
            "dlfd_minus_retrain_nomus": nomus["dlfd"] - nomus["retrain"]}


# ---------------------------------------------------------------------------- theory check

def sinkhorn_vs_emd(*, n: int = 32, m: int = 32, dim: int = 16, regs=(1.0, 0.3, 0.1, 0.03, 0.01),
                    iterations=(50, 5000), seed: int = 0) -> pd.DataFrame:
    """Entropic vs exact transport cost between two random batches under the cosine cost.

    One row per (ε, iteration cap): the transport cost ``<π_ε, C>``, the exact ``<π*, C>``,
    their gap, the marginal violation ``‖π_ε 1 − a‖₁ + ‖π_εᵀ 1 − b‖₁`` and the relative
    difference between the gradients of the two costs with respect to the first batch.
    """
    from ..transport import cosine_cost, ot_distance, sinkhorn_plan

    gen = generator(seed)
    r0 = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    f = torch.randn(m, dim, generator=gen, dtype=torch.float64) + 0.5
    r = r0.clone().requires_grad_(True)
    exact = ot_distance(r, f, method="emd")
    (grad_exact,) = torch.autograd.grad(exact, r)
    rows = []
    for reg in regs:
        for cap in iterations:
            r = r0.clone().requires_grad_(True)
            cost = cosine_cost(r, f)
            plan = sinkhorn_plan(cost, reg, cap)
            value = (plan * cost).sum()
            (grad,) = torch.autograd.grad(value, r)
            marginal = float((plan.detach().sum(1) - 1 / n).abs().sum() + (plan.detach().sum(0) - 1 / m).abs().sum())
            rows.append({"reg": reg, "iterations": cap, "sinkhorn_cost": float(value.detach()),
                         "emd_cost": float(exact.detach()), "gap": float((value - exact).detach()), "marginal_error": marginal,
                         "grad_rel_error": float((grad - grad_exact).norm() / grad_exact.norm())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- figures

def plot_sinkhorn(table: pd.DataFrame):
    """Gap to the exact cost and marginal error against ε, one line per iteration cap."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    data = table.assign(cap=table["iterations"].map(lambda k: f"{k} iterations"))
    sns.lineplot(data=data, x="reg", y="gap", hue="cap", marker="o", ax=axes[0])
    sns.lineplot(data=data, x="reg", y="marginal_error", hue="cap", marker="o", ax=axes[1], legend=False)
    for ax, label in zip(axes, ("⟨π_ε, C⟩ − ⟨π*, C⟩", "marginal violation (L1)")):
        ax.set(xscale="log", xlabel="entropic regularisation ε", ylabel=label)
    axes[1].set_yscale("symlog", linthresh=1e-6)
    axes[0].legend(title=None)
    fig.tight_layout()
    return fig


def plot_tradeoff(frame: pd.DataFrame, dataset: str):
    """Test accuracy against forgetting score, one point per method (mean over seeds, std bars)."""
    import matplotlib.pyplot as plt

    part = summarise(frame[frame["dataset"] == dataset])
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    for _, row in part.iterrows():
        highlight = row["method"] in DLFD_VARIANTS or row["method"] in ("original", "retrain")
        ax.errorbar(row["FS"], row["TA"], xerr=row["FS_std"], yerr=row["TA_std"], fmt="o" if highlight else "s",
                    ms=7 if highlight else 5, capsize=2, alpha=0.9)
        ax.annotate(row["label"], (row["FS"], row["TA"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set(xlabel="forgetting score FS = 2·|MIA − 0.5| (lower is better)", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_collapse(frame: pd.DataFrame):
    """Linear-probe accuracy and test-feature class separation per method and dataset."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    part = frame[frame["method"].isin(COLLAPSE_METHODS)].copy()
    datasets = list(dict.fromkeys(part["dataset"]))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.3 * len(datasets)), squeeze=False)
    order = [LABELS[m] for m in COLLAPSE_METHODS]
    for row, dataset in zip(axes, datasets):
        data = part[part["dataset"] == dataset]
        for ax, col, label in zip(row, ("probe_accuracy", "separation_test"),
                                  ("linear-probe test accuracy", "class separation tr(S_B)/tr(S_W)")):
            sns.barplot(data=data, x="label", y=col, order=order, errorbar="sd", ax=ax, color="#7a9cc6")
            original = data.loc[data["method"] == "original", col].mean()
            ax.axhline(original, color="k", ls="--", lw=1, label="original")
            ax.set(xlabel="", ylabel=label, title=dataset)
            ax.tick_params(axis="x", rotation=35)
    fig.tight_layout()
    return fig


def plot_traces(traces: pd.DataFrame):
    """Per batch: OT distance of the retain batch to the forget batch before and after the
    perturbation, and the monitored forgetting score, for both DLFD variants."""
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(traces["variant"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for variant, color in zip(variants, ("C0", "C1")):
        part = traces[traces["variant"] == variant]
        shown = part.dropna(subset=["OT after"])
        axes[0].plot(shown["batch"], shown["OT after"] - shown["OT before"], "o-", color=color, label=variant)
        scored = part.dropna(subset=["FS"])
        axes[1].plot(scored["batch"], scored["FS"], "o-", color=color, label=variant)
        chosen = part[part["selected"]]
        axes[1].plot(chosen["batch"], chosen["FS"], "*", ms=14, color=color)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set(xlabel="retain batch", ylabel="OT(f(x̃), f(x_f)) − OT(f(x), f(x_f))")
    axes[1].set(xlabel="retain batch", ylabel="monitored forgetting score")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
