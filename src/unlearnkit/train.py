"""One training loop, batch-wise augmentation, prediction, and a trained-model cache.

Images arrive as ``uint8 [N, C, H, W]`` (:class:`~unlearnkit.data.core.TensorSet`) and become
float pixels in ``[0, 1]`` batch by batch (:func:`to_input`); the model normalises them itself.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import time
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import __version__, dryrun
from .config import check_choice, check_range, config_hash
from .data.core import TensorSet
from .models import MODELS
from .runtime import atomic_torch_save, atomic_write_text, cache_root, generator, writable_folder

SCHEDULES = ("onecycle", "cosine", "multistep", "constant")
ONECYCLE_WARMUP = 0.25  # fraction of the steps spent warming up linearly (then linear decay to 0)


@dataclass(frozen=True)
class TrainConfig:
    """How to train a model (SGD with momentum, a learning-rate schedule, optional augmentation).

    schedule:   ``onecycle`` (linear 0 → lr over the first 25 % of steps, then linear to 0),
                ``cosine`` (lr → 0), ``multistep`` (× ``gamma`` at each epoch in ``milestones``),
                ``constant``; all applied per step.
    augment:    random crop (zero padding 4) and horizontal flip, per image, batch-wise.
    seed:       drives shuffling, augmentation and dropout (weight init happens in the builder).
    """

    model: str = "small_cnn"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    augment: bool = True
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_range("epochs", self.epochs, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("lr", self.lr, 0, low_open=True)
        check_range("momentum", self.momentum, 0, 1, high_open=True)
        check_range("weight_decay", self.weight_decay, 0)
        check_range("gamma", self.gamma, 0, 1, low_open=True)
        check_range("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        check_range("seed", self.seed, 0)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        for m in self.milestones:
            check_range("milestone", m, 1, self.epochs - 1)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones={self.milestones!r} must be strictly increasing epochs")
        if self.schedule == "multistep" and not self.milestones:
            raise ValueError("schedule 'multistep' needs milestones (epochs at which lr is multiplied by gamma)")


def lr_factor(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of ``cfg.lr`` at optimisation step ``step`` (0-based) of ``total_steps``."""
    t = step / total_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if cfg.schedule == "multistep":
        epoch = t * cfg.epochs
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    warm = ONECYCLE_WARMUP
    return min(1.0, (step + 1) / (warm * total_steps)) if t < warm else (1.0 - t) / (1.0 - warm)


