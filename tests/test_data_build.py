"""Data bundle: split rules, cleaning, determinism, manifest, and clear errors on bad input."""

from __future__ import annotations

import json
import lzma
import subprocess
import sys
from collections import Counter

import pytest

from econ_eval import tasks
from econ_eval.data import sources
from econ_eval.data.build import SPLITS, TASK_DIRS, build_bundle, verify_bundle
from econ_eval.io import DataError, read_jsonl, sha256_file

from .conftest import TINY_SIZES

ARXIV_TASKS = ("econ_classify", "econ_titles", "econ_qa")


def _rows(bundle, task, split):
    return read_jsonl(bundle / task / f"{split}.jsonl")


def _assert_no_paper_leak(bundle):
    held_out = {r["paper_id"] for t in ARXIV_TASKS for s in ("validation", "test") for r in _rows(bundle, t, s)}
    trained = {r["paper_id"] for t in ARXIV_TASKS for r in _rows(bundle, t, "train")}
    assert held_out and trained
    assert not held_out & trained


@pytest.mark.parametrize("raw,expected", [
    ("1707.0514600000001", "1707.05146"), ("704.3649", "0704.3649"), ("1312.746", "1312.7460"),
    ("1906.0029600000003", "1906.00296"), ("q-fin/0601001", "q-fin/0601001"), ("1501.00001", "1501.00001"),
])
def test_normalise_arxiv_id(raw, expected):
    assert sources.normalise_arxiv_id(raw) == expected


def test_cleaning():
    assert sources.clean_arxiv_text("a\\\\ b\n  c") == "a b c"
    body = "Acme said\nit bid.\n    Second &amp; para.\n Reuter\n\x03"
    assert sources.clean_reuters_body(body) == "Acme said it bid.\nSecond & para."
    assert sources.clean_reuters_body("Text here. REUTER") == "Text here."
    assert sources.clean_reuters_title("ACME &lt;ACM> BID") == "ACME <ACM> BID"


