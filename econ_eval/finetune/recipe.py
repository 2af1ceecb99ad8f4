"""Fine-tuning recipes: YAML files parsed by TRL's ``TrlParser`` into three dataclasses.

A recipe is one flat YAML mapping whose keys are the fields of

- :class:`EconArguments`: econ-eval's own keys (``method``, the task ``mixture``, ``loraplus_lr_ratio``, ...);
- TRL's ``ModelConfig``: the base model and the adapter (``model_name_or_path``, ``dtype``, ``lora_r``,
  ``lora_alpha``, ``lora_dropout``, ``lora_target_modules``, ``load_in_4bit``, ``use_bnb_nested_quant`` ...);
- TRL's ``SFTConfig``: everything the trainer takes (``learning_rate``, ``num_train_epochs``, ``max_steps``,
  ``per_device_train_batch_size``, ``max_length``, ``warmup_steps`` (a value below 1 is a ratio), ...).

The trainer receives the parsed ``SFTConfig`` itself: nothing is copied across by hand. ``key=value``
overrides (YAML-typed) apply on top of the file, as TRL scripts take ``--key value`` on top of ``--config``.
A recipe is validated before anything heavy is loaded: an unknown or renamed key, a wrong type or an
impossible value is an error that names the file, the key and the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import tasks
from ..config import DEFAULT_MODEL, DEFAULT_SEED
from ..io import DataError

METHODS = ("lora", "loraplus", "qlora")
SAMPLING_STRATEGIES = ("random", "sequential", "group_by_length", "batch_rebalance")
MIXTURE_TASKS = tuple(tasks.names(trainable=True))
#: What one task of a mixture takes (see EconArguments.mixture).
MIXTURE_KEYS = {"weight", "max_examples", "balance_labels", "max_chars"}

#: Keys of recipes written before the TrlParser recipes, with what replaced them.
RENAMED_KEYS = {
    "base_model": "model_name_or_path",
    "warmup_ratio": "warmup_steps (a value below 1 is a ratio of the total steps)",
    "bnb_4bit_use_double_quant": "use_bnb_nested_quant",
    "bnb_4bit_compute_dtype": "dtype (TRL uses the model dtype as the 4-bit compute dtype)",
    "gradient_checkpointing": "activation_checkpointing",
}


def _default_mixture() -> dict:
    return {t: {"weight": 1.0, "max_examples": 200} for t in MIXTURE_TASKS}


@dataclass
class EconArguments:
    """econ-eval's own recipe keys; everything else is TRL ``ModelConfig`` / ``SFTConfig``."""

    method: str = field(default="lora", metadata={"help": f"one of {METHODS}"})
    mixture: dict = field(default_factory=_default_mixture, metadata={
        "help": "task mixture: {task: {weight: float, max_examples: int, balance_labels: bool, max_chars: int}}"})
    validation: dict | None = field(default=None, metadata={
        "help": "held-out loss set: {task: number of VALIDATION-split rows}; scored every eval_steps"})
    max_examples: int | None = field(default=None, metadata={"help": "total cap after weighting"})
    loraplus_lr_ratio: float = field(default=16.0, metadata={"help": "LoRA+: learning-rate ratio of B to A"})
    torch_threads: int | None = field(default=None, metadata={"help": "torch.set_num_threads before training"})


#: econ-eval's defaults where they differ from TRL's (TRL's defaults are GPU-minded).
DEFAULTS: dict[str, Any] = {
    "model_name_or_path": DEFAULT_MODEL,
    "output_dir": "adapters/runs/smollm2-135m-lora",  # published adapters live in adapters/<name>/
    "use_peft": True,
    "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "lora_target_modules": "all-linear",
    "dtype": "float32",
    "learning_rate": 2e-4, "num_train_epochs": 1.0, "max_steps": -1,
    "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 512,
    # pad each batch to a multiple of this: recurring shapes let the CPU kernels reuse their plans
    # (measured: variable shapes ran at ~60-90 tokens/s, repeated shapes at ~140 fp32 / ~220 bf16)
    "pad_to_multiple_of": 64,
    "train_sampling_strategy": "random",
    "warmup_steps": 0.03, "lr_scheduler_type": "cosine", "weight_decay": 0.0,
    "logging_steps": 5, "save_steps": 50, "save_total_limit": 2,
    "seed": DEFAULT_SEED, "bf16": False, "activation_checkpointing": False,
    "completion_only_loss": True, "report_to": [],
    "dataloader_num_workers": 0, "save_only_model": False,
    "bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": True,
}
#: Keys that do not change what is trained (a run may resume with other values for them).
NOT_TRAINING_KEYS = {"output_dir", "torch_threads", "logging_steps", "save_steps", "save_total_limit", "use_cpu"}


