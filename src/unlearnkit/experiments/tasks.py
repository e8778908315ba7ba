"""The image tasks shared by the chapters: data, model and training recipe per profile.

Chapters 0, 2, 3 and 4 use the same CIFAR-10 task (and chapters 2 and 4 the same face task), so
an original model trained by one chapter is a cache hit for the next. The original model is
trained on the *training pool* (the training set before any forgetting), which depends only on
the task and ``pool_seed``; every forget set of every scenario and seed is cut from that pool,
so one original serves them all, as in the papers. The retrained model depends on the split.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..config import as_dict, check_profile
from ..data import Split, make_split
from ..data.splits import training_pool
from ..metrics import Timer
from ..models import build_model
from ..train import TrainConfig, cached_train, train_model


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


CIFAR10 = {
    "smoke": ImageTask("synthetic-images", "small_cnn",
                       TrainConfig(model="small_cnn", epochs=4, batch_size=64, lr=0.05, augment=False),
                       load_kw={"n_per_class": 60, "size": 16}),
    "cpu": ImageTask("cifar10", "small_cnn",
                     TrainConfig(model="small_cnn", epochs=8, batch_size=256, lr=0.2,
                                 label_smoothing=0.1),
                     max_train=20000, max_test=5000),
    "paper": ImageTask("cifar10", "resnet18",
                       TrainConfig(model="resnet18", epochs=182, batch_size=128, lr=0.1,
                                   schedule="multistep", milestones=(91, 136))),
}


def cifar10_task(profile: str, **changes) -> ImageTask:
    """The CIFAR-10 task at ``profile`` (``smoke`` uses synthetic 16×16 images)."""
    task = CIFAR10[check_profile(profile)]
    return replace(task, **changes) if changes else task


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


def train_retrained(task: ImageTask, split: Split, *, seed: int, device,
                    progress: bool = True) -> tuple[nn.Module, dict]:
    """The gold standard: ``task.train`` from scratch on ``split.retain`` only.

    ``info`` adds ``seconds_this_run`` (see :func:`retrain_seconds_this_run`), the retraining
    time to compare with unlearning methods timed in the same run.
    """
    forget_key = {k: v for k, v in split.info.items() if k not in ("source", "counts")}
    model, info = _train_cached(task, "retrained", split.retain, split.num_classes, seed,
                                {"split": forget_key, "retain_size": len(split.retain)},
                                device=device, progress=progress)
    seconds = retrain_seconds_this_run(task, split, seed, info, device=device)
    return model, {**info, "seconds_this_run": seconds}


def retrain_seconds_this_run(task: ImageTask, split: Split, seed: int, info: dict, *, device) -> float:
    """Retraining time measured in this run, so time ratios compare like with like.

    A model trained now reports its own training time. On a cache hit the stored time was
    measured in another run, perhaps under other load, so one epoch of the same recipe on the
    same retain set is timed now (fresh model, not cached) and multiplied by ``task.train.epochs``.
    """
    if not info["hit"]:
        return float(info["train_seconds"])
    cfg = replace(task.train, seed=seed, epochs=1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _build(task, split.num_classes, split.retain.x[0])
    with Timer(device) as timer:
        train_model(model, split.retain, cfg, device=device, progress=False, desc="retrain epoch timing")
    return timer.seconds * task.train.epochs
