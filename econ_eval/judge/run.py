"""Judge lm-eval's logged samples after the fact: ``econ-eval judge RUN_DIR``.

Reads the ``samples_<task>_<timestamp>.jsonl`` files that ``lm_eval --log_samples`` wrote, asks the
judge to score each generation with the rubrics of :mod:`econ_eval.judge.rubrics`, and writes
``judge_<judge-model>_<timestamp>.json`` beside them. lm-eval's files are only read, never changed.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

from .. import run_folder
from ..io import DataError, Interrupted, read_jsonl, sha256_file
from .client import BudgetExhausted, ChatClient, EndpointUnreachable, base_url_host
from .jobs import run_jobs
from .rubrics import JUDGE_METRICS, JUDGE_PROMPT_VERSION, SCORE_SCHEMA, judge_messages, metrics_for_task, \
    parse_judgement


#: Why a sample has no score (``not_run``: stopped by Ctrl-C before it was sent).
MISSING_REASONS = ("unparseable", "error", "budget", "empty_response", "not_run")


class JudgeFailed(RuntimeError):
    """Not one sample could be scored (the report is written all the same; the message names it)."""


def sample_files(run_dir: Path | str) -> dict[str, Path]:
    """The newest ``samples_<task>_*.jsonl`` per task in a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a folder; pass the folder lm_eval --log_samples wrote to "
                        "(e.g. results/smollm2-135m)")
    return run_folder.newest_samples(run_dir)


def logged_response(row: dict, path: Path) -> str:
    """The (filtered) generation of one logged sample."""
    resp = row.get("filtered_resps")
    if isinstance(resp, list) and resp and isinstance(resp[0], str):
        return resp[0]
    resps = row.get("resps")
    if isinstance(resps, list) and resps and isinstance(resps[0], list) and resps[0] and isinstance(resps[0][0], str):
        return resps[0][0]
    raise DataError(f"{path}: doc_id {row.get('doc_id')}: no text in 'filtered_resps' or 'resps'; judge only "
                    "generation tasks logged with --log_samples")


