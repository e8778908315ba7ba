"""Loaders on small files generated in each dataset's format, synthetic sets, registry and splits."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from unlearnkit.data import (CIFAR10_CLASSES, DATASETS, Split, TensorSet, load_cifar10, load_cifar100,
                             load_ckplus, load_dataset, load_davidson, load_sms, make_split,
                             stratified_sample, synthetic_faces, synthetic_images, synthetic_text)
from unlearnkit.data import loaders
from unlearnkit.data.splits import training_pool


# --------------------------------------------------------------------------- generated files


def _random_image(rng: np.random.Generator, mode: str, size: int) -> Image.Image:
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def write_cifar10_jpeg(root, per_class=(2, 1)):
    """``root/cifar10-jpeg/{train,test}/<class>/NNNN.jpg`` with random 32x32 images."""
    rng = np.random.default_rng(0)
    for part, count in zip(("train", "test"), per_class):
        for name in CIFAR10_CLASSES:
            folder = root / "cifar10-jpeg" / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                _random_image(rng, "RGB", 32).save(folder / f"{i:04d}.jpg", quality=75)


FINE = ("apple", "rocket", "bus", "rose")
COARSE = ("fruit", "vehicles", "flowers")
FINE_TO_COARSE = (0, 1, 1, 2)


def write_cifar100(root, per_class=(3, 2)):
    """``root/cifar-100-python/{train,test,meta}`` pickles in torchvision's format (4 fine classes)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for part, count in zip(("train", "test"), per_class):
        fine = [c for c in range(len(FINE)) for _ in range(count)]
        entry = {"data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8), "fine_labels": fine,
                 "coarse_labels": [FINE_TO_COARSE[c] for c in fine]}
        (folder / part).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": list(FINE), "coarse_label_names": list(COARSE)}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return folder


CK_FILES = {"anger": ["S005_001_00000010.png", "S005_001_00000011.png", "S010_002_00000003.png"],
            "happy": ["S005_003_00000020.png", "S022_004_00000007.png", "S022_004_00000008.png"],
            "surprise": ["S010_001_00000005.png", "S022_001_00000009.png", "S031_002_00000001.png"]}


def write_ckplus(root):
    rng = np.random.default_rng(2)
    for emotion, names in CK_FILES.items():
        folder = root / "CK+48" / emotion
        folder.mkdir(parents=True)
        for name in names:
            _random_image(rng, "L", 48).save(folder / name)
    return root / "CK+48"


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_jpeg_folder_decodes_in_class_order_and_matches_pil(tmp_path):
    write_cifar10_jpeg(tmp_path)
    data = load_cifar10(tmp_path)
    assert data.train.x.shape == (20, 3, 32, 32) and data.train.x.dtype == torch.uint8
    assert data.test.x.shape == (10, 3, 32, 32)
    assert data.classes == CIFAR10_CLASSES
    assert data.train.y.tolist() == [c for c in range(10) for _ in range(2)]
    truck = tmp_path / "cifar10-jpeg" / "test" / "truck" / "0000.jpg"
    expected = torch.from_numpy(np.array(Image.open(truck).convert("RGB"))).permute(2, 0, 1)
    assert (data.test.x[9].int() - expected.int()).abs().max() <= 1
    assert "JPEG" in data.source and str(tmp_path) in data.source


def test_cifar10_cache_is_reused_and_invalidated_when_the_folder_changes(tmp_path, monkeypatch):
    write_cifar10_jpeg(tmp_path)
    first = load_cifar10(tmp_path)
    caches = list((tmp_path / ".unlearnkit-cache").glob("*.pt"))
    assert len(caches) == 1
    monkeypatch.setattr(loaders, "_decode_jpegs", lambda *a, **k: pytest.fail("decoded despite the cache"))
    again = load_cifar10(tmp_path)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    monkeypatch.undo()
    extra = tmp_path / "cifar10-jpeg" / "train" / "cat" / "0002.jpg"
    _random_image(np.random.default_rng(5), "RGB", 32).save(extra)
    changed = load_cifar10(tmp_path)
    assert len(changed.train) == 21 and (changed.train.y == 3).sum() == 3
    assert [p.name for p in (tmp_path / ".unlearnkit-cache").glob("*.pt")] != [caches[0].name]
    assert len(list((tmp_path / ".unlearnkit-cache").glob("*.pt"))) == 1


