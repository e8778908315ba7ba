"""Chapter 0 (the experimental protocol): dataset overview, sample images, attacks on the original."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from .. import figures
from ..config import check_profile
from ..data import Split, TensorSet, load_dataset
from ..metrics import per_sample_loss
from .tasks import ImageTask, cifar10_task
from .work import Training, Work


@dataclass(frozen=True)
class SetupProfile:
    """What chapter 0 reads at one profile."""

    task: ImageTask
    faces: str
    faces_kw: dict
    texts: tuple[str, ...]
    forget_class: str | int
    forget_fraction: float = 0.1


def profile_config(profile: str) -> SetupProfile:
    """The chapter's configuration at ``profile`` (``smoke`` | ``cpu`` | ``paper``)."""
    check_profile(profile)
    if profile == "smoke":
        return SetupProfile(cifar10_task("smoke"), "synthetic-faces", {}, ("synthetic-text",), forget_class=3)
    return SetupProfile(cifar10_task(profile), "ckplus", {}, ("sms", "davidson"), forget_class="cat")


def chapter_config(values, root=None) -> SetupProfile:
    """The chapter's configuration from its parameter values (:func:`unlearnkit.chapter.settings`)."""
    return profile_config(values["profile"])


def work(settings) -> Work:
    """The chapter's trainings (:mod:`.work`): the CIFAR-10 original of every seed of
    ``settings`` (the originals every later chapter's problems start from)."""
    return Work("00_setup", trainings=tuple(Training(settings.config.task, s, settings.root) for s in settings.seeds))


def dataset_table(cfg: SetupProfile, root=None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per dataset the book reads at this profile (counts, classes), and their sources."""
    rows, sources = [], {}
    images = load_dataset(cfg.task.dataset, root, **cfg.task.load_kw)
    rows.append({"dataset": cfg.task.dataset, "kind": "images", "train": len(images.train),
                 "test": len(images.test), "classes": len(images.classes),
                 "shape": "×".join(map(str, images.train.x.shape[1:]))})
    sources[cfg.task.dataset] = images.source
    faces = load_dataset(cfg.faces, root, **cfg.faces_kw)
    rows.append({"dataset": cfg.faces, "kind": "faces", "train": len(faces.images), "test": 0,
                 "classes": len(faces.classes), "shape": "×".join(map(str, faces.images.x.shape[1:])),
                 "subjects": int(torch.unique(faces.images.group).numel())})
    sources[cfg.faces] = faces.source
    for name in cfg.texts:
        text = load_dataset(name, root)
        counts = torch.bincount(text.y, minlength=len(text.classes)).tolist()
        rows.append({"dataset": name, "kind": "text", "train": len(text.texts), "test": 0,
                     "classes": len(text.classes),
                     "per class": ", ".join(f"{c} {n}" for c, n in zip(text.classes, counts))})
        sources[name] = text.source
    return pd.DataFrame(rows).set_index("dataset"), sources


def image_grid(data: TensorSet, classes: tuple[str, ...], *, per_class: int = 6, seed: int = 0):
    """A figure with ``per_class`` random images of every class (one row per class)."""
    gen = torch.Generator().manual_seed(seed)
    side = min(0.9, figures.WIDTH / per_class)  # inches an image
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * side, len(classes) * side))
    for row, name in enumerate(classes):
        index = torch.nonzero(data.y == row).squeeze(1)
        pick = index[torch.randperm(len(index), generator=gen)[:per_class]]
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col < len(pick):
                image = data.x[pick[col]].permute(1, 2, 0).squeeze(-1).numpy()
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        axes[row][0].set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def split_table(splits: dict[str, Split]) -> pd.DataFrame:
    """Sizes of every part of each split (rows: scenario)."""
    return pd.DataFrame({name: split.counts() for name, split in splits.items()}).T.fillna(0).astype(int)


def loss_frame(model, split: Split, *, device) -> pd.DataFrame:
    """Per-sample CE losses of the original model on forget (members) and test (non-members)."""
    parts = {"forget (member)": split.forget, "test (non-member)": split.test}
    frames = [pd.DataFrame({"loss": per_sample_loss(model, part, device=device).numpy(), "set": name})
              for name, part in parts.items()]
    return pd.concat(frames, ignore_index=True)


def loss_figure(losses: pd.DataFrame):
    """Histogram of the per-sample losses of members and non-members (log-spaced bins)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(losses.assign(loss=losses["loss"].clip(lower=1e-4)), x="loss", hue="set",
                 stat="density", common_norm=False, log_scale=True, element="step", ax=ax)
    ax.set_xlabel("cross-entropy loss of the original model (log scale)")
    ax.set_ylabel("density")
    fig.tight_layout()
    return fig
