"""Speed ratios measured in one run on this machine (``make bench``).

Each benchmark times two things side by side and prints their ratio against a goal; nothing
here is a pass/fail test. The latest figures go to ``benchmarks/latest.json``, which the
book's appendix page renders. Absolute seconds depend on the machine; the ratios are the point.

    python benchmarks/run.py            # everything
    python benchmarks/run.py --only ot  # one group: scoring, mumis, ot, train, methods, book

Every row records the commit it was measured at (``commit``, ``+dirty`` with uncommitted edits);
the speed appendix marks rows measured on code other than the book's. ``train_vs_gemm`` is
``{model: fraction}``: a training step's FLOP rate over this machine's matrix-multiply rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from unlearnkit.metrics import best_of
from unlearnkit.runtime import atomic_write_text, source_commit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def row(name: str, numerator: float, denominator: float, goal: float | None, what: str, *,
        timed_now: bool = True) -> dict:
    """One ratio; ``timed_now`` = False for figures read from earlier runs (no load recorded)."""
    ratio = numerator / denominator
    met = None if goal is None else ratio <= goal
    print(f"{name:<38} {ratio:8.2f}x  (goal {'-' if goal is None else f'<= {goal}x'})  "
          f"{numerator:.4f} s / {denominator:.4f} s  {what}", flush=True)
    return {"name": name, "ratio": ratio, "goal": goal, "goal_met": met, "numerator_s": numerator,
            "denominator_s": denominator, "what": what,
            "load_average_1min": os.getloadavg()[0] if timed_now else None}


def bench_scoring(n: int = 1_000_000, d: int = 384) -> list[dict]:
    """MAHA-MU2 scores of n unwanted points vs one n×d×d matrix product."""
    from unlearnkit.selection import maha_mu2_scores

    gen = torch.Generator().manual_seed(0)
    X1 = torch.randn(n, d, generator=gen)
    X2 = torch.randn(n // 10, d, generator=gen) + 0.1
    W = torch.randn(d, d, generator=gen)
    scoring = best_of(lambda: maha_mu2_scores(X1, X2), repeats=2)
    matmul = best_of(lambda: X1 @ W, repeats=2)
    return [row("MAHA-MU2 scoring / matmul", scoring, matmul, 2.0,
                f"{n:,}×{d} unwanted, {n // 10:,} retained, vs one {n:,}×{d}×{d} product")]


def mumis_and_plain_step(model_name: str = "small_cnn", batch: int = 128, device="cpu") -> tuple[float, float]:
    """Seconds of one MU-Mis step (double backprop) and of one plain cross-entropy step, same
    model (eval mode), batch and device (best of 3)."""
    import torch.nn.functional as F

    from unlearnkit.models import build_model
    from unlearnkit.sensitivity import draw_irrelevant_classes, mumis_loss

    torch.manual_seed(0)
    model = build_model(model_name, 10).to(device).eval()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    gen = torch.Generator().manual_seed(0)

    def plain():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def mumis():
        opt.zero_grad()
        mumis_loss(model, x, y, draw_irrelevant_classes(y.cpu(), 10, gen).to(device)).loss.backward()
        opt.step()

    return best_of(mumis, device=device), best_of(plain, device=device)


def bench_mumis(batch: int = 128) -> list[dict]:
    """One MU-Mis step (double backprop) vs one plain cross-entropy step, same batch and model."""
    return [row("MU-Mis step / plain step", *mumis_and_plain_step("small_cnn", batch), 3.0,
                f"small_cnn, batch {batch}, eval mode, CPU threads {torch.get_num_threads()}")]


def bench_ot(dlfd_batch: int = 64) -> list[dict]:
    """POT exact vs Sinkhorn transport cost at 512 and 2048 points; OT share of a DLFD step."""
    from unlearnkit.transport import ot_distance

    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in (512, 2048):
        r, f = torch.randn(n, 10, generator=gen), torch.randn(n, 10, generator=gen) + 0.5
        exact = best_of(lambda: ot_distance(r, f, method="emd"), repeats=2)
        sink = best_of(lambda: ot_distance(r, f, method="sinkhorn"), repeats=2)
        rows.append(row(f"OT exact / Sinkhorn, {n} points", exact, sink, None,
                        "ot.emd vs ot.sinkhorn(method='sinkhorn_log', reg=0.01, 50 iterations)"))
    rows.append(_dlfd_ot_share(dlfd_batch))
    return rows


def _dlfd_ot_share(batch: int) -> dict:
    """Seconds of the OT terms inside one DLFD perturbation step vs the whole step."""
    import torch.nn.functional as F

    from unlearnkit.models import build_model
    from unlearnkit.transport import ot_distance

    torch.manual_seed(0)
    model = build_model("face_cnn", 7, in_channels=1, image_size=48).eval()
    x_r, x_f = torch.rand(batch, 1, 48, 48), torch.rand(batch, 1, 48, 48)
    y_r = torch.randint(0, 7, (batch,))
    out_f = model(x_f).detach()

    def full_step():
        delta = torch.zeros_like(x_r, requires_grad=True)
        out = model((x_r + delta).clamp(0, 1))
        total = ot_distance(out, out_f) - F.cross_entropy(out, y_r)
        total.backward()

    logits = model(x_r).detach().requires_grad_(True)

    def ot_only():
        ot_distance(logits, out_f).backward()

    return row("OT share of a DLFD perturbation step", best_of(ot_only), best_of(full_step), None,
               f"face_cnn, batch {batch}: OT forward+backward / whole perturbation step")


def bench_methods() -> list[dict]:
    """Each unlearning method's wall time / retrain's (full class, its rule pick, mean over seeds),
    from the head-to-head chapter's cpu run (the harness's rows, ``tables["ch4-runs"]``)."""
    import pandas as pd

    from unlearnkit.experiments.harness import main_rows

    results = ROOT / "_build" / "runs" / "cpu" / "results" / "04_head-to-head.json"
    if not results.is_file():
        print(f"methods: no cpu run of the head-to-head chapter at {results}; run "
              "`python -m unlearnkit run 04_head-to-head --profile cpu` first", flush=True)
        return []
    runs = pd.DataFrame(json.loads(results.read_text()).get("tables", {}).get("ch4-runs", []))
    if runs.empty:
        return []
    part = main_rows(runs)
    part = part[(part["scenario"] == "full_class") & ~part["method"].isin(["original", "retrain"])]
    means = part.groupby("method", sort=False)[["seconds", "retrain_seconds"]].mean()
    return [row(f"{method} / retrain (full_class)", r["seconds"], r["retrain_seconds"], None,
                "wall time from the head-to-head cpu run (rule pick, mean over seeds)", timed_now=False)
            for method, r in means.iterrows()]


# ---------------------------------------------------------------------------- training vs GEMM

TRAIN_STEPS = {"small_cnn": 256, "resnet18": 128}
"""The models whose training step is measured, at the batch size their profile trains with
(``cpu``: small_cnn, batch 256; ``paper``: ResNet-18, batch 128), on 32×32 CIFAR inputs."""


def gemm_flops_per_s(n: int = 2048) -> float:
    """This machine's float32 matrix-multiply rate (FLOP/s): one ``n × n`` by ``n × n``
    ``torch.matmul`` (2 n³ FLOPs), best of 3 after a warm-up."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    return 2 * n ** 3 / best_of(lambda: torch.matmul(a, b))