def test_cifar10_unreadable_cache_is_decoded_again(tmp_path):
    write_cifar10_jpeg(tmp_path)
    first = load_cifar10(tmp_path)
    cache = next((tmp_path / ".unlearnkit-cache").glob("*.pt"))
    cache.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = load_cifar10(tmp_path)
    assert torch.equal(first.train.x, again.train.x)
    assert torch.equal(torch.load(cache, weights_only=True)["train_x"], first.train.x)


def test_cifar10_corrupt_jpeg_names_the_file_and_leaves_no_cache(tmp_path):
    write_cifar10_jpeg(tmp_path)
    bad = tmp_path / "cifar10-jpeg" / "train" / "dog" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"dog/0001\.jpg"):
        load_cifar10(tmp_path)
    assert not list((tmp_path / ".unlearnkit-cache").glob("*"))


def test_cifar10_wrong_class_folders_are_rejected(tmp_path):
    write_cifar10_jpeg(tmp_path)
    (tmp_path / "cifar10-jpeg" / "train" / "cat").rename(tmp_path / "cifar10-jpeg" / "train" / "kitten")
    with pytest.raises(ValueError, match="kitten"):
        load_cifar10(tmp_path)


def test_missing_data_names_the_paths_and_how_to_get_it(tmp_path):
    expected = r"cifar10-jpeg.*cifar-10-batches-py.*download=True.*UNLEARNKIT_DATA"
    with pytest.raises(FileNotFoundError, match=expected):
        load_cifar10(tmp_path)
    for loader in (load_cifar100, load_ckplus, load_sms, load_davidson):
        with pytest.raises(FileNotFoundError, match=str(tmp_path)):
            loader(tmp_path)


# --------------------------------------------------------------------------- CIFAR-100


def test_cifar100_pickles_give_fine_labels_coarse_groups_and_pixel_layout(tmp_path):
    folder = write_cifar100(tmp_path)
    data = load_cifar100(tmp_path)
    assert data.classes == FINE and data.group_names == COARSE
    assert data.train.x.shape == (12, 3, 32, 32) and len(data.test) == 8
    assert data.train.group.tolist() == [FINE_TO_COARSE[c] for c in data.train.y.tolist()]
    raw = pickle.loads((folder / "train").read_bytes())["data"]
    channel, row, col = 2, 5, 7
    assert int(data.train.x[4, channel, row, col]) == raw[4, channel * 1024 + row * 32 + col]


def test_cifar100_pickle_with_foreign_objects_is_refused(tmp_path):
    folder = write_cifar100(tmp_path)
    (folder / "train").write_bytes(pickle.dumps({"data": Image.new("L", (2, 2))}))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_cifar100(tmp_path)


# --------------------------------------------------------------------------- CK+


def test_ckplus_parses_subjects_sequences_and_sorted_emotions(tmp_path):
    write_ckplus(tmp_path)
    data = load_ckplus(tmp_path)
    assert data.classes == ("anger", "happy", "surprise")
    assert data.images.x.shape == (9, 1, 48, 48) and data.images.x.dtype == torch.uint8
    assert data.images.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.images.group.tolist() == [5, 5, 10, 5, 22, 22, 10, 22, 31]
    sequence = data.sequence.tolist()
    assert sequence[0] == sequence[1] and sequence[4] == sequence[5] and len(set(sequence)) == 7


def test_ckplus_corrupt_png_and_bad_name_are_reported_by_file(tmp_path):
    folder = write_ckplus(tmp_path)
    bad = folder / "happy" / "S022_004_00000008.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"S022_004_00000008\.png"):
        load_ckplus(tmp_path)
    bad.unlink()
    _random_image(np.random.default_rng(0), "L", 48).save(folder / "anger" / "subject7.png")
    with pytest.raises(ValueError, match=r"subject7\.png"):
        load_ckplus(tmp_path)


# --------------------------------------------------------------------------- text


def test_sms_reads_uci_lines_with_spam_as_one(tmp_path):
    (tmp_path / "SMSSpamCollection").write_text("ham\tsee you at 5\nspam\tWIN a prize\tnow\nham\tok\n")
    with pytest.warns(UserWarning, match=r"has 3 items; the published dataset has 5,574"):
        data = load_sms(tmp_path)
    assert data.source.endswith("3 items, NOT the published 5,574)")
    assert data.texts == ("see you at 5", "WIN a prize\tnow", "ok") and data.y.tolist() == [0, 1, 0]
    (tmp_path / "SMSSpamCollection").write_text("ham\tfine\nmaybe\tnot labelled\n")
    with pytest.raises(ValueError, match="line 2"):
        load_sms(tmp_path)


