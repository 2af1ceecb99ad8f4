"""The lm-eval task plugin: validation, wildcard selection, dataset loading and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from econ_eval.config import tasks_dir
from econ_eval.evaluate import ALL_TASKS, SUITE_TASKS, WILDCARD_TASKS
from econ_eval.io import DataError


@pytest.mark.parametrize("task", ALL_TASKS + ["econ", "econlite"])
def test_lm_eval_validate(task):
    proc = subprocess.run([sys.executable, "-m", "lm_eval", "validate", "--include_path", str(tasks_dir()),
                           "--tasks", task], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All tasks found and valid" in proc.stdout + proc.stderr


def test_wildcard_selects_every_task():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(tasks_dir()))
    matched = tm.match_tasks(["econ_*"])
    assert sorted(matched) == sorted(WILDCARD_TASKS)
    assert "econlite_classify" in tm.all_tasks and not any(t.startswith("econlite") for t in matched)  # quick ≠ full
    assert "econ" in tm.all_groups and "econ_qa_rag" not in SUITE_TASKS  # the group is the leaderboard suite


def test_generation_tasks_know_their_multiple_choice_twin():
    from econ_eval import tasks

    assert tasks.multiple_choice_twin("econ_classify_gen") == "econ_classify"
    assert tasks.multiple_choice_twin("econ_headlines_gen") == "econ_headlines"
    assert tasks.multiple_choice_twin("econlite_signal_gen") == "econlite_signal"  # lite with lite
    assert tasks.multiple_choice_twin("econ_titles") is None and tasks.multiple_choice_twin("econ_classify") is None
    for name in tasks.TASKS:
        twin = tasks.multiple_choice_twin(name)
        if twin:  # the twin scores the very prompt the generation task answers
            assert tasks.task(twin).prompt is tasks.task(name).prompt and name == twin + "_gen"


def test_task_docs_and_prompts(bundle_env):
    from lm_eval.tasks import TaskManager, get_task_dict

    tm = TaskManager(include_path=str(tasks_dir()))
    tasks = get_task_dict(SUITE_TASKS, tm)
    sizes = {name: len(list(task.test_docs())) for name, task in tasks.items()}
    assert sizes["econ_classify"] == 700 and sizes["econ_classify_gen"] == 700
    assert sizes["econ_signal"] == 750 and sizes["econ_mmlu"] == 742 and sizes["econ_titles"] == 700
    cls = tasks["econ_classify"]
    doc = next(iter(cls.test_docs()))
    assert doc["abstract"] in cls.doc_to_text(doc)
    assert cls.doc_to_choice(doc) == ["Econometrics", "General Economics", "Theoretical Economics"]
    assert cls.config.metadata["bundle_version"] == "2.0"


def test_missing_bundle_says_how_to_build(tmp_path, monkeypatch):
    from econ_eval.lm_tasks import load_task_dataset

    monkeypatch.setenv("ECON_EVAL_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"econ-eval data build"):
        load_task_dataset(bundle_task="econ_classify", bundle_version="2.0")


def test_bundle_version_mismatch_is_refused(tmp_path, monkeypatch, real_bundle):
    import shutil

    from econ_eval.lm_tasks import load_task_dataset

    copy = tmp_path / "bundle"
    shutil.copytree(real_bundle[0], copy)
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    manifest["bundle_version"] = "0.9"
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("ECON_EVAL_DATA", str(copy))
    with pytest.raises(DataError, match=r"bundle_version is '0.9' but the task expects '2.0'"):
        load_task_dataset(bundle_task="econ_signal", bundle_version="2.0")
    ds = load_task_dataset(bundle_task="econ_signal", bundle_version="0.9")
    assert len(ds["test"]) == 750


def test_prompts_fit_the_context_window(bundle_env):
    """Truncated prompts silently wreck scores: every test prompt must fit SmolLM2's 8k window with room."""
    from transformers import AutoTokenizer

    from econ_eval.lm_tasks import load_task_dataset
    from econ_eval.models import fetch_model
    from econ_eval import prompts

    tok = AutoTokenizer.from_pretrained(fetch_model("smollm2-135m"))
    build = {"econ_titles": prompts.titles_prompt, "econ_classify": prompts.classify_prompt,
             "econ_qa": prompts.qa_prompt, "econ_signal": prompts.signal_prompt, "econ_mmlu": prompts.mmlu_prompt}
    for task, fn in build.items():
        docs = load_task_dataset(bundle_task=task)["test"]
        longest = max((fn(d) for d in docs), key=len)
        assert len(tok(longest).input_ids) < 2048, task


