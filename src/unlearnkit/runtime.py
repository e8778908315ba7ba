"""Device choice, explicit seeding, default folders and atomic file writes."""

from __future__ import annotations

import functools
import os
import random
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a ``torch.device``.

    ``"auto"`` picks CUDA, then Apple's MPS, then the CPU. Asking for a device that is
    not available raises instead of silently falling back.
    """
    if not isinstance(name, str):
        raise TypeError(f"device must be a string, one of {DEVICES}; got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ValueError(f"unknown device {name!r}; allowed: {', '.join(DEVICES)} (or 'cuda:N')")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a CPU generator from ``seed``.

    Also makes cuDNN pick its convolution kernels deterministically (no timing-based
    autotuning, no atomics-based kernels), so a GPU rerun at the same seed repeats its numbers.
    Chapters call this once at the top; library code takes explicit generators or seeds.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)


CUBLAS_WORKSPACE = ":4096:8"
"""The cuBLAS workspace setting deterministic CUDA matrix products need (PyTorch's reproducibility notes)."""


def deterministic(on: bool = True) -> bool:
    """Make torch refuse nondeterministic kernels (``torch.use_deterministic_algorithms``) and
    set ``CUBLAS_WORKSPACE_CONFIG`` so CUDA matrix products repeat bit for bit; ``on=False``
    turns the check off again. An op without a deterministic kernel then raises instead of
    varying silently. Returns ``on``; anything but a bool is an error."""
    if not isinstance(on, bool):
        raise TypeError(f"deterministic must be True or False; got {on!r}")
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(on)
    return on


def generator(seed: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with ``seed`` (no global state touched)."""
    return torch.Generator().manual_seed(int(seed))


_ROOTS: dict[str, str] = {}
"""Data and cache roots that win over every argument and environment variable while set: a dry
run's temporary roots (:func:`unlearnkit.dryrun.enable` sets them, this module knows no dry run)."""


def override_roots(*, data: str | None = None, cache: str | None = None) -> None:
    """Make :func:`data_root` and :func:`cache_root` return ``data`` and ``cache`` (None: back to
    their arguments and environment)."""
    _ROOTS.clear()
    _ROOTS.update({name: value for name, value in (("data", data), ("cache", cache)) if value is not None})


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$UNLEARNKIT_DATA``, else ``./data``; during a
    dry run its temporary data root (links to those plus stand-ins, :mod:`unlearnkit.dryrun`)."""
    if "data" in _ROOTS:
        return Path(_ROOTS["data"])
    return Path(root or os.environ.get("UNLEARNKIT_DATA") or "data").expanduser().resolve()


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The model/result cache: ``root``, else ``$UNLEARNKIT_CACHE``, else ``~/.cache/unlearnkit``;
    during a dry run its temporary cache, so nothing a dry run trains is read as a real result."""
    if "cache" in _ROOTS:
        return Path(_ROOTS["cache"])
    default = Path.home() / ".cache" / "unlearnkit"
    return Path(root or os.environ.get("UNLEARNKIT_CACHE") or default).expanduser().resolve()


def writable_folder(folder: str | os.PathLike, what: str = "folder", hint: str = "") -> Path:
    """Create ``folder`` if needed and prove it writable (a probe file, removed again).

    Raises ``PermissionError`` naming ``what`` and the folder (plus ``hint``, e.g. which
    setting chooses it) when it cannot be created or written, e.g. a file is in the way.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"{what} {folder} is not writable ({err.strerror or err}); "
                              f"allowed: a writable folder{hint}") from None
    return folder


def single_threaded(fn):
    """Decorator: run ``fn`` with the BLAS and OpenMP pools of numpy/scipy/scikit-learn on one thread.

    Small fits (a logistic regression or an SVC on a few thousand rows) gain nothing from
    threads, and on a shared machine idle pool threads spin: chapter 1's linear-probe curves took
    54 s per seed on two threads under load and 3.6 s on one. Put it on functions that only fit
    scikit-learn models, not on torch work.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)
    return wrapper


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception inside the block leaves no partial file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o644)  # mkstemp makes owner-only files; a shared cache must be readable
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically; load back with ``weights_only=True``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@functools.lru_cache(maxsize=1)
def source_commit() -> str:
    """The git commit of the package's checkout (short hash, ``+dirty`` with uncommitted edits to
    tracked files), or ``unknown`` outside a git checkout."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


CODE_PATHS = ("src", "benchmarks/*.py")
"""What decides a measurement (git pathspecs): the package and the benchmark scripts, not the
figures they wrote (``benchmarks/*.json``)."""


def same_code(commit: str | None) -> bool | None:
    """Whether this checkout's :data:`CODE_PATHS` (working tree, edits included) equal those of
    ``commit`` (a :func:`source_commit` value): True or False; None when it cannot be told (no
    commit, ``unknown``, ``+dirty``, a commit this clone lacks, no git)."""
    if not commit or commit == "unknown" or commit.endswith("+dirty"):
        return None
    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        diff = subprocess.run(["git", "-C", top, "diff", "--quiet", commit, "--", *CODE_PATHS],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(diff.returncode)
