"""Judge throughput against the local llama.cpp server at concurrency 1, 2 and 4, in one run.

Scores the first ``--samples`` logged econ_qa samples of the published base run with the embedded
judge (``qa_correctness``), each concurrency level with a fresh cache so every sample costs a call.
llama-cpp-python's server answers one request at a time (started with ``--interrupt_requests false``,
concurrent requests queue), so concurrency can only overlap client/HTTP work with generation.

    OMP_NUM_THREADS=2 python benchmarks/judge_throughput.py [--samples 12] [--threads 2]

Writes ``results/benchmarks/judge_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._report import publish  # noqa: E402
from econ_eval.config import results_dir  # noqa: E402
from econ_eval.judge.client import ChatClient, ReplyCache  # noqa: E402
from econ_eval.judge.run import judge_run  # noqa: E402
from econ_eval.judge.server import llama_server  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=12, help="econ_qa samples to judge (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or os.cpu_count()))
    ap.add_argument("--run", default=str(results_dir() / "smollm2-135m"), help="run folder with logged samples")
    ap.add_argument("--output", default=str(results_dir() / "benchmarks" / "judge_throughput.json"))
    args = ap.parse_args(argv)
    src = sorted(Path(args.run).glob("samples_econ_qa_*.jsonl"))[-1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, llama_server("smollm2-135m", threads=args.threads) as server:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / src.name).write_text("\n".join(src.read_text().splitlines()[:args.samples]) + "\n")
        for conc in (1, 2, 4):
            cache = ReplyCache(Path(tmp) / f"cache-{conc}.sqlite")
            client = ChatClient(server.alias, base_url=server.base_url, cache=cache, max_tokens=96)
            t = time.perf_counter()
            report = json.loads(judge_run(run, client, concurrency=conc, progress=False, log=lambda m: None).read_text())
            wall = time.perf_counter() - t
            qa = report["results"]["econ_qa/qa_correctness"]
            rows.append({"concurrency": conc, "samples": qa["n"], "scored": qa["n_scored"], "calls": report["calls_made"],
                         "wall_s": round(wall, 2), "samples_per_s": round(qa["n"] / wall, 3),
                         "mean_score": qa["mean"]})
            # second pass: all from the cache
            t = time.perf_counter()
            again = json.loads(judge_run(run, ChatClient(server.alias, base_url=server.base_url, cache=cache),
                                         concurrency=conc, progress=False, log=lambda m: None).read_text())
            rows[-1]["cached_rerun_calls"] = again["calls_made"]
            rows[-1]["cached_rerun_wall_s"] = round(time.perf_counter() - t, 2)
        shutil.rmtree(run)
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["speedup_vs_concurrency_1"] = round(r["samples_per_s"] / base, 2)
    report = {"judge": "smollm2-135m (llama.cpp server, Q4_1 GGUF)", "server_threads": args.threads,
              "samples_file": src.name, "rows": rows}
    publish(report, args.output, [("concurrency", "concurrency", "d"), ("samples/s", "samples_per_s", ".3f"),
                                  ("speedup", "speedup_vs_concurrency_1", ".2f"), ("scored", "scored", "d"),
                                  ("wall s", "wall_s", ".1f"), ("cached rerun calls", "cached_rerun_calls", "d")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
