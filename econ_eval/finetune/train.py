"""Supervised fine-tuning with TRL ``SFTTrainer``: LoRA, LoRA+ and QLoRA adapters.

- ``lora``: PEFT LoRA on the recipe's target modules.
- ``loraplus``: the same adapter trained with PEFT's ``create_loraplus_optimizer`` (B matrices get
  ``loraplus_lr_ratio`` x the learning rate of A), passed to the trainer as ``optimizers=``.
- ``qlora``: the base model loaded in 4-bit nf4 with double quantisation and bf16 compute through
  bitsandbytes, a paged 8-bit optimizer on GPU. On CPU (bitsandbytes >= 0.49) it trains, but slower and
  less accurately than fp32 LoRA; the model is never run for inference before training, because a
  no-grad forward repacks the 4-bit weights and later gradients come out wrong (see DESIGN.md).

Output: a PEFT adapter directory (``adapter_model.safetensors``) with a model card, a loss curve PNG and
``econ_eval_training.json``; loadable with ``lm_eval --model hf --model_args pretrained=BASE,peft=DIR``.
A rerun resumes from the last checkpoint in the output directory.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import native_bf16
from ..io import DataError, atomic_write_json, atomic_write_text
from .data import mixture_rows, validation_rows
from .recipe import Recipe, load_recipe

TRAINING_RECORD = "econ_eval_training.json"
#: Written into the output folder when a run starts: marks the folder as an unfinished run of a recipe.
RUN_MARKER = "econ_eval_run.json"


def recipe_fingerprint(recipe: Recipe) -> dict:
    """The recipe keys that determine the trained adapter (a resumed run must have the same)."""
    return recipe.fingerprint()


def prepare_output_dir(out: Path, recipe: Recipe, *, resume: bool) -> bool:
    """Check that training may write into ``out``; return True to resume from its last checkpoint.

    Never overwrites what it did not make: a folder holding a finished adapter, or anything that is not an
    unfinished run of this project, is refused with an error that says what to do. With ``resume=False``
    an unfinished run of ours (checkpoints + :data:`RUN_MARKER`) is cleared and started again.
    """
    import shutil

    from ..io import read_json

    flag = "pick another folder with --output-dir DIR (or output_dir=DIR)"
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; {flag}")
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if (out / TRAINING_RECORD).is_file() or (out / "adapter_model.safetensors").is_file():
        raise DataError(f"{out}: holds a finished adapter; refusing to overwrite it. To train again, {flag}")
    marker = out / RUN_MARKER
    if not marker.is_file():
        raise DataError(f"{out}: folder is not empty and is not an unfinished econ-eval run; refusing to write "
                        f"into it. {flag[0].upper()}{flag[1:]}")
    checkpoints = sorted(out.glob("checkpoint-*"))
    if not resume or not checkpoints:
        for p in checkpoints:
            shutil.rmtree(p)
        marker.unlink()
        return False
    previous = read_json(marker, what="run marker").get("recipe", {})
    current = recipe_fingerprint(recipe)
    changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
    if changed:
        diff = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed[:6])
        raise DataError(f"{out}: holds checkpoints of an unfinished run with a different recipe ({diff}); "
                        f"resuming would mix the two. Pass --no-resume to discard those checkpoints and start "
                        f"again in this folder, or {flag}")
    return True


def _throughput_callback():
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        """Adds tokens/s and examples seen to the trainer's logs (and so to its progress output)."""

        def __init__(self):
            self.t0 = None
            self.tokens0 = 0
            self.elapsed_by_step: dict[int, float] = {}

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()
            self.tokens0 = state.num_input_tokens_seen or 0

        def on_log(self, args, state, control, logs=None, **kw):
            if logs is not None and self.t0:
                elapsed = max(time.time() - self.t0, 1e-6)
                logs["tokens_per_second"] = round(((state.num_input_tokens_seen or 0) - self.tokens0) / elapsed, 1)
                logs["elapsed_s"] = round(elapsed, 1)
                # the trainer copied `logs` into log_history before calling us: keep our own record too
                self.elapsed_by_step[state.global_step] = round(elapsed, 1)

    return Throughput()


def _load_model(recipe: Recipe, base: str, on_gpu: bool):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, recipe.model.dtype or "float32")
    if recipe.method != "qlora":
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("method: qlora needs bitsandbytes (pip install bitsandbytes)") from exc
    from peft import prepare_model_for_kbit_training
    from trl import get_quantization_config

    # TRL's own mapping: 4-bit nf4 (bnb_4bit_quant_type), double quantisation (use_bnb_nested_quant),
    # compute dtype = the model dtype
    quant = get_quantization_config(recipe.model)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, quantization_config=quant, dtype=dtype,
                                                     device_map={"": 0} if on_gpu else {"": "cpu"})
    except Exception as exc:  # noqa: BLE001 - report what bitsandbytes said, with the fix
        raise RuntimeError(f"bitsandbytes could not load {base} in 4-bit on this device ({exc}); "
                           "use method: lora on this machine, or run the QLoRA recipe on a GPU") from exc
    # NOTE: no generate()/eval forward here: it would repack the 4-bit weights (wrong gradients after).
    return prepare_model_for_kbit_training(model,
                                           use_gradient_checkpointing=recipe.training.activation_checkpointing)


