"""The dry run: a profile's exact code path on a few batches, to prove it runs before a GPU does.

``-p dry_run=True`` turns it on for one chapter (:func:`enable`, called first in the kernel).
Every function keeps its code path and only its sizes shrink:

* every loaded dataset keeps a few images a class (faces: a few subjects, a few images each),
  and the images of CIFAR-10, CIFAR-100 and RAF-DB one pixel row and column in two, down to a
  side of 16 (a convolution's cost falls with the pixels; the models pool adaptively, so their
  code path is the same; CK+ and MUFAC keep their sides, which the face ResNet-18 needs) —
  :func:`shrink`;
* every training stops after :attr:`DryRun.train_steps` optimizer steps of at most
  :attr:`DryRun.batch_cap` samples, with the learning-rate schedule computed over the full
  horizon (:func:`unlearnkit.train.train_model`);
* every unlearning run makes at most one pass of at most one batch
  (:func:`unlearnkit.methods.base.passes`, ``pass_batches``), and its inner loops at most
  ``train_steps`` iterations (:func:`steps`);
* one seed, a one-point tuning grid, and each chapter's sizes cut by its ``DRY_RUN`` block;
* the model and run caches live in a temporary folder, so nothing a dry run trains is ever
  read as a real result, and every scorecard verdict is ``"dry run"``.

Datasets the profile reads that are absent from the data root (CIFAR-100, MUFAC and RAF-DB on
these machines) are written as small stand-ins *in the dataset's own on-disk format* into a
temporary data root beside links to the real ones (:func:`standin_root`), so the real loaders
run; the page names every stand-in.
"""

from __future__ import annotations

import atexit
import csv
import math
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import Change, check_range, with_changes

if TYPE_CHECKING:  # a dry run's module imports no data code until it shrinks a dataset
    from .data.core import TensorSet


