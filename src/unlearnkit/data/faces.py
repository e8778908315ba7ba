"""Folder loaders for DLFD's two face datasets, MUFAC and RAF-DB, and their released splits.

Neither set can be downloaded automatically (MUFAC is distributed by its authors through a
SharePoint link, RAF-DB on request to its authors); a user who has them points the data root
at them and runs chapter 2 at the ``paper`` profile.

**MUFAC** (Machine Unlearning for Facial Age Classifier; layout as read by DLFD's
``MUFAC_loader.py`` and the MUFAC README of GitHub ``ndb796/MachineUnlearning``)::

    <root>/custom_korean_family_dataset_resolution_128/
        custom_train_dataset.csv   train_images/   (families F0001-F0299, 10,025 images)
        custom_val_dataset.csv     val_images/     (families F0801-F0850,  1,539 images)
        custom_test_dataset.csv    test_images/    (families F0851-F0900,  1,504 images)

Each CSV has (at least) the columns ``family_id``, ``person_id``, ``age_class`` (``a``..``h``,
eight age groups) and ``image_path`` (a file name inside the matching ``*_images`` folder,
e.g. ``F0001_AGE_D_18_a1.jpg``). Confirmed: the column names and folder names (both read by
the released code). Not confirmed: the column order and the exact spelling of ``family_id``
values; the family number is parsed from the digits of ``family_id`` (or, failing that, of
the file name).

**RAF-DB** (basic, 7 emotions). Two layouts are accepted:

1. DLFD's ``RAF_loader.py`` layout (``torchvision.datasets.ImageFolder``)::

       <root>/RAF_DB/train/<class>/*.jpg    <root>/RAF_DB/test/<class>/*.jpg

   Class order is the sorted folder names, as ``ImageFolder`` does. Not confirmed: the folder
   names inside the authors' ``RAF_DB.zip``; folders named ``1``..``7`` are read as RAF-DB's
   label numbers (1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral).
2. The official release::

       <root>/RAF_DB/basic/EmoLabel/list_patition_label.txt   lines "train_00001.jpg 5"
       <root>/RAF_DB/basic/Image/aligned/train_00001_aligned.jpg

   (the file name is ``list_patition_label.txt``, misspelt as in the release).

Images come back as uint8 ``[N, C, size, size]`` (resized with PIL, bilinear).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unlearnkit.config import check_choice, check_range
from unlearnkit.data.core import Split, TensorSet
from unlearnkit.data.loaders import ImageData, read_csv_rows
from unlearnkit.runtime import data_root, generator

MUFAC_FOLDER = "custom_korean_family_dataset_resolution_128"
MUFAC_PARTS = {"train": ("custom_train_dataset.csv", "train_images"),
               "val": ("custom_val_dataset.csv", "val_images"),
               "test": ("custom_test_dataset.csv", "test_images")}
MUFAC_COLUMNS = ("family_id", "age_class", "image_path")
MUFAC_AGE_CLASSES = ("a", "b", "c", "d", "e", "f", "g", "h")
MUFAC_AGE_NAMES = ("0-6", "7-12", "13-19", "20-30", "31-45", "46-55", "56-66", "67-80")
MUFAC_FORGET_COUNT = 1500

RAF_FOLDER = "RAF_DB"
RAF_EMOTIONS = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
RAF_LABEL_FILE = Path("basic") / "EmoLabel" / "list_patition_label.txt"
RAF_ALIGNED = Path("basic") / "Image" / "aligned"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
COLOR_MODES = ("RGB", "L")


@dataclass(frozen=True)
class MufacData:
    """MUFAC's three fixed parts. ``group`` holds the family number (``F0001`` → 1): families
    never cross parts. ``y`` is the age group index (``a`` → 0, ..., ``h`` → 7)."""

    train: TensorSet
    val: TensorSet
    test: TensorSet
    classes: tuple[str, ...]
    source: str


def read_image(path: Path, size: int, mode: str = "RGB") -> torch.Tensor:
    """One image as uint8 ``[C, size, size]`` (C = 3 for ``"RGB"``, 1 for ``"L"``)."""
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            pixels = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot decode image file {path}: {err} (corrupt or truncated?)") from None
    tensor = torch.from_numpy(pixels.copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _stack(paths: list[Path], size: int, mode: str) -> torch.Tensor:
    """The images at ``paths`` as uint8 ``[N, C, size, size]``; a listed file that is absent
    raises before anything is decoded."""
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{len(absent)} listed image file(s) are missing, e.g. {absent[0]}; "
                                "the dataset copy is incomplete: unpack it again")
    channels = 3 if mode == "RGB" else 1
    if not paths:
        return torch.empty(0, channels, size, size, dtype=torch.uint8)
    return torch.stack([read_image(p, size, mode) for p in paths])


def _check_image_args(size: int, mode: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ValueError(f"size must be an int >= 8; got {size!r}")
    check_choice("color mode", mode, COLOR_MODES)


def _missing(name: str, path: Path, how: str) -> FileNotFoundError:
    return FileNotFoundError(f"{name} not found at {path}. {how}; set the data root with `root` "
                             "or the UNLEARNKIT_DATA environment variable.")


# --------------------------------------------------------------------------- MUFAC


def _family_number(row: dict, path: Path) -> int:
    for text in (row["family_id"], Path(row["image_path"]).name):
        digits = re.search(r"\d+", str(text))
        if digits:
            return int(digits[0])
    raise ValueError(f"{path}: cannot read a family number from family_id={row['family_id']!r}")


def _mufac_part(folder: Path, csv_name: str, image_dir: str, size: int, mode: str) -> TensorSet:
    path = folder / csv_name
    if not path.is_file():
        raise _missing("MUFAC metadata", path, "download custom_korean_family_dataset_resolution_128.zip "
                       "(linked from GitHub ndb796/MachineUnlearning) and unzip it under the data root")
    rows = read_csv_rows(path, MUFAC_COLUMNS)
    bad = next((i for i, r in enumerate(rows) if r["age_class"] not in MUFAC_AGE_CLASSES), None)
    if bad is not None:
        raise ValueError(f"{path}, data row {bad + 1}: age_class {rows[bad]['age_class']!r}; "
                         f"allowed: {', '.join(MUFAC_AGE_CLASSES)}")
    x = _stack([folder / image_dir / r["image_path"] for r in rows], size, mode)
    y = torch.tensor([MUFAC_AGE_CLASSES.index(r["age_class"]) for r in rows], dtype=torch.long)
    group = torch.tensor([_family_number(r, path) for r in rows], dtype=torch.long)
    return TensorSet(x, y, group)


def load_mufac(root=None, *, size: int = 128, mode: str = "RGB") -> MufacData:
    """MUFAC's train / val / test parts from ``<root>/custom_korean_family_dataset_resolution_128``.

    Rows keep the CSV order (the released split forgets the *first* 1,500 training rows).
    size: side of the square images (the released code uses 128, the stored resolution).
    """
    _check_image_args(size, mode)
    folder = data_root(root) / MUFAC_FOLDER
    parts = {name: _mufac_part(folder, csv_name, image_dir, size, mode)
             for name, (csv_name, image_dir) in MUFAC_PARTS.items()}
    classes = tuple(f"age {name}" for name in MUFAC_AGE_NAMES)
    return MufacData(parts["train"], parts["val"], parts["test"], classes, f"MUFAC folder at {folder}")


def mufac_split(data: MufacData, forget_count: int = MUFAC_FORGET_COUNT) -> Split:
    """DLFD's MUFAC split: forget = the first ``forget_count`` training rows, retain = the rest.

    As in the released notebooks, ``val`` (1,539 images) drives DLFD's model selection and the
    1,504-image ``test`` part is both the reported test set and the MIA's non-member
    ("unseen") set.
    """
    if not isinstance(forget_count, int) or not 0 < forget_count < len(data.train):
        raise ValueError(f"forget_count must be an int in 1..{len(data.train) - 1}; got {forget_count!r}")
    index = torch.arange(len(data.train))
    info = {"dataset": "mufac", "source": data.source, "scenario": "first rows (families)",
            "forget_count": forget_count}
    return Split(retain=data.train.subset(index[forget_count:]), forget=data.train.subset(index[:forget_count]),
                 test=data.test, num_classes=len(data.classes), classes=data.classes, val=data.val,
                 unseen=data.test, info=info)


# --------------------------------------------------------------------------- RAF-DB


def _class_folder_files(folder: Path) -> tuple[list[tuple[Path, int]], tuple[str, ...]]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"no class folders in {folder}")
    files = [(p, label) for label, name in enumerate(names) for p in sorted((folder / name).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES]
    return files, tuple(names)


def _raf_class_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Folder names ``1``..``7`` become RAF-DB's emotion names; other names are kept."""
    if names == tuple(str(i) for i in range(1, len(RAF_EMOTIONS) + 1)):
        return RAF_EMOTIONS
    return names


