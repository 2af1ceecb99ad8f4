"""Head-to-head judging: ``econ-eval judge --pairwise RUN_A RUN_B [RUN_C ...]``.

For every document that two runs both answered (same task, same ``doc_id`` and document), the judge sees
the two answers twice, once in each order. A verdict counts only when both orders agree (A then B says the
same as B then A); disagreements are counted as **inconsistent**, as FastChat does, and are no verdict.
Per pair of runs: wins, ties and losses, the win rate (ties count half) with a bootstrap 95% interval, the
consistency rate, and the same per task; with more than two runs, Bradley–Terry strengths. Cached and
budgeted like ``econ-eval judge``; the report goes to ``results/judge_pairwise/``.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np

from .. import config, run_folder
from ..io import DataError
from .client import BudgetExhausted, ChatClient, EndpointUnreachable, base_url_host
from .jobs import run_jobs
from ..metrics import bootstrap_interval
from .rubrics import PAIRWISE_PROMPT_VERSION, PAIRWISE_SCHEMA, pairwise_messages, parse_verdict
from .run import load_judgeable


def _answers(run_dir: Path, limit: int | None) -> dict[tuple, dict]:
    """(task, metric, doc_id) -> job of a run's judgeable samples."""
    return {(j["task"], j["metric"], j["doc_id"]): j for j in load_judgeable(run_dir, limit=limit)}


def pairs_to_judge(runs: list[Path], limit: int | None = None) -> list[dict]:
    """One comparison per pair of runs and shared document, each to be asked in both orders."""
    answers = [_answers(r, limit) for r in runs]
    out = []
    for i, j in itertools.combinations(range(len(runs)), 2):
        shared = sorted(set(answers[i]) & set(answers[j]), key=str)
        for key in shared:
            a, b = answers[i][key], answers[j][key]
            if a["doc"] != b["doc"]:
                raise DataError(f"{runs[i]} and {runs[j]}: {key[0]} doc_id {key[2]} is not the same document in "
                                "both runs (other bundles?); compare runs scored on the same test split")
            out.append({"task": key[0], "metric": key[1], "doc_id": key[2], "doc": a["doc"], "runs": (i, j),
                        "responses": (a["response"], b["response"])})
    if not out:
        raise DataError(f"the runs share no judgeable document ({', '.join(map(str, runs))})")
    return out


def _ask(client: ChatClient, metric: str, doc: dict, first: str, second: str, stop: dict) -> tuple[str | None, str]:
    try:
        reply = client.chat(pairwise_messages(metric, doc, first, second), prompt_version=PAIRWISE_PROMPT_VERSION,
                            schema=PAIRWISE_SCHEMA, accept=lambda c: parse_verdict(c) is not None)
    except BudgetExhausted:
        stop["budget"] = True
        return None, "budget"
    except EndpointUnreachable:
        return None, "error"
    if reply.content is None:
        return None, "error"
    verdict = parse_verdict(reply.content)
    return verdict, "ok" if verdict else "unparseable"


def combine(first: str | None, second: str | None) -> str:
    """The verdict of a comparison asked in both orders, from the first run's side: ``win``, ``tie``,
    ``loss``, ``inconsistent`` (the orders disagree) or ``missing`` (a reply is absent or unparseable).
    ``first``: the verdict with run 1 as A; ``second``: with run 1 as B."""
    if first is None or second is None:
        return "missing"
    as_first = {"A": "win", "B": "loss", "tie": "tie"}[first]
    as_second = {"B": "win", "A": "loss", "tie": "tie"}[second]
    return as_first if as_first == as_second else "inconsistent"


def judge_one(client: ChatClient, metric: str, doc: dict, answer_a: str, answer_b: str) -> dict:
    """One comparison asked in both orders (A first, then B first): the outcome from A's side
    (:func:`combine`) and both raw verdicts. Cached and budgeted like the rest (the Space's Compare tab)."""
    stop: dict = {}
    v1, s1 = _ask(client, metric, doc, answer_a, answer_b, stop)
    v2, s2 = _ask(client, metric, doc, answer_b, answer_a, stop)
    return {"outcome": combine(v1, v2), "verdict_a_first": v1, "verdict_b_first": v2, "status": [s1, s2]}


def win_rate_interval(outcomes: list[str], iters: int = 1000, seed: int = config.DEFAULT_SEED) -> dict:
    """Win rate (ties half) over consistent verdicts with a percentile bootstrap 95% interval."""
    values = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[o] for o in outcomes if o in ("win", "tie", "loss")]
    if not values:
        return {"win_rate": None, "ci95": None}
    ci = bootstrap_interval(lambda xs: float(np.mean(xs)), values, n=iters, seed=seed)
    return {"win_rate": float(np.mean(values)), "ci95": list(ci) if ci else None}


def bradley_terry(n_systems: int, games: list[tuple[int, int, float]], iters: int = 200) -> list[float]:
    """Bradley–Terry strengths (mean log-strength 0) from ``(i, j, score of i)`` games (1 win, 0.5 tie, 0 loss),
    by the minorise-maximise updates (Hunter 2004); a tiny prior of half a win against each other system
    keeps strengths finite when a system wins or loses everything."""
    wins = np.full((n_systems, n_systems), 0.0)
    for i, j, s in games:
        wins[i, j] += s
        wins[j, i] += 1 - s
    wins += 0.5 * (1 - np.eye(n_systems)) / max(n_systems - 1, 1)
    played = wins + wins.T
    p = np.ones(n_systems)
    for _ in range(iters):
        for i in range(n_systems):
            denom = sum(played[i, j] / (p[i] + p[j]) for j in range(n_systems) if j != i)
            p[i] = wins[i].sum() / denom if denom else p[i]
        p /= np.exp(np.mean(np.log(p)))
    return [float(math.log(x)) for x in p]


