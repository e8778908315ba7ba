"""Fine-tuning (FT): keep training the original model on the retain set only.

Forgetting comes only from the forget samples no longer being seen ("catastrophic
forgetting"); the cheapest baseline (Golatkar et al. 2020; Unlearn-Sparse / SalUn code:
10 epochs, lr 0.01). DLFD's baseline used 2 epochs at lr 1e-3 (pass ``epochs=2, lr=1e-3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.core import Split, TensorSet
from .base import BUDGET_WHY, RunContext, SGDConfig, epoch_batches, param, passes, register, sgd, step


@dataclass(frozen=True)
class FinetuneConfig(SGDConfig):
    """FT hyperparameters; paper values from the Unlearn-Sparse / SalUn code (10 epochs, lr 0.01)."""

    epochs: float = param(10, cpu=2, smoke=5, low=0, low_open=True,
                          why=BUDGET_WHY)
    """Passes over the retain set; fractions run that share of a pass."""
    lr: float = param(0.01, smoke=0.1, low=0, low_open=True)


def finetune_loop(model: nn.Module, data: TensorSet, cfg: SGDConfig, ctx: RunContext, *,
                  params: Iterable[nn.Parameter] | None = None,
                  penalty: Callable[[float], torch.Tensor] | None = None,
                  set_mode: Callable[[nn.Module], None] = lambda m: m.train(),
                  cosine: bool = False, desc: str = "fine-tune") -> nn.Module:
    """Minimise ``CE(f(x), y) + penalty(t)`` over ``data`` for ``cfg.epochs`` (possibly
    fractional) passes of SGD, ``t = (passes done) / cfg.epochs`` the run's progress at the pass's start.

    params: what the optimiser updates (default all). set_mode: puts the model in train mode
    before each pass (CF-k keeps its frozen blocks in eval mode). cosine: cosine-annealed lr,
    stepped after each pass.
    """
    optimizer = sgd(model.parameters() if params is None else params, cfg)
    fractions = passes(cfg.epochs)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, len(fractions)) if cosine else None
    gen = ctx.generator()
    done = 0.0
    for frac in tqdm(fractions, desc=desc, disable=not ctx.progress):
        set_mode(model)
        for x, y in epoch_batches(data, cfg.batch_size, gen, ctx.device, fraction=frac):
            loss = F.cross_entropy(model(x), y)
            if penalty is not None:
                loss = loss + penalty(done / cfg.epochs)
            step(optimizer, loss)
        if schedule is not None:
            schedule.step()
        done += frac
    return model


@register("finetune", label="FT", reference_retrain_epochs=160, config=FinetuneConfig, needs_retain=True, needs_forget=False, passes=("epochs",),
          reference="golatkar2020eternal",
          idea="keep training on the retain set; forgetting is whatever the network forgets on its own")
def finetune(model: nn.Module, split: Split, cfg: FinetuneConfig, ctx: RunContext) -> nn.Module:
    """``min_w Σ_{(x,y)∈D_r} CE(f(x; w), y)`` starting from the original weights."""
    return finetune_loop(model, split.retain, cfg, ctx)
