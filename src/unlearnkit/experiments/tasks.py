"""The image tasks every chapter shares, and the forgetting problems cut from them.

One CIFAR-10 task and one faces task per profile (:data:`CIFAR10`, :data:`FACES`): the same
training pool and recipe in every chapter, so the original model of a seed is trained once per
book build and read from the model cache afterwards. Seeds are independent: seed *s* trains its
own original (weights and data order), draws its own forget set and trains its own retrained
model (:func:`make_problem`).

A problem is data: :func:`spec` makes a frozen :class:`ProblemSpec` (which problem, profile,
seed, knobs), :func:`build` builds it. Besides the book's three (:data:`SCENARIOS`) there are
CIFAR-20 sub-class forgetting (:func:`sub_class_problem`) and DLFD's released face splits
(:func:`released_face_problem`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .. import dryrun
from ..config import Change, as_dict, change_rows, check_choice, check_profile, check_range, with_changes
from ..data import Split, make_split
from ..data.core import TensorSet
from ..data.faces import MUFAC_FORGET_COUNT, load_mufac, load_rafdb, mufac_split, rafdb_split
from ..data.splits import training_pool
from ..metrics import Timer, accuracy, cached_accuracy
from ..models import build_model
from ..train import TrainConfig, cached_train, keys_only_active, train_model
from .harness import ORACLE_SEEDS, Grid, Problem, check_budget


@dataclass(frozen=True)
class ImageTask:
    """An image-classification task at one profile.

    dataset:   a name of :data:`unlearnkit.data.DATASETS`.
    model:     a name of :data:`unlearnkit.models.MODELS`.
    train:     the recipe of the original and the retrained model.
    max_train: cap on the training pool (stratified, seeded by ``pool_seed``); None = all.
    max_test:  cap on the test set.
    load_kw:   extra loader arguments (sizes of the synthetic sets).
    """

    dataset: str
    model: str
    train: TrainConfig
    max_train: int | None = None
    max_test: int | None = None
    val_fraction: float = 0.1
    pool_seed: int = 0
    load_kw: dict = field(default_factory=dict)

    def split(self, scenario: str, *, seed: int, root=None, **scenario_kw) -> Split:
        """The unlearning split ``scenario`` (e.g. ``forget_class="cat"``) cut from this task's pool."""
        return make_split(self.dataset, scenario, root=root, seed=seed, pool_seed=self.pool_seed,
                          val_fraction=self.val_fraction, max_train=self.max_train,
                          max_test=self.max_test, load_kw=self.load_kw, **scenario_kw)


_SMOKE_WHY = "smoke: synthetic data and a tiny model, so the test suite runs in seconds"

CIFAR10_PAPER = ImageTask("cifar10", "resnet18",
                          TrainConfig(model="resnet18", epochs=182, batch_size=128, lr=0.1,
                                      schedule="multistep", milestones=(91, 136)))
"""The papers' CIFAR-10 setting: ResNet-18, 182 epochs, SGD 0.1 with steps at 91 and 136 (MU-Mis)."""

_CPU_MODEL = ("a 3-block CNN (0.17 M parameters, 15 M multiply-adds an image; ResNet-18: 11 M, 0.56 G): "
              "on 2 CPU cores an original trains in about 2 minutes (120 s, 76.4 % test accuracy at seed 0); "
              "the papers' 182-epoch ResNet-18 is a GPU recipe")
_CPU_RECIPE = ("the cpu recipe (one-cycle, lr 0.2, label smoothing 0.1, 10 epochs) reaches the "
               "project's 75 % test-accuracy target on the capped pool")

