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
systems they were selected on (``SELECTED_ON`` below), so later systems check them out of sample.
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
from econ_eval.lite import LITE_SEEDS, LITE_SIZES, agreement, full_headline, lite_indices, lite_items  # noqa: E402
from econ_eval.run_folder import samples_file  # noqa: E402

#: the systems the committed LITE_SEEDS were selected on (every other system is an out-of-sample check)
SELECTED_ON = ["baseline:decision_tree", "baseline:knn", "baseline:logistic_regression", "baseline:lstm",
               "baseline:random_forest", "baseline:rnn", "baseline:svc", "baseline:xgboost", "smollm2-135m",
               "smollm2-135m-lora"]
SE_FLOOR = 0.01


def select_seeds(results: Path, bundle: Path, seeds: range = range(200)) -> dict:
    """Per task, the seed whose lite subset best reproduces every published system's full score."""
    board = read_json(results / "leaderboard.json", what="leaderboard")
    out = {}
    for task, size in LITE_SIZES.items():
        spec = tasks.task(task)
        docs = read_jsonl(bundle / spec.bundle_task / "test.jsonl")
        systems = []
        for row in board["rows"]:
            res = read_json(results / row["results_file"], what="results file")["results"].get(task)
            path = samples_file(results / row["results_file"], task)
            if res is None or not path.is_file():
                continue
            full, se = full_headline(res, spec)
            systems.append((row["system"], full, max(se, SE_FLOOR), lite_items(task, read_jsonl(path), len(docs))))
        best = None
        for seed in seeds:
            keep = lite_indices(task, docs, seed=seed)
            worst = max(abs(aggregate(spec.headline, [items[i] for i in keep]) - full) / se
                        for _, full, se, items in systems)
            if best is None or worst < best[1]:
                best = (seed, worst)
        out[task] = {"seed": best[0], "worst_z": round(best[1], 3), "systems": [s[0] for s in systems],
                     "size": size}
        print(f"{task:<20} seed {best[0]:>3}  worst |lite - full| = {best[1]:.2f} SE over {len(systems)} systems",
              flush=True)
    return out


def build(results: Path, bundle: Path) -> dict:
    """The agreement document of every leaderboard system."""
    board = read_json(results / "leaderboard.json", what="leaderboard")
    systems = {}
    for row in board["rows"]:
        systems[row["system"]] = agreement(results / row["results_file"], bundle)
    checks = [c for rows in systems.values() for c in rows]
    for system, rows in systems.items():
        for c in rows:
            c["out_of_sample"] = system not in SELECTED_ON
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "bundle_version": board["bundle_version"],
            "lite_sizes": LITE_SIZES, "lite_seeds": LITE_SEEDS, "seeds_selected_on": SELECTED_ON,
            "out_of_sample_checks": sum(c["out_of_sample"] for c in checks),
            "out_of_sample_inside": sum(c["inside"] for c in checks if c["out_of_sample"]),
            "interval": "full score ± 1.96 bootstrap standard errors (the leaderboard's)",
            "checks": len(checks), "inside": sum(c["inside"] for c in checks),
            "disagreements": [{"system": s, **c} for s, rows in systems.items() for c in rows if not c["inside"]],
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
            checks = [c for row in board["rows"] for c in agreement(results / row["results_file"], bundle)]
            out.append((sum(c["inside"] for c in checks), len(checks)))
    finally:
        lite.LITE_SEEDS.update(chosen)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(results_dir()))
    ap.add_argument("--bundle", default=str(data_dir()))
    ap.add_argument("--select", action="store_true", help="search the per-task seeds (see above)")
    ap.add_argument("--random", type=int, metavar="N", help="agreement of N random seeds instead (printed only)")
    args = ap.parse_args()
    if args.random:
        counts = random_seed_agreement(Path(args.results), Path(args.bundle), args.random)
        inside = sorted(c for c, _ in counts)
        print(f"random seeds: {', '.join(f'{c}/{t}' for c, t in counts)}; min {inside[0]}, median "
              f"{inside[len(inside) // 2]}, max {inside[-1]} inside the full 95% intervals")
        return 0
    if args.select:
        chosen = select_seeds(Path(args.results), Path(args.bundle))
        print("LITE_SEEDS = " + repr({t: c["seed"] for t, c in chosen.items()}))
        print("SELECTED_ON = " + repr(sorted({s for c in chosen.values() for s in c["systems"]})))
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
