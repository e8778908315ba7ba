"""SCRUB (Kurmanji et al. 2023): a student pulled away from its teacher on the forget set
and towards it on the retain set.

Teacher = the original model (frozen), student = a copy. Each epoch: while
``epoch < max_steps``, one *max-step* pass over the forget set minimising
``−KL_T(teacher ‖ student)``; then one *min-step* pass over the retain set minimising
``γ · CE(student) + α · KL_T(teacher ‖ student)``, with ``KL_T`` the temperature-``T``
distillation loss (:func:`base.distill_kl`). Both counts may be fractional: epoch ``i`` (its
share ``s`` of a pass) runs ``s`` of a min-step pass and ``min(s, max_steps − i)`` of a
max-step pass when that is positive (``max_steps = 1.5``: a full max-step pass in epoch 0, half
of one in epoch 1).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.core import Split
from .base import LR_WHY, RunContext, SGDConfig, distill_kl, epoch_batches, param, passes, register, sgd, step


@dataclass(frozen=True)
class ScrubConfig(SGDConfig):
    """SCRUB hyperparameters. Paper values: DLFD's baseline (2 epochs, 2 max-steps, lr 5e-4,
    T = 4) with the SCRUB code's loss weights γ = 0.99, α = 0.001."""

    epochs: float = param(2, cpu=2, smoke=5, low=0, low_open=True)
    """Epochs (a max-step pass then a min-step pass); fractions run that share of both passes."""
    max_steps: float = param(2, cpu=2, smoke=3, low=0)
    """Max-step passes over the forget set, in the first epochs; fractions run that share of a pass."""
    lr: float = param(5e-4, cpu=2e-3, smoke=2e-3, low=0, low_open=True,
                      why=LR_WHY)
    batch_size: int = param(64, smoke=32, low=1)
    temperature: float = param(4.0, low=0, low_open=True)
    ce_weight: float = param(0.99, low=0)
    kl_weight: float = param(0.001, low=0)


@register("scrub", label="SCRUB", reference_retrain_epochs=100, config=ScrubConfig, needs_retain=True, passes=("epochs", "max_steps"),
          reference="kurmanji2023scrub",
          idea="teacher-student: maximise divergence from the original on forget, minimise it on retain")
def scrub(model: nn.Module, split: Split, cfg: ScrubConfig, ctx: RunContext) -> nn.Module:
    """Alternate max-steps (forget) and min-steps (retain) on the student."""
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    student = model
    optimizer = sgd(student.parameters(), cfg)
    gen = ctx.generator()
    for epoch, frac in enumerate(tqdm(passes(cfg.epochs), desc="scrub", disable=not ctx.progress)):
        student.train()
        max_frac = min(frac, max(0, cfg.max_steps - epoch))
        if max_frac > 0:  # max-step: move away from the teacher on the forget set
            for x, _ in epoch_batches(split.forget, cfg.batch_size, gen, ctx.device, fraction=max_frac):
                step(optimizer, -distill_kl(student(x), _teacher_logits(teacher, x), cfg.temperature))
        for x, y in epoch_batches(split.retain, cfg.batch_size, gen, ctx.device, fraction=frac):  # min-step
            logits = student(x)
            kl = distill_kl(logits, _teacher_logits(teacher, x), cfg.temperature)
            step(optimizer, cfg.ce_weight * F.cross_entropy(logits, y) + cfg.kl_weight * kl)
    return student


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return teacher(x)