CIFAR10_CHANGES = {
    "paper": {},
    "cpu": {
        "model": Change("small_cnn", _CPU_MODEL),
        "train.model": Change("small_cnn", _CPU_MODEL),
        "train.epochs": Change(10, _CPU_RECIPE),
        "train.batch_size": Change(256, _CPU_RECIPE),
        "train.lr": Change(0.2, _CPU_RECIPE),
        "train.schedule": Change("onecycle", _CPU_RECIPE),
        "train.milestones": Change((), "no step schedule under one-cycle"),
        "train.label_smoothing": Change(0.1, _CPU_RECIPE),
        "max_train": Change(20_000, "a stratified 20,000 of the 45,000-image pool: 120 s an original "
                                    "instead of 259-300 s (81.5-82.2 % test accuracy over 3 seeds); every "
                                    "unlearning budget, passes as a fraction of the retrain's, shrinks with it"),
        "max_test": Change(5_000, "predicting the test set was 60 % of a run's evaluation (6.3 s on one "
                                  "thread); 5,000 images halve it, standard error of TA about 0.6 points"),
    },
    "smoke": {
        "dataset": Change("synthetic-images", _SMOKE_WHY),
        "model": Change("small_cnn", _SMOKE_WHY),
        "train.model": Change("small_cnn", _SMOKE_WHY),
        "train.epochs": Change(4, _SMOKE_WHY),
        "train.batch_size": Change(64, _SMOKE_WHY),
        "train.lr": Change(0.05, _SMOKE_WHY),
        "train.schedule": Change("onecycle", _SMOKE_WHY),
        "train.milestones": Change((), _SMOKE_WHY),
        "train.augment": Change(False, _SMOKE_WHY),
        "load_kw": Change({"n_per_class": 60, "size": 16}, _SMOKE_WHY),
    },
}
"""Each profile's CIFAR-10 task as its differences from :data:`CIFAR10_PAPER`, a reason per line."""

FACES_PAPER = ImageTask("ckplus", "resnet18_dlfd", TrainConfig(model="resnet18_dlfd", epochs=100, batch_size=32,
                                                               lr=0.01, schedule="cosine"))
"""Identity forgetting on faces: CK+48 at ``cpu`` and ``paper`` (DLFD's MUFAC / RAF-DB splits,
when present, are chapter 2's released-split path), synthetic faces at ``smoke``."""

_CPU_FACE = ("a small CNN for CK+'s 48×48 faces (models.face_cnn) that trains on 2 CPU cores; DLFD's "
             "ResNet-18 on 128×128 faces is a GPU recipe")

FACES_CHANGES = {
    "paper": {},
    "cpu": {
        "model": Change("face_cnn", _CPU_FACE),
        "train.model": Change("face_cnn", _CPU_FACE),
        "train.epochs": Change(30, _CPU_FACE),
        "train.batch_size": Change(64, _CPU_FACE),
        "train.lr": Change(0.1, _CPU_FACE),
        "train.schedule": Change("onecycle", _CPU_FACE),
    },
    "smoke": {
        "dataset": Change("synthetic-faces", _SMOKE_WHY),
        "model": Change("face_cnn", _SMOKE_WHY),
        "train.model": Change("face_cnn", _SMOKE_WHY),
        "train.epochs": Change(6, _SMOKE_WHY),
        "train.lr": Change(0.05, _SMOKE_WHY),
        "train.schedule": Change("onecycle", _SMOKE_WHY),
        "train.augment": Change(False, _SMOKE_WHY),
        "load_kw": Change({"num_subjects": 40, "images_per_subject": 6, "size": 24}, _SMOKE_WHY),
    },
}

CIFAR10 = {profile: with_changes(CIFAR10_PAPER, block) for profile, block in CIFAR10_CHANGES.items()}
FACES = {profile: with_changes(FACES_PAPER, block) for profile, block in FACES_CHANGES.items()}


TASK_BLOCKS = {"cifar10": (CIFAR10_PAPER, CIFAR10_CHANGES), "faces": (FACES_PAPER, FACES_CHANGES)}


def task_changes(profile: str, names: tuple[str, ...] = tuple(TASK_BLOCKS)) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}``: how the profile's tasks ``names`` (keys of
    :data:`TASK_BLOCKS`) differ from the papers'."""
    check_profile(profile)
    rows = []
    for name in names:
        paper, changes = TASK_BLOCKS[check_choice("task", name, tuple(TASK_BLOCKS))]
        rows += change_rows(paper, changes[profile], f"task: {name}")
    return rows


@dataclass(frozen=True)
class Protocol:
    """How every comparison of the book runs at one profile (the same in every chapter, so a
    chapter showing part of the head-to-head reuses its cached runs).

    seeds: independent seeds 0..seeds-1 (own original, forget draw and method seed).
    retain_eval: retain (and validation) samples scored per run; None = all.
    grid: the tuning grid every method gets (:class:`~unlearnkit.experiments.harness.Grid`);
    the picks are chosen on seed 0 and run on every seed. budgets: ``{method: fraction}`` in
    (0, 1] replacing a method's declared budget (empty: every method at its reference ratio).
    oracle: the seeds the oracle pick runs on (:data:`~unlearnkit.experiments.harness.ORACLE_SEEDS`).
    """

    seeds: int
    retain_eval: int | None
    grid: Grid
    budgets: dict = field(default_factory=dict)
    oracle: str = "every_seed"

    def __post_init__(self):
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int):
            raise TypeError(f"seeds must be an int >= 1; got {self.seeds!r}")
        check_range("seeds", self.seeds, 1)
        if self.retain_eval is not None:
            check_range("retain_eval", self.retain_eval, 2)
        for method, fraction in self.budgets.items():
            check_budget(method, fraction)
        check_choice("oracle", self.oracle, ORACLE_SEEDS)


