"""The GPU check (``make gpu-check``): prove the ``paper`` path on an accelerator and time it.

In one run, at most about 5 minutes on one GPU:

1. one timed ResNet-18 epoch on CIFAR-10 (the papers' recipe: batch 128, the 45,000-image
   training pool), to estimate the paper profile's retrain time (× 182 epochs);
2. the MU-Mis step against a plain step, and the DLFD Sinkhorn cost, on the paper's ResNet-18;
3. every chapter's ``paper`` dry run on the device (``-p dry_run=True``).

It writes ``benchmarks/gpu.json`` with the device's name; the speed appendix renders it. On a
machine without a GPU, ``--device cpu --epoch-images 512`` runs the same code (the epoch time
is then extrapolated from the images timed, and says so).

    python benchmarks/gpu_check.py                       # on cuda, every chapter
    python benchmarks/gpu_check.py --device cpu --epoch-images 512 --chapters 00_setup
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from unlearnkit.metrics import best_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAPER_EPOCHS = 182  # the paper task's recipe (unlearnkit.experiments.tasks.CIFAR10_PAPER)


def device_name(device: torch.device) -> str:
    """``NVIDIA H200``-style name of a CUDA device, else the CPU's description."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def resnet18_epoch(device: torch.device, images: int | None, root=None) -> dict:
    """Seconds of one training epoch of the paper's ResNet-18 on CIFAR-10 (batch 128, SGD,
    augmentation), on ``images`` of the 45,000-image pool (None: all); extrapolated to the pool."""
    from unlearnkit.data.splits import training_pool
    from unlearnkit.experiments.tasks import CIFAR10_PAPER
    from unlearnkit.models import build_model
    from unlearnkit.train import train_model

    task = CIFAR10_PAPER
    full, classes = training_pool(task.dataset, root=root, pool_seed=task.pool_seed, val_fraction=task.val_fraction)
    pool, _ = training_pool(task.dataset, root=root, pool_seed=task.pool_seed, val_fraction=task.val_fraction,
                            max_train=images)
    model = build_model(task.model, len(classes), in_channels=3, image_size=32)
    cfg = dataclasses.replace(task.train, epochs=1, schedule="constant", milestones=())  # the first epoch's rate
    train_model(model, pool.subset(torch.arange(min(len(pool), 256))), cfg, device=device, progress=False)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    train_model(model, pool, cfg, device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    epoch = seconds * len(full) / len(pool)
    return {"images_timed": len(pool), "pool": len(full), "seconds_timed": seconds, "epoch_seconds": epoch,
            "extrapolated": len(pool) < len(full), "paper_retrain_estimate_s": epoch * PAPER_EPOCHS,
            "recipe": f"ResNet-18, batch {cfg.batch_size}, SGD lr {cfg.lr}, augmentation; x {PAPER_EPOCHS} epochs"}


def mumis_vs_plain(device: torch.device, batch: int = 128) -> dict:
    """One MU-Mis step (double backprop) against one cross-entropy step, ResNet-18, same batch."""
    sys.path.insert(0, str(HERE))
    from run import mumis_and_plain_step

    step, base = mumis_and_plain_step("resnet18", batch, device)
    return {"name": f"MU-Mis step / plain step (ResNet-18, batch {batch})", "ratio": step / base,
            "numerator_s": step, "denominator_s": base}


def sinkhorn(device: torch.device, n: int = 64, dim: int = 10) -> dict:
    """Seconds of DLFD's Sinkhorn transport cost between two batches of logits on the device."""
    from unlearnkit.transport import ot_distance

    gen = torch.Generator().manual_seed(0)
    r = torch.randn(n, dim, generator=gen).to(device).requires_grad_(True)
    f = (torch.randn(n, dim, generator=gen) + 0.5).to(device)
    seconds = best_of(lambda: ot_distance(r, f).backward(), device=device)
    return {"name": f"Sinkhorn OT forward+backward, batch {n}", "seconds": seconds}


def dry_runs(chapters: list[str], device: torch.device) -> list[dict]:
    """Every chapter's ``paper`` dry run on ``device``; a failure is recorded, not raised."""
    from unlearnkit.runner import run_chapter

    rows = []
    for chapter in chapters:
        start = time.perf_counter()
        try:
            run_chapter(chapter, profile="paper", overrides={"dry_run": True, "device": str(device)}, root=ROOT)
            rows.append({"chapter": chapter, "ok": True, "seconds": time.perf_counter() - start})
        except Exception as err:  # noqa: BLE001 - the check reports every chapter
            rows.append({"chapter": chapter, "ok": False, "seconds": time.perf_counter() - start,
                         "error": "".join(traceback.format_exception_only(err)).strip()[-2000:]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    from unlearnkit.parameters import toc_chapters
    from unlearnkit.runtime import resolve_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cpu, ...")
    parser.add_argument("--epoch-images", type=int, default=None,
                        help="images of the epoch timing (default all 45,000; fewer are extrapolated)")
    parser.add_argument("--chapters", nargs="*", default=None, help="dry runs to run (default: every chapter)")
    parser.add_argument("--bench-batch", type=int, default=128, help="batch of the step timings (default 128)")
    parser.add_argument("--out", type=Path, default=HERE / "gpu.json")
    args = parser.parse_args(argv)
    if args.epoch_images is not None and args.epoch_images < 256:
        parser.error(f"--epoch-images={args.epoch_images}: allowed: at least 256 (the warm-up batch)")
    device = resolve_device(args.device)
    chapters = toc_chapters(ROOT) if args.chapters is None else args.chapters
    start = time.perf_counter()
    out = {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
           "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "epoch": resnet18_epoch(device, args.epoch_images)}
    print(json.dumps(out["epoch"]), flush=True)
    out["benchmarks"] = [mumis_vs_plain(device, args.bench_batch), sinkhorn(device)]
    print(json.dumps(out["benchmarks"]), flush=True)
    out["dry_runs"] = dry_runs(chapters, device)
    out["seconds"] = time.perf_counter() - start
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
