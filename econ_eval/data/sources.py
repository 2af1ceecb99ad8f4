"""Readers for the raw public sources in ``shared/data/raw`` and the annotations.

Each reader validates what it reads and raises :class:`~econ_eval.io.DataError` naming the file, the
field and the fix. Text cleaning lives here too, so every task sees the same cleaned text.
"""

from __future__ import annotations

import html
import lzma
import re
from dataclasses import dataclass
from pathlib import Path

from ..io import DataError, read_jsonl

ARXIV_FILES = [
    "econ.EM", "econ.GN", "econ.TH",
    "q-fin.CP", "q-fin.EC", "q-fin.GN", "q-fin.MF", "q-fin.PM", "q-fin.PR", "q-fin.RM", "q-fin.ST", "q-fin.TR",
]
ARXIV_FIELDS = ["abstract", "arxiv_id", "categories", "created", "primary_cat", "title"]
#: arXiv merged q-fin.EC into econ.GN in 2017: q-fin.EC primaries are labelled econ.GN.
CLASS_OF_PRIMARY = {"econ.EM": "econ.EM", "econ.GN": "econ.GN", "econ.TH": "econ.TH", "q-fin.EC": "econ.GN"}
ECON_LABELS = ["econ.EM", "econ.GN", "econ.TH"]
MMLU_SUBJECTS = ["econometrics", "high_school_macroeconomics", "high_school_microeconomics"]
#: MMLU macro test line 124 in the 2020 CSVs: its table is missing, the later canonical release drops it.
MMLU_UNANSWERABLE_PREFIX = "For Question below use the following information for a small town"


#: The raw sources the bundle is built from: folder under the raw root -> (files it needs, where it comes from).
REQUIRED_SOURCES = {
    "arxiv_econ_qfin": ("econ.*.tsv.xz and q-fin.*.tsv.xz (12 files)",
                        "staeiou/arxiv_archive, processed_data/20200101/per_category/ (Zenodo doi:10.5281/zenodo.1463242)"),
    "arxiv_econ_2020_2024": ("arxiv_econ_2020.csv.gz .. arxiv_econ_2024.csv.gz",
                             "stat163-2026/datasets @ 97489e1, arxiv/ (Kaggle Cornell-University/arxiv metadata, CC0)"),
    "fomc_hawkish_dovish": ("fomc_sentences.csv", "gtfintechlab/fomc-hawkish-dovish @ 9864698 (Shah et al., ACL 2023)"),
    "financial_phrasebank": ("Sentences_50Agree.txt, Sentences_66Agree.txt, Sentences_75Agree.txt, "
                             "Sentences_AllAgree.txt", "Financial PhraseBank v1.0 (Malo et al., 2014)"),
    "gold_news_headlines": ("gold-dataset-sinha-khandait.csv (tab-separated)",
                            "Sinha & Khandait, arXiv:2009.04202, via aakashthapa12/Sentiment-Analysis-of-Commodity-News-Gold-NLP"),
    "fiqa_task1": ("task1_{headline,post}_ABSA_{train,test}.json",
                   "FiQA 2018 task 1 (WWW'18 challenge) via elinsky/fiqa, data/ (research use)"),
    "tatqa": ("tatqa_dataset_dev.json, tatqa_dataset_test_gold.json",
              "NExTplusplus/TAT-QA @ 870accc, dataset_raw/ (Zhu et al., ACL 2021; CC BY 4.0)"),
    "reuters21578": ("reut2-000.sgm .. reut2-021.sgm",
                     "Reuters-21578, Distribution 1.0 (D. Lewis), the original SGML files"),
    "mmlu_econ": ("{dev,val,test}/{econometrics,high_school_macroeconomics,high_school_microeconomics}_*.csv",
                  "hendrycks/test (MMLU) at commit 785eba5, data/{dev,val,test}/"),
}
REQUIRED_ANNOTATIONS = ("arxiv_econ_qa.jsonl", "reuters_signal.jsonl")


