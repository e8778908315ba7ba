"""The method registry: one signature for every unlearning method.

A method is a function ``run(model, split, cfg, ctx) -> nn.Module`` registered with
:func:`register` together with a frozen dataclass of hyperparameters. Each hyperparameter is
declared with :func:`param`, which holds its default per profile (``paper`` from the papers or
their code, ``cpu`` scaled down for a 2-core CPU, ``smoke`` tiny) and its allowed range::

    @dataclass(frozen=True)
    class FinetuneConfig(SGDConfig):
        epochs: float = param(10, cpu=2, smoke=5, low=0, low_open=True)
        lr: float = param(0.01, smoke=0.1, low=0, low_open=True)

    @register("finetune", config=FinetuneConfig, needs_retain=True, needs_forget=False,
              passes=("epochs",), reference_retrain_epochs=160, label="FT",
              reference="golatkar2020eternal", idea="keep training on the retain set")
    def finetune(model, split, cfg, ctx):
        return finetune_loop(model, split.retain, cfg, ctx)

A method returns the unlearned model, or ``(model, info)`` with a dict of extras. ``passes``
names the hyperparameters that count passes over data (the ones a compute budget scales); they
may be fractional, and a method runs them through :func:`passes` and ``epoch_batches(...,
fraction=)``: 2.5 epochs are two full passes and the first half of a third.

:func:`unlearn` is the single entry point. Before any work it validates the name, the
profile, every hyperparameter (name, type, range, and model-dependent checks such as CF-k's
``k``) and whether the split carries the data the method needs; it then runs the method on a
deep copy of the model (the caller's model is never modified), under a forked, seeded torch
RNG, and times it with :class:`unlearnkit.metrics.Timer`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import dryrun
from ..config import SMOKE_WHY, setting_text, build_config, check_choice, check_profile, check_range
from ..data.core import RetainAccessError, Split, TensorSet
from ..metrics import Timer
from ..runtime import generator, resolve_device
from ..train import to_input

# ----------------------------------------------------------------------------------------
# Hyperparameters: one frozen dataclass per method, defaults per profile
# ----------------------------------------------------------------------------------------

_UNSET = object()

BUDGET_WHY = ("used only outside a comparison: there the harness sets every pass count from the "
              "budget rule: passes over the data it reads as a fraction of the retrain's passes "
              "(harness.budget_settings)")
BATCH_WHY = "twice the steps a pass of the paper's 256 on the cpu task's 20,000-image pool (a choice, not tuned)"
LR_WHY = ("the cpu model is the small CNN, not ResNet-18; a comparison's tuning grid multiplies this "
          "rate by 0.3, 1 and 3")


def param(paper: Any, *, cpu: Any = _UNSET, smoke: Any = _UNSET, low: float | None = None,
          high: float | None = None, low_open: bool = False, high_open: bool = False,
          choices: tuple | None = None, why: str | None = None):
    """A hyperparameter field: its ``paper`` default, optional ``cpu``/``smoke`` defaults
    (``cpu`` falls back to ``paper``, ``smoke`` to ``cpu``), its allowed range or choices, and
    ``why`` the ``cpu`` value departs from the paper's (required when it does; a test checks)."""
    cpu = paper if cpu is _UNSET else cpu
    smoke = cpu if smoke is _UNSET else smoke
    meta = {"profiles": {"paper": paper, "cpu": cpu, "smoke": smoke},
            "range": (low, high, low_open, high_open), "choices": choices, "why": why}
    return field(default=paper, metadata=meta)


