"""Run the econ suite through the real ``lm_eval`` command line and file the results.

``run_suite`` builds the exact ``lm_eval`` command a researcher would type (so what we run is what the
README documents), runs it, and moves lm-eval's ``results_*.json`` and ``samples_*.jsonl`` into
``results/<system>/`` next to a ``system.json`` that says what was evaluated. Nothing existing is
overwritten: lm-eval names files by timestamp, and a clash raises instead of replacing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import run_folder, tasks
from .calibrate import FITTED
from .config import (DEFAULT_MODEL, FITTED_DTYPE, REPO_ROOT, default_threads, fitted_dtype, machine, native_bf16,
                     results_dir, tasks_dir)
from .data.build import verify_bundle
from .io import DataError, Interrupted
from .lm_eval_cli import THREADS_WHEN_ALONE_ENV

#: The `econ` group's tasks, and every task under tasks/econ/ (the suite plus those run by name): the registry's.
SUITE_TASKS = tasks.SUITE_TASKS
ALL_TASKS = list(tasks.TASKS)
#: what ``--tasks 'econ_*'`` selects: every task but the quick suite's subsets (``econlite_*``)
WILDCARD_TASKS = [name for name, spec in tasks.TASKS.items() if not spec.lite_of]


#: CPU defaults (benchmarks/eval_throughput.py, 2 cores): bf16 is ~2.9x faster than fp32 on a CPU with native bf16
#: matmuls (AVX-512/AMX; on an AVX2-only CPU it is emulated and several times slower: hence dtype "fitted",
#: config.fitted_dtype), batch 8 beats 1, 16 and 32 there (not on every CPU: hence "fitted"), and the econ-hf
#: backend is faster than hf at the same batch and dtype (results/benchmarks/eval_throughput.json). A full econ
#: run of the base model took 14.5 min before econ-hf's greedy decoder (hf at batch 8: 20.4; at batch 16: 23.0).
#: The published runs used hf at batch 16 (their system_*.json says so); scores move within their standard errors
#: between the settings.
#: "fitted" = the batch size calibrated for the machine the run is on (econ_eval/calibrate.py; cached per machine;
#: a first-look run without a cached calibration uses 8); an integer or lm-eval's "auto" are passed through.
DEFAULT_BATCH_SIZE = "fitted"
DEFAULT_DTYPE = FITTED_DTYPE
#: lm-eval model backends: ``econ-hf`` (econ_eval/hf_prefix_shared.py: hf with prefix-shared log-likelihoods, run
#: through ``python -m econ_eval.lm_eval_cli``) or lm-eval's own ``hf`` (``python -m lm_eval``).
BACKENDS = ("econ-hf", "hf")
DEFAULT_BACKEND = "econ-hf"


@dataclass
class EvalSpec:
    """What to evaluate and how (the documented CPU defaults)."""

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    tasks: str = "econ"
    limit: float | None = None
    batch_size: str = DEFAULT_BATCH_SIZE
    dtype: str = DEFAULT_DTYPE
    backend: str = DEFAULT_BACKEND
    device: str = "cpu"
    chat_template: bool = True
    system: str | None = None
    output: Path | None = None
    extra_args: list[str] = field(default_factory=list)


def is_quick_suite(task_list: str) -> bool:
    """True when the ``--tasks`` value names the quick suite or any of its tasks."""
    from .lite import is_lite

    return any(is_lite(t.strip()) for t in task_list.split(","))


def system_name(spec: EvalSpec) -> str:
    """Folder name for a system: the model's short name, plus the adapter's folder name."""
    if spec.system:
        return spec.system
    base = Path(spec.model).name if os.sep in spec.model else spec.model.replace("/", "__")
    return f"{base}+{Path(spec.adapter).name}" if spec.adapter else base


def lm_eval_command(spec: EvalSpec, pretrained: str, output_path: Path) -> list[str]:
    """The ``lm_eval`` command line for ``spec`` (``econ-hf`` goes through ``econ_eval.lm_eval_cli``)."""
    if spec.backend not in BACKENDS:
        raise ValueError(f"unknown backend {spec.backend!r}; choose one of {', '.join(BACKENDS)}")
    model_args = f"pretrained={pretrained},dtype={spec.dtype}"
    if spec.adapter:
        model_args += f",peft={spec.adapter}"
    entry = "lm_eval" if spec.backend == "hf" else "econ_eval.lm_eval_cli"
    cmd = [sys.executable, "-m", entry, "--model", spec.backend, "--model_args", model_args,
           "--device", spec.device, "--include_path", str(tasks_dir()), "--tasks", spec.tasks,
           "--batch_size", str(spec.batch_size), "--output_path", str(output_path), "--log_samples"]
    if spec.chat_template:
        cmd.append("--apply_chat_template")
    if spec.limit is not None:
        cmd += ["--limit", str(spec.limit)]
    return cmd + list(spec.extra_args)


def _run_child(cmd: list[str], env: dict, staging: Path, dest: Path, output: Path | None = None,
               on_start=None) -> int:
    """Run lm_eval (its output to ``output`` when given, else to this terminal); on Ctrl-C let it stop (it got
    the SIGINT too), then say what was kept. ``on_start(proc)`` is called once it runs.

    A run that may be told to take more threads (``THREADS_WHEN_ALONE_ENV`` set) starts with SIGUSR1
    blocked, so a signal sent before lm_eval has installed its handler waits instead of killing it."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(output.open("w", encoding="utf-8")) if output else None
        grow = THREADS_WHEN_ALONE_ENV in env and hasattr(signal, "SIGUSR1")
        if grow:  # the mask of this thread is what the child starts with
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=sink,
                                    stderr=subprocess.STDOUT if sink else None)
        finally:
            if grow:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if on_start is not None:
            on_start(proc)
        return _wait_child(proc, staging, dest)


