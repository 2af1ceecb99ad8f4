"""``econ-eval quickstart``: the README's first command, from a fresh clone to base-vs-tuned results.

Builds the bundle if needed, runs the quick suite ``econlite`` (seeded, stratified subsets of every task's
test split, ``econ_eval/lite.py``; ``--full`` for the full ``econ`` suite) on the base model, then on the CPU
LoRA adapter (the published one, or one trained from its recipe into ``adapters/runs/``, never over the
published adapter), and prints both side by side. Results go to ``results/runs/<system>/`` (git-ignored), never into the published
``results/<system>/``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import config
from .evaluate import EvalSpec, load_results, run_suite, system_name
from .io import DataError, Interrupted

ADAPTER_RECIPE = config.REPO_ROOT / "finetune" / "smollm2-135m-lora.yaml"


def ensure_bundle(log=print) -> None:
    """Build the bundle into ``config.data_dir()`` unless one is there."""
    from .data.build import build_bundle
    from .lm_tasks import bundle_path

    try:
        bundle_path()
        log(f"data bundle found at {config.data_dir()}")
    except DataError:
        build_bundle(config.raw_dir(), config.annotations_dir(), config.data_dir(), log=log)


def fresh_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` ... : the first that does not exist yet."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def tuned_adapter(adapter: Path, recipe: Path, *, train: bool, log=print) -> Path:
    """The adapter to evaluate: ``adapter`` if it is finished and ``train`` is false; otherwise a new one trained
    from ``recipe`` into a fresh folder under ``adapters/runs/`` (nothing existing is overwritten)."""
    if not train and (adapter / "adapter_model.safetensors").is_file():
        log(f"\n== reusing the adapter in {adapter} (pass --train to train one from {recipe})")
        return adapter
    from .finetune.recipe import load_recipe
    from .finetune.train import train as train_adapter

    out = fresh_folder(config.REPO_ROOT / "adapters" / "runs" / adapter.name)
    log(f"\n== training the CPU adapter: {recipe} -> {out} (about 15 min on 2 cores)")
    return train_adapter(load_recipe(recipe, [f"output_dir={out}"]), resume=False)


def quickstart(spec: EvalSpec, *, adapter: Path = config.PUBLISHED_ADAPTER, recipe: Path = ADAPTER_RECIPE,
               train: bool = False, base_only: bool = False, output: Path | None = None,
               sequential: bool = False, log=print) -> str:
    """Run the quickstart; return the side-by-side table (also printed).

    With two or more cores (and not ``sequential``) base and tuned run at the same time on half the threads
    each: measured on 2 cores, two one-thread runs of the quick suite took 133 s where the same two runs
    one after the other on two threads took 214 s (small-batch decoding barely gains from a second
    thread); the scores are the same.
    """
    from .report import format_table

    ensure_bundle(log)
    runs = config.results_dir() / "runs"
    base = replace(spec, output=output or runs / system_name(spec))
    if base_only:
        log(f"\n== base model: {spec.model}")
        return _table(format_table, [(f"{system_name(spec)} (base)", load_results(run_suite(base, log=log)))], log)
    tuned_dir = tuned_adapter(Path(adapter), Path(recipe), train=train, log=log)
    tuned = replace(spec, adapter=str(tuned_dir), system=tuned_dir.name, output=runs / tuned_dir.name)
    names = (f"{system_name(spec)} (base)", f"{tuned_dir.name} (tuned)")
    cores = config.default_threads()
    if sequential or cores < 2:
        log(f"\n== 1/2 base model: {spec.model}")
        columns = [(names[0], load_results(run_suite(base, log=log)))]
        try:
            log(f"\n== 2/2 tuned: {spec.model} + {tuned_dir.name}")
            columns.append((names[1], load_results(run_suite(tuned, log=log))))
        except (Interrupted, KeyboardInterrupt) as exc:
            raise Interrupted(f"{exc or 'interrupted'}; the base model's results are kept in {base.output}") \
                from None
        return _table(format_table, columns, log)
    return _table(format_table, list(zip(names, _side_by_side([base, tuned], cores // 2, log), strict=True)), log)


def _table(format_table, columns, log) -> str:
    table = format_table(columns)
    log("\n" + table)
    return table


def _side_by_side(specs: list[EvalSpec], threads: int, log, poll_s: float = 15.0) -> list[dict]:
    """Run the suites of ``specs`` at once, ``threads`` each, lm_eval's output in a log file per run; print
    each run's progress line as it changes; return their results in order."""
    import concurrent.futures
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S")
    labels = [system_name(s) for s in specs]
    outputs = []
    for s, label in zip(specs, labels, strict=True):
        folder = Path(s.output)
        folder.mkdir(parents=True, exist_ok=True)
        outputs.append(folder / f"lm_eval_{stamp}.log")
    log(f"\n== base and tuned side by side, {threads} thread(s) each (--sequential runs one after the other); "
        "lm_eval's output: " + ", ".join(str(o) for o in outputs))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(specs))
    procs: dict[str, object] = {}
    total = threads * len(specs)
    futures = [pool.submit(run_suite, s, threads=threads, child_output=o, threads_when_alone=total,
                           on_start=lambda p, label=label: procs.__setitem__(label, p),
                           log=lambda m, label=label: log(f"[{label}] {m}"))
               for s, o, label in zip(specs, outputs, labels, strict=True)]
    shown: dict[str, str] = {}
    grown: set[str] = set()
    try:
        while not all(f.done() for f in futures):
            concurrent.futures.wait([f for f in futures if not f.done()], timeout=poll_s,
                                    return_when=concurrent.futures.FIRST_COMPLETED)
            _hand_over_threads(labels, futures, procs, grown, total, log)
            for label, out, f in zip(labels, outputs, futures, strict=True):
                line = _progress_line(out)
                if line and not f.done() and shown.get(label) != line:
                    shown[label] = line
                    log(f"[{label}] {line}")
    except KeyboardInterrupt:
        # the terminal's Ctrl-C reached both lm_eval processes too; let them stop, keep what was filed
        concurrent.futures.wait(futures, timeout=60)
        pool.shutdown(wait=False, cancel_futures=True)
        filed = [str(s.output) for s, f in zip(specs, futures, strict=True)
                 if f.done() and not f.cancelled() and f.exception() is None]
        kept = f"; filed before the interrupt: {', '.join(filed)}" if filed else "; nothing was filed"
        raise Interrupted(f"interrupted{kept} (lm-eval writes results only at the end)") from None
    pool.shutdown()
    errors = [(label, f.exception()) for label, f in zip(labels, futures, strict=True) if f.exception()]
    if errors:
        filed = [str(s.output) for s, f in zip(specs, futures, strict=True) if f.exception() is None]
        kept = f" ({', '.join(filed)} was filed)" if filed else ""
        label, exc = errors[0]
        message = f"{label}: {exc}; its lm_eval output is in {outputs[labels.index(label)]}{kept}"
        try:
            wrapped = type(exc)(message)  # keep the type: the CLI maps DataError etc. to their exit codes
        except Exception:  # noqa: BLE001 - an exception class that needs other arguments
            wrapped = RuntimeError(message)
        raise wrapped from exc
    return [load_results(f.result()) for f in futures]


