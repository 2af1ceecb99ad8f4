"""The lm-eval task plugin: validation, wildcard selection, dataset loading and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from econ_eval.config import tasks_dir
from econ_eval.evaluate import ALL_TASKS, SUITE_TASKS
from econ_eval.io import DataError


@pytest.mark.parametrize("task", ALL_TASKS + ["econ"])
def test_lm_eval_validate(task):
    proc = subprocess.run([sys.executable, "-m", "lm_eval", "validate", "--include_path", str(tasks_dir()),
                           "--tasks", task], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All tasks found and valid" in proc.stdout + proc.stderr


def test_wildcard_selects_every_task():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(tasks_dir()))
    matched = tm.match_tasks(["econ_*"])
    assert sorted(matched) == sorted(ALL_TASKS)
    assert "econ" in tm.all_groups and "econ_qa_rag" not in SUITE_TASKS  # the group is the leaderboard suite


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