def _dataclass_types():
    from trl import ModelConfig, SFTConfig

    return EconArguments, ModelConfig, SFTConfig


@dataclass
class Recipe:
    """A parsed recipe: econ-eval's keys, TRL's ``ModelConfig`` and the ``SFTConfig`` given to the trainer."""

    econ: EconArguments
    model: Any  # trl.ModelConfig
    training: Any  # trl.SFTConfig
    keys: tuple[str, ...]  # the recipe's keys: defaults + file + overrides
    source: str | None = None

    @property
    def method(self) -> str:
        return self.econ.method

    @property
    def base_model(self) -> str:
        return self.model.model_name_or_path

    @property
    def output_dir(self) -> str:
        return self.training.output_dir

    def to_dict(self) -> dict:
        """The recipe as one flat mapping of its keys (JSON-ready; values as parsed)."""
        out = {}
        for key in self.keys:
            for part in (self.econ, self.model, self.training):
                if hasattr(part, key):
                    value = getattr(part, key)
                    out[key] = value.value if isinstance(value, enum.Enum) else value
                    break
        return out

    def replace(self, **changes) -> Recipe:
        """A copy with some keys changed, validated like a file (e.g. ``recipe.replace(output_dir=...)``)."""
        return validate({**self.to_dict(), **changes}, self.source or "<recipe>", source=self.source)

    def fingerprint(self) -> dict:
        """The keys that determine the trained adapter (a resumed run must have the same)."""
        return {k: v for k, v in sorted(self.to_dict().items()) if k not in NOT_TRAINING_KEYS}


