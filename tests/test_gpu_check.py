"""The prepared GPU check runs end to end on the CPU (tiny sizes) and writes what the speed page reads."""

import json

from conftest import load_script


def _gpu_check():
    return load_script("benchmarks/gpu_check.py")


def test_the_gpu_check_runs_on_the_cpu_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu.json"
    result = _gpu_check().main(["--device", "cpu", "--epoch-images", "256", "--chapters", "--bench-batch", "4",
                                "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["device_type"] == "cpu" and saved["device"].startswith("CPU")
    epoch = saved["epoch"]
    assert epoch["images_timed"] == 256 and epoch["extrapolated"] and epoch["pool"] > 256
    assert epoch["epoch_seconds"] > epoch["seconds_timed"] > 0
    assert epoch["paper_retrain_estimate_s"] == epoch["epoch_seconds"] * 182
    assert saved["benchmarks"][0]["ratio"] > 1  # double backprop costs more than a plain step
    assert saved["dry_runs"] == [] and result["seconds"] > 0