def test_tiny_build_rules(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    m = build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    # every task folder and split exists and matches the manifest
    for task in TASK_DIRS:
        for s in SPLITS:
            meta = m["files"][f"{task}/{s}.jsonl"]
            assert meta["rows"] == len(_rows(out, task, s))
            assert meta["sha256"] == sha256_file(out / task / f"{s}.jsonl")
    # 9 + 6 papers up to 2019 (TINY_SIZES), 5 + 5 from 2020-2024: one test and one validation paper a year
    test = _rows(out, "econ_classify", "test")
    assert len(test) == 9 + 5 and len(_rows(out, "econ_classify", "validation")) == 6 + 5
    assert sorted(r["created"][:4] for r in test if r["created"] >= "2020") == ["2020", "2021", "2022", "2023", "2024"]
    # q-fin.EC counts as econ.GN; q-fin.ST papers never reach classification
    labels = {r["paper_id"]: r for s in SPLITS for r in _rows(out, "econ_classify", s)}
    assert {r["label"] for r in labels.values()} == {"econ.EM", "econ.GN", "econ.TH"}
    assert all(r["label"] == "econ.GN" for r in labels.values() if r["primary_cat"] == "q-fin.EC")
    assert len(labels) == 31 + 40  # the 2021 resubmission of a 2020 paper is kept once, the earlier id
    assert "2105.99999" not in labels and m["stats"]["arxiv_papers"]["listed_twice_dropped"] == ["2105.99999"]
    # the mangled id was normalised and kept
    assert "1707.05146" in labels
    # titles: q-fin papers only in train; test/validation identical to classification's papers
    for s in ("validation", "test"):
        assert {r["paper_id"] for r in _rows(out, "econ_titles", s)} == {r["paper_id"] for r in _rows(out, "econ_classify", s)}
    qfin_train = [r for r in _rows(out, "econ_titles", "train") if r["source"] == "q-fin"]
    assert {r["primary_cat"] for r in qfin_train} <= {"q-fin.ST", "q-fin.GN"} and qfin_train
    # QA follows its paper
    split_of = {r["paper_id"]: s for s in SPLITS for r in _rows(out, "econ_classify", s)}
    for s in SPLITS:
        for r in _rows(out, "econ_qa", s):
            assert split_of[r["paper_id"]] == s
    _assert_no_paper_leak(out)
    # text cleaned (LaTeX line break and double spaces gone)
    row = _rows(out, "econ_classify", "test")[0]
    assert "\\\\" not in row["abstract"] and "  " not in row["abstract"] and "  " not in row["title"]
    # Reuters: ModApte TEST stays test, validation carved from TRAIN, sign-off removed
    sig = {s: _rows(out, "econ_signal", s) for s in SPLITS}
    assert len(sig["test"]) == 22 and len(sig["validation"]) == 8 and len(sig["train"]) == 36
    assert all(not r["text"].lower().endswith("reuter") for s in SPLITS for r in sig[s])
    assert Counter(r["signal"] for r in sig["validation"])[1] >= 1
    # MMLU
    assert len(_rows(out, "econ_mmlu", "test")) == 12 and _rows(out, "econ_mmlu", "test")[0]["choices"] == list("abcd")
    agreement = m["stats"]["signal_annotator_agreement"]
    assert agreement["n"] == 20 and agreement["raw_agreement"] == pytest.approx(19 / 20)


def test_build_is_deterministic(tiny_data, tmp_path):
    raw, ann = tiny_data
    a = build_bundle(raw, ann, tmp_path / "a", log=lambda s: None, **TINY_SIZES)
    b = build_bundle(raw, ann, tmp_path / "b", log=lambda s: None, **TINY_SIZES)
    assert a["files"] == b["files"]
    assert (tmp_path / "a" / "MANIFEST.json").read_bytes() == (tmp_path / "b" / "MANIFEST.json").read_bytes()
    c = build_bundle(raw, ann, tmp_path / "c", seed=99, log=lambda s: None, **TINY_SIZES)
    assert c["files"]["econ_classify/test.jsonl"]["sha256"] != a["files"]["econ_classify/test.jsonl"]["sha256"]
    # regression (#10): another seed is another bundle, in its version string and in its test fingerprint
    assert c["bundle_version"] == "2.0-seed99-sizes" != a["bundle_version"]
    assert c["test_fingerprints"]["econ_classify"] != a["test_fingerprints"]["econ_classify"]
    assert a["test_fingerprints"]["econ_signal"] == c["test_fingerprints"]["econ_signal"]  # ModApte test: fixed


def test_temporal_split_takes_newest(tiny_data, tmp_path):
    raw, ann = tiny_data
    m = build_bundle(raw, ann, tmp_path / "t", split="temporal", log=lambda s: None, **TINY_SIZES)
    assert m["bundle_version"] == "2.0-temporal-sizes"
    test = _rows(tmp_path / "t", "econ_classify", "test")
    train = _rows(tmp_path / "t", "econ_classify", "train")
    assert min(r["created"] for r in test) >= max(r["created"] for r in train)
    _assert_no_paper_leak(tmp_path / "t")


def test_verify_detects_tampering(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    verify_bundle(out)
    with (out / "econ_qa" / "test.jsonl").open("a") as fh:
        fh.write("{}\n")
    with pytest.raises(DataError, match=r"econ_qa/test.jsonl: sha256 differs"):
        verify_bundle(out)


def test_missing_raw_file_names_the_file(tiny_data, tmp_path):
    raw, ann = tiny_data
    (raw / "arxiv_econ_qfin" / "q-fin.TR.tsv.xz").unlink()
    with pytest.raises(DataError, match=r"q-fin.TR.tsv.xz: missing raw file"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)
    assert not (tmp_path / "x").exists()


def test_missing_column_names_the_field(tiny_data, tmp_path):
    raw, ann = tiny_data
    path = raw / "arxiv_econ_qfin" / "econ.TH.tsv.xz"
    with lzma.open(path, "rt") as fh:
        text = fh.read()
    with lzma.open(path, "wt") as fh:
        fh.write(text.replace("primary_cat", "primary"))
    with pytest.raises(DataError, match=r"econ.TH.tsv.xz: missing column\(s\) \['primary_cat'\]"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


def test_bad_annotation_lines(tiny_data, tmp_path):
    raw, ann = tiny_data
    qa = ann / "arxiv_econ_qa.jsonl"
    good = qa.read_text()
    qa.write_text(good + '{"paper_id": "9999.99999", "question": "q", "answer": "a", "evidence": "e", "type": "data"}\n')
    with pytest.raises(DataError, match=r"arxiv_econ_qa.jsonl:\d+: paper_id '9999.99999' is not in the arXiv raw files"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)
    qa.write_text(good + "not json\n")
    with pytest.raises(DataError, match=r"arxiv_econ_qa.jsonl:\d+: not valid JSON"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)
    qa.write_text(good)
    sig = ann / "reuters_signal.jsonl"
    sig.write_text(sig.read_text() + json.dumps({"newid": 1, "signal": 2}) + "\n")
    with pytest.raises(DataError, match=r"reuters_signal.jsonl:\d+: field 'signal' must be 0 or 1"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


def test_previous_bundle_survives_failed_build(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    before = (out / "MANIFEST.json").read_bytes()
    (raw / "mmlu_econ" / "test" / "econometrics_test.csv").unlink()
    with pytest.raises(DataError):
        build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    assert (out / "MANIFEST.json").read_bytes() == before
    verify_bundle(out)


# ----------------------------------------------------------------------------- the real shared data
def test_real_bundle_counts(real_bundle):
    out, m = real_bundle
    rows = {k: v["rows"] for k, v in m["files"].items()}
    assert rows["econ_classify/test.jsonl"] == 700 and rows["econ_titles/test.jsonl"] == 700
    assert rows["econ_classify/validation.jsonl"] == 300
    # 592 EM + 340 GN + 191 TH + 380 q-fin.EC up to 2019, 6,814 from 2020-2024 less one resubmission (SOURCE.md)
    assert sum(rows[f"econ_classify/{s}.jsonl"] for s in SPLITS) == 592 + 340 + 191 + 380 + 6814 - 1
    assert m["stats"]["arxiv_papers"]["listed_twice_dropped"] == ["2311.00013"]
    assert rows["econ_classify/train.jsonl"] > 7000  # the LLaMA-2-Econ study's scale
    test_by_year = m["stats"]["econ_classify_by_year"]["test"]
    for year in ("2020", "2021", "2022", "2023", "2024"):
        assert sum(test_by_year[year].values()) == 70 and set(test_by_year[year]) == {"econ.EM", "econ.GN", "econ.TH"}
    assert sum(rows[f"econ_qa/{s}.jsonl"] for s in SPLITS) == 2226
    assert rows["econ_signal/test.jsonl"] == 750
    assert rows["econ_signal/train.jsonl"] + rows["econ_signal/validation.jsonl"] == 2000
    assert rows["econ_mmlu/test.jsonl"] == 114 + 390 + 238  # the unanswerable macro item dropped
    assert m["stats"]["signal_annotator_agreement"]["cohen_kappa"] == pytest.approx(0.82, abs=0.01)
    _assert_no_paper_leak(out)
    verify_bundle(out)


def test_real_bundle_is_deterministic(real_bundle, tmp_path):
    from .conftest import REAL_ANNOTATIONS, REAL_RAW

    _, m = real_bundle
    again = build_bundle(REAL_RAW, REAL_ANNOTATIONS, tmp_path / "again", log=lambda s: None)
    assert again["files"] == m["files"]


def test_real_qa_evidence_is_in_abstract(real_bundle):
    out, _ = real_bundle
    for s in SPLITS:
        for r in _rows(out, "econ_qa", s):
            assert r["evidence"] in r["abstract"], r["qa_id"]


def test_real_bundle_matches_the_published_fingerprints(real_bundle):
    """The fingerprints the leaderboard checks results against are those of a real build from shared/."""
    from econ_eval.data.build import published_fingerprints

    _, m = real_bundle
    assert m["bundle_version"] == "2.0" and m["test_fingerprints"] == published_fingerprints("2.0")


def test_real_bundle_2_keeps_bundle_1_test_and_never_tests_on_its_training_papers(real_bundle):
    """Issue #14: every 1.0 test paper is a 2.0 test paper (same documents, byte for byte), and no paper of
    1.0's train or validation splits is in 2.0's test split, so adapters trained on 1.0 do not leak."""
    from econ_eval.data import sources
    from econ_eval.data.build import build_arxiv_tasks, ids_fingerprint, published_fingerprints

    from .conftest import REAL_ANNOTATIONS, REAL_RAW

    out, _ = real_bundle
    snapshot = sources.load_arxiv(REAL_RAW)
    v1 = build_arxiv_tasks(snapshot, sources.load_qa(REAL_ANNOTATIONS, snapshot), mode="random", seed=1234)
    v1_ids = {s: {r["paper_id"] for r in v1["econ_classify"][s]} for s in SPLITS}
    test2 = _rows(out, "econ_classify", "test")
    old_part = [r for r in test2 if r["created"] < "2020"]
    assert {r["paper_id"] for r in old_part} == v1_ids["test"] and len(old_part) == 350
    assert old_part == v1["econ_classify"]["test"]  # the same rows, in the same order
    # ... and they are the published 1.0 test documents
    assert ids_fingerprint([r["paper_id"] for r in old_part]) == \
        published_fingerprints("1.0")["econ_classify"]["test_ids_sha256"]
    for task in ("econ_titles", "econ_qa"):
        assert {r["paper_id"] for r in _rows(out, task, "test")} & (v1_ids["train"] | v1_ids["validation"]) == set()
    assert {r["paper_id"] for r in test2} & (v1_ids["train"] | v1_ids["validation"]) == set()
    assert len([r for r in test2 if r["created"] >= "2020"]) == 350
    # QA follows its paper and covers papers up to 2019 only: 2.0's QA test is 1.0's
    assert published_fingerprints("2.0")["econ_qa"] == published_fingerprints("1.0")["econ_qa"]
    _assert_no_paper_leak(out)


def test_bundle_2_split_keeps_the_snapshot_split_whatever_is_added(tiny_data):
    """The 2019 papers split the same with or without the 2020-2024 papers (the 1.0-compatibility rule)."""
    from econ_eval.data import sources
    from econ_eval.data.build import build_arxiv_tasks, merge_papers

    raw, ann = tiny_data
    snapshot = sources.load_arxiv(raw)
    qa = sources.load_qa(ann, snapshot)
    merged, dropped = merge_papers(snapshot, sources.load_arxiv_recent(raw))
    recent = {pid: p for pid, p in merged.items() if pid not in snapshot}
    sizes = dict(n_test=9, n_val=6)
    alone = build_arxiv_tasks(snapshot, qa, mode="random", seed=7, **sizes)
    both = build_arxiv_tasks(snapshot, qa, mode="random", seed=7, recent=recent, n_recent_test=5, n_recent_val=5,
                             **sizes)
    for s in SPLITS:
        assert [r for r in both["econ_classify"][s] if r["paper_id"] in snapshot] == alone["econ_classify"][s]
        assert both["econ_qa"][s] == alone["econ_qa"][s]
    assert dropped == ["2105.99999"]


@pytest.mark.parametrize("row,message", [
    ({"id": "2001.0001x"}, r"arxiv_econ_2020.csv.gz:2: field 'id' must be a new-style arXiv id"),
    ({"submitted_date": "2020-13-01"}, r":2: field 'submitted_date' must be a date YYYY-MM-DD"),
    ({"categories": "q-fin.GN econ.GN"}, r":2: field 'categories' must start with the econ.\* primary"),
    ({"abstract": "   "}, r":2: field 'abstract' is empty \(paper 2001.00001\)"),
])
def test_recent_source_bad_rows_name_file_line_and_field(tmp_path, row, message):
    from econ_eval.data.sources import read_recent_arxiv_file

    from .conftest import write_recent_csv

    good = {"id": "2001.00001", "submitted_date": "2020-01-02", "categories": "econ.EM", "title": "T  x",
            "abstract": "An  abstract."}
    path = tmp_path / "arxiv_econ_2020.csv.gz"
    write_recent_csv(path, [good])
    paper = read_recent_arxiv_file(path)[0]
    assert (paper.paper_id, paper.created, paper.primary_cat, paper.title) == ("2001.00001", "2020-01-02", "econ.EM", "T x")
    write_recent_csv(path, [{**good, **row}])
    with pytest.raises(DataError, match=message):
        read_recent_arxiv_file(path)


def test_recent_source_bad_files(tmp_path):
    import gzip

    from econ_eval.data.sources import read_recent_arxiv_file

    path = tmp_path / "arxiv_econ_2020.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("id,submitted_date,title\n2001.00001,2020-01-02,T\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['categories', 'abstract'\]"):
        read_recent_arxiv_file(path)
    with gzip.open(path, "wt") as fh:
        fh.write("id,submitted_date,categories,title,abstract\n2001.00001,2020-01-02,econ.EM,T\n")
    with pytest.raises(DataError, match=r":2: wrong number of columns"):
        read_recent_arxiv_file(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"cannot read as gzip-compressed UTF-8 CSV"):
        read_recent_arxiv_file(path)


# ----------------------------------------------------------------------------- regressions (issue: bad input)
def test_build_never_deletes_a_folder_it_did_not_make(tiny_data, tmp_path):
    """Regression (#1): `data build --out DIR` deleted whatever DIR held."""
    raw, ann = tiny_data
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    with pytest.raises(DataError, match=r"mine: folder is not empty and holds no econ-eval bundle"):
        build_bundle(raw, ann, mine, log=lambda s: None, **TINY_SIZES)
    assert (mine / "keep.txt").read_text() == "x" and sorted(p.name for p in mine.iterdir()) == ["keep.txt"]
    # a bundle with a stranger file in it is not provably ours either
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    (out / "notes.md").write_text("mine")
    with pytest.raises(DataError, match="refusing to replace it"):
        build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    assert (out / "notes.md").is_file()
    # our own bundle is replaced (atomically), an empty folder is used
    (out / "notes.md").unlink()
    build_bundle(raw, ann, out, seed=7, log=lambda s: None, **TINY_SIZES)
    assert verify_bundle(out)["build_args"]["seed"] == 7
    (tmp_path / "empty").mkdir()
    build_bundle(raw, ann, tmp_path / "empty", log=lambda s: None, **TINY_SIZES)
    assert not list(tmp_path.glob(".*building*")) and not list(tmp_path.glob(".*old*"))


def test_out_pointing_at_a_file_is_a_clear_error(tiny_data, tmp_path):
    """Regression (#12): `--out FILE` gave a traceback and left a `*.building/` folder behind."""
    raw, ann = tiny_data
    target = tmp_path / "bundle.txt"
    target.write_text("user data")
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "data", "build", "--raw", str(raw),
                           "--annotations", str(ann), "--out", str(target)], capture_output=True, text=True)
    assert proc.returncode == 2 and "bundle.txt: exists and is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr and target.read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.txt", "shared"]


def test_missing_raw_folder_says_what_is_needed_and_where_from(tmp_path):
    """Regression (#14): without ../shared, the build must list the raw sources and their origin."""
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "data", "build", "--raw", str(tmp_path / "none"),
                           "--annotations", str(tmp_path / "none2"), "--out", str(tmp_path / "b")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    for needed in ("arxiv_econ_qfin/", "staeiou/arxiv_archive", "reuters21578/", "Reuters-21578", "mmlu_econ/",
                   "hendrycks/test", "arxiv_econ_qa.jsonl", "ECON_EVAL_RAW"):
        assert needed in proc.stderr, needed


def test_duplicate_and_conflicting_annotation_lines(tiny_data, tmp_path):
    """Regression (#5): the same story twice with labels 0 and 1 went into train twice; QA duplicates kept."""
    raw, ann = tiny_data
    sig = ann / "reuters_signal.jsonl"
    good = sig.read_text()
    first = json.loads(good.splitlines()[0])
    sig.write_text(good + json.dumps(dict(first, signal=1 - first["signal"])) + "\n")
    with pytest.raises(DataError, match=rf"reuters_signal.jsonl:\d+: conflicts with line 1: story {first['newid']}"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)
    # an exact duplicate is dropped and reported, not trained on twice
    sig.write_text(good + good.splitlines()[0] + "\n")
    qa = ann / "arxiv_econ_qa.jsonl"
    qa_good = qa.read_text()
    qa.write_text(qa_good + qa_good.splitlines()[3] + "\n")
    logged = []
    m = build_bundle(raw, ann, tmp_path / "y", log=logged.append, **TINY_SIZES)
    assert m["stats"]["duplicate_annotation_lines"] == {"arxiv_econ_qa.jsonl": 1, "reuters_signal.jsonl": 1}
    assert any("duplicate line(s) in reuters_signal.jsonl" in line for line in logged)
    ids = [r["newid"] for s in SPLITS for r in _rows(tmp_path / "y", "econ_signal", s)]
    assert len(ids) == len(set(ids))
    qa_ids = [(r["paper_id"], r["question"]) for s in SPLITS for r in _rows(tmp_path / "y", "econ_qa", s)]
    assert len(qa_ids) == len(set(qa_ids))
    # the same question about the same paper with another answer is a conflict
    row = json.loads(qa_good.splitlines()[3])
    qa.write_text(qa_good + json.dumps(dict(row, answer="Something else.")) + "\n")
    with pytest.raises(DataError, match=r"arxiv_econ_qa.jsonl:\d+: conflicts with line 4"):
        build_bundle(raw, ann, tmp_path / "z", log=lambda s: None, **TINY_SIZES)


@pytest.mark.parametrize("bad,message", [
    ({"evidence": None}, r"arxiv_econ_qa.jsonl:\d+: field 'evidence' must be a non-empty string, got None"),
    ({"answer": 42}, r"arxiv_econ_qa.jsonl:\d+: field 'answer' must be a non-empty string"),
])
def test_bad_qa_field_types_name_line_and_field(tiny_data, tmp_path, bad, message):
    """Regression (#12): `evidence: null` crashed with an AttributeError naming no file."""
    raw, ann = tiny_data
    qa = ann / "arxiv_econ_qa.jsonl"
    row = json.loads(qa.read_text().splitlines()[0])
    qa.write_text(qa.read_text() + json.dumps(dict(row, question="A new question?", **bad)) + "\n")
    with pytest.raises(DataError, match=message):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


@pytest.mark.parametrize("bad,message", [
    ({"newid": "abc"}, r"reuters_signal.jsonl:\d+: field 'newid' must be an integer, got 'abc'"),
    ({"signal": False}, r"reuters_signal.jsonl:\d+: field 'signal' must be an integer \(0 or 1\), got False"),
    ({"signal": "1"}, None),  # a digit string is read as the number
])
def test_bad_signal_field_types_name_line_and_field(tiny_data, tmp_path, bad, message):
    """Regression (#9, #12): `newid: "abc"` gave a ValueError traceback; `signal: false` was accepted."""
    raw, ann = tiny_data
    sig = ann / "reuters_signal.jsonl"
    lines = sig.read_text().splitlines()
    row = json.loads(lines[0])
    sig.write_text("\n".join([json.dumps(dict(row, **bad))] + lines[1:]) + "\n")
    if message is None:
        m = build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)
        assert m["files"]["econ_signal/train.jsonl"]["rows"] > 0
        return
    with pytest.raises(DataError, match=message):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


def test_invalid_manifest_json_names_the_file(tiny_data, tmp_path):
    """Regression (#12): an invalid MANIFEST.json gave a JSONDecodeError naming no file."""
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    (out / "MANIFEST.json").write_text('{"bundle_version": "1.0", ')
    with pytest.raises(DataError, match=r"MANIFEST.json: bundle manifest is not valid JSON \(line 1"):
        verify_bundle(out)


def test_readme_data_card_is_generated_from_a_real_build(real_bundle):
    """The data card's counts are what `econ-eval data card` makes from a build of the shared data."""
    from econ_eval.data.build import data_card_tables
    from econ_eval.config import REPO_ROOT
    from econ_eval.readme_blocks import read_block

    block = read_block((REPO_ROOT / "README.md").read_text(), "data-card")
    assert block is not None and block.strip() == data_card_tables(real_bundle[1]).strip()
    assert "| 2024 | 544 | 759 | 396 | 1,699 | 70 | 30 |" in block  # SOURCE.md's 2024 row, 70 test papers


# ----------------------------------------------------------------------------- sentence tasks (FOMC, FPB)
def test_tiny_sentence_tasks(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    m = build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    fomc = {s: _rows(out, "econ_fomc", s) for s in SPLITS}
    assert [len(fomc[s]) for s in ("test", "validation", "train")] == [9, 6, 36 - 15]  # 36 distinct sentences
    texts = [r["text"] for s in SPLITS for r in fomc[s]]
    assert len(texts) == len(set(texts)) == 36 and "Inflation was a concern." not in texts
    assert {r["label"] for r in fomc["test"]} == {"dovish", "hawkish", "neutral"}
    assert all(r["id"].startswith("fomc-") and "  " not in r["text"] for r in fomc["train"])
    assert m["stats"]["sentence_tasks"]["dropped"]["fomc_conflicting_sentences"] == 1
    assert m["stats"]["sentence_tasks"]["dropped"]["fomc_repeated_rows"] == 2  # the repeat + the 2nd label
    fpb = {s: _rows(out, "econ_fpb", s) for s in SPLITS}
    assert sum(len(v) for v in fpb.values()) == 24 and len(fpb["test"]) == 6
    agreement = {r["text"]: r["agreement"] for s in SPLITS for r in fpb[s]}
    assert agreement["Company 0 reported negative news , says CEO Åke ."] == 100  # decoded alike in both encodings
    assert agreement["Company 3 reported positive news , says CEO Åke ."] == 75
    assert agreement["Company 7 reported neutral news , says CEO Åke ."] == 50
    assert "Profit was flat ." not in agreement  # two labels: dropped
    _assert_no_sentence_leak(out)


def _assert_no_sentence_leak(bundle):
    for task in ("econ_fomc", "econ_fpb"):
        held = {r["text"] for s in ("validation", "test") for r in _rows(bundle, task, s)}
        assert not held & {r["text"] for r in _rows(bundle, task, "train")}, task


@pytest.mark.parametrize("row,message", [
    ('"A sentence.",2010,3,mm', r"fomc_sentences.csv:3: field 'label' must be 0 \(dovish\), 1 \(hawkish\) or 2"),
    ('"A sentence.",2010,1,tv', r":3: field 'source' must be one of \['mm', 'pc', 'sp'\]"),
    ('"",2010,1,mm', r":3: field 'sentence' is empty"),
])
def test_bad_fomc_rows_name_line_and_field(tiny_data, tmp_path, row, message):
    raw, ann = tiny_data
    path = raw / "fomc_hawkish_dovish" / "fomc_sentences.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1], row] + lines[2:]) + "\n")
    with pytest.raises(DataError, match=message):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


def test_bad_fpb_line_names_file_and_line(tiny_data, tmp_path):
    raw, ann = tiny_data
    path = raw / "financial_phrasebank" / "Sentences_75Agree.txt"
    path.write_bytes(path.read_bytes() + b"No label on this line\n")
    with pytest.raises(DataError, match=r"Sentences_75Agree.txt:\d+: expected 'sentence@label'"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


def test_real_sentence_task_counts(real_bundle):
    out, m = real_bundle
    rows = {k: v["rows"] for k, v in m["files"].items()}
    # FOMC: 2,173 rows, 2,127 distinct sentences, 5 with conflicting labels dropped (SOURCE.md)
    assert [rows[f"econ_fomc/{s}.jsonl"] for s in ("train", "validation", "test")] == [2122 - 425 - 212, 212, 425]
    # FPB: 4,846 lines of the 50% file, 4,838 distinct, 2 with two labels dropped; FinBen's test/validation sizes
    assert [rows[f"econ_fpb/{s}.jsonl"] for s in ("train", "validation", "test")] == [4836 - 970 - 776, 776, 970]
    assert m["stats"]["sentence_tasks"]["test_labels"]["econ_fpb"] == {"negative": 121, "neutral": 576,
                                                                        "positive": 273}
    _assert_no_sentence_leak(out)


def test_tiny_headlines_are_yes_no_questions_split_by_headline(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    rows = {s: _rows(out, "econ_headlines", s) for s in SPLITS}
    assert [len(rows[s]) for s in ("test", "validation", "train")] == [8 * 7, 4 * 7, (24 - 12) * 7]  # repeat dropped
    per_headline = Counter(r["headline_id"] for s in SPLITS for r in rows[s])
    assert set(per_headline.values()) == {7}
    ids = {s: {r["headline_id"] for r in rows[s]} for s in SPLITS}
    assert not ids["test"] & ids["train"] and not ids["validation"] & ids["train"]
    first = {r["label_type"]: r["label"] for r in rows["train"] + rows["test"] + rows["validation"]
             if r["text"] == "gold positive news 0"}
    assert first == {"price_or_not": 1, "direction_up": 1, "direction_constant": 0, "direction_down": 0,
                     "asset_comparison": 0, "past_information": 1, "future_information": 1}


def test_fiqa_scores_map_to_classes_with_pixius_thresholds():
    """PIXIU's data/fiqasa/preprocess.py: score < -0.1 Negative, < 0.1 Neutral, else Positive (boundaries included)."""
    assert [sources.fiqa_label(x) for x in (-1, -0.1001, -0.1, 0.0, 0.0999, 0.1, 1)] == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]


def test_tiny_fiqasa_documents_per_target_split_by_text(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    m = build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    rows = {s: _rows(out, "econ_fiqasa", s) for s in SPLITS}
    texts = {s: {r["text_id"] for r in rows[s]} for s in SPLITS}
    assert [len(texts[s]) for s in ("test", "validation", "train")] == [8, 4, 25 - 12]  # 25 distinct texts
    assert not texts["test"] & texts["train"] and not texts["validation"] & texts["train"]
    assert m["stats"]["sentence_tasks"]["dropped"]["fiqasa_repeated_texts"] == 1
    docs = [r for s in SPLITS for r in rows[s]]
    two = sorted((r["target"], r["label"], r["score"]) for r in docs if r["text"] == "Co1 buys Co2")
    assert two == [("Co1", "positive", 0.4), ("Co2", "negative", -0.3)]  # one document per target
    by_text = {r["text"]: r for r in docs}
    assert by_text["headline train 1: shares of Co1 move"]["label"] == "neutral"  # -0.1 is not below -0.1
    assert by_text["post test 3: shares of Co3 move"]["label"] == "positive"  # 0.1 is positive
    assert by_text["post train 0: shares of Co0 move"]["aspect"] == "Market/Volatility"  # malformed list read
    assert {r["type"] for r in docs} == {"headline", "post"} and len({r["id"] for r in docs}) == len(docs)
    assert "towards Co1" in tasks.task("econ_fiqasa").prompt(by_text["headline train 1: shares of Co1 move"])


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["headlinetest2"]["info"][0].update(sentiment_score="high"),
     r"task1_headline_ABSA_test.json: item 'headlinetest2', info\[0\]: field 'sentiment_score' must be a number"),
    (lambda d: d["headlinetest2"]["info"][0].update(sentiment_score="1.5"),
     r"item 'headlinetest2', info\[0\]: field 'sentiment_score' must be in \[-1, 1\]"),
    (lambda d: d["headlinetest2"]["info"][0].pop("target"), r"item 'headlinetest2', info\[0\]: field 'target'"),
    (lambda d: d["headlinetest2"].update(sentence=""), r"item 'headlinetest2': field 'sentence' is missing"),
    (lambda d: d["headlinetest2"].update(info=[]), r"item 'headlinetest2': field 'info' must be a non-empty list"),
])
def test_bad_fiqa_items_name_file_item_and_field(tiny_data, tmp_path, mutate, message):
    _assert_bad_json_source(tiny_data, tmp_path, "fiqa_task1/task1_headline_ABSA_test.json", mutate, message)


def _assert_bad_json_source(tiny_data, tmp_path, rel, mutate, message):
    """Change one raw JSON source of the tiny tree with ``mutate``; the build must fail with ``message``."""
    raw, ann = tiny_data
    path = raw / rel
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)
    path.write_text("{not json")
    with pytest.raises(DataError, match=rf"{rel.split('/')[-1]}: not valid JSON"):
        build_bundle(raw, ann, tmp_path / "x", log=lambda s: None, **TINY_SIZES)


