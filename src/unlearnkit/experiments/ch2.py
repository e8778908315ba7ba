"""Chapter 2 experiments: DLFD, distribution-level feature distancing (Choi & Na, AAAI 2025).

* :func:`face_spec`: identity forgetting on faces, the book's problem (CK+48 at ``cpu``), or
  DLFD's released MUFAC / RAF-DB split at ``paper`` when present; CIFAR-10 random 10 % is the
  book's problem too (:func:`.tasks.spec`).
* The comparison is the book's (:func:`.harness.compare`); :func:`ablation_rows` adds DLFD
  without its OT term, :func:`collapse_rows` the feature–label correlation of
  :func:`feature_label_correlation` (correlation collapse) of the tuned models.
* :func:`dlfd_traces`: per-batch OT distance, gate and forgetting score of both DLFD variants.
* :func:`ot_step_share`: the share of a DLFD step spent on the OT term, measured.
* :func:`chapter_frame` and :func:`scorecard_inputs`: the chapter's table and the verdict inputs.

Profile settings live in :func:`profile_config` (frozen :class:`Ch2Config`).
"""

from __future__ import annotations

from typing import Mapping

import copy
import dataclasses
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from .. import dryrun, facts
from ..config import (SMOKE_WHY, Change, build_config, change_rows, changes_for, check_choice,
                      check_profile, check_range, with_changes)
from ..data.core import Split, TensorSet
from ..data.faces import MUFAC_FOLDER, RAF_FOLDER
from ..methods import get_method
from ..methods.base import RunContext, as_input
from ..methods.dlfd import DLFDConfig, PAPER_SETTINGS, dlfd_train, perturb_batch
from ..runtime import data_root, generator, single_threaded
from ..train import penultimate_features
from .harness import Problem, budget_settings, diverged, load_unlearned, main_rows, means, run_method
from .options import chapter_methods, merged_base
from .tasks import TABLE_BASELINES, ProblemSpec
from .work import Work, comparison

FACE_SOURCES = ("synthetic-faces", "ckplus", "mufac", "rafdb", "auto")
BASELINES = TABLE_BASELINES["choi2025dlfd"]
DLFD_VARIANTS = ("dlfd", "dlfd_released")
METHODS = BASELINES + DLFD_VARIANTS
COLLAPSE_METHODS = ("original", "retrain", "finetune", "neggrad", "random_labels", "dlfd", "dlfd_released")
ABLATIONS = {"dlfd_no_ot": ("dlfd", {"forget_weight": 0.0}, "DLFD, w_f = 0")}
"""Extra runs: the intended DLFD (its tuned pick) without its OT term isolates what that term contributes."""

OFFICIAL_METHODS = ("original", "retrain", "finetune", "neggrad", "unsir", "bad_teacher", "scrub", "dlfd_released")
"""The rows of the official notebooks' printed tables (:mod:`unlearnkit.facts`, ``dlfd.notebook.*``)."""


OFFICIAL_METRICS = {"test_accuracy": "TA", "mia": "MIA", "nomus": "NoMUS"}


def official_nomus(dataset: str) -> dict[str, float]:
    """NoMUS per method printed by the official ``emotion`` (RAF-DB) or ``age`` (MUFAC) notebook."""
    check_choice("dataset", dataset, ("emotion", "age"))
    return {m: facts.value(f"dlfd.notebook.{dataset}.{m}.nomus") for m in OFFICIAL_METHODS}


def official_table() -> pd.DataFrame:
    """Both official notebooks' printed tables: one row per method, columns ``emotion TA`` …
    ``age NoMUS`` (fractions), from :mod:`unlearnkit.facts`."""
    return pd.DataFrame({f"{dataset} {short}": {m: facts.value(f"dlfd.notebook.{dataset}.{m}.{metric}")
                                                for m in OFFICIAL_METHODS}
                         for dataset in ("emotion", "age") for metric, short in OFFICIAL_METRICS.items()})


OFFICIAL_VARIANTS = {
    "scrub": "DLFD's SCRUB: min/max of CE + KL + KL without temperature",
    "bad_teacher": "DLFD's Bad Teacher: the retain set only, CE + KL(good) − KL(bad)",
    "unsir": "DLFD's UNSIR: impairs on one noise batch with mismatched labels, repairs on all of D_r",
    "dlfd_released": "the released DLFD (see the DLFD-released method)",
}
"""How the official notebooks' baselines differ from the algorithms of their papers (which the
package implements): their table rows are DLFD's variants, labelled so in the book."""