# ------------------------------------------------------------------ the quick suite (econlite)
def test_lite_subsets_are_seeded_stratified_and_sized():
    from econ_eval.lite import lite_indices

    docs = [{"label": lab, "abstract": f"a{i}", "paper_id": f"p{i}"}
            for i, lab in enumerate(["econ.GN"] * 50 + ["econ.EM"] * 30 + ["econ.TH"] * 20)]
    keep = lite_indices("econ_classify", docs, size=20, seed=3)
    assert len(keep) == 20 and keep == sorted(keep) and keep == lite_indices("econ_classify", docs, size=20, seed=3)
    labels = [docs[i]["label"] for i in keep]
    assert (labels.count("econ.GN"), labels.count("econ.EM"), labels.count("econ.TH")) == (10, 6, 4)  # proportional
    assert lite_indices("econ_classify", docs, size=20, seed=4) != keep  # the seed matters
    # the test order does not change which documents are kept
    shuffled = docs[::-1]
    assert sorted(shuffled[i]["paper_id"] for i in lite_indices("econ_classify", shuffled, size=20, seed=3)) == \
        sorted(docs[i]["paper_id"] for i in keep)
    # largest remainders: 7 seats over 50/30/20 -> 3.5, 2.1, 1.4 -> 4, 2, 1
    seven = [docs[i]["label"] for i in lite_indices("econ_classify", docs, size=7, seed=3)]
    assert (seven.count("econ.GN"), seven.count("econ.EM"), seven.count("econ.TH")) == (4, 2, 1)


def test_lite_generation_tasks_draw_from_their_twins_lite_documents():
    """econlite_classify_gen's documents are among econlite_classify's (the same prompts: econ-hf answers them
    during the twin's log-likelihood pass), stratified and seeded within them."""
    from econ_eval.lite import LITE_SIZES, lite_indices, lite_pool

    docs = [{"label": lab, "abstract": f"a{i}", "paper_id": f"p{i}"}
            for i, lab in enumerate(["econ.GN"] * 200 + ["econ.EM"] * 120 + ["econ.TH"] * 80)]
    twin = lite_indices("econ_classify", docs)
    assert lite_pool("econ_classify_gen", docs) == twin and lite_pool("econ_classify", docs) == list(range(400))
    keep = lite_indices("econ_classify_gen", docs)
    assert len(keep) == LITE_SIZES["econ_classify_gen"] and set(keep) <= set(twin) and keep == sorted(keep)
    labels = [docs[i]["label"] for i in keep]
    assert (labels.count("econ.GN"), labels.count("econ.EM"), labels.count("econ.TH")) == (40, 24, 16)
    assert lite_indices("econ_classify_gen", docs, seed=1) != lite_indices("econ_classify_gen", docs, seed=2)


def test_lite_tasks_load_their_subsets(bundle_env):
    from lm_eval.tasks import TaskManager, get_task_dict

    from econ_eval.lite import LITE_SIZES, full_name, lite_indices
    from econ_eval.io import read_jsonl
    from econ_eval.tasks import LITE_TASKS, task

    tm = TaskManager(include_path=str(tasks_dir()))
    loaded = get_task_dict(LITE_TASKS, tm)
    for name in LITE_TASKS:
        full = full_name(name)
        docs = list(loaded[name].test_docs())
        test = read_jsonl(bundle_env / task(full).bundle_task / "test.jsonl")
        assert len(docs) == LITE_SIZES[full]
        assert docs == [test[i] for i in lite_indices(full, test)]  # the registry's subset, in test order


def test_quick_suite_runs_are_first_looks():
    from econ_eval.evaluate import is_quick_suite

    assert is_quick_suite("econlite") and is_quick_suite("econ_signal,econlite_qa")
    assert not is_quick_suite("econ") and not is_quick_suite("econ_classify,econfin")


def test_lite_agreement_file_is_generated_from_the_published_samples(bundle_env):
    """results/benchmarks/lite_agreement.json holds what benchmarks/lite_agreement.py computes from the published
    runs' samples (no typed numbers); each check says whether the lite score is inside the full interval."""
    from pathlib import Path

    from econ_eval.io import read_json
    from econ_eval.lite import LITE_SEEDS, LITE_SIZES, row_agreement

    repo = Path(__file__).resolve().parent.parent
    doc = read_json(repo / "results" / "benchmarks" / "lite_agreement.json")
    assert doc["lite_sizes"] == LITE_SIZES and doc["lite_seeds"] == LITE_SEEDS
    board = read_json(repo / "results" / "leaderboard.json")
    rows = {r["system"]: r for r in board["rows"]}
    for system, checks in doc["systems"].items():
        fresh = {c["task"]: c for c in row_agreement(repo / "results", rows[system], bundle_env)}
        for c in checks:
            assert fresh[c["task"]]["lite"] == c["lite"] and fresh[c["task"]]["inside"] == c["inside"], (system, c)
    assert doc["inside"] == sum(c["inside"] for cs in doc["systems"].values() for c in cs)


def test_random_seed_agreement_leaves_the_chosen_seeds_alone(bundle_env):
    """`lite_agreement.py --random N`: the baseline the README quotes; it must not change the committed seeds."""
    import sys
    from pathlib import Path

    from econ_eval.lite import LITE_SEEDS

    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo / "benchmarks"))
    from lite_agreement import random_seed_agreement

    before = dict(LITE_SEEDS)
    counts = random_seed_agreement(repo / "results", bundle_env, 2)
    assert len(counts) == 2 and all(0 <= inside <= total and total > 0 for inside, total in counts)
    assert LITE_SEEDS == before