def peft_model(recipe: Recipe, model):
    """Wrap ``model`` in the recipe's LoRA adapter (TRL's ``get_peft_config``), initialised from the recipe's seed.

    The trainer seeds itself only after the adapter exists: without this seed the LoRA A matrices came from
    whatever state the global RNG was in, so two runs of one recipe could start from different adapters.
    """
    from peft import get_peft_model
    from transformers import set_seed
    from trl import get_peft_config

    set_seed(recipe.training.seed)
    return get_peft_model(model, get_peft_config(recipe.model))


def train(recipe: Recipe, *, bundle: Path | None = None, resume: bool = True, log=print,
          callbacks: list | None = None) -> Path:
    """Train the recipe's adapter; return the adapter directory.

    ``resume``: continue an unfinished run of the same recipe in the output folder (see
    :func:`prepare_output_dir`); ``callbacks``: extra ``transformers.TrainerCallback`` objects.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    from ..lm_tasks import bundle_path
    from ..models import resolve_model

    if recipe.econ.torch_threads:
        torch.set_num_threads(recipe.econ.torch_threads)
    from ..data.build import verify_bundle

    bundle = Path(bundle) if bundle else bundle_path()
    manifest = verify_bundle(bundle)  # the training rows must be the bundle's, byte for byte
    out = Path(recipe.output_dir)
    do_resume = prepare_output_dir(out, recipe, resume=resume)
    on_gpu = torch.cuda.is_available()
    base = resolve_model(recipe.base_model)

    rows = mixture_rows(bundle, recipe)
    if not rows:
        raise DataError(f"{recipe.source}: the mixture selects no training rows")
    tasks_count = {}
    for r in rows:
        tasks_count[r["task"]] = tasks_count.get(r["task"], 0) + 1
    def as_dataset(examples: list[dict]):
        return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in examples])

    dataset = as_dataset(rows)
    log(f"training rows: {len(rows)} {tasks_count}")
    held_out = validation_rows(bundle, recipe)
    eval_dataset = as_dataset(held_out) if held_out else None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RUN_MARKER, {"recipe": recipe_fingerprint(recipe), "source": recipe.source,
                                         "bundle_version": manifest["bundle_version"]})

    tok = AutoTokenizer.from_pretrained(base)
    model = peft_model(recipe, _load_model(recipe, base, on_gpu))
    trainable, total = model.get_nb_trainable_parameters()
    log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")

    args = recipe.training  # TRL's SFTConfig, parsed from the recipe: the trainer takes it as it is
    if args.bf16 and not on_gpu and not native_bf16():
        log("warning: the recipe sets bf16: true, but this CPU has no native bf16 matmuls (no AVX-512/AMX): "
            "autocast runs them emulated, several times slower than float32; set bf16: false in the recipe "
            "(a different adapter numerically) for speed here")
    args.include_num_input_tokens_seen = "non_padding"  # for the tokens/s record (argparse cannot parse it)
    if eval_dataset is not None and args.eval_strategy == "no":
        # a validation set without a schedule: score it every eval_steps (default: every logging_steps x 5)
        args.eval_strategy = "steps"
        args.eval_steps = args.eval_steps or args.logging_steps * 5
    optimizers = (None, None)
    if recipe.method == "loraplus":
        from peft.optimizers import create_loraplus_optimizer

        optimizers = (create_loraplus_optimizer(model, torch.optim.AdamW, lr=args.learning_rate,
                                                loraplus_lr_ratio=recipe.econ.loraplus_lr_ratio,
                                                weight_decay=args.weight_decay), None)
    throughput = _throughput_callback()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset, processing_class=tok,
                         optimizers=optimizers, callbacks=[throughput, *(callbacks or [])])
    last = get_last_checkpoint(str(out)) if do_resume else None
    if last:
        log(f"resuming from {last}")
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    if eval_dataset is not None and not any(h.get("step") == trainer.state.global_step and "eval_loss" in h
                                            for h in trainer.state.log_history):
        trainer.evaluate()  # the final adapter's validation loss (the schedule may have stopped short of it)
    wall = time.time() - t0
    trainer.save_model(str(out))

    history = [h for h in trainer.state.log_history if "loss" in h]
    val_history = [{"step": h["step"], "loss": h["eval_loss"], "elapsed_s": throughput.elapsed_by_step.get(h["step"])}
                   for h in trainer.state.log_history if "eval_loss" in h]
    tokens = trainer.state.num_input_tokens_seen or 0
    record = {
        "method": recipe.method, "base_model": recipe.base_model, "base_path": base,
        "recipe": recipe.to_dict(), "bundle_version": manifest["bundle_version"],
        "examples": len(rows), "examples_per_task": tasks_count, "examples_seen": trainer.state.global_step
        * args.per_device_train_batch_size * args.gradient_accumulation_steps,
        "steps": trainer.state.global_step, "resumed_from": last, "wall_time_s": round(wall, 1),
        "tokens_seen": int(tokens), "tokens_per_second": round(tokens / wall, 1) if wall > 0 and not last else None,
        "final_loss": history[-1]["loss"] if history else None, "train_loss": result.training_loss,
        "loss_history": [{"step": h["step"], "loss": h["loss"], "elapsed_s": throughput.elapsed_by_step.get(h["step"])}
                         for h in history],
        "validation": {"rows": len(held_out), "per_task": dict(recipe.econ.validation or {})} if held_out else None,
        "validation_loss_history": val_history,
        "final_validation_loss": val_history[-1]["loss"] if val_history else None,
        "device": "cuda" if on_gpu else "cpu", "torch_threads": torch.get_num_threads(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(out / TRAINING_RECORD, record)
    (out / RUN_MARKER).unlink(missing_ok=True)  # finished: no longer an unfinished run
    plot_loss(record["loss_history"], out / "loss_curve.png", title=f"{recipe.method} on {recipe.base_model}",
              validation=val_history)
    write_model_card(out, record)
    log(f"adapter saved to {out} ({wall / 60:.1f} min, {record['tokens_per_second']} tokens/s, "
        f"final loss {record['final_loss']})")
    return out


def plot_loss(history: list[dict], path: Path, title: str, validation: list[dict] | None = None) -> None:
    """Loss-curve PNG of a training history (and of the held-out validation loss, when there is one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label="training")
    if validation:
        ax.plot([h["step"] for h in validation], [h["loss"] for h in validation], marker="o", label="validation")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (completion tokens)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_model_card(out: Path, record: dict, eval_table: str | None = None) -> None:
    """The adapter's README.md model card (rewritten with eval results once they exist)."""
    r = record["recipe"]
    lines = [
        "---", f"base_model: {record['base_model']}", "library_name: peft",
        "tags: [econ-eval, lora, economics]", "---",
        f"# econ-eval {record['method']} adapter for {record['base_model']}", "",
        "Trained with `econ-eval finetune` (TRL SFTTrainer, loss on the completion only) on the TRAIN splits "
        "of the econ-eval bundle, with the same prompts the lm-eval tasks use.", "",
        "| | |", "|---|---|",
        f"| base model | `{record['base_model']}` |",
        f"| method | {record['method']} (r {r['lora_r']}, alpha {r['lora_alpha']}, dropout {r['lora_dropout']}, "
        f"targets {r['lora_target_modules']}{', LoRA+ ratio ' + str(r['loraplus_lr_ratio']) if record['method'] == 'loraplus' else ''}) |",
        f"| recipe | `{r.get('source')}` |",
        f"| data bundle | {record['bundle_version']} — {record['examples']} examples {record['examples_per_task']} |",
        f"| steps / examples seen | {record['steps']} / {record['examples_seen']} |",
        f"| wall time | {record['wall_time_s'] / 60:.1f} min on {record['device']} ({record['torch_threads']} threads) |",
        f"| tokens/s | {record['tokens_per_second']} |",
        f"| final loss | training {_fmt_loss(record['final_loss'])}"
        + (f", validation {record['final_validation_loss']:.4f} ({record['validation']['rows']} held-out rows)"
           if record.get("final_validation_loss") is not None else
           ", validation not measured (the recipe had no `validation` set)") + " |",
        f"| data mix | {_mix_text(r)} |", "",
        "![loss curve](loss_curve.png)", "",
        "Evaluate: `lm_eval --model hf --model_args pretrained=BASE,peft=THIS_DIR --include_path tasks "
        "--tasks econ --apply_chat_template` (or `econ-eval evaluate --adapter THIS_DIR`).",
    ]
    if eval_table:
        lines += ["", "## Evaluation", "", eval_table]
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")