PROTOCOL_PAPER = Protocol(seeds=3, retain_eval=None, grid=Grid())
"""Three independent seeds, every retain / validation sample scored, the full grid, the oracle
pick on every seed."""

PROTOCOL_CHANGES = {
    "paper": {},
    "cpu": {
        "retain_eval": Change(2000, "RA and validation accuracy on a seeded 2,000 samples of about 18,000: "
                                    "a run's evaluation time grows with the samples scored, and the "
                                    "standard error of a 75-90 % accuracy on 2,000 is 0.7-1.0 points"),
        "oracle": Change("tuning_seed", "on the other seeds the oracle (a diagnostic) differed from the rule's "
                                        "pick 80 % of the time and cost 23 % of the runs (chapter 2, CIFAR-10)"),
    },
    "smoke": {
        "seeds": Change(2, _SMOKE_WHY + "; two seeds still give an interval"),
        "grid": Change(Grid(lr_factors=(1.0, 3.0), knobs={}), _SMOKE_WHY),
    },
}
PROTOCOL = {profile: with_changes(PROTOCOL_PAPER, block) for profile, block in PROTOCOL_CHANGES.items()}


def protocol_changes(profile: str) -> list[dict]:
    """Rows ``{part, setting, value, paper, why}``: how the profile's protocol differs from the paper's."""
    return change_rows(PROTOCOL_PAPER, PROTOCOL_CHANGES[check_profile(profile)], "protocol")


DRY_RUN = {"seeds": Change(1, "dry run: one seed"),
           "retain_eval": Change(24, "dry run: RA, validation accuracy and the attacks' retain side on 24 samples "
                                     "(scoring whole ResNet-18 parts was a quarter of chapter 4's dry run)"),
           "grid": Change(Grid(lr_factors=(1.0,), knobs={}), "dry run: a one-point grid (the selection still runs)")}
"""The protocol's lines in a dry run (:mod:`unlearnkit.dryrun`)."""


def protocol(profile: str, *, n_seeds: int | None = None) -> Protocol:
    """The comparison protocol at ``profile`` (seeds, evaluation sample, tuning grid);
    ``n_seeds`` replaces its number of seeds (None: the profile's); a dry run applies :data:`DRY_RUN`."""
    prot = PROTOCOL[check_profile(profile)]
    prot = prot if n_seeds is None else replace(prot, seeds=n_seeds)
    return dryrun.apply(DRY_RUN, prot)


SCENARIOS = {
    "full_class": ("cifar10", "full_class", {"forget_class": "airplane"}),
    "random_subset": ("cifar10", "random_subset", {"forget_fraction": 0.1}),
    "identity": ("faces", "identity", {"forget_subject_fraction": 0.15}),
}
"""The book's forgetting problems: key → (task, scenario, split arguments). At ``smoke`` the
synthetic images name their classes ``class0``…, so the forgotten class is given by index (0)."""


TABLE_BASELINES = {
    "choi2025dlfd": ("finetune", "neggrad", "random_labels", "cf_k", "eu_k", "unsir", "bad_teacher", "scrub"),
    "cheng2024mumis": ("finetune", "neggrad", "random_labels", "salun", "scrub", "l1_sparse"),
}
"""The baselines each paper's tables compare its method with (bib key → registry names):
chapters 2 and 3 run them, and chapter 4 checks each paper's "beats its baselines" on them."""


def cifar10_task(profile: str) -> ImageTask:
    """The book's CIFAR-10 task at ``profile`` (``smoke`` uses synthetic 16×16 images)."""
    return CIFAR10[check_profile(profile)]


def face_task(profile: str) -> ImageTask:
    """The book's faces task at ``profile`` (CK+48; synthetic faces at ``smoke``)."""
    return FACES[check_profile(profile)]


