"""The book's Sphinx extension (MathJax from a package) and the execution-statistics reader."""

import json

from unlearnkit import bookext
from unlearnkit.record import Recorder, execution_stats
from unlearnkit.runtime import source_commit


def test_mathjax_copy_holds_the_entry_script_and_its_components_only(tmp_path):
    target = bookext.copy_mathjax(tmp_path / "mathjax" / "es5")
    assert (tmp_path / bookext.MATHJAX_SCRIPT).is_file()
    assert (target / "output" / "chtml").is_dir() and (target / "input" / "tex").is_dir()
    assert not (target / "tex-svg.js").exists(), "other combined entry scripts are not copied"
    assert sorted(p.name for p in target.glob("*.js")) == ["tex-mml-chtml.js"]


class _Config:
    mathjax_path = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"


def test_the_build_points_mathjax_at_the_static_folder():
    config = _Config()
    bookext._use_local_mathjax(None, config)
    assert config.mathjax_path == bookext.MATHJAX_SCRIPT and not config.mathjax_path.startswith("http")


def test_duplicate_scripts_are_kept_once_and_the_theme_gets_a_mode():
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("", body="const A = 1"), _JavaScript("x.js")]
    context = {"script_files": scripts, "default_mode": ""}
    bookext._clean_page(None, "page", "page.html", context, None)
    assert [s.filename for s in context["script_files"]] == [None, "x.js"]
    assert context["default_mode"] == "light"


def test_results_carry_commit_and_finish_time_and_feed_the_execution_table(tmp_path):
    rec = Recorder("03_mumis", profile="smoke", device="cpu", seed=0, results_path=tmp_path / "03_mumis.json",
                   glue=False)
    rec.models([{"cache_key": "a", "cache_hit": False}, {"cache_key": "b", "cache_hit": True},
                {"cache_key": "c", "cache_hit": True}])
    saved = rec.save()
    assert saved["commit"] == source_commit() and saved["commit"] != ""
    assert saved["finished"].endswith("+00:00")
    (tmp_path / "notes.txt").write_text("not a results file")
    table = execution_stats(tmp_path)
    assert table.to_dict("records") == [{"chapter": "03_mumis", "profile": "smoke", "device": "cpu",
                                         "wall_time_s": saved["wall_time_s"], "finished": saved["finished"],
                                         "commit": saved["commit"], "models_trained": 1, "models_cached": 2}]
    assert execution_stats(None).empty and list(execution_stats(None).columns) == list(table.columns)
    assert json.loads((tmp_path / "03_mumis.json").read_text())["commit"] == saved["commit"]


def test_scorecard_html_shows_the_full_claim_interval_and_a_badge():
    from unlearnkit.record import VERDICT_COLOURS, format_number, scorecard_html

    claim = "MU-Mis's gap to Retrain is < 1 point on every one of the paper's three forgetting scenarios"
    rows = [{"claim": claim, "paper": 0.01, "ours": 0.0667, "n": 3, "ci_low": -0.013, "ci_high": 0.147,
             "verdict": "partly", "arxiv": "arXiv:2402.00000v2", "note": "interval rule"},
            {"claim": "no paper value", "paper": None, "ours": True, "n": 1, "ci_low": None, "ci_high": None,
             "verdict": "no paper value", "arxiv": None, "note": "", "fact": "mumis.table1.cifar100.mumis_gap"}]
    page = scorecard_html(rows)
    assert "MU-Mis&#x27;s gap to Retrain is &lt; 1 point on every one of the paper&#x27;s three" in page
    assert "0.0667 [-0.013, 0.147] <small>n = 3</small>" in page
    assert VERDICT_COLOURS["partly"] in page and page.count("<tr>") == 3  # header + two rows
    assert "<td>–</td><td>yes <small>n = 1</small></td><td><small>points (Avg. Gap)</small></td>" in page
    assert [format_number(v) for v in (12345, 0.5, 2e-5, 1e6, float("nan"))] == ["12,345", "0.5", "2.00e-05",
                                                                               "1.00e+06", "–"]


def test_config_rows_flatten_every_leaf():
    from unlearnkit.record import config_rows

    rows = config_rows({"protocol": {"seeds": 3, "grid": {"lr_factors": [0.3, 1.0], "knobs": {}}},
                        "plugin_methods": []})
    assert rows == [{"part": "protocol", "setting": "seeds", "value": "3"},
                    {"part": "protocol", "setting": "grid.lr_factors", "value": "[0.3, 1.0]"},
                    {"part": "protocol", "setting": "grid.knobs", "value": "{}"},
                    {"part": "plugin_methods", "setting": "–", "value": "[]"}]


def test_the_methods_appendix_is_written_from_the_registry():
    from unlearnkit.methods import available_methods, get_method

    for name in available_methods():
        entry = bookext.method_markdown(name)
        spec = get_method(name)
        assert f"**{spec.label}** (`{name}`" in entry and spec.idea in entry
        for key, value in spec.config.defaults("paper").items():
            assert f"| `{key}` |" in entry and f"`{value!r}` |" in entry
        assert f"def {spec.run.__name__}(" in entry
        assert ("× R / " in entry) == bool(spec.passes)