@dataclass(frozen=True)
class MethodConfig:
    """Base class of every method's hyperparameters; checks ranges on construction."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("choices") is not None:
                check_choice(f.name, value, f.metadata["choices"])
            low, high, low_open, high_open = f.metadata.get("range", (None, None, False, False))
            if (low is not None or high is not None) and value is not None:
                check_range(f.name, value, low, high, low_open=low_open, high_open=high_open)

    def check_model(self, model: nn.Module) -> None:
        """Checks that need the model (e.g. ``k`` against its layer count); none by default."""

    def check_split(self, split: Split) -> None:
        """Checks that need the split (e.g. a validation part); none by default."""

    @classmethod
    def defaults(cls, profile: str) -> dict[str, Any]:
        """The default value of every hyperparameter at ``profile``."""
        check_profile(profile)
        return {f.name: f.metadata["profiles"][profile] if "profiles" in f.metadata else f.default
                for f in dataclasses.fields(cls)}

    @classmethod
    def changes(cls, profile: str, part: str = "") -> list[dict]:
        """Rows ``{part, setting, value, paper, why}``: the defaults at ``profile`` that differ
        from the paper's, each with its reason (``param(why=)``; ``smoke``-only values share
        :data:`~unlearnkit.config.SMOKE_WHY`)."""
        paper, here = cls.defaults("paper"), cls.defaults(profile)
        rows = []
        for f in dataclasses.fields(cls):
            if here[f.name] == paper[f.name]:
                continue
            why = f.metadata.get("why") if here[f.name] == cls.defaults("cpu")[f.name] else SMOKE_WHY
            rows.append({"part": part, "setting": f.name, "value": setting_text(here[f.name]),
                         "paper": setting_text(paper[f.name]), "why": why})
        return rows

    @classmethod
    def for_profile(cls, profile: str, overrides: Mapping[str, Any] | None = None) -> "MethodConfig":
        """The profile's defaults with ``overrides``; unknown names, wrong types and
        out-of-range values raise before any work."""
        return build_config(cls, cls.defaults(profile), **(overrides or {}))


@dataclass(frozen=True)
class SGDConfig(MethodConfig):
    """Hyperparameters shared by the SGD-based methods (SalUn / Unlearn-Sparse conventions:
    momentum 0.9, weight decay 5e-4, batch 256). Methods override the defaults they change."""

    epochs: float = param(10, cpu=2, smoke=5, low=0, low_open=True, why=BUDGET_WHY)
    """Passes over the data; fractions run that share of a pass."""
    lr: float = param(0.01, low=0, low_open=True)
    batch_size: int = param(256, cpu=128, smoke=32, low=1, why=BATCH_WHY)
    momentum: float = param(0.9, low=0, high=1, high_open=True)
    weight_decay: float = param(5e-4, low=0)


# ----------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunContext:
    """What every method receives besides model, split and config.

    device:   where the work happens. seed: the run's seed; draw randomness from
    :meth:`generator`. fit: Retrain's training hook (see :mod:`unlearnkit.methods.retrain`).
    progress: show progress bars.
    """

    device: torch.device
    seed: int
    fit: Callable | None = None
    progress: bool = False

    def generator(self, stream: int = 0) -> torch.Generator:
        """A CPU generator for one independent random stream of this run."""
        return generator(self.seed * 1_000_003 + stream)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function, hyperparameter class and what it reads.

    run returns the unlearned model, or ``(model, info)`` with a dict of extras (e.g. a cache
    hit); ``info["train_seconds"]``, when present, is the method's measured compute time and
    becomes :attr:`UnlearnResult.seconds` (a Retrain loaded from the model cache). passes:
    the hyperparameters counting passes over data (what a compute budget scales).
    reference_retrain_epochs: the retrain length of the code base the ``paper`` pass values
    come from; their ratio is the method's budget (passes over the data it reads, as a fraction
    of the retrain's passes). label: the display name in tables (``FT``, ``NegGrad``, ...).
    comparison: ``(field, value)`` pairs fixed whenever the method runs in a comparison
    (:meth:`~unlearnkit.experiments.harness.Grid.candidates`), e.g. DLFD without its own
    checkpoint choice, which no other method gets.
    """

    name: str
    run: Callable[[nn.Module, Split, MethodConfig, RunContext], nn.Module]
    config: type[MethodConfig]
    needs_retain: bool
    needs_forget: bool
    reference: str
    idea: str
    uses_fit: bool = False
    passes: tuple[str, ...] = ()
    reference_retrain_epochs: float | None = None
    label: str = ""
    comparison: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class UnlearnResult:
    """The unlearned model (a new object, in eval mode), the method's wall time in seconds,
    its full config, and extras: ``info["call_seconds"]`` is the wall time of this call, equal
    to ``seconds`` unless the method reported the time of an earlier, cached run."""

    model: nn.Module
    seconds: float
    config: MethodConfig
    method: str
    info: dict = field(default_factory=dict)


class Diverged(FloatingPointError):
    """A method's run blew up: its weights, or the losses it reads while running, became NaN
    or infinite, so there is no model to measure. The harness records such a run as diverged
    (every metric NaN, the verdicts it feeds "not measured") instead of failing the chapter."""


def check_finite_weights(model: nn.Module, what: str) -> None:
    """Raise :class:`Diverged` naming ``what`` and the first parameter that is NaN or infinite."""
    for name, tensor in model.named_parameters():
        if not torch.isfinite(tensor).all():
            raise Diverged(f"{what}: parameter {name!r} holds NaN or infinite values")


METHODS: dict[str, MethodSpec] = {}