def train_step(model_name: str, batch: int, *, channels_last: bool = True, bf16: bool = False):
    """``(step, flops)``: a function running one SGD training step of ``model_name`` on a
    random CIFAR-sized batch (forward, cross-entropy, backward, update: ``train.train_model``'s
    inner loop) and the FLOPs torch counts in it (:class:`torch.utils.flop_counter.FlopCounterMode`:
    2 per multiply-add of every convolution and matrix product, forward and backward)."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from unlearnkit.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, 10).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    return step, counter.get_total_flops()


def bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX-512 BF16 or AMX), so a bf16 lever is worth timing."""
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def train_levers(model_name: str, batch: int) -> dict[str, tuple[int, bool, bool]]:
    """The training-step variants timed for a model: ``{lever: (batch, channels_last, bf16)}``;
    ``current`` is the path ``train.train_model`` takes on a CPU."""
    levers = {"current": (batch, True, False), "contiguous layout": (batch, False, False),
              "batch x2": (2 * batch, True, False)}
    if bf16_supported():
        levers["bf16 autocast"] = (batch, True, True)
    return levers


def bench_train(models: dict[str, int] | None = None) -> list[dict]:
    """Per model and lever: the achieved FLOP rate of a training step as a fraction of this
    machine's GEMM rate, both measured in this run. Also sets :data:`TRAIN_VS_GEMM` (the
    ``current`` path per model) and :data:`TRAIN_LEVERS` for ``latest.json``."""
    rate = gemm_flops_per_s()
    print(f"GEMM rate: {rate / 1e9:.1f} GFLOP/s (float32, 2048², {torch.get_num_threads()} threads)", flush=True)
    rows = []
    for model_name, batch in (models or TRAIN_STEPS).items():
        for lever, (size, channels_last, bf16) in train_levers(model_name, batch).items():
            step, flops = train_step(model_name, size, channels_last=channels_last, bf16=bf16)
            seconds = best_of(step)
            at_gemm_rate = flops / rate
            rows.append(row(f"{model_name} train step at GEMM rate / measured, {lever}", at_gemm_rate, seconds,
                            None, f"batch {size}, {flops / size / 6e6:.0f} M multiply-adds an image (forward); "
                                  f"GEMM {rate / 1e9:.1f} GFLOP/s"))
            TRAIN_LEVERS.setdefault(model_name, {})[lever] = at_gemm_rate / seconds
        TRAIN_VS_GEMM[model_name] = TRAIN_LEVERS[model_name]["current"]
    return rows