def to_input(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``uint8`` images ``[B, C, H, W]`` → float pixels in ``[0, 1]`` on ``device``.

    Float inputs (features, already-scaled pixels) are moved and passed through unchanged.
    """
    x = x.to(device, non_blocking=True)
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of every image in ``x [B, C, H, W]``.

    Works on any dtype (``uint8`` or float) and draws every offset and flip from ``gen``.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]          # [B, 1, H, 1]
    cols = dx[:, None] + torch.arange(w)                                # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # [B, 1, 1, W]
    batch = torch.arange(b)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channel, rows, cols]


@contextmanager
def channels_last_on_cpu(model: nn.Module, device: torch.device | str) -> Iterator[nn.Module]:
    """Inside the block, keep 4-D weights channels-last when ``device`` is the CPU.

    oneDNN convolutions run about 1.5x faster per training step and per prediction in that
    layout (measured on this project's 2-core machines). The default layout is restored on exit,
    so parameters stay flat-viewable (``p.view(-1)``, ``parameters_to_vector``).
    """
    if torch.device(device).type != "cpu":
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def train_model(model: nn.Module, data: TensorSet, cfg: TrainConfig, *, device: torch.device | str,
                progress: bool = True, desc: str = "train") -> nn.Module:
    """Train ``model`` on ``data`` with SGD (momentum, weight decay) and the schedule of ``cfg``.

    Minimises the (label-smoothed) cross-entropy ``CE(model(aug(x)), y)`` over ``cfg.epochs``
    shuffled passes. Every random draw (order, crops, flips, dropout) comes from ``cfg.seed``;
    the global RNG state is restored afterwards. Returns the model in ``eval()`` mode.
    """
    if len(data) == 0:
        raise ValueError("cannot train on an empty data set")
    if cfg.augment and data.x.ndim != 4:
        raise ValueError(f"augment=True needs images [N, C, H, W]; got x of shape {tuple(data.x.shape)}")
    device = torch.device(device)
    model.to(device)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    limit = dryrun.train_steps(total)  # all steps, except in a dry run (the schedule keeps its horizon)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg, step, total))
    gen = generator(cfg.seed)
    with torch.random.fork_rng(devices=_rng_devices(device)), channels_last_on_cpu(model, device):
        torch.manual_seed(cfg.seed)  # dropout draws from the global RNG; fork keeps it local
        model.train()
        with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
            done = 0
            for epoch in range(cfg.epochs):
                if done >= limit:
                    break
                loss_sum, correct = 0.0, 0
                for x, y in itertools.islice(data.batches(cfg.batch_size, shuffle=True, generator=gen), limit - done):
                    x, y = dryrun.cap_batch(x, y)
                    if cfg.augment:
                        x = augment_batch(x, gen)
                    x, y = to_input(x, device), y.to(device)
                    logits = model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    loss_sum += loss.item() * len(y)
                    correct += (logits.argmax(1) == y).sum().item()
                    done += 1
                    bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / len(data):.3f}",
                                acc=f"{correct / len(data):.3f}")
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, data_or_x: TensorSet | torch.Tensor, *, device: torch.device | str,
            batch_size: int = 512) -> torch.Tensor:
    """Logits ``[N, num_classes]`` (float32, on the CPU) of ``model`` in eval mode, no grad.

    ``data_or_x``: a :class:`TensorSet` or images ``[N, C, H, W]`` (uint8 or float in ``[0, 1]``).
    The model's train/eval mode is restored afterwards.
    """
    x = data_or_x.x if isinstance(data_or_x, TensorSet) else data_or_x
    was_training = model.training
    model.eval()
    with channels_last_on_cpu(model, device):
        out = [model(to_input(x[i:i + batch_size], device)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


# --- trained-model cache -------------------------------------------------------------------

@torch.no_grad()
def penultimate_features(model: nn.Module, data: TensorSet, *, device: torch.device | str, batch_size: int = 512,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Penultimate features ``model.features(x)`` ``[N, D]`` of the images of ``data``, in eval
    mode, on the CPU in ``dtype``."""
    model.eval()
    return torch.cat([model.features(to_input(data.x[i:i + batch_size], device)).to(dtype).cpu()
                      for i in range(0, len(data), batch_size)])


def _json_ready(key: dict) -> dict:
    if not isinstance(key, dict):
        raise TypeError(f"cache key must be a dict (use config.as_dict for dataclasses); got {type(key).__name__}")
    try:
        return json.loads(json.dumps(key, sort_keys=True))
    except TypeError as err:
        raise TypeError(f"cache key must be JSON-serialisable (str/int/float/bool/None/list/dict): {err}") from None


def cache_entry_path(key: dict, cache_dir: str | Path | None = None) -> Path:
    """Where the model trained under ``key`` is (or would be) stored."""
    digest = config_hash({"key": _json_ready(key), "unlearnkit": __version__})
    return cache_root(cache_dir) / "models" / f"{digest}.pt"


def load_entry(path: Path, key: dict, *, what: str = "model cache entry", redo: str = "retraining") -> dict | None:
    """The stored ``{"state_dict", "meta"}`` at ``path`` if it is a readable entry for ``key``
    (read with ``weights_only=True``); else None, with a warning naming ``what`` and ``redo``."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, pickle.UnpicklingError) as err:
        warnings.warn(f"unreadable {what} {path} ({type(err).__name__}: {err}); {redo}")
        return None
    if not isinstance(entry, dict) or entry.get("meta", {}).get("key") != key:
        warnings.warn(f"{what} {path} was written for another key (hash collision?); {redo}")
        return None
    return entry


def _write_sidecar(sidecar: Path, meta: dict, *, required: bool) -> None:
    """Write the entry's human-readable meta; on a hit, only restore one a kill left unwritten.

    A restore is best effort, so a read-only shared cache keeps serving its entries.
    """
    if not required and sidecar.is_file():
        return
    try:
        atomic_write_text(sidecar, json.dumps(meta, indent=2, sort_keys=True))
    except OSError:
        if required:
            raise


_KEYS_ONLY: ContextVar[dict | None] = ContextVar("unlearnkit_keys_only", default=None)


@contextmanager
def keys_only(train: str | None = None, record: list | None = None) -> Iterator[None]:
    """Within this block :func:`cached_train` trains at most one entry: the one whose hash is
    ``train``. Every other missing entry stands in as the untrained model (``info["pending"]``);
    every entry asked for is appended to ``record`` as ``{"hash", "path", "key", "hit"}`` (hit: it
    was cached when asked for). So a builder of models runs
    unchanged to learn the cache keys it needs (:mod:`unlearnkit.experiments.work` plans with it).
    Cached entries load as usual."""
    token = _KEYS_ONLY.set({"train": train, "record": record})
    try:
        yield
    finally:
        _KEYS_ONLY.reset(token)


def keys_only_active() -> bool:
    """True inside :func:`keys_only` (callers skip timing and evaluating stand-in models)."""
    return _KEYS_ONLY.get() is not None


def cached_train(key: dict, build: Callable[[], nn.Module], fit: Callable[[nn.Module], nn.Module], *,
                 cache_dir: str | Path | None = None,
                 device: torch.device | str | None = None) -> tuple[nn.Module, dict]:
    """Return ``fit(build())``, trained once per ``key`` and then loaded from disk.

    key:   the full configuration (model, data, split and training config) as a JSON-ready
           dict; its hash (with the package version) names the entry
           ``<cache_root>/models/<hash>.pt``.
    build: makes the untrained model (same architecture on every call).
    fit:   trains it and returns the trained model.
    The entry holds the state dict and ``meta = {"key", "train_seconds"}``; it is written
    atomically (temporary file, then rename), so an interrupted run leaves no entry, and read
    with ``torch.load(weights_only=True)``; ``<hash>.json`` beside it repeats ``meta`` for people
    (written after the entry, restored on a hit if a kill came in between).
    ``info = {"hit", "train_seconds", "path"}``:
    ``train_seconds`` is the original training time, also on a hit. The model is returned in
    ``eval()`` mode, on ``device`` when given.
    """
    key = _json_ready(key)
    path = cache_entry_path(key, cache_dir)
    entry = load_entry(path, key)
    mode = _KEYS_ONLY.get()
    if mode is not None and mode["record"] is not None:
        mode["record"].append({"hash": path.stem, "path": str(path), "key": key, "hit": entry is not None})
    if entry is not None:
        model = build()
        model.load_state_dict(entry["state_dict"])
        hit, seconds = True, float(entry["meta"]["train_seconds"])
    elif mode is not None and mode["train"] != path.stem:
        model = build().to(device) if device is not None else build()
        return model.eval(), {"hit": False, "train_seconds": math.nan, "path": str(path), "pending": True}
    else:
        # fail now, not after hours of training
        writable_folder(path.parent, "model cache folder", " (cache_dir=, $UNLEARNKIT_CACHE)")
        start = time.perf_counter()
        model = fit(build())
        seconds = time.perf_counter() - start
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        meta = {"key": key, "train_seconds": seconds}
        atomic_torch_save({"state_dict": state, "meta": meta}, path)  # the entry exists once renamed
        hit = False
    _write_sidecar(path.with_suffix(".json"), {"key": key, "train_seconds": seconds}, required=not hit)
    if device is not None:
        model.to(device)
    return model.eval(), {"hit": hit, "train_seconds": seconds, "path": str(path)}