def load_judgeable(run_dir: Path | str, metrics: list[str] | None = None, tasks: list[str] | None = None,
                   limit: int | None = None) -> list[dict]:
    """Jobs (task, metric, doc_id, doc, response) for every logged sample a judge metric applies to."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit} (leave it out to judge every sample)")
    files = sample_files(run_dir)
    if metrics:
        unknown = sorted(set(metrics) - set(JUDGE_METRICS))
        if unknown:
            raise ValueError(f"unknown judge metric(s) {unknown}; choose from {sorted(JUDGE_METRICS)}")
    jobs = []
    for task, path in files.items():
        if tasks and task not in tasks:
            continue
        task_metrics = [m for m in metrics_for_task(task) if not metrics or m in metrics]
        if not task_metrics:
            continue
        rows = read_jsonl(path)
        rows.sort(key=lambda r: r.get("doc_id", 0))
        for row in rows if limit is None else rows[:limit]:
            for field in ("doc_id", "doc"):
                if field not in row:
                    raise DataError(f"{path}: a line has no '{field}'; is this an lm-eval samples file?")
            sample = {"task": task, "doc_id": row["doc_id"], "doc": row["doc"],
                      "response": logged_response(row, path), "samples_file": path.name}
            jobs += [dict(sample, metric=m) for m in task_metrics]
    if not jobs:
        raise DataError(f"{run_dir}: no logged samples of a judgeable task "
                        f"({', '.join(sorted({t for ts, _ in JUDGE_METRICS.values() for t in ts}))}); "
                        "run lm_eval with --log_samples on those tasks first")
    return jobs


def _parseable(content: str) -> bool:
    return not math.isnan(parse_judgement(content)[0])


def _unscored(job: dict, status: str, error: str | None = None) -> dict:
    return {"task": job["task"], "metric": job["metric"], "doc_id": job["doc_id"], "score": None,
            "rationale": None, "cached": False, "status": status, "error": error}


def _judge_one(client: ChatClient, job: dict, stop: dict) -> dict:
    out = _unscored(job, "scored")
    if not job["response"].strip():
        out["status"] = "empty_response"
        return out
    messages = judge_messages(job["metric"], job)
    try:
        reply = client.chat(messages, prompt_version=JUDGE_PROMPT_VERSION, schema=SCORE_SCHEMA, accept=_parseable)
    except BudgetExhausted as exc:
        stop["budget"] = True
        out.update(status="budget", error=str(exc))
        return out
    except EndpointUnreachable as exc:  # the client remembers it (client.unreachable)
        out.update(status="error", error=str(exc))
        return out
    out["cached"] = reply.cached
    if reply.content is None:
        out.update(status="error", error=reply.error)
        return out
    score, rationale = parse_judgement(reply.content)
    if math.isnan(score):
        out.update(status="unparseable", error=f"reply not a valid judgement: {reply.content[:200]!r}")
    else:
        out.update(score=score, rationale=rationale)
    return out


def summarise(scored: list[dict]) -> dict:
    """Per ``task/metric``: mean and standard error over scored samples, and missing counts by reason."""
    groups: dict[str, list[dict]] = {}
    for s in scored:
        groups.setdefault(f"{s['task']}/{s['metric']}", []).append(s)
    out = {}
    for key, rows in sorted(groups.items()):
        vals = [r["score"] for r in rows if r["score"] is not None]
        missing = {reason: sum(r["status"] == reason for r in rows) for reason in MISSING_REASONS}
        out[key] = {
            "mean": statistics.fmean(vals) if vals else None,
            "stderr": statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None,
            "n": len(rows), "n_scored": len(vals), "n_missing": len(rows) - len(vals),
            "missing_by_reason": {k: v for k, v in missing.items() if v},
        }
    return out


def judge_run(run_dir: Path | str, client: ChatClient, *, metrics: list[str] | None = None,
              tasks: list[str] | None = None, limit: int | None = None, concurrency: int = 1,
              progress: bool = True, trust: dict | None = None, log=print) -> Path:
    """Score a run's logged samples with ``client``; write ``judge_<model>_<stamp>.json``; return its path.

    ``trust``: the judge's calibration (:func:`econ_eval.judge.calibration.trust_of`), recorded in the report
    as ``calibration`` and ``trusted`` (None: not calibrated).

    Raises :class:`Interrupted` after a Ctrl-C and :class:`JudgeFailed` when no sample could be scored,
    in both cases after writing the report.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    jobs = load_judgeable(run_dir, metrics, tasks, limit)
    stop: dict = {}
    started = time.perf_counter()
    results: list[dict | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), desc=f"judging with {client.model}", unit="sample", disable=not progress) as bar:
        def on_result(i, result):
            results[i] = result
            bar.update(1)
            bar.set_postfix(calls=client.calls, cached=client.cache_hits)

        interrupted = run_jobs(lambda job: _judge_one(client, job, stop), jobs, concurrency=concurrency,
                               on_result=on_result)
    wall = time.perf_counter() - started
    per_sample = [r if r is not None else _unscored(job, "not_run", "stopped by Ctrl-C before it was sent")
                  for r, job in zip(results, jobs)]
    summary = summarise(per_sample)
    files = sorted({j["samples_file"] for j in jobs})
    stamp = run_folder.new_stamp()
    report = {
        "judge_model": client.model,
        "judge_base_url_host": base_url_host(client.base_url),
        "judge_prompt_version": JUDGE_PROMPT_VERSION,
        "response_format": client.response_format,
        "run_dir": str(run_dir),
        "samples_files": {name: sha256_file(run_dir / name) for name in files},
        "metrics": sorted({j["metric"] for j in jobs}),
        "limit": limit,
        "concurrency": concurrency,
        "max_calls": client.max_calls,
        "calls_made": client.calls,
        "cache_hits": client.cache_hits,
        # complete: every sample got an answer from the judge (parseable or not); a rerun resumes otherwise
        "complete": not any(s["status"] in ("error", "budget", "not_run") for s in per_sample),
        "interrupted": interrupted,
        "endpoint_error": client.unreachable,
        "wall_time_s": round(wall, 2),
        "samples_per_s": round(len(per_sample) / wall, 3) if wall > 0 else None,
        "created": stamp,
        "trusted": trust.get("trusted") if trust else None,
        "calibration": trust,
        "results": summary,
        "samples": per_sample,
    }
    path = run_folder.write_scores(run_dir, "judge", client.model, report, stamp)
    for key, s in summary.items():
        mean = "nan" if s["mean"] is None else f"{s['mean']:.2f}"
        se = "" if s["stderr"] is None else f" ± {s['stderr']:.2f}"
        log(f"{key:<32} {mean}{se}  scored {s['n_scored']}/{s['n']}"
            + (f"  missing {s['missing_by_reason']}" if s["n_missing"] else ""))
    log(f"calls {client.calls}, cache hits {client.cache_hits}, {wall:.1f} s"
        + (" — stopped at the call budget; run again to resume (cached scores are reused)" if stop.get("budget")
           else ""))
    log(f"wrote {path}")
    n_scored = sum(s["n_scored"] for s in summary.values())
    if interrupted:
        raise Interrupted(f"interrupted: {n_scored} of {len(per_sample)} samples scored, saved to {path}; "
                          "run the same command again to resume (scored replies are cached)")
    if n_scored == 0:
        reasons = sorted({s["status"] for s in per_sample})
        raise JudgeFailed(f"no sample could be scored by {client.model} at {client.base_url} "
                          f"(statuses: {', '.join(reasons)}"
                          + (f"; {client.unreachable}" if client.unreachable else
                             f"; first error: {next((s['error'] for s in per_sample if s['error']), None)}")
                          + f"); report with the per-sample errors: {path}")
    return path


