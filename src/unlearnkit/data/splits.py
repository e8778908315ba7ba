"""The dataset registry and the unlearning splits built from it.

``make_split(dataset, scenario, ...)`` returns a :class:`~unlearnkit.data.core.Split`:

* ``full_class``: forget every training sample of one class; the class leaves ``test`` / ``val``
  and its test samples become ``forget_test``.
* ``random_subset``: forget a random, class-stratified fraction of the training set.
* ``sub_class``: labels become the superclasses (CIFAR-100's 20 coarse classes); forget every
  sample of one fine class (e.g. "rocket"); its test samples become ``forget_test``.
* ``identity`` (faces): forget every image of a random fraction of subjects.

Every split is cut from a *training pool* (:func:`training_pool`) that depends on ``pool_seed``
and the caps only, never on the scenario or ``seed``, so one original model serves every forget
set. ``val`` is a stratified ``val_fraction`` of the training set held out before forgetting (the
field's 45,000 / 5,000 CIFAR-10 convention). Face sets have no fixed test part: their subjects
are divided into test / unseen / val / pool, so no subject appears in two parts. ``seed`` draws
the forget set; every random draw comes from an explicitly seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from unlearnkit.config import check_choice, check_range
from unlearnkit.data.core import Split, TensorSet
from unlearnkit.data.loaders import (CIFAR10_CLASSES, FaceData, ImageData, TextData, cifar100_names,
                                     load_cifar10, load_cifar100, load_ckplus, load_davidson, load_sms)
from unlearnkit.data.synthetic import synthetic_faces, synthetic_images, synthetic_text
from unlearnkit.runtime import data_root, generator

SCENARIOS = ("full_class", "random_subset", "sub_class", "identity")
SCENARIO_PARAMETER = {"full_class": "forget_class", "random_subset": "forget_fraction",
                      "sub_class": "subclass", "identity": "forget_subject_fraction"}


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: ``load(**kw)`` (plus ``root=`` when ``uses_root``), the kind of data
    (``"images"``, ``"faces"`` or ``"text"``) and the split scenarios that fit it."""

    load: Callable[..., ImageData | FaceData | TextData]
    kind: str
    uses_root: bool
    scenarios: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(load_cifar10, "images", True, ("full_class", "random_subset")),
    "cifar100": DatasetSpec(load_cifar100, "images", True, ("full_class", "random_subset", "sub_class")),
    "ckplus": DatasetSpec(load_ckplus, "faces", True, ("full_class", "random_subset", "identity")),
    "sms": DatasetSpec(load_sms, "text", True, ()),
    "davidson": DatasetSpec(load_davidson, "text", True, ()),
    "synthetic-images": DatasetSpec(synthetic_images, "images", False,
                                    ("full_class", "random_subset", "sub_class")),
    "synthetic-faces": DatasetSpec(synthetic_faces, "faces", False,
                                   ("full_class", "random_subset", "identity")),
    "synthetic-text": DatasetSpec(synthetic_text, "text", False, ()),
}


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; an unknown name raises listing the known ones."""
    return DATASETS[check_choice("dataset", name, DATASETS)]


_LOAD_FILTER: list[Callable] = []
"""At most one function applied to every dataset :func:`load_dataset` returns: a dry run's
:func:`unlearnkit.dryrun.shrink` (set by :func:`set_load_filter`; this module knows no dry run)."""


def set_load_filter(function: Callable | None) -> None:
    """Apply ``function`` to every loaded dataset from now on (None: load datasets whole)."""
    _LOAD_FILTER[:] = [function] if function is not None else []


def load_dataset(name: str, root=None, **kw) -> ImageData | FaceData | TextData:
    """Load dataset ``name`` (see ``DATASETS``); ``root`` goes to the real loaders, ``kw`` to the loader."""
    spec = dataset_spec(name)
    data = spec.load(root=root, **kw) if spec.uses_root else spec.load(**kw)
    return _LOAD_FILTER[0](data) if _LOAD_FILTER else data


# --------------------------------------------------------------------------- sampling helpers


def stratified_sample(labels: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """Sorted indices of ``count`` rows drawn without replacement, each label getting its
    proportional share (largest-remainder rounding). ``labels``: int64 ``[N]``."""
    values, sizes = torch.unique(labels, return_counts=True)
    quota = sizes.double() * count / len(labels)
    take = quota.floor().long()
    leftover = count - int(take.sum())
    take[torch.argsort(quota - take, descending=True, stable=True)[:leftover]] += 1
    picked = []
    for value, k in zip(values.tolist(), take.tolist()):
        rows = torch.nonzero(labels == value).squeeze(1)
        picked.append(rows[torch.randperm(len(rows), generator=gen)[:k]])
    return torch.cat(picked).sort().values


def _complement(n: int, index: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    keep[index] = False
    return torch.nonzero(keep).squeeze(1)


def _cap(part: TensorSet, limit: int | None, gen: torch.Generator) -> TensorSet:
    """A stratified random ``limit`` rows of ``part`` (all of it when ``limit`` is None or larger)."""
    if limit is None or limit >= len(part):
        return part
    return part.subset(stratified_sample(part.y, limit, gen))


def _hold_out(part: TensorSet, fraction: float, gen: torch.Generator) -> tuple[TensorSet, TensorSet | None]:
    """``(rest, held_out)`` with a stratified ``fraction`` of ``part`` held out."""
    count = round(fraction * len(part))
    if count == 0:
        return part, None
    held = stratified_sample(part.y, count, gen)
    return part.subset(_complement(len(part), held)), part.subset(held)


def _by_subject(images: TensorSet, subjects: torch.Tensor) -> TensorSet:
    return images.subset(torch.isin(images.group, subjects))


def _split_where(part: TensorSet | None, mask_of: Callable[[TensorSet], torch.Tensor]):
    """``(part[~mask], part[mask])``, or ``(None, None)`` for a missing part."""
    if part is None:
        return None, None
    mask = mask_of(part)
    return part.subset(~mask), part.subset(mask)


# --------------------------------------------------------------------------- validation


def _class_index(value, classes: tuple[str, ...], what: str) -> int:
    """Resolve a class given by name or index; raise listing the classes otherwise."""
    if isinstance(value, str) and value in classes:
        return classes.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
        return value
    raise ValueError(f"unknown {what} {value!r}; allowed: names {list(classes)} "
                     f"or indices 0..{len(classes) - 1}")


def _peek_classes(dataset: str, root) -> tuple[str, ...] | None:
    """Class names (CIFAR-100: fine names) read without loading the images, where that is cheap."""
    if dataset == "cifar10":
        return CIFAR10_CLASSES
    if dataset == "cifar100":
        return cifar100_names(root)[0]
    if dataset == "ckplus" and (data_root(root) / "CK+48").is_dir():
        return tuple(sorted(p.name for p in (data_root(root) / "CK+48").iterdir() if p.is_dir()))
    return None


def _check_arguments(dataset: str, scenario: str, params: dict) -> DatasetSpec:
    """Dataset, scenario and the scenario's own parameter (present, in range, no stray ones)."""
    spec = dataset_spec(dataset)
    check_choice("scenario", scenario, SCENARIOS)
    if scenario not in spec.scenarios:
        fits = [name for name, s in DATASETS.items() if scenario in s.scenarios]
        allowed = ", ".join(spec.scenarios) or "none (a text corpus: use load_dataset and its texts)"
        raise ValueError(f"scenario {scenario!r} does not fit dataset {dataset!r}; its scenarios: "
                         f"{allowed}; datasets with {scenario!r}: {', '.join(fits)}")
    needed = SCENARIO_PARAMETER[scenario]
    if params[needed] is None:
        raise ValueError(f"scenario {scenario!r} needs {needed}=...")
    stray = [name for name, value in params.items() if name != needed and value is not None]
    if stray:
        raise ValueError(f"parameter(s) {stray} do not apply to scenario {scenario!r}; it takes {needed}")
    for name in ("forget_fraction", "forget_subject_fraction"):
        if params[name] is not None:
            check_range(name, params[name], 0, 1, low_open=True, high_open=True)
    return spec