def _allowed(hint) -> tuple[set, bool]:
    """(simple Python types a YAML value may have for a field, whether null is allowed)."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    simple, nullable = set(), False
    for a in args:
        if a is type(None):
            nullable = True
        elif isinstance(a, type) and issubclass(a, enum.Enum):
            simple.add(str)
        elif typing.get_origin(a) in (list, dict) or a in (list, dict, int, float, bool, str):
            simple.add(typing.get_origin(a) or a)
        elif typing.get_origin(a) is typing.Literal:
            simple.add(str)
        else:
            return set(), True  # something unusual: let the dataclass check it
    return simple, nullable


def _check_type(path: str, key: str, value: Any, hint) -> Any:
    simple, nullable = _allowed(hint)
    if not simple:
        return value
    if value is None:
        if nullable or key == "mixture":
            return value
        raise DataError(f"{path}: key {key!r} may not be null")
    if float in simple and isinstance(value, str) and int not in simple:
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool):
        ok = bool in simple
    elif isinstance(value, int):
        ok = int in simple or float in simple
        if ok and int not in simple:
            value = float(value)
    elif isinstance(value, float):
        ok = float in simple
    else:
        ok = any(isinstance(value, t) for t in simple)
    if not ok:
        if list in simple and isinstance(value, str) and key == "lora_target_modules":
            return value  # PEFT takes "all-linear" or a list
        names = " or ".join(sorted({"true/false" if t is bool else t.__name__ for t in simple}))
        raise DataError(f"{path}: key {key!r} must be {names}, got {value!r}")
    return value


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise DataError(f"override {text!r} must look like key=value (e.g. max_steps=10)")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def validate(data: dict, path: str = "<recipe>", *, source: str | None = None) -> Recipe:
    """Parse a recipe mapping with ``TrlParser``; errors name ``path``, the offending key and the fix."""
    from trl import TrlParser

    if not isinstance(data, dict):
        raise DataError(f"{path}: a recipe must be a YAML mapping of keys to values")
    renamed = {k: RENAMED_KEYS[k] for k in data if k in RENAMED_KEYS}
    if renamed:
        fix = "; ".join(f"{old} -> {new}" for old, new in renamed.items())
        raise DataError(f"{path}: renamed key(s) from an older recipe format: {fix}. Rename them in the file "
                        "(recipes now use TRL's ModelConfig / SFTConfig names)")
    classes = _dataclass_types()
    hints = {}
    for cls in classes:
        for name, hint in typing.get_type_hints(cls).items():
            hints.setdefault(name, hint)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise DataError(f"{path}: unknown key(s) {unknown}; a recipe takes econ-eval's keys "
                        f"({', '.join(f.name for f in dataclasses.fields(EconArguments))}) and the fields of TRL's "
                        "ModelConfig and SFTConfig (e.g. lora_r, learning_rate, max_steps)")
    values = {k: _check_type(path, k, v, hints[k]) for k, v in data.items()}
    merged = {**DEFAULTS, **values}
    on_gpu = _cuda()
    merged.setdefault("use_cpu", not on_gpu)
    if merged.get("method") == "qlora":
        if values.get("load_in_4bit") is False:
            raise DataError(f"{path}: method qlora loads the base model in 4-bit; remove load_in_4bit: false")
        merged["load_in_4bit"] = True
        merged.setdefault("optim", "paged_adamw_8bit" if on_gpu else "adamw_torch")
    elif merged.get("load_in_4bit") or merged.get("load_in_8bit"):
        raise DataError(f"{path}: a quantised base model needs method: qlora")
    merged.setdefault("optim", "adamw_torch")
    merged.setdefault("data_seed", merged["seed"])
    parser = TrlParser(classes)
    parser.set_defaults_with_config(**merged)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            econ, model, training = parser.parse_args_into_dataclasses(args=[])
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        raise DataError(f"{path}: {message[-1] if message else 'invalid recipe'}") from None
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    recipe = Recipe(econ, model, training, keys=tuple(merged), source=source)
    _check_values(recipe, path)
    _check_validation(recipe, path)
    return recipe


def _check_values(recipe: Recipe, path: str) -> None:
    econ, model, training = recipe.econ, recipe.model, recipe.training
    if econ.method not in METHODS:
        raise DataError(f"{path}: method must be one of {METHODS}, got {econ.method!r}")
    if training.train_sampling_strategy not in SAMPLING_STRATEGIES:
        raise DataError(f"{path}: train_sampling_strategy must be one of {SAMPLING_STRATEGIES}, "
                        f"got {training.train_sampling_strategy!r}")
    if model.lora_r <= 0 or model.lora_alpha <= 0:
        raise DataError(f"{path}: lora_r and lora_alpha must be positive")
    if not 0 <= model.lora_dropout < 1:
        raise DataError(f"{path}: lora_dropout must be in [0, 1), got {model.lora_dropout}")
    if training.learning_rate <= 0 or econ.loraplus_lr_ratio <= 0:
        raise DataError(f"{path}: learning_rate and loraplus_lr_ratio must be positive")
    if not isinstance(econ.mixture, dict) or not econ.mixture:
        raise DataError(f"{path}: mixture must map task names to {{weight, max_examples}}")
    for task, spec in econ.mixture.items():
        if task not in MIXTURE_TASKS:
            raise DataError(f"{path}: mixture task {task!r} is not trainable; use {MIXTURE_TASKS}")
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - MIXTURE_KEYS:
            raise DataError(f"{path}: mixture.{task} takes only {', '.join(sorted(MIXTURE_KEYS))}")
        if spec.get("max_chars") is not None and (not isinstance(spec["max_chars"], int) or spec["max_chars"] < 50):
            raise DataError(f"{path}: mixture.{task}.max_chars must be an integer >= 50 (characters of the "
                            f"abstract or story kept), got {spec['max_chars']!r}")
        if spec.get("balance_labels") and not tasks.task(task).is_classification:
            classification = [t for t in MIXTURE_TASKS if tasks.task(t).is_classification]
            raise DataError(f"{path}: mixture.{task}.balance_labels applies to {' and '.join(classification)} only")
        if float(spec.get("weight", 1.0)) < 0:
            raise DataError(f"{path}: mixture.{task}.weight must be >= 0")


def _check_validation(recipe: Recipe, path: str) -> None:
    val = recipe.econ.validation
    if val is None:
        return
    if not isinstance(val, dict) or not val:
        raise DataError(f"{path}: validation must map task names to a number of validation rows, e.g. "
                        "{econ_signal: 40}")
    for task, n in val.items():
        if task not in MIXTURE_TASKS:
            raise DataError(f"{path}: validation task {task!r} is not trainable; use {MIXTURE_TASKS}")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise DataError(f"{path}: validation.{task} must be a positive number of rows, got {n!r}")


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file, applying ``key=value`` overrides (YAML-typed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: recipe file not found (recipes live in finetune/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: a recipe must be a YAML mapping of keys to values")
    for text in overrides or []:
        key, value = _parse_override(text)
        data[key] = value
    return validate(data, str(path), source=str(path))