def _build(task: ImageTask, num_classes: int, example: torch.Tensor) -> nn.Module:
    channels, size = example.shape[0], example.shape[-1]
    return build_model(task.model, num_classes, in_channels=channels, image_size=size)


def _train_cached(task: ImageTask, role: str, data, num_classes: int, seed: int, key_extra: dict,
                  *, device, progress: bool) -> tuple[nn.Module, dict]:
    cfg = replace(task.train, seed=seed)
    key = {"role": role, "task": as_dict(replace(task, train=cfg)), **key_extra}

    def build() -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _build(task, num_classes, data.x[0])

    def fit(model: nn.Module) -> nn.Module:
        return train_model(model, data, cfg, device=device, progress=progress, desc=f"{role} seed {seed}")

    return cached_train(key, build, fit, device=device)


def train_original(task: ImageTask, *, seed: int, device, root=None, num_classes: int | None = None,
                   progress: bool = True) -> tuple[nn.Module, dict]:
    """The original model: ``task.train`` on the whole training pool, weights seeded by ``seed``.

    Returns ``(model, info)`` with ``info = {"hit", "train_seconds", "path"}`` from the cache.
    """
    pool, classes = training_pool(task.dataset, root=root, pool_seed=task.pool_seed,
                                  val_fraction=task.val_fraction, max_train=task.max_train,
                                  load_kw=task.load_kw)
    return _train_cached(task, "original", pool, num_classes or len(classes), seed, {},
                         device=device, progress=progress)


def split_key(split: Split) -> dict:
    """What identifies ``split`` in a cache key: its ``info`` without the provenance text and
    the part sizes (the same split read from another copy of the data keeps its key)."""
    return {k: v for k, v in split.info.items() if k not in ("source", "counts")}


def train_retrained(task: ImageTask, split: Split, *, seed: int, device,
                    progress: bool = True) -> tuple[nn.Module, dict]:
    """The gold standard: ``task.train`` from scratch on ``split.retain`` only.

    ``info`` adds ``seconds_this_run`` (see :func:`retrain_seconds_this_run`), the retraining
    time to compare with unlearning methods timed in the same run.
    """
    model, info = _train_cached(task, "retrained", split.retain, split.num_classes, seed,
                                {"split": split_key(split), "retain_size": len(split.retain)},
                                device=device, progress=progress)
    seconds = retrain_seconds_this_run(task, split, seed, info, device=device)
    return model, {**info, "seconds_this_run": seconds}


def retrain_seconds_this_run(task: ImageTask, split: Split, seed: int, info: dict, *, device) -> float:
    """Retraining time measured in this run, so time ratios compare like with like.

    A model trained now reports its own training time. On a cache hit the stored time was
    measured in another run, perhaps under other load, so one epoch of the same recipe on the
    same retain set is timed now (fresh model, not cached) and multiplied by ``task.train.epochs``.
    """
    if keys_only_active():
        return math.nan  # stand-in models: nothing to time (unlearnkit.train.keys_only)
    if not info["hit"]:
        return float(info["train_seconds"])
    cfg = replace(task.train, seed=seed, epochs=1, schedule="constant", milestones=())  # the time, not the rate
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _build(task, split.num_classes, split.retain.x[0])
    with Timer(device) as timer:
        train_model(model, split.retain, cfg, device=device, progress=False, desc="retrain epoch timing")
    return timer.seconds * task.train.epochs


def _model_row(role: str, task: ImageTask, seed: int, info: dict, model: nn.Module, split: Split, *,
               device) -> dict:
    """One row of the results' ``models`` table (provenance of a trained model)."""
    return {"role": role, "task": task.dataset, "model": task.model, "seed": seed,
            "cache_key": Path(info["path"]).stem, "cache_hit": bool(info["hit"]),
            "train_seconds": float(info["train_seconds"]),
            "test_accuracy": test_accuracy(model, split.test, device=device, model_path=info["path"])}


def test_accuracy(model: nn.Module, data, *, device, model_path=None) -> float:
    """Accuracy on ``data`` (computed once per cached model and data when ``model_path`` is the
    model's cache file, :func:`unlearnkit.train.cached_accuracy`); NaN for the stand-in models of
    :func:`unlearnkit.train.keys_only`."""
    if keys_only_active():
        return math.nan
    if model_path is None:
        return accuracy(model, data, device=device)
    return cached_accuracy(model, data, model_path=model_path, device=device)


