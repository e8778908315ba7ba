"""Image classifiers that share one interface.

Every model built by :func:`build_model`

* takes float pixels in ``[0, 1]``, shape ``[B, C, H, W]``, and normalises them in its first
  module (:class:`Normalize`), so input gradients and perturbations live in pixel space;
* exposes ``model.features(x) -> [B, D]`` (penultimate features) and ``model.head``
  (the classifier on them), with ``model(x) == model.head(model.features(x))``;
* lists its trainable blocks, input to output, in ``model.layers()``; the head is the last
  block. CF-k / EU-k baselines act on the last ``k`` of them (:func:`last_layers`,
  :func:`reinit_last_layers`).

Normalisation layers are BatchNorm, as in the fast CIFAR designs (ResNet-9, airbench) whose
short-schedule recipes we borrow. GroupNorm would avoid the caveat below and costs the same per
CPU step, but trains slower: ``small_cnn`` after 4 epochs of CIFAR-10 (onecycle, lr 0.2) reached
77 % test accuracy with BatchNorm and 66 % with GroupNorm(8). BatchNorm in train mode couples
the samples of a batch, so **per-sample input gradients** (MU-Mis sensitivities, DLFD
perturbations) must be taken with the model in ``eval()`` mode.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn
from torchvision.models import resnet18 as tv_resnet18


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``mean``/``std`` are buffers (saved in the state dict)."""

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float, channels: int):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        for name, value in (("mean", mean_t), ("std", std_t)):
            if value.numel() not in (1, channels):
                raise ValueError(f"{name} has {value.numel()} values; expected 1 or {channels} (one per channel)")
        if (std_t <= 0).any():
            raise ValueError(f"std must be positive; got {std_t.tolist()}")
        self.register_buffer("mean", mean_t.expand(channels).clone().view(1, channels, 1, 1))
        self.register_buffer("std", std_t.expand(channels).clone().view(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``head(pool(body(normalize(x))))`` with ``features = pool ∘ body ∘ normalize``.

    ``body`` is an ``nn.Sequential`` of named blocks (each with parameters); ``pool`` maps the
    last feature map to ``[B, D]``; ``head`` maps ``[B, D]`` to logits ``[B, num_classes]``.
    """

    def __init__(self, normalize: Normalize, body: nn.Sequential, pool: nn.Module, head: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.body = body
        self.pool = pool
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, D]`` of pixels ``x`` in ``[0, 1]``, ``[B, C, H, W]``."""
        return self.pool(self.body(self.normalize(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        return self.head(self.features(x))

    def layers(self) -> list[nn.Module]:
        """The trainable blocks from input to output; the head is last."""
        return [*self.body, self.head]


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """3x3 conv → (2x2 max-pool) → BatchNorm → ReLU.

    Pooling before the normalisation (as in airbench) runs BatchNorm and ReLU on a quarter of
    the activations; with BatchNorm before the pool they took about 30 % of a CPU training step.
    """
    parts = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        parts.append(nn.MaxPool2d(2))
    return nn.Sequential(*parts, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """``x + f(x)`` with ``f`` two :func:`conv_bn` layers of the same width (ResNet-9 style)."""

    def __init__(self, channels: int):
        super().__init__()
        self.inner = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class ScaledLinear(nn.Linear):
    """A linear layer whose logits are multiplied by ``scale`` (ResNet-9's 0.125 trick: a
    cooler initial softmax that lets a high learning rate train stably)."""

    def __init__(self, in_features: int, out_features: int, scale: float):
        super().__init__(in_features, out_features)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def _check_min_size(name: str, image_size: int, downsampling: int) -> None:
    if image_size < downsampling:
        raise ValueError(f"{name} downsamples by {downsampling}; image_size={image_size} is too small "
                         f"(need >= {downsampling})")


def conv_body(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """A ResNet-9-like body scaled down for CPUs: three pooled blocks, a residual pair after the second.

    block1: conv(in → w1), pool; block2: conv(w1 → w2), pool, + residual(w2); block3: conv(w2 → w3), pool.
    A 32x32 image becomes a ``[w3, 4, 4]`` map.
    """
    w1, w2, w3 = widths
    return nn.Sequential(OrderedDict(
        block1=conv_bn(in_channels, w1, pool=True),
        block2=nn.Sequential(conv_bn(w1, w2, pool=True), Residual(w2)),
        block3=conv_bn(w2, w3, pool=True),
    ))


def _resnet18_body(in_channels: int, stem: str = "cifar") -> nn.Sequential:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 conv stride 1, no max-pool) or, for
    ``stem="imagenet"``, torchvision's own (7x7 conv stride 2, 3x3 max-pool stride 2)."""
    net = tv_resnet18(num_classes=1)
    if stem == "imagenet":
        conv = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        return nn.Sequential(OrderedDict(stem=nn.Sequential(conv, net.bn1, net.relu, net.maxpool), layer1=net.layer1,
                                         layer2=net.layer2, layer3=net.layer3, layer4=net.layer4))
    conv = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # as torchvision inits its convs
    stem = nn.Sequential(conv, net.bn1, net.relu)
    return nn.Sequential(OrderedDict(stem=stem, layer1=net.layer1, layer2=net.layer2,
                                     layer3=net.layer3, layer4=net.layer4))


def _global_max_pool() -> nn.Module:
    return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())


def _global_avg_pool() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


SMALL_CNN_WIDTHS = (32, 64, 128)


def _build_small_cnn(num_classes, in_channels, image_size):
    """:func:`conv_body` of widths 32-64-128, global max-pool, a 0.125-scaled linear head.

    About 0.17 M parameters and 15 M multiply-adds per 32x32 image (ResNet-18: 11 M and 0.56 G).
    """
    _check_min_size("small_cnn", image_size, 8)
    body = conv_body(in_channels, SMALL_CNN_WIDTHS)
    return body, _global_max_pool(), ScaledLinear(SMALL_CNN_WIDTHS[-1], num_classes, 0.125)


def _build_face_cnn(num_classes, in_channels, image_size):
    """The small CNN at widths 16-32-64 with dropout 0.3 before the head: CK+ has < 1,000 images."""
    _check_min_size("face_cnn", image_size, 8)
    body = conv_body(in_channels, (16, 32, 64))
    return body, _global_max_pool(), nn.Sequential(nn.Dropout(0.3), ScaledLinear(64, num_classes, 0.125))


def _build_resnet18(num_classes, in_channels, image_size):
    _check_min_size("resnet18", image_size, 8)
    return _resnet18_body(in_channels), _global_avg_pool(), nn.Linear(512, num_classes)


def _build_resnet18_dlfd(num_classes, in_channels, image_size):
    """DLFD's face model: ResNet-18 with torchvision's ImageNet stem (its 128×128 faces are
    downsampled 32×) and DLFD's head 512→256→128→C, ReLU and dropout 0.5 between."""
    _check_min_size("resnet18_dlfd", image_size, 32)
    head = nn.Sequential(nn.Linear(512, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(256, 128), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(128, num_classes))
    return _resnet18_body(in_channels, stem="imagenet"), _global_avg_pool(), head


# name -> builder(num_classes, in_channels, image_size) -> (body, pool, head)
MODELS: dict[str, Callable[[int, int, int], tuple[nn.Sequential, nn.Module, nn.Module]]] = {
    "small_cnn": _build_small_cnn,
    "face_cnn": _build_face_cnn,
    "resnet18": _build_resnet18,
    "resnet18_dlfd": _build_resnet18_dlfd,
}


def build_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32, *,
                mean: Sequence[float] | float = 0.5, std: Sequence[float] | float = 0.5) -> Classifier:
    """Build the registered model ``name`` for ``num_classes`` classes.

    Input: float pixels ``[B, in_channels, image_size, image_size]`` in ``[0, 1]``; the model
    normalises them with the per-channel ``mean``/``std`` (default 0.5, i.e. to ``[-1, 1]``).
    Weights are initialised from torch's global RNG: seed it (or use a ``torch.random.fork_rng``)
    before building for reproducible weights.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(map(repr, MODELS))}")
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive int; got {value!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    body, pool, head = MODELS[name](num_classes, in_channels, image_size)
    return Classifier(Normalize(mean, std, in_channels), body, pool, head)


def _blocks(model: nn.Module) -> list[nn.Module]:
    if not hasattr(model, "layers"):
        raise TypeError(f"{type(model).__name__} has no layers(); build it with build_model")
    return model.layers()


def _check_k(k: int, n_blocks: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_blocks:
        raise ValueError(f"k={k!r} is out of range; allowed: 1..{n_blocks} (this model has {n_blocks} blocks)")


def last_layers(model: nn.Module, k: int) -> list[nn.Parameter]:
    """Parameters of the last ``k`` blocks of ``model.layers()`` (``k = 1``: the head only).

    Blocks are coarse: for ResNet-18 they are stem, layer1..layer4 (the four stages), head,
    so ``k = 2`` is layer4 + head, as in the CF-k / EU-k baselines of SCRUB and DLFD.
    """
    blocks = _blocks(model)
    _check_k(k, len(blocks))
    return [p for block in blocks[-k:] for p in block.parameters()]


def reinit_last_layers(model: nn.Module, k: int, seed: int) -> nn.Module:
    """Re-initialise the last ``k`` blocks in place (EU-k), drawing from ``seed``; returns ``model``.

    Every submodule with ``reset_parameters`` (conv, linear, BatchNorm, which also resets its
    running statistics) is reset under a forked RNG, so the global torch RNG is untouched.
    """
    blocks = _blocks(model)
    _check_k(k, len(blocks))
    devices = [model_device(model)] if model_device(model).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for block in blocks[-k:]:
            for module in block.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device
