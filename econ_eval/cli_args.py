"""Argument types and option groups shared by several `econ-eval` subcommands (each module adds its own
subcommand with ``add_cli``; ``cli.py`` assembles them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import config


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


def eval_spec(args):
    """The :class:`~econ_eval.evaluate.EvalSpec` of parsed evaluation arguments (see :func:`add_eval_args`)."""
    from .evaluate import EvalSpec

    return EvalSpec(model=args.model, adapter=args.adapter, tasks=args.tasks, limit=args.limit,
                    batch_size=args.batch_size, dtype=args.dtype, backend=args.backend,
                    chat_template=not args.no_chat_template, system=args.system, output=Path(args.output) if args.output else None)


def judge_client(args, *, max_tokens: int = 256):
    """A :class:`~econ_eval.judge.client.ChatClient` from parsed endpoint and call arguments."""
    from .judge.client import ChatClient

    return ChatClient(args.judge_model, base_url=args.judge_base_url, response_format=args.response_format,
                      timeout=args.timeout, retries=args.retries, max_calls=args.max_calls, max_tokens=max_tokens)


def add_judge_endpoint_args(p: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    """--judge-model, --judge-base-url, --timeout."""
    p.add_argument("--judge-model", required=model_required,
                   help="model name at the endpoint (e.g. gpt-4o, or smollm2-135m from `econ-eval serve-judge`)")
    p.add_argument("--judge-base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL or OpenAI); "
                   "key from $OPENAI_API_KEY (not needed for 127.0.0.1)")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="seconds per request (default: %(default)s)")


def add_call_args(p: argparse.ArgumentParser) -> None:
    """--response-format, --concurrency, --retries, --max-calls, --limit of judge-like commands."""
    p.add_argument("--response-format", default="auto", choices=["auto", "json_schema", "json_object", "none"],
                   help="structured output: auto = llama.cpp's json_object+schema on 127.0.0.1, OpenAI's "
                   "json_schema elsewhere; none = strict parsing only (default: %(default)s)")
    p.add_argument("--concurrency", type=positive_int, default=1, help="parallel requests (default: %(default)s)")
    p.add_argument("--retries", type=non_negative_int, default=3,
                   help="retries on timeouts/5xx, exponential backoff (default: %(default)s)")
    p.add_argument("--max-calls", type=positive_int,
                   help="budget: stop cleanly after this many requests (cached replies are free)")
    p.add_argument("--limit", type=positive_int, help="first N samples/items per task only")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """The lm-eval run options shared by `evaluate` and `quickstart`."""
    from .evaluate import BACKENDS, DEFAULT_BACKEND, DEFAULT_BATCH_SIZE, DEFAULT_DTYPE

    p.add_argument("--model", default=config.DEFAULT_MODEL,
                   help="registered short name (smollm2-135m) or any Hugging Face model id/path (default: %(default)s)")
    p.add_argument("--adapter", help="PEFT adapter directory to evaluate on top of --model")
    p.add_argument("--tasks", default="econ", help="lm-eval task or group names (default: %(default)s; econ = the full "
                   "suite, econlite = its quick seeded subsets, econfin = the finance tasks)")
    p.add_argument("--limit", type=positive_float, help="documents per task (smoke test; results go to results/runs/)")
    p.add_argument("--batch-size", default=DEFAULT_BATCH_SIZE, help="lm-eval --batch_size: a number, lm-eval's auto (largest that fits "
                   "in memory: a GPU setting), or fitted (default: the fastest on this machine, from a calibration "
                   "of about 2 min on the first full run, cached; see `econ-eval calibrate-batch`)")
    p.add_argument("--dtype", default=DEFAULT_DTYPE, help="model dtype (default: %(default)s = bfloat16 where the "
                   "machine has native bf16 matmuls (AVX-512/AMX, GPU; ~2.9x faster than float32 there), else float32 "
                   "(bf16 is emulated and several times slower on AVX2-only CPUs); the run's system_*.json records "
                   "the choice. Scores differ slightly between dtypes and batch sizes, so compare systems under "
                   "the same settings)")
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="lm-eval model backend (default: %(default)s = lm-eval's hf backend with shared-prefix "
                   "log-likelihoods and a greedy decoder with continuous batching: the same requests, faster on "
                   "CPUs, ratios in results/benchmarks/eval_throughput.json; hf = lm-eval's own)")
    p.add_argument("--no-chat-template", action="store_true", help="do not pass --apply_chat_template")
    p.add_argument("--system", help="results folder name (default: model short name [+adapter folder name])")
    p.add_argument("--output", help="results folder (default: results/<system>, or results/runs/<system> with --limit)")