def _write_davidson(path, columns, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def test_davidson_reads_quoted_tweets_and_class_labels(tmp_path):
    columns = ["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"]
    rows = [[0, 3, 0, 0, 3, 2, "a, quoted\ntweet"], [1, 3, 0, 3, 0, 1, "rude"], [2, 3, 2, 1, 0, 0, "hate"]]
    _write_davidson(tmp_path / "davidson_labeled_data.csv", columns, rows)
    data = load_davidson(tmp_path)
    assert data.texts == ("a, quoted\ntweet", "rude", "hate") and data.y.tolist() == [2, 1, 0]
    assert data.classes == ("hate", "offensive", "neither")


def test_davidson_missing_column_is_named(tmp_path):
    _write_davidson(tmp_path / "davidson_labeled_data.csv", ["count", "hate_speech", "class", "tweet"],
                    [[3, 0, 2, "hi"]])
    with pytest.raises(ValueError, match="offensive_language"):
        load_davidson(tmp_path)


# --------------------------------------------------------------------------- synthetic sets


def _nearest_centroid_accuracy(train: TensorSet, test: TensorSet) -> float:
    """Accuracy on ``test`` of the nearest class mean of ``train`` in pixel space."""
    labels = train.y.unique()
    centroids = torch.stack([train.x[train.y == c].flatten(1).float().mean(0) for c in labels])
    predicted = labels[torch.cdist(test.x.flatten(1).float(), centroids).argmin(1)]
    return (predicted == test.y).float().mean().item()


def test_synthetic_images_are_deterministic_and_learnable():
    data = synthetic_images(num_classes=5, n_per_class=10, n_test_per_class=10, size=16, seed=3)
    assert data.train.x.shape == (50, 3, 16, 16) and data.train.x.dtype == torch.uint8
    assert torch.equal(data.test.x, synthetic_images(5, 10, 10, size=16, seed=3).test.x)
    assert not torch.equal(data.test.x, synthetic_images(5, 10, 10, size=16, seed=4).test.x)
    assert _nearest_centroid_accuracy(data.train, data.test) >= 0.9


def test_synthetic_images_superclasses_group_contiguous_classes():
    data = synthetic_images(num_classes=6, n_per_class=2, n_test_per_class=1, size=8, num_superclasses=3)
    assert data.group_names == ("super0", "super1", "super2")
    assert data.train.group.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="num_superclasses=4"):
        synthetic_images(num_classes=6, num_superclasses=4)


def test_synthetic_faces_carry_subjects_and_learnable_expressions():
    data = synthetic_faces(num_subjects=12, images_per_subject=12, num_classes=4, size=24, seed=1)
    faces = data.images
    assert faces.x.shape == (144, 1, 24, 24) and faces.group.bincount().tolist() == [12] * 12
    assert torch.equal(faces.x, synthetic_faces(12, 12, 4, size=24, seed=1).images.x)
    same_sequence = data.sequence[:, None] == data.sequence[None, :]
    assert bool((faces.y[:, None] == faces.y[None, :])[same_sequence].all())
    seen = faces.group < 8  # expressions transfer to subjects never seen (chance 0.25)
    assert _nearest_centroid_accuracy(faces.subset(seen), faces.subset(~seen)) >= 0.6
    even = torch.arange(len(faces)) % 2 == 0  # identity is recognisable from other frames (chance 1/12)
    identity = TensorSet(faces.x, faces.group)
    assert _nearest_centroid_accuracy(identity.subset(even), identity.subset(~even)) >= 0.5


def test_synthetic_text_has_class_indicative_words():
    data = synthetic_text(n_per_class=30, seed=0)
    assert len(data) == 60 and data.y.bincount().tolist() == [30, 30]
    assert data.texts == synthetic_text(n_per_class=30, seed=0).texts
    assert data.texts != synthetic_text(n_per_class=30, seed=1).texts
    spam_words = {"free", "win", "prize", "claim", "cash", "urgent", "txt", "offer", "reply", "award"}
    has_spam_word = torch.tensor([bool(spam_words & set(t.split())) for t in data.texts])
    assert has_spam_word[data.y == 1].float().mean() > 0.9 > has_spam_word[data.y == 0].float().mean()


# --------------------------------------------------------------------------- registry