#: what a published adapter folder holds (no checkpoints, optimizer state or pickled trainer arguments)
PUBLISHED_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md", TRAINING_RECORD, "loss_curve.png",
                   "chat_template.jinja", "tokenizer.json", "tokenizer_config.json")


def publish_adapter(run: Path, dest: Path) -> Path:
    """Copy a finished training run's adapter to ``dest`` for publishing: LoRA weights stored in bf16 (half the
    size; evaluation runs in bf16), model card, record, loss curve and tokenizer files only. Refuses an
    existing ``dest`` (nothing is overwritten) and an unfinished run."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    run, dest = Path(run), Path(dest)
    if not (run / TRAINING_RECORD).is_file() or not (run / "adapter_model.safetensors").is_file():
        raise DataError(f"{run}: not a finished training run (no {TRAINING_RECORD} / adapter_model.safetensors)")
    if dest.exists():
        raise DataError(f"{dest}: already exists; refusing to overwrite it. Pick another destination or move it")
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in PUBLISHED_FILES:
        if name == "adapter_model.safetensors":
            weights = load_file(run / name)
            save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
                      tmp / name, metadata={"format": "pt"})
        elif (run / name).is_file():
            shutil.copy2(run / name, tmp / name)
    tmp.rename(dest)  # the folder appears complete or not at all
    return dest


def update_model_card(adapter: Path, results_file: Path, base_results_file: Path | None = None) -> Path:
    """Rewrite an adapter's model card with its evaluation table (generated from lm-eval results files: the
    adapter's, beside the base model's when given), so the card's numbers come from ``results/``."""
    from ..io import read_json
    from ..report import format_table

    adapter = Path(adapter)
    record_path = adapter / TRAINING_RECORD
    if not record_path.is_file():
        raise DataError(f"{record_path}: not found; the model card is built from the training record")
    record = read_json(record_path, what="training record")
    columns = []
    if base_results_file:
        columns.append((f"{record['base_model']} (base)", read_json(Path(base_results_file), what="results file")))
    columns.append((f"{adapter.name} (tuned)", read_json(Path(results_file), what="results file")))
    table = format_table(columns)
    scored_on = sorted({str(c.get("metadata", {}).get("bundle_version"))
                        for c in columns[-1][1].get("configs", {}).values() if c.get("metadata")})
    note = (f"From `{Path(results_file).as_posix()}`" + (f" and `{Path(base_results_file).as_posix()}`"
                                                         if base_results_file else "")
            + f" (test splits of bundle {', '.join(scored_on) or '?'}; trained on bundle {record['bundle_version']}'s "
              "train split; ± bootstrap standard error).")
    write_model_card(adapter, record, eval_table=note + "\n\n" + table)
    return adapter / "README.md"