def missing_raw_message(raw: Path) -> str:
    """What ``data build`` needs when the raw folder is missing: each source, its files and its origin."""
    lines = [f"{raw}: raw data folder not found. `econ-eval data build` needs these raw sources (each folder with "
             "a SOURCE.md), normally the project's shared/data/raw beside the checkout:"]
    for folder, (files, origin) in REQUIRED_SOURCES.items():
        lines.append(f"  - {folder}/: {files} — from {origin}")
    lines.append("and the annotations folder (shared/data/annotations: " + ", ".join(REQUIRED_ANNOTATIONS) + "). "
                 "Point --raw / ECON_EVAL_RAW and --annotations / ECON_EVAL_ANNOTATIONS at them.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- text cleaning
_WS = re.compile(r"\s+")


def clean_arxiv_text(text: str) -> str:
    """Clean an arXiv title/abstract: LaTeX line breaks (``\\\\``) and hard wraps become spaces."""
    text = text.replace("\\\\", " ")
    return _WS.sub(" ", text).strip()


def clean_reuters_body(body: str) -> str:
    """Clean a Reuters body: entities decoded, control characters and the ``Reuter`` sign-off removed,
    hard-wrapped lines joined; paragraphs (4-space indents in the source) separated by newlines."""
    body = html.unescape(body)
    body = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", body)
    body = re.sub(r"\s*\bReuter\s*$", "", body.rstrip(), flags=re.I)
    paragraphs = re.split(r"\n\s{2,}", body)
    paragraphs = [_WS.sub(" ", p).strip() for p in paragraphs]
    return "\n".join(p for p in paragraphs if p)


def clean_reuters_title(title: str) -> str:
    """Decode entities and collapse white space in a Reuters title."""
    title = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", html.unescape(title))
    return _WS.sub(" ", title).strip()


def normalise_arxiv_id(raw: str) -> str:
    """Undo the upstream float-mangling of new-style arXiv ids (``1312.746`` -> ``1312.7460``).

    Old-style ids (``q-fin/0601001``) are returned unchanged.
    """
    raw = raw.strip()
    if "/" in raw:
        return raw
    try:
        x = float(raw)
    except ValueError:
        raise DataError(f"arXiv id {raw!r} is neither old-style (archive/NNNNNNN) nor numeric") from None
    yymm = int(x)
    nd = 4 if yymm < 1501 else 5
    return f"{yymm:04d}.{round((x - yymm) * 10**nd):0{nd}d}"


# --------------------------------------------------------------------------- arXiv
@dataclass(frozen=True)
class Paper:
    paper_id: str
    title: str
    abstract: str
    primary_cat: str
    categories: tuple[str, ...]
    created: str


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing raw file; point --raw (or ECON_EVAL_RAW) at shared/data/raw")
    return path


def load_arxiv(raw: Path) -> dict[str, Paper]:
    """All unique papers of the 12 arXiv category files, keyed by normalised id (sorted)."""
    import pandas as pd

    papers: dict[str, Paper] = {}
    for cat in ARXIV_FILES:
        path = _require(raw / "arxiv_econ_qfin" / f"{cat}.tsv.xz")
        try:
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, compression="xz")
        except (lzma.LZMAError, EOFError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: cannot read as xz-compressed TSV ({exc}); re-copy the file") from exc
        missing = [f for f in ARXIV_FIELDS if f not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected the staeiou/arxiv_archive TSV header")
        for row in df.itertuples(index=False):
            pid = normalise_arxiv_id(row.arxiv_id)
            if pid in papers:
                continue
            title, abstract = clean_arxiv_text(row.title), clean_arxiv_text(row.abstract)
            if not title or not abstract:
                raise DataError(f"{path}: paper {pid} has an empty title or abstract field")
            papers[pid] = Paper(pid, title, abstract, row.primary_cat.strip(),
                                tuple(c.strip() for c in row.categories.split(",") if c.strip()),
                                row.created.strip())
    return dict(sorted(papers.items()))


RECENT_ARXIV_YEARS = range(2020, 2025)
RECENT_ARXIV_FIELDS = ["id", "submitted_date", "categories", "title", "abstract"]
_NEW_STYLE_ID = re.compile(r"^\d{4}\.\d{4,5}$")
_DATE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


def read_recent_arxiv_file(path: Path) -> list[Paper]:
    """The papers of one ``arxiv_econ_<YEAR>.csv.gz`` (comma-separated, header row, one paper a row).

    Normalised to the 2019 snapshot's :class:`Paper`: ``submitted_date`` is ``created``, the first of the
    space-separated ``categories`` is the primary. Every bad row is an error naming file, line and field.
    """
    import csv
    import gzip

    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [f for f in RECENT_ARXIV_FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing} in the header row; expected "
                                f"{', '.join(RECENT_ARXIV_FIELDS)} (see raw/arxiv_econ_2020_2024/SOURCE.md)")
            out = []
            for row in reader:
                out.append(_recent_paper(path, reader.line_num, row))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as gzip-compressed UTF-8 CSV ({exc}); re-copy the file") from exc
    return out


def _recent_paper(path: Path, line: int, row: dict) -> Paper:
    where = f"{path}:{line}"
    if None in row or any(row.get(f) is None for f in RECENT_ARXIV_FIELDS):
        raise DataError(f"{where}: wrong number of columns (a quote or comma out of place); fix the row")
    pid = row["id"].strip()
    if not _NEW_STYLE_ID.match(pid):
        raise DataError(f"{where}: field 'id' must be a new-style arXiv id YYMM.NNNNN, got {row['id']!r}")
    date = row["submitted_date"].strip()
    if not _DATE.match(date):
        raise DataError(f"{where}: field 'submitted_date' must be a date YYYY-MM-DD, got {row['submitted_date']!r}")
    categories = tuple(row["categories"].split())
    if not categories or not categories[0].startswith("econ."):
        raise DataError(f"{where}: field 'categories' must start with the econ.* primary category, "
                        f"got {row['categories']!r}")
    title, abstract = clean_arxiv_text(row["title"]), clean_arxiv_text(row["abstract"])
    for name, value in (("title", title), ("abstract", abstract)):
        if not value:
            raise DataError(f"{where}: field {name!r} is empty (paper {pid}); drop the row or restore the text")
    return Paper(pid, title, abstract, categories[0], categories, date)


def load_arxiv_recent(raw: Path) -> dict[str, Paper]:
    """The econ-primary papers created 2020–2024 (``raw/arxiv_econ_2020_2024``), keyed by id (sorted).

    A paper id listed twice is an error unless both rows are the same paper (then it is kept once).
    """
    papers: dict[str, Paper] = {}
    for year in RECENT_ARXIV_YEARS:
        path = _require(raw / "arxiv_econ_2020_2024" / f"arxiv_econ_{year}.csv.gz")
        for paper in read_recent_arxiv_file(path):
            if paper.paper_id in papers and papers[paper.paper_id] != paper:
                raise DataError(f"{path}: paper {paper.paper_id} appears twice with different fields; keep one row")
            papers[paper.paper_id] = paper
    return dict(sorted(papers.items()))


def load_qa(annotations: Path, papers: dict[str, Paper], *, duplicates: dict | None = None) -> list[dict]:
    """QA annotations, each checked against its paper (id known, fields present and of the right type).

    A line identical to an earlier one is dropped and reported in ``duplicates[file name]``; the same
    question about the same paper with a different answer is a conflict and an error naming both lines.
    """
    path = annotations / "arxiv_econ_qa.jsonl"
    rows = read_jsonl(path)
    fields = ["paper_id", "question", "answer", "evidence", "type"]
    out = []
    seen: dict[tuple, tuple[int, dict]] = {}
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise DataError(f"{path}:{i}: each line must be a JSON object with fields {fields}")
        for f in fields:
            if f not in r:
                raise DataError(f"{path}:{i}: missing field {f!r}; each line needs {fields}")
        if r["question"] is None:  # the brief allows a null second question for thin abstracts
            continue
        for f in fields:
            if not isinstance(r[f], str) or not r[f].strip():
                raise DataError(f"{path}:{i}: field {f!r} must be a non-empty string, got {r[f]!r}; "
                                "fix the line or set question to null to skip it")
        if r["paper_id"] not in papers:
            raise DataError(f"{path}:{i}: paper_id {r['paper_id']!r} is not in the arXiv raw files; "
                            "use the normalised arXiv id (see raw/arxiv_econ_qfin/SOURCE.md)")
        row = {f: r[f] for f in fields}
        key = (r["paper_id"], " ".join(r["question"].split()).lower())
        if key in seen:
            first, earlier = seen[key]
            if earlier == row:
                if duplicates is not None:
                    duplicates.setdefault(path.name, []).append(f"line {i} = line {first}")
                continue
            raise DataError(f"{path}:{i}: conflicts with line {first}: the same question about paper "
                            f"{r['paper_id']} with a different answer/evidence/type; keep one of the two lines")
        seen[key] = (i, row)
        out.append({**row, "evidence": clean_arxiv_text(r["evidence"]), "line": i})
    return out


# --------------------------------------------------------------------------- Reuters
_REUTERS = re.compile(r"<REUTERS(?P<attrs>[^>]*)>(?P<body>.*?)</REUTERS>", re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def _tag(text: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    return m.group(1) if m else None


def load_reuters(raw: Path) -> dict[int, dict]:
    """All Reuters-21578 stories keyed by NEWID, with split attributes, date, title and cleaned body."""
    stories: dict[int, dict] = {}
    for k in range(22):
        path = _require(raw / "reuters21578" / f"reut2-{k:03d}.sgm")
        text = path.read_text(encoding="latin-1")
        found = 0
        for m in _REUTERS.finditer(text):
            found += 1
            attrs = dict(_ATTR.findall(m.group("attrs")))
            if "NEWID" not in attrs:
                raise DataError(f"{path}: a <REUTERS> element has no NEWID attribute")
            inner = m.group("body")
            topics = re.findall(r"<D>(.*?)</D>", _tag(inner, "TOPICS") or "")
            title, body = _tag(inner, "TITLE"), _tag(inner, "BODY")
            newid = int(attrs["NEWID"])
            stories[newid] = {
                "newid": newid,
                "lewissplit": attrs.get("LEWISSPLIT"),
                "topics_attr": attrs.get("TOPICS"),
                "topics": topics,
                "date": (_tag(inner, "DATE") or "").strip(),
                "title": clean_reuters_title(title) if title else None,
                "text": clean_reuters_body(body) if body else None,
            }
        if not found:
            raise DataError(f"{path}: no <REUTERS> elements found; re-copy the original Reuters-21578 SGML file")
    return stories


def _int_field(path: Path, i: int, r: dict, field: str, allowed: tuple | None = None) -> int:
    value = r[field]
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, str) and value.isdigit()):
        raise DataError(f"{path}:{i}: field {field!r} must be an integer"
                        + (f" ({' or '.join(map(str, allowed))})" if allowed else "") + f", got {value!r}")
    value = int(value)
    if allowed is not None and value not in allowed:
        raise DataError(f"{path}:{i}: field {field!r} must be {' or '.join(map(str, allowed))}, got {r[field]!r}")
    return value


def load_signal_labels(annotations: Path, stories: dict[int, dict], name: str = "reuters_signal.jsonl", *,
                       duplicates: dict | None = None) -> list[dict]:
    """Signal labels, each checked against its story (ModApte, has title and body).

    A story labelled twice with the same label is kept once and reported in ``duplicates[file name]``;
    two different labels for one story are a conflict and an error naming both lines.
    """
    path = annotations / name
    rows = read_jsonl(path)
    out = []
    seen: dict[int, tuple[int, int]] = {}
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise DataError(f"{path}:{i}: each line must be a JSON object with 'newid' and 'signal'")
        for f in ("newid", "signal"):
            if f not in r:
                raise DataError(f"{path}:{i}: missing field {f!r}")
        newid = _int_field(path, i, r, "newid")
        signal = _int_field(path, i, r, "signal", (0, 1))
        landmark = _int_field(path, i, r, "landmark", (0, 1)) if "landmark" in r else 0
        s = stories.get(newid)
        if s is None:
            raise DataError(f"{path}:{i}: newid {r['newid']} is not a Reuters-21578 NEWID")
        if s["topics_attr"] != "YES" or s["lewissplit"] not in ("TRAIN", "TEST") or not s["title"] or not s["text"]:
            raise DataError(f"{path}:{i}: newid {r['newid']} is not a ModApte story with a title and body")
        if newid in seen:
            first, label = seen[newid]
            if label != signal:
                raise DataError(f"{path}:{i}: conflicts with line {first}: story {newid} is labelled signal={signal} "
                                f"here and signal={label} there; keep one of the two lines")
            if duplicates is not None:
                duplicates.setdefault(path.name, []).append(f"line {i} = line {first} (newid {newid})")
            continue
        seen[newid] = (i, signal)
        out.append({**r, "newid": newid, "signal": signal, "landmark": landmark})
    return out


# --------------------------------------------------------------------------- MMLU
def load_mmlu(raw: Path, split: str) -> list[dict]:
    """MMLU economics questions of one split (dev/val/test), unanswerable item dropped."""
    import pandas as pd

    rows = []
    for subject in MMLU_SUBJECTS:
        path = _require(raw / "mmlu_econ" / split / f"{subject}_{split}.csv")
        df = pd.read_csv(path, header=None, names=["question", "A", "B", "C", "D", "answer"], dtype=str,
                         keep_default_na=False)
        for i, r in enumerate(df.itertuples(index=False), 1):
            if r.answer not in ("A", "B", "C", "D"):
                raise DataError(f"{path}: row {i}: column 6 (answer) must be a letter A-D, got {r.answer!r}")
            if r.question.startswith(MMLU_UNANSWERABLE_PREFIX):
                continue
            rows.append({
                "subject": subject,
                "question": r.question.strip(),
                "choices": [r.A.strip(), r.B.strip(), r.C.strip(), r.D.strip()],
                "answer": "ABCD".index(r.answer),
                "source_row": i,
            })
    return rows


# --------------------------------------------------------------------------- CSV sources
def _csv_rows(path: Path, needed: list[str], *, delimiter: str = ",", hint: str = ""):
    """``(path:line, row)`` of a UTF-8 CSV file with a header, after checking the header has ``needed``."""
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        missing = [f for f in needed if f not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected {', '.join(needed)}"
                            + (f" ({hint})" if hint else ""))
        for row in reader:
            yield f"{path}:{reader.line_num}", row


def _text_field(where: str, row: dict, field: str) -> str:
    """A row's text field with white space collapsed; empty is an error naming the line and the field."""
    text = _WS.sub(" ", row.get(field) or "").strip()
    if not text:
        raise DataError(f"{where}: field {field!r} is empty")
    return text


# --------------------------------------------------------------------------- FOMC hawkish / dovish
#: the dataset's label codes (SOURCE.md): 0 dovish, 1 hawkish, 2 neutral
FOMC_LABELS = {"0": "dovish", "1": "hawkish", "2": "neutral"}
FOMC_SOURCES = {"mm": "meeting minutes", "pc": "press conference", "sp": "speech"}


def load_fomc(raw: Path, *, dropped: dict | None = None) -> list[dict]:
    """FOMC sentences with their stance, one row per distinct sentence (white space normalised).

    A sentence listed more than once with the same label is kept once (its first row); a sentence with
    conflicting labels is dropped (SOURCE.md); both are counted in ``dropped``.
    """
    path = _require(raw / "fomc_hawkish_dovish" / "fomc_sentences.csv")
    by_text: dict[str, dict] = {}
    labels_of: dict[str, set] = {}
    repeats = 0
    for where, row in _csv_rows(path, ["sentence", "year", "label", "source"]):
        text = _text_field(where, row, "sentence")
        if row["label"] not in FOMC_LABELS:
            raise DataError(f"{where}: field 'label' must be 0 (dovish), 1 (hawkish) or 2 (neutral), "
                            f"got {row['label']!r}")
        if row["source"] not in FOMC_SOURCES:
            raise DataError(f"{where}: field 'source' must be one of {list(FOMC_SOURCES)}, got {row['source']!r}")
        if not (row["year"] or "").isdigit():
            raise DataError(f"{where}: field 'year' must be a year, got {row['year']!r}")
        labels_of.setdefault(text, set()).add(row["label"])
        if text in by_text:
            repeats += 1
            continue
        by_text[text] = {"text": text, "label": FOMC_LABELS[row["label"]], "source": row["source"],
                         "year": int(row["year"])}
    conflicting = sorted(t for t, labels in labels_of.items() if len(labels) > 1)
    if dropped is not None:
        dropped["fomc_repeated_rows"] = repeats
        dropped["fomc_conflicting_sentences"] = len(conflicting)
    return [r for t, r in by_text.items() if t not in set(conflicting)]


# --------------------------------------------------------------------------- Financial PhraseBank
FPB_FILES = {100: "Sentences_AllAgree.txt", 75: "Sentences_75Agree.txt", 66: "Sentences_66Agree.txt",
             50: "Sentences_50Agree.txt"}
FPB_LABELS = ("negative", "neutral", "positive")


def _read_fpb(path: Path, encoding: str) -> list[tuple[str, str, int]]:
    """(sentence, label, line) of one PhraseBank file: ``sentence@label`` a line, split on the last ``@``."""
    out = []
    text = path.read_text(encoding=encoding).replace("\r", "")
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        if not sep or label.strip() not in FPB_LABELS:
            raise DataError(f"{path}:{i}: expected 'sentence@label' with label negative, neutral or positive, "
                            f"got {line[-40:]!r}")
        out.append((_WS.sub(" ", sentence).strip(), label.strip(), i))
    return out


def load_fpb(raw: Path, *, dropped: dict | None = None) -> list[dict]:
    """Financial PhraseBank sentences of the 50%-agreement file (every sentence), each with the highest
    agreement level whose file also lists it (50, 66, 75 or 100). Exact repeats are kept once; a sentence
    listed with two labels is dropped (counted in ``dropped``)."""
    folder = raw / "financial_phrasebank"
    levels: dict[str, int] = {}
    for level in (66, 75, 100):
        for sentence, _, _ in _read_fpb(_require(folder / FPB_FILES[level]), "latin-1"):
            levels[sentence] = max(levels.get(sentence, 0), level)
    rows: dict[str, dict] = {}
    labels_of: dict[str, set] = {}
    repeats = 0
    for sentence, label, _ in _read_fpb(_require(folder / FPB_FILES[50]), "utf-8-sig"):
        labels_of.setdefault(sentence, set()).add(label)
        if sentence in rows:
            repeats += 1
            continue
        rows[sentence] = {"text": sentence, "label": label, "agreement": levels.get(sentence, 50)}
    conflicting = {t for t, labels in labels_of.items() if len(labels) > 1}
    if dropped is not None:
        dropped["fpb_repeated_rows"] = repeats
        dropped["fpb_conflicting_sentences"] = len(conflicting)
    return [r for t, r in rows.items() if t not in conflicting]


# --------------------------------------------------------------------------- FiQA task 1 (aspect sentiment)
FIQA_FILES = {"headline": ("task1_headline_ABSA_train.json", "task1_headline_ABSA_test.json"),
              "post": ("task1_post_ABSA_train.json", "task1_post_ABSA_test.json")}
#: PIXIU/FinBen's FiQA-SA thresholds (data/fiqasa/preprocess.py): score < -0.1 negative, < 0.1 neutral, else positive
FIQA_NEGATIVE_BELOW, FIQA_POSITIVE_FROM = -0.1, 0.1
_LIST_ITEM = re.compile(r"'([^'\[\]]+)")  # an item of "['A/B']", also of the malformed "['A/B]"


def _read_raw_json(path: Path, kind: type, expected: str):
    """A raw JSON source file whose top level must be ``kind``; a clear error naming the file otherwise."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); restore the file from its source "
                        "(see SOURCE.md)") from None
    if not isinstance(data, kind):
        raise DataError(f"{path}: expected {expected}")
    return data


def fiqa_label(score: float) -> str:
    """A FiQA sentiment score in [-1, 1] as a 3-class label, with PIXIU's thresholds."""
    if score < FIQA_NEGATIVE_BELOW:
        return "negative"
    return "neutral" if score < FIQA_POSITIVE_FROM else "positive"


def _fiqa_annotation(where: str, info) -> dict:
    if not isinstance(info, dict):
        raise DataError(f"{where}: each entry of 'info' must be an object with target and sentiment_score")
    target = str(info.get("target") or "").strip()
    if not target:
        raise DataError(f"{where}: field 'target' is missing or empty (the company or ticker the sentiment is about)")
    try:
        score = float(info.get("sentiment_score"))
    except (TypeError, ValueError):
        raise DataError(f"{where}: field 'sentiment_score' must be a number in [-1, 1], "
                        f"got {info.get('sentiment_score')!r}") from None
    if not -1.0 <= score <= 1.0:
        raise DataError(f"{where}: field 'sentiment_score' must be in [-1, 1], got {score}")
    # `aspects` is a python-list-looking string, sometimes malformed ("['Market/Volatility]"): read by regex
    aspects = [a.strip() for a in _LIST_ITEM.findall(str(info.get("aspects") or "")) if a.strip()]
    return {"target": target, "score": score, "label": fiqa_label(score), "aspect": aspects[0] if aspects else ""}


def read_fiqa_file(path: Path, kind: str) -> list[dict]:
    """The texts of one FiQA task-1 file: ``{"source_id", "type", "text", "annotations": [...]}``, one
    annotation per (target, sentiment score, first aspect)."""
    data = _read_raw_json(path, dict, "a JSON object keyed by item id (FiQA task-1 format)")
    out = []
    for item_id, item in data.items():
        where = f"{path}: item {item_id!r}"
        if not isinstance(item, dict) or not isinstance(item.get("sentence"), str) or not item["sentence"].strip():
            raise DataError(f"{where}: field 'sentence' is missing or empty")
        infos = item.get("info")
        if not isinstance(infos, list) or not infos:
            raise DataError(f"{where}: field 'info' must be a non-empty list of annotations")
        out.append({"source_id": f"{kind}-{item_id}", "type": kind, "text": _WS.sub(" ", item["sentence"]).strip(),
                    "annotations": [_fiqa_annotation(f"{where}, info[{k}]", info) for k, info in enumerate(infos)]})
    return out


def load_fiqa(raw: Path, *, dropped: dict | None = None) -> list[dict]:
    """Every FiQA task-1 text (headlines and microblog posts; the repository's train/test files together, as
    its "test" is not the official one). A text listed twice is kept once (counted in ``dropped``). Each
    row's ``label`` is its first annotation's, for stratifying; documents are made per annotation."""
    folder = raw / "fiqa_task1"
    rows, seen, repeats = [], set(), 0
    for kind, files in FIQA_FILES.items():
        for name in files:
            for r in read_fiqa_file(_require(folder / name), kind):
                if r["text"].lower() in seen:
                    repeats += 1
                    continue
                seen.add(r["text"].lower())
                rows.append({**r, "label": r["annotations"][0]["label"]})
    if dropped is not None:
        dropped["fiqasa_repeated_texts"] = repeats
    return rows


# --------------------------------------------------------------------------- TAT-QA (tables + text, numeric QA)
TATQA_FILES = {"dev": "tatqa_dataset_dev.json", "test": "tatqa_dataset_test_gold.json"}
TATQA_ANSWER_TYPES = ("span", "multi-span", "arithmetic", "count")
TATQA_SCALES = ("", "thousand", "million", "billion", "percent")


def _tatqa_question(where: str, q) -> dict:
    if not isinstance(q, dict):
        raise DataError(f"{where}: each question must be an object")
    for field in ("uid", "question"):
        if not isinstance(q.get(field), str) or not q[field].strip():
            raise DataError(f"{where}: field {field!r} is missing or empty")
    if q.get("answer_type") not in TATQA_ANSWER_TYPES:
        raise DataError(f"{where}: field 'answer_type' must be one of {list(TATQA_ANSWER_TYPES)}, "
                        f"got {q.get('answer_type')!r}")
    if q.get("scale") not in TATQA_SCALES:
        raise DataError(f"{where}: field 'scale' must be one of {list(TATQA_SCALES)}, got {q.get('scale')!r}")
    answer = q.get("answer")
    if q["answer_type"] in ("span", "multi-span"):
        if not isinstance(answer, list) or not answer or not all(isinstance(a, str) for a in answer):
            raise DataError(f"{where}: a {q['answer_type']} answer must be a non-empty list of strings, got {answer!r}")
        answers = [a.strip() for a in answer]
    else:
        try:
            value = float(answer)
        except (TypeError, ValueError):
            raise DataError(f"{where}: an {q['answer_type']} answer must be a number, got {answer!r}") from None
        # the gold answer as the official evaluator writes it (count: an integer)
        answers = [str(int(value))] if q["answer_type"] == "count" else [str(answer)]
    return {"id": f"tatqa-{q['uid']}", "question": _WS.sub(" ", q["question"]).strip(), "answer": answers,
            "answer_type": q["answer_type"], "answer_from": str(q.get("answer_from") or ""), "scale": q["scale"],
            "derivation": str(q.get("derivation") or "")}


def load_tatqa(raw: Path, which: str) -> list[dict]:
    """The contexts of TAT-QA's ``dev`` or gold-labelled ``test`` file: ``{"context_id", "table": [[cell]],
    "paragraphs": [text], "questions": [...]}`` (paragraphs in their order; answers as the official
    evaluator's gold lists)."""
    path = _require(raw / "tatqa" / TATQA_FILES[which])
    data = _read_raw_json(path, list, "a JSON list of contexts (TAT-QA's dataset_raw format)")
    out = []
    for i, ctx in enumerate(data):
        where = f"{path}: context {i}"
        table = (ctx or {}).get("table") if isinstance(ctx, dict) else None
        if not isinstance(table, dict) or not isinstance(table.get("table"), list) or not table.get("uid"):
            raise DataError(f"{where}: field 'table' must be an object with 'uid' and 'table' (a list of rows)")
        rows = [[_WS.sub(" ", str(c)).strip() for c in row] for row in table["table"] if isinstance(row, list)]
        paragraphs = sorted(ctx.get("paragraphs") or [], key=lambda p: p.get("order", 0))
        questions = ctx.get("questions")
        if not isinstance(questions, list) or not questions:
            raise DataError(f"{where}: field 'questions' must be a non-empty list")
        out.append({"context_id": str(table["uid"]), "table": rows,
                    "paragraphs": [_WS.sub(" ", str(p.get("text", ""))).strip() for p in paragraphs],
                    "questions": [_tatqa_question(f"{where}, question {k} (uid {q.get('uid') if isinstance(q, dict) else '?'})", q)
                                  for k, q in enumerate(questions)]})
    return out


# --------------------------------------------------------------------------- gold-news headlines
#: FinBen's Headlines questions, one per label of the dataset: (label type, question, source column or rule)
HEADLINE_QUESTIONS = (
    ("price_or_not", "Does the news headline talk about price?"),
    ("direction_up", "Does the news headline talk about price going up?"),
    ("direction_constant", "Does the news headline talk about price staying constant?"),
    ("direction_down", "Does the news headline talk about price going down?"),
    ("past_information", "Does the news headline talk about a past event or past price?"),
    ("future_information", "Does the news headline talk about a future event or future price?"),
    ("asset_comparison", "Does the news headline compare gold with any other asset?"),
)
_HEADLINE_COLUMNS = {"direction_up": "Price Direction Up", "direction_constant": "Price Direction Constant",
                     "direction_down": "Price Direction Down", "past_information": "Past Information",
                     "future_information": "Future Information", "asset_comparison": "Asset Comparision"}
HEADLINE_SENTIMENTS = ("positive", "negative", "neutral", "none")


def load_headlines(raw: Path) -> list[dict]:
    """Gold-commodity news headlines with their 0/1 labels per question type (``labels``) and the price
    sentiment; one row per distinct headline (the first one)."""
    path = _require(raw / "gold_news_headlines" / "gold-dataset-sinha-khandait.csv")
    out, seen = [], set()
    for where, row in _csv_rows(path, ["News", "Price Sentiment", *_HEADLINE_COLUMNS.values()], delimiter="\t",
                                hint="the file is tab-separated; see its SOURCE.md"):
        text = _text_field(where, row, "News")
        sentiment = (row["Price Sentiment"] or "").strip()
        if sentiment not in HEADLINE_SENTIMENTS:
            raise DataError(f"{where}: field 'Price Sentiment' must be one of {list(HEADLINE_SENTIMENTS)}, "
                            f"got {row['Price Sentiment']!r}")
        labels = {"price_or_not": int(sentiment != "none")}
        for key, column in _HEADLINE_COLUMNS.items():
            if row[column] not in ("0", "1"):
                raise DataError(f"{where}: field {column!r} must be 0 or 1, got {row[column]!r}")
            labels[key] = int(row[column])
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        out.append({"text": text, "price_sentiment": sentiment, "labels": labels})
    return out
