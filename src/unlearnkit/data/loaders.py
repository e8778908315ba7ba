"""Real dataset loaders: CIFAR-10, CIFAR-100, CK+48 faces, SMS Spam and Davidson hate speech.

Every loader takes ``root=None`` (resolved by :func:`unlearnkit.runtime.data_root`: the
argument, else ``$UNLEARNKIT_DATA``, else ``./data``) and returns a frozen dataclass whose
``source`` says which copy was read. Images come back as ``uint8 [N, C, H, W]``, decoded once;
the CIFAR-10 JPEG copy is decoded into a tensor cache under ``root/.unlearnkit-cache``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from unlearnkit.data.core import TensorSet
from unlearnkit.runtime import atomic_torch_save, data_root

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CACHE_DIR = ".unlearnkit-cache"
DATA_HINT = ("set the data root with the `root` argument or the UNLEARNKIT_DATA environment "
             "variable (offline copies: `bash ../shared/data/unpack.sh DEST`)")


@dataclass(frozen=True)
class ImageData:
    """A labelled image dataset with a fixed train/test division.

    train, test: ``TensorSet`` with ``x`` uint8 ``[N, C, H, W]``, ``y`` int64 ``[N]`` and, where
                 the dataset has one, ``group`` int64 ``[N]`` (CIFAR-100: coarse superclass).
    classes:     names of the labels in ``y``.
    group_names: names of the ids in ``group`` (CIFAR-100: the 20 superclasses), else ``()``.
    source:      human-readable provenance (which copy, which path).
    """

    train: TensorSet
    test: TensorSet
    classes: tuple[str, ...]
    source: str
    group_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaceData:
    """A face dataset without a fixed train/test division (split it by subject).

    images:   ``TensorSet`` with ``x`` uint8 ``[N, 1, H, W]``, ``y`` the expression index and
              ``group`` the subject id (CK+: ``S005`` → 5).
    sequence: int64 ``[N]``, one id per (subject, sequence) pair: frames of a sequence are
              near-duplicates.
    classes:  expression names, in label order.
    """

    images: TensorSet
    sequence: torch.Tensor
    classes: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class TextData:
    """A labelled text corpus: ``texts[i]`` has label ``y[i]`` (int64 ``[N]``)."""

    texts: tuple[str, ...]
    y: torch.Tensor
    classes: tuple[str, ...]
    source: str

    def __post_init__(self):
        if len(self.texts) != len(self.y):
            raise ValueError(f"{len(self.texts)} texts but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.texts)


def _missing(name: str, looked_at: list[Path], how: str) -> FileNotFoundError:
    paths = ", ".join(str(p) for p in looked_at)
    return FileNotFoundError(f"{name} not found; looked at: {paths}. {how}; {DATA_HINT}.")


# --------------------------------------------------------------------------- CIFAR-10


def load_cifar10(root=None, download: bool = False) -> ImageData:
    """CIFAR-10 as uint8 ``[N, 3, 32, 32]``: 50,000 train / 10,000 test, 10 classes.

    Reads, in order: the JPEG image-folder copy ``root/cifar10-jpeg/{train,test}/<class>/*.jpg``
    (decoded once, then served from a tensor cache); torchvision's pickle format
    ``root/cifar-10-batches-py`` (downloaded there when ``download=True``).
    """
    root = data_root(root)
    folder = root / "cifar10-jpeg"
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return _cifar10_from_jpeg_folder(folder, root / CACHE_DIR)
    pickles = root / "cifar-10-batches-py"
    if pickles.is_dir() or download:
        return _cifar10_from_torchvision(root, download)
    raise _missing("CIFAR-10", [folder, pickles], "pass download=True when online")


def _cifar10_from_torchvision(root: Path, download: bool) -> ImageData:
    from torchvision.datasets import CIFAR10

    parts = [CIFAR10(str(root), train=train, download=download) for train in (True, False)]
    train, test = (TensorSet(torch.from_numpy(p.data).permute(0, 3, 1, 2).contiguous(),
                             torch.as_tensor(p.targets, dtype=torch.long)) for p in parts)
    return ImageData(train, test, tuple(parts[0].classes),
                     f"CIFAR-10 torchvision pickle files at {root / 'cifar-10-batches-py'}")


def _cifar10_from_jpeg_folder(folder: Path, cache_dir: Path) -> ImageData:
    listing = {part: _scan_image_folder(folder / part, CIFAR10_CLASSES, ".jpg") for part in ("train", "test")}
    cache = cache_dir / f"cifar10-jpeg-{_listing_key(listing)}.pt"
    tensors = _read_cache(cache)
    if tensors is not None and not _cache_matches(tensors, listing, size=32):
        warnings.warn(f"ignoring the cache {cache}: its tensors do not match the image folder; decoding again",
                      stacklevel=2)
        tensors = None
    if tensors is None:
        tensors = {}
        for part, entries in listing.items():
            tensors[f"{part}_x"] = _decode_jpegs([Path(e.path) for e, _ in entries], size=32)
            tensors[f"{part}_y"] = _listing_labels(entries)
        _write_cache(tensors, cache, stale_pattern="cifar10-jpeg-*.pt")
    found = sum(len(entries) for entries in listing.values())
    source = f"CIFAR-10 JPEG copy (image folder at {folder}; {count_note('CIFAR-10', found, folder)})"
    return ImageData(TensorSet(tensors["train_x"], tensors["train_y"]),
                     TensorSet(tensors["test_x"], tensors["test_y"]), CIFAR10_CLASSES, source)


def _scan_image_folder(folder: Path, classes: tuple[str, ...], suffix: str) -> list[tuple[os.DirEntry, int]]:
    """``(file entry, label)`` for ``folder/<class>/*suffix``, sorted by label then name.

    The class folders must be exactly ``classes``; the label is the position in ``classes``."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if sorted(classes) != found:
        raise ValueError(f"class folders in {folder} are {found}; expected {sorted(classes)}")
    listing = []
    for label, name in enumerate(classes):
        with os.scandir(folder / name) as entries:
            files = sorted((e for e in entries if e.name.endswith(suffix)), key=lambda e: e.name)
        listing += [(entry, label) for entry in files]
    return listing


def _listing_key(listing: dict[str, list[tuple[os.DirEntry, int]]]) -> str:
    """A short hash of every file's part, label, name, size and mtime: changes when the folder does."""
    digest = hashlib.sha1()
    for part, entries in listing.items():
        for entry, label in entries:
            stat = entry.stat()
            digest.update(f"{part}/{label}/{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    count = sum(len(entries) for entries in listing.values())
    return f"{count}-{digest.hexdigest()[:16]}"


def _read_cache(cache: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None when the file is absent or unreadable (then decode again)."""
    if not cache.is_file():
        return None
    try:
        return torch.load(cache, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        warnings.warn(f"ignoring the unreadable cache {cache} ({err}); decoding again", stacklevel=3)
        return None


def _listing_labels(entries: list[tuple[os.DirEntry, int]]) -> torch.Tensor:
    """The labels ``[N]`` (long) of a folder listing, in listing order."""
    return torch.tensor([label for _, label in entries], dtype=torch.long)


def _cache_matches(tensors, listing: dict[str, list[tuple[os.DirEntry, int]]], size: int) -> bool:
    """Whether the cached ``{part}_x`` (uint8 ``[N, 3, size, size]``) and ``{part}_y`` fit the listing."""
    if not isinstance(tensors, dict):
        return False
    for part, entries in listing.items():
        x, y = tensors.get(f"{part}_x"), tensors.get(f"{part}_y")
        labels = _listing_labels(entries)
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype == torch.uint8
                and tuple(x.shape) == (len(entries), 3, size, size) and torch.equal(y, labels)):
            return False
    return True


def _write_cache(tensors: dict[str, torch.Tensor], cache: Path, stale_pattern: str) -> None:
    """Save atomically, then drop older caches (``stale_pattern``); warn if the folder is read-only."""
    try:
        atomic_torch_save(tensors, cache)
    except OSError as err:
        warnings.warn(f"could not write the decoded-image cache {cache} ({err}); "
                      "the images will be decoded again next time", stacklevel=3)
        return
    for stale in cache.parent.glob(stale_pattern):
        if stale != cache:
            stale.unlink(missing_ok=True)


def _decode_jpegs(files: list[Path], size: int) -> torch.Tensor:
    """Decode RGB JPEG files into uint8 ``[N, 3, size, size]`` (one batched libjpeg call);
    a corrupt file or one of another size raises naming it."""
    raw = [torch.frombuffer(bytearray(f.read_bytes()), dtype=torch.uint8) for f in files]
    with warnings.catch_warnings():  # torchvision 0.29 announces a move of its decoders to torchcodec
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        try:
            images = decode_jpeg(raw, mode=ImageReadMode.RGB)
        except RuntimeError:
            images = [_decode_one_jpeg(data, f) for data, f in zip(raw, files)]
    for image, f in zip(images, files):
        if tuple(image.shape) != (3, size, size):
            raise ValueError(f"image {f} has shape {tuple(image.shape)}; expected {(3, size, size)}")
    return torch.stack(images) if images else torch.empty(0, 3, size, size, dtype=torch.uint8)


def _decode_one_jpeg(data: torch.Tensor, path: Path) -> torch.Tensor:
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB)
    except RuntimeError as err:
        reason = str(err).rsplit(", ", 1)[-1]
        raise ValueError(f"cannot decode JPEG file {path}: {reason} (corrupt or truncated?)") from None


# --------------------------------------------------------------------------- CIFAR-100


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR pickles (dicts, lists, numpy arrays) and refuses any other object."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from a CIFAR file")
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"cannot read CIFAR pickle {path}: {err}") from None


def cifar100_names(root=None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(fine_names, coarse_names)`` from ``root/cifar-100-python/meta`` (a small file)."""
    folder = data_root(root) / "cifar-100-python"
    if not (folder / "meta").is_file():
        raise _missing("CIFAR-100", [folder / "meta"], "pass download=True when online")
    meta = _read_cifar_pickle(folder / "meta")
    return tuple(meta["fine_label_names"]), tuple(meta["coarse_label_names"])


def load_cifar100(root=None, download: bool = False) -> ImageData:
    """CIFAR-100 from ``root/cifar-100-python/{train,test,meta}`` (torchvision's pickle format).

    ``y`` holds the 100 fine labels, ``group`` the 20 coarse superclasses; ``classes`` are the
    fine names and ``group_names`` the coarse ones. ``download=True`` fetches the archive with
    torchvision when the folder is absent.
    """
    root = data_root(root)
    folder = root / "cifar-100-python"
    needed = [folder / name for name in ("train", "test", "meta")]
    if not all(p.is_file() for p in needed) and download:
        from torchvision.datasets import CIFAR100
        CIFAR100(str(root), train=True, download=True)
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise _missing("CIFAR-100", missing, "pass download=True when online")
    fine, coarse = cifar100_names(root)
    train, test = (_cifar100_part(folder / part) for part in ("train", "test"))
    return ImageData(train, test, fine, f"CIFAR-100 python pickle files at {folder}", coarse)


def _cifar100_part(path: Path) -> TensorSet:
    entry = _read_cifar_pickle(path)
    missing = [k for k in ("data", "fine_labels", "coarse_labels") if k not in entry]
    if missing:
        raise ValueError(f"CIFAR pickle {path} lacks the key(s) {missing}")
    data = np.asarray(entry["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"CIFAR pickle {path}: 'data' has shape {data.shape}; expected (N, 3072)")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return TensorSet(x, torch.as_tensor(entry["fine_labels"], dtype=torch.long),
                     torch.as_tensor(entry["coarse_labels"], dtype=torch.long))


# Sizes of the published datasets: a copy of another size is used, but warned about and labelled
# in the source string every chapter records (a partial unpack, a subset, another release).
PUBLISHED_COUNTS = {"CIFAR-10": 60_000, "CK+48": 981, "SMS Spam Collection": 5_574,
                    "Davidson hate-speech CSV": 24_783}


def count_note(dataset: str, found: int, where: Path) -> str:
    """``"N items, as published"``, or a warning and ``"N items, NOT the published M"``."""
    expected = PUBLISHED_COUNTS[dataset]
    if found == expected:
        return f"{found:,} items, as published"
    warnings.warn(f"{dataset} at {where} has {found:,} items; the published dataset has {expected:,} "
                  "(a partial copy, a subset or another release?)", stacklevel=3)
    return f"{found:,} items, NOT the published {expected:,}"


# --------------------------------------------------------------------------- CK+48 faces

CKPLUS_NAME = re.compile(r"S(\d+)_(\d+)_(\d+)\.png")


def load_ckplus(root=None) -> FaceData:
    """CK+48 from ``root/CK+48/<emotion>/S<subject>_<sequence>_<frame>.png``.

    Returns grayscale uint8 ``[N, 1, 48, 48]``, ``y`` = index of the emotion in the sorted folder
    names, ``group`` = subject id parsed from the file name. No train/test division: split by
    subject (the 3 frames of a sequence are near-duplicates).
    """
    folder = data_root(root) / "CK+48"
    if not folder.is_dir():
        raise _missing("CK+48", [folder], "CK+ is licensed by its authors and cannot be downloaded "
                       "automatically: request it, then place the 48x48 crops there")
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    if not classes:
        raise ValueError(f"no emotion folders in {folder}")
    files = [(path, label) for label, name in enumerate(classes)
             for path in sorted((folder / name).glob("*.png"))]
    ids = [_ckplus_ids(path) for path, _ in files]
    pairs = sorted(set(ids))
    sequence = torch.tensor([pairs.index(pair) for pair in ids], dtype=torch.long)
    images = TensorSet(torch.stack([_read_png(path, size=48) for path, _ in files]),
                       torch.tensor([label for _, label in files], dtype=torch.long),
                       torch.tensor([subject for subject, _ in ids], dtype=torch.long))
    return FaceData(images, sequence, classes,
                    f"CK+48 PNG crops at {folder} ({count_note('CK+48', len(files), folder)})")


def _ckplus_ids(path: Path) -> tuple[int, int]:
    match = CKPLUS_NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"CK+ file name {path.name!r} ({path}) does not match "
                         "S<subject>_<sequence>_<frame>.png")
    return int(match[1]), int(match[2])


def _read_png(path: Path, size: int) -> torch.Tensor:
    """One grayscale image as uint8 ``[1, size, size]``; a corrupt file raises naming it."""
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image.load()
            pixels = np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot decode image file {path}: {err} (corrupt or truncated?)") from None
    if pixels.shape != (size, size):
        raise ValueError(f"image {path} is {pixels.shape[1]}x{pixels.shape[0]}; expected {size}x{size}")
    return torch.from_numpy(pixels.copy()).unsqueeze(0)


# --------------------------------------------------------------------------- text


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of the CSV file ``path`` as ``{column: value}`` dicts, in file order.

    Raises ``ValueError`` naming the file when a ``required`` column is missing from the
    header, a row lacks a value for one (a truncated file), or the file is not UTF-8 CSV.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path} lacks the column(s) {missing}; expected at least {list(required)}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read CSV file {path}: {err}") from None
    short = next((i for i, row in enumerate(rows) if any(row[c] is None for c in required)), None)
    if short is not None:
        raise ValueError(f"{path}, data row {short + 1}: no value for column(s) "
                         f"{[c for c in required if rows[short][c] is None]} (truncated file?)")
    return rows


def load_sms(root=None) -> TextData:
    """UCI SMS Spam Collection: ``root/SMSSpamCollection``, lines ``ham|spam<TAB>text``; y: spam = 1."""
    path = data_root(root) / "SMSSpamCollection"
    if not path.is_file():
        raise _missing("SMS Spam Collection", [path], "download it from the UCI repository (id 228)")
    classes = ("ham", "spam")
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in classes:
            raise ValueError(f"{path}, line {number}: expected 'ham' or 'spam', a tab, the text; "
                             f"got {line[:60]!r}")
        texts.append(text)
        labels.append(classes.index(label))
    note = count_note("SMS Spam Collection", len(texts), path)
    return TextData(tuple(texts), torch.tensor(labels, dtype=torch.long), classes,
                    f"SMS Spam Collection (UCI file at {path}; {note})")


DAVIDSON_COLUMNS = ("count", "hate_speech", "offensive_language", "neither", "class", "tweet")
DAVIDSON_CLASSES = ("hate", "offensive", "neither")


def load_davidson(root=None) -> TextData:
    """Davidson et al. (2017) tweets: ``root/davidson_labeled_data.csv``; y = ``class``
    (0 hate, 1 offensive, 2 neither)."""
    path = data_root(root) / "davidson_labeled_data.csv"
    if not path.is_file():
        raise _missing("Davidson hate-speech CSV", [path], "get data/labeled_data.csv from GitHub "
                       "t-davidson/hate-speech-and-offensive-language and save it under that name")
    rows = [(row["tweet"], row["class"]) for row in read_csv_rows(path, DAVIDSON_COLUMNS)]
    bad = next((i for i, (_, c) in enumerate(rows) if c not in ("0", "1", "2")), None)
    if bad is not None:
        raise ValueError(f"{path}, data row {bad + 1}: class {rows[bad][1]!r}; allowed: 0, 1, 2")
    return TextData(tuple(t for t, _ in rows), torch.tensor([int(c) for _, c in rows], dtype=torch.long),
                    DAVIDSON_CLASSES,
                    f"Davidson hate-speech CSV at {path} ({count_note('Davidson hate-speech CSV', len(rows), path)})")
