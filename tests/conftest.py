"""Shared fixtures: a tiny raw-data tree in the exact formats of ``shared/data`` and paths to the real data."""

from __future__ import annotations

import csv
import gzip
import json
import lzma
import os
from pathlib import Path

# Standard errors are checked for presence and sanity, not precision: few resamples keep tests fast.
os.environ.setdefault("ECON_EVAL_BOOTSTRAP_ITERS", "30")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from econ_eval import config  # noqa: E402
from econ_eval.data.sources import ARXIV_FILES, MMLU_SUBJECTS  # noqa: E402

REAL_RAW = config.raw_dir()
REAL_ANNOTATIONS = config.annotations_dir()
TSV_HEADER = ["Unnamed: 0", "abstract", "acm_class", "arxiv_id", "author_text", "categories", "comments", "created",
              "doi", "num_authors", "num_categories", "primary_cat", "title", "updated", "categories_list"]

# (raw arxiv_id as mangled upstream, normalised id, primary, extra categories, created)
def _papers():
    rows = []
    n = 0
    for primary, count in (("econ.EM", 12), ("econ.GN", 8), ("econ.TH", 6), ("q-fin.EC", 4), ("q-fin.ST", 5)):
        for i in range(count):
            n += 1
            yymm = 1801 + (n % 12)
            raw_id = f"{yymm}.{n:05d}"
            norm = f"{yymm}.{n:05d}"
            rows.append((raw_id, norm, primary, ["q-fin.GN"] if i % 3 == 0 else [], f"2018-{(n % 12) + 1:02d}-{(n % 27) + 1:02d}"))
    # the float-mangled and old-style ids described in SOURCE.md
    rows.append(("1707.0514600000001", "1707.05146", "econ.EM", [], "2017-07-17"))
    rows.append(("704.3649", "0704.3649", "q-fin.ST", [], "2007-04-27"))
    rows.append(("q-fin/0601001", "q-fin/0601001", "q-fin.GN", [], "2006-01-01"))
    return rows


PAPERS = _papers()


