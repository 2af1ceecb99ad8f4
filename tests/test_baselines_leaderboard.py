"""Baselines on a tiny bundle, metric parity with the tasks, and the leaderboard's build/check/add."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from econ_eval import leaderboard, lm_tasks, metrics
from econ_eval.baselines import BASELINES, run_baselines
from econ_eval.evaluate import SUITE_TASKS
from econ_eval.prompts import CLASS_LABELS


REPO = Path(__file__).resolve().parent.parent


def test_all_baselines_on_tiny_bundle(tiny_bundle, tmp_path):
    written = run_baselines(BASELINES, ["econ_classify", "econ_signal"], tiny_bundle, tmp_path / "bl", log=lambda s: None)
    assert sorted(written) == sorted(BASELINES)
    for name, path in written.items():
        doc = json.loads(path.read_text())
        assert doc["config"]["model"] == "econ-eval-baseline" and doc["config"]["limit"] is None
        assert doc["n-samples"]["econ_classify"]["effective"] == 14
        assert doc["n-samples"]["econ_signal"]["effective"] == 22
        for task in ("econ_classify", "econ_signal"):
            assert 0.0 <= doc["results"][task]["score,none"] <= 1.0
            meta = doc["configs"][task]["metadata"]
            assert meta["bundle_version"] == "2.0-sizes"  # the tiny bundle's sizes are not the published ones
            assert len(meta["test_sha256"]) == 64  # which test documents were scored
        samples = list(path.parent.glob("samples_econ_classify_*.jsonl"))
        assert len(samples) == 1
    # reproducible: the same seed gives the same predictions
    again = run_baselines(["logistic_regression", "lstm"], ["econ_classify"], tiny_bundle, tmp_path / "bl2",
                          log=lambda s: None)
    for name in ("logistic_regression", "lstm"):
        a = json.loads(written[name].read_text())["results"]["econ_classify"]["macro_f1,none"]
        b = json.loads(again[name].read_text())["results"]["econ_classify"]["macro_f1,none"]
        assert a == b


def test_headlines_baseline_scores_finben_avg_f1_over_question_types(tiny_bundle, tmp_path):
    """Headlines baselines: the headline metric is FinBen's avg F1 over question types, as in the lm-eval task
    (before, the baseline path knew only plain F1 and macro F1, so Headlines had no baseline)."""
    path = run_baselines(["logistic_regression"], ["econ_headlines"], tiny_bundle, tmp_path / "bl",
                         log=lambda s: None)["logistic_regression"]
    doc = json.loads(path.read_text())
    row = doc["results"]["econ_headlines"]
    assert doc["configs"]["econ_headlines"]["metadata"]["headline_metric"] == "avg_f1"
    assert row["score,none"] == row["avg_f1,none"] and row["avg_f1_stderr,none"] >= 0.0
    test = [json.loads(line) for line in (tiny_bundle / "econ_headlines" / "test.jsonl").open()]
    samples = [json.loads(line) for line in next(path.parent.glob("samples_econ_headlines_*.jsonl")).open()]
    assert len(samples) == len(test) and len({d["label_type"] for d in test}) > 1
    typed = [(d["label_type"], d["label"], s["filtered_resps"][0]) for d, s in zip(test, samples)]
    assert row["avg_f1,none"] == pytest.approx(metrics.avg_f1(typed))


def test_baseline_metrics_equal_task_metrics():
    """The same predictions give the same numbers through the lm-eval path and the baseline path."""
    from econ_eval.baselines import results_document

    gold = ["econ.EM", "econ.GN", "econ.TH", "econ.GN", "econ.EM", "econ.GN"]
    pred = ["econ.EM", "econ.TH", "econ.TH", "econ.GN", "econ.GN", "econ.GN"]
    per_doc = [lm_tasks.process_classify({"label": g},
                                         [(0.0 if CLASS_LABELS[i] == p else -5.0, False) for i in range(3)])
               for g, p in zip(gold, pred)]
    doc = results_document("x", {"econ_classify": {"gold": gold, "pred": pred, "info": {}}}, {"bundle_version": "1.0"})
    for m in ("macro_f1", "weighted_f1", "macro_precision", "macro_recall", "mcc"):
        via_task = metrics.CORPUS_METRICS[m]([d[m] for d in per_doc])
        assert doc["results"]["econ_classify"][f"{m},none"] == pytest.approx(via_task)
    assert doc["results"]["econ_classify"]["acc,none"] == pytest.approx(sum(d["acc"] for d in per_doc) / len(per_doc))


def _bundle_dir(task):
    from econ_eval.tasks import TASKS

    return TASKS[task].bundle_task if task in TASKS else task


def _fake_llm_run(folder, *, limit=None, bundle="2.0", tasks=SUITE_TASKS, version=1.0, stamp="2026-01-01T00-00-00.000001",
                  value=0.5, fingerprints=None):
    """An lm-eval results file as `lm_eval` writes it for our tasks (fingerprints: the published bundle's)."""
    from econ_eval.data.build import published_fingerprints

    fingerprints = fingerprints if fingerprints is not None else published_fingerprints()
    folder.mkdir(parents=True, exist_ok=True)
    res = {t: {"alias": t} for t in tasks}
    for t in tasks:
        for m in ("rougeL", "macro_f1", "f1", "acc", "score"):
            res[t][f"{m},none"] = value
            res[t][f"{m}_stderr,none"] = 0.01
    configs = {t: {"task": t, "dataset_kwargs": {"bundle_task": _bundle_dir(t)},
                   "metadata": {"version": version, "bundle_version": bundle}} for t in tasks}
    for t in tasks:
        if _bundle_dir(t) in fingerprints:
            configs[t]["metadata"]["test_sha256"] = fingerprints[_bundle_dir(t)]["test_sha256"]
    doc = {"results": res, "versions": {t: version for t in tasks}, "configs": configs,
           "n-samples": {t: {"original": 10, "effective": 10} for t in tasks},
           "config": {"model": "hf", "limit": limit}, "model_name": "org/some-model"}
    (folder / f"results_{stamp}.json").write_text(json.dumps(doc))
    return folder


def test_check_refuses_bad_runs(tmp_path):
    ok = _fake_llm_run(tmp_path / "ok")
    leaderboard.check_run(ok)
    with pytest.raises(leaderboard.RunRejected, match=r"--limit 3"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "lim", limit=3))
    with pytest.raises(leaderboard.RunRejected, match=r"scored on bundle '0.9'"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "bundle", bundle="0.9"))
    with pytest.raises(leaderboard.RunRejected, match=r"version 2.0 differs"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "ver", version=2.0))
    with pytest.raises(leaderboard.RunRejected, match=rf"missing task\(s\) \['{SUITE_TASKS[-1]}'\]"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "miss", tasks=SUITE_TASKS[:-1]))
    # a quick-suite run is a first look, refused like --limit (here with the full tasks too: still refused)
    from econ_eval.tasks import LITE_TASKS

    with pytest.raises(leaderboard.RunRejected, match=r"quick-suite run \(econlite_.*only full test sets are ranked"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "lite", tasks=SUITE_TASKS + LITE_TASKS))
    (tmp_path / "empty").mkdir()
    with pytest.raises(leaderboard.RunRejected, match=r"no results_\*.json"):
        leaderboard.check_run(tmp_path / "empty")


