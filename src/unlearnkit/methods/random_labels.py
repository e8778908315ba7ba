"""Random labels (RL): relabel the forget set with wrong classes and train on it and the retain set.

As in the SalUn code for CIFAR-10 (``unlearn/RL.py``): every epoch is one pass over the forget
set with fresh random labels, then one pass over the retain set with the true labels. The
labels here are drawn among the *wrong* classes (the reference draws among all classes, so
about 1/K of its "random" labels are the true one). SalUn is this loop restricted to a mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.core import Split
from .base import BUDGET_WHY, LR_WHY, RunContext, SGDConfig, epoch_batches, param, passes, register, wrong_labels


@dataclass(frozen=True)
class RandomLabelsConfig(SGDConfig):
    """RL hyperparameters: 10 epochs as in the SalUn README's RL command; lr 0.1 is that README's
    rate before April 2024 for SalUn, and RL's own rate is not stated there [unverified]."""

    epochs: float = param(10, cpu=2, smoke=5, low=0, low_open=True,
                          why=BUDGET_WHY)
    """Epochs (a forget pass then a retain pass); fractions run that share of both passes."""
    lr: float = param(0.1, cpu=0.01, smoke=0.01, low=0, low_open=True,
                      why=LR_WHY)


def masked_sgd_step(optimizer: torch.optim.SGD, loss: torch.Tensor, params: list[nn.Parameter],
                    masks: list[torch.Tensor] | None, weight_decay: float) -> None:
    """One SGD step whose weight decay goes *through* the mask.

    The gradient becomes ``m ⊙ (∇L + λ w)`` and the optimiser itself has no weight decay, so a
    weight with ``m = 0`` gets a zero gradient at every step, hence a zero momentum buffer and a
    zero update: it stays bit-identical (the SalUn code let decay and momentum move masked
    weights until Feb 2026). Without masks this is exactly SGD with weight decay ``λ``.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            p.grad.add_(p, alpha=weight_decay)
            if masks is not None:
                p.grad.mul_(masks[i])
    optimizer.step()


def relabel_unlearn(model: nn.Module, split: Split, cfg: RandomLabelsConfig, ctx: RunContext,
                    masks: list[torch.Tensor] | None = None, desc: str = "random labels") -> nn.Module:
    """RL loop: per epoch, CE on the forget set with fresh wrong labels, then CE on the retain
    set (a fractional epoch runs that share of each). ``masks`` (one 0/1 tensor per parameter,
    in ``model.parameters()`` order) restricts the updates to the weights marked 1."""
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=0.0)
    gen_order, gen_labels = ctx.generator(0), ctx.generator(1)
    k = split.num_classes
    for frac in tqdm(passes(cfg.epochs), desc=desc, disable=not ctx.progress):
        model.train()
        for x, y in epoch_batches(split.forget, cfg.batch_size, gen_order, ctx.device, fraction=frac):
            loss = F.cross_entropy(model(x), wrong_labels(y, k, gen_labels))
            masked_sgd_step(optimizer, loss, params, masks, cfg.weight_decay)
        for x, y in epoch_batches(split.retain, cfg.batch_size, gen_order, ctx.device, fraction=frac):
            masked_sgd_step(optimizer, F.cross_entropy(model(x), y), params, masks, cfg.weight_decay)
    return model


@register("random_labels", label="RL", reference_retrain_epochs=160, config=RandomLabelsConfig, needs_retain=True, passes=("epochs",),
          reference="graves2021amnesiac",
          idea="train on the forget set relabelled with random wrong classes, and on the retain set")
def random_labels(model: nn.Module, split: Split, cfg: RandomLabelsConfig, ctx: RunContext) -> nn.Module:
    """``min_w Σ_{D_f} CE(f(x; w), ỹ) + Σ_{D_r} CE(f(x; w), y)``, ``ỹ ≠ y`` uniform, redrawn every epoch."""
    return relabel_unlearn(model, split, cfg, ctx)