def official_label(method: str) -> str:
    """The row name of an official notebook's method: ``"SCRUB (DLFD's variant)"`` for the
    baselines DLFD's code implements differently from their papers (:data:`OFFICIAL_VARIANTS`)."""
    return f"{label(method)} (DLFD's variant)" if method in OFFICIAL_VARIANTS and method != "dlfd_released" \
        else label(method)


def label(method: str) -> str:
    """Display name of a registry name, ``Original``, or an ablation of :data:`ABLATIONS`."""
    if method == "original":
        return "Original"
    return ABLATIONS[method][2] if method in ABLATIONS else get_method(method).label


# ---------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Ch2Config:
    """What chapter 2 runs at one profile, beyond the book's protocol (:func:`.tasks.protocol`).

    face_source: ``synthetic-faces`` | ``ckplus`` | ``mufac`` | ``rafdb`` | ``auto`` (MUFAC, else
    RAF-DB, else CK+48, by what is under the data root). face_image_size: side of MUFAC / RAF-DB
    images. cifar: also run the CIFAR-10 random 10 % problem. methods: registry names (Retrain
    is every problem's reference row). probe_samples: cap per set for the linear probe.
    ot_timing_repeats: repetitions of the timed DLFD step.
    """

    profile: str
    face_source: str
    face_image_size: int
    cifar: bool
    methods: tuple[str, ...]
    probe_samples: int = 1000
    ot_timing_repeats: int = 3

    def __post_init__(self):
        check_profile(self.profile)
        check_choice("face_source", self.face_source, FACE_SOURCES)
        for name in ("probe_samples", "ot_timing_repeats", "face_image_size"):
            check_range(name, getattr(self, name), 1)
        for method in self.methods:
            get_method(method)
        for name in DLFD_VARIANTS:
            if name not in self.methods:
                raise ValueError(f"methods must include {name!r} (the chapter compares both DLFD variants)")


PAPER = dict(face_source="auto", face_image_size=128, cifar=True, probe_samples=2000, ot_timing_repeats=5)
"""The chapter at ``paper``: DLFD's released face splits where present (``auto``), 128×128 faces."""

CHANGES: dict[str, dict[str, Change]] = {
    "paper": {},
    "cpu": {
        "face_source": Change("ckplus", "MUFAC and RAF-DB are not among the offline data; CK+ is"),
        "face_image_size": Change(48, "CK+48's images are 48×48; the cpu face model is a small CNN"),
        **changes_for("fewer samples and repeats for a CPU chapter of about 18 minutes (1,107 s cold)",
                      probe_samples=1000, ot_timing_repeats=3),
    },
    "smoke": {
        "face_source": Change("synthetic-faces", SMOKE_WHY),
        **changes_for(SMOKE_WHY, face_image_size=24, probe_samples=200, ot_timing_repeats=1),
    },
}
"""Each profile as its differences from :data:`PAPER`, with a reason per line."""


DRY_RUN = changes_for("dry run: a few samples and repeats, 64×64 faces (the same ResNet-18)", probe_samples=16,
                      ot_timing_repeats=1, face_image_size=64)
"""The chapter's lines in a dry run (:mod:`unlearnkit.dryrun`), on top of the profile's."""


def profile_changes(profile: str) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}`` of the chapter's profile block."""
    return change_rows(PAPER, CHANGES[check_profile(profile)], "chapter 2")


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

    At ``paper`` the face source is resolved against ``root``; on MUFAC / RAF-DB, DLFD takes the
    official notebook's settings of that dataset (:func:`dlfd_settings`).
    """
    check_profile(profile)
    values = with_changes(PAPER, CHANGES[profile])
    values = {"profile": profile, "methods": METHODS, **dryrun.apply(DRY_RUN, values)}
    values.update(overrides)
    values["face_source"] = resolve_face_source(values["face_source"], root)
    return build_config(Ch2Config, values)


def dlfd_settings(cfg: Ch2Config) -> dict:
    """DLFD's settings beyond the registry's on the face problem: the released notebook's on
    MUFAC / RAF-DB at ``paper`` (:data:`PAPER_SETTINGS`), else none."""
    return dict(PAPER_SETTINGS[cfg.face_source]) if cfg.face_source in PAPER_SETTINGS else {}


RELEASED_FACE_BATCH = {"mufac": 32, "rafdb": 64}
"""The batch of every method in DLFD's released MUFAC / RAF-DB notebooks."""