TRAIN_VS_GEMM: dict[str, float] = {}
"""``{model: fraction}``: the current training path's FLOP rate over the GEMM rate (``latest.json``)."""
TRAIN_LEVERS: dict[str, dict[str, float]] = {}
"""``{model: {lever: fraction}}`` for every lever :func:`train_levers` timed."""


BOOK_BUDGET_MIN = {"cold": 90, "warm": 30}
"""The cpu book's budgets in minutes on 2 cores: cold (models and runs made in the build, the
audit included) and warm (every model and run read from the cache)."""


def bench_book() -> list[dict]:
    """The cpu-profile time of each chapter (no goal: its share of the book) and of all of
    them against the budget of the build's cache state: cold when any chapter trained a model,
    warm when every model was read from the cache."""
    runs = ROOT / "_build" / "runs" / "cpu" / "results"
    if not runs.is_dir():
        print(f"book: no cpu run at {runs}; run `make book` first", flush=True)
        return []
    results = {path.stem: json.loads(path.read_text()) for path in sorted(runs.glob("*.json"))}
    total = sum(r["wall_time_s"] for r in results.values())
    trained = sum(not m.get("cache_hit") for r in results.values() for m in r.get("models", []))
    state = "cold" if trained else "warm"
    rows = [row(f"chapter {stem} / all chapters", r["wall_time_s"], total, None,
                f"cpu profile wall time, {state} build", timed_now=False) for stem, r in results.items()]
    rows.append(row(f"all chapters / {BOOK_BUDGET_MIN[state]} min ({state})", total, 60.0 * BOOK_BUDGET_MIN[state], 1.0,
                    f"cpu profile, {trained} models trained in the build; the HTML build excluded", timed_now=False))
    return rows


BENCHES = {"scoring": bench_scoring, "mumis": bench_mumis, "ot": bench_ot, "train": bench_train,
           "methods": bench_methods, "book": bench_book}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    parser.add_argument("--out", type=Path, default=HERE / "latest.json")
    args = parser.parse_args()
    rows = []
    for name in args.only or BENCHES:
        rows += BENCHES[name]()
    commit, date = source_commit(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in rows:
        r.update(commit=commit, date=date)
    meta = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "date": date, "commit": commit}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = [r for r in previous.get("rows", []) if r["name"] not in {n["name"] for n in rows}]
    out = {"meta": meta, "rows": kept + rows,
           "train_vs_gemm": {**previous.get("train_vs_gemm", {}), **TRAIN_VS_GEMM},
           "train_levers": {**previous.get("train_levers", {}), **TRAIN_LEVERS}}
    atomic_write_text(args.out, json.dumps(out, indent=2))
    if TRAIN_VS_GEMM:
        print("train_vs_gemm: " + ", ".join(f"{m} {f:.1%}" for m, f in TRAIN_VS_GEMM.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
