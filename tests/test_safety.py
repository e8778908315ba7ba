"""Nothing touches the network at import; the model cache never unpickles code."""

import subprocess
import sys
import warnings

import torch
from torch import nn

from unlearnkit.train import cache_entry_path, cached_train

NO_NETWORK = """
import importlib, pkgutil, socket

def refuse(*args, **kwargs):
    raise RuntimeError(f"network access at import: {args!r}")

socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import unlearnkit
names = [m.name for m in pkgutil.walk_packages(unlearnkit.__path__, "unlearnkit.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_importing_every_module_touches_no_network():
    proc = subprocess.run([sys.executable, "-c", NO_NETWORK], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) > 20  # the walk really imported the package's modules


class Payload:
    """Unpickling this would call ``exec``: what a poisoned cache entry could do."""

    def __reduce__(self):
        return exec, ("import pathlib; pathlib.Path(__import__('os').environ['PWNED']).write_text('x')",)


def test_model_cache_refuses_an_entry_that_would_run_code(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED", str(marker))
    key = {"model": "linear", "seed": 0}
    path = cache_entry_path(key, tmp_path)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "meta": {"key": key, "train_seconds": 1.0}, "payload": Payload()}, path)

    fits = []

    def fit(model):
        fits.append(1)
        return model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, info = cached_train(key, lambda: nn.Linear(2, 2), fit, cache_dir=tmp_path)
    assert not marker.exists(), "loading the cache executed pickled code"
    assert fits == [1] and info["hit"] is False, "the poisoned entry must be retrained, not used"
    assert any("unreadable model cache entry" in str(w.message) for w in caught)
    reloaded, info = cached_train(key, lambda: nn.Linear(2, 2), fit, cache_dir=tmp_path)
    assert info["hit"] is True and fits == [1]