def face_settings(cfg: Ch2Config) -> dict[str, dict]:
    """Settings beyond the registry's defaults on the face problem, per method.

    On DLFD's released splits at ``paper``: DLFD's notebook settings (:func:`dlfd_settings`),
    and for every baseline the notebooks' batch (32 on MUFAC, 64 on RAF-DB; the registry's 256
    would give MUFAC's NegGrad 6 steps instead of 47) and CF-k with k = 1 (the notebooks
    retrain only the head). Elsewhere DLFD's settings only (none off the released splits).
    """
    settings = {m: dlfd_settings(cfg) for m in DLFD_VARIANTS if dlfd_settings(cfg)}
    if cfg.face_source in RELEASED_FACE_BATCH:
        batch = RELEASED_FACE_BATCH[cfg.face_source]
        for name in BASELINES:
            fields = {f.name for f in dataclasses.fields(get_method(name).config)}
            settings[name] = {"batch_size": batch} if "batch_size" in fields else {}
        settings["cf_k"] = {**settings["cf_k"], "k": 1}
    return {m: s for m, s in settings.items() if s}


# ---------------------------------------------------------------------------- problems

def face_spec(settings, seed: int) -> ProblemSpec:
    """Identity forgetting on faces at ``seed``: the book's problem (forget every image of 15 %
    of the subjects; the run's knobs apply), or DLFD's released split of MUFAC / RAF-DB when the
    chapter's ``face_source`` is one (:func:`.tasks.released_face_problem`, no knobs)."""
    cfg = settings.config
    if cfg.face_source in ("mufac", "rafdb"):
        return settings.spec(cfg.face_source, seed, image_size=cfg.face_image_size)
    return settings.spec("identity", seed)


def chapter_config(values: Mapping, root=None) -> Ch2Config:
    """The chapter's config from its parameter values (:func:`unlearnkit.chapter.settings`):
    both DLFD variants and the methods asked for (none: DLFD's baselines)."""
    return profile_config(values["profile"], root=root, methods=chapter_methods(DLFD_VARIANTS, METHODS, values["methods"]))


def work(settings) -> Work:
    """The chapter's trainings and comparison runs (:mod:`.work`; ``python -m unlearnkit plan``
    lists them): Retrain and the config's ``methods`` on identity forgetting (faces, with the
    dataset's settings of :func:`face_settings` under the method overrides) and on CIFAR-10's
    random subset, at every seed of ``settings`` (:class:`unlearnkit.chapter.Settings`)."""
    cfg = settings.config
    compared = ("retrain", *cfg.methods)
    faces = [face_spec(settings, s) for s in settings.seeds]
    cifar = [settings.spec("random_subset", s) for s in settings.seeds]
    return Work("02_dlfd", (
        comparison("faces", faces, compared, settings, base=merged_base(face_settings(cfg), settings.method_overrides)),
        comparison("cifar", cifar, compared, settings)))


# ---------------------------------------------------------------------------- measurements

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
    f_retain, f_test = (penultimate_features(model, part, device=device, batch_size=256, dtype=torch.float32)
                        for part in (retain, test))
    return {"probe_accuracy": probe_accuracy(f_retain, retain.y, f_test, test.y),
            "separation_test": class_separation(f_test, test.y),
            "separation_retain": class_separation(f_retain, retain.y)}


def ablation_rows(problem: Problem, picks: dict[str, dict], *, profile: str, device,
                  retain_eval: int | None) -> list[dict]:
    """The :data:`ABLATIONS` on ``problem``: each base method's tuned pick with the changes."""
    rows = []
    for name, (method, changes, _) in ABLATIONS.items():
        row = run_method(problem, method, {**picks[method], **changes}, profile=profile, device=device,
                         retain_eval=retain_eval)
        rows.append({**row, "method": name, "label": label(name), "pick": "ablation"})
    return rows


