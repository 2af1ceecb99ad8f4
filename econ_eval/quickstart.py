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
               train: bool = False, base_only: bool = False, output: Path | None = None, log=print) -> str:
    """Run the quickstart; return the side-by-side table (also printed)."""
    from .report import format_table

    ensure_bundle(log)
    runs = config.results_dir() / "runs"
    base = replace(spec, output=output or runs / system_name(spec))
    log(f"\n== 1/2 base model: {spec.model}")
    columns = [(f"{system_name(spec)} (base)", load_results(run_suite(base, log=log)))]
    if not base_only:
        try:
            tuned_dir = tuned_adapter(Path(adapter), Path(recipe), train=train, log=log)
            tuned = replace(spec, adapter=str(tuned_dir), system=tuned_dir.name, output=runs / tuned_dir.name)
            log(f"\n== 2/2 tuned: {spec.model} + {tuned_dir.name}")
            columns.append((f"{tuned_dir.name} (tuned)", load_results(run_suite(tuned, log=log))))
        except (Interrupted, KeyboardInterrupt) as exc:
            raise Interrupted(f"{exc or 'interrupted'}; the base model's results are kept in {base.output}") \
                from None
    table = format_table(columns)
    log("\n" + table)
    return table


def _cmd_quickstart(args) -> int:
    from .cli_args import eval_spec

    if args.full:
        args.tasks = "econ"
    elif args.tasks == "econlite":
        print("quick suite: econlite (seeded, stratified test subsets; first looks, not leaderboard results). "
              "--full runs the full econ suite.", flush=True)
    quickstart(eval_spec(args), adapter=Path(args.tuned_adapter), recipe=Path(args.recipe), train=args.train,
               base_only=args.base_only, output=Path(args.output) if args.output else None)
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
    q.add_argument("--full", action="store_true", help="the full econ suite instead of the quick suite econlite "
                   "(about 30 min per model on 2 cores instead of a few)")
    q.set_defaults(tasks="econlite")
    q.set_defaults(func=_cmd_quickstart)
