"""The bad-input matrix (issue 8): every case fails before any kernel or training starts, with
one message naming the bad value and what is allowed, and leaves no cache entry or results file.

Runner cases call ``runner.run_chapter`` on the book's real chapters; package cases call the
library on small generated files. A kernel start, a training run or a method run is turned
into a test failure by monkeypatching, so a missing check cannot hide behind slow work.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
from PIL import Image

from unlearnkit import parameters, runner
from unlearnkit.config import build_config
from unlearnkit.data import CIFAR10_CLASSES, load_cifar10, load_ckplus, load_dataset, load_davidson
from unlearnkit.data import faces, make_split, replace_split
from unlearnkit.methods import base as methods_base
from unlearnkit.methods import unlearn
from unlearnkit.models import build_model
from unlearnkit.train import TrainConfig, cached_train

ROOT = Path(__file__).resolve().parents[1]
SMALL_IMAGES = {"num_classes": 4, "n_per_class": 6, "n_test_per_class": 2, "size": 8}


def _fail_if_called(what: str):
    def called(*args, **kwargs):
        raise AssertionError(f"{what} started despite bad input")
    return called


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    """A fresh data root, output folder and model cache; kernels, training and methods forbidden."""
    folders = {name: tmp_path / name for name in ("data", "out", "cache")}
    for folder in folders.values():
        folder.mkdir()
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(folders["cache"]))
    monkeypatch.setattr(papermill, "execute_notebook", _fail_if_called("a papermill kernel"))
    for module in [m for name, m in sys.modules.items() if name.startswith("unlearnkit")]:
        if hasattr(module, "train_model"):
            monkeypatch.setattr(module, "train_model", _fail_if_called("training"))
    monkeypatch.setattr(methods_base, "_seeded_torch", _fail_if_called("an unlearning method"))
    return folders


# --------------------------------------------------------------------------- case builders


def broken_plugin(folder: Path) -> Path:
    path = folder / "broken_method.py"
    path.write_text("1 / 0\n")
    return path


def taken_name_plugin(folder: Path) -> Path:
    path = folder / "taken_name.py"
    path.write_text("from unlearnkit.methods import SGDConfig, register\n\n"
                    "@register('finetune', config=SGDConfig, needs_retain=True, reference='x', idea='x')\n"
                    "def run(model, split, cfg, ctx):\n    return model\n")
    return path


def run(chapter, profile="smoke", **overrides):
    """A runner case: ``run_chapter`` on a real chapter, writing to the case's output folder."""
    def case(f):
        runner.run_chapter(chapter, profile=profile, overrides=overrides, out=f["out"], root=ROOT)
    return case


def run_into_file(f):
    blocker = f["out"] / "blocker"
    blocker.write_text("a file where the output folder should be")
    runner.run_chapter("setup", profile="smoke", out=blocker / "run", root=ROOT)


def small_split():
    return make_split("synthetic-images", "random_subset", forget_fraction=0.25, load_kw=SMALL_IMAGES)


def method(name, **kw):
    """A package case: ``unlearn`` on a tiny model and split (refused before the method runs)."""
    def case(f):
        unlearn(name, build_model("small_cnn", 4, image_size=8), small_split(), profile="smoke", **kw)
    return case


def empty_forget_set(f):
    split = small_split()
    replace_split(split, forget=split.forget.subset(torch.zeros(len(split.forget), dtype=torch.bool)))


def write_cifar10_jpeg(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        for name in CIFAR10_CLASSES:
            folder = root / "cifar10-jpeg" / part / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.jpg")
    return root / "cifar10-jpeg"


def truncated_jpeg(f):
    bad = write_cifar10_jpeg(f["data"]) / "train" / "dog" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:-40])
    load_cifar10(f["data"])


def truncated_png(f):
    folder = f["data"] / "CK+48" / "happy"
    folder.mkdir(parents=True)
    for frame in (1, 2):
        pixels = np.full((48, 48), 60 * frame, dtype=np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"S005_001_0000000{frame}.png")
    bad = folder / "S005_001_00000002.png"
    bad.write_bytes(bad.read_bytes()[:30])
    load_ckplus(f["data"])


