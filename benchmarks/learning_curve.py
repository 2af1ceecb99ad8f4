"""Learning curve of a CPU adapter: headline scores on the VALIDATION split after every saved checkpoint.

Each checkpoint of a training run (``checkpoint-<step>/``, saved every ``save_steps``) and the base model
(0 examples) are scored with the real ``lm_eval`` on the log-likelihood tasks' validation splits (the test
split stays untouched until the final adapter is published): the tasks are the suite's own YAMLs with
``test_split: validation``. Writes ``results/benchmarks/learning_curve_<run>.json`` and ``.png`` (headline
score with its 95% interval vs examples seen; the held-out validation loss from the training record beside it).

    python benchmarks/learning_curve.py adapters/runs/smollm2-135m-lora-classify-signal \
        [--tasks econ_classify econ_signal] [--limit N]
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

from econ_eval import tasks  # noqa: E402
from econ_eval.config import DEFAULT_MODEL, results_dir, tasks_dir  # noqa: E402
from econ_eval.evaluate import EvalSpec, lm_eval_command  # noqa: E402
from econ_eval.finetune.train import TRAINING_RECORD  # noqa: E402
from econ_eval.io import DataError, atomic_write_json  # noqa: E402
from econ_eval.models import resolve_model  # noqa: E402


def validation_task_yaml(task: str, folder: Path) -> Path:
    """A task file that is the suite's ``task`` scored on its validation split (named ``<task>_validation``)."""
    path = folder / f"{task}_validation.yaml"
    path.write_text(f"include: {tasks_dir() / 'econ' / (task + '.yaml')}\n"
                    f"task: {task}_validation\ntest_split: validation\n")
    return path


def score_point(adapter: Path | None, task_list: list[str], limit: int | None, work: Path) -> dict:
    """Headline score (+ stderr) of each task on validation for the base model plus ``adapter``."""
    files = [validation_task_yaml(t, work) for t in task_list]
    out = work / f"out-{adapter.name if adapter else 'base'}-{time.time_ns()}"
    spec = EvalSpec(model=DEFAULT_MODEL, adapter=str(adapter) if adapter else None, tasks=",".join(map(str, files)),
                    limit=limit)
    cmd = [a for a in lm_eval_command(spec, resolve_model(DEFAULT_MODEL), out) if a != "--log_samples"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lm_eval failed for {adapter or 'base'}:\n{proc.stderr[-3000:]}")
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    scores = {}
    for t in task_list:
        headline = tasks.task(t).headline
        r = results[f"{t}_validation"]
        scores[t] = {"metric": headline, "score": r[f"{headline},none"], "stderr": r.get(f"{headline}_stderr,none")}
    return {"scores": scores, "seconds": round(time.time() - t0, 1)}


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    xs = [p["examples_seen"] for p in doc["points"]]
    for t in doc["tasks"]:
        ys = [p["scores"][t]["score"] for p in doc["points"]]
        err = [1.96 * (p["scores"][t]["stderr"] or 0) for p in doc["points"]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3,
                    label=f"{tasks.task(t).title} ({doc['points'][0]['scores'][t]['metric']})")
    val = doc.get("validation_loss_history") or []
    if val:
        ax2 = ax.twinx()
        ax2.plot([h["step"] * doc["examples_per_step"] for h in val], [h["loss"] for h in val], color="grey",
                 ls=":", marker=".", label="validation loss")
        ax2.set_ylabel("held-out loss", color="grey")
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("validation score (95% interval)")
    ax.set_title(f"Learning curve: {doc['run']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _document(run: Path, args, per_step: int, record: dict, points: list[dict]) -> dict:
    return {"run": run.name, "tasks": args.tasks, "split": "validation", "limit": args.limit,
            "examples_per_step": per_step, "examples": record["examples"],
            "training_wall_time_s": record["wall_time_s"], "bundle_version": record["bundle_version"],
            "validation_loss_history": record.get("validation_loss_history"), "points": points}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a training run folder with checkpoint-*/ and econ_eval_training.json")
    ap.add_argument("--tasks", nargs="+", default=["econ_classify", "econ_signal"],
                    help="log-likelihood tasks to score on validation")
    ap.add_argument("--limit", type=int, help="first N validation documents per task (recorded in the output; the "
                    "validation splits are in seeded order, so this is a seeded subset)")
    ap.add_argument("--every", type=int, help="score every N-th checkpoint (and the last) only")
    ap.add_argument("--out", default=str(results_dir() / "benchmarks"))
    args = ap.parse_args()
    run = Path(args.run)
    record_path = run / TRAINING_RECORD
    if not record_path.is_file():
        raise DataError(f"{record_path}: not found; finish training the run first")
    record = json.loads(record_path.read_text())
    per_step = record["recipe"]["per_device_train_batch_size"] * record["recipe"]["gradient_accumulation_steps"]
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if args.every:
        checkpoints = checkpoints[args.every - 1::args.every] + ([checkpoints[-1]] if len(checkpoints) % args.every else [])
    if not checkpoints:
        raise DataError(f"{run}: no checkpoint-*/ folders (the recipe must keep them: save_total_limit: null)")
    out = Path(args.out)
    target = out / f"learning_curve_{run.name}.json"
    previous = json.loads(target.read_text()) if target.is_file() else {}
    done = {p["examples_seen"]: p for p in previous.get("points", [])}
    done_limit = previous.get("limit")
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        final_step = record["steps"]
        points_to_score = [None, *[c for c in checkpoints if int(c.name.split("-")[1]) < final_step], run]
        for ckpt in points_to_score:
            step = 0 if ckpt is None else final_step if ckpt == run else int(ckpt.name.split("-")[1])
            seen = min(step * per_step, record["examples"])
            if seen in done and done_limit == args.limit and set(done[seen]["scores"]) >= set(args.tasks):
                points.append(done[seen])  # resume: scored already
                continue
            print(f"scoring {'base model' if ckpt is None else ckpt} ({seen} examples seen) ...", flush=True)
            point = {"step": step, "examples_seen": seen,
                     "checkpoint": None if ckpt is None else "final adapter" if ckpt == run else ckpt.name,
                     **score_point(ckpt, args.tasks, args.limit, Path(tmp))}
            points.append(point)
            print("  " + ", ".join(f"{t} {s['metric']} {s['score']:.3f} ± {1.96 * (s['stderr'] or 0):.3f}"
                                   for t, s in point["scores"].items()) + f" ({point['seconds']} s)", flush=True)
            atomic_write_json(target, _document(run, args, per_step, record, points))  # an interrupted curve resumes
    doc = _document(run, args, per_step, record, points)
    atomic_write_json(target, doc)
    plot(doc, target.with_suffix(".png"))
    print(f"wrote {target} and {target.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