def make_problem(task: ImageTask, scenario: str, *, seed: int, device, root=None, progress: bool = False,
                 original_seed: int | None = None, **scenario_kw) -> Problem:
    """The forgetting problem ``scenario`` of ``task`` at ``seed``, every part seeded by ``seed``.

    The original is trained on the whole training pool with ``seed`` (weights, data order,
    augmentation), the forget set is drawn with ``seed`` (a whole class is the same class at
    every seed), and the retrained model is trained from scratch on the retain set with
    ``seed``; all three are cached. ``retrain_seconds`` is measured in this run
    (:func:`retrain_seconds_this_run`). ``scenario_kw`` go to :func:`unlearnkit.data.make_split`
    (``forget_class=``, ``forget_fraction=``, ``forget_subject_fraction=``). ``original_seed``
    (default ``seed``) pairs the split with another seed's original, for the variance study.
    """
    original_seed = seed if original_seed is None else original_seed
    split = task.split(scenario, seed=seed, root=root, **scenario_kw)
    original, info_o = train_original(task, seed=original_seed, device=device, root=root, num_classes=split.num_classes,
                                      progress=progress)
    retrained, info_r = train_retrained(task, split, seed=seed, device=device, progress=progress)
    models = [_model_row("original", task, original_seed, info_o, original, split, device=device),
              _model_row("retrained", task, seed, info_r, retrained, split, device=device)]
    key = {"task": as_dict(task), "split": split_key(split), "original": models[0]["cache_key"],
           "retrained": models[1]["cache_key"]}
    return Problem(task=task.dataset, scenario=scenario, seed=seed, split=split, original=original.eval(),
                   retrained=retrained.eval(), retrain_seconds=float(info_r["seconds_this_run"]),
                   retrain_epochs=task.train.epochs, models=models, key=key, original_seed=original_seed)


SCENARIO_KNOBS = ("forget_class", "forget_fraction", "forget_subject_fraction", "pool_size")
"""What a researcher may change in the book's problems (chapter parameters of the same names):
each of the first three replaces the split argument of the scenarios that have it, ``pool_size``
caps the CIFAR-10 training pool (a new original per seed)."""

PROBLEM_KNOBS = {"full_class": ("forget_class", "pool_size"), "random_subset": ("forget_fraction", "pool_size"),
                 "identity": ("forget_subject_fraction",), "sub_class": (), "mufac": ("image_size",),
                 "rafdb": ("image_size",)}
"""Every problem :func:`build` makes → the knobs it takes: the book's three (:data:`SCENARIOS`),
CIFAR-20 sub-class forgetting ("rocket", MU-Mis at ``paper``) and DLFD's released face splits
(MUFAC, RAF-DB; ``image_size``: the side the images are resized to)."""