def write_csv(path: Path, columns, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


DAVIDSON = ["count", "hate_speech", "offensive_language", "neither", "class", "tweet"]


def davidson_without_class(f):
    write_csv(f["data"] / "davidson_labeled_data.csv", [c for c in DAVIDSON if c != "class"], [[3, 0, 0, 3, "hi"]])
    load_davidson(f["data"])


def davidson_cut_short(f):
    path = f["data"] / "davidson_labeled_data.csv"
    write_csv(path, DAVIDSON, [[3, 0, 0, 3, 2, "hi"]])
    path.write_text(path.read_text() + "3,0,3,0\n")  # the file ends inside a row
    load_davidson(f["data"])


def write_mufac(root: Path, columns=("family_id", "person_id", "age_class", "image_path"), image=True) -> None:
    folder = root / faces.MUFAC_FOLDER
    for csv_name, image_dir in faces.MUFAC_PARTS.values():
        row = {"family_id": "F0001", "person_id": "D", "age_class": "a", "image_path": "F0001_D_a1.jpg"}
        write_csv(folder / csv_name, columns, [[row[c] for c in columns]])
        if image:
            (folder / image_dir).mkdir()
            Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(folder / image_dir / row["image_path"])


def mufac_without_image_path(f):
    write_mufac(f["data"], columns=("family_id", "person_id", "age_class"))
    faces.load_mufac(f["data"], size=16)


def mufac_image_missing(f):
    write_mufac(f["data"], image=False)
    faces.load_mufac(f["data"], size=16)


def unwritable_model_cache(f):
    blocker = f["out"] / "cache-file"
    blocker.write_text("a file where the model cache should be")
    cached_train({"model": "small_cnn"}, lambda: build_model("small_cnn", 4, image_size=8),
                 _fail_if_called("training"), cache_dir=blocker)


CASES = [
    # unknown names
    pytest.param(run("07_nope"), ValueError, r"unknown chapter '07_nope'; allowed: 00_setup, 01_distributional",
                 id="runner-unknown-chapter"),
    pytest.param(run("setup", profile="huge"), ValueError, r"unknown profile 'huge'; allowed: 'smoke', 'cpu', 'paper'",
                 id="runner-unknown-profile"),
    pytest.param(run("setup", epochz=1), ValueError, r"unknown parameter\(s\) \['epochz'\]; allowed: \[.*'seed'",
                 id="runner-unknown-parameter"),
    pytest.param(run("dlfd", synergy_budget=0.5), ValueError,
                 r"unknown parameter\(s\) \['synergy_budget'\]; allowed: \[.*'device'",
                 id="runner-parameter-of-another-chapter"),
    pytest.param(run("distributional", synergy_scorer="LR-FOO"), ValueError,
                 r"unknown synergy_scorer 'LR-FOO'; allowed: .*'LR-COS'", id="runner-unknown-scorer"),
    pytest.param(run("head-to-head", combo_scorer="maha"), ValueError,
                 r"unknown combo_scorer 'maha'; allowed: .*'LR-MAHA'", id="runner-unknown-combo-scorer"),
    pytest.param(lambda f: runner.run_chapter("setup", profile="smoke", overrides={"profile": "paper"},
                                                    out=f["out"], root=ROOT),
                 ValueError,
                 r"\['profile'\] are set by the runner.*allowed overrides: \['data_root', 'deterministic', 'device', 'dry_run', 'seed'\]",
                 id="runner-profile-as-override"),
    pytest.param(lambda f: make_split("imagenet", "full_class", forget_class=0), ValueError,
                 r"unknown dataset 'imagenet'; allowed: 'cifar10'", id="unknown-dataset"),
    pytest.param(method("forgetme"), ValueError, r"unknown unlearning method 'forgetme'; known: .*finetune",
                 id="unknown-method"),
    pytest.param(method("finetune", epoch=1), ValueError, r"unknown parameter\(s\) \['epoch'\].*allowed: .*'epochs'",
                 id="unknown-method-hyperparameter"),
    pytest.param(lambda f: build_config(TrainConfig, {"epoch": 3}), ValueError,
                 r"unknown parameter\(s\) \['epoch'\] for TrainConfig; allowed: .*'epochs'", id="unknown-train-field"),
    # wrong types
    pytest.param(run("setup", seed="one"), TypeError, r"seed='one' has type str; expected int", id="runner-seed-str"),
    pytest.param(run("distributional", synergy_budget="half"), TypeError,
                 r"synergy_budget='half' has type str; expected float", id="runner-budget-str"),
    pytest.param(run("mumis", device=0), TypeError, r"device=0 has type int; expected str", id="runner-device-int"),
    pytest.param(run("setup", seed=None), TypeError, r"seed=None; expected int like the default 0",
                 id="runner-seed-none"),
    pytest.param(lambda f: build_config(TrainConfig, epochs=2.5), TypeError,
                 r"TrainConfig.epochs=2.5 has type float; expected <class 'int'>", id="train-epochs-float"),
    pytest.param(method("finetune", lr="fast"), TypeError, r"lr='fast' has type str; expected <class 'float'>",
                 id="method-lr-str"),
    # out-of-range values
    pytest.param(run("distributional", synergy_budget=-0.1), ValueError,
                 r"synergy_budget=-0.1 is out of range; allowed: \(0, 1\]", id="runner-negative-budget"),
    pytest.param(run("head-to-head", combo_budget=1.0), ValueError,
                 r"combo_budget=1.0 is out of range; allowed: \(0, 1\)", id="runner-budget-whole-set"),
    pytest.param(run("head-to-head", guide_slack=-1.0), ValueError,
                 r"guide_slack=-1.0 is out of range; allowed: \[0, inf\)", id="runner-negative-slack"),
    pytest.param(run("setup", seed=-1), ValueError, r"seed=-1 is out of range; allowed: \[0, inf\)",
                 id="runner-negative-seed"),
    pytest.param(run("dlfd", device="tpu"), ValueError, r"unknown device 'tpu'; allowed: auto, cpu, cuda, mps",
                 id="runner-bad-device"),
    pytest.param(lambda f: make_split("synthetic-images", "random_subset", forget_fraction=1.5, load_kw=SMALL_IMAGES),
                 ValueError, r"forget_fraction=1.5 is out of range; allowed: \(0, 1\)", id="forget-fraction-above-one"),
    pytest.param(lambda f: make_split("synthetic-images", "random_subset", forget_fraction=0.01, load_kw=SMALL_IMAGES),
                 ValueError, r"forget set of 'random_subset' on 'synthetic-images' is empty \(forget_fraction=0.01",
                 id="empty-forget-set-from-fraction"),
    pytest.param(empty_forget_set, ValueError, r"the forget set is empty; choose a forget fraction/class/group",
                 id="empty-forget-set-replaced"),
    pytest.param(lambda f: make_split("cifar10", "full_class", forget_class="kitten", root=f["data"]), ValueError,
                 r"unknown forget_class 'kitten'; allowed: names \[.*'cat'", id="forget-class-unknown-name"),
    pytest.param(lambda f: make_split("synthetic-images", "full_class", forget_class=7, load_kw=SMALL_IMAGES),
                 ValueError, r"unknown forget_class 7; allowed: .*indices 0..3", id="forget-class-out-of-range"),
    pytest.param(lambda f: build_config(TrainConfig, epochs=0), ValueError,
                 r"epochs=0 is out of range; allowed: \[1, inf\)", id="train-zero-epochs"),
    pytest.param(method("finetune", epochs=0), ValueError, r"epochs=0 is out of range; allowed: \(0, inf\)",
                 id="method-zero-epochs"),
    pytest.param(method("finetune", seed=-1), ValueError, r"seed must be a non-negative int; got -1",
                 id="method-negative-seed"),
    pytest.param(method("finetune", device="tpu"), ValueError, r"unknown device 'tpu'; allowed: auto, cpu, cuda, mps",
                 id="method-bad-device"),
    # missing or corrupted data files
    pytest.param(run("setup", data_root="/nonexistent/unlearnkit-data"), FileNotFoundError,
                 r"data_root='/nonexistent/unlearnkit-data' is not a folder.*allowed: '' .* or an existing folder",
                 id="runner-missing-data-root"),
    pytest.param(lambda f: load_dataset("ckplus", f["data"]), FileNotFoundError,
                 r"CK\+48 not found; looked at: .*data/CK\+48.*UNLEARNKIT_DATA", id="missing-dataset-folder"),
    pytest.param(truncated_jpeg, ValueError,
                 r"cannot decode JPEG file .*train/dog/0001\.jpg.*\(corrupt or truncated\?\)",
                 id="truncated-jpeg"),
    pytest.param(truncated_png, ValueError,
                 r"cannot decode image file .*S005_001_00000002\.png.*\(corrupt or truncated\?\)",
                 id="truncated-png"),
    pytest.param(davidson_without_class, ValueError,
                 r"davidson_labeled_data\.csv lacks the column\(s\) \['class'\]; expected at least \[.*'tweet'\]",
                 id="csv-missing-column"),
    pytest.param(davidson_cut_short, ValueError,
                 r"davidson_labeled_data\.csv, data row 2: no value for column\(s\) \['class', 'tweet'\] \(truncated",
                 id="csv-truncated-row"),
    pytest.param(mufac_without_image_path, ValueError,
                 r"custom_train_dataset\.csv lacks the column\(s\) \['image_path'\]; expected at least",
                 id="mufac-csv-missing-column"),
    pytest.param(mufac_image_missing, FileNotFoundError,
                 r"1 listed image file\(s\) are missing, e.g. .*train_images/F0001_D_a1\.jpg",
                 id="mufac-image-missing"),
    # the researcher's parameters of chapters 2-4 (checked before the kernel, plugins imported first)
    pytest.param(run("head-to-head", methods=["finetune", "fine_tune"]), ValueError,
                 r"unknown unlearning method 'fine_tune'; known: .*finetune", id="runner-unknown-method"),
    pytest.param(run("mumis", methods="finetune"), TypeError,
                 r"parameter methods='finetune' has type str; expected list", id="runner-methods-not-a-list"),
    pytest.param(run("head-to-head", method_overrides={"mumis": {"deltaa": 1.5}}), ValueError,
                 r"method_overrides\['mumis'\]: unknown parameter\(s\) \['deltaa'\] for MuMisConfig; allowed: .*'delta'",
                 id="runner-unknown-hyperparameter"),
    pytest.param(run("dlfd", method_overrides={"dlfd": {"lr": -0.1}}), ValueError,
                 r"method_overrides\['dlfd'\]: lr=-0.1 is out of range; allowed: \(0, inf\)",
                 id="runner-hyperparameter-out-of-range"),
    pytest.param(run("head-to-head", method_overrides={"salun": 0.1}), TypeError,
                 r"method_overrides\['salun'\] must be a dict of hyperparameters; got 0.1",
                 id="runner-override-not-a-dict"),
    pytest.param(run("mumis", method_overrides={"mumiss": {"lr": 0.1}}), ValueError,
                 r"unknown unlearning method 'mumiss'", id="runner-override-unknown-method"),
    pytest.param(run("mumis", n_seeds=0), ValueError, r"n_seeds=0 is out of range; allowed: \[1, inf\)",
                 id="runner-zero-seeds"),
    pytest.param(run("dlfd", n_seeds=2.5), TypeError, r"n_seeds must be an int >= 1 or None", id="runner-float-seeds"),
    pytest.param(run("mumis", dry_run="yes"), TypeError, r"dry_run", id="runner-dry-run-not-a-bool"),
    pytest.param(run("head-to-head", deterministic=1), TypeError, r"deterministic", id="runner-deterministic-not-a-bool"),
    pytest.param(run("mumis", forget_fraction=1.5), ValueError,
                 r"forget_fraction=1.5 is out of range; allowed: \(0, 1\)", id="runner-forget-fraction"),
    pytest.param(run("dlfd", forget_subject_fraction=0.0), ValueError,
                 r"forget_subject_fraction=0.0 is out of range; allowed: \(0, 1\)", id="runner-subject-fraction"),
    pytest.param(run("head-to-head", forget_class=["cat"]), TypeError,
                 r"forget_class must be a class name or index; got \['cat'\]", id="runner-forget-class-type"),
    pytest.param(run("head-to-head", pool_size=5), ValueError, r"pool_size=5 is out of range; allowed: \[10, inf\)",
                 id="runner-pool-size"),
    pytest.param(run("head-to-head", plugins=["/nonexistent/my_method.py"]), FileNotFoundError,
                 r"plugin '/nonexistent/my_method.py' is not a .py file .*allowed: paths of Python files",
                 id="runner-missing-plugin"),
    pytest.param(lambda f: runner.run_chapter("head-to-head", profile="smoke", out=f["out"],
                                              overrides={"plugins": [str(broken_plugin(f["data"]))]}),
                 ImportError, r"plugin '.*broken_method.py' failed to import: ZeroDivisionError",
                 id="runner-plugin-fails-to-import"),
    pytest.param(lambda f: runner.run_chapter("head-to-head", profile="smoke", out=f["out"],
                                              overrides={"plugins": [str(taken_name_plugin(f["data"]))]}),
                 ImportError, r"failed to import: ValueError: method 'finetune' is already registered",
                 id="runner-plugin-takes-a-name"),
    # unwritable output
    pytest.param(run_into_file, PermissionError,
                 r"output folder .*blocker/run/chapters is not writable \(.*\); allowed: a writable folder \(out=",
                 id="runner-unwritable-output"),
    pytest.param(unwritable_model_cache, PermissionError,
                 r"model cache folder .*cache-file/models is not writable.*a writable folder.*UNLEARNKIT_CACHE",
                 id="unwritable-model-cache"),
]


@pytest.mark.parametrize("case, error, message", CASES)
def test_bad_input_fails_fast_with_one_clear_message(guarded, case, error, message):
    with pytest.raises(error, match=message):
        case(guarded)
    assert not [p for p in guarded["cache"].rglob("*") if p.is_file()], "a model cache entry was written"
    assert not list((guarded["data"] / ".unlearnkit-cache").glob("*")), "a decoded-image cache was written"
    assert not list(guarded["out"].rglob("*.json")) and not list(guarded["out"].rglob("*.ipynb"))


def test_the_matrix_has_at_least_25_cases():
    assert len(CASES) >= 25


def test_every_chapter_parameter_has_a_value_check_or_is_declared_free():
    for stem in parameters.toc_chapters(ROOT):
        params = parameters.notebook_parameters(parameters.read_notebook(ROOT / "chapters" / f"{stem}.md"))
        uncovered = [name for name in params if parameters.covering_key(name) is None]
        assert not uncovered, f"{stem}: add {uncovered} to parameters.PARAMETER_CHECKS (a check, or None if free)"
        parameters.check_parameter_values(params, {}, ROOT / "chapters")  # the defaults pass their own checks


def test_a_cache_that_does_not_fit_the_image_folder_is_decoded_again(tmp_path):
    write_cifar10_jpeg(tmp_path)
    first = load_cifar10(tmp_path)
    cache = next((tmp_path / ".unlearnkit-cache").glob("*.pt"))
    torch.save({**torch.load(cache, weights_only=True), "train_x": first.train.x[:-1]}, cache)  # one image short
    with pytest.warns(UserWarning, match="do not match the image folder"):
        again = load_cifar10(tmp_path)
    assert torch.equal(again.train.x, first.train.x)
    assert torch.equal(torch.load(cache, weights_only=True)["train_x"], first.train.x)
