"""`warm` on a real Ray cluster on 127.0.0.1 (a head and one more worker node, separate processes)
with token authentication on (``RAY_AUTH_MODE=token``, the token in the environment only): a
chapter warmed through --address reads every unit back from the cache, a worker killed in the
middle of a warm is retried and the cache stays valid, a second warm has nothing to do, and a
driver with the wrong token is refused without running anything."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unlearnkit import runner
from unlearnkit.train import load_entry

ROOT = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / "helpers"
PLUGIN = str(HELPERS / "sleepy_plugin.py")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pidfile = tmp_path_factory.mktemp("cluster") / "pids"
    token = secrets.token_hex(16)
    env = {**os.environ, "UNLEARNKIT_TEST_PIDFILE": str(pidfile), "RAY_USAGE_STATS_ENABLED": "0",
           "OMP_WAIT_POLICY": "PASSIVE", **_auth(token)}
    proc = subprocess.Popen([sys.executable, str(HELPERS / "ray_cluster.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        address = json.loads(proc.stdout.readline())["address"]
        assert address.startswith("127.0.0.1:"), address
        yield {"address": address, "pidfile": pidfile, "token": token}
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _auth(token: str) -> dict:
    """The environment of a token-authenticated Ray process (Ray reads the token from it)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def _warm(address: str, cache: Path, *params: str, token: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "unlearnkit", "warm", "03_mumis", "--profile", "smoke", "--address", address]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, "UNLEARNKIT_CACHE": str(cache), **_auth(token)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), out


def _every_entry_valid(cache: Path) -> int:
    """Every model and run entry loads and matches the key of its sidecar; no temporary files."""
    count = 0
    for folder in ("models", "runs"):
        for pt in (cache / folder).glob("*.pt"):
            key = json.loads(pt.with_suffix(".json").read_text())["key"]
            assert load_entry(pt, key, what="entry") is not None, pt
            count += 1
    assert not list(cache.rglob("*.tmp"))
    return count


def test_warm_through_address_then_the_chapter_trains_nothing(cluster, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    summary, log = _finish(_warm(cluster["address"], cache, 'methods=["finetune"]', token=cluster["token"]))
    assert summary["failed"] == {} and summary["still_missing"] == [] and summary["done"] == summary["submitted"] > 0
    assert f"{summary['submitted']}/{summary['submitted']} done" in log
    assert _every_entry_valid(cache) > 0
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(cache))
    run = runner.run_chapter("03_mumis", profile="smoke", overrides={"methods": ["finetune"]}, out=tmp_path / "run",
                             root=ROOT)
    results = json.loads(run.results.read_text())
    assert results["models"] and all(m["cache_hit"] for m in results["models"])
    rows = [r for r in results["tables"]["ch3-runs"] if r["pick"] != "reference"]
    assert rows and all(r["cache_hit"] for r in rows)
    again, log = _finish(_warm(cluster["address"], cache, 'methods=["finetune"]', token=cluster["token"]))
    assert again["submitted"] == 0 and "nothing to do" in log


def test_a_killed_worker_is_retried_and_the_cache_stays_valid(cluster, tmp_path):
    cache = tmp_path / "cache"
    proc = _warm(cluster["address"], cache, f'plugins=["{PLUGIN}"]', 'methods=["sleepy_finetune"]',
                 token=cluster["token"])
    deadline, victim = time.time() + 300, None
    while victim is None and time.time() < deadline and proc.poll() is None:
        if cluster["pidfile"].is_file() and cluster["pidfile"].read_text().strip():
            victim = int(cluster["pidfile"].read_text().split()[0])
            os.kill(victim, signal.SIGKILL)  # the worker dies in the middle of its unit
        time.sleep(0.2)
    assert victim is not None, "no sleepy unit started"
    summary, _ = _finish(proc)
    assert summary["failed"] == {} and summary["still_missing"] == []
    _every_entry_valid(cache)
    plan = subprocess.run([sys.executable, "-m", "unlearnkit", "plan", "03_mumis", "--profile", "smoke", "--json",
                           "-p", f'plugins=["{PLUGIN}"]', "-p", 'methods=["sleepy_finetune"]'], cwd=ROOT,
                          env={**os.environ, "UNLEARNKIT_CACHE": str(cache)}, capture_output=True, text=True)
    units = [json.loads(line) for line in plan.stdout.splitlines()]
    assert units and all(u["cached"] for u in units), plan.stderr[-2000:]


BROKEN = '''
from dataclasses import dataclass
from unlearnkit.methods import register
from unlearnkit.methods.finetune import FinetuneConfig


@dataclass(frozen=True)
class BrokenConfig(FinetuneConfig):
    """Fine-tuning's settings."""


@register("broken_method", config=BrokenConfig, needs_retain=True, passes=("epochs",), reference_retrain_epochs=160,
          reference="test plugin", idea="always fails")
def broken_method(model, split, cfg, ctx):
    raise ValueError("this method always fails")
'''


def test_a_failing_unit_is_named_and_its_dependents_do_not_run(cluster, tmp_path):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(BROKEN)
    proc = _warm(cluster["address"], tmp_path / "cache", f'plugins=["{plugin}"]', 'methods=["broken_method"]',
                 token=cluster["token"])
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    failed = summary["failed"]
    assert failed and all("broken_method" in label for label in failed)
    assert any("this method always fails" in text for text in failed.values())
    assert "FAILED: broken_method" in out and summary["still_missing"]
    assert not [label for label in summary["still_missing"] if label.startswith("original")]


def test_a_driver_with_the_wrong_token_is_refused_and_the_token_is_never_written(cluster, tmp_path):
    cache = tmp_path / "cache"
    proc = _warm(cluster["address"], cache, 'methods=["finetune"]', token=secrets.token_hex(16))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0, "a driver with another token joined the cluster"
    assert not list(cache.rglob("*.pt")), "a refused driver ran units"
    assert "admits only drivers holding its token" in err, err[-2000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and cluster["token"] in p.read_text(errors="ignore")]
    assert not written and cluster["token"] not in out + err