@dataclass(frozen=True)
class DryRun:
    """The sizes of a dry run.

    per_class: images (or texts) kept a class in every part of a loaded dataset; a class with
    fewer keeps all. test_per_class: the same for an image dataset's test part (every run scores
    its test set: whole ResNet-18 parts were most of chapter 4's dry run). subjects: face
    subjects kept (the lowest ids); per_subject: face images kept a subject. image_stride: an
    image of CIFAR-10, CIFAR-100 or RAF-DB keeps every ``image_stride``-th pixel row and column
    while its side stays at least :data:`MIN_SIDE`. train_steps: optimizer steps of a training.
    max_batches: batches of one unlearning pass. batch_cap: samples a training or unlearning batch keeps (evaluation sees
    every sample). cache / data: the temporary cache
    root and data root (set by :func:`enable`). standins: the datasets written as stand-ins.
    """

    per_class: int = 12
    test_per_class: int = 4
    subjects: int = 24
    per_subject: int = 3
    image_stride: int = 2
    train_steps: int = 2
    max_batches: int = 1
    batch_cap: int = 8
    cache: str = ""
    data: str = ""
    standins: tuple[str, ...] = field(default=())

    def __post_init__(self):
        for name in ("per_class", "test_per_class", "subjects", "per_subject", "image_stride", "train_steps",
                     "max_batches", "batch_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"DryRun.{name} must be an int >= 1; got {value!r}")
            check_range(f"DryRun.{name}", value, 1)


_ACTIVE: DryRun | None = None


def active() -> DryRun | None:
    """The dry run of this process, or None (a real run)."""
    return _ACTIVE


def enable(on: bool = True, *, root=None, settings: DryRun | None = None) -> DryRun | None:
    """Turn the dry run on (or off with ``on=False``) for this process; returns it.

    Makes a temporary cache root and a temporary data root (:func:`standin_root` over ``root``)
    and removes both at exit. A ``bool`` is required, so ``"False"`` from a command line is an
    error rather than a dry run.
    """
    global _ACTIVE
    from .data.splits import set_load_filter
    from .runtime import override_roots

    if not isinstance(on, bool):
        raise TypeError(f"dry_run must be True or False; got {on!r}")
    _ACTIVE = None
    override_roots()
    set_load_filter(None)
    if not on:
        return None
    base = Path(tempfile.mkdtemp(prefix="unlearnkit-dry-run-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    data, written = standin_root(root, base / "data")
    _ACTIVE = replace(settings or DryRun(), cache=str(base / "cache"), data=str(data), standins=tuple(written))
    override_roots(data=_ACTIVE.data, cache=_ACTIVE.cache)
    set_load_filter(shrink)
    return _ACTIVE


def describe(run: DryRun) -> str:
    """One paragraph for the page: what the dry run cut and which stand-ins it wrote."""
    standins = ", ".join(run.standins) or "none"
    return (f"**Dry run.** This page ran the profile's code path with every dataset cut to "
            f"{run.per_class} samples a class ({run.test_per_class} in a test set; {run.subjects} face subjects of "
            f"{run.per_subject} images), CIFAR's and RAF-DB's images to one pixel row and column in "
            f"{run.image_stride} (down to a side of {MIN_SIDE}), every training to "
            f"{run.train_steps} steps, every unlearning run to {run.max_batches} batch, one seed and a one-point "
            f"tuning grid. Its numbers prove that the code runs, nothing else; every verdict reads "
            f"\"dry run\". Stand-ins written in the datasets' own formats: {standins}.")


def apply(block: dict[str, Change], current: Any) -> Any:
    """``current`` (a dict or dataclass) with the lines of a ``DRY_RUN`` block that change it,
    in a dry run; ``current`` itself in a real run."""
    if _ACTIVE is None:
        return current
    get = current.get if isinstance(current, dict) else lambda name: getattr(current, name)
    return with_changes(current, {name: line for name, line in block.items() if get(name) != line.value})


# ---------------------------------------------------------------------------- shrinking data

def _per_label(labels: torch.Tensor, keep: int) -> torch.Tensor:
    """Sorted indices of the first ``keep`` rows of every label (deterministic)."""
    picked = [torch.nonzero(labels == value).squeeze(1)[:keep] for value in torch.unique(labels)]
    return torch.cat(picked).sort().values


MIN_SIDE = 16
"""The smallest image side :func:`shrink` leaves (CIFAR's ResNet-18 and small CNN downsample 8×)."""


def _coarser(images: TensorSet) -> TensorSet:
    """``images`` with every :attr:`DryRun.image_stride`-th pixel row and column, while the side
    stays at least :data:`MIN_SIDE`."""
    x, stride = images.x, _ACTIVE.image_stride
    if min(x.shape[-2:]) // stride < MIN_SIDE:
        return images
    return replace(images, x=x[..., ::stride, ::stride].contiguous())


def shrink(data: Any) -> Any:
    """``data`` (ImageData, FaceData, TextData, MufacData) cut to the dry run's sizes; unchanged
    in a real run. Images keep :attr:`DryRun.per_class` a class per part (the test part
    :attr:`DryRun.test_per_class`), faces the first
    :attr:`DryRun.subjects` subjects with :attr:`DryRun.per_subject` images each (one a
    sequence, so they differ in expression), texts ``per_class`` a class."""
    if _ACTIVE is None:
        return data
    from .data.loaders import FaceData, ImageData, TextData

    if isinstance(data, TextData):
        index = _per_label(data.y, _ACTIVE.per_class * 4).tolist()
        return replace(data, texts=tuple(data.texts[i] for i in index), y=data.y[index])
    if isinstance(data, FaceData):
        first = _per_label(data.sequence, 1)  # a frame per sequence: a subject's images differ in label
        first = first[torch.isin(data.images.group[first], torch.unique(data.images.group)[:_ACTIVE.subjects])]
        index = first[_per_label(data.images.group[first], _ACTIVE.per_subject)]
        return replace(data, images=data.images.subset(index), sequence=data.sequence[index])
    parts = {name: getattr(data, name) for name in ("train", "val", "test") if hasattr(data, name)}
    keep = {"train": _ACTIVE.per_class, "val": _ACTIVE.per_class, "test": _ACTIVE.test_per_class}
    coarser = _coarser if isinstance(data, ImageData) else (lambda part: part)  # CIFAR-10, CIFAR-100, RAF-DB
    return replace(data, **{name: coarser(part.subset(_per_label(part.y, keep[name])))
                            for name, part in parts.items() if part is not None})


def train_steps(total: int) -> int:
    """Optimizer steps a training of ``total`` steps makes: all of them in a real run."""
    return total if _ACTIVE is None else min(total, _ACTIVE.train_steps)


def steps(count: int) -> int:
    """Iterations of a method's inner loop (UNSIR's noise steps, DLFD's perturbation steps):
    all of them in a real run, at most :attr:`DryRun.train_steps` in a dry run."""
    return count if _ACTIVE is None else min(count, _ACTIVE.train_steps)


def cap_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: whole in a real run, its first :attr:`DryRun.batch_cap` rows in a dry run."""
    return (x, y) if _ACTIVE is None else (x[:_ACTIVE.batch_cap], y[:_ACTIVE.batch_cap])


def cap_count(count: int) -> int:
    """Samples a method generates for one batch (UNSIR's noise a class): all of them in a real
    run, at most :attr:`DryRun.batch_cap` in a dry run."""
    return count if _ACTIVE is None else min(count, _ACTIVE.batch_cap)


def unlearning_batches(count: int) -> int:
    """Batches of one unlearning pass of ``count`` batches: all of them in a real run."""
    return count if _ACTIVE is None else min(count, _ACTIVE.max_batches)


def unlearning_passes(passes: list[float]) -> list[float]:
    """Passes of an unlearning run: all of them in a real run, the first one in a dry run."""
    return passes if _ACTIVE is None else passes[:1]


# ---------------------------------------------------------------------------- stand-in datasets

def standin_root(root, folder: Path) -> tuple[Path, list[str]]:
    """A data root at ``folder``: a link to every entry of the real data root ``root`` (it may
    be absent), and a small stand-in for each of CIFAR-100, MUFAC and RAF-DB that is missing.
    Returns ``(folder, names of the stand-ins written)``."""
    from .data.faces import MUFAC_FOLDER, RAF_FOLDER
    from .runtime import data_root

    real = data_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    if real.is_dir():
        for entry in real.iterdir():
            (folder / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    written = []
    for name, path, write in (("CIFAR-100", "cifar-100-python", write_cifar100),
                              ("MUFAC", MUFAC_FOLDER, write_mufac), ("RAF-DB", RAF_FOLDER, write_rafdb)):
        if not (folder / path).exists():
            write(folder)
            written.append(name)
    return folder, written


STANDIN_FINE = tuple("rocket" if i == 69 else f"fine_{i:02d}" for i in range(100))
STANDIN_COARSE = tuple("vehicles_2" if i == 19 else f"coarse_{i:02d}" for i in range(20))


def write_cifar100(root: Path, per_class: int = 4, forgotten: int = 12, seed: int = 0) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` in CIFAR-100's python pickle format: random
    32×32 images, ``per_class`` a fine class (``forgotten`` of "rocket", the sub-class the book
    forgets, so its attacks have samples), fine class ``i`` in superclass ``i % 20`` except
    "rocket" (69) in "vehicles_2" (19), as in the real set."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = np.repeat(np.arange(100), [forgotten if i == 69 else per_class for i in range(100)])
    coarse = np.where(fine == 69, 19, fine % 20)
    for part in ("train", "test"):
        entry = {"data": rng.integers(0, 256, size=(len(fine), 3072), dtype=np.uint8),
                 "fine_labels": fine.tolist(), "coarse_labels": coarse.tolist()}
        (folder / part).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": list(STANDIN_FINE),
                                                "coarse_label_names": list(STANDIN_COARSE)}))
    return folder


def _write_image(path: Path, rng: np.random.Generator, size: int = 16, channels: int = 3) -> None:
    from PIL import Image

    pixels = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).save(path)


def write_mufac(root: Path, families: int = 12, per_family: int = 3, seed: int = 0) -> Path:
    """MUFAC's folder (CSV ``family_id, age_class, image_path`` and an image folder per part)
    with random 16×16 images (the loader resizes them); ``families`` families per part."""
    from .data.faces import MUFAC_AGE_CLASSES, MUFAC_FOLDER, MUFAC_PARTS

    rng = np.random.default_rng(seed)
    folder = root / MUFAC_FOLDER
    for p, (part, (csv_name, image_dir)) in enumerate(MUFAC_PARTS.items()):
        (folder / image_dir).mkdir(parents=True)
        rows = []
        for f in range(families):
            for k in range(per_family):
                name = f"F{p}{f:03d}_{k}.png"
                _write_image(folder / image_dir / name, rng)
                rows.append({"family_id": f"F{p}{f:03d}", "age_class": MUFAC_AGE_CLASSES[(f + k) % 8],
                             "image_path": name})
        with open(folder / csv_name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["family_id", "age_class", "image_path"])
            writer.writeheader()
            writer.writerows(rows)
    return folder


def write_rafdb(root: Path, per_class: int = 4, seed: int = 0) -> Path:
    """RAF-DB's class-folder layout (``RAF_DB/{train,test}/{1..7}/*.jpg``) with random 16×16
    grayscale images, ``per_class`` a class per part."""
    from .data.faces import RAF_FOLDER

    rng = np.random.default_rng(seed)
    folder = root / RAF_FOLDER
    for part in ("train", "test"):
        for label in range(1, 8):
            (folder / part / str(label)).mkdir(parents=True)
            for k in range(per_class):
                _write_image(folder / part / str(label) / f"{part}_{label}_{k}.jpg", rng, channels=1)
    return folder


def mufac_forget_count(train_size: int, count: int) -> int:
    """MUFAC's forget count (the first ``count`` training rows), a third of a dry run's rows."""
    return count if _ACTIVE is None else max(1, min(count, math.ceil(train_size / 3)))