def judge_pairwise(runs: list[Path], client: ChatClient, *, limit: int | None = None, concurrency: int = 1,
                   out_dir: Path | None = None, log=print) -> Path:
    """Compare the runs' answers head to head (both orders); write ``judge_pairwise_<model>_<stamp>.json``."""
    if len(runs) < 2:
        raise DataError("--pairwise needs at least two run folders")
    runs = [Path(r) for r in runs]
    comparisons = pairs_to_judge(runs, limit)
    asks = [(k, order) for k in range(len(comparisons)) for order in (0, 1)]
    stop: dict = {}
    replies: dict = {}
    started = time.perf_counter()

    def one(ask):
        k, order = ask
        c = comparisons[k]
        first, second = c["responses"] if order == 0 else c["responses"][::-1]
        return _ask(client, c["metric"], c["doc"], first, second, stop)

    interrupted = run_jobs(one, asks, concurrency=concurrency, on_result=lambda n, r: replies.__setitem__(asks[n], r))
    items = []
    for k, c in enumerate(comparisons):
        (v1, s1), (v2, s2) = replies.get((k, 0), (None, "not_run")), replies.get((k, 1), (None, "not_run"))
        items.append({"task": c["task"], "metric": c["metric"], "doc_id": c["doc_id"], "runs": list(c["runs"]),
                      "verdict_a_first": v1, "verdict_b_first": v2, "status": [s1, s2], "outcome": combine(v1, v2)})
    names = [r.name for r in runs]
    pairs = {}
    for i, j in itertools.combinations(range(len(runs)), 2):
        mine = [it for it in items if it["runs"] == [i, j]]
        pairs[f"{names[i]} vs {names[j]}"] = _pair_summary(mine)
    games = [(it["runs"][0], it["runs"][1], {"win": 1.0, "tie": 0.5, "loss": 0.0}[it["outcome"]])
             for it in items if it["outcome"] in ("win", "tie", "loss")]
    stamp = run_folder.new_stamp()
    report = {
        "judge_model": client.model, "judge_base_url_host": base_url_host(client.base_url),
        "pairwise_prompt_version": PAIRWISE_PROMPT_VERSION, "runs": [str(r) for r in runs], "limit": limit,
        "calls_made": client.calls, "cache_hits": client.cache_hits, "interrupted": interrupted,
        "budget_stopped": bool(stop.get("budget")), "wall_time_s": round(time.perf_counter() - started, 2),
        "created": stamp, "pairs": pairs,
        "bradley_terry": ({n: round(s, 4) for n, s in zip(names, bradley_terry(len(runs), games))}
                          if len(runs) > 2 else None),
        "items": items,
    }
    out_dir = Path(out_dir) if out_dir else config.results_dir() / "judge_pairwise"
    path = run_folder.write_scores(out_dir, "judge_pairwise", client.model, report, stamp)
    for name, s in pairs.items():
        wr = "n/a" if s["win_rate"] is None else f"{s['win_rate']:.3f}"
        ci = f" [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]" if s["ci95"] else ""
        log(f"{name}: win {s['win']} / tie {s['tie']} / loss {s['loss']}, win rate {wr}{ci}; "
            f"consistent {s['consistent']}/{s['compared']} ({s['consistency_rate']:.2f}), "
            f"inconsistent {s['inconsistent']}, missing {s['missing']}; picked the answer shown first in "
            f"{'n/a' if s['position_bias']['first_shown_rate'] is None else format(s['position_bias']['first_shown_rate'], '.0%')} "
            f"of {s['position_bias']['verdicts']} single-order verdicts")
    log(f"calls {client.calls}, cache hits {client.cache_hits}; wrote {path}")
    return path


def position_bias(items: list[dict]) -> dict:
    """How often the judge picked the answer shown FIRST, over every single-order verdict that named a winner
    (0.5 = no position preference; 1.0 = it always says "A", whatever the answers are)."""
    picks = [v for it in items for v in (it["verdict_a_first"], it["verdict_b_first"]) if v in ("A", "B")]
    ties = sum(v == "tie" for it in items for v in (it["verdict_a_first"], it["verdict_b_first"]))
    return {"first_shown_rate": round(sum(v == "A" for v in picks) / len(picks), 4) if picks else None,
            "verdicts": len(picks), "ties": ties}


def _pair_summary(items: list[dict]) -> dict:
    def counts(rows):
        c = {o: sum(r["outcome"] == o for r in rows) for o in ("win", "tie", "loss", "inconsistent", "missing")}
        answered = len(rows) - c["missing"]
        consistent = c["win"] + c["tie"] + c["loss"]
        return {**c, "compared": len(rows), "consistent": consistent,
                "consistency_rate": consistent / answered if answered else 0.0,
                **win_rate_interval([r["outcome"] for r in rows])}

    out = counts(items)
    out["position_bias"] = position_bias(items)
    out["by_task"] = {t: counts([r for r in items if r["task"] == t]) for t in sorted({r["task"] for r in items})}
    return out
