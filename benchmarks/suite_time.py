"""What each task of the full suite costs on this machine, and test sizes that would fit a time budget.

Times every task of ``--tasks 'econ_*'`` separately on its first ``--limit`` test documents with the econ-eval
defaults (one model load: econ-hf, the dtype fitted to the CPU, ``--batch-size``, chat template), scales each to
its full test split (seconds per document x test documents; each task runs once on one document first, so a
one-time cost such as building econ_qa_rag's retrieval index is not scaled up), and adds them up: the full suite's
predicted wall time without start-up. A ``_gen`` task runs with its multiple-choice twin, as in a full run (econ-hf
then answers it during the twin's log-likelihood pass); its cost is the pair's time less the twin's own. Then
proposes test sizes that fit ``--budget-min`` by shrinking the costliest tasks first (no task below ``--floor``
documents unless it already has fewer), each with the 95% interval half-width it would give — the published runs'
widest interval for the task (over the LLM systems of ``results/leaderboard.json``) scaled by sqrt(n / n').

    OMP_NUM_THREADS=2 python benchmarks/suite_time.py [--limit 32] [--budget-min 15]
    OMP_NUM_THREADS=2 econ-eval evaluate --tasks 'econ_*' --output /tmp/suite-run   # the suite end to end
    python benchmarks/suite_time.py --record-run /tmp/suite-run/system_<stamp>.json  # file its wall time

Writes ``results/benchmarks/suite_time.json`` and prints a table. A first-N sample is not the whole split
(document lengths vary, and a full run batches documents of similar length together), so compare the
prediction with a measured full run (its ``wall_time_s`` in ``system_*.json``) before trusting it:
``--record-run`` adds such a run's wall time, tasks and machine to the JSON (``measured_full_suite``)
without timing anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._report import publish, short_commit  # noqa: E402
from benchmarks.eval_throughput import peak_matmul_gflops  # noqa: E402
from econ_eval import tasks as registry  # noqa: E402
from econ_eval.calibrate import FALLBACK_BATCH_SIZE  # noqa: E402
from econ_eval.config import data_dir, fitted_dtype, machine, results_dir, tasks_dir  # noqa: E402
from econ_eval.evaluate import DEFAULT_BACKEND, DEFAULT_DTYPE, WILDCARD_TASKS  # noqa: E402

#: the default dtype on this machine (bfloat16 where it has native bf16 matmuls, else float32)
DTYPE = fitted_dtype(DEFAULT_DTYPE, "cpu")[0]


def test_size(task: str) -> int:
    """Documents in the task's test split of the built bundle."""
    spec = registry.TASKS[task]
    with open(data_dir() / spec.bundle_task / "test.jsonl", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def published_half_widths(path: Path) -> dict[str, float]:
    """Widest 95% interval half-width per task over the LLM systems of the leaderboard."""
    if not path.is_file():
        return {}
    out: dict[str, float] = {}
    for row in json.loads(path.read_text())["rows"]:
        if row.get("method") == "baseline":
            continue
        for task, (lo, hi) in (row.get("headline_ci95") or {}).items():
            out[task] = max(out.get(task, 0.0), (hi - lo) / 2)
    return out


def propose_sizes(cost_per_doc: dict[str, float], sizes: dict[str, int], budget_s: float,
                  floor: int) -> dict[str, int]:
    """Test sizes whose predicted total fits ``budget_s``: every task scaled by one factor, none below
    ``floor`` (or its current size when smaller); the current sizes when they already fit."""
    def total(f: float) -> float:
        return sum(cost_per_doc[t] * min(n, max(min(floor, n), math.ceil(f * n))) for t, n in sizes.items())

    if total(1.0) <= budget_s:
        return dict(sizes)
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) <= budget_s else (lo, mid)
    return {t: min(n, max(min(floor, n), math.ceil(lo * n))) for t, n in sizes.items()}


