"""LoRA vs LoRA+: steps and wall time to reach the same training loss, same seed and data.

Trains the two CPU recipes (identical but for ``method`` and ``loraplus_lr_ratio``), or, with
``--reuse``, reads the training records of adapters already trained from them. Writes
``results/benchmarks/lora_vs_loraplus.json`` and ``lora_vs_loraplus.png``.

The target loss is the higher of the two runs' final smoothed losses (so both reach it); a run's
steps-to-target is the first logged step from which its smoothed loss stays at or below it. Both runs
see the same batches in the same order (same seed and data), so the per-step losses are paired and
``mean_paired_loss_difference`` (LoRA+ minus LoRA, negative = LoRA+ lower) is reported too. Smoothing: a centred
moving average over 5 logged points (training loss on small batches is noisy).

    python benchmarks/lora_vs_loraplus.py [--reuse] [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from econ_eval.config import results_dir  # noqa: E402
from econ_eval.finetune.recipe import load_recipe  # noqa: E402
from econ_eval.finetune.train import TRAINING_RECORD, train  # noqa: E402
from econ_eval.io import atomic_write_json  # noqa: E402

RECIPES = {"lora": REPO / "finetune" / "smollm2-135m-lora.yaml",
           "loraplus": REPO / "finetune" / "smollm2-135m-loraplus.yaml"}


def smooth(values: list[float], window: int = 5) -> list[float]:
    half = window // 2
    return [sum(values[max(0, i - half): i + half + 1]) / len(values[max(0, i - half): i + half + 1])
            for i in range(len(values))]


def steps_to_target(history: list[dict], target: float) -> tuple[int | None, float | None]:
    """First logged step from which the smoothed loss stays at or below ``target`` (noise-robust)."""
    sm = smooth([h["loss"] for h in history])
    for i, h in enumerate(history):
        if all(s <= target for s in sm[i:]):
            return h["step"], h.get("elapsed_s")
    return None, None


def compare(records: dict[str, dict]) -> dict:
    """The comparison document from the two training records."""
    finals = {m: smooth([h["loss"] for h in r["loss_history"]])[-1] for m, r in records.items()}
    target = max(finals.values())
    out = {"target_loss": round(target, 4), "smoothing": "centred moving average, 5 logged points", "runs": {}}
    for m, r in records.items():
        step, elapsed = steps_to_target(r["loss_history"], target)
        out["runs"][m] = {"steps_to_target": step, "seconds_to_target": elapsed,
                          "final_smoothed_loss": round(finals[m], 4), "total_steps": r["steps"],
                          "wall_time_s": r["wall_time_s"], "tokens_per_second": r["tokens_per_second"],
                          "torch_threads": r.get("torch_threads"),
                          "learning_rate": r["recipe"]["learning_rate"],
                          "loraplus_lr_ratio": r["recipe"]["loraplus_lr_ratio"] if m == "loraplus" else None,
                          "loss_history": r["loss_history"]}
    pairs = {h["step"]: h["loss"] for h in records["lora"]["loss_history"]}
    diffs = [h["loss"] - pairs[h["step"]] for h in records["loraplus"]["loss_history"] if h["step"] in pairs]
    out["mean_paired_loss_difference"] = round(sum(diffs) / len(diffs), 4) if diffs else None
    a, b = out["runs"]["lora"]["steps_to_target"], out["runs"]["loraplus"]["steps_to_target"]
    out["speedup_steps_to_target"] = round(a / b, 3) if a and b else None
    ta, tb = out["runs"]["lora"]["seconds_to_target"], out["runs"]["loraplus"]["seconds_to_target"]
    out["speedup_wall_time_to_target"] = round(ta / tb, 3) if ta and tb else None
    threads = {run["torch_threads"] for run in out["runs"].values()}
    out["wall_time_comparable"] = len(threads) == 1
    if len(threads) != 1:
        out["note"] = ("the runs used different thread counts or machine load, so compare steps, not seconds: "
                       + ", ".join(f"{m} {run['torch_threads']} thread(s), {run['tokens_per_second']} tokens/s"
                                   for m, run in out["runs"].items()))
    return out


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m, run in doc["runs"].items():
        steps = [h["step"] for h in run["loss_history"]]
        losses = [h["loss"] for h in run["loss_history"]]
        ax.plot(steps, losses, alpha=0.3)
        ax.plot(steps, smooth(losses), label=f"{m} (target at step {run['steps_to_target']})")
    ax.axhline(doc["target_loss"], color="grey", ls="--", lw=0.8, label=f"target {doc['target_loss']}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(f"LoRA vs LoRA+ on SmolLM2-135M: speed-up to target {doc['speedup_steps_to_target']}x (steps)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse", action="store_true", help="read the adapters' training records instead of training")
    ap.add_argument("--max-steps", type=int, help="override max_steps for both runs (quick check)")
    ap.add_argument("--out", default=str(results_dir() / "benchmarks"))
    args = ap.parse_args()
    os.chdir(REPO)  # recipes name their output_dir relative to the checkout
    records = {}
    for method, path in RECIPES.items():
        recipe = load_recipe(path, [f"max_steps={args.max_steps}"] if args.max_steps else None)
        record_path = Path(recipe.output_dir) / TRAINING_RECORD
        published = REPO / "adapters" / Path(recipe.output_dir).name / TRAINING_RECORD
        if args.reuse and not record_path.is_file() and published.is_file():
            record_path = published  # the published adapter's record (recipes train into adapters/runs/)
        if not args.reuse:
            train(recipe, resume=False)  # refuses a finished adapter in output_dir: move it or pick another
        if not record_path.is_file():
            raise SystemExit(f"{record_path}: no training record; train {path} first or drop --reuse")
        records[method] = json.loads(record_path.read_text())
    doc = compare(records)
    out = Path(args.out)
    atomic_write_json(out / "lora_vs_loraplus.json", doc)
    plot(doc, out / "lora_vs_loraplus.png")
    print(f"{'method':<10}{'steps→target':>14}{'s→target':>10}{'final loss':>12}{'tokens/s':>10}")
    for m, r in doc["runs"].items():
        print(f"{m:<10}{str(r['steps_to_target']):>14}{str(r['seconds_to_target']):>10}"
              f"{r['final_smoothed_loss']:>12}{str(r['tokens_per_second']):>10}")
    print(f"target loss {doc['target_loss']}; speedup_steps_to_target {doc['speedup_steps_to_target']}, "
          f"wall time {doc['speedup_wall_time_to_target']} -> {out / 'lora_vs_loraplus.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
