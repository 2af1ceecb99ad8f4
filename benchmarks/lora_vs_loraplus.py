"""LoRA vs LoRA+ as an experiment: held-out validation loss curves over learning rates and seeds.

After the seed thesis (GPT-2, signal detection in news, r 16, alpha 32, dropout 0.1, batch 5: LoRA stable
after ~3,500 steps, LoRA+ after ~2,500, i.e. 1.4x). Every run trains the recipe
``finetune/smollm2-135m-signal-lora-vs-loraplus.yaml`` (the signal task only) with one method, one base
learning rate and one seed; LoRA and LoRA+ of the same (rate, seed) start from the same adapter weights
and see the same batches in the same order. The held-out validation loss (a fixed set of validation
stories) is scored every ``eval_steps``.

Speed-up, per (rate, seed) = steps LoRA needs to reach its best smoothed validation loss / steps LoRA+
needs to reach that same loss (smoothing: centred moving average over 3 evaluation points). ``None``
when LoRA+ never reaches it within the run (reported as such, not dropped). Each adapter's final
validation F1 of the "Yes" (signal) class is measured on a fixed seeded set of validation stories by
comparing the next-token log-probabilities of "Yes" and "No" after the chat prompt.

Writes ``results/benchmarks/lora_vs_loraplus.json`` and ``lora_vs_loraplus.png``. Finished runs are
reused (their adapters stay in ``adapters/runs/lora-vs-loraplus/``), so an interrupted experiment resumes.

    python benchmarks/lora_vs_loraplus.py [--lrs 2e-4 1e-3] [--seeds 1 2] [--ratio 16] [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from econ_eval.config import results_dir  # noqa: E402
from econ_eval.finetune.recipe import load_recipe  # noqa: E402
from econ_eval.io import atomic_write_json  # noqa: E402

RECIPE = REPO / "finetune" / "smollm2-135m-signal-lora-vs-loraplus.yaml"
RUNS = Path("adapters/runs/lora-vs-loraplus")
SMOOTHING = 3
THESIS = {"speedup": 1.4, "lora_steps": 3500, "loraplus_steps": 2500, "model": "GPT-2",
          "setting": "signal detection in news, r 16, alpha 32, dropout 0.1, lr 1e-3, batch 5, one epoch"}


def smooth(values: list[float], window: int = SMOOTHING) -> list[float]:
    """Centred moving average (shorter at the ends)."""
    half = window // 2
    out = []
    for i in range(len(values)):
        part = values[max(0, i - half): i + half + 1]
        out.append(sum(part) / len(part))
    return out


def first_step_at_or_below(history: list[dict], target: float) -> int | None:
    """First evaluated step whose smoothed validation loss is at or below ``target`` (``None``: never)."""
    sm = smooth([h["loss"] for h in history])
    for h, s in zip(history, sm):
        if s <= target + 1e-12:
            return h["step"]
    return None


def speedup(lora: list[dict], loraplus: list[dict]) -> dict:
    """The speed-up of one (rate, seed) pair from the two validation-loss histories."""
    sm = smooth([h["loss"] for h in lora])
    best = min(sm)
    s_lora = first_step_at_or_below(lora, best)
    s_plus = first_step_at_or_below(loraplus, best)
    return {"lora_best_smoothed_loss": round(best, 4), "lora_steps_to_best": s_lora,
            "loraplus_steps_to_same_loss": s_plus,
            "loraplus_best_smoothed_loss": round(min(smooth([h["loss"] for h in loraplus])), 4),
            "speedup": round(s_lora / s_plus, 3) if s_lora and s_plus else None}


def summarise(runs: list[dict]) -> dict:
    """Pairs LoRA and LoRA+ runs of the same (rate, seed, ratio) and summarises the speed-ups."""
    by_key = {}
    for r in runs:
        by_key.setdefault((r["learning_rate"], r["seed"]), {})[r["method"]] = r
    pairs = []
    for (lr, seed), pair in sorted(by_key.items()):
        if {"lora", "loraplus"} <= set(pair):
            row = {"learning_rate": lr, "seed": seed,
                   **speedup(pair["lora"]["validation_loss_history"], pair["loraplus"]["validation_loss_history"]),
                   "lora_validation_f1": pair["lora"]["validation_f1"],
                   "loraplus_validation_f1": pair["loraplus"]["validation_f1"]}
            pairs.append(row)
    values = [p["speedup"] for p in pairs if p["speedup"] is not None]
    per_lr = {}
    for p in pairs:
        per_lr.setdefault(str(p["learning_rate"]), []).append(p["speedup"])
    return {
        "pairs": pairs,
        "speedup_mean": round(statistics.mean(values), 3) if values else None,
        "speedup_min": min(values) if values else None, "speedup_max": max(values) if values else None,
        "speedup_sd": round(statistics.stdev(values), 3) if len(values) > 1 else None,
        "pairs_where_loraplus_never_reached": sum(p["speedup"] is None for p in pairs),
        "speedup_by_learning_rate": per_lr,
    }


def validation_f1(adapter: Path, recipe, n: int, seed: int = 0) -> dict:
    """F1 of the signal class on ``n`` seeded validation stories (next-token "Yes" vs "No"), with the stories
    clipped as ``recipe`` clipped them for training; under bf16 autocast where this CPU has native bf16 matmuls,
    else in float32 (emulated bf16 is several times slower), the choice recorded as ``dtype``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from econ_eval import tasks
    from econ_eval.config import fitted_dtype
    from econ_eval.data.build import _order_key
    from econ_eval.finetune.data import clip_doc
    from econ_eval.io import read_jsonl
    from econ_eval.lm_tasks import bundle_path
    from econ_eval.metrics import f1
    from econ_eval.models import resolve_model

    spec = tasks.task("econ_signal")
    rows = read_jsonl(bundle_path() / "econ_signal" / "validation.jsonl")
    rows = [rows[i] for i in sorted(range(len(rows)), key=lambda i: _order_key(seed, f"f1:{i}"))[:n]]
    max_chars = recipe.econ.mixture["econ_signal"].get("max_chars")
    base = resolve_model(recipe.base_model)
    tok = AutoTokenizer.from_pretrained(base)
    tok.padding_side = "left"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter)).eval()
    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
    preds = []
    dtype = fitted_dtype(device="cpu")[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        for i in range(0, len(rows), 8):
            texts = [tok.apply_chat_template([{"role": "user", "content": spec.prompt(clip_doc(r, max_chars))}],
                                             tokenize=False, add_generation_prompt=True) for r in rows[i:i + 8]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            logits = model(**enc).logits[:, -1, :]
            preds += [int(v) for v in (logits[:, yes] > logits[:, no]).tolist()]
    gold = [int(r["signal"]) for r in rows]
    return {"f1": round(f1(list(zip(gold, preds))), 4), "n": len(rows), "positives": sum(gold),
            "predicted_positive": sum(preds), "dtype": dtype}


def run_one(method: str, lr: float, seed: int, ratio: float, max_steps: int | None, f1_n: int,
            runs_dir: Path = RUNS) -> dict:
    """Train (or reuse) one run and return its record, with the validation F1 added."""
    from econ_eval.finetune.train import TRAINING_RECORD, train

    out = runs_dir / (f"{method}-lr{lr:g}-seed{seed}" + ("" if method == "lora" else f"-ratio{ratio:g}"))
    overrides = [f"method={method}", f"learning_rate={lr}", f"seed={seed}", f"loraplus_lr_ratio={ratio}",
                 f"output_dir={out}"] + ([f"max_steps={max_steps}"] if max_steps else [])
    recipe = load_recipe(RECIPE, overrides)
    record_path = out / TRAINING_RECORD
    if not record_path.is_file():
        print(f"== training {out}", flush=True)
        train(recipe, resume=False)
    record = json.loads(record_path.read_text())
    if record.get("validation_f1") is None:
        t0 = time.time()
        record["validation_f1"] = validation_f1(out, recipe, f1_n)
        record["validation_f1"]["seconds"] = round(time.time() - t0, 1)
        atomic_write_json(record_path, record)
    return {"method": method, "learning_rate": lr, "seed": seed,
            "loraplus_lr_ratio": ratio if method == "loraplus" else None, "adapter": str(out),
            "steps": record["steps"], "wall_time_s": record["wall_time_s"],
            "tokens_per_second": record["tokens_per_second"], "torch_threads": record["torch_threads"],
            "final_train_loss": record["final_loss"],
            "final_validation_loss": record["final_validation_loss"],
            "validation_loss_history": record["validation_loss_history"],
            "train_loss_history": record["loss_history"], "validation_f1": record["validation_f1"]["f1"],
            "validation_f1_detail": record["validation_f1"]}


def plot(doc: dict, path: Path) -> None:
    """Validation-loss curves: one panel per learning rate, both methods, every seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = sorted({r["learning_rate"] for r in doc["runs"]})
    fig, axes = plt.subplots(1, len(lrs), figsize=(5 * len(lrs), 3.6), squeeze=False)
    colours = {"lora": "tab:blue", "loraplus": "tab:orange"}
    for ax, lr in zip(axes[0], lrs):
        for r in doc["runs"]:
            if r["learning_rate"] != lr:
                continue
            h = r["validation_loss_history"]
            ax.plot([p["step"] for p in h], [p["loss"] for p in h], color=colours[r["method"]],
                    ls="-" if r["seed"] == min(doc["seeds"]) else "--", marker=".",
                    label=f"{'LoRA+' if r['method'] == 'loraplus' else 'LoRA'} seed {r['seed']}")
        sp = [p["speedup"] for p in doc["summary"]["pairs"] if p["learning_rate"] == lr]
        ax.set_title(f"lr {lr:g}: speed-up {', '.join('n/a' if s is None else f'{s:.2f}x' for s in sp)}",
                     fontsize=9)
        ax.set_xlabel("step (batch 5)")
        ax.set_ylabel("validation loss (completion)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("LoRA vs LoRA+ (ratio %g) on SmolLM2-135M, signal task" % doc["loraplus_lr_ratio"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lrs", nargs="+", type=float, default=[2e-4, 1e-3], help="base learning rates")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--ratio", type=float, default=16.0, help="LoRA+ learning-rate ratio of B to A")
    ap.add_argument("--max-steps", type=int, help="cap every run (quick check)")
    ap.add_argument("--f1-stories", type=int, default=100, help="validation stories for the final F1")
    ap.add_argument("--out", default=str(results_dir() / "benchmarks"))
    ap.add_argument("--runs", default=str(RUNS), help="where the runs' adapters go (finished ones are reused)")
    args = ap.parse_args()
    os.chdir(REPO)  # the recipe names its output_dir relative to the checkout
    t0 = time.time()
    runs = [run_one(method, lr, seed, args.ratio, args.max_steps, args.f1_stories, Path(args.runs))
            for lr in args.lrs for seed in args.seeds for method in ("lora", "loraplus")]
    recipe = load_recipe(RECIPE)
    doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "recipe": str(RECIPE.relative_to(REPO)),
           "base_model": recipe.base_model, "task": "econ_signal",
           "examples_per_run": recipe.econ.mixture["econ_signal"]["max_examples"],
           "batch_size": recipe.training.per_device_train_batch_size,
           "validation_stories": recipe.econ.validation["econ_signal"], "eval_steps": recipe.training.eval_steps,
           "learning_rates": args.lrs, "seeds": args.seeds, "loraplus_lr_ratio": args.ratio,
           "smoothing": f"centred moving average over {SMOOTHING} evaluation points",
           "speedup_definition": "steps LoRA needs to reach its best smoothed validation loss / steps LoRA+ needs "
                                 "to reach that same loss (None: LoRA+ never reached it)",
           "thesis": THESIS, "summary": summarise(runs), "runs": runs,
           "total_train_cpu_s": round(sum(r["wall_time_s"] for r in runs), 1),
           "this_invocation_wall_s": round(time.time() - t0, 1)}
    out = Path(args.out)
    atomic_write_json(out / "lora_vs_loraplus.json", doc)
    plot(doc, out / "lora_vs_loraplus.png")
    print(f"{'lr':>8}{'seed':>6}{'LoRA best':>11}{'LoRA steps':>12}{'LoRA+ steps':>13}{'speed-up':>10}"
          f"{'F1 LoRA':>9}{'F1 LoRA+':>10}")
    for p in doc["summary"]["pairs"]:
        print(f"{p['learning_rate']:>8g}{p['seed']:>6}{p['lora_best_smoothed_loss']:>11}{p['lora_steps_to_best']!s:>12}"
              f"{p['loraplus_steps_to_same_loss']!s:>13}{p['speedup']!s:>10}{p['lora_validation_f1']:>9}"
              f"{p['loraplus_validation_f1']:>10}")
    s = doc["summary"]
    print(f"speed-up mean {s['speedup_mean']} (min {s['speedup_min']}, max {s['speedup_max']}, sd {s['speedup_sd']}); "
          f"thesis {THESIS['speedup']}x -> {out / 'lora_vs_loraplus.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
