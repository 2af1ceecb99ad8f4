"""Drift and contamination report: how a run's scores on arXiv tasks change with the papers' dates.

Bundle 2.0's arXiv test splits hold papers up to 2019 and papers created 2020-2024. A model that has read
the older abstracts in pre-training may score better on them for the wrong reason; a model whose knowledge
ends at a date may score worse after it. ``econ-eval drift RUN_DIR`` reads a run's logged samples (any run:
an LLM through lm-eval, an API model, a classic baseline), takes each document's ``created`` date (from the
sample, or from the bundle for baselines, which log only document ids) and reports per period:

- each arXiv task's headline and secondary metrics with percentile bootstrap 95% intervals;
- the difference after minus before the cut-off, its bootstrap interval and a two-sided permutation-test
  p-value (period labels shuffled, the metric recomputed);
- for ``econ_titles``: the share of generated titles that reproduce the true title exactly or almost
  exactly (normalised, similarity >= 0.9) — a memorisation signal, not a quality score.

Output: ``drift_<stamp>.json`` beside the run and ``drift_<stamp>.png`` (headline metric by period, with
the interval band and the cut-off marked). The same metric functions as everywhere (``metrics.py``).
"""

from __future__ import annotations

import difflib
import re
import string
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import config, run_folder, tasks
from .io import DataError, atomic_write_json, read_json, read_jsonl
from .metrics import BOOTSTRAP_ITERS, CORPUS_METRICS, bootstrap_interval

DEFAULT_CUTOFF = "2020-01"
#: Near-exact reproduction of a title: normalised similarity at least this (difflib ratio).
NEAR_EXACT = 0.9
DRIFT_SEED = config.DEFAULT_SEED
#: bootstrap resamples and permutations (the metrics module's default; ECON_EVAL_BOOTSTRAP_ITERS overrides)
N_RESAMPLES = BOOTSTRAP_ITERS


def arxiv_tasks() -> list[str]:
    """Registered tasks whose documents are arXiv papers (they carry a ``created`` date)."""
    return [name for name, spec in tasks.TASKS.items()
            if spec.bundle_task in ("econ_classify", "econ_titles", "econ_qa")]


# ----------------------------------------------------------------------------- per-document items
def metric_item(sample: dict, metric: str, spec: tasks.TaskSpec):
    """What the metric aggregates for one sample: lm-eval's logged value, or (gold, prediction) for a run
    that logs only its answers (the classic baselines)."""
    if metric in sample:
        return sample[metric]
    pred = (sample.get("filtered_resps") or [None])[0]
    gold = sample.get("target")
    if spec.is_classification and metric in CORPUS_METRICS:
        return [gold, pred]
    if metric == "acc":
        return float(str(gold) == str(pred))
    return None


def drift_metrics(spec: tasks.TaskSpec, sample: dict) -> list[str]:
    """The metrics a drift report resamples: the headline, and the task's other metrics that are means of
    per-document values (corpus metrics such as MCC or BLEU cost a full recomputation per resample; the
    run's results file has them for the whole test set)."""
    available = [m for m in spec.metrics if metric_item(sample, m, spec) is not None]
    return [m for i, m in enumerate(available) if i == 0 or m not in CORPUS_METRICS]


def aggregate(metric: str, items: Sequence) -> float:
    """A metric over a list of per-document items: a corpus metric, or the mean of per-document values."""
    if metric in CORPUS_METRICS:
        return float(CORPUS_METRICS[metric]([tuple(i) for i in items]))
    return float(np.mean([float(i) for i in items]))


def _normalise_title(text: str) -> str:
    text = re.sub(r"\$[^$]*\$", " ", text or "").lower()
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    return " ".join(text.split())


