"""The dry run: sizes cut, code paths kept, caches kept apart, stand-ins the real loaders read."""

import json
from pathlib import Path

import pytest
import torch

from unlearnkit import dryrun, parameters, runner, runtime
from unlearnkit.data import load_cifar100, make_split
from unlearnkit.data.core import TensorSet
from unlearnkit.data.faces import load_mufac, load_rafdb, mufac_split, rafdb_split
from unlearnkit.experiments import ch3, tasks
from unlearnkit.methods.base import pass_batches, passes
from unlearnkit.models import build_model
from unlearnkit.record import Recorder
from unlearnkit.train import TrainConfig, train_model


@pytest.fixture
def dry(tmp_path, monkeypatch):
    """A dry run over an empty data root, switched off afterwards."""
    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path / "no-data"))
    run = dryrun.enable(True)
    yield run
    dryrun.enable(False)


def test_off_by_default_and_a_real_run_is_unchanged():
    assert dryrun.active() is None
    assert passes(2.5) == [1.0, 1.0, 0.5] and pass_batches(1000, 10) == 100
    assert dryrun.train_steps(500) == 500 and dryrun.steps(40) == 40


def test_the_switch_takes_a_bool_only():
    with pytest.raises(TypeError, match="True or False"):
        dryrun.enable("False")
    with pytest.raises(ValueError, match="per_class"):
        dryrun.DryRun(per_class=0)


def test_a_dry_run_cuts_sizes_and_keeps_its_caches_apart(dry, tmp_path):
    assert passes(11.4) == [1.0] and pass_batches(1000, 10) == 1 and dryrun.steps(40) == dry.train_steps
    assert runtime.cache_root(tmp_path / "real-cache") == runtime.cache_root() != tmp_path / "real-cache"
    assert str(runtime.data_root(tmp_path)) == dry.data
    assert set(dry.standins) == {"CIFAR-100", "MUFAC", "RAF-DB"}
    prot = tasks.protocol("paper")
    assert prot.seeds == 1 and prot.grid.lr_factors == (1.0,)
    assert ch3.profile_config("paper").unbounded_steps == ch3.DRY_RUN["unbounded_steps"].value
    assert ch3.profile_config("paper").problems == ch3.PAPER["problems"]  # the code path is kept


def test_training_stops_after_the_dry_run_steps(dry):
    data = TensorSet(torch.randint(0, 255, (64, 3, 16, 16), dtype=torch.uint8), torch.arange(64) % 4)
    model = build_model("small_cnn", 4, in_channels=3, image_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    model.register_forward_hook(lambda _, inputs, __: calls.append(len(inputs[0])))
    train_model(model, data, TrainConfig(model="small_cnn", epochs=5, batch_size=32, augment=False),
                device="cpu", progress=False)
    assert calls == [dry.batch_cap] * dry.train_steps  # 10 steps of 32 in a real run
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_real_loaders_read_the_stand_ins(dry):
    cifar = load_cifar100()
    assert cifar.classes[69] == "rocket" and cifar.group_names[19] == "vehicles_2"
    split = make_split("cifar100", "sub_class", subclass="rocket", seed=0)
    assert len(split.forget) > 0 and split.num_classes == 20
    assert split.forget.x.shape[1:] == (3, 16, 16), "a loaded CIFAR set keeps one pixel row and column in two"
    mufac = load_mufac(size=32)
    assert mufac.train.x.shape[1:] == (3, 32, 32) and len(mufac.val) > 0, "MUFAC keeps its side"
    assert len(mufac_split(mufac, dryrun.mufac_forget_count(len(mufac.train), 1500)).forget) == len(mufac.train) // 3
    raf = load_rafdb(size=32)
    assert raf.classes[0] == "surprise" and len(rafdb_split(raf).forget) > 0


def test_every_verdict_of_a_dry_run_says_so(dry):
    rec = Recorder("x", profile="paper", device="cpu", seed=0, glue=False)
    row = rec.score("r", "a claim", paper=1.0, values=[1.0, 1.0], fact="mumis.table1.cifar100.speedup",
                    setting="cifar100 · resnet18 · 182-epoch retrain on a GPU")
    assert row["verdict"] == "dry run" and rec.save()["dry_run"] is True
    assert json.loads(json.dumps(rec.results))["dry_run"]


ROOT = Path(__file__).resolve().parents[1]
PAPER_PATHS = {"02_dlfd": ("face_source", "mufac"), "03_mumis": ("problems", ["full_class", "random_subset", "sub_class"])}
"""What proves the paper path ran: MUFAC's released split (a stand-in here) and CIFAR-20's sub-class problem."""


@pytest.mark.parametrize("chapter", parameters.toc_chapters(ROOT))
def test_every_chapters_paper_path_runs_as_a_dry_run(chapter, tmp_path):
    result = runner.run_chapter(chapter, profile="paper", overrides={"dry_run": True, "device": "cpu"},
                                out=tmp_path, root=ROOT)
    saved = json.loads(result.results.read_text())
    assert saved["dry_run"] is True and saved["profile"] == "paper"
    assert saved["scorecard"] and all(row["verdict"] == "dry run" for row in saved["scorecard"])
    assert "**Dry run.**" in result.notebook.read_text()
    if chapter in PAPER_PATHS:
        name, value = PAPER_PATHS[chapter]
        assert saved["config"]["chapter"][name] == value