def register(name: str, *, config: type[MethodConfig], needs_retain: bool, reference: str,
             idea: str, needs_forget: bool = True, uses_fit: bool = False, passes: tuple[str, ...] = (),
             reference_retrain_epochs: float | None = None, label: str | None = None,
             comparison: Mapping[str, object] | None = None, registry: dict[str, MethodSpec] | None = None):
    """Decorator adding ``run(model, split, cfg, ctx) -> nn.Module`` to the registry as ``name``.

    A duplicate name raises. ``needs_retain=False`` methods receive ``split.without_retain()``,
    which raises on any access to the retain set. ``passes``: the config fields counting passes
    over data (each must be a field of ``config``); ``reference_retrain_epochs`` (required with
    ``passes``): the retrain length their ``paper`` values were set against. ``label``: display
    name (default ``name``). ``comparison``: settings fixed in every comparison (fields of
    ``config``, validated). ``registry`` defaults to :data:`METHODS`.
    """
    table = METHODS if registry is None else registry
    if not (isinstance(config, type) and issubclass(config, MethodConfig)):
        raise TypeError(f"config for method {name!r} must be a MethodConfig subclass; got {config!r}")
    fields = sorted(f.name for f in dataclasses.fields(config))
    unknown = [p for p in passes if p not in fields]
    fixed = dict(comparison or {})
    config.for_profile("paper", fixed)  # a comparison setting must be a valid field value
    if unknown:
        raise ValueError(f"passes {unknown} of method {name!r} are not fields of {config.__name__}; "
                         f"fields: {fields}")
    if passes and not (isinstance(reference_retrain_epochs, (int, float)) and reference_retrain_epochs > 0):
        raise ValueError(f"method {name!r} counts passes {list(passes)}, so it needs reference_retrain_epochs > 0 "
                         f"(the retrain length its paper values were set against); got {reference_retrain_epochs!r}")

    def decorate(run):
        if name in table:
            raise ValueError(f"method {name!r} is already registered (by {table[name].run.__module__}); "
                             f"choose another name")
        table[name] = MethodSpec(name, run, config, needs_retain, needs_forget, reference, idea, uses_fit,
                                 tuple(passes), reference_retrain_epochs, label or name, tuple(fixed.items()))
        return run

    return decorate