def _cmd_judge(args) -> int:
    from ..cli_args import judge_client
    from .calibration import DEFAULT_ITEMS, calibrate, trust_of

    client = judge_client(args)
    if args.pairwise:
        from .pairwise import judge_pairwise

        if args.run_dir:
            raise DataError("give the runs to compare after --pairwise only (e.g. --pairwise RUN_A RUN_B)")
        judge_pairwise([Path(p) for p in args.pairwise], client, limit=args.limit, concurrency=args.concurrency)
        return 0
    if not args.run_dir:
        raise DataError("give a run folder to judge, `calibrate`, or --pairwise RUN_A RUN_B")
    if args.run_dir == "calibrate" and not Path("calibrate").is_dir():
        calibrate(client, n=args.limit or DEFAULT_ITEMS, concurrency=args.concurrency)
        return 0
    sample_files(args.run_dir)  # a bad folder is an error before any call is made
    trust = None if args.no_calibration else trust_of(client)
    judge_run(Path(args.run_dir), client, metrics=args.metrics.split(",") if args.metrics else None,
              tasks=args.tasks.split(",") if args.tasks else None, limit=args.limit, concurrency=args.concurrency,
              trust=trust)
    if trust and trust.get("trusted") is False:
        print(f"WARNING: these scores come from a judge that failed calibration (AUC {trust['auc']:.3f}); "
              "the report is marked trusted: false", file=sys.stderr)
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    from ..cli_args import add_judge_endpoint_args, add_call_args

    j = sub.add_parser("judge", help="score a run's logged samples with an LLM judge (cached, budgeted); "
                       "writes judge_<model>_<stamp>.json beside them")
    j.add_argument("run_dir", nargs="?", help="folder with lm-eval samples_*.jsonl (from --log_samples), or `calibrate`: "
                   "measure the judge on the bundle's validation split (AUC, Spearman, unparseable rate, length "
                   "bias) into results/judge_calibration/ (--limit: documents per rubric, default 20)")
    j.add_argument("--pairwise", nargs="+", metavar="RUN",
                   help="compare two or more runs' answers to the same documents head to head, each pair asked in "
                        "both orders (a verdict counts only when both agree); win/tie/loss, consistency, "
                        "Bradley-Terry for 3+ runs, into results/judge_pairwise/")
    j.add_argument("--no-calibration", action="store_true",
                   help="do not look up or run the judge's calibration (the report says trusted: null)")
    add_judge_endpoint_args(j)
    j.add_argument("--metrics", help="comma-separated: qa_correctness, title_quality (default: all that apply)")
    j.add_argument("--tasks", help="comma-separated task names (default: every logged judgeable task)")
    add_call_args(j)
    j.set_defaults(func=_cmd_judge)