def _rafdb_from_folders(folder: Path, size: int, mode: str) -> ImageData:
    (train_files, names), (test_files, test_names) = (_class_folder_files(folder / part) for part in ("train", "test"))
    if names != test_names:
        raise ValueError(f"class folders differ: {folder / 'train'} has {list(names)}, "
                         f"{folder / 'test'} has {list(test_names)}")
    parts = [TensorSet(_stack([p for p, _ in files], size, mode),
                       torch.tensor([label for _, label in files], dtype=torch.long))
             for files in (train_files, test_files)]
    return ImageData(parts[0], parts[1], _raf_class_names(names), f"RAF-DB image folders at {folder}")


def _rafdb_from_label_file(folder: Path, size: int, mode: str) -> ImageData:
    rows = {"train": [], "test": []}
    for number, line in enumerate((folder / RAF_LABEL_FILE).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        part = fields[0].split("_")[0]
        if len(fields) != 2 or part not in rows or fields[1] not in {str(i) for i in range(1, 8)}:
            raise ValueError(f"{folder / RAF_LABEL_FILE}, line {number}: expected '<train|test>_NNNNN.jpg "
                             f"<label 1-7>'; got {line[:60]!r}")
        aligned = folder / RAF_ALIGNED / f"{Path(fields[0]).stem}_aligned.jpg"
        rows[part].append((aligned, int(fields[1]) - 1))
    parts = [TensorSet(_stack([p for p, _ in rows[name]], size, mode),
                       torch.tensor([label for _, label in rows[name]], dtype=torch.long))
             for name in ("train", "test")]
    return ImageData(parts[0], parts[1], RAF_EMOTIONS, f"RAF-DB official release at {folder}")


def load_rafdb(root=None, *, size: int = 128, mode: str = "L") -> ImageData:
    """RAF-DB basic from ``<root>/RAF_DB`` in either layout of the module docstring.

    mode ``"L"`` (default) reads grayscale, as the released code does before copying the
    gray channel three times; ``"RGB"`` keeps colour. size: the released code resizes to 128.
    """
    _check_image_args(size, mode)
    folder = data_root(root) / RAF_FOLDER
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return _rafdb_from_folders(folder, size, mode)
    if (folder / RAF_LABEL_FILE).is_file():
        return _rafdb_from_label_file(folder, size, mode)
    raise _missing("RAF-DB", folder, f"expected {folder}/train/<class>/ and {folder}/test/<class>/, "
                   f"or {folder / RAF_LABEL_FILE}; RAF-DB is available on request from its authors")


def rafdb_split(data: ImageData, *, val_fraction: float = 0.1, retain_fraction: float = 0.7,
                seed: int = 42) -> Split:
    """DLFD's RAF-DB split: a seeded permutation of the training part gives ``val`` (the first
    ``val_fraction``), then ``retain`` (``retain_fraction`` of the rest) and ``forget`` (the
    remainder, about 30%: random forgetting, RAF-DB has no identities); the official test part
    is ``test`` and, as in the released notebooks, also the MIA's non-member set.

    The released code shuffles with Python's ``random.seed(42)``; this uses a torch generator,
    so the same seed picks different images (the proportions are the same).
    """
    check_range("val_fraction", val_fraction, 0, 1, high_open=True)
    check_range("retain_fraction", retain_fraction, 0, 1, low_open=True, high_open=True)
    order = torch.randperm(len(data.train), generator=generator(seed))
    num_val = int(len(order) * val_fraction)
    num_retain = int((len(order) - num_val) * retain_fraction)
    val, retain, forget = order[:num_val], order[num_val:num_val + num_retain], order[num_val + num_retain:]
    if len(forget) == 0:
        raise ValueError(f"retain_fraction={retain_fraction} leaves no forget samples out of {len(order)}")
    info = {"dataset": "rafdb", "source": data.source, "scenario": "random_subset", "seed": seed,
            "val_fraction": val_fraction, "retain_fraction": retain_fraction}
    return Split(retain=data.train.subset(retain), forget=data.train.subset(forget), test=data.test,
                 num_classes=len(data.classes), classes=data.classes,
                 val=data.train.subset(val) if num_val else None, unseen=data.test, info=info)