def check_knobs(*, forget_class=None, forget_fraction=None, forget_subject_fraction=None, pool_size=None,
                image_size=None) -> dict:
    """The problem knobs that are set (None: the book's), checked for type and range; the class
    name itself is checked against the dataset when the split is cut, before any training."""
    if forget_class is not None and (isinstance(forget_class, bool) or not isinstance(forget_class, (str, int))):
        raise TypeError(f"forget_class must be a class name or index; got {forget_class!r}")
    for name, value in (("forget_fraction", forget_fraction), ("forget_subject_fraction", forget_subject_fraction)):
        if value is not None:
            check_range(name, value, 0, 1, low_open=True, high_open=True)
    for name, value, low in (("pool_size", pool_size, 10), ("image_size", image_size, 8)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int or None (the profile's); got {value!r}")
            check_range(name, value, low)
    knobs = dict(forget_class=forget_class, forget_fraction=forget_fraction,
                 forget_subject_fraction=forget_subject_fraction, pool_size=pool_size, image_size=image_size)
    return {k: v for k, v in knobs.items() if v is not None}


@dataclass(frozen=True)
class ProblemSpec:
    """One forgetting problem as data (frozen, picklable: a Ray worker builds it from the spec).

    problem: a key of :data:`PROBLEM_KNOBS`; profile and seed as everywhere; knobs: the
    problem's knobs that are set, as sorted ``(name, value)`` pairs; root: the data folder
    (None: the default); original_seed: pairs the split of ``seed`` with another seed's
    original (the variance study; None: ``seed``). Make one with :func:`spec`, build it with
    :func:`build`.
    """

    problem: str
    profile: str
    seed: int
    knobs: tuple[tuple[str, object], ...] = ()
    root: str | None = None
    original_seed: int | None = None

    @property
    def label(self) -> str:
        """e.g. ``random_subset(seed=1, forget_fraction=0.2)``."""
        shown = [("seed", self.seed), *([("original_seed", self.original_seed)] if self.original_seed is not None
                                        else []), *self.knobs]
        return f"{self.problem}({', '.join(f'{k}={v}' for k, v in shown)})"

    def build(self, *, device, progress: bool = False) -> Problem:
        """:func:`build` of this spec."""
        return build(self, device=device, progress=progress)


def spec(problem: str, profile: str, *, seed: int, root=None, original_seed: int | None = None,
         **knobs) -> ProblemSpec:
    """The :class:`ProblemSpec` of ``problem`` at ``profile`` and ``seed`` with ``knobs`` (the
    names :data:`PROBLEM_KNOBS` allows it); an unknown problem, a knob the problem does not take
    or a bad value raises, naming the allowed ones. Nothing is loaded or trained."""
    check_choice("problem", problem, tuple(PROBLEM_KNOBS))
    check_profile(profile)
    for name in knobs:
        check_choice(f"{problem} knob", name, PROBLEM_KNOBS[problem])
    set_knobs = check_knobs(**knobs)
    return ProblemSpec(problem, profile, seed, tuple(sorted(set_knobs.items())), None if root is None else str(root),
                       original_seed)


def build(spec: ProblemSpec, *, device, progress: bool = False) -> Problem:
    """The :class:`~.harness.Problem` of ``spec``, its models trained or read from the model
    cache (:func:`make_problem` for the book's three; :func:`sub_class_problem`,
    :func:`released_face_problem` for the others)."""
    knobs = dict(spec.knobs)
    if spec.problem == "sub_class":
        return sub_class_problem(spec.seed, device=device, root=spec.root, progress=progress)
    if spec.problem in ("mufac", "rafdb"):
        return released_face_problem(spec.problem, spec.profile, spec.seed, image_size=knobs.get("image_size", 128),
                                     device=device, root=spec.root, progress=progress)
    task_name, scenario, kwargs = SCENARIOS[spec.problem]
    task = cifar10_task(spec.profile) if task_name == "cifar10" else face_task(spec.profile)
    if spec.profile == "smoke" and "forget_class" in kwargs:
        kwargs = {"forget_class": 0}
    kwargs = {k: knobs.get(k, v) for k, v in kwargs.items()}
    if knobs.get("pool_size") is not None:
        task = replace(task, max_train=knobs["pool_size"])
    return make_problem(task, scenario, seed=spec.seed, device=device, root=spec.root, progress=progress,
                        original_seed=spec.original_seed, **kwargs)


# ---------------------------------------------------------------------------- CIFAR-20 sub-class

def cifar20_task() -> ImageTask:
    """CIFAR-100 with its 20 superclasses as labels, trained with the papers' ResNet-18 recipe."""
    return ImageTask("cifar100", "resnet18",
                     TrainConfig(model="resnet18", epochs=182, batch_size=128, lr=0.1, schedule="multistep",
                                 milestones=(91, 136)))


def initial_model(task: ImageTask, num_classes: int, example: torch.Tensor, seed: int) -> nn.Module:
    """The untrained network the original of ``seed`` started from (same builder, same seed)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(task.model, num_classes, in_channels=example.shape[0], image_size=example.shape[-1]).eval()


def superclass_original(task: ImageTask, split: Split, *, seed: int, device,
                        progress: bool = False) -> tuple[nn.Module, dict]:
    """The original model of a sub-class split: ``task.train`` on ``split.train`` with the
    superclass labels (CIFAR-20), cached like every trained model.

    :func:`train_original` trains on the fine labels; the sub-class task needs the coarse ones,
    and its pool does not depend on the forget class.
    """
    cfg = replace(task.train, seed=seed)
    key = {"role": "original-superclass", "task": as_dict(replace(task, train=cfg))}

    def fit(model: nn.Module) -> nn.Module:
        return train_model(model, split.train, cfg, device=device, progress=progress, desc=f"original seed {seed}")

    return cached_train(key, lambda: initial_model(task, split.num_classes, split.forget.x[0], seed), fit,
                        device=device)


def _plain_rows(task_name: str, model_name: str, seed: int, trained, test: TensorSet, *, device) -> list[dict]:
    """The ``models`` rows of ``trained`` = ``[(role, model, info), ...]``, accuracy on ``test``."""
    return [{"role": role, "task": task_name, "model": model_name, "seed": seed, "cache_key": Path(info["path"]).stem,
             "cache_hit": bool(info["hit"]), "train_seconds": float(info["train_seconds"]),
             "test_accuracy": test_accuracy(m, test, device=device)} for role, m, info in trained]


def sub_class_problem(seed: int, *, device, root=None, progress: bool = False) -> Problem:
    """CIFAR-20 sub-class forgetting: forget the fine class "rocket" of superclass "vehicles 2"."""
    task = cifar20_task()
    split = task.split("sub_class", seed=seed, root=root, subclass="rocket")
    original, info_o = superclass_original(task, split, seed=seed, device=device, progress=progress)
    retrained, info_r = train_retrained(task, split, seed=seed, device=device, progress=progress)
    models = _plain_rows("cifar20", task.model, seed, [("original", original, info_o), ("retrained", retrained, info_r)],
                         split.test, device=device)
    problem_key = {"task": as_dict(task), "split": split_key(split), "original": models[0]["cache_key"],
                   "retrained": models[1]["cache_key"]}
    return Problem("cifar20", "sub_class", seed, split, original, retrained, float(info_r["seconds_this_run"]),
                   task.train.epochs, models, problem_key)


# ---------------------------------------------------------------------------- released face splits

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def released_face_problem(source: str, profile: str, seed: int, *, image_size: int, device, root=None,
                          progress: bool = False) -> Problem:
    """DLFD's released split of MUFAC (ImageNet normalisation) or RAF-DB, images resized to
    ``image_size``, trained with the faces task's recipe at ``profile``. Retrain's time is its
    stored training time."""
    check_choice("released face split", source, ("mufac", "rafdb"))
    if source == "mufac":
        data = dryrun.shrink(load_mufac(root, size=image_size))
        count = dryrun.mufac_forget_count(len(data.train), MUFAC_FORGET_COUNT)
        split, mean, std = mufac_split(data, count), IMAGENET_MEAN, IMAGENET_STD
    else:
        split, mean, std = rafdb_split(dryrun.shrink(load_rafdb(root, size=image_size))), 0.5, 0.5
    recipe = replace(face_task(profile).train, seed=seed)
    key = {"dataset": source, "size": image_size, "train": as_dict(recipe)}
    example = split.retain.x[0]

    def untrained() -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return build_model(recipe.model, split.num_classes, in_channels=example.shape[0],
                               image_size=example.shape[-1], mean=mean, std=std)

    def trained(role: str, data: TensorSet):
        fit = lambda m: train_model(m, data, recipe, device=device, progress=progress, desc=f"{role} seed {seed}")
        return cached_train({"role": role, **key}, untrained, fit, device=device)

    (original, info_o), (retrained, info_r) = trained("original", split.train), trained("retrained", split.retain)
    models = _plain_rows(source, recipe.model, seed, [("original", original, info_o), ("retrained", retrained, info_r)],
                         split.test, device=device)
    problem_key = {**key, "original": models[0]["cache_key"], "retrained": models[1]["cache_key"]}
    return Problem(source, "identity", seed, split, original, retrained, float(info_r["train_seconds"]),
                   recipe.epochs, models, problem_key)


def problem_label(key: str, profile: str, knobs: dict | None = None) -> str:
    """The reader's name of the book's problem ``key`` with the scenario knobs of this run,
    e.g. ``"CIFAR-10 full class (airplane)"``, ``"CIFAR-10 random 10 %"``, ``"faces, identity
    (15 % of subjects)"``: claims and captions follow a changed ``forget_fraction``."""
    check_choice("problem", key, tuple(SCENARIOS))
    _, scenario, kwargs = SCENARIOS[key]
    knobs = knobs or {}
    value = knobs.get(next(iter(kwargs))) if kwargs else None
    value = next(iter(kwargs.values())) if value is None else value
    if scenario == "full_class":
        named = "class0" if profile == "smoke" and knobs.get("forget_class") is None else value
        return f"CIFAR-10 full class ({named})"
    if scenario == "random_subset":
        return f"CIFAR-10 random {100 * value:g} %"
    return f"faces, identity ({100 * value:g} % of subjects)"
