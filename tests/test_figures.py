"""Book figures: drawn for the content column, one colour per method everywhere."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from unlearnkit import figures  # noqa: E402
from unlearnkit.experiments import ch4, harness  # noqa: E402
from unlearnkit.record import Recorder  # noqa: E402


def test_panels_stack_past_two_columns():
    fig, axes = figures.panels(3)
    assert len(axes) == 3 and fig.get_size_inches()[0] == figures.WIDTH
    assert figures.legibility_problems(fig) == []
    tops = sorted({round(ax.get_position().y1, 2) for ax in axes})
    assert len(tops) == 2, "three panels take two rows"
    plt.close(fig)


def test_panels_refuse_three_columns_and_no_panel():
    with pytest.raises(ValueError, match="at most 2 panels side by side"):
        figures.panels(3, columns=3)
    with pytest.raises(ValueError, match="at least one panel"):
        figures.panels(0)


def test_legibility_names_each_problem():
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].set_title("tiny", fontsize=6)
    problems = " | ".join(figures.legibility_problems(fig))
    assert "15.0 inches wide" in problems and "3 panels side by side" in problems and "'tiny' at 6.0 pt" in problems
    plt.close(fig)


def test_recorder_refuses_an_illegible_figure():
    fig, _ = plt.subplots(1, 3, figsize=(15, 4))
    with pytest.raises(ValueError, match="'wide' would not read in the book's column"):
        Recorder("test", profile="smoke", device="cpu", seed=0, glue=False).figure("wide", fig)


def test_a_method_keeps_its_colour_whatever_else_is_drawn():
    both = figures.method_colors(["salun", "finetune", "retrain"])
    alone = figures.method_colors(["finetune"])
    assert both["finetune"] == alone["finetune"] and both["retrain"] == figures.FIXED_COLORS["retrain"]
    assert len(set(figures.method_colors(["finetune", "neggrad", "salun", "scrub", "mumis"]).values())) == 5
    assert figures.method_colors(["my_plugin"])["my_plugin"] not in both.values()


def _summary() -> pd.DataFrame:
    rows = []
    for task in ("full_class", "random_subset", "identity"):
        for i, method in enumerate(("original", "retrain", "finetune", "mumis")):
            rows.append({"task": task, "method": method, "label": method.title(), "reads_retain": method != "mumis",
                         "FA": 0.1 * i, "TA": 0.7, "FA_std": 0.01, "TA_std": 0.01, "time_fraction": 0.1 + i,
                         "avg_gap": 0.02 * i, "avg_gap_std": 0.01})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("plot", [ch4.plot_utility_forgetting, ch4.plot_quality_time])
def test_head_to_head_figures_read_in_the_column(plot):
    fig = plot(_summary())
    assert figures.legibility_problems(fig) == []
    assert len(fig.legends) == 1 and {t.get_text() for t in fig.legends[0].get_texts()} >= {"Finetune", "Mumis"}
    assert not any(ax.texts for ax in fig.axes), "methods are named in the legend, not beside points"
    plt.close(fig)


def test_tuning_grid_figure_reads_in_the_column():
    rows = []
    for problem in ("full_class", "random_subset", "identity"):
        for method in ("finetune", "mumis"):
            for k, lr in enumerate((0.01, 0.03)):
                for pick in ("grid", *(("rule", "oracle") if k == 0 else ())):
                    rows.append({"problem": problem, "method": method, "label": method, "pick": pick, "seed": 0,
                                 "settings": f'{{"lr": {lr}}}', "val_accuracy": 0.7 - k / 10,
                                 "original_val_accuracy": 0.75, "FA": 0.2, "forget_target": 0.25})
    fig = harness.plot_tuning_grid(pd.DataFrame(rows))
    assert figures.legibility_problems(fig) == []
    plt.close(fig)
