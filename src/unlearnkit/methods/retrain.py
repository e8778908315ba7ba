"""Retrain: train from scratch on the retain set, the gold standard every method is compared with.

The weights are re-initialised (seeded by the run's seed) and trained with
:func:`unlearnkit.train.train_model` on ``split.retain``. Retraining is the expensive part of
every chapter, so a ``fit`` hook lets a chapter reuse a cached retrained model::

    unlearn("retrain", original, split, fit=lambda model, retain: train_retrained(task, split,
            seed=seed, device=device))

``fit(model, retain) -> model | (model, info)`` receives the freshly initialised copy and the
retain set; with ``info = {"hit", "train_seconds", ...}`` from :func:`unlearnkit.train.cached_train`
the result's ``seconds`` is the measured training time even on a cache hit, so "time vs
retrain" ratios stay honest.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from torch import nn

from ..data.core import Split
from ..train import SCHEDULES, TrainConfig, train_model
from .base import MethodConfig, RunContext, param, register, reset_parameters


RETRAIN_WHY = ("a direct unlearn('retrain') call at cpu trains the small CNN with a one-cycle recipe; "
               "the chapters retrain with their task's recipe (tasks.CIFAR10)")


@dataclass(frozen=True)
class RetrainConfig(MethodConfig):
    """The training recipe (fields of :class:`unlearnkit.train.TrainConfig`). Paper values:
    the SalUn README's retrain (160 epochs, lr 0.1, SGD, lr × 0.1 at epochs 91 and 136, crop +
    flip); ``cpu`` and ``smoke`` follow the original models' recipes of
    :mod:`unlearnkit.experiments.tasks` for those profiles."""

    epochs: int = param(160, cpu=8, smoke=4, low=1, why=RETRAIN_WHY)
    batch_size: int = param(256, cpu=256, smoke=64, low=1)
    lr: float = param(0.1, cpu=0.2, smoke=0.05, low=0, low_open=True, why=RETRAIN_WHY)
    momentum: float = param(0.9, low=0, high=1, high_open=True)
    weight_decay: float = param(5e-4, low=0)
    schedule: str = param("multistep", cpu="onecycle", smoke="onecycle", choices=SCHEDULES, why=RETRAIN_WHY)
    milestones: tuple[int, ...] = param((91, 136), cpu=(), smoke=(), why=RETRAIN_WHY)
    gamma: float = param(0.1, low=0, high=1, low_open=True)
    augment: bool = param(True, smoke=False)
    label_smoothing: float = param(0.0, cpu=0.1, smoke=0.0, low=0, high=1, high_open=True, why=RETRAIN_WHY)

    def train_config(self, seed: int) -> TrainConfig:
        """This recipe as a :class:`TrainConfig` seeded with ``seed`` (validates the schedule).
        Its ``model`` field keeps TrainConfig's default: it is a label that
        :func:`train_model` does not read (the architecture is the copy being retrained)."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)}, seed=seed)

    def __post_init__(self):
        super().__post_init__()
        self.train_config(0)


@register("retrain", label="Retrain", config=RetrainConfig, needs_retain=True, needs_forget=False, reference="",
          idea="train from scratch on the retain set only (the gold standard)", uses_fit=True,
          passes=())
def retrain(model: nn.Module, split: Split, cfg: RetrainConfig, ctx: RunContext):
    """Re-initialise every layer, then ``min_w Σ_{D_r} CE`` with the training recipe (or ``ctx.fit``)."""
    fresh = reset_parameters(model)
    if ctx.fit is not None:
        return ctx.fit(fresh, split.retain)
    return train_model(fresh, split.retain, cfg.train_config(ctx.seed), device=ctx.device,
                       progress=ctx.progress, desc="retrain")