def _hand_over_threads(labels, futures, procs, grown: set, total: int, log) -> None:
    """Once one run has finished well, the last one still running takes every thread (SIGUSR1; see
    ``econ_eval/lm_eval_cli.py``): on 2 cores it would otherwise finish on one thread with a core idle."""
    import signal

    running = [label for label, f in zip(labels, futures, strict=True) if not f.done()]
    finished_well = any(f.done() and not f.cancelled() and f.exception() is None for f in futures)
    if len(running) != 1 or not finished_well or running[0] in grown or not hasattr(signal, "SIGUSR1"):
        return
    label = running[0]
    proc = procs.get(label)
    if proc is None or proc.poll() is not None:
        return
    grown.add(label)
    proc.send_signal(signal.SIGUSR1)
    log(f"[{label}] the other run finished: {total} threads from here")


def _progress_line(path: Path) -> str:
    """The newest progress-bar state (or line) at the end of an lm_eval log."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in tail.replace("\r", "\n").split("\n") if p.strip()]
    bars = [p for p in parts if "%|" in p]
    return (bars or parts or [""])[-1][:160]


def _cmd_quickstart(args) -> int:
    from .cli_args import eval_spec

    if args.full:
        args.tasks = "econ"
    elif args.tasks == "econlite":
        print("quick suite: econlite (seeded, stratified test subsets; first looks, not leaderboard results). "
              "--full runs the full econ suite.", flush=True)
    quickstart(eval_spec(args), adapter=Path(args.tuned_adapter), recipe=Path(args.recipe), train=args.train,
               base_only=args.base_only, output=Path(args.output) if args.output else None,
               sequential=args.sequential)
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    from .cli_args import add_eval_args

    q = sub.add_parser("quickstart", help="build the bundle if needed, run the suite on the base model and on the "
                       "CPU LoRA adapter (reused or trained), print base vs tuned")
    add_eval_args(q)
    q.add_argument("--tuned-adapter", default=str(config.PUBLISHED_ADAPTER),
                   help="adapter to evaluate as the tuned column; trained from --recipe if missing (default: the "
                   "published CPU LoRA adapter)")
    q.add_argument("--recipe", default=str(ADAPTER_RECIPE),
                   help="recipe that trains --tuned-adapter (default: %(default)s)")
    q.add_argument("--train", action="store_true", help="train a new adapter from --recipe (into adapters/runs/, "
                   "never over the published one) and evaluate that")
    q.add_argument("--base-only", action="store_true", help="evaluate the base model only")
    q.add_argument("--sequential", action="store_true", help="evaluate base, then tuned, each on every thread "
                   "(default with 2+ cores: both at once on half the threads each, lm_eval's output in log files)")
    q.add_argument("--full", action="store_true", help="the full econ suite instead of the quick suite econlite "
                   "(about 30 min per model on 2 cores instead of a few)")
    q.set_defaults(tasks="econlite")
    q.set_defaults(func=_cmd_quickstart)