def test_check_refuses_runs_on_other_test_documents(tmp_path, tiny_bundle):
    """Regression (#10): a bundle built with another seed used to pass as "1.0"; the test fingerprint tells."""
    other = {t: {"test_sha256": "0" * 64, "test_ids_sha256": "0" * 64} for t in
             ("econ_titles", "econ_classify", "econ_qa", "econ_signal", "econ_mmlu")}
    with pytest.raises(leaderboard.RunRejected, match=r"econ_classify was scored on other test documents"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "seed99", fingerprints=other))
    # no fingerprint and no logged samples: nothing to check against, refused
    with pytest.raises(leaderboard.RunRejected, match=r"no test fingerprint recorded and no logged samples"):
        leaderboard.check_run(_fake_llm_run(tmp_path / "bare", fingerprints={}))
    # older runs are checked through the ids of their logged docs
    legacy = _fake_llm_run(tmp_path / "legacy", fingerprints={})
    stamp = "2026-01-01T00-00-00.000001"
    for t in SUITE_TASKS:
        src = next((REPO / "results" / "smollm2-135m").glob(f"samples_{t}_*.jsonl"))
        (legacy / f"samples_{t}_{stamp}.jsonl").write_text(src.read_text())
    leaderboard.check_run(legacy)
    mmlu = legacy / f"samples_econ_mmlu_{stamp}.jsonl"
    mmlu.write_text("".join(mmlu.read_text().splitlines(keepends=True)[1:]))  # one test doc fewer
    with pytest.raises(leaderboard.RunRejected, match=r"econ_mmlu was scored on other test documents"):
        leaderboard.check_run(legacy)
    # against a bundle built here (--bundle): its own version and fingerprints
    from econ_eval.data.build import verify_bundle

    tiny = verify_bundle(tiny_bundle)
    leaderboard.check_run(_fake_llm_run(tmp_path / "tiny", bundle=tiny["bundle_version"],
                                        fingerprints=tiny["test_fingerprints"]), bundle=tiny_bundle)


