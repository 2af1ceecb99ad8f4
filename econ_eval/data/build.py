"""Build the versioned benchmark bundle ``data/econbench/`` from the raw sources and annotations.

Rules (see DESIGN.md):

- arXiv papers come from two sources normalised into one paper list: the 2019 snapshot
  (``arxiv_econ_qfin``, econ and q-fin papers up to 2019) and ``arxiv_econ_2020_2024`` (econ-primary papers
  created 2020-2024); a paper listed twice (same title and abstract) is kept once, the earlier one.
- They are split ONCE, by paper, for every arXiv task: a paper in a test or validation split never appears
  in a train split of any task. Bundle 2.0 keeps bundle 1.0's split of the 2019 papers unchanged
  (test = 350 econ papers stratified over econ.EM / GN / TH, q-fin.EC counting as econ.GN; validation =
  150 more) and adds 350 test and 150 validation papers created 2020-2024, the same number from each year,
  stratified by class within a year; everything else is train. So every 1.0 test paper is a 2.0 test paper
  and no 1.0 train or validation paper is in 2.0 test. ``--split temporal`` takes the newest 700 papers of
  both sources as test and the next newest 300 as validation instead.
- ``econ_titles`` train is enriched with q-fin papers whose primary is not econ (they are in no
  test split). QA pairs follow their paper.
- Reuters signals follow the ModApte LEWISSPLIT; validation is carved from train (stratified).
- MMLU: dev (few-shot pool) -> train, val -> validation, test -> test.
- Sentence tasks (FOMC stance, Financial PhraseBank sentiment): one row per distinct sentence, split by
  sentence with seeded stratified draws (FOMC: by label and source; FPB: by label and agreement level).

Builds are deterministic: ordering uses sha256 of (seed, id), files are written with sorted keys,
and ``MANIFEST.json`` carries no timestamp, so two builds give byte-identical files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable

from .. import config
from ..config import BUNDLE_VERSION, DEFAULT_SEED
from ..io import DataError, atomic_write_json, atomic_write_jsonl, read_json, sha256_file
from ..tasks import bundle_folders
from . import sources
from .sources import CLASS_OF_PRIMARY, ECON_LABELS

TASK_DIRS = bundle_folders()  # every folder a registered task reads
SPLITS = ["train", "validation", "test"]
N_TEST_PAPERS = 350  # papers up to 2019: bundle 1.0's test split
N_VALIDATION_PAPERS = 150
N_RECENT_TEST_PAPERS = 350  # papers created 2020-2024, the same number from each year
N_RECENT_VALIDATION_PAPERS = 150
N_SIGNAL_VALIDATION = 250
#: sentence tasks: (test, validation) sizes. FOMC: about 20% / 10% of 2,122 sentences (the authors use
#: 80/20 splits); FPB: FinBen's 970 test / 776 validation.
SENTENCE_SPLITS = {"econ_fomc": (425, 212), "econ_fpb": (970, 776), "econ_headlines": (300, 150),
                   "econ_fiqasa": (220, 110), "econ_tatqa": (50, 20)}
#: (econ_headlines counts headlines: each becomes one yes/no question per label type, 7 a headline;
#: econ_fiqasa counts texts: each becomes one document per annotated target, about 235 test documents, like
#: PIXIU's 235-row FiQA-SA test set; econ_tatqa counts contexts (a table and its paragraphs, ~6 questions
#: each): test is a seeded subset of the gold-labelled test file, sized for CPU (the file has 277 contexts,
#: 1,663 questions), validation and train come from the dev file)


def _order_key(seed: int, ident) -> str:
    return hashlib.sha256(f"{seed}:{ident}".encode()).hexdigest()


def _allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder proportional allocation of ``total`` over classes with ``counts``."""
    n = sum(counts.values())
    if total > n:
        raise DataError(f"cannot draw {total} papers from only {n}")
    exact = {k: total * v / n for k, v in counts.items()}
    alloc = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - alloc[k]), k))[: total - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def split_econ_papers(labels: dict[str, str], created: dict[str, str], *, mode: str, seed: int,
                      n_test: int = N_TEST_PAPERS, n_val: int = N_VALIDATION_PAPERS) -> dict[str, str]:
    """Assign each econ paper to train/validation/test.

    ``random``: stratified by label (proportional allocation, hash order within a class).
    ``temporal``: newest ``n_test`` papers are test, the next ``n_val`` validation.
    """
    ids = sorted(labels)
    if mode == "random":
        by_class: dict[str, list[str]] = {}
        for pid in ids:
            by_class.setdefault(labels[pid], []).append(pid)
        counts = {k: len(v) for k, v in by_class.items()}
        test_alloc = _allocate(counts, n_test)
        rest = {k: counts[k] - test_alloc[k] for k in counts}
        val_alloc = _allocate(rest, n_val)
        assignment = {}
        for label, members in by_class.items():
            members = sorted(members, key=lambda p: _order_key(seed, p))
            for i, pid in enumerate(members):
                if i < test_alloc[label]:
                    assignment[pid] = "test"
                elif i < test_alloc[label] + val_alloc[label]:
                    assignment[pid] = "validation"
                else:
                    assignment[pid] = "train"
        return assignment
    if mode == "temporal":
        newest_first = sorted(ids, key=lambda p: (created[p], p), reverse=True)
        return {pid: ("test" if i < n_test else "validation" if i < n_test + n_val else "train")
                for i, pid in enumerate(newest_first)}
    raise DataError(f"unknown split mode {mode!r}; use 'random' or 'temporal'")


def _equal_shares(keys: list[str], total: int) -> dict[str, int]:
    """``total`` split as evenly as possible over ``keys``; the remainder goes to the latest keys."""
    if not keys:
        return {}
    base, extra = divmod(total, len(keys))
    return {k: base + (1 if i >= len(keys) - extra else 0) for i, k in enumerate(keys)}


def split_recent_papers(labels: dict[str, str], created: dict[str, str], *, seed: int,
                        n_test: int = N_RECENT_TEST_PAPERS, n_val: int = N_RECENT_VALIDATION_PAPERS) -> dict[str, str]:
    """Assign the 2020-2024 papers to train/validation/test: each year gets the same share of the test and
    validation papers (largest remainder), stratified by label within the year, hash order within a cell."""
    by_year: dict[str, list[str]] = {}
    for pid in sorted(labels):
        by_year.setdefault(created[pid][:4], []).append(pid)
    test_per_year, val_per_year = _equal_shares(sorted(by_year), n_test), _equal_shares(sorted(by_year), n_val)
    assignment = {}
    for year, ids in by_year.items():
        year_labels = {pid: labels[pid] for pid in ids}
        try:
            assignment.update(split_econ_papers(year_labels, created, mode="random", seed=seed,
                                                n_test=test_per_year[year], n_val=val_per_year[year]))
        except DataError as exc:
            raise DataError(f"papers created in {year}: {exc}; lower n_recent_test_papers / "
                            "n_recent_validation_papers") from None
    return assignment


def merge_papers(snapshot: dict[str, sources.Paper], recent: dict[str, sources.Paper]) -> tuple[dict, list[str]]:
    """One paper list from both arXiv sources: the 2019 snapshot's papers, then every 2020-2024 paper that is
    not the same paper again (same normalised title and abstract, e.g. resubmitted under a new id: the
    earlier one is kept). Returns (papers by id, ids dropped as duplicates)."""
    def key(p: sources.Paper) -> tuple[str, str]:
        return " ".join(p.title.lower().split()), " ".join(p.abstract.lower().split())

    papers = dict(snapshot)
    seen = {key(p): pid for pid, p in snapshot.items()}
    dropped = []
    for pid, p in sorted(recent.items(), key=lambda kv: (kv[1].created, kv[0])):
        if pid in papers:
            raise DataError(f"paper {pid} is in both arXiv sources; SOURCE.md says no id is in both: re-copy them")
        if key(p) in seen:
            dropped.append(pid)
            continue
        seen[key(p)] = pid
        papers[pid] = p
    return dict(sorted(papers.items())), sorted(dropped)


def _paper_fields(p: sources.Paper) -> dict:
    return {"paper_id": p.paper_id, "title": p.title, "abstract": p.abstract,
            "primary_cat": p.primary_cat, "created": p.created}


def build_arxiv_tasks(papers: dict[str, sources.Paper], qa: list[dict], *, mode: str, seed: int,
                      n_test: int = N_TEST_PAPERS, n_val: int = N_VALIDATION_PAPERS,
                      recent: dict[str, sources.Paper] | None = None, n_recent_test: int = N_RECENT_TEST_PAPERS,
                      n_recent_val: int = N_RECENT_VALIDATION_PAPERS) -> dict:
    """Rows of econ_classify, econ_titles and econ_qa per split, split by paper.

    ``papers``: the 2019 snapshot (split exactly as bundle 1.0 split it); ``recent``: the 2020-2024 papers
    (see :func:`split_recent_papers`). With ``mode="temporal"`` all econ papers are split by date instead.
    """
    recent = recent or {}
    econ = {pid: p for pid, p in papers.items() if p.primary_cat in CLASS_OF_PRIMARY}
    recent_econ = {pid: p for pid, p in recent.items() if p.primary_cat in CLASS_OF_PRIMARY}
    labels = {pid: CLASS_OF_PRIMARY[p.primary_cat] for pid, p in {**econ, **recent_econ}.items()}
    created = {pid: p.created for pid, p in {**econ, **recent_econ}.items()}
    if mode == "temporal":
        split_of = split_econ_papers(labels, created, mode=mode, seed=seed, n_test=n_test + n_recent_test,
                                     n_val=n_val + n_recent_val)
    else:
        split_of = split_econ_papers({pid: labels[pid] for pid in econ}, created, mode=mode, seed=seed,
                                     n_test=n_test, n_val=n_val)
        split_of.update(split_recent_papers({pid: labels[pid] for pid in recent_econ}, created, seed=seed,
                                            n_test=n_recent_test, n_val=n_recent_val))
    econ = {**econ, **recent_econ}

    tasks = {t: {s: [] for s in SPLITS} for t in ("econ_classify", "econ_titles", "econ_qa")}
    for pid, p in econ.items():
        row = {**_paper_fields(p), "label": labels[pid]}
        tasks["econ_classify"][split_of[pid]].append(row)
        tasks["econ_titles"][split_of[pid]].append({**row, "source": "econ"})
    # q-fin papers with a non-econ primary: extra title-generation training data, in no test split.
    for pid, p in papers.items():
        if pid not in econ and p.primary_cat.startswith("q-fin."):
            tasks["econ_titles"]["train"].append({**_paper_fields(p), "label": None, "source": "q-fin"})
    n_by_paper = Counter()
    every = {**papers, **recent}
    for q in qa:
        pid = q["paper_id"]
        if pid not in econ:
            raise DataError(f"arxiv_econ_qa.jsonl:{q['line']}: paper {pid} has primary "
                            f"{every[pid].primary_cat}, not an econ category; QA must be about econ papers")
        n_by_paper[pid] += 1
        p = every[pid]
        tasks["econ_qa"][split_of[pid]].append({
            "qa_id": f"{pid}#{n_by_paper[pid]}", "paper_id": pid, "title": p.title, "abstract": p.abstract,
            "question": q["question"], "answer": q["answer"], "evidence": q["evidence"], "type": q["type"],
            "label": labels[pid],
        })
    for t in tasks.values():
        for s in SPLITS:
            key = "qa_id" if "qa_id" in (t[s][0] if t[s] else {}) else "paper_id"
            t[s].sort(key=lambda r: r[key])
    return tasks


def build_signal_task(stories: dict[int, dict], labels: list[dict], *, seed: int,
                      n_val: int = N_SIGNAL_VALIDATION) -> dict:
    """Rows of econ_signal per split: ModApte LEWISSPLIT, stratified validation carved from train."""
    rows = {"TRAIN": [], "TEST": []}
    for lab in labels:
        s = stories[int(lab["newid"])]
        rows[s["lewissplit"]].append({
            "newid": s["newid"], "date": s["date"], "title": s["title"], "text": s["text"],
            "topics": s["topics"], "signal": int(lab["signal"]), "landmark": int(lab.get("landmark", 0)),
            "reason": lab.get("reason", ""),
        })
    train = sorted(rows["TRAIN"], key=lambda r: r["newid"])
    val_alloc = _allocate(Counter(r["signal"] for r in train), n_val)
    val_ids = set()
    for label, n in val_alloc.items():
        members = sorted((r["newid"] for r in train if r["signal"] == label), key=lambda i: _order_key(seed, i))
        val_ids.update(members[:n])
    return {
        "train": [r for r in train if r["newid"] not in val_ids],
        "validation": [r for r in train if r["newid"] in val_ids],
        "test": sorted(rows["TEST"], key=lambda r: r["newid"]),
    }


def split_sentences(rows: list[dict], strata: Callable[[dict], tuple], *, prefix: str, seed: int,
                    n_test: int, n_val: int) -> dict:
    """Rows of a sentence task per split: each row gets ``id`` = prefix + sha256 of its text; test and
    validation are drawn proportionally from every stratum (largest remainder), in seeded hash order."""
    by_stratum: dict[tuple, list[dict]] = {}
    for r in rows:
        r = {"id": f"{prefix}-{hashlib.sha256(r['text'].encode()).hexdigest()[:12]}", **r}
        by_stratum.setdefault(strata(r), []).append(r)
    counts = {k: len(v) for k, v in by_stratum.items()}
    test_alloc = _allocate(counts, n_test)
    val_alloc = _allocate({k: counts[k] - test_alloc[k] for k in counts}, n_val)
    out = {s: [] for s in SPLITS}
    for key, members in by_stratum.items():
        members.sort(key=lambda r: _order_key(seed, r["id"]))
        out["test"] += members[: test_alloc[key]]
        out["validation"] += members[test_alloc[key]: test_alloc[key] + val_alloc[key]]
        out["train"] += members[test_alloc[key] + val_alloc[key]:]
    return {s: sorted(v, key=lambda r: r["id"]) for s, v in out.items()}


def headline_questions(rows: list[dict]) -> list[dict]:
    """FinBen's framing of the gold-news headlines: one yes/no question per headline and label type."""
    out = []
    for r in rows:
        for label_type, question in sources.HEADLINE_QUESTIONS:
            out.append({"id": f"{r['id']}-{label_type}", "headline_id": r["id"], "text": r["text"],
                        "label_type": label_type, "question": question, "label": r["labels"][label_type],
                        "price_sentiment": r["price_sentiment"]})
    return out


def fiqa_documents(rows: list[dict]) -> list[dict]:
    """One FiQA-SA document per annotated target of each text (a headline can name two companies with
    different sentiment): the text is split as a whole, so its targets never straddle splits."""
    return [{"id": f"{r['id']}-{k}", "text_id": r["id"], "source_id": r["source_id"], "type": r["type"],
             "text": r["text"], **a} for r in rows for k, a in enumerate(r["annotations"])]


def split_tatqa(test_contexts: list[dict], dev_contexts: list[dict], *, seed: int, n_test: int,
                n_val: int) -> dict:
    """TAT-QA questions per split, split by context (a context's questions never straddle splits): test is
    a seeded subset of ``n_test`` test-file contexts; validation ``n_val`` dev contexts, train the rest."""
    def questions(contexts):
        return sorted(({"context_id": c["context_id"], "table": c["table"], "paragraphs": c["paragraphs"], **q}
                       for c in contexts for q in c["questions"]), key=lambda r: r["id"])

    def seeded(contexts):
        return sorted(contexts, key=lambda c: _order_key(seed, c["context_id"]))

    dev = seeded(dev_contexts)
    return {"test": questions(seeded(test_contexts)[:n_test]), "validation": questions(dev[:n_val]),
            "train": questions(dev[n_val:])}


def cohen_kappa_signal(first: list[dict], second: list[dict]) -> dict:
    """Raw agreement and Cohen's kappa between the two signal annotators on their shared stories."""
    from sklearn.metrics import cohen_kappa_score

    a = {int(r["newid"]): int(r["signal"]) for r in first}
    pairs = [(a[int(r["newid"])], int(r["signal"])) for r in second if int(r["newid"]) in a]
    if not pairs:
        return {"n": 0}
    x, y = zip(*pairs)
    return {"n": len(pairs), "raw_agreement": round(sum(i == j for i, j in pairs) / len(pairs), 4),
            "cohen_kappa": round(float(cohen_kappa_score(x, y)), 4)}


def _source_files(root: Path) -> list[dict]:
    return [{"path": str(p.relative_to(root)), "sha256": sha256_file(p)}
            for p in sorted(root.rglob("*")) if p.is_file()]


def build_bundle(raw: Path, annotations: Path, out: Path, *, split: str = "random", seed: int = DEFAULT_SEED,
                 n_test_papers: int = N_TEST_PAPERS, n_validation_papers: int = N_VALIDATION_PAPERS,
                 n_recent_test_papers: int = N_RECENT_TEST_PAPERS,
                 n_recent_validation_papers: int = N_RECENT_VALIDATION_PAPERS,
                 n_signal_validation: int = N_SIGNAL_VALIDATION, sentence_splits: dict | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """Build the whole bundle into ``out`` and return its manifest.

    The bundle is assembled in a sibling temp folder and swapped in at the end, so a failed build
    never leaves a half-written bundle behind.
    """
    raw, annotations, out = Path(raw), Path(annotations), Path(out)
    check_output_folder(out)
    if not raw.is_dir():
        raise DataError(sources.missing_raw_message(raw))
    if not annotations.is_dir():
        raise DataError(f"{annotations}: directory not found; set --annotations / ECON_EVAL_ANNOTATIONS to the "
                        "shared annotations folder (shared/data/annotations: arxiv_econ_qa.jsonl, reuters_signal.jsonl)")
    if split not in ("random", "temporal"):
        raise DataError(f"unknown split mode {split!r}; use 'random' or 'temporal'")
    build_args = {"split": split, "seed": seed, "n_test_papers": n_test_papers,
                  "n_validation_papers": n_validation_papers, "n_recent_test_papers": n_recent_test_papers,
                  "n_recent_validation_papers": n_recent_validation_papers,
                  "n_signal_validation": n_signal_validation,
                  "sentence_splits": {k: list(v) for k, v in {**SENTENCE_SPLITS, **(sentence_splits or {})}.items()}}

    log("reading arXiv metadata ...")
    snapshot = sources.load_arxiv(raw)
    merged, dropped = merge_papers(snapshot, sources.load_arxiv_recent(raw))
    recent = {pid: p for pid, p in merged.items() if pid not in snapshot}
    duplicates: dict[str, list[str]] = {}
    qa = sources.load_qa(annotations, merged, duplicates=duplicates)
    log(f"  {len(snapshot)} papers up to 2019, {len(recent)} from 2020-2024 ({len(dropped)} listed twice, "
        f"kept once), {len(qa)} QA pairs")
    tasks = build_arxiv_tasks(snapshot, qa, mode=split, seed=seed, n_test=n_test_papers, n_val=n_validation_papers,
                              recent=recent, n_recent_test=n_recent_test_papers,
                              n_recent_val=n_recent_validation_papers)

    log("reading Reuters-21578 ...")
    stories = sources.load_reuters(raw)
    labels = sources.load_signal_labels(annotations, stories, duplicates=duplicates)
    tasks["econ_signal"] = build_signal_task(stories, labels, seed=seed, n_val=n_signal_validation)
    second_path = annotations / "reuters_signal_second_annotator.jsonl"
    agreement = (cohen_kappa_signal(labels, sources.load_signal_labels(annotations, stories, second_path.name,
                                                                       duplicates=duplicates))
                 if second_path.is_file() else {"n": 0})
    for name, found in duplicates.items():
        log(f"  note: {len(found)} duplicate line(s) in {name} ignored (identical to an earlier line): "
            + "; ".join(found[:5]) + (" ..." if len(found) > 5 else ""))

    log("reading MMLU economics ...")
    tasks["econ_mmlu"] = {"train": sources.load_mmlu(raw, "dev"), "validation": sources.load_mmlu(raw, "val"),
                          "test": sources.load_mmlu(raw, "test")}

    log("reading FOMC sentences, the Financial PhraseBank, gold-news headlines and FiQA task 1 ...")
    dropped_sentences: dict[str, int] = {}
    sizes = build_args["sentence_splits"]
    tasks["econ_fomc"] = split_sentences(sources.load_fomc(raw, dropped=dropped_sentences),
                                         lambda r: (r["label"], r["source"]), prefix="fomc", seed=seed,
                                         n_test=sizes["econ_fomc"][0], n_val=sizes["econ_fomc"][1])
    tasks["econ_fpb"] = split_sentences(sources.load_fpb(raw, dropped=dropped_sentences),
                                        lambda r: (r["label"], r["agreement"]), prefix="fpb", seed=seed,
                                        n_test=sizes["econ_fpb"][0], n_val=sizes["econ_fpb"][1])
    headlines = split_sentences(sources.load_headlines(raw), lambda r: (r["price_sentiment"],), prefix="gold",
                                seed=seed, n_test=sizes["econ_headlines"][0], n_val=sizes["econ_headlines"][1])
    tasks["econ_headlines"] = {s: headline_questions(rows) for s, rows in headlines.items()}
    fiqa = split_sentences(sources.load_fiqa(raw, dropped=dropped_sentences), lambda r: (r["label"], r["type"]),
                           prefix="fiqa", seed=seed, n_test=sizes["econ_fiqasa"][0], n_val=sizes["econ_fiqasa"][1])
    tasks["econ_fiqasa"] = {s: fiqa_documents(rows) for s, rows in fiqa.items()}
    log("reading TAT-QA ...")
    tasks["econ_tatqa"] = split_tatqa(sources.load_tatqa(raw, "test"), sources.load_tatqa(raw, "dev"), seed=seed,
                                      n_test=sizes["econ_tatqa"][0], n_val=sizes["econ_tatqa"][1])
    log("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in dropped_sentences.items()))

    _check_no_leak(tasks)

    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    try:
        files = {}
        for task in TASK_DIRS:
            for s in SPLITS:
                path = atomic_write_jsonl(tmp / task / f"{s}.jsonl", tasks[task][s])
                files[f"{task}/{s}.jsonl"] = {"rows": len(tasks[task][s]), "sha256": sha256_file(path)}
        label_counts = {s: dict(sorted(Counter(r["label"] for r in tasks["econ_classify"][s]).items()))
                        for s in SPLITS}
        signal_counts = {s: dict(sorted(Counter(str(r["signal"]) for r in tasks["econ_signal"][s]).items()))
                         for s in SPLITS}
        by_year = {s: _counts_by_year(tasks["econ_classify"][s]) for s in SPLITS}
        manifest = {
            "bundle_version": bundle_version_for(build_args),
            "build_args": build_args,
            "files": files,
            "test_fingerprints": compute_test_fingerprints(tasks, files),
            "stats": {"econ_classify_labels": label_counts, "econ_classify_by_year": by_year,
                      "arxiv_papers": {"up_to_2019": len(snapshot), "from_2020": len(recent),
                                       "listed_twice_dropped": dropped},
                      "econ_signal_labels": signal_counts,
                      "signal_annotator_agreement": agreement, "labels": ECON_LABELS,
                      "duplicate_annotation_lines": {k: len(v) for k, v in sorted(duplicates.items())},
                      "sentence_tasks": {"dropped": dict(sorted(dropped_sentences.items())),
                                         "test_labels": {t: dict(sorted(Counter(r["label"] for r in
                                                                                 tasks[t]["test"]).items()))
                                                         for t in ("econ_fomc", "econ_fpb", "econ_fiqasa")}}},
            "sources": {
                "raw": {d.name: _source_files(d) for d in sorted(raw.iterdir()) if d.is_dir()},
                "annotations": _source_files(annotations),
            },
        }
        atomic_write_json(tmp / "MANIFEST.json", manifest)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"bundle {manifest['bundle_version']} written to {out}")
    return manifest


def _counts_by_year(rows: list[dict]) -> dict:
    """{year: {label: papers}} of arXiv rows (what the time axis has to work with, per split)."""
    out: dict[str, Counter] = {}
    for r in rows:
        out.setdefault(r["created"][:4], Counter())[r["label"]] += 1
    return {y: dict(sorted(c.items())) for y, c in sorted(out.items())}


#: The build arguments of the published bundle; any other build gets a version suffix saying how it differs.
CANONICAL_BUILD_ARGS = {"split": "random", "seed": DEFAULT_SEED, "n_test_papers": N_TEST_PAPERS,
                        "n_validation_papers": N_VALIDATION_PAPERS, "n_recent_test_papers": N_RECENT_TEST_PAPERS,
                        "n_recent_validation_papers": N_RECENT_VALIDATION_PAPERS,
                        "n_signal_validation": N_SIGNAL_VALIDATION,
                        "sentence_splits": {k: list(v) for k, v in SENTENCE_SPLITS.items()}}


def bundle_version_for(build_args: dict) -> str:
    """``BUNDLE_VERSION`` for the canonical build; otherwise suffixed (``2.0-temporal``, ``2.0-seed99``,
    ``2.0-sizes``), so that a bundle whose test split differs never passes for the published one."""
    parts = [BUNDLE_VERSION]
    if build_args["split"] != "random":
        parts.append(build_args["split"])
    if build_args["seed"] != DEFAULT_SEED:
        parts.append(f"seed{build_args['seed']}")
    if any(build_args[k] != v for k, v in CANONICAL_BUILD_ARGS.items() if k not in ("split", "seed")):
        parts.append("sizes")
    return "-".join(parts)


#: The field that identifies a test document of each bundle folder (MMLU: subject + source row).
DOC_ID_FIELDS = {"econ_titles": "paper_id", "econ_classify": "paper_id", "econ_qa": "qa_id", "econ_signal": "newid",
                 "econ_mmlu": ("subject", "source_row"), "econ_fomc": "id", "econ_fpb": "id", "econ_headlines": "id",
                 "econ_fiqasa": "id", "econ_tatqa": "id"}


def doc_identity(task_dir: str, doc: dict) -> str:
    """The identity of one document of a bundle folder (what baselines log as ``doc.id``)."""
    key = DOC_ID_FIELDS[task_dir]
    if isinstance(key, tuple):
        return ":".join(str(doc[k]) for k in key)
    return str(doc[key])


def ids_fingerprint(ids: list[str]) -> str:
    """sha256 of a test split's document ids in file order."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def compute_test_fingerprints(tasks: dict, files: dict) -> dict:
    """Content fingerprint of every test split: the file's sha256 and the sha256 of its document ids.

    Results record these (``test_sha256`` in each task's metadata) and the leaderboard checks them: a
    bundle built with another seed or split has other test documents, whatever its version string says.
    """
    out = {}
    for task in TASK_DIRS:
        out[task] = {"test_sha256": files[f"{task}/test.jsonl"]["sha256"],
                     "test_ids_sha256": ids_fingerprint([doc_identity(task, r) for r in tasks[task]["test"]])}
    return out


PUBLISHED_FINGERPRINTS_FILE = Path(__file__).with_name("published_fingerprints.json")


def published_fingerprints(version: str = BUNDLE_VERSION) -> dict:
    """Test fingerprints of the published (canonical) bundle ``version``, as ``econ-eval data build``
    computes them (a test rebuilds the bundle from the shared data and compares)."""
    doc = read_json(PUBLISHED_FINGERPRINTS_FILE, what="published test fingerprints")
    if version not in doc:
        raise DataError(f"{PUBLISHED_FINGERPRINTS_FILE}: no fingerprints for bundle {version!r}")
    return doc[version]


def check_output_folder(out: Path) -> None:
    """Refuse an output path that is a file, or a non-empty folder that is not a bundle we built."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; pass --out a folder path for the bundle")
    if out.is_dir() and any(out.iterdir()) and not is_bundle(out):
        raise DataError(f"{out}: folder is not empty and holds no econ-eval bundle (no MANIFEST.json with "
                        "bundle_version and files); refusing to replace it. Pass --out an empty or new folder.")


def is_bundle(folder: Path) -> bool:
    """True if ``folder`` holds a bundle this builder wrote (MANIFEST.json with bundle_version and files)
    and nothing else but its task folders and the retrieval index."""
    import json

    mpath = folder / "MANIFEST.json"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or "bundle_version" not in manifest or "files" not in manifest:
        return False
    ours = set(TASK_DIRS) | {"MANIFEST.json", "index"}
    return all(p.name in ours for p in folder.iterdir())


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` (absent, empty, or one of our bundles) by ``tmp`` with renames only."""
    check_output_folder(out)  # again: the folder may have changed during the build
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)


def _check_no_leak(tasks: dict) -> None:
    """No arXiv paper in a test/validation split may be in any train split of any task."""
    held_out = {r["paper_id"] for t in ("econ_classify", "econ_titles", "econ_qa")
                for s in ("validation", "test") for r in tasks[t][s]}
    trained = {r["paper_id"] for t in ("econ_classify", "econ_titles", "econ_qa") for r in tasks[t]["train"]}
    leaked = held_out & trained
    if leaked:
        raise AssertionError(f"split leak: {len(leaked)} papers in both held-out and train splits, e.g. {sorted(leaked)[:3]}")


def verify_bundle(bundle: Path) -> dict:
    """Check every file of a built bundle against its MANIFEST (rows and sha256); return the manifest."""
    bundle = Path(bundle)
    mpath = bundle / "MANIFEST.json"
    if not mpath.is_file():
        raise DataError(f"{mpath}: no MANIFEST.json; build the bundle with `econ-eval data build`")
    manifest = read_json(mpath, what="bundle manifest")
    if not isinstance(manifest.get("files"), dict):
        raise DataError(f"{mpath}: no 'files' table; rebuild the bundle with `econ-eval data build`")
    for rel, meta in manifest["files"].items():
        path = bundle / rel
        if not path.is_file():
            raise DataError(f"{path}: listed in MANIFEST.json but missing; rebuild with `econ-eval data build`")
        if sha256_file(path) != meta["sha256"]:
            raise DataError(f"{path}: sha256 differs from MANIFEST.json (file changed after the build); "
                            "rebuild with `econ-eval data build`")
    return manifest


def data_card_tables(manifest: dict) -> str:
    """The data card's tables from a bundle MANIFEST: rows per task folder and split, and the arXiv papers
    per year and class (all splits, and test)."""
    files = manifest["files"]
    lines = [f"Bundle {manifest['bundle_version']}.", "", "| task folder | train | validation | test |",
             "|---|---:|---:|---:|"]
    for task in TASK_DIRS:
        lines.append(f"| `{task}` | " + " | ".join(f"{files[f'{task}/{s}.jsonl']['rows']:,}" for s in SPLITS) + " |")
    by_year = manifest["stats"]["econ_classify_by_year"]
    years = sorted({y for s in SPLITS for y in by_year[s]})
    labels = manifest["stats"]["labels"]
    lines += ["", "arXiv econ papers (`econ_classify`; q-fin.EC counted as econ.GN) by year of creation:", "",
              "| year | " + " | ".join(labels) + " | all | of which test | validation |",
              "|---|" + "---:|" * (len(labels) + 3)]
    for y in years:
        counts = [sum(by_year[s].get(y, {}).get(lab, 0) for s in SPLITS) for lab in labels]
        test = sum(by_year["test"].get(y, {}).values())
        val = sum(by_year["validation"].get(y, {}).values())
        lines.append(f"| {y} | " + " | ".join(f"{c:,}" for c in counts) + f" | {sum(counts):,} | {test} | {val} |")
    totals = [sum(by_year[s].get(y, {}).get(lab, 0) for s in SPLITS for y in years) for lab in labels]
    test_total = sum(sum(v.values()) for v in by_year["test"].values())
    val_total = sum(sum(v.values()) for v in by_year["validation"].values())
    lines.append("| all | " + " | ".join(f"{c:,}" for c in totals) + f" | {sum(totals):,} | {test_total} | {val_total} |")
    papers = manifest["stats"].get("arxiv_papers", {})
    if papers:
        lines += ["", f"Sources: {papers['up_to_2019']:,} unique papers up to 2019 (econ and q-fin), "
                      f"{papers['from_2020']:,} econ papers from 2020–2024 after dropping "
                      f"{len(papers['listed_twice_dropped'])} listed twice "
                      f"({', '.join(papers['listed_twice_dropped']) or 'none'})."]
    return "\n".join(lines)


def _cmd_data_card(args) -> int:
    from ..readme_blocks import DATA_CARD_COMMAND, replace_block

    manifest = verify_bundle(Path(args.bundle))
    tables = data_card_tables(manifest)
    if args.readme:
        changed = replace_block(Path(args.readme), "data-card", DATA_CARD_COMMAND, tables)
        print(f"{args.readme}: data card {'updated' if changed else 'already current'}")
    print(tables)
    return 0


def _cmd_data_build(args) -> int:
    manifest = build_bundle(Path(args.raw), Path(args.annotations), Path(args.out), split=args.split, seed=args.seed)
    print(f"\n{'file':<36}{'rows':>8}")
    for rel, meta in manifest["files"].items():
        print(f"{rel:<36}{meta['rows']:>8}")
    agr = manifest["stats"]["signal_annotator_agreement"]
    if agr.get("n"):
        print(f"\nsignal labels: second annotator on {agr['n']} stories, raw agreement {agr['raw_agreement']:.3f}, "
              f"Cohen's kappa {agr['cohen_kappa']:.3f}")
    return 0


def _cmd_data_verify(args) -> int:
    manifest = verify_bundle(Path(args.bundle))
    print(f"{args.bundle}: bundle {manifest['bundle_version']}, {len(manifest['files'])} files match MANIFEST.json")
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    data = sub.add_parser("data", help="build or verify the benchmark bundle").add_subparsers(dest="data_cmd",
                                                                                              required=True)
    b = data.add_parser("build", help="build data/econbench from the raw sources and annotations")
    b.add_argument("--raw", default=str(config.raw_dir()), help="raw sources (default: %(default)s; env ECON_EVAL_RAW)")
    b.add_argument("--annotations", default=str(config.annotations_dir()),
                   help="annotations (default: %(default)s; env ECON_EVAL_ANNOTATIONS)")
    b.add_argument("--out", default=str(config.data_dir()), help="bundle folder (default: %(default)s; env ECON_EVAL_DATA)")
    b.add_argument("--split", choices=["random", "temporal"], default="random",
                   help="random: 1.0's stratified 350-paper test set + 350 papers from 2020-2024 (70 a year); "
                        "temporal: the newest 700 papers (default: %(default)s)")
    b.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="split seed (default: %(default)s)")
    b.set_defaults(func=_cmd_data_build)
    c = data.add_parser("card", help="print the data card's tables (rows per split, papers per year and class)")
    c.add_argument("--bundle", default=str(config.data_dir()))
    c.add_argument("--readme", help="also write them into this README's data-card block")
    c.set_defaults(func=_cmd_data_card)
    v = data.add_parser("verify", help="check a bundle's files against its MANIFEST.json")
    v.add_argument("--bundle", default=str(config.data_dir()))
    v.set_defaults(func=_cmd_data_verify)
