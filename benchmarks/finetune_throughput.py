"""Fine-tuning throughput of the CPU recipe, before and after the speed settings, measured in one run.

Each configuration trains the CPU LoRA recipe (same data, seed) for ``--steps`` optimizer steps in its
own process and reports tokens/s (non-padding tokens / train time, from the adapter's training record),
the padding share, and peak resident memory:

- ``before``: float32, every batch padded only to its longest row, random order (the Trainer defaults);
- ``bf16 + pad64``: bf16 autocast and batches padded to a multiple of 64 tokens;
- ``bf16 + pad64 + group_by_length``: also batches rows of similar length together (the recipe's
  settings since 2026-11-21; the published adapters were trained with random order).

    OMP_NUM_THREADS=2 python benchmarks/finetune_throughput.py [--steps 12]

Writes ``results/benchmarks/finetune_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._report import publish  # noqa: E402
from econ_eval.config import results_dir  # noqa: E402

RECIPE = REPO / "finetune" / "smollm2-135m-lora.yaml"
CONFIGS = {
    "before (fp32, dynamic padding, random order)": ["bf16=false", "pad_to_multiple_of=null",
                                                     "train_sampling_strategy=random"],
    "bf16 autocast + pad64": ["bf16=true", "pad_to_multiple_of=64", "train_sampling_strategy=random"],
    "bf16 autocast + pad64 + group_by_length": ["bf16=true", "pad_to_multiple_of=64",
                                                "train_sampling_strategy=group_by_length"],
}

_CHILD = """
import json, resource, sys, time
from econ_eval.finetune.recipe import load_recipe
from econ_eval.finetune.train import TRAINING_RECORD, train
recipe = load_recipe(sys.argv[1], [*sys.argv[3:], f"output_dir={sys.argv[2]}"])
train(recipe, resume=False, log=lambda m: None)
rec = json.load(open(f"{sys.argv[2]}/{TRAINING_RECORD}"))
rec["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(rec))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps per configuration (default: %(default)s)")
    ap.add_argument("--output", default=str(results_dir() / "benchmarks" / "finetune_throughput.json"))
    args = ap.parse_args(argv)
    rows = []
    for name, overrides in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-c", _CHILD, str(RECIPE), tmp, f"max_steps={args.steps}", "logging_steps=1",
                   f"save_steps={args.steps * 10}", *overrides]
            print(f"{name}: {args.steps} steps ...", flush=True)
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            rec = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
        rows.append({"config": name, "overrides": overrides, "steps": rec["steps"],
                     "tokens_seen": rec.get("tokens_seen"), "train_wall_s": rec.get("wall_time_s"),
                     "process_wall_s": round(wall, 1), "tokens_per_second": rec["tokens_per_second"],
                     "peak_rss_mb": round(rec["peak_rss_mb"], 1), "final_loss": rec.get("final_loss")})
    base = rows[0]["tokens_per_second"]
    for r in rows:
        r["speedup_vs_before"] = round(r["tokens_per_second"] / base, 2) if base else None
    import torch

    report = {"recipe": str(RECIPE.relative_to(REPO)), "steps": args.steps, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "rows": rows}
    publish(report, args.output, [("config", "config", ""), ("tokens/s", "tokens_per_second", ".1f"),
                                  ("speedup", "speedup_vs_before", ".2f"), ("peak RSS MB", "peak_rss_mb", ".0f"),
                                  ("train s", "train_wall_s", ".1f")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
