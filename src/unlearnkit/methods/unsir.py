"""UNSIR (Tarun et al. 2023): learn error-maximising noise for each forget class, impair the
model on it, then repair it on retain data.

1. Noise: for every class ``c`` in the forget set, a batch ``N_c`` of ``noise_per_class``
   inputs maximising the model's loss on ``c``:
   ``min_N −CE(f(N), c) + λ · mean_i ‖z_i‖²``, ``z = (N − 0.5) / 0.5`` (Adam). The reference
   learns the noise in the normalised input space of models normalised with mean = std = 0.5
   (the default of :func:`unlearnkit.models.build_model`); ``z`` is that space, so the
   regulariser and the initialisation ``z ~ N(0, 1)`` match it. The noise is not clamped to
   ``[0, 1]``: it is not an image, as in the reference.
2. Impair: train (Adam) on the noise, labelled ``c``, mixed with a random ``retain_fraction``
   of the retain set.
3. Repair: train (Adam) on the same retain subset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.core import Split, TensorSet
from .. import dryrun
from .base import BUDGET_WHY, LR_WHY, MethodConfig, RunContext, as_input, epoch_batches, param, passes, register, step


@dataclass(frozen=True)
class UnsirConfig(MethodConfig):
    """UNSIR hyperparameters. Reference: DLFD's baseline, whose tables this method is compared
    with (noise 5×8 Adam steps at lr 0.1, λ = 0.1; 1 impair and 2 repair epochs, Adam lr 1e-3,
    batch 32), run on the algorithm of the UNSIR paper (noise per forget class, impair on noise
    plus a retain subset, repair on that subset). The original code's settings (250 noise steps,
    the noise batch replicated ×80, 500 retain samples a class, impair and repair one epoch at
    lr 1e-4) are a ``method_overrides`` away. The 30% retain subset follows the Bad Teacher code
    [unverified for UNSIR]."""

    noise_per_class: int = param(32, smoke=16, low=1)
    noise_steps: int = param(40, cpu=20, smoke=10, low=1,
                             why="half the noise-optimisation steps, for CPU time")
    noise_lr: float = param(0.1, low=0, low_open=True)
    noise_reg: float = param(0.1, low=0)
    impair_epochs: float = param(1, low=0, low_open=True)
    """Passes over the noise plus retain subset; fractions run that share of a pass."""
    impair_lr: float = param(1e-3, cpu=0.01, smoke=0.02, low=0, low_open=True,
                             why=LR_WHY)
    repair_epochs: float = param(2, cpu=1, smoke=2, low=0,
                                 why=BUDGET_WHY)
    """Passes over the retain subset (0: no repair); fractions run that share of a pass."""
    repair_lr: float = param(1e-3, cpu=0.005, smoke=0.01, low=0, low_open=True,
                             why=LR_WHY)
    batch_size: int = param(32, cpu=128, smoke=32, low=1,
                            why="4× fewer steps a pass than the paper's 32, for CPU time")
    retain_fraction: float = param(0.3, smoke=1.0, low=0, high=1, low_open=True)


def error_maximising_noise(model: nn.Module, target: int, shape: tuple[int, ...], cfg: UnsirConfig,
                           gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Noise inputs ``[n, C, H, W]`` (pixel units, unclamped) that maximise ``CE(f(N), target)``."""
    z = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=cfg.noise_lr)
    labels = torch.full((shape[0],), target, dtype=torch.long, device=device)
    model.eval()
    for _ in range(dryrun.steps(cfg.noise_steps)):
        loss = -F.cross_entropy(model(0.5 + 0.5 * z), labels) + cfg.noise_reg * z.square().sum((1, 2, 3)).mean()
        step(optimizer, loss)
    return (0.5 + 0.5 * z).detach().cpu()


def _train(model: nn.Module, data: TensorSet, epochs: float, lr: float, cfg: UnsirConfig, ctx: RunContext,
           gen: torch.Generator, desc: str) -> None:
    """``epochs`` (possibly fractional) passes of Adam on ``CE`` over ``data`` (a fresh optimiser
    per phase, as in DLFD's code)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for frac in tqdm(passes(epochs), desc=desc, disable=not ctx.progress):
        model.train()
        for x, y in epoch_batches(data, cfg.batch_size, gen, ctx.device, fraction=frac):
            step(optimizer, F.cross_entropy(model(x), y))


@register("unsir", label="UNSIR", reference_retrain_epochs=100, config=UnsirConfig, needs_retain=True, passes=("impair_epochs", "repair_epochs"),
          reference="tarun2023unsir",
          idea="learn noise that maximises the loss of each forget class, impair on it, repair on retain")
def unsir(model: nn.Module, split: Split, cfg: UnsirConfig, ctx: RunContext) -> nn.Module:
    """Noise per forget class → impair (noise + retain subset) → repair (retain subset)."""
    gen = ctx.generator()
    image_shape, count = tuple(split.forget.x.shape[1:]), dryrun.cap_count(cfg.noise_per_class)
    noise = [TensorSet(error_maximising_noise(model, int(c), (count, *image_shape), cfg, gen, ctx.device),
                       torch.full((count,), int(c)))
             for c in split.forget.y.unique()]
    keep = torch.randperm(len(split.retain), generator=gen)[:max(1, round(cfg.retain_fraction * len(split.retain)))]
    retain = split.retain.subset(keep)
    retain_pixels = TensorSet(as_input(retain.x, torch.device("cpu")), retain.y)
    _train(model, TensorSet.concat([*noise, retain_pixels]), cfg.impair_epochs, cfg.impair_lr, cfg, ctx, gen,
           "unsir impair")
    _train(model, retain, cfg.repair_epochs, cfg.repair_lr, cfg, ctx, gen, "unsir repair")
    return model
