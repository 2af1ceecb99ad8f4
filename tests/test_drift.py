"""The drift and contamination report on hand-made runs whose answers are known."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from econ_eval import drift
from econ_eval.io import DataError

STAMP = "2026-01-01T00-00-00.000001"


def _run(folder: Path, samples: dict[str, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    configs = {t: {"metadata": {"version": 1.0, "bundle_version": "2.0"}} for t in samples}
    (folder / f"results_{STAMP}.json").write_text(json.dumps({"results": {}, "configs": configs}))
    for task, rows in samples.items():
        (folder / f"samples_{task}_{STAMP}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _classify(pid: str, created: str, gold: str, pred: str, *, logged_doc: bool = True) -> dict:
    """One econ_classify sample as lm-eval logs it (or, with logged_doc=False, as a baseline does)."""
    if not logged_doc:
        return {"doc": {"id": pid}, "doc_id": 0, "filtered_resps": [pred], "target": gold}
    pair = [gold, pred]
    return {"doc": {"paper_id": pid, "created": created}, "target": gold, "filtered_resps": [pred],
            "acc": float(gold == pred), "macro_f1": pair, "weighted_f1": pair, "mcc": pair}


LABELS = ["econ.EM", "econ.GN", "econ.TH"]


def _known_drift_rows(logged_doc=True):
    """30 papers before 2020 all answered right, 30 from 2020 on all answered wrong."""
    rows = []
    for i in range(60):
        created = f"{2017 + i // 15}-0{1 + i % 9}-10"  # 2017, 2018 | 2019, 2020 ... (15 a year)
        gold = LABELS[i % 3]
        pred = gold if created < "2020" else LABELS[(i + 1) % 3]
        rows.append(_classify(f"p{i}", created, gold, pred, logged_doc=logged_doc))
    return rows


def test_known_drift_is_found_with_a_small_p_value(tmp_path):
    run = _run(tmp_path / "run", {"econ_classify": _known_drift_rows()})
    report = drift.drift_report(run, resamples=200, log=lambda m: None)
    t = report["tasks"]["econ_classify"]
    assert t["documents"] == 60 and t["periods"] == ["2017", "2018", "2019", "2020"]
    acc = t["metrics"]["acc"]
    assert acc["before"]["value"] == 1.0 and acc["after"]["value"] == 0.0
    assert acc["before"]["n"] == 45 and acc["after"]["n"] == 15
    assert acc["difference"]["after_minus_before"] == -1.0
    assert acc["difference"]["p_value"] == pytest.approx(1 / 201)  # no permutation is as extreme
    assert acc["by_period"]["2019"]["value"] == 1.0 and acc["by_period"]["2020"]["value"] == 0.0
    f1 = t["metrics"]["macro_f1"]
    assert f1["before"]["value"] == 1.0 and f1["after"]["value"] == 0.0
    lo, hi = f1["before"]["ci95"]
    assert lo == hi == 1.0  # every resample of perfect answers is perfect
    # the cut-off moves the comparison: at 2019-01 the 15 right answers of 2019 join the "after" side
    later = drift.drift_report(run, cutoff="2019-01", by="cutoff", resamples=50, log=lambda m: None)
    acc = later["tasks"]["econ_classify"]["metrics"]["acc"]
    assert later["tasks"]["econ_classify"]["periods"] == ["after", "before"]
    assert acc["before"]["value"] == 1.0 and acc["after"]["value"] == pytest.approx(0.5)


def test_no_drift_gives_a_large_p_value(tmp_path):
    rows = []
    for i in range(80):
        created = "2018-05-01" if i % 2 else "2022-05-01"
        gold = LABELS[i % 3]
        rows.append(_classify(f"p{i}", created, gold, gold if (i // 2) % 2 else LABELS[(i + 1) % 3]))
    report = drift.drift_report(_run(tmp_path / "run", {"econ_classify": rows}), resamples=200, log=lambda m: None)
    acc = report["tasks"]["econ_classify"]["metrics"]["acc"]
    assert acc["before"]["value"] == acc["after"]["value"] == 0.5
    assert acc["difference"]["p_value"] > 0.5
    lo, hi = acc["difference"]["ci95"]
    assert lo < 0 < hi


def test_baseline_runs_get_dates_from_the_bundle(tmp_path):
    """Classic baselines log document ids only: the dates come from the bundle's test split."""
    bundle = tmp_path / "bundle"
    (bundle / "econ_classify").mkdir(parents=True)
    docs = [{"paper_id": r["doc"]["paper_id"], "created": r["doc"]["created"]} for r in _known_drift_rows()]
    (bundle / "econ_classify" / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    run = _run(tmp_path / "baseline", {"econ_classify": _known_drift_rows(logged_doc=False)})
    report = drift.drift_report(run, bundle=bundle, resamples=50, log=lambda m: None)
    m = report["tasks"]["econ_classify"]["metrics"]
    assert m["macro_f1"]["before"]["value"] == 1.0 and m["macro_f1"]["after"]["value"] == 0.0
    assert m["acc"]["difference"]["after_minus_before"] == -1.0
    # a paper the bundle does not have: the error names the samples file, the line and the fix
    (bundle / "econ_classify" / "test.jsonl").write_text(json.dumps(docs[0]) + "\n")
    with pytest.raises(DataError, match=r"samples_econ_classify_.*\.jsonl:2: paper 'p1' is not in .*--bundle"):
        drift.drift_report(run, bundle=bundle, resamples=5, log=lambda m: None)


def test_title_reproduction_rates(tmp_path):
    assert drift.title_reproduction("Optimal Taxation of $x$ Capital", "optimal taxation of capital.")[
        "exact_title_rate"] == 1.0
    near = drift.title_reproduction("Optimal Taxation of Capital Income", "Optimal Taxation of Capital Incomes")
    assert near == {"exact_title_rate": 0.0, "near_exact_title_rate": 1.0}
    assert drift.title_reproduction("Optimal Taxation", "A survey of auctions")["near_exact_title_rate"] == 0.0
    rows = []
    for i in range(10):
        title = f"Paper number {i} on markets and prices"
        gen = title if i < 2 else (title + "s" if i == 2 else "Something else entirely")
        rows.append({"doc": {"paper_id": f"t{i}", "created": "2021-01-01" if i % 2 else "2018-01-01"},
                     "target": title, "filtered_resps": [gen], "rougeL": 0.5, "score": ["mean", 0.5]})
    report = drift.drift_report(_run(tmp_path / "titles", {"econ_titles": rows}), resamples=20, log=lambda m: None)
    m = report["tasks"]["econ_titles"]["metrics"]
    exact = m["exact_title_rate"]
    assert exact["before"]["value"] + exact["after"]["value"] == pytest.approx(0.2 + 0.2)  # 1 of 5 on each side
    assert m["near_exact_title_rate"]["before"]["value"] == pytest.approx(0.4)  # t0 exact, t2 near: both before


def test_cli_writes_json_and_png_beside_the_run_and_errors_are_clear(tmp_path):
    run = _run(tmp_path / "run", {"econ_classify": _known_drift_rows()})
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "drift", str(run), "--resamples", "20"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "econ_classify" in proc.stdout and "-1.000" in proc.stdout
    written = sorted(p.suffix for p in run.glob("drift_*"))
    assert written == [".json", ".png"]
    report = json.loads(next(run.glob("drift_*.json")).read_text())
    assert report["cutoff"] == "2020-01" and report["results_file"] == f"results_{STAMP}.json"
    bad = subprocess.run([sys.executable, "-m", "econ_eval.cli", "drift", str(run), "--cutoff", "2020"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "give a month as YYYY-MM" in bad.stderr
    empty = subprocess.run([sys.executable, "-m", "econ_eval.cli", "drift", str(tmp_path)],
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "no results_*.json here" in empty.stderr


def test_drift_passes_over_a_later_run_without_arxiv_tasks(tmp_path):
    """Regression: a finance-group run filed beside a system's suite run made `drift` read the newer run and
    fail ("no samples of an arXiv task"); it reads the newest run that has arXiv samples."""
    run = _run(tmp_path / "sys", {"econ_classify": _known_drift_rows()})
    later = "2026-02-01T00-00-00.000001"
    (run / f"results_{later}.json").write_text(json.dumps({"results": {}, "configs": {}}))
    (run / f"samples_econ_fpb_{later}.jsonl").write_text(json.dumps({"doc": {"text": "x"}, "target": 0}) + "\n")
    report = drift.drift_report(run, resamples=20, log=lambda m: None)
    assert report["results_file"] == f"results_{STAMP}.json" and "econ_classify" in report["tasks"]
