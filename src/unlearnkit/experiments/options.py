"""The knobs a researcher turns from papermill: which methods, how many seeds, which settings,
which forgetting problem, how large a pool, and methods of their own (plugins).

Chapters 2–4 declare these as parameters; :mod:`unlearnkit.runner` checks them with the
functions below before the kernel starts (unknown method or hyperparameter, wrong type, value
out of range → one error naming what is allowed), and the chapter applies them with the same
functions, so the check and the run cannot drift apart.

A plugin is a ``.py`` file outside the package that registers a method with
:func:`unlearnkit.methods.register` (see the README's worked example); :func:`load_plugins`
imports it before anything else runs.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import check_range
from ..methods import available_methods, get_method
from .harness import Grid, check_fixed_settings
from .tasks import protocol_changes, task_changes

PLUGIN_PREFIX = "unlearnkit_plugin_"
PLUGIN_METHODS = "__unlearnkit_methods__"  # set on a plugin module: the method names it registered


def load_plugins(paths: Sequence[str]) -> list[str]:
    """Import every plugin file of ``paths`` (once per process); returns the method names they
    registered, also when a file was imported before. A missing file, a file that fails to
    import or a method name already taken raises, naming the file, before any training."""
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
        raise TypeError(f"plugins must be a list of .py paths; got {paths!r}")
    registered = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.suffix != ".py" or not path.is_file():
            raise FileNotFoundError(f"plugin {raw!r} is not a .py file (resolved to {path}); "
                                    "allowed: paths of Python files that register methods")
        name = PLUGIN_PREFIX + path.stem
        module = sys.modules.get(name)
        if getattr(module, "__file__", None) != str(path):
            module = _import_plugin(raw, name, path)
        registered += [m for m in module.__dict__.get(PLUGIN_METHODS, ()) if m not in registered]
    return registered


def _import_plugin(raw: str, name: str, path: Path):
    """Execute the plugin file at ``path`` as module ``name`` and note the methods it registered."""
    before = set(available_methods())
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ImportError(f"plugin {raw!r} failed to import: {type(err).__name__}: {err}") from err
    setattr(module, PLUGIN_METHODS, [m for m in available_methods() if m not in before])
    return module


def check_method_list(methods: Sequence[str]) -> tuple[str, ...]:
    """``methods`` as a tuple of registered names (an unknown name lists the known ones)."""
    if not isinstance(methods, (list, tuple)) or not all(isinstance(m, str) for m in methods):
        raise TypeError(f"methods must be a list of registry names; got {methods!r}")
    for name in methods:
        get_method(name)
    return tuple(methods)


def chapter_methods(required: Sequence[str], defaults: Sequence[str], methods: Sequence[str]) -> tuple[str, ...]:
    """The methods a chapter runs: ``defaults`` when ``methods`` is empty, else ``methods``, in
    that order; ``required`` (the methods the chapter's claims are about) are added if missing."""
    chosen = check_method_list(methods) or tuple(defaults)
    return tuple(dict.fromkeys((*chosen, *required)))


def check_method_overrides(overrides: Mapping[str, Mapping[str, Any]], profile: str = "paper") -> dict:
    """``{method: {hyperparameter: value}}`` validated against each method's config (names,
    types and ranges, which do not depend on ``profile``). Chapters 2–4 apply the overrides in
    comparisons, so a pass field (the budget rule sets it) or a field the method fixes for
    comparisons raises ValueError naming it (:func:`.harness.check_fixed_settings`)."""
    if not isinstance(overrides, Mapping):
        raise TypeError(f"method_overrides must be a dict {{method: {{hyperparameter: value}}}}; got {overrides!r}")
    for name, settings in overrides.items():
        spec = get_method(name)
        if not isinstance(settings, Mapping):
            raise TypeError(f"method_overrides[{name!r}] must be a dict of hyperparameters; got {settings!r}")
        try:
            spec.config.for_profile(profile, settings)
        except (TypeError, ValueError) as err:
            raise type(err)(f"method_overrides[{name!r}]: {err}") from None
        check_fixed_settings(name, settings, "method_overrides")
    return {name: dict(settings) for name, settings in overrides.items()}


def grid_for(grid: Grid, overrides: Mapping[str, Mapping[str, Any]]) -> Grid:
    """``grid`` without the knobs a method's overrides fix (a given value is used, not tuned;
    the protocol's grid has none, see :class:`.harness.Grid`); the learning-rate factors still
    scale a given learning rate."""
    knobs = {m: {k: v for k, v in table.items() if k not in overrides.get(m, {})} for m, table in grid.knobs.items()}
    return replace(grid, knobs={m: table for m, table in knobs.items() if table})


def merged_base(base: Mapping[str, Mapping] | None, overrides: Mapping[str, Mapping]) -> dict:
    """A chapter's per-method base settings with the researcher's overrides on top."""
    merged = {m: dict(s) for m, s in (base or {}).items()}
    for name, settings in overrides.items():
        merged[name] = {**merged.get(name, {}), **settings}
    return merged


def check_n_seeds(n_seeds: int | None) -> int | None:
    if n_seeds is not None:
        if isinstance(n_seeds, bool) or not isinstance(n_seeds, int):
            raise TypeError(f"n_seeds must be an int >= 1 or None (the profile's); got {n_seeds!r}")
        check_range("n_seeds", n_seeds, 1)
    return n_seeds


def profile_block(profile: str, chapter_rows: Sequence[Mapping], methods: Sequence[str] = (), *,
                  tasks: tuple[str, ...] = ("cifar10", "faces")) -> list[dict]:
    """Every line by which ``profile`` departs from the paper profile, each with its reason:
    the chapter's block (``chN.profile_changes``), the shared ``tasks`` and the protocol
    (:func:`.tasks.task_changes`, :func:`.tasks.protocol_changes`) and the defaults of each of
    ``methods``. Rows ``{part, setting, value, paper, why}``; empty at ``paper``."""
    rows = [*chapter_rows, *task_changes(profile, tasks), *protocol_changes(profile)]
    for name in methods:
        rows += get_method(name).config.changes(profile, f"method: {name}")
    return rows