def _write_arxiv(root: Path) -> None:
    d = root / "arxiv_econ_qfin"
    d.mkdir(parents=True)
    per_file = {c: [] for c in ARXIV_FILES}
    for k, (raw_id, norm, primary, extra, created) in enumerate(PAPERS):
        cats = [primary] + extra
        row = {h: "" for h in TSV_HEADER}
        row.update({
            "Unnamed: 0": str(k), "arxiv_id": raw_id, "primary_cat": primary, "categories": ",".join(cats),
            "created": created, "title": f"Paper {norm} on  markets",
            "abstract": f"We study topic {norm}. Line one\\\\ line two with $x^2$ and    spaces.",
            "categories_list": str(cats), "num_categories": str(len(cats)),
        })
        for c in cats:
            if c in per_file:
                per_file[c].append(row)
    for cat, rows in per_file.items():
        lines = ["\t".join(TSV_HEADER)] + ["\t".join(r[h] for h in TSV_HEADER) for r in rows]
        with lzma.open(d / f"{cat}.tsv.xz", "wt", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


RECENT_HEADER = ["id", "submitted_date", "categories", "title", "abstract", "authors", "num_authors", "comments",
                 "journal_ref"]


def _recent_papers():
    """(id, created, categories) of the tiny 2020-2024 source: 3 EM, 3 GN, 2 TH a year."""
    rows = []
    for year in range(2020, 2025):
        for k, primary in enumerate(["econ.EM"] * 3 + ["econ.GN"] * 3 + ["econ.TH"] * 2):
            rows.append((f"{year % 100:02d}{k + 1:02d}.{year * 10 + k:05d}", f"{year}-{k + 1:02d}-15",
                         primary + (" q-fin.GN" if k == 0 else "")))
    return rows


RECENT_PAPERS = _recent_papers()


def write_recent_csv(path: Path, rows: list[dict]) -> None:
    """One arxiv_econ_<YEAR>.csv.gz in the shared data's format (comma-separated, quoted, header row)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RECENT_HEADER, quoting=csv.QUOTE_ALL)
        w.writeheader()
        for r in rows:
            w.writerow({h: r.get(h, "") for h in RECENT_HEADER})


def _write_recent_arxiv(root: Path) -> None:
    by_year: dict[int, list[dict]] = {}
    for pid, created, cats in RECENT_PAPERS:
        by_year.setdefault(int(created[:4]), []).append({
            "id": pid, "submitted_date": created, "categories": cats, "title": f"Recent paper {pid} on prices",
            "abstract": f"We study recent topic {pid}. With $y$ and a result.", "authors": "A. Author",
            "num_authors": "1"})
    # the same paper submitted again under a new id a year later (SOURCE.md: kept once, the earlier one)
    first = by_year[2020][0]
    by_year[2021].append({**first, "id": "2105.99999", "submitted_date": "2021-05-01"})
    for year, rows in by_year.items():
        write_recent_csv(root / "arxiv_econ_2020_2024" / f"arxiv_econ_{year}.csv.gz", rows)


def _write_fomc(root: Path) -> None:
    """FOMC sentences in the shared CSV format: 4 per (label, source), one repeat, one conflicting sentence."""
    d = root / "fomc_hawkish_dovish"
    d.mkdir(parents=True)
    with (d / "fomc_sentences.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence", "year", "label", "source"])
        for label in ("0", "1", "2"):
            for source in ("mm", "pc", "sp"):
                for k in range(4):
                    w.writerow([f"Members  discussed stance {label} in {source}, item {k}.", 2010 + k, label, source])
        w.writerow(["Members discussed stance 0 in mm, item 0.", 2010, "0", "mm"])  # a repeat: kept once
        w.writerow(["Inflation was a concern.", 2011, "1", "sp"])  # the same sentence with two labels: dropped
        w.writerow(["Inflation was a concern.", 2011, "2", "sp"])


def _write_fpb(root: Path) -> None:
    """Financial PhraseBank files: 50Agree (UTF-8 with BOM, CRLF) holds all; higher-agreement files subsets."""
    d = root / "financial_phrasebank"
    d.mkdir(parents=True)
    rows = [(f"Company {k} reported {label} news , says CEO Åke .", label)
            for label in ("negative", "neutral", "positive") for k in range(8)]
    rows += [rows[0], ("Profit was flat .", "neutral"), ("Profit was flat .", "positive")]
    (d / "Sentences_50Agree.txt").write_bytes(("\ufeff" + "".join(f"{t}@{lab}\r\n" for t, lab in rows)).encode("utf-8"))
    for name, keep in (("66Agree", 6), ("75Agree", 4), ("AllAgree", 2)):
        subset = [(t, lab) for t, lab in rows[:24] if int(t.split()[1]) < keep]
        (d / f"Sentences_{name}.txt").write_bytes("".join(f"{t}@{lab}\n" for t, lab in subset).encode("latin-1"))


def write_fiqa_file(path: Path, items: dict) -> None:
    """One FiQA task-1 JSON file in the shared format (scores and aspects as strings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items), encoding="utf-8")


def _write_fiqa(root: Path) -> None:
    """FiQA task 1: per type (headline, post) and file, texts with scores on both sides of PIXIU's thresholds;
    one headline names two targets, one aspect string is malformed (as in the real posts), one text repeats."""
    d = root / "fiqa_task1"
    scores = ["-0.6", "-0.1", "0.05", "0.1", "0.7", "-0.35"]
    for kind in ("headline", "post"):
        for split in ("train", "test"):
            items = {}
            for k, score in enumerate(scores):
                info = {"snippets": "['x']", "target": f"Co{k}", "sentiment_score": score,
                        "aspects": "['Stock/Price Action']" if k else "['Market/Volatility]"}
                items[f"{kind}{split}{k}"] = {"sentence": f"{kind} {split} {k}: shares of Co{k} move", "info": [info]}
            if kind == "headline" and split == "train":
                items["two"] = {"sentence": "Co1 buys Co2", "info": [
                    {"target": "Co1", "sentiment_score": "0.4", "aspects": "['Corporate/M&A']"},
                    {"target": "Co2", "sentiment_score": "-0.3", "aspects": "['Corporate/M&A']"}]}
            if kind == "post" and split == "test":
                items["again"] = dict(items["posttest0"])  # the same text again: kept once
            write_fiqa_file(d / f"task1_{kind}_ABSA_{split}.json", items)