def title_reproduction(reference: str, generated: str) -> dict[str, float]:
    """Exact (after normalisation) and near-exact (similarity >= NEAR_EXACT) reproduction of a title."""
    ref, gen = _normalise_title(reference), _normalise_title(generated)
    exact = float(bool(ref) and ref == gen)
    near = float(bool(ref) and difflib.SequenceMatcher(None, ref, gen).ratio() >= NEAR_EXACT)
    return {"exact_title_rate": exact, "near_exact_title_rate": near}


# ----------------------------------------------------------------------------- statistics
def permutation_p_value(fn: Callable[[list], float], before: list, after: list, *, n: int, seed: int) -> float | None:
    """Two-sided permutation p-value of ``fn(after) - fn(before)`` (group labels shuffled ``n`` times)."""
    if len(before) < 2 or len(after) < 2 or n < 1:
        return None
    observed = abs(fn(after) - fn(before))
    pooled = before + after
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n):
        order = rng.permutation(len(pooled))
        a = [pooled[i] for i in order[: len(after)]]
        b = [pooled[i] for i in order[len(after):]]
        hits += abs(fn(a) - fn(b)) >= observed - 1e-12
    return (hits + 1) / (n + 1)


def _summary(metric: str, items: list, *, n: int, seed: int) -> dict:
    fn = lambda xs: aggregate(metric, xs)  # noqa: E731
    value = fn(items) if items else None
    ci = bootstrap_interval(fn, items, n=n, seed=seed) if items else None
    return {"value": value, "ci95": list(ci) if ci else None, "n": len(items)}


# ----------------------------------------------------------------------------- the report
def _created_lookup(bundle: Path) -> dict[str, str]:
    """paper id -> creation date of every arXiv test paper of a bundle (all arXiv tasks share the papers)."""
    path = bundle / "econ_classify" / "test.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: not found; the run's samples carry no dates, so drift needs the bundle it was "
                        "scored on (build it with `econ-eval data build` or pass --bundle)")
    return {str(r["paper_id"]): r["created"] for r in read_jsonl(path)}


def _dated_samples(path: Path, bundle: Path) -> list[tuple[str, dict]]:
    """(created date, sample) of every sample; the date from the logged document, else from the bundle
    by paper id (baselines log only ids; QA documents name their paper)."""
    rows = read_jsonl(path)
    lookup = None
    out = []
    for i, s in enumerate(rows, 1):
        doc = s.get("doc") or {}
        created = doc.get("created")
        if not created:
            lookup = lookup if lookup is not None else _created_lookup(bundle)
            paper = str(doc.get("paper_id", doc.get("id")))
            created = lookup.get(paper)
            if created is None:
                raise DataError(f"{path}:{i}: paper {paper!r} is not in {bundle}/econ_classify/test.jsonl; "
                                "pass --bundle the bundle this run was scored on")
        out.append((str(created), s))
    return out


def period_of(created: str, by: str, cutoff: str) -> str:
    """The period label of a date: its year, or ``before``/``after`` the cut-off month."""
    if by == "year":
        return created[:4]
    return "after" if created[:7] >= cutoff else "before"


