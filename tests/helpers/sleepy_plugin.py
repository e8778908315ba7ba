"""A test plugin: fine-tuning that first writes its process id to ``$UNLEARNKIT_TEST_PIDFILE``
and, the first time, sleeps, so a test can kill the worker running it (test_cluster.py)."""

import os
import time
from pathlib import Path
from dataclasses import dataclass

from unlearnkit.methods import register
from unlearnkit.methods.finetune import FinetuneConfig, finetune_loop


@dataclass(frozen=True)
class SleepyConfig(FinetuneConfig):
    """Fine-tuning's settings."""


@register("sleepy_finetune", label="FT (sleepy)", config=SleepyConfig, needs_retain=True, needs_forget=False,
          passes=("epochs",), reference_retrain_epochs=160, reference="test plugin", idea="fine-tuning, slowly")
def sleepy_finetune(model, split, cfg, ctx):
    """Write the pid, sleep 4 s if no unit wrote one before (the test kills that first one), fine-tune."""
    pidfile = os.environ.get("UNLEARNKIT_TEST_PIDFILE")
    if pidfile:
        first = not os.path.isfile(pidfile) or not Path(pidfile).read_text().strip()
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
        if first:
            time.sleep(4)
    return finetune_loop(model, split.retain, cfg, ctx)
