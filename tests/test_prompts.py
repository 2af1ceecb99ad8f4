"""Prompts and answer parsing: the first label an answer mentions wins, not any label anywhere."""

from __future__ import annotations

import pytest

from econ_eval import prompts
from econ_eval.prompts import INVALID


@pytest.mark.parametrize("text,label", [
    ("Econometrics", "econ.EM"),
    ("econ.TH", "econ.TH"),
    ("The paper belongs to General Economics (econ.GN).", "econ.GN"),
    ("Theoretical Economics, not Econometrics", "econ.TH"),
    ("It is econometric work, though general economics readers may like it", "econ.EM"),
    ("I cannot tell.", INVALID),
    ("", INVALID),
    (None, INVALID),
])
def test_parse_class_answer(text, label):
    assert prompts.parse_class_answer(text) == label


@pytest.mark.parametrize("text,label", [
    ("Yes.", 1), ("No.", 0), ("no, it is routine; yes would be wrong", 0), ("Yes - not routine", 1),
    ("This is not an investment signal.", 0), ("Maybe", INVALID), ("Nobody knows", INVALID),
])
def test_parse_signal_answer(text, label):
    assert prompts.parse_signal_answer(text) == label


def test_prompts_contain_the_inputs():
    paper = {"abstract": "We estimate demand.", "title": "Demand", "label": "econ.EM", "question": "What?",
             "answer": "Demand."}
    assert "We estimate demand." in prompts.titles_prompt(paper)
    assert "We estimate demand." in prompts.classify_prompt(paper)
    assert "What?" in prompts.qa_prompt(paper) and "We estimate demand." in prompts.qa_prompt(paper)
    assert prompts.classify_target(paper) == "Econometrics" and prompts.classify_gold(paper) == 0
    story = {"date": "26-FEB-1987 15:01:01.79", "title": "ACME BID", "text": "word " * 400, "signal": 1}
    p = prompts.signal_prompt(story)
    assert "26-FEB-1987" in p and "ACME BID" in p and "15:01" not in p
    assert len(p) < prompts.SIGNAL_STORY_CHARS + 800  # the story is clipped
    assert prompts.signal_target(story) == "Yes"
    q = {"subject": "high_school_macroeconomics", "question": "Q?", "choices": ["w", "x", "y", "z"], "answer": 2}
    assert "C. y" in prompts.mmlu_prompt(q) and "high school macroeconomics" in prompts.mmlu_prompt(q)


def test_training_pairs_use_the_task_prompts():
    from econ_eval import tasks

    doc = {"abstract": "A.", "title": "T", "label": "econ.TH", "question": "Q", "answer": "Ans"}
    spec = tasks.task("econ_classify")
    assert spec.prompt is prompts.classify_prompt and spec.target(doc) == "Theoretical Economics"


# ------------------------------------------------------------------ the registry and the task YAMLs agree
def test_every_yaml_task_agrees_with_the_registry():
    """A YAML and the registry must say the same: fails when a task is added to one and not the other, or
    when a headline metric, prompt, output type, bundle folder or prompt version disagrees."""
    from econ_eval import lm_tasks, tasks

    yamls = tasks.yaml_configs()
    assert set(yamls) == set(tasks.TASKS), "a task is in the YAMLs or in the registry but not in both"
    for name, cfg in yamls.items():
        spec = tasks.task(name)
        assert cfg["output_type"] == spec.output_type, name
        assert cfg["dataset_kwargs"]["bundle_task"] == spec.bundle_task, name
        assert cfg["metadata"]["headline_metric"] == spec.headline, name
        assert str(cfg["metadata"]["prompt_version"]) == prompts.PROMPT_VERSION, name
        prompt_fn = getattr(lm_tasks, cfg["doc_to_text"].split(".", 1)[1])
        assert prompt_fn is spec.prompt, f"{name}: the YAML's doc_to_text is not the registry's prompt"
        listed = [m["metric"] for m in cfg["metric_list"]]
        assert set(spec.metrics) <= set(listed) and "score" in listed, name
        assert cfg["custom_dataset"].startswith("utils.load_"), name  # from the bundle, never the Hub


def test_the_agreement_test_can_fail(tmp_path):
    """The YAML reader merges templates; a YAML whose headline differs from the registry's is caught."""
    import shutil

    from econ_eval import tasks
    from econ_eval.config import tasks_dir

    copy = tmp_path / "tasks"
    shutil.copytree(tasks_dir(), copy)
    yaml_file = copy / "econ" / "econ_qa.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("headline_metric: rougeL", "headline_metric: token_f1"))
    cfg = tasks.yaml_configs(copy)["econ_qa"]
    assert cfg["test_split"] == "test"  # from the template
    assert cfg["metadata"]["headline_metric"] != tasks.task("econ_qa").headline


def test_econ_group_is_the_registry_suite():
    import yaml

    from econ_eval import tasks
    from econ_eval.config import tasks_dir

    group = yaml.safe_load((tasks_dir() / "econ" / "econ.yaml").read_text())
    assert group["task"] == tasks.SUITE_TASKS
