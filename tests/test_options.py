"""The researcher's knobs (unlearnkit.experiments.options): plugins, methods, overrides, seeds, problems."""

import sys
from pathlib import Path

import pytest

from unlearnkit.experiments import ch2, ch3, ch4, options, tasks
from unlearnkit.experiments.harness import Grid
from unlearnkit.methods import METHODS, available_methods, get_method

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "max_entropy.py"


@pytest.fixture
def clean_registry():
    """Plugins register into the global registry (an earlier test's run check may have loaded
    one in this process): the test starts without plugins, and the registry is restored after."""
    saved_methods = dict(METHODS)
    saved_modules = {m: sys.modules.pop(m) for m in list(sys.modules) if m.startswith(options.PLUGIN_PREFIX)}
    for name, spec in saved_methods.items():
        if spec.run.__module__.startswith(options.PLUGIN_PREFIX):
            del METHODS[name]
    yield
    METHODS.clear()
    METHODS.update(saved_methods)
    for name in [m for m in sys.modules if m.startswith(options.PLUGIN_PREFIX)]:
        del sys.modules[name]
    sys.modules.update(saved_modules)


def test_the_example_plugin_registers_a_budgeted_method_once(clean_registry):
    assert options.load_plugins([str(EXAMPLE)]) == ["max_entropy"]
    spec = get_method("max_entropy")
    assert options.load_plugins([str(EXAMPLE)]) == ["max_entropy"], "a second load names the same methods"
    assert get_method("max_entropy") is spec, "a second load does not import the file again"
    assert spec.passes == ("epochs",) and spec.reference_retrain_epochs == 160 and spec.needs_retain
    assert available_methods()[-1] == "max_entropy"


def test_chapter_methods_keep_the_required_ones():
    assert options.chapter_methods(("mumis",), ch3.METHODS, []) == ch3.METHODS
    assert options.chapter_methods(("mumis",), ch3.METHODS, ["salun"]) == ("salun", "mumis")
    assert options.chapter_methods(ch2.DLFD_VARIANTS, ch2.METHODS, []) == ch2.METHODS
    assert ch4.profile_config("smoke", methods=["salun"]).methods == ("salun", "retrain", "mumis", "dlfd", "finetune")
    with pytest.raises(ValueError, match="unknown unlearning method 'salunn'"):
        options.chapter_methods(("mumis",), ch3.METHODS, ["salunn"])


@pytest.mark.parametrize("overrides, message", [
    ({"finetune": {"epochs": 3}}, r"method_overrides\['finetune'\] sets 'epochs', which counts passes over the data"),
    ({"unsir": {"repair_lr": 0.1, "repair_epochs": 1}}, r"method_overrides\['unsir'\] sets 'repair_epochs'"),
    ({"dlfd": {"select_checkpoint": True}}, r"method_overrides\['dlfd'\] sets 'select_checkpoint', which every "
                                            r"comparison fixes at False"),
])
def test_overrides_of_a_pass_field_or_a_comparison_setting_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        options.check_method_overrides(overrides)


def test_overrides_fix_a_tuned_knob_and_start_the_lr_grid():
    grid = Grid(lr_factors=(0.3, 1.0, 3.0), knobs={"mumis": {"delta": (1.3, 2.0)}})
    overrides = options.check_method_overrides({"mumis": {"lr": 0.01, "delta": 1.5}})
    fixed = options.grid_for(grid, overrides)
    assert fixed.knobs == {} and fixed.lr_factors == grid.lr_factors
    points = fixed.candidates("mumis", "smoke", overrides["mumis"])
    assert [p["lr"] for p in points] == [0.003, 0.01, 0.03] and {p["delta"] for p in points} == {1.5}
    assert options.grid_for(grid, {"finetune": {"lr": 0.1}}).knobs == grid.knobs
    merged = options.merged_base({"dlfd": {"forget_weight": 3.0, "lr": 0.008}}, {"dlfd": {"lr": 0.01}, "salun": {"lr": 0.1}})
    assert merged == {"dlfd": {"forget_weight": 3.0, "lr": 0.01}, "salun": {"lr": 0.1}}


def test_seeds_and_scenario_knobs():
    assert tasks.protocol("cpu", n_seeds=5).seeds == 5 and tasks.protocol("cpu").seeds == 3
    assert tasks.check_knobs(forget_class="cat", pool_size=None) == {"forget_class": "cat"}
    with pytest.raises(TypeError, match="n_seeds must be an int"):
        options.check_n_seeds(True)


def test_problem_knobs_change_the_split_and_the_pool(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path))
    plain = tasks.build(tasks.spec("random_subset", "smoke", seed=0), device="cpu")
    changed = tasks.build(tasks.spec("random_subset", "smoke", seed=0, forget_fraction=0.2, pool_size=300), device="cpu")
    assert len(changed.split.train) == 300 < len(plain.split.train)
    assert len(changed.split.forget) == pytest.approx(0.2 * 300, abs=10)
    assert changed.key["original"] != plain.key["original"], "a smaller pool trains its own original"
    full = tasks.build(tasks.spec("full_class", "smoke", seed=0, forget_class=3), device="cpu")
    assert set(full.split.forget.y.tolist()) == {3}
    with pytest.raises(ValueError, match=r"unknown full_class knob 'pool'; allowed: 'forget_class', 'pool_size'"):
        tasks.spec("full_class", "smoke", seed=0, pool=10)
    with pytest.raises(ValueError, match=r"unknown full_class knob 'forget_fraction'"):
        tasks.spec("full_class", "smoke", seed=0, forget_fraction=0.2)  # not this scenario's: refused, not ignored
    with pytest.raises(ValueError, match=r"forget_fraction=1.5 is out of range"):
        tasks.spec("random_subset", "smoke", seed=0, forget_fraction=1.5)
