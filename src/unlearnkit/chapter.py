"""One chapter's settings, resolved once: what its parameters cell asks for, checked and made concrete.

``settings = chapter.settings("04_head-to-head", profile="smoke", n_seeds=2)`` checks every
parameter against the chapter's ``parameters`` cell (unknown names, wrong types and bad values
raise, naming the allowed ones, before anything trains: the same checks the runner makes before
a kernel starts), then resolves the profile into one frozen :class:`Settings`: the device, the
seeds, the book's protocol with the tuning grid the method overrides leave, the problem knobs
and the chapter's own configuration. A chapter's first code cell calls it with ``globals()``
(the parameters papermill injected); a script calls it with keywords.

``chapter.work(settings)`` is the chapter's expensive work (:class:`.experiments.work.Work`):
the comparisons its cells run and the trainings they need, the same objects ``python -m
unlearnkit plan`` lists and ``warm`` runs on a cluster.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch

from . import dryrun, runtime
from .experiments import options, tasks
from .experiments.tasks import Protocol
from .parameters import (RUNNER_SET, notebook_parameters, prepare_chapter, project_root, read_notebook,
                         resolve_chapter)
from .record import Recorder

MODULES = {"00_setup": "setup", "01_distributional": "ch1", "02_dlfd": "ch2", "03_mumis": "ch3",
           "04_head-to-head": "ch4"}
"""The :mod:`unlearnkit.experiments` module of each chapter that has one. It may define
``chapter_config(values, root)`` (the chapter's configuration from its parameter values),
``profile_changes(profile)`` (the chapter's lines of the profile block) and ``work(settings)``."""


@dataclass(frozen=True)
class Settings:
    """Everything a chapter run is decided by, resolved from its parameters.

    values: every parameter of the chapter's ``parameters`` cell, defaults filled in.
    device: the resolved torch device. seeds: the independent seeds (``seed`` and the ones the
    protocol adds). protocol: the book's protocol at the profile (:func:`.tasks.protocol`), its
    grid without the knobs the method overrides fix (:func:`.options.grid_for`).
    method_overrides: ``{method: {hyperparameter: value}}``, checked. knobs: the problem knobs
    that are set (:data:`.tasks.SCENARIO_KNOBS`). config: the chapter's own configuration
    (``chN.profile_config``), or None. plugin_methods: the methods the plugins registered.
    """

    chapter: str
    values: dict
    device: torch.device
    seeds: tuple[int, ...]
    protocol: Protocol
    method_overrides: dict = field(default_factory=dict)
    knobs: dict = field(default_factory=dict)
    config: Any = None
    plugin_methods: tuple[str, ...] = ()

    @property
    def profile(self) -> str:
        return self.values["profile"]

    @property
    def seed(self) -> int:
        return self.values["seed"]

    @property
    def root(self) -> str | None:
        """The data root the parameters name (None: ``$UNLEARNKIT_DATA``, else ./data)."""
        return self.values.get("data_root") or None

    def spec(self, problem: str, seed: int, **knobs) -> tasks.ProblemSpec:
        """The problem ``problem`` (:data:`.tasks.PROBLEM_KNOBS`) at ``seed`` with this run's
        knobs that it takes, and ``knobs`` on top (:func:`.tasks.spec`)."""
        taken = tasks.PROBLEM_KNOBS.get(problem, ())
        return tasks.spec(problem, self.profile, seed=seed, root=self.root,
                          **{**{k: v for k, v in self.knobs.items() if k in taken}, **knobs})

    def recorder(self) -> Recorder:
        """The chapter's :class:`~unlearnkit.record.Recorder`, holding these parameters and, in
        the results file's ``config``, what they resolved to: the chapter's configuration, the
        protocol, the method overrides and the plugins' methods."""
        rec = Recorder(self.chapter, profile=self.profile, device=str(self.device), seed=self.seed,
                       results_path=self.values.get("results_path", ""),
                       parameters={k: v for k, v in self.values.items() if k != "results_path"})
        if self.config is not None:
            rec.config("chapter", self.config)
        rec.configs(protocol=self.protocol, method_overrides=self.method_overrides,
                    plugin_methods=list(self.plugin_methods))
        return rec

    def changes(self, methods=(), *, tasks: tuple[str, ...] = ("cifar10", "faces")) -> list[dict]:
        """Every line by which this profile departs from the paper's, with its reason (the
        chapter's block, the shared tasks and protocol, each of ``methods``)."""
        module = _module(self.chapter)
        rows = module.profile_changes(self.profile) if hasattr(module, "profile_changes") else []
        return options.profile_block(self.profile, rows, methods, tasks=tasks)


def _module(stem: str):
    name = MODULES.get(stem)
    return importlib.import_module(f"unlearnkit.experiments.{name}") if name else None


def _project_root(book: Path | None) -> Path:
    """The book's folder: ``book``, else above the working directory, else above this package
    (a source checkout)."""
    try:
        return project_root(book)
    except FileNotFoundError:
        if book is not None:
            raise
        return project_root(Path(__file__).resolve().parent)


def settings(chapter: str, namespace: Mapping[str, Any] | None = None, *, book: Path | None = None,
             **parameters) -> Settings:
    """The resolved :class:`Settings` of ``chapter`` (a stem like ``04_head-to-head`` or a short
    name like ``head-to-head``).

    namespace: where to read the chapter's parameters by name (a chapter passes ``globals()``);
    ``parameters`` go on top; the rest keep the defaults of the chapter's ``parameters`` cell.
    book: the book's folder (default: found above the working directory). Raises on unknown names, wrong types and bad values, before any work. Sets what a run is
    decided by in this process: the dry run (:func:`.dryrun.enable`), deterministic kernels,
    the plugins' methods, and the global seed.
    """
    root = _project_root(book)
    path = resolve_chapter(root, chapter)
    defaults = notebook_parameters(read_notebook(path))
    given = {k: v for k, v in (namespace or {}).items() if k in defaults}
    given.update(parameters)
    fixed = {k: given.pop(k, defaults.get(k)) for k in RUNNER_SET if k in defaults}
    _, _, _, defaults, overrides = prepare_chapter(path.stem, fixed["profile"], given, root)
    values = {**defaults, **overrides, **fixed}
    profile, data_root = values["profile"], values.get("data_root") or None
    dryrun.enable(values.get("dry_run", False), root=data_root)  # first: a dry run swaps the data and cache roots
    runtime.deterministic(values.get("deterministic", False))
    plugin_methods = tuple(options.load_plugins(values.get("plugins", [])))
    method_overrides = options.check_method_overrides(values.get("method_overrides", {}), profile)
    knobs = tasks.check_knobs(**{k: values[k] for k in tasks.SCENARIO_KNOBS if k in values})
    protocol = tasks.protocol(profile, n_seeds=values.get("n_seeds"))
    protocol = replace(protocol, grid=options.grid_for(protocol.grid, method_overrides))
    device = runtime.resolve_device(values.get("device", "auto"))
    runtime.seed_everything(values.get("seed", 0))
    module = _module(path.stem)
    config = module.chapter_config(values, data_root) if hasattr(module, "chapter_config") else None
    return Settings(path.stem, values, device, tuple(values.get("seed", 0) + r for r in range(protocol.seeds)),
                    protocol, method_overrides, knobs, config, plugin_methods)


def work(s: Settings):
    """The chapter's :class:`~unlearnkit.experiments.work.Work` at ``s`` (empty where the chapter
    plans none: its cells train nothing a cluster could run ahead)."""
    from .experiments.work import Work

    module = _module(s.chapter)
    return module.work(s) if hasattr(module, "work") else Work(s.chapter)