def test_build_skips_and_lists_refused_runs(tmp_path):
    """Regression (#4): a --limit run filed into a system's folder replaced its full run on the leaderboard."""
    root = tmp_path / "results"
    _fake_llm_run(root / "model", value=0.7)
    _fake_llm_run(root / "model", value=0.1, limit=2, tasks=["econ_classify"], stamp="2026-03-01T00-00-00.000001")
    _fake_llm_run(root / "only-smoke", limit=2, tasks=["econ_classify"])
    doc = leaderboard.build(root, log=lambda m: None)
    rows = {r["system"]: r for r in doc["rows"]}
    assert set(rows) == {"model"} and rows["model"]["tasks_scored"] == len(
        [t for t in leaderboard.HEADLINE if t in SUITE_TASKS])
    assert rows["model"]["metrics"]["econ_classify"]["macro_f1"] == 0.7  # the full run, not the newer smoke run
    assert rows["model"]["results_file"].endswith("2026-01-01T00-00-00.000001.json")
    skipped = {(s["system"], s["results_file"]): s["problems"] for s in doc["skipped"]}
    assert len(skipped) == 2 and any("--limit 2" in p for p in skipped[("only-smoke",
                                                                        "results_2026-01-01T00-00-00.000001.json")])
    with pytest.raises(leaderboard.DataError, match="results folder not found"):
        leaderboard.build(tmp_path / "nope")
    bad = tmp_path / "bad"
    _fake_llm_run(bad / "m")
    next((bad / "m").glob("results_*.json")).write_text("{not json")
    with pytest.raises(leaderboard.DataError, match=r"results_2026-01-01T00-00-00.000001.json: lm-eval results "
                                                    r"file is not valid JSON"):
        leaderboard.build(bad)


