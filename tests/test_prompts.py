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
    doc = {"abstract": "A.", "title": "T", "label": "econ.TH", "question": "Q", "answer": "Ans"}
    build, target = prompts.TRAINING_PAIRS["econ_classify"]
    assert build is prompts.classify_prompt and target(doc) == "Theoretical Economics"