def test_registry_knows_every_dataset_and_lists_them_on_an_unknown_name():
    assert set(DATASETS) == {"cifar10", "cifar100", "ckplus", "sms", "davidson",
                             "synthetic-images", "synthetic-faces", "synthetic-text"}
    with pytest.raises(ValueError, match=r"'mnist'.*'cifar10'.*'synthetic-text'"):
        load_dataset("mnist")
    assert len(load_dataset("synthetic-text", n_per_class=3)) == 6


# --------------------------------------------------------------------------- splits

SMALL_IMAGES = {"num_classes": 4, "n_per_class": 20, "n_test_per_class": 5, "size": 8}


def _rows(part: TensorSet) -> set[bytes]:
    return {bytes(row.numpy()) for row in part.x.flatten(1)}


def test_stratified_sample_gives_each_label_its_share():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    picked = stratified_sample(labels, 10, torch.Generator().manual_seed(0))
    assert labels[picked].bincount().tolist() == [5, 3, 2] and len(picked.unique()) == 10


def test_full_class_split_moves_the_class_out_of_test_into_forget_test():
    split = make_split("synthetic-images", "full_class", forget_class="class2", load_kw=SMALL_IMAGES)
    assert isinstance(split, Split) and split.num_classes == 4
    assert (split.forget.y == 2).all() and len(split.forget) == 18 and not (split.retain.y == 2).any()
    assert not (split.test.y == 2).any() and (split.forget_test.y == 2).all() and len(split.forget_test) == 5
    assert not (split.val.y == 2).any() and len(split.val) == 6
    assert len(split.retain) + len(split.forget) + len(split.val) + 2 == 80  # 2 class-2 val samples left
    assert not _rows(split.retain) & _rows(split.forget)
    assert split.info["forget_class_index"] == 2 and split.info["counts"] == split.counts()
    assert make_split("synthetic-images", "full_class", forget_class=2,
                      load_kw=SMALL_IMAGES).info["forget_class"] == "class2"


def test_random_subset_is_stratified_seeded_and_disjoint():
    kw = {"forget_fraction": 0.25, "load_kw": SMALL_IMAGES}
    split = make_split("synthetic-images", "random_subset", seed=1, **kw)
    assert len(split.val) == 8 and split.val.y.bincount().tolist() == [2, 2, 2, 2]
    assert len(split.forget) == 18 and len(split.retain) == 54
    assert not _rows(split.retain) & _rows(split.forget) and not _rows(split.val) & _rows(split.train)
    again = make_split("synthetic-images", "random_subset", seed=1, **kw)
    other = make_split("synthetic-images", "random_subset", seed=2, **kw)
    assert torch.equal(split.forget.x, again.forget.x) and torch.equal(split.val.x, again.val.x)
    assert _rows(split.forget) != _rows(other.forget)


