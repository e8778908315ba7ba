"""Frozen, validated configurations and the checks they share.

Every experiment config is a frozen dataclass built through :func:`build_config`, which
rejects unknown field names and wrong types *before* any work starts. Error messages
name the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, TypeVar

PROFILES = ("smoke", "cpu", "paper")

T = TypeVar("T")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``; else raise naming both."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` if ``low <= value <= high`` (open ends if asked); else raise."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} is out of range; allowed: {lo}, {hi}")
    return value


def check_profile(profile: str) -> str:
    """Validate a profile name (``smoke``, ``cpu`` or ``paper``)."""
    return check_choice("profile", profile, PROFILES)


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin is typing.Union or str(origin) == "types.UnionType":
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def build_config(cls: type[T], values: Mapping[str, Any] | None = None, **overrides: Any) -> T:
    """Build the frozen dataclass ``cls`` from ``values`` and ``overrides``.

    Unknown names and values of the wrong type raise ``ValueError``/``TypeError`` listing
    the allowed names or the expected type. The dataclass's own ``__post_init__`` then
    checks ranges.
    """
    merged = {**(values or {}), **overrides}
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(merged) - fields)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {cls.__name__}; allowed: {sorted(fields)}")
    for key, value in merged.items():
        if not _type_ok(value, hints[key]):
            raise TypeError(f"{cls.__name__}.{key}={value!r} has type {type(value).__name__}; "
                            f"expected {hints[key]}")
        if isinstance(value, list):
            merged[key] = tuple(value)
    return cls(**merged)


def config_hash(obj: Any, length: int = 16) -> str:
    """A stable hex digest of a (nested) dataclass/dict config, used as a cache key."""
    if dataclasses.is_dataclass(obj):
        obj = {"__class__": type(obj).__name__, **dataclasses.asdict(obj)}
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def as_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


# ---------------------------------------------------------------------------- profile blocks

@dataclass(frozen=True)
class Change:
    """One line of a profile block: the value a profile uses instead of the paper's, and why.

    A profile is written as the paper profile plus a block ``{setting: Change(value, why)}``
    (dotted names reach nested dataclasses, e.g. ``"train.epochs"``); the book renders every
    line with its reason beside the paper's value (:func:`change_rows`).
    """

    value: Any
    why: str

    def __post_init__(self):
        if not isinstance(self.why, str) or not self.why.strip():
            raise ValueError(f"a profile change to {self.value!r} needs a reason (why=...); got {self.why!r}")


def _get(base: Any, name: str) -> Any:
    return base[name] if isinstance(base, Mapping) else getattr(base, name)


def setting(base: Any, dotted: str) -> Any:
    """The value of ``dotted`` (e.g. ``"train.epochs"``) in a dict or dataclass ``base``;
    an unknown name raises naming the allowed ones."""
    node = base
    for part in dotted.split("."):
        names = list(node) if isinstance(node, Mapping) else (
            [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else [])
        check_choice(f"setting {dotted!r}: name", part, names)
        node = _get(node, part)
    return node


def _apply(node: Any, changes: Mapping[str, Any]) -> Any:
    """``node`` with ``changes`` (a nested dict of new values) applied at once, so a dataclass
    checks the new combination, not each step on the way (schedule and milestones together)."""
    new = {head: _apply(_get(node, head), sub) if isinstance(sub, _Nested) else sub
           for head, sub in changes.items()}
    if isinstance(node, Mapping):
        return {**node, **new}
    return dataclasses.replace(node, **new)


class _Nested(dict):
    """Changes below one nested setting (a marker for :func:`_apply`)."""


def with_changes(base: Any, block: Mapping[str, Change]) -> Any:
    """``base`` (a dict or a frozen dataclass) with every line of ``block`` applied.

    Each line must be a :class:`Change` naming an existing setting whose value it changes
    (a line repeating the paper's value is an error: it is no difference)."""
    for name, change in block.items():
        if not isinstance(change, Change):
            raise TypeError(f"profile line {name!r} must be a Change(value, why); got {change!r}")
        if setting(base, name) == change.value:
            raise ValueError(f"profile line {name!r} repeats the paper's value {change.value!r}")
    tree = _Nested()
    for name, change in block.items():
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, _Nested())
        node[leaf] = change.value
    return _apply(base, tree)


def change_rows(base: Any, block: Mapping[str, Change], part: str) -> list[dict]:
    """The block as rows ``{part, setting, value, paper, why}`` (values as text)."""
    return [{"part": part, "setting": name, "value": setting_text(change.value),
             "paper": setting_text(setting(base, name)), "why": change.why} for name, change in block.items()]


def setting_text(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


SMOKE_WHY = "smoke: sized so the test suite runs in seconds"


def changes_for(why: str, **values: Any) -> dict[str, Change]:
    """Lines that share one reason: ``{name: Change(value, why)}``."""
    return {name: Change(value, why) for name, value in values.items()}
