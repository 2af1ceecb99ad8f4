"""Machine-fitted evaluation defaults: the lm-eval batch size (and thread count) for the CPU a run is on.

The best batch size is a property of the machine, not of the project: on the 2-core AVX-512 machine the
defaults were first tuned on, batch 8 beat 16 and 32; on a CPU with AMX (3x the bf16 matmul peak) batch 32
generated 1.27x faster than 8. So ``--batch-size fitted`` (the default of ``econ-eval evaluate``) runs a
short calibration once per machine — the same backend and dtype on the first test documents of one
log-likelihood task and one generation task, at each candidate batch size — picks the fastest, and caches
the choice in ``$ECON_EVAL_HOME/calibration.json`` (``$ECON_EVAL_CALIBRATION``) under a key naming the CPU, the usable cores, the
thread count, the torch and lm-eval versions, the model, dtype and backend. A later run on the same machine
reads the cache (no cost); any change of the key calibrates again. First-look runs (``--limit``, the quick
suite) never pay for a calibration: without a cached one they use :data:`FALLBACK_BATCH_SIZE`.

Every run records what was chosen and why in its ``system_*.json`` (``batch_size`` and ``batch_size_choice``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import config
from .io import atomic_write_json

#: what "fitted" falls back to when nothing is cached and the run is a first look (the 2-core machine's best)
FALLBACK_BATCH_SIZE = 8
#: batch sizes a calibration tries (batch 1 was 2.5-4x slower than 8 on every machine measured)
CANDIDATES = (8, 16, 32)
#: the calibration workload: first test documents of a log-likelihood task and of a generation task
WORKLOAD = {"econ_classify": 48, "econ_titles": 32}
#: a larger batch must be this much faster to be chosen over a smaller one (run-to-run noise is ~3%)
MARGIN = 0.03
FITTED = "fitted"


def cache_path() -> Path:
    """Where calibrations are cached (one entry per machine key)."""
    return config.calibration_path()


def machine_key(model: str, dtype: str, backend: str, threads: int) -> str:
    """The cache key: what a calibration's result depends on (CPU, usable cores, threads, library versions,
    model, dtype, backend)."""
    import lm_eval
    import torch

    m = config.machine()
    parts = {"cpu": m["cpu"], "usable_cores": config.usable_cores(), "avx512": m["avx512"], "amx": m["amx"],
             "threads": threads, "torch": torch.__version__, "lm_eval": getattr(lm_eval, "__version__", "?"),
             "model": model, "dtype": dtype, "backend": backend}
    return json.dumps(parts, sort_keys=True)


def _read_cache() -> dict:
    path = cache_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # our own cache file: an unreadable one is recalibrated and replaced
    return data if isinstance(data, dict) else {}


def cached(key: str) -> dict | None:
    """The cached calibration for ``key``, or None."""
    entry = _read_cache().get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("batch_size"), int) else None


def choose(seconds: dict[int, float], margin: float = MARGIN) -> int:
    """The batch size to use from measured wall times: the smallest within ``margin`` of the fastest."""
    if not seconds:
        raise ValueError("no measurements to choose a batch size from")
    best = min(seconds.values())
    return min(b for b, s in seconds.items() if s <= best * (1 + margin))


def measure(pretrained: str, *, dtype: str, backend: str, threads: int, candidates=CANDIDATES, workload=None,
            chat_template: bool = True, log=print) -> dict[int, float]:
    """Wall seconds of the calibration workload at each candidate batch size (one model load, one warm-up), on
    ``threads`` torch threads — the count the run itself will get — restored afterwards."""
    import torch
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager, get_task_dict

    from . import hf_prefix_shared
    from lm_eval.models.huggingface import HFLM

    workload = dict(workload or WORKLOAD)
    cls = hf_prefix_shared.PrefixSharedHFLM if backend == "econ-hf" else HFLM
    lm = cls(pretrained=pretrained, dtype=dtype, device="cpu", batch_size=max(candidates))
    tm = TaskManager(include_path=str(config.tasks_dir()), verbosity="ERROR")

    def run(limit_scale: float, batch: int) -> float:
        lm.batch_size_per_gpu = batch
        t = time.perf_counter()
        for task, limit in workload.items():
            evaluate(lm, get_task_dict([task], tm), limit=max(1, int(limit * limit_scale)),
                     apply_chat_template=chat_template, bootstrap_iters=0, verbosity="ERROR")
        return time.perf_counter() - t

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run(0.1, candidates[0])  # warm-up: kernel selection, tokenizer and task caches
        seconds = {}
        for batch in candidates:
            seconds[batch] = round(run(1.0, batch), 2)
            log(f"  batch {batch}: {seconds[batch]:.1f} s")
    finally:
        torch.set_num_threads(before)
    return seconds


def fitted_batch_size(pretrained: str, model: str, *, dtype: str, backend: str, threads: int,
                      calibrate_if_missing: bool, log=print, **measure_kw) -> tuple[int, dict]:
    """The batch size for this machine and why: ``(batch_size, choice record)``.

    Reads the cache; on a miss calibrates (and caches) when ``calibrate_if_missing``, else returns
    :data:`FALLBACK_BATCH_SIZE`. The record goes into the run's ``system_*.json``.
    """
    key = machine_key(model, dtype, backend, threads)
    entry = cached(key)
    if entry is not None:
        return entry["batch_size"], {"requested": FITTED, "source": "cached calibration", **entry}
    if not calibrate_if_missing:
        return FALLBACK_BATCH_SIZE, {"requested": FITTED, "source": "fallback: no calibration cached for this "
                                     "machine and a first-look run does not calibrate (`econ-eval calibrate-batch` does)"}
    log(f"calibrating the batch size for this machine ({threads} threads; cached in {cache_path()}) ...")
    t0 = time.time()
    seconds = measure(pretrained, dtype=dtype, backend=backend, threads=threads, log=log, **measure_kw)
    entry = {"batch_size": choose(seconds), "seconds": {str(b): s for b, s in seconds.items()},
             "workload": dict(measure_kw.get("workload") or WORKLOAD), "calibration_s": round(time.time() - t0, 1),
             "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "key": json.loads(key)}
    data = _read_cache()
    data[key] = entry
    atomic_write_json(cache_path(), data)
    log(f"  chose batch {entry['batch_size']}")
    return entry["batch_size"], {"requested": FITTED, "source": "calibrated now", **entry}


def _cmd_calibrate(args) -> int:
    from .models import resolve_model

    threads = config.default_threads()
    pretrained = resolve_model(args.model)
    dtype, _ = config.fitted_dtype(args.dtype, "cpu")  # calibration runs on the CPU
    key = machine_key(args.model, dtype, args.backend, threads)
    if args.force:
        data = _read_cache()
        if data.pop(key, None) is not None:
            atomic_write_json(cache_path(), data)
    batch, record = fitted_batch_size(pretrained, args.model, dtype=dtype, backend=args.backend,
                                      threads=threads, calibrate_if_missing=True)
    for b, s in record.get("seconds", {}).items():
        print(f"batch {b:>3}: {s:6.1f} s{'   <- chosen' if int(b) == batch else ''}")
    print(f"batch size {batch} for this machine ({record['source']}; {threads} threads); "
          f"`econ-eval evaluate` uses it by default (--batch-size {FITTED}; dtype {dtype})")
    return 0


def add_cli(sub) -> None:
    """`econ-eval calibrate-batch`."""
    from .evaluate import BACKENDS, DEFAULT_BACKEND, DEFAULT_DTYPE

    p = sub.add_parser("calibrate-batch", help="fit the evaluation batch size to this machine (cached; evaluate "
                       "does it on its first full run)")
    p.add_argument("--model", default=config.DEFAULT_MODEL, help="model short name or path (default: %(default)s)")
    p.add_argument("--dtype", default=DEFAULT_DTYPE, help="model dtype (default: %(default)s: bfloat16 "
                   "where the machine has native bf16 matmuls, else float32)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="lm-eval backend (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="measure again even when a calibration is cached")
    p.set_defaults(func=_cmd_calibrate)