def test_build_takes_each_task_from_the_newest_run_that_has_it(tmp_path):
    """A later run of extra tasks (the finance group) filed beside a system's suite run adds its columns
    without replacing the suite run; a task the newer run got wrong (other test documents) comes from the
    older run; a system whose runs together miss a suite task is refused, naming it."""
    from econ_eval.data.build import published_fingerprints

    root = tmp_path / "results"
    older, newer = "2026-01-01T00-00-00.000001", "2026-02-01T00-00-00.000001"
    _fake_llm_run(root / "model", value=0.6, stamp=older)
    wrong = dict(published_fingerprints(), econ_fomc={"test_sha256": "0" * 64, "test_ids_sha256": "0" * 64})
    _fake_llm_run(root / "model", value=0.8, stamp=newer, fingerprints=wrong,
                  tasks=["econ_fpb", "econ_fpb_gen", "econ_fiqasa", "econ_fomc"])
    # the suite split over two runs is fine; without econ_fomc anywhere it is not
    _fake_llm_run(root / "split", value=0.6, stamp=older, tasks=SUITE_TASKS[:-2])
    _fake_llm_run(root / "split", value=0.7, stamp=newer, tasks=SUITE_TASKS[-2:])
    _fake_llm_run(root / "partial", value=0.6, tasks=[t for t in SUITE_TASKS if t != "econ_fomc"])
    doc = leaderboard.build(root, log=lambda m: None)
    rows = {r["system"]: r for r in doc["rows"]}
    assert set(rows) == {"model", "split"}
    model = rows["model"]
    assert model["metrics"]["econ_fpb"]["macro_f1"] == 0.8 and model["metrics"]["econ_classify"]["macro_f1"] == 0.6
    assert model["metrics"]["econ_fomc"]["macro_f1"] == 0.6  # the newer run's FOMC was on other documents
    assert model["task_files"]["econ_fpb"] == f"model/results_{newer}.json"
    assert model["task_files"]["econ_fomc"] == model["results_file"] == f"model/results_{older}.json"
    assert rows["split"]["metrics"]["econ_fomc"]["macro_f1"] == 0.7 and rows["split"]["tasks_scored"] == len(
        [t for t in leaderboard.HEADLINE if t in SUITE_TASKS])
    skipped = {(s["system"], s["results_file"]): s["problems"] for s in doc["skipped"]}
    assert any("econ_fomc was scored on other test documents" in p for p in skipped[("model", f"results_{newer}.json")])
    assert skipped[("partial", f"results_{older}.json")] == ["missing task(s) ['econ_fomc']: run --tasks econ"]
    assert "FPB macro-F1" in (root / "leaderboard.md").read_text()


def test_add_never_overwrites(tmp_path):
    run = _fake_llm_run(tmp_path / "run")
    root = tmp_path / "results"
    dest = leaderboard.add_run(run, "mymodel", root)
    assert (dest / "results_2026-01-01T00-00-00.000001.json").is_file()
    with pytest.raises(FileExistsError):
        leaderboard.add_run(run, "mymodel", root)
    with pytest.raises(leaderboard.RunRejected):
        leaderboard.add_run(_fake_llm_run(tmp_path / "lim", limit=2), "other", root)
    assert not (root / "other").exists()


def test_build_is_deterministic_and_ranks(tiny_bundle, tmp_path):
    root = tmp_path / "results"
    from econ_eval.data.build import verify_bundle

    tiny = verify_bundle(tiny_bundle)
    fake = dict(bundle=tiny["bundle_version"], fingerprints=tiny["test_fingerprints"])
    _fake_llm_run(root / "good-model", value=0.8, **fake)
    _fake_llm_run(root / "weak-model", value=0.3, stamp="2026-02-01T00-00-00.000001", **fake)
    # a baseline must cover the suite's classification tasks (classify, signal, FOMC) to be ranked
    run_baselines(["logistic_regression"], ["econ_classify", "econ_signal", "econ_fomc"], tiny_bundle,
                  root / "baselines", log=lambda s: None)
    (root / "runs").mkdir()
    _fake_llm_run(root / "runs" / "smoke", limit=3)  # smoke runs are never listed
    doc = leaderboard.build(root, bundle=tiny_bundle, log=lambda m: None)
    first = {p: (root / p).read_bytes() for p in ("leaderboard.json", "leaderboard.md", "leaderboard.csv")}
    leaderboard.build(root, bundle=tiny_bundle, log=lambda m: None)
    assert first == {p: (root / p).read_bytes() for p in first}
    systems = [r["system"] for r in doc["rows"]]
    assert systems.index("good-model") < systems.index("weak-model")
    assert "smoke" not in systems and "baseline:logistic_regression" in systems
    row = next(r for r in doc["rows"] if r["system"] == "good-model")
    assert row["metrics"]["econ_classify"]["macro_f1"] == 0.8 and row["bundle_version"] == "2.0-sizes"
    assert set(row) >= {"system", "base_model", "adapter", "method", "params", "bundle_version", "metrics"}
    assert doc["updated"].startswith("2026")  # newest run, not the build time
    assert (root / "plots" / "leaderboard.png").stat().st_size > 1000
    assert (root / "plots" / "confusion_baseline-logistic_regression.png").is_file()
    md = (root / "leaderboard.md").read_text()
    assert "| 1 | good-model |" in md