def test_suite_time_proposal_fits_the_budget_and_keeps_the_floor():
    """benchmarks/suite_time.py: proposed test sizes fit the budget, shrink every task by one factor, and never go
    below the floor (or a task's own size when it is smaller)."""
    import importlib
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    suite_time = importlib.import_module("benchmarks.suite_time")
    cost = {"a": 1.0, "b": 0.5, "c": 2.0}
    sizes = {"a": 1000, "b": 2000, "c": 150}
    assert suite_time.propose_sizes(cost, sizes, budget_s=10_000, floor=200) == sizes  # fits already
    got = suite_time.propose_sizes(cost, sizes, budget_s=1200, floor=200)
    assert sum(cost[t] * n for t, n in got.items()) <= 1200
    assert got["c"] == 150 and got["a"] >= 200 and got["b"] >= 200  # c is below the floor already: kept whole
    assert got["a"] / 1000 == pytest.approx(got["b"] / 2000, abs=0.01)  # one factor for all
    impossible = suite_time.propose_sizes(cost, sizes, budget_s=10, floor=200)
    assert impossible == {"a": 200, "b": 200, "c": 150}  # the floor wins over the budget


def test_suite_time_records_a_measured_full_run_and_refuses_a_limited_one(tmp_path):
    """``suite_time.py --record-run``: the run's wall time goes into the report (and the README line made from
    it); a --limit run or a file that is not a run record is refused with the file named."""
    import importlib
    import json
    from pathlib import Path

    from econ_eval.readme_blocks import suite_time_block

    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    suite_time = importlib.import_module("benchmarks.suite_time")
    (tmp_path / "benchmarks").mkdir()
    report = tmp_path / "benchmarks" / "suite_time.json"
    report.write_text((repo / "results" / "benchmarks" / "suite_time.json").read_text())
    run = tmp_path / "system_x.json"
    record = {"wall_time_s": 2523.0, "tasks": "econ_*", "command": "python -m econ_eval.lm_eval_cli ...",
              "backend": "econ-hf", "dtype": "bfloat16", "batch_size": "8", "limit": None,
              "machine": {"torch_threads": 2, "cpu": "AMD EPYC"}}
    run.write_text(json.dumps({**record, "limit": 5}))
    with pytest.raises(SystemExit, match="system_x.json: a --limit run"):
        suite_time.record_run(run, report)
    run.write_text(json.dumps({"tasks": "econ_*"}))
    with pytest.raises(SystemExit, match="system_x.json: no wall_time_s, command"):
        suite_time.record_run(run, report)
    run.write_text(json.dumps(record))
    assert suite_time.record_run(run, report)["wall_min"] == 42.0
    assert json.loads(report.read_text())["measured_full_suite"]["run_record"] == "system_x.json"
    assert "**Measured end to end: 42.0 min** for `--tasks econ_*`" in suite_time_block(tmp_path)


def test_suite_time_of_a_second_machine_has_its_own_file_and_names_its_cpu(tmp_path):
    """A prediction made on another CPU (``suite_time.py --output results/benchmarks/suite_time_avx2.json``)
    gets its own README block, which names the CPU it was measured on; a missing file says how to make it."""
    import json
    from pathlib import Path

    from econ_eval.readme_blocks import suite_time_block

    repo = Path(__file__).resolve().parent.parent
    doc = json.loads((repo / "results" / "benchmarks" / "suite_time.json").read_text())
    (tmp_path / "benchmarks").mkdir()
    assert suite_time_block(tmp_path, "suite_time_avx2") == (
        "(no results/benchmarks/suite_time_avx2.json: run `python benchmarks/suite_time.py --output "
        "results/benchmarks/suite_time_avx2.json`)")
    doc.update(machine={"cpu": "AMD EPYC", "avx512": False, "amx": False, "cores": 2}, dtype="float32",
               predicted_full_suite_min=91.5)
    (tmp_path / "benchmarks" / "suite_time_avx2.json").write_text(json.dumps(doc))
    block = suite_time_block(tmp_path, "suite_time_avx2")
    assert f"**Whole `econ_*` suite: 91.5 min predicted** on {doc['torch_threads']} threads of AMD EPYC " \
           "(no AVX-512/AMX) (econ-hf, float32, batch" in block
    assert "before/after" not in block  # a file without the run's commit and matmul peak (the first ones)
    doc.update(commit="abc1234", peak_matmul_gflops=[176.4, 140.7])
    (tmp_path / "benchmarks" / "suite_time_avx2.json").write_text(json.dumps(doc))
    block = suite_time_block(tmp_path, "suite_time_avx2")
    assert f"- Measured {doc['created']} (commit abc1234; float32 matmul peak 176.4/140.7 GFLOP/s before/after) " \
           "on the first" in block
