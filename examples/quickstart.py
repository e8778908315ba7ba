"""Two unlearning methods against Retrain on CIFAR-10 (10 % random forget set), from the public API.

    python examples/quickstart.py          # profile cpu: real CIFAR-10, small CNN, the book's seeds
    python examples/quickstart.py smoke    # synthetic images, tiny model: seconds
"""
import sys

from unlearnkit.experiments import harness, tasks
from unlearnkit.record import paired_tests
from unlearnkit.runtime import resolve_device

profile = sys.argv[1] if len(sys.argv) > 1 else "cpu"
device = resolve_device("auto")
protocol = tasks.protocol(profile)  # seeds, evaluation sample and tuning grid of every comparison in the book
problems = [tasks.build(tasks.spec("random_subset", profile, seed=seed, forget_fraction=0.1), device=device)
            for seed in range(protocol.seeds)]  # each seed: its own original, forget draw and retrained model
rows = harness.compare(problems, ["finetune", "neggrad"], grid=protocol.grid, profile=profile, device=device,
                       retain_eval=protocol.retain_eval)  # tune on seed 0 (rule: never reads Retrain), run every seed
summary = harness.summarise(harness.main_rows(rows), ["RA", "FA", "TA", "avg_gap", "time_fraction"])
print(harness.display(summary).to_string())

gap = {m: harness.seed_map(rows, problems[0].name, m, "avg_gap") for m in ("finetune", "neggrad")}
verdict, _, tests = paired_tests(gap["finetune"], {"neggrad": gap["neggrad"]}, higher_is_better=False)
test = tests["neggrad"]  # per-seed NegGrad gap minus FT gap: positive = FT closer to retraining
print(f"FT closer to Retrain than NegGrad (Avg. Gap, paired over {test['n']} seeds): "
      f"{100 * test['mean']:.1f} [{100 * test['low']:.1f}, {100 * test['high']:.1f}] points -> {verdict}")
