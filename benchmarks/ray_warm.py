"""Warming a chapter's ``cpu`` units with two Ray workers against one process doing them in turn
(``make bench-ray``); a ratio measured in one run on this machine, not a pass/fail test.

The chapter's plan is made against a fresh cache; its first ``--units`` trainings whose label
contains ``--match`` (trainings do not depend on each other, so two workers can share them)
then run twice, each time into a fresh cache of its own:

1. in this process, one after another (torch's default threads);
2. as Ray tasks on a local Ray started with two CPUs (one unit per CPU, one thread each).

Printed and written to ``benchmarks/ray_warm.json``: both wall times, their ratio, and the Ray
overhead per unit, ``(2 × Ray wall − Σ seconds the units took inside the workers) / units``:
what the two workers spent not running units (start-up, scheduling, idle tail); and the
ratio's ceiling on this machine, ``2 × unit_s_one_process / unit_s_ray``: what two one-thread
workers with no overhead at all would gain over one process running each unit on every thread.

    python benchmarks/ray_warm.py                                   # CK+ trainings of chapter 2
    python benchmarks/ray_warm.py --chapter 04_head-to-head --match cifar10 --units 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from unlearnkit import runner
from unlearnkit.cluster import warm
from unlearnkit.experiments import work
from unlearnkit.runtime import source_commit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKERS = 2


def chosen_units(chapter: str, match: str, count: int) -> tuple[list[work.Unit], work.Context]:
    """The chapter's first ``count`` cpu trainings whose label contains ``match`` (fresh cache)."""
    work_, context = runner.chapter_work(chapter, profile="cpu", root=ROOT)
    units = [u for u in work.plan(work_) if u.kind == "train" and match in u.label][:count]
    if len(units) < count:
        raise SystemExit(f"{chapter} has {len(units)} cpu trainings matching {match!r}; asked for {count}")
    return units, context


def _processor() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor field elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chapter", default="02_dlfd")
    parser.add_argument("--match", default="ckplus", help="text every chosen unit's label contains")
    parser.add_argument("--units", type=int, default=6)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="unlearnkit-bench-ray-") as tmp:
        os.environ["UNLEARNKIT_CACHE"] = str(Path(tmp) / "plan")
        units, context = chosen_units(args.chapter, args.match, args.units)
        local = replace(context, env={**context.env, "UNLEARNKIT_CACHE": str(Path(tmp) / "one-process")})
        start = time.perf_counter()
        inside = work.execute_all(units, local, report=lambda line: None)
        one_process = time.perf_counter() - start
        on_ray = replace(context, env={**context.env, "UNLEARNKIT_CACHE": str(Path(tmp) / "ray")})
        report = warm(units, on_ray, num_cpus=WORKERS, report=lambda line: None)
    if report.failed:
        raise SystemExit(f"units failed on Ray: {report.failed}")
    overhead = (WORKERS * report.seconds - sum(report.unit_seconds)) / len(units)
    result = {
        "what": f"{len(units)} {args.chapter} cpu trainings ({args.match}): {WORKERS} Ray workers vs one process",
        "units": [u.label for u in units],
        "one_process_s": round(one_process, 2), "one_process_threads": torch.get_num_threads(),
        "ray_s": round(report.seconds, 2), "ray_workers": WORKERS,
        "speedup": round(one_process / report.seconds, 3),
        "unit_s_one_process": round(sum(d["seconds"] for d in inside) / len(units), 2),
        "unit_s_ray": round(sum(report.unit_seconds) / len(units), 2),
        "ray_overhead_per_unit_s": round(overhead, 2),
        "speedup_ceiling": round(WORKERS * sum(d["seconds"] for d in inside) / sum(report.unit_seconds), 3),
        "cpus": os.cpu_count(), "load_before": load_before, "machine": platform.platform(),
        "processor": _processor(), "date": time.strftime("%Y-%m-%d %H:%M"), "commit": source_commit(),
    }
    print(json.dumps(result, indent=2))
    (HERE / "ray_warm.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