def _tatqa_context(uid: str, answers: list) -> dict:
    """One TAT-QA context in the raw format: a table, two paragraphs (out of order), questions of each type."""
    questions = [{"uid": f"{uid}-q{k}", "order": k, "question": f"Question {k} about {uid}?", "answer": ans,
                  "derivation": "", "answer_type": kind, "answer_from": "table", "rel_paragraphs": [],
                  "req_comparison": False, "scale": scale} for k, (kind, ans, scale) in enumerate(answers)]
    return {"table": {"uid": uid, "table": [["", "2019", "2018"], ["Revenue", "1,234", "(56)"], ["", "", ""]]},
            "paragraphs": [{"uid": "p2", "order": 2, "text": "Second  paragraph."},
                           {"uid": "p1", "order": 1, "text": "First paragraph."}],
            "questions": questions}


TATQA_ANSWERS = [("span", ["Revenue"], ""), ("multi-span", ["2019", "2018"], ""), ("arithmetic", 12.5, "percent"),
                 ("count", "2", ""), ("arithmetic", -56, "thousand")]


def _write_tatqa(root: Path) -> None:
    d = root / "tatqa"
    d.mkdir(parents=True)
    for which, n in (("dev", 6), ("test_gold", 5)):
        contexts = [_tatqa_context(f"{which}{i}", TATQA_ANSWERS) for i in range(n)]
        (d / f"tatqa_dataset_{which}.json").write_text(json.dumps(contexts), encoding="utf-8")


HEADLINE_HEADER = ["Dates", "URL", "News", "Price Direction Up", "Price Direction Constant", "Price Direction Down",
                   "Asset Comparision", "Past Information", "Future Information", "Price Sentiment"]


