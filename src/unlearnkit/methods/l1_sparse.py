"""ℓ1-sparse unlearning (Jia et al. 2023): fine-tune on the retain set with an ℓ1 penalty.

``min_w CE(D_r; w) + γ_t ‖w‖₁`` with ``γ_t = γ (1 − t/T)`` decaying linearly over the epochs
``t = 0..T−1`` (the ``FT_l1`` loop of the Unlearn-Sparse / SalUn code; with fractional ``T`` a
pass's ``t`` is the passes done before it). Sparsity pulls the model
towards a simpler solution that keeps less sample-specific information.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.core import Split
from .base import BUDGET_WHY, RunContext, SGDConfig, param, register
from .finetune import finetune_loop


@dataclass(frozen=True)
class L1SparseConfig(SGDConfig):
    """ℓ1-sparse hyperparameters: 10 epochs, lr 0.01 (SalUn README), γ = 5e-4 (Jia et al.) [unverified]."""

    epochs: float = param(10, cpu=2, smoke=5, low=0, low_open=True,
                          why=BUDGET_WHY)
    """Passes over the retain set; fractions run that share of a pass."""
    lr: float = param(0.01, smoke=0.1, low=0, low_open=True)
    l1: float = param(5e-4, smoke=1e-3, low=0)


def l1_norm(model: nn.Module) -> torch.Tensor:
    """``‖w‖₁`` over every parameter of ``model`` (a scalar tensor with gradient)."""
    return sum(p.abs().sum() for p in model.parameters())


@register("l1_sparse", label="ℓ1-sparse", reference_retrain_epochs=160, config=L1SparseConfig, needs_retain=True, needs_forget=False, passes=("epochs",),
          reference="jia2023sparse", idea="fine-tune on the retain set with a decaying ℓ1 penalty on the weights")
def l1_sparse(model: nn.Module, split: Split, cfg: L1SparseConfig, ctx: RunContext) -> nn.Module:
    """FT plus ``γ (1 − t/T) ‖w‖₁`` in the pass starting at epoch ``t``."""
    def penalty(progress: float) -> torch.Tensor:
        return cfg.l1 * (1 - progress) * l1_norm(model)

    return finetune_loop(model, split.retain, cfg, ctx, penalty=penalty, desc="l1-sparse")
