"""How long a newcomer's ``make quickstart`` takes: clone this checkout fresh, run it, time it.

Clones the committed HEAD into a new folder beside the checkout (nothing of this checkout is touched; a
warm pip cache is what makes the setup minutes, not the downloads), runs ``make quickstart`` there, and
appends the wall time to ``results/benchmarks/quickstart_time.json`` with its parts: the base and tuned
runs' own wall times (from their ``system_*.json``) and the rest (setup, bundle build, model fetch, the
table) as the difference. The README's quickstart line is generated from that file
(``econ-eval leaderboard build --readme README.md``).

    python benchmarks/quickstart_time.py            # one measurement (about 10 min on 2 cores)
    python benchmarks/quickstart_time.py --keep     # keep the clone for a look at its logs

Run it with nothing else on the machine: the two quick-suite runs share its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from benchmarks._report import short_commit  # noqa: E402
from econ_eval.config import machine, results_dir  # noqa: E402
from econ_eval.io import atomic_write_json  # noqa: E402

#: the time the issue asks of the quickstart on 2 cores with a warm pip cache (minutes)
TARGET_MIN = 10.0


def peak_fp32_gflops() -> float:
    """This CPU's float32 matmul peak now, on every core (``eval_throughput.peak_matmul_gflops``): the same
    2-core VM has measured 88 and 180 GFLOP/s on different days, and a quick-suite run is compute-bound, so a
    wall time means little without the peak it ran at."""
    import torch

    from eval_throughput import peak_matmul_gflops

    torch.set_num_threads(os.cpu_count() or 1)
    return round(peak_matmul_gflops(torch.float32), 1)


def measure(clone: Path) -> dict:
    """Clone HEAD into ``clone``, run ``make quickstart`` there; the measurement (with the CPU's float32 matmul
    peak measured just before and just after it)."""
    commit = short_commit(REPO)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECON_EVAL_", "VIRTUAL_ENV"))}
    log = clone / "quickstart.log"
    peak_before = peak_fp32_gflops()
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.run(["make", "quickstart"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    peak_after = peak_fp32_gflops()
    if code != 0:
        raise SystemExit(f"make quickstart failed with exit code {code}; its output: {log}")
    runs = {}
    for record in sorted((clone / "results" / "runs").glob("*/system_*.json")):
        doc = json.loads(record.read_text())
        runs[doc["system"]] = {"wall_min": round(doc["wall_time_s"] / 60, 2),
                               "threads": doc["machine"].get("torch_threads"), "dtype": doc.get("dtype")}
    longest = max((r["wall_min"] for r in runs.values()), default=0.0)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    m = machine()
    return {"commit": commit, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": round(wall, 1),
            "wall_min": round(wall / 60, 2), "runs": runs, "other_min": round(wall / 60 - longest, 2),
            "peak_rss_gb": round(peak_kb / 2 ** 20, 2), "cpu_count": os.cpu_count(), "machine": platform.processor()
            or platform.machine(), "cpu": m["cpu"], "avx512": m["avx512"], "amx": m["amx"],
            "peak_matmul_gflops_fp32": [peak_before, peak_after], "met": wall / 60 <= TARGET_MIN}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the clone (default: removed after the measurement)")
    ap.add_argument("--output", default=str(results_dir() / "benchmarks" / "quickstart_time.json"))
    args = ap.parse_args(argv)
    clone = REPO.parent / f"quickstart-check-{os.getpid()}"
    try:
        m = measure(clone)
    finally:
        if not args.keep:
            shutil.rmtree(clone, ignore_errors=True)
    out = Path(args.output)
    doc = json.loads(out.read_text()) if out.is_file() else {"target_min": TARGET_MIN, "measurements": []}
    doc["measurements"].append(m)
    doc["command"] = "python benchmarks/quickstart_time.py"  # a fresh clone's make quickstart, warm pip cache
    atomic_write_json(out, doc)
    parts = ", ".join(f"{s} {r['wall_min']:.1f} min" for s, r in m["runs"].items())
    secs = round(m["wall_s"])
    print(f"make quickstart on a fresh clone of {m['commit']}: {secs // 60} min {secs % 60:02d} s "
          f"({parts}, at the same time; setup, bundle, model fetch and table {m['other_min']:.1f} min) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
