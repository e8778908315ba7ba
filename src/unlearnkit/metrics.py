"""Evaluation: accuracies, three membership-inference attacks, forgetting score, NoMUS, Avg. Gap.

All accuracies and attack scores are **fractions in [0, 1]** (multiply by 100 for the papers'
percentages). The attacks follow three conventions that coexist in the literature; each has its
own name, and a chapter says which one a number uses:

* :func:`mia_loss_logreg` (DLFD): per-sample CE loss; logistic regression on forget (member, 1)
  vs unseen or test (0), 10-split cross-validation; reports the CV accuracy (0.5 = chance).
* :func:`mia_efficacy_svc` (SalUn's MIA-Efficacy): true-label probability; SVC(C=3, rbf,
  gamma="auto") on retain (1) vs test (0); reports the fraction of forget samples flagged
  non-member (higher = more forgetting).
* :func:`mia_entropy_logreg` (the MU-Mis tables' convention, as far as we can tell): entropy of the
  softmax; logistic regression on retain (1) vs test (0); reports the fraction of forget samples
  flagged member (lower = more forgetting).

Each attack's member and non-member training sets are balanced by a seeded subsample of the
larger one, so an attacker that learnt nothing is right half of the time whatever the set sizes
(DLFD's code does not balance; its MUFAC sets are 1,500 vs 1,504, where it makes no difference).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC
from torch import nn

from .config import check_range
from .data.core import Split, TensorSet
from .runtime import atomic_write_text, single_threaded
from .train import predict


# --- model outputs -------------------------------------------------------------------------

def accuracy(model: nn.Module, data: TensorSet, *, device: torch.device | str) -> float:
    """Top-1 accuracy of ``model`` on ``data`` as a fraction in [0, 1] (eval mode)."""
    return _accuracy(predict(model, data, device=device), data.y)


def data_digest(data: TensorSet) -> str:
    """A 16-hex digest of ``data``'s images and labels (what an evaluation of them depends on)."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    for t in (data.x, data.y):
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def cached_accuracy(model: nn.Module, data: TensorSet, *, model_path: str | Path, device: torch.device | str) -> float:
    """Accuracy of the cached model stored at ``model_path`` on ``data``, computed once: it is
    kept beside the model (``<model>.eval-<digest of data>.json``, written atomically) and read
    back by every later call, in this process or another, that scores the same model on the
    same data. A fixed model on a fixed evaluation set (an original or retrained model on its
    test set) is then scored once per cache, not once per chapter that builds its problem."""
    model_path = Path(model_path)
    sidecar = model_path.with_name(f"{model_path.stem}.eval-{data_digest(data)}.json")
    if sidecar.is_file():
        stored = json.loads(sidecar.read_text())
        if stored.get("model") == model_path.name and stored.get("n") == len(data):
            return float(stored["accuracy"])
    value = _accuracy(predict(model, data, device=device), data.y)
    if model_path.is_file():
        atomic_write_text(sidecar, json.dumps({"model": model_path.name, "n": len(data), "accuracy": value}))
    return value


def per_sample_loss(model: nn.Module, data: TensorSet, *, device: torch.device | str) -> torch.Tensor:
    """Cross-entropy ``-log softmax(f(x))_y`` of every sample, ``[N]`` (eval mode, no smoothing)."""
    return _losses(predict(model, data, device=device), data.y)


def softmax_outputs(model: nn.Module, data: TensorSet, *, device: torch.device | str) -> torch.Tensor:
    """Class probabilities ``softmax(f(x))``, ``[N, num_classes]`` (eval mode)."""
    return predict(model, data, device=device).softmax(1)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    if len(y) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (logits.argmax(1) == y).float().mean().item()


def _losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _true_class_prob(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logits.softmax(1).gather(1, y[:, None]).squeeze(1)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H(p) = -Σ_c p_c log p_c`` of ``p = softmax(logits)``, ``[N]``."""
    logp = logits.log_softmax(1)
    return -(logp.exp() * logp).sum(1)


# --- membership-inference attacks ----------------------------------------------------------

def _as_feature(values: torch.Tensor | np.ndarray | Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-sample values; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def balance(members: np.ndarray, nonmembers: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Subsample the larger of the two 1-D arrays (without replacement, seeded) to the smaller's size."""
    rng = np.random.default_rng(seed)
    n = min(len(members), len(nonmembers))

    def pick(a: np.ndarray) -> np.ndarray:
        return a if len(a) == n else a[np.sort(rng.choice(len(a), n, replace=False))]

    return pick(members), pick(nonmembers)


def at_most(data: TensorSet, n: int | None, seed: int) -> TensorSet:
    """A seeded random subset of ``n`` rows of ``data`` (all of it when it is not larger, or ``n`` is None)."""
    if n is None or len(data) <= n:
        return data
    return data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n])