def get_method(name: str, registry: Mapping[str, MethodSpec] | None = None) -> MethodSpec:
    """The registered method ``name``; an unknown name lists the known ones."""
    table = METHODS if registry is None else registry
    if name not in table:
        raise ValueError(f"unknown unlearning method {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def available_methods() -> tuple[str, ...]:
    """Names of every registered method, in registration order."""
    return tuple(METHODS)


def method_defaults(name: str, profile: str = "cpu") -> dict[str, Any]:
    """Default hyperparameters of method ``name`` at ``profile``."""
    return get_method(name).config.defaults(profile)


def has_retain(split: Split) -> bool:
    """Whether ``split`` lets methods read its retain set (``False`` for ``without_retain()``)."""
    try:
        split.retain
    except RetainAccessError:
        return False
    return True


def _split_for(spec: MethodSpec, split: Split) -> Split:
    if not isinstance(split, Split):
        raise TypeError(f"split must be a unlearnkit.data.Split; got {type(split).__name__}")
    retain_ok = has_retain(split)
    if spec.needs_retain and not retain_ok:
        raise ValueError(f"method {spec.name!r} needs the retain set, but the split is retain-free "
                         f"(split.without_retain()); retain-free methods: "
                         f"{', '.join(sorted(n for n, s in METHODS.items() if not s.needs_retain)) or 'none'}")
    if spec.needs_retain or not retain_ok:
        return split
    return split.without_retain()


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    return seed


def unlearn(name: str, model: nn.Module, split: Split, *, profile: str = "cpu",
            device: str = "auto", seed: int = 0, fit: Callable | None = None,
            progress: bool = False, **hyperparameters: Any) -> UnlearnResult:
    """Run unlearning method ``name`` on a copy of ``model`` and time it.

    model: a trained classifier (logits ``[B, K]`` from pixels ``[B, C, H, W]`` in ``[0, 1]``).
    split: the :class:`Split`; retain-free methods are handed ``split.without_retain()``.
    profile: which defaults to use (``smoke``, ``cpu``, ``paper``); ``hyperparameters``
    override them by name. fit: Retrain only, see :mod:`unlearnkit.methods.retrain`.
    Returns :class:`UnlearnResult` with the unlearned model (on ``device``, in eval mode),
    the wall time of the method itself (copying and validation excluded, measured by
    :class:`unlearnkit.metrics.Timer`) and its config. Raises :class:`Diverged` when the
    unlearned weights are not finite.
    """
    spec = get_method(name)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    cfg = spec.config.for_profile(profile, hyperparameters)
    cfg.check_model(model)
    split = _split_for(spec, split)
    cfg.check_split(split)
    _check_seed(seed)
    if fit is not None and not spec.uses_fit:
        users = sorted(n for n, s in METHODS.items() if s.uses_fit)
        raise ValueError(f"fit= is only used by {', '.join(users)}; method {name!r} does not take it")
    dev = resolve_device(device)
    work = copy.deepcopy(model).to(dev)
    ctx = RunContext(dev, seed, fit, progress)
    with _seeded_torch(seed, dev), Timer(dev) as timer:
        out = spec.run(work, split, cfg, ctx)
    unlearned, info = out if isinstance(out, tuple) else (out, {})
    check_finite_weights(unlearned, f"{name} (seed {seed}) diverged")
    seconds = float(info.get("train_seconds", timer.seconds))
    return UnlearnResult(unlearned.eval(), seconds, cfg, name, {**info, "call_seconds": timer.seconds})


class _seeded_torch:
    """Fork torch's global RNG (CPU and the device's) and seed it, so that dropout and
    weight initialisation inside a method are reproducible and leave no trace outside."""

    def __init__(self, seed: int, device: torch.device):
        devices = [device] if device.type == "cuda" else []
        self._fork = torch.random.fork_rng(devices=devices)
        self._seed = seed

    def __enter__(self):
        self._fork.__enter__()
        torch.manual_seed(self._seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


def methods_table(profile: str = "cpu") -> pd.DataFrame:
    """One row per registered method: key idea, reference (bib key), whether it reads the
    retain / forget set, and its default hyperparameters at ``profile`` (from the registry)."""
    check_profile(profile)
    rows = []
    for spec in METHODS.values():
        defaults = spec.config.defaults(profile)
        rows.append({"method": spec.name, "idea": spec.idea, "reference": spec.reference,
                     "needs retain": spec.needs_retain, "needs forget": spec.needs_forget,
                     "defaults": ", ".join(f"{k}={_fmt(v)}" for k, v in defaults.items())})
    return pd.DataFrame(rows)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------------------
# Small building blocks the methods share
# ----------------------------------------------------------------------------------------

def as_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Model input on ``device``: uint8 images ``[B, C, H, W]`` become float pixels in
    ``[0, 1]``; float tensors (already pixels, e.g. UNSIR noise) pass unchanged (:func:`to_input`)."""
    return to_input(x, device)


def passes(epochs: float) -> list[float]:
    """The passes of a run of ``epochs`` passes over the data, each as the share of a full pass
    it runs: ``floor(epochs)`` full passes, then the remainder if any (2.5 → ``[1, 1, 0.5]``,
    0.75 → ``[0.75]``, 3 → ``[1, 1, 1]``, 0 → ``[]``); a dry run keeps the first."""
    whole = math.floor(epochs)
    rest = epochs - whole
    return dryrun.unlearning_passes([1.0] * whole + ([rest] if rest > 0 else []))


def pass_batches(n: int, batch_size: int, fraction: float = 1.0) -> int:
    """Batches in ``fraction`` of a pass over ``n`` samples: ``max(1, ⌈fraction · ⌈n / batch_size⌉⌉)``,
    the product less 1e-9 so that float error adds no batch (epochs 1.1 leave a fraction
    0.10000000000000009: 1 of 10 batches, not 2); a dry run caps it (:mod:`unlearnkit.dryrun`)."""
    return dryrun.unlearning_batches(max(1, math.ceil(fraction * math.ceil(n / batch_size) - 1e-9)))


def epoch_batches(data: TensorSet, batch_size: int, gen: torch.Generator, device: torch.device,
                  fraction: float = 1.0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One shuffled pass over ``data``: ``(x [B, C, H, W] float on device, y [B])``; with
    ``fraction < 1`` only its first :func:`pass_batches` batches (the shuffle draws the same from ``gen``)."""
    count = pass_batches(len(data), batch_size, fraction)
    for x, y in itertools.islice(data.batches(batch_size, shuffle=True, generator=gen), count):
        x, y = dryrun.cap_batch(x, y)
        yield as_input(x, device), y.to(device)


def endless_batches(data: TensorSet, batch_size: int, gen: torch.Generator,
                    device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches of ``data`` forever, reshuffled at every pass (pairs a small forget set
    with the batches of a large retain set)."""
    while True:
        yield from epoch_batches(data, batch_size, gen, device)


def sgd(params, cfg: Any, *, weight_decay: float | None = None) -> torch.optim.SGD:
    """SGD with ``cfg.lr``, ``cfg.momentum`` and ``cfg.weight_decay`` (or ``weight_decay``)."""
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """``zero_grad → backward → step``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's distillation loss ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, mean over the batch.

    student_logits, teacher_logits: ``[B, K]``. The ``T²`` keeps gradient sizes comparable
    across temperatures (as in SCRUB's ``DistillKL``).
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature ** 2


def wrong_labels(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from ``y`` for each entry of ``y [B]``."""
    shift = torch.randint(1, num_classes, y.shape, generator=gen).to(y.device)
    return (y + shift) % num_classes


def reset_parameters(model: nn.Module) -> nn.Module:
    """Re-initialise every submodule that has ``reset_parameters`` (conv, linear, BatchNorm
    with its running statistics), from torch's global RNG (seeded by :func:`unlearn`)."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model