def record_run(system_file: Path, output: Path) -> dict:
    """Add a measured end-to-end run (an ``econ-eval evaluate`` run's ``system_*.json``) to the report."""
    from econ_eval.io import atomic_write_json, read_json

    run = read_json(system_file, what="run record (system_*.json)")
    missing = [k for k in ("wall_time_s", "tasks", "command") if k not in run]
    if missing:
        raise SystemExit(f"{system_file}: no {', '.join(missing)}; pass the system_*.json an econ-eval evaluate "
                         "run wrote")
    if run.get("limit") is not None:
        raise SystemExit(f"{system_file}: a --limit run ({run['limit']} documents a task) is not the full suite")
    report = read_json(output, what="suite-time report (run this script without --record-run first)")
    report["measured_full_suite"] = {
        "wall_min": round(run["wall_time_s"] / 60, 1), "tasks": run["tasks"], "backend": run.get("backend"),
        "dtype": run.get("dtype"), "batch_size": run.get("batch_size"), "machine": run.get("machine"),
        "run_record": system_file.name, "note": "lm_eval's whole run: model load, every request, metrics"}
    atomic_write_json(output, report)
    return report["measured_full_suite"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=32, help="documents timed per task (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=FALLBACK_BATCH_SIZE, help="default: %(default)s")
    ap.add_argument("--tasks", default=",".join(WILDCARD_TASKS), help="comma-separated (default: every econ_* task)")
    ap.add_argument("--budget-min", type=float, default=15.0, help="time budget for the proposal (default: %(default)s)")
    ap.add_argument("--floor", type=int, default=200, help="smallest proposed test size (default: %(default)s)")
    ap.add_argument("--output", default=str(results_dir() / "benchmarks" / "suite_time.json"))
    ap.add_argument("--record-run", metavar="SYSTEM_JSON",
                    help="only add this measured full run (an econ-eval evaluate run's system_*.json) to --output")
    args = ap.parse_args(argv)
    if args.record_run:
        measured = record_run(Path(args.record_run), Path(args.output))
        print(f"measured full suite: {measured['wall_min']} min ({measured['tasks']}) -> {args.output}")
        return 0

    import torch
    from lm_eval.tasks import TaskManager

    from econ_eval.hf_prefix_shared import PrefixSharedHFLM, preview_run_tasks
    from econ_eval.models import fetch_model

    preview_run_tasks()  # as econ-eval evaluate runs: _gen twins answered during the log-likelihood pass
    from lm_eval.evaluator import evaluate

    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    path = str(fetch_model("smollm2-135m", log=lambda m: None))
    lm = PrefixSharedHFLM(pretrained=path, device="cpu", batch_size=args.batch_size, dtype=DTYPE)
    tm = TaskManager(include_path=str(tasks_dir()), verbosity="ERROR")

    def run(tasks: list[str], limit: int) -> float:
        t = time.perf_counter()
        evaluate(lm=lm, task_dict=tm.load(tasks), limit=limit, apply_chat_template=True, bootstrap_iters=0,
                 verbosity="ERROR")
        return time.perf_counter() - t

    run(["econ_signal"], 2)  # warm-up
    # the CPU's matmul peak in the run's dtype just before and after: the same 2-core VM has measured 88 and
    # 180 GFLOP/s (float32) on different days, so per-document costs are comparable across runs only with it
    peaks = [round(peak_matmul_gflops(getattr(torch, DTYPE)), 1)]
    widths = published_half_widths(results_dir() / "leaderboard.json")
    rows, per_doc, sizes, walls = [], {}, {}, {}
    twins = {t: registry.multiple_choice_twin(t) for t in names}
    # a generation task whose multiple-choice twin is in the suite runs with it (econ-hf answers it during the
    # twin's log-likelihood pass): its cost is the pair's time less the twin's own, so twins are timed first
    for task in sorted(names, key=lambda t: twins[t] in names):
        n = test_size(task)
        limit = min(args.limit, n)
        with_twin = [twins[task]] if twins[task] in names else []
        print(f"{task}: {limit} of {n} documents{' (with ' + with_twin[0] + ')' if with_twin else ''} ...", flush=True)
        run(with_twin + [task], 1)  # one-time costs out of the per-document rate (econ_qa_rag's retrieval index)
        wall = run(with_twin + [task], limit)
        row = {"task": task, "output_type": registry.TASKS[task].output_type, "timed_docs": limit}
        if with_twin:
            row.update(timed_with=with_twin[0], pair_wall_s=round(wall, 2))
            wall = max(wall - walls[with_twin[0]], 0.0)
        walls[task], per_doc[task], sizes[task] = wall, wall / limit, n
        rows.append({**row, "wall_s": round(wall, 2), "s_per_doc": round(wall / limit, 3), "test_docs": n,
                     "predicted_full_s": round(wall / limit * n, 1)})
    peaks.append(round(peak_matmul_gflops(getattr(torch, DTYPE)), 1))
    total_s = sum(r["predicted_full_s"] for r in rows)
    proposal = propose_sizes(per_doc, sizes, args.budget_min * 60, args.floor)
    for r in rows:
        t, n_new = r["task"], proposal[r["task"]]
        hw = widths.get(t)
        r.update(share=round(r["predicted_full_s"] / total_s, 3), proposed_test_docs=n_new,
                 proposed_s=round(per_doc[t] * n_new, 1), ci95_half_width_now=round(hw, 3) if hw else None,
                 ci95_half_width_proposed=round(hw * math.sqrt(sizes[t] / n_new), 3) if hw else None)
    previous = Path(args.output)
    report = {"backend": DEFAULT_BACKEND, "dtype": DTYPE, "batch_size": args.batch_size,
              "torch_threads": torch.get_num_threads(), "limit": args.limit, "rows": rows,
              "machine": {k: v for k, v in machine().items() if k in ("cpu", "avx512", "amx", "cores")},
              "commit": short_commit(REPO), "peak_matmul_gflops": peaks,
              "predicted_full_suite_min": round(total_s / 60, 1), "budget_min": args.budget_min, "floor": args.floor,
              "proposed_suite_min": round(sum(r["proposed_s"] for r in rows) / 60, 1),
              "note": "seconds per document measured on the first --limit test documents of each task, one task at "
                      "a time (a _gen task with its multiple-choice twin, less the twin's own time: econ-hf answers "
                      "it during the twin's log-likelihood pass), one model load (no start-up counted); "
                      "half-widths: widest published 95% interval of an LLM system, scaled by sqrt(n/n')"}
    if previous.is_file() and "measured_full_suite" in json.loads(previous.read_text()):
        report["measured_full_suite"] = json.loads(previous.read_text())["measured_full_suite"]  # kept: a run
    publish(report, args.output, [("task", "task", ""), ("s/doc", "s_per_doc", ".3f"), ("test docs", "test_docs", "d"),
                                  ("full s", "predicted_full_s", ".0f"), ("share", "share", ".2f"),
                                  ("proposed docs", "proposed_test_docs", "d"), ("proposed s", "proposed_s", ".0f"),
                                  ("±95 now", "ci95_half_width_now", ".3f"),
                                  ("±95 proposed", "ci95_half_width_proposed", ".3f")])
    print(f"\nfull suite predicted {report['predicted_full_suite_min']} min (without start-up); "
          f"proposed sizes: {report['proposed_suite_min']} min for a {args.budget_min:g}-min budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
