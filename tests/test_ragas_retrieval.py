"""Retrieval (MiniLM + FAISS) and RAGAS metrics that need no LLM, on known inputs and real logged samples."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from econ_eval.retrieval import Passage, VectorIndex, corpus_index, corpus_passages, cosine_similarity

REPO = Path(__file__).resolve().parent.parent
PUBLISHED_RUN = REPO / "results" / "smollm2-135m"

PASSAGES = [
    Passage("p1", "We estimate the effect of minimum wages on teen employment using county border pairs.", {}),
    Passage("p2", "A monetary policy shock raises the policy rate and lowers inflation with a lag.", {}),
    Passage("p3", "We prove existence of a stable matching in two-sided markets with contracts.", {}),
]


def test_embeddings_rank_related_text_higher():
    assert cosine_similarity("central bank raises interest rates", "monetary policy tightening") > \
        cosine_similarity("central bank raises interest rates", "stable matching with contracts")


def test_vector_index_search_save_load(tmp_path):
    index = VectorIndex.build(PASSAGES)
    top = index.search("How do minimum wages affect employment of teenagers?", k=2)
    assert top[0][0].id == "p1" and top[0][1] > top[1][1]
    index.save(tmp_path / "idx")
    again = VectorIndex.load(tmp_path / "idx")
    assert [p.id for p, _ in again.search("matching markets", 1)] == ["p3"]
    assert [[p.id for p, _ in hits] for hits in again.search_many(["inflation", "matching"], 1)] == [["p2"], ["p3"]]


def test_corpus_index_is_built_once_per_bundle(tiny_data, tmp_path):
    from econ_eval.data.build import build_bundle
    from tests.conftest import TINY_SIZES

    raw, ann = tiny_data
    bundle = tmp_path / "bundle"
    build_bundle(raw, ann, bundle, log=lambda m: None, **TINY_SIZES)
    messages = []
    first = corpus_index(bundle, progress=False, log=messages.append)
    assert len(messages) == 1 and len(first.passages) == len(corpus_passages(bundle))
    assert len({p.id for p in first.passages}) == len(first.passages)  # one passage per paper
    second = corpus_index(bundle, progress=False, log=messages.append)
    assert len(messages) == 1 and [p.id for p in second.passages] == [p.id for p in first.passages]
    # a rebuilt bundle (new MANIFEST) gets a new index
    build_bundle(raw, ann, bundle, seed=7, log=lambda m: None, **TINY_SIZES)
    corpus_index(bundle, progress=False, log=messages.append)
    assert len(messages) == 2


def test_rag_dataset_adds_retrieved_contexts(tiny_data, tmp_path, monkeypatch):
    from econ_eval.data.build import build_bundle
    from econ_eval.lm_tasks import load_rag_dataset, process_qa_rag
    from econ_eval.prompts import qa_rag_prompt
    from tests.conftest import TINY_SIZES

    raw, ann = tiny_data
    bundle = tmp_path / "bundle"
    manifest = build_bundle(raw, ann, bundle, log=lambda m: None, **TINY_SIZES)
    monkeypatch.setenv("ECON_EVAL_DATA", str(bundle))
    ds = load_rag_dataset("econ_qa", top_k=2, bundle_version=manifest["bundle_version"])
    doc = ds["test"][0]
    assert len(doc["contexts"]) == 2 and len(doc["context_ids"]) == 2
    assert doc["context_scores"][0] >= doc["context_scores"][1]
    prompt = qa_rag_prompt(doc)
    assert doc["question"] in prompt and doc["contexts"][0] in prompt and "[2]" in prompt
    hit = process_qa_rag(doc, [doc["answer"]])
    assert hit["hit_rate"] == float(doc["paper_id"] in doc["context_ids"]) and hit["rougeL"] == pytest.approx(1.0)


# ------------------------------------------------------------------ RAGAS without an LLM
def _score(metric_name, row):
    from econ_eval.judge.ragas_scores import non_llm_metrics

    metric = non_llm_metrics()[metric_name]
    result = asyncio.run(metric(row))
    return float(getattr(result, "value", result))


ROW_SAME = {"reference": "Inflation fell after the rate rise.", "response": "Inflation fell after the rate rise.",
            "retrieved_contexts": ["Inflation fell after the rate rise."],
            "reference_contexts": ["Inflation fell after the rate rise."]}
ROW_DIFF = {"reference": "Inflation fell after the rate rise.", "response": "Matching markets have stable outcomes.",
            "retrieved_contexts": ["Matching markets have stable outcomes."],
            "reference_contexts": ["Inflation fell after the rate rise."]}


@pytest.mark.parametrize("name", ["semantic_similarity", "rouge_l", "string_similarity",
                                  "nonllm_context_precision", "nonllm_context_recall"])
def test_non_llm_ragas_metrics_on_known_inputs(name):
    same, diff = _score(name, ROW_SAME), _score(name, ROW_DIFF)
    assert same == pytest.approx(1.0, abs=1e-4)
    assert diff < 0.6


def test_ragas_bleu_is_one_for_identical_text():
    assert _score("bleu", ROW_SAME) == pytest.approx(1.0, abs=1e-6) and _score("bleu", ROW_DIFF) < 0.2


def test_ragas_run_on_logged_samples(tmp_path):
    from econ_eval.judge.ragas_scores import NON_LLM_METRICS, ragas_run

    if not PUBLISHED_RUN.is_dir():
        pytest.skip("published base run not found")
    run = tmp_path / "run"
    run.mkdir()
    src = sorted(PUBLISHED_RUN.glob("samples_econ_qa_*.jsonl"))[-1]
    (run / src.name).write_text("\n".join(src.read_text().splitlines()[:3]) + "\n")
    before = (run / src.name).read_bytes()
    path = ragas_run(run, progress=False, log=lambda m: None)
    report = json.loads(path.read_text())
    assert (run / src.name).read_bytes() == before and path.name.startswith("ragas_nonllm_")
    for name in NON_LLM_METRICS:
        s = report["results"][f"econ_qa/{name}"]
        assert s["n"] == 3 and s["n_nan"] == 0 and 0.0 <= s["mean"] <= 1.0, name
        assert report["which_judge_produced_what"][name] == "no LLM"
    # econ_qa shows the gold abstract itself: non-LLM context recall is 1
    assert report["results"]["econ_qa/nonllm_context_recall"]["mean"] == pytest.approx(1.0)