def _write_headlines(root: Path) -> None:
    """Gold-news headlines (tab-separated): 6 per price sentiment, plus one repeated headline."""
    d = root / "gold_news_headlines"
    d.mkdir(parents=True)
    lines = ["\t".join(HEADLINE_HEADER)]
    flags = {"positive": "1\t0\t0", "negative": "0\t0\t1", "neutral": "0\t1\t0", "none": "0\t0\t0"}
    for sentiment in ("positive", "negative", "neutral", "none"):
        for k in range(6):
            lines.append(f"01-02-2016\thttp://x/{sentiment}{k}\tgold {sentiment} news {k}\t{flags[sentiment]}\t"
                         f"{k % 2}\t1\t{int(k == 0)}\t{sentiment}")
    lines.append(lines[1])
    (d / "gold-dataset-sinha-khandait.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _reuters_story(newid: int, split: str, topics: str = "YES") -> str:
    return (f'<REUTERS TOPICS="{topics}" LEWISSPLIT="{split}" CGISPLIT="TRAINING-SET" OLDID="{newid + 5000}" '
            f'NEWID="{newid}">\n<DATE>26-FEB-1987 15:01:01.79</DATE>\n<TOPICS><D>acq</D></TOPICS>\n'
            f"<PLACES><D>usa</D></PLACES>\n<PEOPLE></PEOPLE>\n<ORGS></ORGS>\n<EXCHANGES></EXCHANGES>\n"
            f"<COMPANIES></COMPANIES>\n<TEXT>&#2;\n<TITLE>ACME &lt;ACM> BID {newid}</TITLE>\n"
            f"<DATELINE>    NEW YORK, Feb 26 - </DATELINE><BODY>Acme Corp said it\nbid for story {newid}.\n"
            f"    Second paragraph &amp; more.\n Reuter\n&#3;</BODY></TEXT>\n</REUTERS>\n")


def _write_reuters(root: Path) -> list[dict]:
    d = root / "reuters21578"
    d.mkdir(parents=True)
    labels = []
    newid = 0
    for k in range(22):
        stories = []
        for j in range(3):
            newid += 1
            split = "TEST" if j == 2 else "TRAIN"
            stories.append(_reuters_story(newid, split))
            labels.append({"newid": newid, "signal": int(newid % 4 == 0), "landmark": 0, "reason": "fixture"})
        (d / f"reut2-{k:03d}.sgm").write_text('<!DOCTYPE lewis SYSTEM "lewis.dtd">\n' + "".join(stories),
                                              encoding="latin-1")
    return labels


def _write_mmlu(root: Path) -> None:
    for split in ("dev", "val", "test"):
        d = root / "mmlu_econ" / split
        d.mkdir(parents=True)
        for subject in MMLU_SUBJECTS:
            with (d / f"{subject}_{split}.csv").open("w", newline="") as fh:
                w = csv.writer(fh)
                for i in range(4):
                    w.writerow([f"{subject} question {i}?\nSecond line", "a", "b", "c", "d", "ABCD"[i % 4]])


def make_tiny_data(root: Path) -> tuple[Path, Path]:
    """Write a tiny raw tree and annotations in the real formats; return (raw, annotations)."""
    raw, ann = root / "raw", root / "annotations"
    _write_arxiv(raw)
    _write_recent_arxiv(raw)
    _write_fomc(raw)
    _write_fpb(raw)
    _write_headlines(raw)
    _write_fiqa(raw)
    _write_tatqa(raw)
    labels = _write_reuters(raw)
    _write_mmlu(raw)
    ann.mkdir(parents=True)
    econ = [norm for _, norm, primary, _, _ in PAPERS if primary in ("econ.EM", "econ.GN", "econ.TH")]
    qa = []
    for pid in econ:
        for t in ("method", "finding"):
            qa.append({"paper_id": pid, "question": f"What {t} does the study of topic {pid} report?",
                       "answer": f"It reports a {t}.", "evidence": f"We study topic {pid}.", "type": t})
    (ann / "arxiv_econ_qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa))
    (ann / "reuters_signal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    second = [dict(r, signal=1 - r["signal"]) if r["newid"] == 1 else r for r in labels[:20]]
    (ann / "reuters_signal_second_annotator.jsonl").write_text("".join(json.dumps(r) + "\n" for r in second))
    return raw, ann


TINY_SIZES = dict(n_test_papers=9, n_validation_papers=6, n_recent_test_papers=5, n_recent_validation_papers=5,
                  n_signal_validation=8, sentence_splits={"econ_fomc": (9, 6), "econ_fpb": (6, 3), "econ_headlines": (8, 4),
                                                                          "econ_fiqasa": (8, 4), "econ_tatqa": (3, 2)})


@pytest.fixture
def tiny_data(tmp_path):
    return make_tiny_data(tmp_path / "shared")


@pytest.fixture
def tiny_bundle(tiny_data, tmp_path):
    """A bundle built from the tiny raw tree (every task folder, a few rows each)."""
    from econ_eval.data.build import build_bundle

    raw, ann = tiny_data
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    return out


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory):
    """The bundle built from the real shared data (built once per test session)."""
    if not (REAL_RAW / "arxiv_econ_qfin").is_dir():
        pytest.skip(f"real shared data not found at {REAL_RAW}")
    from econ_eval.data.build import build_bundle

    out = tmp_path_factory.mktemp("real") / "econbench"
    manifest = build_bundle(REAL_RAW, REAL_ANNOTATIONS, out, log=lambda m: None)
    return out, manifest


@pytest.fixture(scope="session")
def llama(tmp_path_factory):
    """The real llama.cpp OpenAI-compatible server on 127.0.0.1, serving the embedded GGUF."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is installed by `make setup`")
    from econ_eval.judge.server import start_llama_server

    server = start_llama_server("smollm2-135m", threads=2, n_ctx=4096,
                                log_path=tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"


def _result_files() -> set[str]:
    return {str(p.relative_to(REPO_RESULTS)) for p in REPO_RESULTS.rglob("*") if p.is_file()} \
        if REPO_RESULTS.is_dir() else set()


@pytest.fixture(scope="session", autouse=True)
def no_test_writes_into_the_published_results():
    """Tests write into temporary folders only: the session fails if any test left a file in results/
    (a judge test once filed calibration files of its stub endpoints there, and they got committed)."""
    before = _result_files()
    yield
    leaked = sorted(_result_files() - before)
    assert not leaked, f"tests wrote into the published results/: {leaked[:10]}"


@pytest.fixture
def bundle_env(real_bundle, monkeypatch):
    """Point ECON_EVAL_DATA at the real bundle for the duration of a test."""
    monkeypatch.setenv("ECON_EVAL_DATA", str(real_bundle[0]))
    return real_bundle[0]