def _fmt_loss(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _mix_text(recipe: dict) -> str:
    """The recipe's mixture in words, for the model card."""
    parts = []
    for task, spec in (recipe.get("mixture") or {}).items():
        spec = spec or {}
        bits = [f"weight {spec.get('weight', 1)}"]
        if spec.get("max_examples") is not None:
            bits.append(f"≤ {spec['max_examples']} examples")
        if spec.get("balance_labels"):
            bits.append("labels balanced")
        if spec.get("max_chars"):
            bits.append(f"text clipped to {spec['max_chars']} chars")
        parts.append(f"{task} ({', '.join(bits)})")
    return "; ".join(parts)


def _cmd_finetune(args) -> int:
    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    recipe = load_recipe(args.recipe, overrides)
    out = train(recipe, resume=not args.no_resume)
    print(f"adapter: {out}\nevaluate it with: econ-eval evaluate --model {recipe.base_model} --adapter {out}")
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    ft = sub.add_parser("finetune", help="train a LoRA / LoRA+ / QLoRA adapter from a recipe")
    ft.add_argument("recipe", help="recipe YAML (see finetune/)")
    ft.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=20 learning_rate=1e-4")
    ft.add_argument("--output-dir", help="adapter directory (default: the recipe's output_dir)")
    ft.add_argument("--no-resume", action="store_true", help="ignore checkpoints in the output directory")
    ft.set_defaults(func=_cmd_finetune)
    pub = sub.add_parser("publish-adapter", help="copy a finished run's adapter for publishing (bf16 weights, "
                         "card, record, loss curve; no checkpoints or optimizer state)")
    pub.add_argument("run", help="finished training run folder (e.g. adapters/runs/NAME)")
    pub.add_argument("dest", help="new folder to create (e.g. adapters/NAME); never overwritten")
    pub.set_defaults(func=lambda a: print(publish_adapter(Path(a.run), Path(a.dest))) or 0)
    card = sub.add_parser("card", help="rewrite an adapter's model card with its evaluation table from results files")
    card.add_argument("adapter", help="adapter folder (with econ_eval_training.json)")
    card.add_argument("--results", required=True, help="the adapter's lm-eval results_*.json")
    card.add_argument("--base-results", help="the base model's results_*.json, shown beside it")
    card.set_defaults(func=lambda a: print(update_model_card(Path(a.adapter), Path(a.results),
                                                             Path(a.base_results) if a.base_results else None)) or 0)
