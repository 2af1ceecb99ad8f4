"""``econ-eval space export OUT``: a self-contained Hugging Face Space folder.

OUT holds everything the Space needs and nothing of the checkout's state: ``app.py`` (with a module-level
``demo``), ``README.md`` with validated Space metadata, ``requirements.txt`` pinned to the versions the
tests ran with, the ``econ_eval`` package, the adapter (without checkpoints or pickles), the leaderboard
and its plot, and ``space_examples.jsonl`` (test examples per task, so the Compare tab works without the
raw data). It is written to a temporary sibling and renamed into place; an existing non-empty OUT is
never touched.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from .. import config
from ..models import check_adapter
from ..io import DataError, atomic_write_json, atomic_write_jsonl, atomic_write_text

#: Space metadata rules of the Hugging Face Hub (the fields we use).
SPACE_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
SHORT_DESCRIPTION_MAX = 60
#: Adapter files a Space needs (no checkpoints, no pickled training arguments).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md", "loss_curve.png",
                 "econ_eval_training.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
#: The app reads which adapter to serve from this file when it is present (written by the export).
SPACE_CONFIG = "space_config.json"


def front_matter(readme: Path) -> dict:
    """The YAML front matter of a Space README."""
    text = readme.read_text(encoding="utf-8")
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if not m:
        raise DataError(f"{readme}: no YAML front matter (--- ... ---) with the Space metadata")
    meta = yaml.safe_load(m.group(1))
    if not isinstance(meta, dict):
        raise DataError(f"{readme}: the front matter is not a YAML mapping")
    return meta


def validate_space_metadata(meta: dict, source: str = "README.md") -> None:
    """Raise :class:`DataError` naming the field when the metadata would be refused by the Hub."""
    for key in ("title", "sdk", "app_file"):
        if not meta.get(key):
            raise DataError(f"{source}: Space metadata field {key!r} is missing")
    if meta["sdk"] == "gradio" and not meta.get("sdk_version"):
        raise DataError(f"{source}: field 'sdk_version' is required for a gradio Space")
    short = meta.get("short_description", "")
    if len(short) > SHORT_DESCRIPTION_MAX:
        raise DataError(f"{source}: field 'short_description' has {len(short)} characters; the Hub allows "
                        f"{SHORT_DESCRIPTION_MAX}: {short!r}")
    for key in ("colorFrom", "colorTo"):
        if key in meta and meta[key] not in SPACE_COLORS:
            raise DataError(f"{source}: field {key!r} must be one of {sorted(SPACE_COLORS)}, got {meta[key]!r}")


def pinned_requirements(requirements: Path, constraints: Path) -> str:
    """``requirements`` with each bare package pinned to its version in ``constraints`` (when listed there)."""
    pins = {}
    for line in constraints.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_canonical(name)] = version.strip()
    out = []
    for line in requirements.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)", line)
        if line.startswith("#") or not m or "==" in line or _canonical(m.group(1)) not in pins:
            out.append(line)
        else:
            out.append(f"{m.group(1)}=={pins[_canonical(m.group(1))]}")
    return "\n".join(out) + "\n"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def export_space(out: Path, *, adapter: Path | None = None, examples_per_task: int = 20, log=print) -> Path:
    """Write the Space folder ``out`` (see the module docstring); return it."""
    from .. import space

    out = Path(out)
    repo = config.REPO_ROOT
    adapter = Path(adapter) if adapter else config.PUBLISHED_ADAPTER
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not an empty folder; refusing to overwrite it. Pass a new folder")
    check_adapter(adapter, config.DEFAULT_MODEL)  # a missing config or truncated weights is named here
    readme = repo / "demo" / "README.md"
    validate_space_metadata(front_matter(readme), str(readme))
    leaderboard = config.results_dir() / "leaderboard.json"
    if not leaderboard.is_file():
        raise DataError(f"{leaderboard}: not found; build it with `econ-eval leaderboard build`")

    tmp = out.with_name(f".{out.name}.exporting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shutil.copy2(repo / "demo" / "app.py", tmp / "app.py")
        shutil.copy2(readme, tmp / "README.md")
        atomic_write_text(tmp / "requirements.txt",
                          pinned_requirements(repo / "demo" / "requirements.txt", repo / "constraints.txt"))
        shutil.copytree(repo / "econ_eval", tmp / "econ_eval",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        dest = tmp / "adapters" / adapter.name
        dest.mkdir(parents=True)
        for name in ADAPTER_FILES:
            if (adapter / name).is_file():
                shutil.copy2(adapter / name, dest / name)
        atomic_write_json(tmp / SPACE_CONFIG, {"adapter": f"adapters/{adapter.name}"})
        (tmp / "results" / "plots").mkdir(parents=True)
        shutil.copy2(leaderboard, tmp / "results" / "leaderboard.json")
        plot = config.results_dir() / "plots" / "leaderboard.png"
        if plot.is_file():
            shutil.copy2(plot, tmp / "results" / "plots" / "leaderboard.png")
        rows = []
        for task in dict.fromkeys(space.DEMO_TASKS.values()):
            rows += [{"task": task, "doc": doc} for doc in space.load_examples(task, examples_per_task)]
        atomic_write_jsonl(tmp / space.EXAMPLES_FILE, rows)
        if out.exists():  # an empty folder (checked above)
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"Space written to {out} ({sum(1 for _ in out.rglob('*') if _.is_file())} files); run it with "
        f"`pip install -r {out}/requirements.txt && python {out}/app.py`, or push the folder to a Space")
    return out


def _cmd_space_export(args) -> int:
    export_space(Path(args.out), adapter=Path(args.adapter) if args.adapter else None,
                 examples_per_task=args.examples)
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    from ..cli_args import positive_int

    sp = sub.add_parser("space", help="the Gradio Space").add_subparsers(dest="space_cmd", required=True)
    se = sp.add_parser("export", help="write a self-contained Hugging Face Space folder (app, metadata, "
                       "requirements, package, adapter, leaderboard, examples)")
    se.add_argument("out", help="a new (or empty) folder")
    se.add_argument("--adapter", help="adapter to serve (default: adapters/smollm2-135m-lora)")
    se.add_argument("--examples", type=positive_int, default=20, help="test examples per task (default: %(default)s)")
    se.set_defaults(func=_cmd_space_export)
