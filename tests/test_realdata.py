"""The project's loaders on the offline dataset copies, checked against ../shared/data/README.md.

Skipped, with the reason, when a copy is absent under ``unlearnkit.runtime.data_root()``
(``$UNLEARNKIT_DATA`` or ``./data``; unpack with ``bash ../shared/data/unpack.sh data``).
The first CIFAR-10 run decodes the 60,000 JPEGs once (about 15 s); later runs read the cache.
"""

from __future__ import annotations

import pytest
import torch

from unlearnkit.data import CIFAR10_CLASSES, load_dataset, make_split
from unlearnkit.runtime import data_root

pytestmark = pytest.mark.realdata

ROOT = data_root()


def needs(relative: str):
    """Skip unless ``data_root()/relative`` exists."""
    path = ROOT / relative
    return pytest.mark.skipif(not path.exists(), reason=f"offline copy {path} absent; set UNLEARNKIT_DATA "
                              "or run `bash ../shared/data/unpack.sh data`")


@needs("cifar10-jpeg")
def test_cifar10_jpeg_copy_counts():
    data = load_dataset("cifar10")
    assert data.train.x.shape == (50_000, 3, 32, 32) and data.test.x.shape == (10_000, 3, 32, 32)
    assert data.train.x.dtype == torch.uint8 and data.classes == CIFAR10_CLASSES
    assert data.train.y.bincount().tolist() == [5_000] * 10
    assert data.test.y.bincount().tolist() == [1_000] * 10
    assert data.source.startswith("CIFAR-10 JPEG copy") and "60,000 items, as published" in data.source
    assert list((ROOT / ".unlearnkit-cache").glob("cifar10-jpeg-60000-*.pt"))


@needs("cifar10-jpeg")
def test_cifar10_field_split_is_45k_5k_10k():
    split = make_split("cifar10", "random_subset", forget_fraction=0.1, seed=0)
    assert split.counts() == {"retain": 40_500, "forget": 4_500, "test": 10_000, "val": 5_000}
    assert split.val.y.bincount().tolist() == [500] * 10


@needs("CK+48")
def test_ckplus_copy_counts():
    data = load_dataset("ckplus")
    emotions = dict(zip(data.classes, data.images.y.bincount().tolist()))
    assert emotions == {"anger": 135, "contempt": 54, "disgust": 177, "fear": 75, "happy": 207,
                        "sadness": 84, "surprise": 249}
    assert data.images.x.shape == (981, 1, 48, 48)
    assert data.images.group.unique().numel() == 118 and data.sequence.unique().numel() == 327


@needs("CK+48")
def test_ckplus_identity_split_is_subject_disjoint():
    split = make_split("ckplus", "identity", forget_subject_fraction=0.1, seed=0)
    parts = [split.retain, split.forget, split.val, split.test, split.unseen]
    subjects = [set(part.group.tolist()) for part in parts]
    assert sum(len(s) for s in subjects) == len(set().union(*subjects)) == 118
    assert sum(len(part) for part in parts) == 981


@needs("SMSSpamCollection")
def test_sms_copy_counts():
    data = load_dataset("sms")
    assert len(data) == 5_574 and data.y.bincount().tolist() == [4_827, 747]
    assert data.source.endswith("5,574 items, as published)")


@needs("davidson_labeled_data.csv")
def test_davidson_copy_counts():
    data = load_dataset("davidson")
    assert len(data) == 24_783 and data.y.bincount().tolist() == [1_430, 19_190, 4_163]
