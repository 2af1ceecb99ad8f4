"""econ_tatqa's scores against TAT-QA's own evaluator, sample by sample.

TAT-QA's official metric (``tatqa_metric.py`` + ``tatqa_utils.py`` of github.com/NExTplusplus/TAT-QA) is not a
package, so econ_eval/metrics.py re-implements it. This script runs the upstream code itself on the logged
samples of published ``econ_tatqa`` runs: for each sample it gives the upstream ``TaTQAEmAndF1`` the same
prediction (the generation's first line split into spans, as ``process_tatqa`` does; scale words stay in the
answer text, as the prompt asks, so ``pred_scale`` is empty) and the document's gold answer, and compares
exact match and F1 with what the run logged. Nothing of the upstream repository is copied here: point
``--evaluator`` at a folder holding those two files, e.g. exported from a clone or mirror::

    git --git-dir=PATH/TO/TAT-QA/.git archive HEAD tatqa_metric.py tatqa_utils.py | tar -x -C /tmp/tatqa-eval
    python benchmarks/tatqa_parity.py --evaluator /tmp/tatqa-eval            # every results/*/ with a run

It also scores hand-made predictions around every gold answer of the bundle's TAT-QA splits (:func:`variants`:
scales dropped or multiplied out, percentages as fractions, signs in parentheses, reordered or missing spans)
with both. Writes ``results/benchmarks/tatqa_parity.json`` (per system: samples, both means, disagreements
with examples; the hand-made cases); exits 1 when anything differs.
Needs pandas and scipy (upstream imports them; both come with the project's environment).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._report import publish  # noqa: E402
from econ_eval.config import results_dir  # noqa: E402
from econ_eval.metrics import tatqa_prediction_spans  # noqa: E402


def newest_samples(root: Path) -> dict[str, Path]:
    """{system folder: its newest samples_econ_tatqa_*.jsonl} under ``root`` (archive and runs left out)."""
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("archive", "runs", "tmp")):
        files = sorted(folder.rglob("samples_econ_tatqa_*.jsonl"))
        if files:
            out[folder.relative_to(root).as_posix()] = files[-1]
    return out


def raw_questions() -> dict[str, dict]:
    """{bundle document id: the question as TAT-QA's own files hold it} (dev and test_gold of the raw data):
    the evaluator gets the upstream gold annotation, not our copy of it."""
    from econ_eval.config import raw_dir

    out = {}
    for name in ("tatqa_dataset_dev.json", "tatqa_dataset_test_gold.json"):
        for ctx in json.loads((raw_dir() / "tatqa" / name).read_text(encoding="utf-8")):
            for q in ctx["questions"]:
                out[f"tatqa-{q['uid']}"] = q
    return out


def upstream_em_f1(upstream, gold: dict, prediction: str) -> tuple[float, float]:
    """TAT-QA's own EM and F1 of one generated answer (spans as process_tatqa splits them; no separate scale)."""
    metric = upstream.TaTQAEmAndF1()
    metric(ground_truth=gold, prediction=tatqa_prediction_spans(prediction), pred_scale="")
    return float(metric._details[-1]["em"]), float(metric._details[-1]["f1"])


def compare(samples_file: Path, upstream, gold_by_id: dict) -> dict:
    """Upstream EM/F1 of every logged sample beside the logged ones."""
    ours_em, ours_f1, up_em, up_f1, diffs = [], [], [], [], []
    for line in samples_file.open(encoding="utf-8"):
        s = json.loads(line)
        doc = s["doc"]
        first_line = (s["resps"][0][0] or "").strip().split("\n")[0].strip()
        em, f1 = upstream_em_f1(upstream, gold_by_id[doc["id"]], first_line)
        ours_em.append(float(s["em"]))
        ours_f1.append(float(s["num_f1"]))
        up_em.append(em)
        up_f1.append(f1)
        if abs(em - s["em"]) > 1e-9 or abs(f1 - s["num_f1"]) > 1e-9:
            diffs.append({"doc_id": s["doc_id"], "prediction": first_line, "gold": doc["answer"], "scale": doc["scale"],
                          "ours": [s["em"], s["num_f1"]], "upstream": [em, f1]})
    n = len(ours_em)
    return {"samples_file": samples_file.name, "samples": n,
            "em_ours": round(statistics.fmean(ours_em), 4), "em_upstream": round(statistics.fmean(up_em), 4),
            "f1_ours": round(statistics.fmean(ours_f1), 4), "f1_upstream": round(statistics.fmean(up_f1), 4),
            "samples_differing": len(diffs), "nonzero_predictions": sum(1 for x in up_f1 if x > 0),
            "differences": diffs[:20]}


def variants(doc: dict) -> list[str]:
    """Hand-made predictions around a document's gold answer: the answer as the prompt asks for it, and the
    ways a model gets it half right (scale dropped or multiplied out, percent as a fraction, sign in
    parentheses, rounding, spans reordered, one span missing, trailing punctuation, a wrong number)."""
    from econ_eval.prompts import TATQA_SCALE_SUFFIX, tatqa_target

    out = [tatqa_target(doc)]
    if doc["answer_type"] in ("span", "multi-span"):
        spans = [str(a) for a in doc["answer"]]
        out += ["; ".join(reversed(spans)), spans[0], spans[0].lower() + ".", f"{spans[0]} {doc['scale']}".strip()]
        return out
    raw = str(doc["answer"][0] if isinstance(doc["answer"], list) else doc["answer"])
    try:
        value = float(raw)
    except ValueError:
        return out + [raw]
    scale = doc["scale"]
    mult = {"": 1, "thousand": 1e3, "million": 1e6, "billion": 1e9, "percent": 0.01}[scale]
    out += [raw, f"{raw} {scale}".strip(), f"{value * mult:.6g}", f"{value * mult:,.2f}", f"{round(value, 1)}"
            f"{TATQA_SCALE_SUFFIX[scale]}", f"{value + 1}{TATQA_SCALE_SUFFIX[scale]}",
            f"${raw}{TATQA_SCALE_SUFFIX[scale]}"]
    if value < 0:
        out.append(f"({abs(value):g}){TATQA_SCALE_SUFFIX[scale]}")
    return out


def compare_variants(docs: list[dict], upstream, gold_by_id: dict) -> dict:
    """Ours vs upstream on :func:`variants` of every document."""
    from econ_eval.metrics import tatqa_em_f1

    n, diffs = 0, []
    for doc in docs:
        for pred in variants(doc):
            up = upstream_em_f1(upstream, gold_by_id[doc["id"]], pred)
            ours = tatqa_em_f1(doc, pred)
            n += 1
            if any(abs(a - b) > 1e-9 for a, b in zip(ours, up)):
                diffs.append({"id": doc.get("id"), "prediction": pred, "gold": doc["answer"], "scale": doc["scale"],
                              "ours": list(ours), "upstream": list(up)})
    return {"cases": n, "cases_differing": len(diffs), "differences": diffs[:20]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluator", required=True, type=Path,
                    help="folder with TAT-QA's tatqa_metric.py and tatqa_utils.py")
    ap.add_argument("samples", nargs="*", type=Path, help="samples_econ_tatqa_*.jsonl files (default: the newest "
                    "of every results/<system>/)")
    ap.add_argument("--output", type=Path, default=results_dir() / "benchmarks" / "tatqa_parity.json")
    args = ap.parse_args(argv)
    for name in ("tatqa_metric.py", "tatqa_utils.py"):
        if not (args.evaluator / name).is_file():
            ap.error(f"{args.evaluator / name} not found: --evaluator must hold TAT-QA's {name} (see --help)")
    sys.path.insert(0, str(args.evaluator.resolve()))
    import tatqa_metric as upstream

    files = {p.parent.name: p for p in args.samples} if args.samples else newest_samples(results_dir())
    gold_by_id = raw_questions()
    rows = []
    for system, path in files.items():
        rows.append({"system": system, **compare(path, upstream, gold_by_id)})
    from econ_eval.io import read_jsonl
    from econ_eval.lm_tasks import bundle_path

    docs = [d for split in ("test", "validation", "train")
            for d in read_jsonl(bundle_path() / "econ_tatqa" / f"{split}.jsonl")]
    report = {"evaluator": "NExTplusplus/TAT-QA tatqa_metric.TaTQAEmAndF1 (upstream code, run as is)",
              "rows": rows, "all_samples": sum(r["samples"] for r in rows),
              "all_samples_differing": sum(r["samples_differing"] for r in rows),
              "hand_made": {"documents": len(docs), **compare_variants(docs, upstream, gold_by_id)}}
    publish(report, args.output, [("system", "system", ""), ("samples", "samples", "d"),
                                  ("EM ours", "em_ours", ".4f"), ("EM upstream", "em_upstream", ".4f"),
                                  ("F1 ours", "f1_ours", ".4f"), ("F1 upstream", "f1_upstream", ".4f"),
                                  ("differing", "samples_differing", "d")])
    hand = report["hand_made"]
    print(f"\nlogged samples: {report['all_samples_differing']} of {report['all_samples']} score differently; "
          f"hand-made predictions: {hand['cases_differing']} of {hand['cases']} cases over {hand['documents']} "
          "documents (every split)")
    return 1 if report["all_samples_differing"] or hand["cases_differing"] else 0


if __name__ == "__main__":
    sys.exit(main())
