"""A method of your own, outside the package: "maximum entropy on the forget set".

Descend the retain set's cross-entropy while pulling the forget set's predictions towards the
uniform distribution, the output a model shows on a class it never learned:

    L(w) = CE(D_r; w) + λ · KL(u ‖ softmax(f(x_f; w))),   u = (1/K, …, 1/K).

Run the head-to-head with it (see the README):

    python -m unlearnkit run 04_head-to-head --profile smoke \
        -p plugins='["examples/max_entropy.py"]' -p methods='["max_entropy"]'
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unlearnkit.methods import SGDConfig, param, register
from unlearnkit.methods.base import endless_batches, epoch_batches, passes, sgd, step


@dataclass(frozen=True)
class MaxEntropyConfig(SGDConfig):
    """Defaults per profile (``paper``, ``cpu=``, ``smoke=``) and allowed ranges, as every method's."""

    epochs: float = param(5, cpu=1, smoke=2, low=0, low_open=True)
    """Passes over the retain set (the budget the harness scales against the retrain)."""
    lr: float = param(0.01, smoke=0.05, low=0, low_open=True)
    forget_weight: float = param(1.0, low=0)
    """λ: the weight of the forget set's pull towards uniform predictions."""


@register("max_entropy", label="MaxEnt", config=MaxEntropyConfig, needs_retain=True, passes=("epochs",),
          reference_retrain_epochs=160, reference="example plugin (README)",
          idea="retain cross-entropy plus a pull of the forget predictions towards uniform")
def max_entropy(model, split, cfg: MaxEntropyConfig, ctx):
    """Each retain batch ``[B, C, H, W]`` is paired with the next batch of the cycled forget set."""
    optimizer = sgd(model.parameters(), cfg)
    forget = endless_batches(split.forget, cfg.batch_size, ctx.generator(1), ctx.device)
    gen = ctx.generator()
    for frac in passes(cfg.epochs):
        model.train()
        for x_r, y_r in epoch_batches(split.retain, cfg.batch_size, gen, ctx.device, fraction=frac):
            x_f, _ = next(forget)
            log_p = F.log_softmax(model(x_f), dim=1)                  # [B, K]
            uniform = torch.full_like(log_p, 1.0 / log_p.shape[1])
            pull = F.kl_div(log_p, uniform, reduction="batchmean")    # KL(u ‖ p)
            step(optimizer, F.cross_entropy(model(x_r), y_r) + cfg.forget_weight * pull)
    return model
