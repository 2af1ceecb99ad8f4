"""One place for paths and environment variables.

Every path the project uses is resolved here, so tasks, CLI, tests and training agree:

- ``ECON_EVAL_DATA``        the built bundle (default: ``<checkout>/data/econbench``)
- ``ECON_EVAL_RAW``         raw public sources (default: ``<checkout>/../shared/data/raw``)
- ``ECON_EVAL_ANNOTATIONS`` project annotations (default: ``<checkout>/../shared/data/annotations``)
- ``ECON_EVAL_HOME``        model cache and other downloads (default: ``~/.cache/econ-eval``)
- ``ECON_EVAL_RESULTS``     published results (default: ``<checkout>/results``)
- ``ECON_EVAL_CALIBRATION`` the per-machine batch-size calibrations (default: ``$ECON_EVAL_HOME/calibration.json``)
"""

from __future__ import annotations

import os
from pathlib import Path

#: Version of the bundle layout and split rules. Task YAMLs name the version they expect.
BUNDLE_VERSION = "2.0"

#: The default model everywhere (CLI, recipes, Space, judge server): the embedded one (see models.REGISTRY).
DEFAULT_MODEL = "smollm2-135m"
#: The default seed of every seeded step (bundle split, training, baselines).
DEFAULT_SEED = 1234

#: The checkout this package lives in (``econ_eval/..``).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The published CPU LoRA adapter of the embedded model: quickstart's tuned column and the Space's default.
PUBLISHED_ADAPTER = REPO_ROOT / "adapters" / "smollm2-135m-lora"
#: The lm-eval task folder shipped inside the package (a wheel install has no checkout around it).
PACKAGED_TASKS = Path(__file__).resolve().parent / "lm_eval_tasks"
#: True when running from a checkout (editable install); False for a wheel install, whose default data and
#: results folders are then under the current directory instead of inside site-packages.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "tasks").is_dir()


def _default_root() -> Path:
    return REPO_ROOT if IN_CHECKOUT else Path.cwd()


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Directory of the built benchmark bundle."""
    return _env_path("ECON_EVAL_DATA", _default_root() / "data" / "econbench")


def raw_dir() -> Path:
    """Directory of the raw public sources (``shared/data/raw``)."""
    return _env_path("ECON_EVAL_RAW", _default_root().parent / "shared" / "data" / "raw")


def annotations_dir() -> Path:
    """Directory of the project's annotations (``shared/data/annotations``)."""
    return _env_path("ECON_EVAL_ANNOTATIONS", _default_root().parent / "shared" / "data" / "annotations")


def home_dir() -> Path:
    """Cache directory for converted models and other downloads."""
    return _env_path("ECON_EVAL_HOME", Path.home() / ".cache" / "econ-eval")


def calibration_path() -> Path:
    """The cache of per-machine batch-size calibrations (econ_eval/calibrate.py)."""
    return _env_path("ECON_EVAL_CALIBRATION", home_dir() / "calibration.json")


def results_dir() -> Path:
    """Directory of published results (one folder per evaluated system)."""
    return _env_path("ECON_EVAL_RESULTS", _default_root() / "results")


def tasks_dir() -> Path:
    """The lm-eval ``--include_path`` folder: ``tasks/`` of the checkout, or the copy inside an installed wheel."""
    return REPO_ROOT / "tasks" if IN_CHECKOUT else PACKAGED_TASKS


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask (taskset, cpusets), capped by a cgroup v2 CPU quota
    (``cpu.max``, as container limits set it) — not ``os.cpu_count()``, which counts the whole host."""
    import math
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_threads() -> int:
    """Torch threads for an evaluation: ``$OMP_NUM_THREADS`` when set, else every usable core."""
    import os

    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else usable_cores()


def machine() -> dict:
    """What a run ran on (recorded in every run's system_*.json and in benchmark outputs): CPU model, cores,
    the vector/matrix extensions that change CPU kernels' speed (AVX-512, AMX), torch threads, GPU name."""
    import os
    import platform

    flags, model = set(), platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    info = {"cpu": model, "cores": os.cpu_count(), "avx512": "avx512f" in flags,
            "amx": any(f.startswith("amx") for f in flags), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info



#: ``--dtype fitted`` (the default): bfloat16 where this machine has native bf16 matmuls, else float32
FITTED_DTYPE = "fitted"


def cpu_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively: torch's oneDNN has bf16 kernels for it (x86 AVX-512 BW/VL/DQ
    or AMX, Arm BF16 — the check torch's inductor makes before using them).

    Elsewhere (e.g. an AVX2-only x86 CPU) bf16 is emulated: measured on a 2-core AVX2 EPYC, a 256x576 by
    576x1536 matmul ran ~5x slower in bf16 than in float32, while on the AVX512-BF16 machine it ran ~2.9x faster.
    """
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def native_bf16(device: str | None = None) -> bool:
    """Whether bf16 matmuls run natively where the model runs: on ``device`` ("cpu", "cuda", "cuda:1", ...)
    when given — a CUDA device, or the CPU where :func:`cpu_native_bf16` — else on the best this machine has
    (a CUDA GPU if any)."""
    import torch

    if device is not None and not device.startswith("cuda"):
        return cpu_native_bf16()
    return torch.cuda.is_available() or cpu_native_bf16()


def fitted_dtype(requested: str = FITTED_DTYPE, device: str | None = None) -> tuple[str, str]:
    """The model dtype for ``requested`` on ``device`` (see :func:`native_bf16`) and why: ``(dtype, reason)``.
    An explicit dtype is kept; ``"fitted"`` becomes bfloat16 where :func:`native_bf16` holds, else float32
    (recorded in every run's ``system_*.json`` as ``dtype`` and ``dtype_choice``)."""
    if requested != FITTED_DTYPE:
        return requested, "requested"
    if native_bf16(device):
        return "bfloat16", "fitted: this machine has native bf16 matmuls (oneDNN AVX-512/AMX, or a GPU)"
    return "float32", ("fitted: this CPU has no native bf16 matmuls (no AVX-512/AMX), where bf16 is emulated "
                       "and several times slower than float32")