def test_random_baseline_values():
    assert leaderboard.random_baseline("econ_mmlu") == 0.25
    assert leaderboard.random_baseline("econ_titles") == 0.0
    assert 0.25 < leaderboard.random_baseline("econ_classify") < 0.34
    assert leaderboard.random_baseline("econ_signal") == pytest.approx(2 * 0.108 * 0.5 / (0.108 + 0.5), abs=1e-3)


def test_confusion_from_lm_eval_samples(tmp_path):
    f = tmp_path / "s.jsonl"
    rows = [{"target": "1", "filtered_resps": [["-1.0", "False"], ["-0.5", "True"], ["-3", "False"]]},
            {"target": "2", "filtered_resps": [["-1.0", "False"], ["-0.5", "True"], ["-3", "False"]]}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    conf = leaderboard.confusion_from_samples(f, "econ_classify")
    assert conf["matrix"][1][1] == 1 and conf["matrix"][2][1] == 1



def test_cli_check_exit_codes(tmp_path):
    import subprocess
    import sys

    bad = _fake_llm_run(tmp_path / "lim", limit=5)
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "leaderboard", "check", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "made with --limit 5" in proc.stderr
    good = _fake_llm_run(tmp_path / "ok")
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "leaderboard", "check", str(good)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "accepted" in proc.stdout


def test_committed_leaderboard_rebuilds_identically(tmp_path):
    """`econ-eval leaderboard build` on the published results reproduces the committed tables byte for byte."""
    import shutil

    from econ_eval.config import results_dir

    published = results_dir()
    if not (published / "leaderboard.json").is_file():
        pytest.skip("no published leaderboard in this checkout")
    copy = tmp_path / "results"
    shutil.copytree(published, copy, ignore=shutil.ignore_patterns("runs", "tmp", "plots"))
    leaderboard.build(copy)
    for name in ("leaderboard.json", "leaderboard.md", "leaderboard.csv"):
        assert (copy / name).read_bytes() == (published / name).read_bytes(), name


def test_random_baseline_counts_match_the_bundle(real_bundle):
    _, manifest = real_bundle
    assert manifest["stats"]["econ_classify_labels"]["test"] == leaderboard.CLASSIFY_TEST_COUNTS
    assert manifest["stats"]["econ_signal_labels"]["test"] == leaderboard.SIGNAL_TEST_COUNTS
    assert manifest["stats"]["sentence_tasks"]["test_labels"] == leaderboard.SENTENCE_TEST_COUNTS


def test_quickstart_time_block_states_every_measurement_and_the_misses(tmp_path):
    """The README's quickstart times come from benchmarks/quickstart_time.py's JSON, over-time runs called so."""
    from econ_eval.readme_blocks import quickstart_time_block

    (tmp_path / "benchmarks").mkdir()
    run = {"wall_min": 8.1, "threads": 1}
    m = {"commit": "abc1234", "created": "2026-11-30T01:00:00", "cpu_count": 2, "peak_rss_gb": 2.3,
         "runs": {"smollm2-135m": {**run, "wall_min": 6.9}, "smollm2-135m-lora": run}}
    doc = {"target_min": 10.0, "command": "python benchmarks/quickstart_time.py", "measurements": [
        {**m, "wall_s": 587.3, "wall_min": 9.79, "other_min": 1.69, "met": True},
        {**m, "commit": "def5678", "wall_s": 623.0, "wall_min": 10.38, "other_min": 2.28, "met": False,
         "cpu": "AMD EPYC", "avx512": False, "amx": False, "peak_matmul_gflops_fp32": [87.6, 91.0],
         "runs": {s: {**r, "dtype": "float32"} for s, r in m["runs"].items()}}]}
    (tmp_path / "benchmarks" / "quickstart_time.json").write_text(json.dumps(doc))
    block = quickstart_time_block(tmp_path)
    assert "**9 min 47 s** on commit abc1234" in block and "**10 min 23 s** on commit def5678" in block
    assert "smollm2-135m 6.9 min and smollm2-135m-lora 8.1 min side by side on 1 thread(s) each" in block
    assert block.count("over the 10-minute aim") == 1 and "Within 10 minutes: 1 of 2 measurements" in block
    # which CPU and dtype, where recorded: an AVX2-only CPU runs float32 (dtype fitted to the machine)
    assert "(2026-11-30, 2 cores, AMD EPYC (no AVX-512/AMX), " in block and "1 thread(s) each in float32;" in block
    assert block.count("AMD EPYC") == 1
    # the compute peak the run had, where recorded (the same VM has measured 88 and 180 GFLOP/s)
    assert "(no AVX-512/AMX), fp32 matmul peak 87.6/91 GFLOP/s before/after): " in block
    assert block.count("GFLOP/s") == 1


def test_readme_tables_are_generated_from_results(tmp_path):
    """The README's leaderboard, results and drift tables are what `leaderboard build --readme` makes from
    results/ (docs cannot drift from the data: the LoRA+ row was missing once)."""
    from econ_eval import readme_blocks

    readme = (REPO / "README.md").read_text()
    blocks = readme_blocks.results_blocks(REPO / "results")
    assert set(blocks) == {"leaderboard", "results", "drift", "eval-throughput", "eval-throughput-avx2", "suite-time",
                           "suite-time-avx2", "lite-agreement", "quickstart-time"}
    for name, content in blocks.items():
        assert readme_blocks.read_block(readme, name).strip() == content.strip(), name
    assert "smollm2-135m" in blocks["results"] and "econ_titles" in blocks["drift"]
    # the performance numbers too: each benchmark row and ratio is in the README as the JSON has it
    speed = json.loads((REPO / "results" / "benchmarks" / "eval_throughput.json").read_text())
    assert f"generation **{speed['speedup_vs_hf_same_batch_and_dtype']['generation']}x**" in blocks["eval-throughput"]
    assert "AMD EPYC (AVX-512)" in blocks["eval-throughput"] and "Identical generated texts (bf16)" in blocks["eval-throughput"]
    avx2 = REPO / "results" / "benchmarks" / "eval_throughput_avx2.json"  # the same benchmark on an AVX2-only CPU
    if avx2.is_file():
        speed = json.loads(avx2.read_text())
        assert speed["dtype"] == "float32" and not speed["machine"]["avx512"]
        assert f"generation **{speed['speedup_vs_hf_same_batch_and_dtype']['generation']}x**" in \
            blocks["eval-throughput-avx2"] and "Identical generated texts (fp32)" in blocks["eval-throughput-avx2"]
        pairs = speed.get("generation_pairs")
        if pairs:  # the generation ratio is the median of back-to-back pairs, each shown
            ratios = [p["ratio"] for p in pairs["pairs"]]
            assert speed["speedup_vs_hf_same_batch_and_dtype"]["generation"] == pairs["median_ratio"] == \
                round(statistics.median(ratios), 2)
            assert f"the median of {len(ratios)} back-to-back runs" in blocks["eval-throughput-avx2"]
            assert all(f"{p['hf_s']:.1f} / {p['econ_hf_s']:.1f} s = {p['ratio']}x" in blocks["eval-throughput-avx2"]
                       for p in pairs["pairs"])
    suite = json.loads((REPO / "results" / "benchmarks" / "suite_time.json").read_text())
    assert f"{suite['predicted_full_suite_min']} min predicted" in blocks["suite-time"]
    assert blocks["suite-time"].count("\n| econ_") == len(suite["rows"])
    lite = json.loads((REPO / "results" / "benchmarks" / "lite_agreement.json").read_text())
    assert f"**{lite['inside']} of {lite['checks']}**" in blocks["lite-agreement"]
    from econ_eval.lite import LITE_SIZES  # the tasks table's econlite row lists the sizes the suite uses
    assert f"| {' / '.join(str(n) for n in LITE_SIZES.values())} |" in readme
    copy = tmp_path / "README.md"
    cmd = readme_blocks.LEADERBOARD_COMMAND
    copy.write_text("intro\n" + "".join(f"{readme_blocks.start_marker(n, cmd)}\nstale\n{readme_blocks.end_marker(n)}\n"
                                        for n in blocks) + "outro\n")
    assert readme_blocks.update_results_blocks(copy, REPO / "results") == list(blocks)
    assert readme_blocks.update_results_blocks(copy, REPO / "results") == []
    assert "stale" not in copy.read_text() and copy.read_text().endswith("outro\n")
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(leaderboard.DataError, match="no leaderboard markers"):
        readme_blocks.update_results_blocks(tmp_path / "plain.md", REPO / "results")


def test_ranking_is_on_the_tasks_every_system_has_and_shows_intervals(tmp_path):
    """Issue #14: a baseline scored on 2 tasks was ranked by its 2-task average against LLMs' 5-task averages;
    now every system is ranked on the common tasks, and each headline comes with its 95% interval."""
    root = tmp_path / "results"
    llm = _fake_llm_run(root / "llm", value=0.5)
    doc = json.loads(next(llm.glob("results_*.json")).read_text())
    for task in ("econ_titles", "econ_qa", "econ_mmlu"):  # excellent outside the common tasks ...
        for m in ("rougeL", "acc", "score"):
            doc["results"][task][f"{m},none"] = 0.99
    next(llm.glob("results_*.json")).write_text(json.dumps(doc))
    base = _fake_llm_run(root / "baselines" / "bl", value=0.7, tasks=["econ_classify", "econ_signal", "econ_fomc"])
    doc = json.loads(next(base.glob("results_*.json")).read_text())
    doc["config"]["model"] = "econ-eval-baseline"  # ... and a baseline better on the two it shares
    next(base.glob("results_*.json")).write_text(json.dumps(doc))
    rows = leaderboard.leaderboard_rows(root)
    by_name = {r["system"]: r for r in rows}
    assert by_name["llm"]["normalised_average"] > by_name["baseline:bl"]["normalised_average"]  # the old order
    assert [r["system"] for r in rows] == ["baseline:bl", "llm"] and [r["rank"] for r in rows] == [1, 2]
    assert leaderboard.common_tasks_of(rows) == ["econ_classify", "econ_signal", "econ_fomc"]
    assert by_name["llm"]["common_average"] < by_name["baseline:bl"]["common_average"]
    lo, hi = by_name["llm"]["headline_ci95"]["econ_classify"]
    assert lo == pytest.approx(0.5 - 1.959964 * 0.01, abs=1e-4) and hi == pytest.approx(0.5 + 1.959964 * 0.01, abs=1e-4)
    md = leaderboard.to_markdown(rows)
    assert "| 1 | baseline:bl |" in md and "0.500 [0.480, 0.520]" in md and "avg (3 common tasks)" in md
    assert "as FinBen does" not in md
