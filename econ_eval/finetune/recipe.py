"""Fine-tuning recipes: YAML files with TRL/PEFT key names plus ``method`` and the task mixture.

A recipe is validated before anything heavy is loaded: an unknown key, a wrong type or an impossible
value is an error that names the file, the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .. import tasks
from ..config import DEFAULT_MODEL, DEFAULT_SEED
from ..io import DataError

METHODS = ("lora", "loraplus", "qlora")
SAMPLING_STRATEGIES = ("random", "sequential", "group_by_length", "batch_rebalance")
MIXTURE_TASKS = tuple(tasks.names(trainable=True))


@dataclass
class Recipe:
    """Everything a fine-tuning run needs. Field names follow TRL ``SFTConfig`` / PEFT ``LoraConfig``."""

    base_model: str = DEFAULT_MODEL
    method: str = "lora"
    output_dir: str = "adapters/runs/smollm2-135m-lora"  # published adapters live in adapters/<name>/
    # task mixture: {task: {weight: float, max_examples: int, balance_labels: bool}}
    mixture: dict = field(default_factory=lambda: {t: {"weight": 1.0, "max_examples": 200} for t in MIXTURE_TASKS})
    max_examples: int | None = None  # total cap after weighting
    # PEFT
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: Any = "all-linear"
    loraplus_lr_ratio: float = 16.0
    # TRL / Trainer
    learning_rate: float = 2e-4
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    # pad each batch to a multiple of this: recurring shapes let the CPU kernels reuse their plans
    # (measured: variable shapes ran at ~60-90 tokens/s, repeated shapes at ~140 fp32 / ~220 bf16)
    pad_to_multiple_of: int | None = 64
    # "group_by_length" batches rows of similar length (less padding); "random" is the Trainer default
    train_sampling_strategy: str = "random"
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    logging_steps: int = 5
    save_steps: int = 50
    save_total_limit: int = 2
    seed: int = DEFAULT_SEED
    bf16: bool = False
    gradient_checkpointing: bool = False
    torch_threads: int | None = None
    dtype: str = "float32"
    # QLoRA
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: str = "bfloat16"
    optim: str | None = None  # e.g. paged_adamw_8bit for qlora
    # where the recipe came from (filled in by load_recipe)
    source: str | None = None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_TYPES = {f.name: f.type for f in fields(Recipe)}


def _check_type(path: str, key: str, value: Any) -> Any:
    expected = _TYPES[key]
    if value is None:
        if "None" in str(expected) or key in ("mixture",):
            return value
        raise DataError(f"{path}: key {key!r} may not be null")
    if expected in ("int", int) or str(expected) in ("int", "int | None"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{path}: key {key!r} must be an integer, got {value!r}")
    elif str(expected) in ("float",):
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{path}: key {key!r} must be a number, got {value!r}")
        value = float(value)
    elif str(expected) == "bool" and not isinstance(value, bool):
        raise DataError(f"{path}: key {key!r} must be true or false, got {value!r}")
    elif str(expected) in ("str", "str | None") and not isinstance(value, str):
        raise DataError(f"{path}: key {key!r} must be a string, got {value!r}")
    return value


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise DataError(f"override {text!r} must look like key=value (e.g. max_steps=10)")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def validate(data: dict, path: str = "<recipe>") -> Recipe:
    """Build a :class:`Recipe` from a mapping, with errors naming ``path`` and the offending key."""
    if not isinstance(data, dict):
        raise DataError(f"{path}: a recipe must be a YAML mapping of keys to values")
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise DataError(f"{path}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(_TYPES))}")
    values = {k: _check_type(path, k, v) for k, v in data.items()}
    recipe = Recipe(**values)
    if recipe.method not in METHODS:
        raise DataError(f"{path}: method must be one of {METHODS}, got {recipe.method!r}")
    if recipe.train_sampling_strategy not in SAMPLING_STRATEGIES:
        raise DataError(f"{path}: train_sampling_strategy must be one of {SAMPLING_STRATEGIES}, "
                        f"got {recipe.train_sampling_strategy!r}")
    if recipe.lora_r <= 0 or recipe.lora_alpha <= 0:
        raise DataError(f"{path}: lora_r and lora_alpha must be positive")
    if not 0 <= recipe.lora_dropout < 1:
        raise DataError(f"{path}: lora_dropout must be in [0, 1), got {recipe.lora_dropout}")
    if recipe.learning_rate <= 0 or recipe.loraplus_lr_ratio <= 0:
        raise DataError(f"{path}: learning_rate and loraplus_lr_ratio must be positive")
    if not isinstance(recipe.mixture, dict) or not recipe.mixture:
        raise DataError(f"{path}: mixture must map task names to {{weight, max_examples}}")
    for task, spec in recipe.mixture.items():
        if task not in MIXTURE_TASKS:
            raise DataError(f"{path}: mixture task {task!r} is not trainable; use {MIXTURE_TASKS}")
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - {"weight", "max_examples", "balance_labels"}:
            raise DataError(f"{path}: mixture.{task} takes only 'weight', 'max_examples' and 'balance_labels'")
        if spec.get("balance_labels") and not tasks.task(task).is_classification:
            classification = [t for t in MIXTURE_TASKS if tasks.task(t).is_classification]
            raise DataError(f"{path}: mixture.{task}.balance_labels applies to {' and '.join(classification)} only")
        if float(spec.get("weight", 1.0)) < 0:
            raise DataError(f"{path}: mixture.{task}.weight must be >= 0")
    return recipe


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file, applying ``key=value`` overrides (YAML-typed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: recipe file not found (recipes live in finetune/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from exc
    for text in overrides or []:
        key, value = _parse_override(text)
        data[key] = value
    recipe = validate(data, str(path))
    recipe.source = str(path)
    return recipe
