"""Does the quick suite agree with the full one? Lite scores of every published system vs the full 95% intervals.

For each system on the leaderboard (base model, adapters, classic baselines), the lite score of every suite
task is computed from the system's FULL run's logged samples (the lite documents are a subset of the test
split, and lm-eval's ``doc_id`` is the test index), so no model is run. Writes
``results/benchmarks/lite_agreement.json`` and prints a table; a lite score outside the full interval is
listed as a disagreement.

    python benchmarks/lite_agreement.py            # check the committed subsets
    python benchmarks/lite_agreement.py --select   # search seeds 0-199 per task on the systems published now
    python benchmarks/lite_agreement.py --random 10   # the same check for 10 random seeds (1000-1009), printed only

``--select`` prints, per task, the seed whose subset reproduces the published systems' full scores best
(smallest worst-case |lite - full| in standard errors, with a floor of 0.01 on the standard error) and
the agreement it reaches; paste the seeds into ``econ_eval/lite.py`` (``LITE_SEEDS``) and record which
runs they were selected on (``SELECTED_ON`` below, per task), so later runs check them out of sample
(``--select --tasks econ_fomc,econ_fomc_gen`` searches only the named tasks, e.g. ones just added;
``--select --same-runs`` searches on the runs SELECTED_ON already names, e.g. after a size in LITE_SIZES changed,
so the systems published since stay out-of-sample checks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from econ_eval import tasks  # noqa: E402
from econ_eval.config import data_dir, results_dir  # noqa: E402
from econ_eval.drift import aggregate  # noqa: E402
from econ_eval.io import atomic_write_json, read_json, read_jsonl  # noqa: E402
from econ_eval.leaderboard import task_file  # noqa: E402
from econ_eval.lite import LITE_SEEDS, LITE_SIZES, full_headline, lite_indices, lite_items, row_agreement  # noqa: E402
from econ_eval.run_folder import samples_file  # noqa: E402

#: the runs each task's committed LITE_SEED was selected on (results files, relative to results/); every other
#: run is an out-of-sample check. The arXiv/MMLU seeds were chosen on the 8 baselines' and the base model's runs
#: and on the LoRA adapter trained on bundle 1.0 (its run is now in results/archive/); the FOMC seeds on the runs
#: that first had FOMC scores. econ_classify and econ_signal were re-selected when their subsets shrank from 200
#: to 150 documents (`--select --same-runs`: on the same runs minus the archived one, no longer on the board).
_BASELINE_RUNS = [f"baselines/{b}/results_2026-11-29T08-11-14.810530.json" for b in (
    "decision_tree", "knn", "logistic_regression", "lstm", "random_forest", "rnn", "svc", "xgboost")]
_FIRST_LLM_RUNS = ["smollm2-135m/results_2026-11-29T09-21-30.428574.json",
                   "archive/smollm2-135m-lora-trained-on-1.0/results_2026-11-29T10-20-37.404942.json"]
SELECTED_ON: dict[str, list[str]] = {
    **{t: _FIRST_LLM_RUNS + (_BASELINE_RUNS if tasks.task(t).baselines else [])
       for t in ("econ_titles", "econ_classify", "econ_classify_gen", "econ_qa", "econ_signal", "econ_signal_gen",
                 "econ_mmlu")},
    "econ_fomc": [f"baselines/{b}/results_2026-11-29T15-00-02.405796.json" for b in (
        "svc", "logistic_regression", "random_forest", "xgboost", "lstm", "rnn", "knn", "decision_tree")] + [
        "smollm2-135m/results_2026-11-29T16-52-17.264150.json",
        "smollm2-135m-lora/results_2026-11-29T16-02-54.624288.json",
        "smollm2-135m-loraplus/results_2026-11-29T16-01-41.778047.json",
        "smollm2-135m-lora-classify-signal/results_2026-11-29T16-53-23.883023.json"],
}
SELECTED_ON["econ_fomc_gen"] = SELECTED_ON["econ_fomc"][-4:]  # the LLM runs (baselines have no _gen variant)
SELECTED_ON["econ_classify"] = SELECTED_ON["econ_signal"] = _FIRST_LLM_RUNS[:1] + _BASELINE_RUNS
# the _gen tasks were re-selected when their subsets became subsets of their twins' (`--select --same-runs
# --tasks econ_classify_gen,econ_signal_gen,econ_fomc_gen`): on the same runs minus the archived one
SELECTED_ON["econ_classify_gen"] = SELECTED_ON["econ_signal_gen"] = _FIRST_LLM_RUNS[:1]
SE_FLOOR = 0.01


def select_seeds(results: Path, bundle: Path, seeds: range = range(200), only: list[str] | None = None,
                 same_runs: bool = False) -> dict:
    """Per task (or per task of ``only``), the seed whose lite subset best reproduces every published system's
    full score (with ``same_runs``: only the runs the committed seed was selected on, :data:`SELECTED_ON`, so
    the systems published since stay out-of-sample checks), and the runs it was selected on."""
    board = read_json(results / "leaderboard.json", what="leaderboard")
    out = {}
    for task, size in LITE_SIZES.items():
        if only and task not in only:
            continue
        spec = tasks.task(task)
        docs = read_jsonl(bundle / spec.bundle_task / "test.jsonl")
        systems = []
        for row in board["rows"]:
            if same_runs and task_file(row, task) not in SELECTED_ON.get(task, []):
                continue
            res = read_json(results / task_file(row, task), what="results file")["results"].get(task)
            path = samples_file(results / task_file(row, task), task)
            if res is None or not path.is_file():
                continue
            full, se = full_headline(res, spec)
            systems.append((task_file(row, task), full, max(se, SE_FLOOR), lite_items(task, read_jsonl(path), len(docs))))
        best = None
        for seed in seeds:
            keep = lite_indices(task, docs, seed=seed)
            worst = max(abs(aggregate(spec.headline, [items[i] for i in keep]) - full) / se
                        for _, full, se, items in systems)
            if best is None or worst < best[1]:
                best = (seed, worst)
        out[task] = {"seed": best[0], "worst_z": round(best[1], 3), "runs": [s[0] for s in systems],
                     "size": size}
        print(f"{task:<20} seed {best[0]:>3}  worst |lite - full| = {best[1]:.2f} SE over {len(systems)} systems",
              flush=True)
    return out


def build(results: Path, bundle: Path, random_seeds: int = 10) -> dict:
    """The agreement document of every leaderboard system, with what ``random_seeds`` unselected seeds give."""
    board = read_json(results / "leaderboard.json", what="leaderboard")
    systems = {}
    for row in board["rows"]:
        systems[row["system"]] = row_agreement(results, row, bundle)
    checks = [c for rows in systems.values() for c in rows]
    files = {row["system"]: row for row in board["rows"]}
    for system, rows in systems.items():
        for c in rows:
            c["out_of_sample"] = task_file(files[system], c["task"]) not in SELECTED_ON.get(c["task"], [])
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "bundle_version": board["bundle_version"],
            "lite_sizes": LITE_SIZES, "lite_seeds": LITE_SEEDS, "seeds_selected_on": SELECTED_ON,
            "out_of_sample_checks": sum(c["out_of_sample"] for c in checks),
            "out_of_sample_inside": sum(c["inside"] for c in checks if c["out_of_sample"]),
            "interval": "full score ± 1.96 bootstrap standard errors (the leaderboard's)",
            "checks": len(checks), "inside": sum(c["inside"] for c in checks),
            "disagreements": [{"system": s, **c} for s, rows in systems.items() for c in rows if not c["inside"]],
            "random_seed_baseline": {"seeds": f"1000-{999 + random_seeds}", "checks": len(checks),
                                     "inside": [c for c, _ in random_seed_agreement(results, bundle, random_seeds)]},
            "systems": systems}


def random_seed_agreement(results: Path, bundle: Path, n: int) -> list[tuple[int, int]]:
    """(lite scores inside the full intervals, checks) with every task sampled by seed 1000+i, i < n: what
    subsets of the same sizes give without the seed selection."""
    import econ_eval.lite as lite

    chosen = dict(lite.LITE_SEEDS)
    board = read_json(results / "leaderboard.json", what="leaderboard")
    out = []
    try:
        for i in range(n):
            lite.LITE_SEEDS.update({t: 1000 + i for t in chosen})
            checks = [c for row in board["rows"] for c in row_agreement(results, row, bundle)]
            out.append((sum(c["inside"] for c in checks), len(checks)))
    finally:
        lite.LITE_SEEDS.update(chosen)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(results_dir()))
    ap.add_argument("--bundle", default=str(data_dir()))
    ap.add_argument("--select", action="store_true", help="search the per-task seeds (see above)")
    ap.add_argument("--tasks", help="with --select: only these tasks (comma-separated), e.g. a task just added")
    ap.add_argument("--same-runs", action="store_true",
                    help="with --select: select on the runs SELECTED_ON names for each task (e.g. after a size "
                         "changes), not on every system published now")
    ap.add_argument("--random", type=int, metavar="N", help="agreement of N random seeds instead (printed only)")
    args = ap.parse_args()
    if args.random:
        counts = random_seed_agreement(Path(args.results), Path(args.bundle), args.random)
        inside = sorted(c for c, _ in counts)
        print(f"random seeds: {', '.join(f'{c}/{t}' for c, t in counts)}; min {inside[0]}, median "
              f"{inside[len(inside) // 2]}, max {inside[-1]} inside the full 95% intervals")
        return 0
    if args.select:
        chosen = select_seeds(Path(args.results), Path(args.bundle), only=args.tasks.split(",") if args.tasks else None,
                              same_runs=args.same_runs)
        print("LITE_SEEDS: " + repr({t: c["seed"] for t, c in chosen.items()}))
        print("SELECTED_ON: " + repr({t: c["runs"] for t, c in chosen.items()}))
        return 0
    doc = build(Path(args.results), Path(args.bundle))
    out = Path(args.results) / "benchmarks" / "lite_agreement.json"
    atomic_write_json(out, doc)
    for system, rows in doc["systems"].items():
        for c in rows:
            print(f"{system:<32}{c['task']:<20}full {c['full']:.3f} [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]  "
                  f"lite {c['lite']:.3f} ({c['lite_docs']} docs) {'ok' if c['inside'] else 'OUTSIDE'}")
    print(f"{doc['inside']}/{doc['checks']} lite scores inside the full 95% interval -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
