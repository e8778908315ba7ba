"""SalUn: random-label unlearning restricted to the most forget-salient weights (Fan et al. 2024).

Saliency mask (SalUn's weight saliency map): ``m = 1[ |∇_w L_f(w_0)| ≥ top-k threshold ]`` with
``L_f = −CE`` summed over the forget batches at the original weights ``w_0`` (model in eval
mode, as in the reference ``generate_mask.py``), ranked globally over all parameters; the top
``mask_ratio`` fraction (k = 50%) is updated, the rest stays frozen. Then RL runs with updates
``w ← w − η · m ⊙ (...)`` (:func:`random_labels.relabel_unlearn`). Frozen weights stay
bit-identical: weight decay enters through the masked gradient, so momentum never moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.core import Split, TensorSet
from .base import LR_WHY, RunContext, as_input, param, register
from .random_labels import RandomLabelsConfig, relabel_unlearn


@dataclass(frozen=True)
class SalUnConfig(RandomLabelsConfig):
    """SalUn hyperparameters: RL's plus the fraction of weights updated (SalUn README: 50%).
    The rate is the current README command's (CIFAR-10, 10 epochs, mask 0.5: lr 0.013; 0.1
    before April 2024)."""

    lr: float = param(0.013, cpu=0.01, smoke=0.01, low=0, low_open=True, why=LR_WHY)
    mask_ratio: float = param(0.5, low=0, high=1, low_open=True)


def saliency_mask(model: nn.Module, forget: TensorSet, ratio: float, *, batch_size: int,
                  device: torch.device) -> list[torch.Tensor]:
    """One 0/1 float tensor per parameter (``model.parameters()`` order): 1 for the
    ``round(ratio · P)`` weights with the largest ``|Σ_batches ∇_w(−CE)|`` over the forget set."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    model.eval()
    for x, y in forget.batches(batch_size):
        grads = torch.autograd.grad(-F.cross_entropy(model(as_input(x, device)), y.to(device)), params,
                                    allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc.add_(g)
    scores = torch.cat([g.abs().flatten() for g in total])
    keep = max(1, round(ratio * scores.numel()))
    flat = torch.zeros_like(scores)
    flat[torch.topk(scores, keep, sorted=False).indices] = 1.0
    return [m.view_as(p) for m, p in zip(flat.split([p.numel() for p in params]), params)]


@register("salun", label="SalUn", reference_retrain_epochs=160, config=SalUnConfig, needs_retain=True, passes=("epochs",), reference="fan2024salun",
          idea="random labels, updating only the weights most salient for the forget loss (top-k mask)")
def salun(model: nn.Module, split: Split, cfg: SalUnConfig, ctx: RunContext) -> nn.Module:
    """Compute the saliency mask at the original weights, then run masked random-label unlearning."""
    masks = saliency_mask(model, split.forget, cfg.mask_ratio, batch_size=cfg.batch_size, device=ctx.device)
    return relabel_unlearn(model, split, cfg, ctx, masks=masks, desc="salun")