def _binary_set(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([members, nonmembers])[:, None]
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    return x, y


@single_threaded
def mia_loss_logreg(member_losses, nonmember_losses, *, n_splits: int = 10, test_size: float = 0.1,
                    seed: int = 0, balanced: bool = True) -> float:
    """DLFD's MIA: cross-validated accuracy of a logistic regression that tells members by their loss.

    member_losses:    ``[N1]`` CE losses of the forget set (label 1).
    nonmember_losses: ``[N0]`` CE losses of unseen or test data (label 0).
    ``balanced`` (default): the larger side is subsampled to the smaller (seeded), so 0.5 = the
    attacker cannot tell and 1 = fully separable. ``balanced=False`` keeps both sides whole, as
    DLFD's released monitor does: chance is then the larger side's share (RAF-DB's 3,314 forget
    against 1,227 validation losses: 0.73). Accuracy is averaged over
    ``StratifiedShuffleSplit(n_splits, test_size)`` folds; ``test_size=0.1`` is sklearn's default,
    which DLFD's ``simple_mia`` uses.
    """
    check_range("n_splits", n_splits, 1)
    check_range("test_size", test_size, 0, 1, low_open=True, high_open=True)
    members, nonmembers = _as_feature(member_losses, "member_losses"), _as_feature(nonmember_losses, "nonmember_losses")
    if balanced:
        members, nonmembers = balance(members, nonmembers, seed)
    elif min(len(members), len(nonmembers)) < 2:
        raise ValueError(f"too few samples: {len(members)} members, {len(nonmembers)} non-members; need 2 a side")
    n_test = math.ceil(test_size * (len(members) + len(nonmembers)))
    if n_test < 2 or len(members) + len(nonmembers) - n_test < 2:
        raise ValueError(f"too few samples for a stratified split: {len(members)} per side after balancing "
                         f"with test_size={test_size}; need at least {math.ceil(1 / test_size)} per side")
    x, y = _binary_set(members, nonmembers)
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=cv, scoring="accuracy")
    return float(scores.mean())


def _fit_member_attack(clf, member_feature: np.ndarray, nonmember_feature: np.ndarray, seed: int):
    members, nonmembers = balance(member_feature, nonmember_feature, seed)
    if len(members) < 2:
        raise ValueError("the attack needs at least 2 member and 2 non-member samples")
    return clf.fit(*_binary_set(members, nonmembers))


def mia_efficacy_svc(model: nn.Module, retain: TensorSet, test: TensorSet, forget: TensorSet, *,
                     device: torch.device | str, seed: int = 0) -> float:
    """SalUn's "MIA-Efficacy": fraction of forget samples an SVC predicts to be non-members.

    Feature: the true-label probability ``softmax(f(x))_y``. Attack: ``SVC(C=3, kernel="rbf",
    gamma="auto")`` trained on retain (member, 1; subsampled to the test size) vs test
    (non-member, 0). Higher = the forget set looks less like training data (more forgetting).
    """
    retain = at_most(retain, len(test), seed)
    conf = [_true_class_prob(predict(model, d, device=device), d.y).numpy() for d in (retain, test, forget)]
    return _svc_efficacy(*conf, seed)


@single_threaded
def _svc_efficacy(retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int) -> float:
    clf = _fit_member_attack(SVC(C=3, kernel="rbf", gamma="auto"), retain_conf, test_conf, seed)
    return float(1.0 - clf.predict(forget_conf[:, None]).mean())


def mia_entropy_logreg(model: nn.Module, retain: TensorSet, test: TensorSet, forget: TensorSet, *,
                       device: torch.device | str, seed: int = 0) -> float:
    """Entropy MIA (the MU-Mis table convention): fraction of forget samples flagged as members.

    Feature: the entropy of ``softmax(f(x))``. Attack: logistic regression trained on retain
    (member, 1; balanced with test) vs test (non-member, 0). Lower = more forgetting.
    """
    retain = at_most(retain, len(test), seed)
    entropies = [_entropy(predict(model, d, device=device)).numpy() for d in (retain, test, forget)]
    return _entropy_membership(*entropies, seed)


@single_threaded
def _entropy_membership(retain_h: np.ndarray, test_h: np.ndarray, forget_h: np.ndarray, seed: int) -> float:
    clf = _fit_member_attack(LogisticRegression(max_iter=1000), retain_h, test_h, seed)
    return float(clf.predict(forget_h[:, None]).mean())


# --- summary scores ------------------------------------------------------------------------

def _check_fraction(name: str, value: float) -> float:
    """``value`` if it is in [0, 1]; NaN (which every range comparison lets through) raises too."""
    if math.isnan(value):
        raise ValueError(f"{name} is NaN; allowed: a fraction in [0, 1]")
    return check_range(name, value, 0, 1)


def forgetting_score(mia: float) -> float:
    """DLFD's forgetting score ``FS = 2·|MIA − 0.5|`` in [0, 1] (0 = attack at chance)."""
    _check_fraction("mia", mia)
    return 2.0 * abs(mia - 0.5)