def test_max_train_and_max_test_cap_stratified():
    split = make_split("synthetic-images", "random_subset", forget_fraction=0.5, val_fraction=0.25,
                       max_train=40, max_test=8, load_kw=SMALL_IMAGES)
    assert len(split.train) == 40 and len(split.val) == len(split.test) == 8
    for part in (split.train, split.val, split.test):
        assert part.y.bincount().tolist() == [len(part) // 4] * 4


def test_sub_class_relabels_to_superclasses_and_forgets_one_fine_class(tmp_path):
    write_cifar100(tmp_path, per_class=(10, 4))
    split = make_split("cifar100", "sub_class", root=tmp_path, subclass="rocket", val_fraction=0.0)
    assert split.classes == COARSE and split.num_classes == 3
    assert (split.forget.group == 1).all() and (split.forget.y == 1).all() and len(split.forget) == 10
    assert (split.forget_test.group == 1).all() and len(split.forget_test) == 4
    assert not (split.retain.group == 1).any() and not (split.test.group == 1).any()
    assert (split.retain.y == torch.tensor(FINE_TO_COARSE)[split.retain.group]).all()
    assert split.info["superclass"] == "vehicles" and split.info["source"].startswith("CIFAR-100")


def _subjects(part: TensorSet | None) -> set[int]:
    return set() if part is None else set(part.group.tolist())


def test_identity_split_keeps_every_subject_in_one_part_and_depends_on_the_seed():
    kw = {"forget_subject_fraction": 0.2,
          "load_kw": {"num_subjects": 20, "images_per_subject": 3, "size": 12}}
    split = make_split("synthetic-faces", "identity", seed=0, **kw)
    parts = [split.retain, split.forget, split.val, split.test, split.unseen]
    subjects = [_subjects(p) for p in parts]
    assert [len(s) for s in subjects] == [8, 4, 2, 3, 3]
    assert len(set().union(*subjects)) == sum(len(s) for s in subjects) == 20
    assert sorted(subjects[1]) == split.info["forget_subjects"]
    forget_subjects = {seed: make_split("synthetic-faces", "identity", seed=seed, **kw)
                       .info["forget_subjects"] for seed in (0, 1)}
    assert forget_subjects[0] == split.info["forget_subjects"] != forget_subjects[1]


def test_ckplus_splits_are_subject_disjoint(tmp_path):
    write_ckplus(tmp_path)
    split = make_split("ckplus", "full_class", root=tmp_path, forget_class="happy", test_fraction=0.25,
                       unseen_fraction=0.0, val_fraction=0.0)
    assert _subjects(split.train).isdisjoint(_subjects(split.test) | _subjects(split.forget_test))
    assert (split.forget.y == 1).all() and split.info["source"].startswith("CK+48")


@pytest.mark.parametrize("dataset, load_kw, scenarios", [
    ("synthetic-images", {**SMALL_IMAGES, "num_superclasses": 2},
     [("full_class", {"forget_class": 1}), ("random_subset", {"forget_fraction": 0.3}),
      ("sub_class", {"subclass": "class3"})]),
    ("synthetic-faces", {"num_subjects": 20, "images_per_subject": 3, "size": 12},
     [("full_class", {"forget_class": 2}), ("identity", {"forget_subject_fraction": 0.2})]),
])
def test_every_scenario_and_seed_cuts_the_same_training_pool(dataset, load_kw, scenarios):
    caps = {"max_train": 30, "pool_seed": 7, "load_kw": load_kw}
    pool, _ = training_pool(dataset, **caps)
    for scenario, kw in scenarios:
        for seed in (0, 1):
            split = make_split(dataset, scenario, seed=seed, max_test=5, **caps, **kw)
            assert sorted(_rows(split.train)) == sorted(_rows(pool)) and len(split.train) == len(pool) == 30
    other_pool, _ = training_pool(dataset, **{**caps, "pool_seed": 8})
    assert _rows(other_pool) != _rows(pool)


@pytest.mark.parametrize("dataset, scenario, kw, message", [
    ("cifar10", "forget_all", {}, r"unknown scenario 'forget_all'.*'full_class'"),
    ("imagenet", "full_class", {"forget_class": 0}, r"unknown dataset 'imagenet'.*'cifar10'"),
    ("cifar10", "identity", {"forget_subject_fraction": 0.1}, r"does not fit dataset 'cifar10'.*ckplus"),
    ("sms", "random_subset", {"forget_fraction": 0.1}, r"does not fit dataset 'sms'.*load_dataset"),
    ("cifar10", "random_subset", {"forget_fraction": 0.0}, r"forget_fraction=0.0 is out of range"),
    ("cifar10", "random_subset", {"forget_fraction": 1.5}, r"forget_fraction=1.5 is out of range"),
    ("cifar10", "full_class", {"forget_class": "kitten"}, r"unknown forget_class 'kitten'.*'airplane'"),
    ("cifar10", "full_class", {"forget_class": 10}, r"unknown forget_class 10.*indices 0..9"),
    ("cifar10", "full_class", {}, r"needs forget_class"),
    ("cifar10", "full_class", {"forget_class": 3, "forget_fraction": 0.1},
     r"\['forget_fraction'\] do not apply"),
    ("cifar10", "random_subset", {"forget_fraction": 0.1, "max_train": 0}, r"max_train=0"),
])
def test_bad_split_arguments_fail_before_any_data_is_read(tmp_path, dataset, scenario, kw, message):
    with pytest.raises(ValueError, match=message):
        make_split(dataset, scenario, root=tmp_path, **kw)  # tmp_path holds no data at all


def test_empty_forget_sets_are_rejected():
    with pytest.raises(ValueError, match="forget set of 'random_subset'.*is empty"):
        make_split("synthetic-images", "random_subset", forget_fraction=0.001, load_kw=SMALL_IMAGES)
    with pytest.raises(ValueError, match="subclass 'class1' has no training samples"):
        make_split("synthetic-images", "sub_class", subclass="class1", max_train=1,
                   load_kw={**SMALL_IMAGES, "num_superclasses": 2})
    with pytest.raises(ValueError, match="has no superclasses"):
        make_split("synthetic-images", "sub_class", subclass="class1", load_kw=SMALL_IMAGES)