def _check_common(val_fraction: float, test_fraction: float, unseen_fraction: float,
                  max_train, max_test) -> None:
    check_range("val_fraction", val_fraction, 0, 1, high_open=True)
    check_range("test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
    check_range("unseen_fraction", unseen_fraction, 0, 1, high_open=True)
    for name, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive int or None")


# --------------------------------------------------------------------------- pool and split


def _image_parts(data: ImageData, pool_seed: int, val_fraction: float, max_train, max_test) -> dict:
    """Hold out val from the training set, then cap the pool, val and test: ``{"pool", "val", "test"}``.

    The pool is drawn before anything that depends on ``max_test``, so it depends on
    ``pool_seed``, ``val_fraction`` and ``max_train`` only."""
    gen = generator(pool_seed)
    pool, val = _hold_out(data.train, val_fraction, gen)
    pool = _cap(pool, max_train, gen)
    return {"pool": pool, "val": _cap(val, max_test, gen), "test": _cap(data.test, max_test, gen)}


def _face_parts(data: FaceData, pool_seed: int, val_fraction: float, test_fraction: float,
                unseen_fraction: float, max_train, max_test) -> dict:
    """Divide a face set by subject: ``[test | unseen | val | pool]`` blocks of a permutation of
    the subjects seeded by ``pool_seed``; then cap the pool, then the others (stratified)."""
    gen = generator(pool_seed)
    subjects = torch.unique(data.images.group)
    subjects = subjects[torch.randperm(len(subjects), generator=gen)]
    fractions = {"test": test_fraction, "unseen": unseen_fraction, "val": val_fraction}
    blocks, start = {}, 0
    for name, fraction in fractions.items():
        count = round(fraction * len(subjects))
        blocks[name], start = subjects[start:start + count], start + count
    if start >= len(subjects):
        raise ValueError(f"no subjects left for training: {len(subjects)} subjects, fractions {fractions}")
    pool = _cap(_by_subject(data.images, subjects[start:]), max_train, gen)
    parts = {name: _by_subject(data.images, ids) for name, ids in blocks.items()}
    return {"pool": pool, **{name: _cap(part, max_test, gen) if len(part) else None
                             for name, part in parts.items()}}


def _parts(data, kind: str, pool_seed: int, val_fraction: float, test_fraction: float,
           unseen_fraction: float, max_train, max_test) -> dict:
    if kind == "faces":
        return _face_parts(data, pool_seed, val_fraction, test_fraction, unseen_fraction,
                           max_train, max_test)
    return _image_parts(data, pool_seed, val_fraction, max_train, max_test)


def _superclass_labels(part: TensorSet | None) -> TensorSet | None:
    """``y`` ← superclass (``group``), ``group`` ← fine class."""
    return None if part is None else TensorSet(part.x, part.group, part.y)


def training_pool(dataset: str, *, root=None, pool_seed: int = 0, val_fraction: float = 0.1,
                  test_fraction: float = 0.15, unseen_fraction: float = 0.15,
                  max_train: int | None = None, superclass_labels: bool = False,
                  load_kw: dict | None = None) -> tuple[TensorSet, tuple[str, ...]]:
    """The training set before any forgetting, and its class names.

    It is ``retain ∪ forget`` of every split that :func:`make_split` cuts with the same
    ``pool_seed``, caps and fractions, whatever the scenario or ``seed``: one original model
    serves them all. ``superclass_labels``: label by superclass, as the ``sub_class`` scenario does.
    """
    spec = dataset_spec(dataset)
    if spec.kind == "text":
        raise ValueError(f"dataset {dataset!r} is a text corpus; training_pool needs images or faces")
    _check_common(val_fraction, test_fraction, unseen_fraction, max_train, None)
    data = load_dataset(dataset, root, **(load_kw or {}))
    parts = _parts(data, spec.kind, pool_seed, val_fraction, test_fraction, unseen_fraction, max_train, None)
    pool = parts["pool"]
    if superclass_labels:
        if not getattr(data, "group_names", ()):
            raise ValueError(f"{data.source} has no superclasses")
        return _superclass_labels(pool), data.group_names
    return pool, data.classes


def make_split(dataset: str, scenario: str, *, root=None, seed: int = 0, pool_seed: int = 0,
               forget_class=None, forget_fraction: float | None = None,
               forget_subject_fraction: float | None = None, subclass=None, val_fraction: float = 0.1,
               test_fraction: float = 0.15, unseen_fraction: float = 0.15, max_train: int | None = None,
               max_test: int | None = None, load_kw: dict | None = None) -> Split:
    """Build the unlearning split ``scenario`` of ``dataset`` (see the module docstring).

    seed: draws the forget set (``random_subset``, ``identity``). pool_seed: draws the caps, the
    val hold-out and, for faces, the subject partition, so the training pool (``retain ∪ forget``,
    see :func:`training_pool`) is the same for every scenario and ``seed``.
    forget_class: class name or index (``full_class``); subclass: fine class name or index
    (``sub_class``); forget_fraction / forget_subject_fraction in (0, 1) (the latter counts
    subjects of the whole face set; they are drawn among the pool's subjects).
    test_fraction / unseen_fraction: shares of the subjects forming ``test`` / ``unseen`` for
    face sets; ignored for sets with a fixed test part (which get no ``unseen``).
    max_train / max_test: stratified caps of the training pool and of each evaluation part
    (val, test, unseen), for the cpu / smoke profiles. load_kw: extra loader arguments
    (``download=True``, synthetic sizes). Arguments are checked before any data is loaded.
    """
    params = {"forget_class": forget_class, "forget_fraction": forget_fraction,
              "forget_subject_fraction": forget_subject_fraction, "subclass": subclass}
    spec = _check_arguments(dataset, scenario, params)
    _check_common(val_fraction, test_fraction, unseen_fraction, max_train, max_test)
    peeked = _peek_classes(dataset, root)
    if peeked is not None and scenario in ("full_class", "sub_class"):
        _class_index(params[SCENARIO_PARAMETER[scenario]], peeked, SCENARIO_PARAMETER[scenario])
    data = load_dataset(dataset, root, **(load_kw or {}))
    info = {"dataset": dataset, "source": data.source, "scenario": scenario, "seed": seed,
            "pool_seed": pool_seed, "val_fraction": val_fraction, "max_train": max_train,
            "max_test": max_test}
    if spec.kind == "faces":
        info.update(test_fraction=test_fraction, unseen_fraction=unseen_fraction)
    parts = _parts(data, spec.kind, pool_seed, val_fraction, test_fraction, unseen_fraction,
                   max_train, max_test)
    classes = data.classes
    if scenario == "full_class":
        parts = _full_class(parts, _class_index(forget_class, classes, "forget_class"), classes, info)
    elif scenario == "random_subset":
        parts = _random_subset(parts, forget_fraction, generator(seed), info)
    elif scenario == "sub_class":
        parts, classes = _sub_class(parts, data, subclass, info)
    else:
        parts = _identity(parts, forget_subject_fraction, data.images.group, generator(seed), info)
    if len(parts["forget"]) == 0:
        name = SCENARIO_PARAMETER[scenario]
        raise ValueError(f"the forget set of {scenario!r} on {dataset!r} is empty "
                         f"({name}={params[name]!r}, max_train={max_train}); "
                         "choose a value that selects samples")
    info["counts"] = {name: len(part) for name, part in parts.items() if part is not None}
    return Split(retain=parts["retain"], forget=parts["forget"], test=parts["test"],
                 num_classes=len(classes), classes=tuple(classes), val=parts.get("val"),
                 unseen=parts.get("unseen"), forget_test=parts.get("forget_test"), info=info)


def _after_pool(parts: dict) -> dict:
    """The parts other than the pool (which a scenario replaces by retain and forget)."""
    return {name: part for name, part in parts.items() if name != "pool"}


def _full_class(parts: dict, index: int, classes: tuple[str, ...], info: dict) -> dict:
    """Forget class ``index``: it leaves retain, val and test; its test samples form forget_test."""
    info.update(forget_class=classes[index], forget_class_index=index)

    def of_class(part: TensorSet) -> torch.Tensor:
        return part.y == index

    retain, forget = _split_where(parts["pool"], of_class)
    test, forget_test = _split_where(parts["test"], of_class)
    val, _ = _split_where(parts["val"], of_class)
    return {**_after_pool(parts), "retain": retain, "forget": forget, "val": val, "test": test,
            "forget_test": forget_test}


def _random_subset(parts: dict, fraction: float, gen: torch.Generator, info: dict) -> dict:
    """Forget a class-stratified random ``fraction`` of the training pool."""
    info["forget_fraction"] = fraction
    pool = parts["pool"]
    forget = stratified_sample(pool.y, round(fraction * len(pool)), gen)
    return {**_after_pool(parts), "retain": pool.subset(_complement(len(pool), forget)),
            "forget": pool.subset(forget)}


def _identity(parts: dict, fraction: float, all_subjects: torch.Tensor, gen: torch.Generator,
              info: dict) -> dict:
    """Forget every pool image of ``round(fraction · #subjects)`` subjects drawn among the pool's."""
    pool = parts["pool"]
    candidates = torch.unique(pool.group)
    count = round(fraction * len(torch.unique(all_subjects)))
    if count >= len(candidates):
        raise ValueError(f"forget_subject_fraction={fraction} asks for {count} subjects but the training "
                         f"pool has {len(candidates)}; lower it or the test/unseen/val fractions")
    chosen = candidates[torch.randperm(len(candidates), generator=gen)[:count]]
    info["forget_subjects"] = sorted(chosen.tolist())
    retain, forget = _split_where(pool, lambda part: torch.isin(part.group, chosen))
    return {**_after_pool(parts), "retain": retain, "forget": forget}


def _sub_class(parts: dict, data: ImageData, subclass, info: dict) -> tuple[dict, tuple[str, ...]]:
    """Relabel to superclasses (``y`` ← coarse, ``group`` ← fine) and forget one fine class."""
    if not data.group_names:
        raise ValueError(f"{data.source} has no superclasses; for synthetic-images pass "
                         "load_kw={'num_superclasses': k}")
    index = _class_index(subclass, data.classes, "subclass")
    coarse = {name: _superclass_labels(part) for name, part in parts.items()}

    def of_subclass(part: TensorSet) -> torch.Tensor:
        return part.group == index

    retain, forget = _split_where(coarse["pool"], of_subclass)
    if len(forget) == 0:
        raise ValueError(f"subclass {data.classes[index]!r} has no training samples"
                         " (after max_train); choose another or raise max_train")
    superclass = int(forget.y[0])
    info.update(subclass=data.classes[index], subclass_index=index,
                superclass=data.group_names[superclass], superclass_index=superclass)
    test, forget_test = _split_where(coarse["test"], of_subclass)
    val, _ = _split_where(coarse["val"], of_subclass)
    out = {"retain": retain, "forget": forget, "val": val, "test": test, "forget_test": forget_test}
    return out, data.group_names