def drift_report(run_dir: Path, *, cutoff: str = DEFAULT_CUTOFF, by: str = "year", bundle: Path | None = None,
                 resamples: int = N_RESAMPLES, seed: int = DRIFT_SEED, log=print) -> dict:
    """Per-period scores of every arXiv task in the newest run of ``run_dir`` that has one (a later run of other
    tasks, e.g. the finance group, filed into the same folder is passed over; see the module docstring)."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", cutoff):
        raise DataError(f"--cutoff {cutoff!r}: give a month as YYYY-MM (e.g. 2020-01)")
    if by not in ("year", "cutoff"):
        raise DataError(f"--by {by!r}: use 'year' or 'cutoff'")
    run_dir = Path(run_dir)
    files = run_folder.results_files(run_dir)
    with_arxiv = [f for f in files if any(run_folder.samples_file(f, t).is_file() for t in arxiv_tasks())]
    results_file = (with_arxiv or files or [None])[-1]
    if results_file is None:
        raise DataError(f"{run_dir}: no results_*.json here; point drift at a run folder (lm-eval --output_path "
                        "with --log_samples, or results/<system>/)")
    results = read_json(results_file, what="lm-eval results")
    bundle = Path(bundle) if bundle else config.data_dir()
    report = {"run": str(run_dir), "results_file": results_file.name, "cutoff": cutoff, "by": by,
              "resamples": resamples, "seed": seed, "near_exact_threshold": NEAR_EXACT, "tasks": {}}
    bundle_versions = {t: c.get("metadata", {}).get("bundle_version") for t, c in results.get("configs", {}).items()}
    for name in arxiv_tasks():
        path = run_folder.samples_file(results_file, name)
        if not path.is_file():
            continue
        spec = tasks.task(name)
        log(f"  {name}: {path.name}")
        dated = _dated_samples(path, bundle)
        metrics = drift_metrics(spec, dated[0][1] if dated else {})
        items = {m: [(c, metric_item(s, m, spec)) for c, s in dated] for m in metrics}
        if name == "econ_titles":
            for key in ("exact_title_rate", "near_exact_title_rate"):
                items[key] = [(c, title_reproduction(s.get("target", ""), (s.get("filtered_resps") or [""])[0])[key])
                              for c, s in dated]
                metrics.append(key)
        periods = sorted({period_of(c, by, cutoff) for c, _ in dated})
        task_report = {"headline": spec.headline, "bundle_version": bundle_versions.get(name),
                       "documents": len(dated), "periods": periods, "metrics": {}}
        for k, metric in enumerate(metrics):
            fn = lambda xs, m=metric: aggregate(m, xs)  # noqa: E731
            per_period = {}
            for j, p in enumerate(periods):
                chosen = [it for c, it in items[metric] if period_of(c, by, cutoff) == p]
                per_period[p] = _summary(metric, chosen, n=resamples, seed=seed + 97 * k + j)
            before = [it for c, it in items[metric] if c[:7] < cutoff]
            after = [it for c, it in items[metric] if c[:7] >= cutoff]
            entry = {"by_period": per_period,
                     "before": _summary(metric, before, n=resamples, seed=seed + 1),
                     "after": _summary(metric, after, n=resamples, seed=seed + 2)}
            if before and after:
                diff = fn(after) - fn(before)
                rng = np.random.default_rng(seed + 3)
                diffs = []
                for _ in range(resamples):
                    b = [before[i] for i in rng.integers(0, len(before), len(before))]
                    a = [after[i] for i in rng.integers(0, len(after), len(after))]
                    diffs.append(fn(a) - fn(b))
                entry["difference"] = {
                    "after_minus_before": diff,
                    "ci95": [float(x) for x in np.nanpercentile(diffs, [2.5, 97.5])] if resamples >= 2 else None,
                    "p_value": permutation_p_value(fn, before, after, n=resamples, seed=seed + 4)}
            else:
                entry["difference"] = None
            task_report["metrics"][metric] = entry
        if not any(c[:7] >= cutoff for c, _ in dated) or not any(c[:7] < cutoff for c, _ in dated):
            task_report["note"] = f"every document is on one side of {cutoff}: no before/after comparison"
        report["tasks"][name] = task_report
    if not report["tasks"]:
        raise DataError(f"{results_file}: no samples of an arXiv task ({', '.join(arxiv_tasks())}) beside it; "
                        "run lm_eval with --log_samples")
    return report


def plot_drift(report: dict, path: Path) -> Path:
    """PNG: each task's headline metric by period with its 95% band; the cut-off as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["tasks"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.1), squeeze=False)
    for ax, name in zip(axes[0], names):
        t = report["tasks"][name]
        entry = t["metrics"].get(t["headline"])
        if entry is None:
            ax.set_visible(False)
            continue
        periods = t["periods"]
        xs = list(range(len(periods)))
        vals = [entry["by_period"][p]["value"] for p in periods]
        lo = [(entry["by_period"][p]["ci95"] or [v, v])[0] for p, v in zip(periods, vals)]
        hi = [(entry["by_period"][p]["ci95"] or [v, v])[1] for p, v in zip(periods, vals)]
        ax.fill_between(xs, lo, hi, alpha=0.25, label="95% interval")
        ax.plot(xs, vals, marker="o", label=t["headline"])
        if report["by"] == "year":
            cut = report["cutoff"]
            pos = [i for i, p in enumerate(periods) if p >= cut[:4]]
            if pos:
                ax.axvline(pos[0] - 0.5 + int(cut[5:7] != "01"), ls="--", color="grey", label=f"cut-off {cut}")
        ax.set_xticks(xs)
        ax.set_xticklabels(periods, rotation=45, fontsize=7)
        ax.set_title(f"{name}", fontsize=9)
        ax.set_ylabel(t["headline"], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="best")
    fig.suptitle(f"{Path(report['run']).name}: score by {report['by']} of paper creation", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_drift(run_dir: Path, report: dict, stamp: str | None = None) -> tuple[Path, Path]:
    """Write ``drift_<stamp>.json`` and ``drift_<stamp>.png`` into the run folder (never over a file)."""
    stamp = stamp or run_folder.new_stamp()
    json_path = atomic_write_json(Path(run_dir) / f"drift_{stamp}.json", report, overwrite=False)
    png = plot_drift(report, Path(run_dir) / f"drift_{stamp}.png")
    return json_path, png


def format_report(report: dict) -> str:
    """Before/after table of every task's metrics, for the terminal."""
    def fmt(summary):
        if not summary or summary["value"] is None:
            return "—"
        ci = summary["ci95"]
        return f"{summary['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f" n={summary['n']}"

    cut = report["cutoff"]
    lines = [f"{'task':<20}{'metric':<24}{'before ' + cut:<34}{'from ' + cut:<34}{'diff':>8}{'p':>8}"]
    for name, t in report["tasks"].items():
        for metric, e in t["metrics"].items():
            d = e["difference"]
            lines.append(f"{name:<20}{metric:<24}{fmt(e['before']):<34}{fmt(e['after']):<34}"
                         + (f"{d['after_minus_before']:>+8.3f}{d['p_value']:>8.3f}" if d and d["p_value"] is not None
                            else f"{'—':>8}{'—':>8}"))
        if t.get("note"):
            lines.append(f"  ({name}: {t['note']})")
    return "\n".join(lines)


def _cmd_drift(args) -> int:
    report = drift_report(Path(args.run_dir), cutoff=args.cutoff, by=args.by,
                          bundle=Path(args.bundle) if args.bundle else None, resamples=args.resamples)
    print(format_report(report))
    json_path, png = write_drift(Path(args.run_dir), report)
    print(f"\nwrote {json_path}\n      {png}")
    return 0


def add_cli(sub) -> None:
    """The `econ-eval drift` subcommand (``cli.py`` assembles it)."""
    d = sub.add_parser("drift", help="scores by paper date: drift and contamination report of a run",
                       description=__doc__.split("\n\n")[0])
    d.add_argument("run_dir", help="a run folder (results_*.json + samples_*.jsonl), e.g. results/smollm2-135m")
    d.add_argument("--cutoff", default=DEFAULT_CUTOFF,
                   help="YYYY-MM: the model's training cut-off if you know it (default: %(default)s, where bundle "
                        "2.0's newer papers begin)")
    d.add_argument("--by", choices=["year", "cutoff"], default="year",
                   help="periods: calendar years, or just before/after the cut-off (default: %(default)s)")
    d.add_argument("--bundle", help="the bundle the run was scored on, for runs whose samples carry no dates "
                                    "(default: the configured data folder)")
    d.add_argument("--resamples", type=int, default=N_RESAMPLES,
                   help="bootstrap resamples and permutations (default: %(default)s)")
    d.set_defaults(func=_cmd_drift)