def nomus(test_acc: float, mia: float) -> float:
    """DLFD's NoMUS ``= ½·(test accuracy + (1 − FS))`` in [0, 1], higher is better.

    ``test_acc`` is a fraction in [0, 1] (not a percentage); ``mia`` the loss-logreg MIA accuracy.
    """
    _check_fraction("test_acc", test_acc)
    return 0.5 * (test_acc + (1.0 - forgetting_score(mia)))


def avg_gap(metrics: Mapping[str, float], retrain: Mapping[str, float],
            keys: Sequence[str] = ("RA", "FA", "TA")) -> float:
    """MU-Mis's Avg. Gap ``= mean_k |metrics[k] − retrain[k]|`` over ``keys`` (in the inputs' units)."""
    if not keys:
        raise ValueError("avg_gap needs at least one key")
    missing = [k for k in keys if k not in metrics or k not in retrain]
    if missing:
        raise KeyError(f"avg_gap: keys {missing} missing; metrics has {sorted(metrics)}, retrain has {sorted(retrain)}")
    return float(np.mean([abs(float(metrics[k]) - float(retrain[k])) for k in keys]))


# --- everything at once --------------------------------------------------------------------

def evaluate_split(model: nn.Module, split: Split, *, device: torch.device | str, seed: int = 0,
                   retain_sample: int | None = None) -> dict[str, float]:
    """All metrics of ``model`` on ``split``; fractions in [0, 1].

    Keys: ``RA``, ``FA``, ``TA`` (retain / forget / test accuracy), ``FTA`` (forget-test accuracy,
    when ``split.forget_test`` exists), ``mia_loss_logreg`` (forget vs ``split.unseen``, or
    test when there is no unseen set), ``mia_efficacy_svc``, ``mia_entropy_logreg``,
    ``forgetting_score`` and ``nomus`` (both from the loss-logreg MIA and TA), ``n_retain_eval``.
    ``retain_sample``: evaluate RA and the retain side of the attacks on a seeded subsample of
    this many retain samples; ``None`` uses all of them. Since the attacks balance retain with
    test, it also caps the SVC's training set (an SVC on 10k + 10k points takes ~10 CPU-s, and
    predicting 45k CIFAR images with ``small_cnn`` ~40 CPU-s).
    """
    retain = split.retain
    if retain_sample is not None:
        check_range("retain_sample", retain_sample, 2)
        retain = at_most(retain, retain_sample, seed)
    logits = {name: predict(model, part, device=device) for name, part in
              (("retain", retain), ("forget", split.forget), ("test", split.test))}
    labels = {"retain": retain.y, "forget": split.forget.y, "test": split.test.y}
    out = {"RA": _accuracy(logits["retain"], labels["retain"]),
           "FA": _accuracy(logits["forget"], labels["forget"]),
           "TA": _accuracy(logits["test"], labels["test"])}
    if split.forget_test is not None:
        out["FTA"] = accuracy(model, split.forget_test, device=device)
    nonmember = split.unseen if split.unseen is not None else split.test
    nonmember_loss = (_losses(predict(model, nonmember, device=device), nonmember.y)
                      if split.unseen is not None else _losses(logits["test"], labels["test"]))
    out["mia_loss_logreg"] = mia_loss_logreg(_losses(logits["forget"], labels["forget"]), nonmember_loss, seed=seed)
    conf = {k: _true_class_prob(logits[k], labels[k]).numpy() for k in logits}
    out["mia_efficacy_svc"] = _svc_efficacy(conf["retain"], conf["test"], conf["forget"], seed)
    ent = {k: _entropy(logits[k]).numpy() for k in logits}
    out["mia_entropy_logreg"] = _entropy_membership(ent["retain"], ent["test"], ent["forget"], seed)
    out["forgetting_score"] = forgetting_score(out["mia_loss_logreg"])
    out["nomus"] = nomus(out["TA"], out["mia_loss_logreg"])
    out["n_retain_eval"] = len(retain)
    return out


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[int, float, float, float]:
    """``(n, mean, low, high)``: the Student-t interval of the mean of independent runs (seeds).

    ``None`` and NaN values are dropped. With fewer than two values there is no interval and
    ``low`` / ``high`` are NaN.
    """
    from scipy import stats

    x = np.asarray([float(v) for v in values if v is not None and not math.isnan(float(v))], dtype=float)
    if len(x) == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return 1, mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return len(x), mean, mean - half, mean + half


class Timer:
    """Wall-clock timer: ``with Timer() as t: ...`` then ``t.seconds``.

    With a CUDA ``device`` it synchronises before reading the clock, so queued kernels count.
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self.seconds = float("nan")

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "Timer":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start


def best_of(fn, repeats: int = 3, *, warmup: bool = True, device: torch.device | str | None = None) -> float:
    """Minimum wall time in seconds of ``repeats`` calls of ``fn()`` (after one warm-up call).

    The minimum is the least noisy estimate of a cost on a shared machine; with a CUDA
    ``device`` each call is synchronised (see :class:`Timer`).
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        with Timer(device) as timer:
            fn()
        times.append(timer.seconds)
    return min(times)