def test_real_fiqasa_counts_are_pixius_size(real_bundle):
    """1,111 texts, 1,173 annotations (the repository's files hold FiQA's whole task-1 training release); the
    test split of 220 texts holds about as many documents and labels as PIXIU's 235-row test (76/18/141)."""
    out, m = real_bundle
    rows = {k: v["rows"] for k, v in m["files"].items()}
    assert sum(rows[f"econ_fiqasa/{s}.jsonl"] for s in SPLITS) == 1173
    assert m["stats"]["sentence_tasks"]["test_labels"]["econ_fiqasa"] == {"negative": 74, "neutral": 18,
                                                                           "positive": 139}
    test = _rows(out, "econ_fiqasa", "test")
    assert len({r["text_id"] for r in test}) == 220
    held = {r["text_id"] for s in ("validation", "test") for r in _rows(out, "econ_fiqasa", s)}
    assert not held & {r["text_id"] for r in _rows(out, "econ_fiqasa", "train")}


def test_tiny_tatqa_split_by_context(tiny_data, tmp_path):
    raw, ann = tiny_data
    out = tmp_path / "bundle"
    build_bundle(raw, ann, out, log=lambda s: None, **TINY_SIZES)
    rows = {s: _rows(out, "econ_tatqa", s) for s in SPLITS}
    contexts = {s: {r["context_id"] for r in rows[s]} for s in SPLITS}
    assert [len(contexts[s]) for s in ("test", "validation", "train")] == [3, 2, 4]
    assert all(c.startswith("test_gold") for c in contexts["test"])  # test from the gold-labelled test file
    assert all(c.startswith("dev") for s in ("validation", "train") for c in contexts[s])
    assert [len(rows[s]) for s in ("test", "validation", "train")] == [15, 10, 20]
    q = {r["answer_type"] + r["scale"]: r for r in rows["test"]}
    assert q["count"]["answer"] == ["2"] and q["arithmeticpercent"]["answer"] == ["12.5"]
    assert q["multi-span"]["answer"] == ["2019", "2018"] and q["span"]["paragraphs"] == ["First paragraph.",
                                                                                       "Second paragraph."]
    prompt = tasks.task("econ_tatqa").prompt(q["span"])
    assert "Revenue | 1,234 | (56)" in prompt and prompt.index("First paragraph") < prompt.index("Second")
    assert tasks.task("econ_tatqa").target(q["arithmeticthousand"]) == "-56 thousand"
    assert tasks.task("econ_tatqa").target(q["arithmeticpercent"]) == "12.5%"


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d[1]["questions"][2].update(answer_type="date"), r"context 1, question 2 \(uid test_gold1-q2\): "
                                                                r"field 'answer_type' must be one of"),
    (lambda d: d[0]["questions"][2].update(answer="twelve"), r"context 0, question 2 .*an arithmetic answer must be a number"),
    (lambda d: d[0]["questions"][0].update(answer="Revenue"), r"a span answer must be a non-empty list of strings"),
    (lambda d: d[0]["questions"][0].update(scale="percentage"), r"field 'scale' must be one of"),
    (lambda d: d[0].pop("table"), r"tatqa_dataset_test_gold.json: context 0: field 'table' must be an object"),
])
def test_bad_tatqa_items_name_file_context_and_field(tiny_data, tmp_path, mutate, message):
    _assert_bad_json_source(tiny_data, tmp_path, "tatqa/tatqa_dataset_test_gold.json", mutate, message)


def test_real_tatqa_counts(real_bundle):
    """A seeded 50-context subset of the gold test file (300 of 1,663 questions); validation 20 dev contexts,
    train the other 258 (1,668 dev questions in all)."""
    out, m = real_bundle
    rows = {k: v["rows"] for k, v in m["files"].items()}
    assert rows["econ_tatqa/test.jsonl"] == 300
    assert rows["econ_tatqa/validation.jsonl"] + rows["econ_tatqa/train.jsonl"] == 1668
    test = _rows(out, "econ_tatqa", "test")
    assert len({r["context_id"] for r in test}) == 50
    assert Counter(r["answer_type"] for r in test) == {"span": 141, "arithmetic": 124, "multi-span": 32, "count": 3}


def test_real_headlines_counts(real_bundle):
    out, m = real_bundle
    rows = {k: v["rows"] for k, v in m["files"].items()}
    assert rows["econ_headlines/test.jsonl"] == 300 * 7 and rows["econ_headlines/validation.jsonl"] == 150 * 7
    test = _rows(out, "econ_headlines", "test")
    assert Counter(r["label_type"] for r in test) == {t: 300 for t, _ in sources.HEADLINE_QUESTIONS}