def collapse_rows(problem: Problem, rows: pd.DataFrame, cfg: Ch2Config, *, device) -> pd.DataFrame:
    """:func:`feature_label_correlation` of every :data:`COLLAPSE_METHODS` model of ``problem``
    (Original, Retrain and the rule picks, read back from the run cache)."""
    out = []
    for _, row in rows[(rows["problem"] == problem.name) & (rows["seed"] == problem.seed)
                       & rows["method"].isin(COLLAPSE_METHODS)].iterrows():
        if diverged(row):  # no model: the row's collapse measures are missing (NaN)
            out.append({"problem": problem.name, "seed": problem.seed, "method": row["method"]})
            continue
        model = {"original": problem.original, "retrain": problem.retrained}.get(row["method"])
        model = load_unlearned(problem, row) if model is None else model
        out.append({"problem": problem.name, "seed": problem.seed, "method": row["method"],
                    **feature_label_correlation(model.to(device), problem.split, device=device,
                                                max_samples=cfg.probe_samples, seed=problem.seed)})
    return pd.DataFrame(out)


def chapter_frame(runs: pd.DataFrame, extra: list[dict], collapse: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model and seed in the chapter's columns: dataset, seed, method, label, TA,
    MIA (``mia_loss_logreg``), FS, NoMUS, seconds, time_fraction (and the collapse measures)."""
    frame = pd.concat([main_rows(runs), pd.DataFrame(extra)], ignore_index=True)
    frame = frame.assign(dataset=frame["task"], MIA=frame["mia_loss_logreg"], FS=frame["forgetting_score"],
                         NoMUS=frame["nomus"])
    columns = ["dataset", "problem", "seed", "method", "label", "TA", "FA", "MIA", "FS", "NoMUS", "seconds",
               "time_fraction"]
    frame = frame[columns]
    if collapse is not None and len(collapse):
        frame = frame.merge(collapse, on=["problem", "seed", "method"], how="left")
    return frame


def dlfd_config(cfg: Ch2Config, problem: Problem, pick: dict) -> DLFDConfig:
    """DLFD's config on ``problem``: its budget, the tuned ``pick`` (which includes
    :func:`dlfd_settings`, the grid's base)."""
    return DLFDConfig.for_profile(cfg.profile, {**budget_settings("dlfd", problem.retrain_epochs), **pick})


def dlfd_traces(problem: Problem, cfg: Ch2Config, picks: dict[str, dict], *, device) -> pd.DataFrame:
    """Per-batch trace of both DLFD variants (each at its tuned pick): λ, gate, OT before/after
    the perturbation, FS, val accuracy."""
    frames = []
    for method in DLFD_VARIANTS:
        dlfd_cfg = dlfd_config(cfg, problem, picks[method])
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
        frame["variant"], frame["selected"] = label(method), frame["batch"] == trace.selected_batch
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


def ot_step_share(problem: Problem, cfg: Ch2Config, pick: dict, *, device) -> dict:
    """Seconds of one DLFD batch (its tuned ``pick``) with and without the OT term (same batch,
    same steps) and the OT share ``1 − t_without / t_with`` (forward, Sinkhorn iterations and
    their backward)."""
    dlfd_cfg = dlfd_config(cfg, problem, pick)
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
    """Mean and std over seeds per dataset × method (:func:`.harness.means`) of the chapter's columns."""
    return means(frame, ("TA", "MIA", "FS", "NoMUS", "seconds", "time_fraction", "probe_accuracy",
                         "separation_test"), by=("dataset", "method"))


def scorecard_inputs(summary: pd.DataFrame, dataset: str = "faces") -> dict:
    """NoMUS of Original, Retrain, both DLFD variants and the best baseline (means over seeds),
    whether DLFD beats every baseline, the OT-term effect and DLFD's time relative to Retrain."""
    part = summary[summary["dataset"] == dataset].set_index("method", drop=False)
    nomus = part["NoMUS"].astype(float)
    baselines = [m for m in BASELINES if m in nomus.index]
    best = max(baselines, key=lambda m: nomus[m])
    return {"nomus_original": nomus["original"], "nomus_retrain": nomus["retrain"],
            "nomus_dlfd": nomus["dlfd"], "nomus_dlfd_released": nomus["dlfd_released"],
            "nomus_best_baseline": nomus[best], "best_baseline": label(best),
            "dlfd_beats_baselines": bool(nomus["dlfd"] > nomus[best]),
            "ot_term_effect": nomus["dlfd"] - nomus["dlfd_released"],
            "ot_term_effect_clean": nomus["dlfd"] - nomus["dlfd_no_ot"] if "dlfd_no_ot" in nomus else float("nan"),
            "dlfd_time_ratio": float(part.loc["dlfd", "time_fraction"]),
            "dlfd_minus_retrain_nomus": nomus["dlfd"] - nomus["retrain"]}


def problem_findings(problems: list[Problem]) -> dict:
    """The numbers the chapter's prose quotes about its face ``problems`` (one per seed): the
    first seed's part sizes, its forget share and forgotten subjects, and how many of the
    original and retrained models came from the model cache."""
    first = problems[0].split
    counts = first.counts()
    return {"ch2-n-retain": counts["retain"], "ch2-n-forget": counts["forget"], "ch2-n-test": counts["test"],
            "ch2-n-unseen": counts.get("unseen", counts["test"]),
            "ch2-forget-share": counts["forget"] / sum(counts.values()),
            "ch2-forget-subjects": len(first.info.get("forget_subjects", [])),
            "ch2-face-hits": sum(m["cache_hit"] for p in problems for m in p.models),
            "ch2-face-models": sum(len(p.models) for p in problems)}


SPEED_GOAL = (1 / 20, -0.02)
"""DLFD's goal as the chapter reads it: at most 1/20 of Retrain's time, NoMUS at most 0.02 below Retrain's."""


def verdict_findings(inputs: Mapping) -> dict:
    """The numbers the chapter's prose quotes from :func:`scorecard_inputs` (``inputs``), keyed
    ``ch2-<name>``, with the words they read as: beats / does not beat, meets / misses."""
    shown = ("nomus_original", "nomus_retrain", "nomus_dlfd", "nomus_dlfd_released", "nomus_best_baseline",
             "ot_term_effect", "ot_term_effect_clean", "dlfd_time_ratio", "dlfd_minus_retrain_nomus")
    meets = inputs["dlfd_time_ratio"] <= SPEED_GOAL[0] and inputs["dlfd_minus_retrain_nomus"] >= SPEED_GOAL[1]
    return {**{f"ch2-{key}": inputs[key] for key in shown},
            "ch2-ot_term_effect_clean_neg": -inputs["ot_term_effect_clean"],
            "ch2-best-baseline": inputs["best_baseline"],
            "ch2-beats": "beats" if inputs["dlfd_beats_baselines"] else "does not beat",
            "ch2-speed-goal": "meets" if meets else "misses"}


def cifar_findings(problems: list[Problem], summary: pd.DataFrame) -> dict:
    """The numbers the prose quotes about the CIFAR-10 comparison: seeds, pool size, NoMUS of
    both DLFD variants, Retrain and the best baseline (:func:`scorecard_inputs` of ``summary``,
    :func:`summarise`'s) and the original's forgetting score."""
    inputs = scorecard_inputs(summary, problems[0].task)
    return {"ch2-cifar-seeds": len(problems), "ch2-cifar-pool": len(problems[0].split.train),
            "ch2-cifar-dlfd": inputs["nomus_dlfd"], "ch2-cifar-released": inputs["nomus_dlfd_released"],
            "ch2-cifar-retrain": inputs["nomus_retrain"], "ch2-cifar-best": inputs["nomus_best_baseline"],
            "ch2-cifar-best-name": inputs["best_baseline"],
            "ch2-cifar-beats": "beats" if inputs["dlfd_beats_baselines"] else "does not beat",
            "ch2-cifar-fs-original": summary.set_index("method").loc["original", "FS"]}


def ot_findings(traces: pd.DataFrame, timing: Mapping) -> dict:
    """The numbers the prose quotes about the OT term: the mean rise of the batch OT distance
    per step and the share of batches the gate perturbed, per variant (:func:`dlfd_traces`),
    and the OT term's share of a step's time (:func:`ot_step_share`)."""
    rise = traces.dropna(subset=["OT after"]).assign(rise=lambda t: t["OT after"] - t["OT before"])
    per_variant = {"dlfd": "DLFD", "released": "DLFD-released"}
    return {**{f"ch2-ot-rise-{k}": rise.loc[rise["variant"] == v, "rise"].mean() for k, v in per_variant.items()},
            "ch2-ot-time-share": timing["ot_share"], "ch2-step-seconds-with": timing["step_seconds_with_ot"],
            "ch2-step-seconds-without": timing["step_seconds_without_ot"],
            **{f"ch2-gate-{k}": traces.loc[traces["variant"] == v, "perturbed"].mean() for k, v in per_variant.items()}}


COLLAPSE_DROP = 0.02
"""A probe accuracy this far below the original's counts as correlation collapse."""


def collapse_findings(faces: pd.DataFrame) -> dict:
    """The numbers the prose quotes about correlation collapse: the linear probe's accuracy and
    the test features' class separation per method (means over seeds of ``faces``, the rows
    :func:`collapse_rows` measured), and which error-maximising methods collapsed (probe
    accuracy more than :data:`COLLAPSE_DROP` below the original's)."""
    probe = faces.groupby("method")["probe_accuracy"].mean()
    separation = faces.groupby("method")["separation_test"].mean()
    shown = ("original", "neggrad", "random_labels", "finetune", "dlfd")
    collapsed = [label(m) for m in ("neggrad", "random_labels") if probe[m] < probe["original"] - COLLAPSE_DROP]
    return {**{f"ch2-probe-{m}": probe[m] for m in shown}, **{f"ch2-sep-{m}": separation[m] for m in shown},
            "ch2-collapse-text": ", ".join(collapsed) if collapsed else "neither NegGrad nor RL"}


# ---------------------------------------------------------------------------- theory check

def sinkhorn_findings(sink: pd.DataFrame, *, reg: float = 0.01, iterations: tuple[int, int] = (50, 5000)) -> dict:
    """The numbers the prose quotes from :func:`sinkhorn_vs_emd`'s rows: at DLFD's ε and
    iteration cap (``reg``, ``iterations[0]``) the cost gap, the marginal violation and the exact
    cost; converged (``iterations[1]``) the marginal violation and the gradient's relative error."""
    at_dlfd = sink[(sink["reg"] == reg) & (sink["iterations"] == iterations[0])].iloc[0]
    converged = sink[(sink["reg"] == reg) & (sink["iterations"] == iterations[1])].iloc[0]
    return {"ch2-sink-gap": at_dlfd["gap"], "ch2-sink-marginal": at_dlfd["marginal_error"],
            "ch2-sink-marginal-conv": converged["marginal_error"], "ch2-sink-grad": converged["grad_rel_error"],
            "ch2-sink-emd": at_dlfd["emd_cost"]}


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
    import seaborn as sns

    from ..figures import panels

    fig, axes = panels(2, panel_height=3.0)
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
    """Test accuracy against forgetting score, one point per method (mean over seeds, std
    bars): dots for DLFD and the two reference models, squares for the baselines; the legend
    below names them (colours as in every figure of the book)."""
    from ..figures import legend_below, method_colors, panels

    part = summarise(frame[frame["dataset"] == dataset])
    colors = method_colors(part["method"])
    fig, (ax,) = panels(1, panel_height=3.8)
    for _, row in part.iterrows():
        highlight = row["method"] in DLFD_VARIANTS or row["method"] in ("original", "retrain")
        ax.errorbar(row["FS"], row["TA"], xerr=row["FS_std"], yerr=row["TA_std"], fmt="o" if highlight else "s",
                    ms=7 if highlight else 5, capsize=2, alpha=0.9, color=colors[row["method"]], label=row["label"])
    ax.set(xlabel="forgetting score FS = 2·|MIA − 0.5| (lower is better)", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    legend_below(fig, [ax])
    return fig


def plot_collapse(frame: pd.DataFrame):
    """Linear-probe accuracy and test-feature class separation per method and dataset."""
    import seaborn as sns

    from ..figures import panels

    part = frame[frame["method"].isin(COLLAPSE_METHODS)].copy()
    datasets = list(dict.fromkeys(part["dataset"]))
    fig, axes = panels(2 * len(datasets), panel_height=3.2)
    order = [label(m) for m in COLLAPSE_METHODS]
    for i, dataset in enumerate(datasets):
        data = part[part["dataset"] == dataset]
        for ax, col, ylabel in zip(axes[2 * i:2 * i + 2], ("probe_accuracy", "separation_test"),
                                   ("linear-probe test accuracy", "class separation tr(S_B)/tr(S_W)")):
            sns.barplot(data=data, x="label", y=col, order=order, errorbar="sd", ax=ax, color="#7a9cc6")
            original = data.loc[data["method"] == "original", col].mean()
            ax.axhline(original, color="k", ls="--", lw=1, label="original")
            ax.set(xlabel="", ylabel=ylabel, title=dataset)
            ax.tick_params(axis="x", rotation=35)
    fig.tight_layout()
    return fig


def plot_traces(traces: pd.DataFrame):
    """Per batch: OT distance of the retain batch to the forget batch before and after the
    perturbation, and the monitored forgetting score, for both DLFD variants."""
    from ..figures import panels

    variants = list(dict.fromkeys(traces["variant"]))
    fig, axes = panels(2, panel_height=3.2)
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