def _wait_child(proc: subprocess.Popen, staging: Path, dest: Path) -> int:
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=15)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _remove_staging(staging)
        raise Interrupted(f"interrupted: lm_eval was stopped before it finished; nothing was filed in {dest} "
                          "(lm-eval writes results only at the end) and nothing there was changed") from None


def _remove_staging(staging: Path) -> None:
    """Remove a run's staging folder if it holds nothing (and ``results/tmp`` if that is left empty)."""
    for d in sorted((p for p in staging.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()
    for d in (staging, staging.parent):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def run_suite(spec: EvalSpec, *, log=print, threads: int | None = None, child_output: Path | None = None,
              threads_when_alone: int | None = None, on_start=None) -> Path:
    """Run lm_eval for ``spec``; return the path of the filed ``results_*.json``.

    ``threads`` sets the run's torch threads (default: ``$OMP_NUM_THREADS`` or the usable cores);
    ``child_output`` sends lm_eval's own output to that file instead of this terminal;
    ``threads_when_alone``: the threads the run switches to when sent SIGUSR1 (a run beside it finished);
    ``on_start(proc)`` gets the lm_eval process once it runs.
    """
    from .lm_tasks import bundle_path
    from .models import check_adapter, resolve_model

    verify_bundle(bundle_path())  # a clear error here, not the last line of a traceback from inside lm_eval
    warnings = []
    if spec.adapter:
        check_adapter(spec.adapter, spec.model, warn=lambda m: (warnings.append(m), log(m)))
    pretrained = resolve_model(spec.model)
    name = system_name(spec)
    root = results_dir()
    # --limit runs and quick-suite (econlite) runs are first looks, not results: they go to the git-ignored
    # results/runs/ (the leaderboard refuses them too).
    first_look = spec.limit is not None or is_quick_suite(spec.tasks)
    dest = Path(spec.output) if spec.output else (root / "runs" / name if first_look else root / name)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; pass --output a folder for the results")
    staging = root / "tmp" / f"{name}-{os.getpid()}-{int(time.time())}"
    staging.mkdir(parents=True, exist_ok=True)
    threads = threads or default_threads()
    dtype, dtype_reason = fitted_dtype(spec.dtype, spec.device)
    spec = replace(spec, dtype=dtype)
    if dtype_reason != "requested":
        log(f"dtype {dtype} ({dtype_reason})")
    elif dtype == "bfloat16" and not native_bf16(spec.device):
        warnings.append("bfloat16 on a CPU without native bf16 matmuls (no AVX-512/AMX) is emulated and several "
                        "times slower than float32; --dtype fitted picks float32 here")
        log(warnings[-1])
    batch_choice = None
    if spec.batch_size == FITTED:
        from .calibrate import fitted_batch_size

        batch, batch_choice = fitted_batch_size(pretrained, spec.model, dtype=spec.dtype, backend=spec.backend,
                                                threads=threads, calibrate_if_missing=not first_look, log=log)
        spec = replace(spec, batch_size=str(batch))
        log(f"batch size {batch} ({batch_choice['source']})")
    cmd = lm_eval_command(spec, pretrained, staging)
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    if threads_when_alone and threads_when_alone > threads:
        env[THREADS_WHEN_ALONE_ENV] = str(threads_when_alone)
    else:
        env.pop(THREADS_WHEN_ALONE_ENV, None)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    log("$ " + shlex.join(cmd))
    t0 = time.time()
    returncode = _run_child(cmd, env, staging, dest, child_output, on_start=on_start)
    wall = time.time() - t0
    if returncode != 0:
        _remove_staging(staging)
        kept = f"; its partial output is in {staging}" if staging.is_dir() else ""
        raise RuntimeError(f"lm_eval failed with exit code {returncode}; its output is above{kept}")
    produced = run_folder.results_files(staging, recursive=True)
    if len(produced) != 1:
        raise RuntimeError(f"expected one results_*.json under {staging}, found {produced}")
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for f in sorted(produced[0].parent.iterdir()):
        target = dest / f.name
        if target.exists():
            raise FileExistsError(f"{target} already exists; not overwriting it (results in {staging})")
        shutil.move(str(f), target)
        moved.append(target)
    shutil.rmtree(staging, ignore_errors=True)
    _remove_staging(staging)
    results_file = next(p for p in moved if p.name.startswith("results_"))
    run_folder.write_system(results_file, {
        "system": name, "base_model": spec.model, "pretrained": pretrained, "adapter": spec.adapter,
        "dtype": spec.dtype, "dtype_choice": dtype_reason,
        "batch_size": spec.batch_size, "batch_size_choice": batch_choice,
        "backend": spec.backend, "device": spec.device,
        "chat_template": spec.chat_template, "limit": spec.limit, "tasks": spec.tasks,
        "wall_time_s": round(wall, 1), "command": shlex.join(cmd), "results_file": results_file.name,
        # the run's own threads (lm_eval's process), not this process's
        "machine": {**machine(), "omp_num_threads": env.get("OMP_NUM_THREADS"), "torch_threads": threads,
                    # side by side: the threads it took if the other run finished first (its log says when)
                    **({"threads_when_alone": int(env[THREADS_WHEN_ALONE_ENV])}
                       if THREADS_WHEN_ALONE_ENV in env else {})},
        "warnings": warnings,
    })
    log(f"results filed in {dest} ({wall / 60:.1f} min)")
    return results_file


def load_results(path: Path) -> dict:
    """Read an lm-eval ``results_*.json``."""
    return json.loads(Path(path).read_text())


def _cmd_evaluate(args) -> int:
    from .cli_args import eval_spec
    from .report import format_table

    path = run_suite(eval_spec(args))
    print()
    print(format_table([(path.parent.name, load_results(path))]))
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    from .cli_args import add_eval_args

    e = sub.add_parser("evaluate", help="run the econ suite with lm_eval and file the results")
    add_eval_args(e)
    e.set_defaults(func=_cmd_evaluate)
