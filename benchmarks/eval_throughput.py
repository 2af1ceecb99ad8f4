"""Evaluation throughput of the embedded model on this machine, measured in one run.

For each request type (log-likelihood: econ_classify + econ_signal + econ_mmlu; generation: econ_qa +
econ_titles) on the same first-N test documents:

- ``lm-eval defaults``: lm-eval's ``hf`` backend with ``--batch_size 1`` and the checkpoint's dtype (float32);
- ``hf, batch 8, bfloat16``: lm-eval's backend at the batch size and dtype of the econ-eval defaults;
- ``econ-eval defaults``: what ``econ-eval evaluate`` uses (``econ-hf``: hf with prefix-shared
  log-likelihoods and the greedy decoder of ``econ_eval/fast_generate.py``, bfloat16, ``--batch_size 8``),
  with the per-request agreement of its answers with ``hf`` — for generation, identical texts against hf at
  batch 8 and batch 1, beside how often hf's own texts change between those two batch sizes; the generation
  comparison with hf at batch 8 runs as ``--gen-pairs`` back-to-back pairs and reports the median ratio;
- the llama.cpp server (Q4_1 GGUF) through lm-eval's ``local-chat-completions`` (generation only:
  chat APIs give no log-likelihoods), with a per-sample score-parity check against the HF backend.

It also estimates the floor on this CPU: the compute bound of prefill (model FLOPs / measured peak
matmul FLOP/s) and the memory-bandwidth bound of single-stream decoding (weight bytes / measured
bandwidth), and reports measured / floor. Prints a table; writes ``results/benchmarks/eval_throughput.json``.

    OMP_NUM_THREADS=2 python benchmarks/eval_throughput.py [--limit-gen 24] [--limit-ll 48] [--gen-pairs 3] [--no-llama]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._report import publish  # noqa: E402
from econ_eval.config import results_dir, tasks_dir  # noqa: E402
from econ_eval.calibrate import FALLBACK_BATCH_SIZE  # noqa: E402
from econ_eval.evaluate import DEFAULT_BACKEND, DEFAULT_DTYPE  # noqa: E402
from econ_eval.config import fitted_dtype, machine  # noqa: E402

#: the default dtype on this machine (bfloat16 where it has native bf16 matmuls, else float32)
DTYPE = fitted_dtype(DEFAULT_DTYPE, "cpu")[0]

#: the batch size every backend is compared at (the 2-core machine's fitted size; see econ_eval/calibrate.py)
DEFAULT_BATCH_SIZE = FALLBACK_BATCH_SIZE

LL_TASKS = ["econ_classify", "econ_signal", "econ_mmlu"]
GEN_TASKS = ["econ_qa", "econ_titles"]
PARITY_TASKS = ["econ_qa", "econ_titles", "econ_classify_gen", "econ_signal_gen"]


def peak_matmul_gflops(dtype, n: int = 1536, reps: int = 6) -> float:
    """Best-of-``reps`` GFLOP/s of an n x n matmul in ``dtype`` (the practical compute peak)."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def memory_bandwidth_gbs(mb: int = 512, reps: int = 5) -> float:
    """Best-of-``reps`` read bandwidth (GB/s) of summing a large float32 tensor."""
    import torch

    x = torch.ones(mb * 2 ** 20 // 4)
    x.sum()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


def model_costs(path: str) -> dict:
    """Parameter counts of the checkpoint: FLOPs per prefill token and bytes of weights per decode step."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    h, layers, inter, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size
    kv = h * cfg.num_key_value_heads // cfg.num_attention_heads
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * inter
    body = layers * per_layer
    return {"params_body": body, "params_lm_head": vocab * h,
            "flops_per_token_body": 2 * body, "flops_per_token_lm_head": 2 * vocab * h}


def _evaluate(lm, tasks, limit, tm):
    from lm_eval import simple_evaluate

    t = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=tasks, limit=limit, task_manager=tm, apply_chat_template=True,
                          log_samples=True, bootstrap_iters=0, verbosity="ERROR")
    return time.perf_counter() - t, out


def _prompt_tokens(out, tok) -> int:
    """Tokens the model must read: each document's context once plus every answer continuation
    (perfect prefix sharing, so this is the least work any backend could do)."""
    n = 0
    for samples in out["samples"].values():
        for s in samples:
            args = s["arguments"]  # in memory: a list of (context, continuation or gen kwargs) tuples
            args = [tuple(a.values()) for a in args.values()] if isinstance(args, dict) else [tuple(a) for a in args]
            n += len(tok(args[0][0])["input_ids"])
            n += sum(len(tok(a[1])["input_ids"]) for a in args if len(a) > 1 and isinstance(a[1], str))
    return n


def _generated_tokens(out, tok) -> int:
    return sum(len(tok(s["resps"][0][0])["input_ids"]) for samples in out["samples"].values() for s in samples
               if s["resps"] and isinstance(s["resps"][0][0], str))


def _per_sample(out, task, metric):
    return {s["doc_id"]: s[metric] for s in out["samples"].get(task, [])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-gen", type=int, default=24, help="documents per generation task (default: %(default)s)")
    ap.add_argument("--limit-ll", type=int, default=48, help="documents per log-likelihood task (default: %(default)s)")
    ap.add_argument("--no-llama", action="store_true", help="skip the llama.cpp backend")
    ap.add_argument("--sweep", default="1,16,32", help="extra batch sizes to time with the default backend and dtype "
                    "(default: %(default)s; empty to skip)")
    ap.add_argument("--gen-pairs", type=int, default=3,
                    help="back-to-back runs of the generation comparison (hf then econ-hf at the same batch and "
                    "dtype, the order alternating); the generation ratio is the median of the pairs' ratios, so a "
                    "shared VM's slow spell falls on both sides (default: %(default)s)")
    ap.add_argument("--output", default=str(results_dir() / "benchmarks" / "eval_throughput.json"))
    args = ap.parse_args(argv)
    if args.gen_pairs < 1:
        ap.error(f"--gen-pairs must be at least 1, not {args.gen_pairs}")

    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    from econ_eval.hf_prefix_shared import PrefixSharedHFLM
    from econ_eval.models import fetch_model

    path = str(fetch_model("smollm2-135m", log=lambda m: None))
    tok = AutoTokenizer.from_pretrained(path)
    tm = TaskManager(include_path=str(tasks_dir()))
    threads = torch.get_num_threads()
    backends = {"hf": HFLM, "econ-hf": PrefixSharedHFLM}
    configs = {"lm-eval defaults (hf, batch 1, float32)": ("hf", dict(batch_size=1, dtype="auto")),
               f"hf, batch {DEFAULT_BATCH_SIZE}, {DTYPE}":
                   ("hf", dict(batch_size=int(DEFAULT_BATCH_SIZE), dtype=DTYPE)),
               f"econ-eval defaults ({DEFAULT_BACKEND}, batch {DEFAULT_BATCH_SIZE}, {DTYPE})":
                   (DEFAULT_BACKEND, dict(batch_size=int(DEFAULT_BATCH_SIZE), dtype=DTYPE))}
    rows, outs, kept = [], {}, {}
    b1, hf8, dflt = list(configs)
    for name, (backend, kw) in configs.items():
        lm = backends[backend](pretrained=path, device="cpu", **kw)
        for kind, tasks, limit in (("loglikelihood", LL_TASKS, args.limit_ll), ("generation", GEN_TASKS, args.limit_gen)):
            print(f"{name}: {kind} on {tasks} x {limit} ...", flush=True)
            wall, out = _evaluate(lm, tasks, limit, tm)
            outs[(name, kind)] = out
            docs = sum(len(v) for v in out["samples"].values())
            gen = _generated_tokens(out, tok) if kind == "generation" else 0
            prompt = _prompt_tokens(out, tok)
            rows.append({"config": name, "kind": kind, "tasks": tasks, "docs": docs, "wall_s": round(wall, 2),
                         "samples_per_s": round(docs / wall, 3), "generated_tokens": gen,
                         "generated_tokens_per_s": round(gen / wall, 2) if gen else None,
                         "prompt_tokens": prompt, "prompt_tokens_per_s": round(prompt / wall, 1)})
        if name in (hf8, dflt):
            kept[name] = lm  # for the generation pairs below
        del lm
    generation_pairs = paired_generation(kept, hf8, dflt, outs,
                                         {r["config"]: r["wall_s"] for r in rows if r["kind"] == "generation"},
                                         args.gen_pairs, args.limit_gen, tm)
    del kept

    sweep = {}
    for bs in [int(x) for x in args.sweep.split(",") if x.strip()]:
        lm = backends[DEFAULT_BACKEND](pretrained=path, device="cpu", batch_size=bs, dtype=DTYPE)
        sweep[bs] = {}
        for kind, tasks, limit in (("loglikelihood", LL_TASKS, args.limit_ll), ("generation", GEN_TASKS, args.limit_gen)):
            print(f"sweep: {DEFAULT_BACKEND} {DTYPE} batch {bs}, {kind} ...", flush=True)
            sweep[bs][f"{kind}_wall_s"] = round(_evaluate(lm, tasks, limit, tm)[0], 2)
        del lm
    sweep[int(DEFAULT_BATCH_SIZE)] = {f"{r['kind']}_wall_s": r["wall_s"] for r in rows if r["config"] == dflt}
    wall = {(r["config"], r["kind"]): r["wall_s"] for r in rows}

    def speedups(before: str) -> dict:
        return {kind: round(wall[(before, kind)] / wall[(dflt, kind)], 2) for kind in ("loglikelihood", "generation")}

    speed = speedups(b1)
    total_b1 = sum(r["wall_s"] for r in rows if r["config"] == b1)
    total_d = sum(r["wall_s"] for r in rows if r["config"] == dflt)

    # agreement of the configurations on the same documents
    agree = {}
    for task in LL_TASKS:
        x, y = (_per_sample(outs[(c, "loglikelihood")], task, "acc") for c in (b1, dflt))
        agree[task] = round(statistics.fmean(float(x[k] == y[k]) for k in x), 3)
    backend_agreement = backend_parity(outs[(hf8, "loglikelihood")], outs[(dflt, "loglikelihood")],
                                       outs[(hf8, "generation")], outs[(dflt, "generation")])
    speedup_vs_hf8 = speedups(hf8)
    speedup_vs_hf8["generation"] = generation_pairs["median_ratio"]
    # how often hf's own greedy texts change with the batch size (bf16 near-ties, left padding): the
    # yardstick for econ-hf's identical-output rate
    print(f"hf, batch 1, {DTYPE}: generation on {GEN_TASKS} x {args.limit_gen} (agreement yardstick) ...",
          flush=True)
    lm = HFLM(pretrained=path, device="cpu", batch_size=1, dtype=DTYPE)
    hf1_gen = _evaluate(lm, GEN_TASKS, args.limit_gen, tm)[1]
    del lm
    generation_agreement = {
        "econ_hf_vs_hf_batch8": identical_generations(outs[(hf8, "generation")], outs[(dflt, "generation")]),
        "econ_hf_vs_hf_batch1": identical_generations(hf1_gen, outs[(dflt, "generation")]),
        "hf_batch1_vs_hf_batch8": identical_generations(hf1_gen, outs[(hf8, "generation")]),
        "scores": {task: {"hf_batch8": _mean_metric(outs[(hf8, "generation")], task, "rougeL"),
                          "hf_batch1": _mean_metric(hf1_gen, task, "rougeL"),
                          "econ_hf": _mean_metric(outs[(dflt, "generation")], task, "rougeL"), "metric": "rougeL"}
                   for task in GEN_TASKS},
        "note": f"identical texts out of the documents ({DTYPE}); in float32 econ-hf's texts equal hf's "
                "(tests/test_fast_generate.py)",
    }

    llama = None
    if not args.no_llama:
        llama = run_llama(path, tm, args.limit_gen, threads, tok)
    # floor
    costs = model_costs(path)
    peak_bf16, peak_fp32 = peak_matmul_gflops(torch.bfloat16), peak_matmul_gflops(torch.float32)
    bw = memory_bandwidth_gbs()
    d_ll = next(r for r in rows if r["config"] == dflt and r["kind"] == "loglikelihood")
    # the least work: the body once over each distinct context and continuation token (prompt_tokens counts
    # them so) and the LM head only where a token is scored (negligible next to the body)
    ll_flops = d_ll["prompt_tokens"] * costs["flops_per_token_body"]
    # the floors of the dtype the defaults run in on this machine (float32 where bf16 is emulated)
    ll_floor_s = ll_flops / ((peak_bf16 if DTYPE == "bfloat16" else peak_fp32) * 1e9)
    weight_bytes = (costs["params_body"] + costs["params_lm_head"]) * (2 if DTYPE == "bfloat16" else 4)
    decode_floor_tps = bw * 1e9 / weight_bytes
    floor = {
        "peak_matmul_gflops_bf16": round(peak_bf16, 1), "peak_matmul_gflops_fp32": round(peak_fp32, 1),
        "memory_bandwidth_gbs": round(bw, 2), **costs,
        "loglikelihood_compute_floor_s": round(ll_floor_s, 2),
        "loglikelihood_measured_over_floor": round(d_ll["wall_s"] / ll_floor_s, 2),
        "decode_bandwidth_floor_tokens_per_s_single_stream": round(decode_floor_tps, 1),
        "floor_dtype": DTYPE,
        "note": f"log-likelihood floor = distinct context + continuation tokens x body FLOPs/token / peak {DTYPE} "
                "matmul FLOP/s (LM head only at scored tokens); decode floor = bandwidth / "
                f"{DTYPE} weight bytes (one stream; batching amortises the weights)",
    }
    if llama:
        floor["llama_cpp_generated_tokens_per_s_incl_prefill"] = llama.get("generated_tokens_per_s_incl_prefill")
    report = {
        "device": platform.processor() or platform.machine(), "machine": machine(), "dtype": DTYPE,
        "cpu_count": os.cpu_count(), "torch_threads": threads,
        "torch": torch.__version__, "rows": rows,
        "speedup_vs_batch1": round(total_b1 / total_d, 2), "speedup_vs_batch1_by_kind": speed,
        "speedup_vs_hf_same_batch_and_dtype": speedup_vs_hf8,
        "hf_config_agreement_acc": agree, "econ_hf_vs_hf_agreement": backend_agreement,
        "generation_agreement": generation_agreement, "generation_pairs": generation_pairs,
        "generation_target": {"econ_hf_over_hf_same_batch_and_dtype": speedup_vs_hf8["generation"], "target": 2.0,
                              "met": speedup_vs_hf8["generation"] >= 2.0},
        "llama_cpp": llama, "floor": floor,
        "batch_size_sweep_defaults": sweep,
    }
    publish(report, args.output, [("config", "config", ""), ("kind", "kind", ""), ("docs", "docs", "d"),
                                  ("wall s", "wall_s", ".1f"), ("samples/s", "samples_per_s", ".2f"),
                                  ("gen tok/s", "generated_tokens_per_s", ".1f"),
                                  ("prompt tok/s", "prompt_tokens_per_s", ".0f")])
    print(f"\nspeedup_vs_batch1 (same docs, total wall): {report['speedup_vs_batch1']}x  by kind: {speed}")
    print(f"econ-hf vs hf at the same batch size and dtype: {speedup_vs_hf8}x faster; "
          f"agreement {json.dumps(backend_agreement)}")
    print(f"generation: identical texts {json.dumps({k: v for k, v in generation_agreement.items() if k != 'note'})}")
    print(f"accuracy agreement lm-eval defaults vs econ-eval defaults per doc: {agree}")
    print(f"{DEFAULT_BACKEND} {DTYPE} batch-size sweep (wall s): {json.dumps(dict(sorted(sweep.items())))}")
    if llama:
        print(f"llama.cpp: {json.dumps({k: v for k, v in llama.items() if k != 'parity'})}")
        print(f"llama.cpp vs HF parity: {json.dumps(llama['parity'])}")
    print(f"floor: {json.dumps(floor)}")
    return 0


def paired_generation(lms: dict, hf8: str, dflt: str, outs: dict, first_walls: dict, pairs: int, limit: int,
                      tm) -> dict:
    """The generation comparison of ``hf8`` (lm-eval's ``hf``) and ``dflt`` (econ-hf) at the same batch and
    dtype as ``pairs`` back-to-back pairs: the first is the table's run, each further pair runs both again
    (econ-hf first in every other pair). The ratio is the median of the pairs' ratios: on a shared VM whose
    speed drifts by 10-30% over minutes, a slow spell then falls on both backends of a pair. Every rerun's
    texts are checked against the first run's."""
    first = {name: outs[(name, "generation")] for name in (hf8, dflt)}
    walls = [{"hf_s": first_walls[hf8], "econ_hf_s": first_walls[dflt]}]
    same = {hf8: 0, dflt: 0}
    for k in range(1, pairs):
        walls.append({})
        for name in ((dflt, hf8) if k % 2 else (hf8, dflt)):
            print(f"generation pair {k + 1}/{pairs}: {name} ...", flush=True)
            wall, out = _evaluate(lms[name], GEN_TASKS, limit, tm)
            walls[-1]["hf_s" if name == hf8 else "econ_hf_s"] = round(wall, 2)
            same[name] += identical_generations(first[name], out)["identical"]
    for w in walls:
        w["ratio"] = round(w["hf_s"] / w["econ_hf_s"], 2)
    docs = sum(len(v) for v in first[dflt]["samples"].values())
    return {"pairs": walls, "median_ratio": round(statistics.median(w["ratio"] for w in walls), 2),
            "reruns_identical_to_first": {"hf": f"{same[hf8]}/{docs * (pairs - 1)}",
                                          "econ_hf": f"{same[dflt]}/{docs * (pairs - 1)}"},
            "note": "generation wall s of lm-eval's hf and econ-hf at the same batch and dtype, run back to back "
                    "(pair 1 is the table's run); the headline generation ratio is the median of the pairs'"}


def backend_parity(ll_hf, ll_fast, gen_hf, gen_fast) -> dict:
    """Per-request agreement of econ-hf with hf: chosen answers and log-likelihoods; identical generations."""
    out = {}
    for task, samples in ll_hf["samples"].items():
        a = sorted(samples, key=lambda s: s["doc_id"])
        b = sorted(ll_fast["samples"][task], key=lambda s: s["doc_id"])
        lls = [[float(r[0][0]) for r in s["resps"]] for s in (*a, *b)]
        pairs = list(zip(lls[:len(a)], lls[len(a):], strict=True))
        out[task] = {"same_choice": round(statistics.fmean(float(x.index(max(x)) == y.index(max(y))) for x, y in pairs), 4),
                     "max_abs_loglik_diff": round(max(abs(p - q) for x, y in pairs for p, q in zip(x, y)), 4),
                     "mean_abs_loglik_diff": round(statistics.fmean(abs(p - q) for x, y in pairs for p, q in zip(x, y)), 4)}
    for task, samples in gen_hf["samples"].items():
        a = {s["doc_id"]: s["resps"][0][0] for s in samples}
        b = {s["doc_id"]: s["resps"][0][0] for s in gen_fast["samples"][task]}
        out[task] = {"identical_generations": round(statistics.fmean(float(a[k] == b[k]) for k in a), 4)}
    return out


def identical_generations(a, b) -> dict:
    """Documents whose generated texts are identical in two runs of the same generation tasks."""
    same = total = 0
    for task, samples in a["samples"].items():
        x = {s["doc_id"]: s["resps"][0][0] for s in samples}
        y = {s["doc_id"]: s["resps"][0][0] for s in b["samples"][task]}
        same += sum(x[k] == y[k] for k in x)
        total += len(x)
    return {"identical": same, "documents": total, "rate": round(same / total, 3) if total else None}


def _mean_metric(out, task, metric):
    values = list(_per_sample(out, task, metric).values())
    return round(statistics.fmean(values), 4) if values else None


def run_llama(path, tm, limit, threads, tok) -> dict:
    """The same generation docs through the llama.cpp server (GGUF) and the HF backend; parity per task."""
    from lm_eval.models.huggingface import HFLM

    from econ_eval.judge.server import llama_server

    out = {}
    with llama_server("smollm2-135m", threads=threads, n_ctx=4096) as server:
        from lm_eval import simple_evaluate

        t = time.perf_counter()
        res = simple_evaluate(model="local-chat-completions",
                              model_args=f"model={server.alias},base_url={server.base_url}/chat/completions,"
                                         "num_concurrent=1,max_retries=2,tokenized_requests=False",
                              tasks=PARITY_TASKS, limit=limit, task_manager=tm, apply_chat_template=True,
                              log_samples=True, bootstrap_iters=0, verbosity="ERROR")
        wall = time.perf_counter() - t
    lm = HFLM(pretrained=path, device="cpu", batch_size=int(DEFAULT_BATCH_SIZE), dtype=DTYPE)
    t = time.perf_counter()
    hf = simple_evaluate(model=lm, tasks=PARITY_TASKS, limit=limit, task_manager=tm, apply_chat_template=True,
                         log_samples=True, bootstrap_iters=0, verbosity="ERROR")
    hf_wall = time.perf_counter() - t
    gen = _generated_tokens(res, tok)
    parity = {}
    for task in PARITY_TASKS:
        metric = "rougeL" if task in ("econ_qa", "econ_titles") else "acc"
        a, b = _per_sample(res, task, metric), _per_sample(hf, task, metric)
        same_text = statistics.fmean(float(x["filtered_resps"][0] == y["filtered_resps"][0])
                                     for x, y in zip(sorted(res["samples"][task], key=lambda s: s["doc_id"]),
                                                     sorted(hf["samples"][task], key=lambda s: s["doc_id"])))
        parity[task] = {"metric": metric, "llama_cpp": round(statistics.fmean(a.values()), 4),
                        "hf_bf16": round(statistics.fmean(b.values()), 4),
                        "identical_outputs": round(same_text, 3)}
    out.update(docs=sum(len(v) for v in res["samples"].values()), wall_s=round(wall, 2),
               hf_wall_s_same_docs=round(hf_wall, 2), generated_tokens=gen,
               generated_tokens_per_s_incl_prefill=round(gen / wall, 1), parity=parity,
               note="llama.cpp serves the Q4_1 GGUF (the HF checkpoint is its dequantised copy run in bf16): "
                    "greedy outputs diverge where the two numerics pick different tokens; requests run one at a time")
    return out


if __name__ == "__main__":
    sys.exit(main())
