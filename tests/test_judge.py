"""The judge against a real llama.cpp server on 127.0.0.1 (started here), plus failing endpoints.

Logged samples are real: the first lines of the embedded model's published econ_qa / econ_titles runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from http.server import HTTPServer
from pathlib import Path

import pytest

from econ_eval.judge.client import ChatClient, ReplyCache, base_url_host
from econ_eval.judge.rubrics import (JUDGE_PROMPT_VERSION, SCORE_SCHEMA, judge_messages, metrics_for_task,
                                     parse_judgement)
from econ_eval.io import DataError, read_jsonl
from econ_eval.judge.run import JudgeFailed, judge_run, load_judgeable, sample_files
from tests.http_stubs import StubHandler, chat_completion

REPO = Path(__file__).resolve().parent.parent
PUBLISHED_RUN = REPO / "results" / "smollm2-135m"


# ------------------------------------------------------------------ unit: prompts and parsing
@pytest.mark.parametrize("text,expected", [
    ('{"score": 7, "rationale": "good"}', 7.0),
    ('Sure! ```json\n{"score": 10, "rationale": "complete"}\n```', 10.0),
    ('{"score": 7.0, "rationale": "ok"}', 7.0),
    ('{"score": 0, "rationale": "x"}', math.nan),        # out of range
    ('{"score": 11, "rationale": "x"}', math.nan),
    ('{"score": "7", "rationale": "x"}', math.nan),      # strings are not scores
    ('{"score": 6.5, "rationale": "x"}', math.nan),
    ('{"score": true, "rationale": "x"}', math.nan),
    ('{"score": 5}', math.nan),                          # no rationale
    ("I would give it a 7", math.nan),                   # no guessing from prose
    ("", math.nan), (None, math.nan),
])
def test_parse_judgement_is_strict(text, expected):
    score, rationale = parse_judgement(text)
    if math.isnan(expected):
        assert math.isnan(score) and rationale is None
    else:
        assert score == expected and isinstance(rationale, str)


def test_judge_messages_carry_the_sample():
    sample = {"doc": {"question": "Q?", "answer": "REF", "evidence": "EVID", "abstract": "ABS", "title": "T"},
              "response": "RESP"}
    qa = judge_messages("qa_correctness", sample)[-1]["content"]
    assert all(x in qa for x in ("Q?", "REF", "EVID", "RESP"))
    title = judge_messages("title_quality", sample)[-1]["content"]
    assert all(x in title for x in ("ABS", "T", "RESP"))
    assert metrics_for_task("econ_qa_rag") == ["qa_correctness"] and metrics_for_task("econ_mmlu") == []
    with pytest.raises(ValueError, match="unknown judge metric"):
        judge_messages("vibes", sample)


def test_cache_key_depends_on_model_version_and_content(tmp_path):
    msgs = [{"role": "user", "content": "a"}]
    k = ReplyCache.key("m", "1", msgs, SCORE_SCHEMA)
    assert k == ReplyCache.key("m", "1", [{"role": "user", "content": "a"}], SCORE_SCHEMA)
    assert len({k, ReplyCache.key("m2", "1", msgs, SCORE_SCHEMA), ReplyCache.key("m", "2", msgs, SCORE_SCHEMA),
                ReplyCache.key("m", "1", [{"role": "user", "content": "b"}], SCORE_SCHEMA)}) == 4
    cache = ReplyCache(tmp_path / "c.sqlite")
    cache.put(k, "m", "1", "reply")
    assert ReplyCache(tmp_path / "c.sqlite").get(k) == "reply"  # persisted across instances


def test_base_url_host_never_records_secrets():
    assert base_url_host("https://user:sk-secret@api.example.com/v1?token=x") == "api.example.com"
    assert base_url_host("http://127.0.0.1:8090/v1") == "127.0.0.1:8090"


def test_no_key_for_a_remote_endpoint_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        ChatClient("gpt-4o", base_url="https://api.example.com/v1", cache=ReplyCache(tmp_path / "c.sqlite"))


# ------------------------------------------------------------------ fixtures: logged samples, servers
@pytest.fixture
def run_dir(tmp_path):
    """A run folder with the first 3 logged econ_qa and 2 econ_titles samples of the published base run."""
    if not PUBLISHED_RUN.is_dir():
        pytest.skip("published base run not found")
    out = tmp_path / "run"
    out.mkdir()
    for task, n in (("econ_qa", 3), ("econ_titles", 2)):
        src = sorted(PUBLISHED_RUN.glob(f"samples_{task}_*.jsonl"))[-1]
        lines = src.read_text().splitlines()[:n]
        (out / src.name).write_text("\n".join(lines) + "\n")
    return out


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


class _GarbageHandler(StubHandler):
    mode = "garbage"

    def body(self) -> bytes:
        if self.mode == "garbage":
            return b"<html>this is not JSON"
        return chat_completion("banana")  # a well-formed completion whose content is not a judgement


@pytest.fixture(params=["garbage", "nonsense"])
def bad_server(request):
    handler = type("H", (_GarbageHandler,), {"mode": request.param})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield request.param, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


# ------------------------------------------------------------------ end to end
def test_ready_means_the_server_completes_a_token(llama):
    """Regression (#13): "ready" used to mean /v1/models answered; an AMX-crashing build died on the first
    completion after that. start_llama_server (this fixture) now returns only after a real completion."""
    from econ_eval.judge.server import probe_completion

    assert isinstance(probe_completion(llama.base_url, llama.alias), str) and llama.proc.poll() is None


def test_load_judgeable_reads_logged_samples(run_dir):
    assert set(sample_files(run_dir)) == {"econ_qa", "econ_titles"}
    jobs = load_judgeable(run_dir)
    assert len(jobs) == 5 and {j["metric"] for j in jobs} == {"qa_correctness", "title_quality"}
    assert all(j["response"] for j in jobs)
    assert len(load_judgeable(run_dir, metrics=["title_quality"])) == 2
    with pytest.raises(ValueError, match="unknown judge metric"):
        load_judgeable(run_dir, metrics=["vibes"])


def test_judge_end_to_end_with_cache_and_resume(llama, run_dir, tmp_path):
    before = _snapshot(run_dir)
    cache = ReplyCache(tmp_path / "cache.sqlite")
    client = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_tokens=96)
    path = judge_run(run_dir, client, concurrency=2, progress=False, log=lambda m: None)
    report = json.loads(path.read_text())
    # lm-eval's files are untouched; ours is new
    after = _snapshot(run_dir)
    assert {k: v for k, v in after.items() if k in before} == before and path.name.startswith("judge_smollm2-135m_")
    assert report["judge_base_url_host"].startswith("127.0.0.1:") and report["judge_prompt_version"] == JUDGE_PROMPT_VERSION
    assert report["calls_made"] == 5 and report["cache_hits"] == 0 and report["complete"]
    qa = report["results"]["econ_qa/qa_correctness"]
    assert qa["n"] == 3 and qa["n_scored"] + qa["n_missing"] == 3
    # the small judge, constrained by the JSON schema, returns parseable scores
    assert qa["n_scored"] >= 2 and 1 <= qa["mean"] <= 10
    scored = [s for s in report["samples"] if s["score"] is not None]
    assert all(1 <= s["score"] <= 10 and isinstance(s["rationale"], str) for s in scored)

    # second run: zero calls, identical scores
    client2 = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_tokens=96)
    report2 = json.loads(judge_run(run_dir, client2, progress=False, log=lambda m: None).read_text())
    assert report2["calls_made"] == 0 and report2["cache_hits"] == 5
    assert [s["score"] for s in report2["samples"]] == [s["score"] for s in report["samples"]]


def test_budget_stops_cleanly_and_resumes(llama, run_dir, tmp_path):
    cache = ReplyCache(tmp_path / "cache.sqlite")
    client = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_calls=2, max_tokens=96)
    report = json.loads(judge_run(run_dir, client, metrics=["qa_correctness"], progress=False,
                                  log=lambda m: None).read_text())
    qa = report["results"]["econ_qa/qa_correctness"]
    assert not report["complete"] and report["calls_made"] == 2
    assert qa["missing_by_reason"].get("budget") == 1 and qa["n"] == 3
    # resume: the two judged samples come from the cache, only the third costs a call
    client2 = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_tokens=96)
    report2 = json.loads(judge_run(run_dir, client2, metrics=["qa_correctness"], progress=False,
                                   log=lambda m: None).read_text())
    assert report2["complete"] and report2["cache_hits"] == 2 and report2["calls_made"] == 1


def _only_report(run_dir: Path) -> dict:
    (path,) = run_dir.glob("judge_*.json")
    return json.loads(path.read_text())


def test_closed_port_fails_fast_and_is_not_complete(run_dir, tmp_path):
    """Regression (#6): a closed port used to cost retries for every sample and end "complete", exit 0."""
    from econ_eval.judge.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    client = ChatClient("judge", base_url=url, retries=1, backoff=0.01, timeout=5, cache=ReplyCache(tmp_path / "c.sqlite"))
    with pytest.raises(JudgeFailed, match=rf"no sample could be scored by judge at {url}.*unreachable: 3 "
                                          r"connection errors in a row"):
        judge_run(run_dir, client, progress=False, log=lambda m: None)
    report = _only_report(run_dir)  # the report is written all the same, with every sample missing
    for summary in report["results"].values():
        assert summary["n_scored"] == 0 and summary["mean"] is None
        assert summary["missing_by_reason"] == {"error": summary["n"]}
    assert report["calls_made"] == 3 and not report["complete"]  # 3 failed connections, then nothing sent
    assert "unreachable" in report["endpoint_error"] and url in report["endpoint_error"]
    # the CLI exits non-zero and names the endpoint
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "judge", str(run_dir), "--judge-model", "judge",
                           "--judge-base-url", url, "--retries", "0"], capture_output=True, text=True,
                          env={**os.environ, "ECON_EVAL_HOME": str(tmp_path / "home")})
    assert proc.returncode != 0 and url in proc.stderr and "no sample could be scored" in proc.stderr


def test_a_server_returning_garbage_gives_nan_not_a_crash(bad_server, run_dir, tmp_path):
    mode, url = bad_server
    client = ChatClient("judge", base_url=url, retries=0, timeout=5, cache=ReplyCache(tmp_path / "c.sqlite"))
    with pytest.raises(JudgeFailed):
        judge_run(run_dir, client, progress=False, log=lambda m: None)
    report = _only_report(run_dir)
    reason = "error" if mode == "garbage" else "unparseable"
    for summary in report["results"].values():
        assert summary["n_scored"] == 0 and summary["missing_by_reason"] == {reason: summary["n"]}
    assert report["complete"] == (reason == "unparseable")  # errors leave it incomplete (a rerun resumes)


@pytest.mark.parametrize("bad_server", ["nonsense"], indirect=True)  # well-formed replies that are no judgement
def test_unparseable_replies_are_not_cached_and_the_key_names_the_endpoint(bad_server, run_dir, tmp_path):
    """Regression (#8): NaN replies were cached and replayed, even against another endpoint."""
    _, url = bad_server
    cache = ReplyCache(tmp_path / "c.sqlite")
    with pytest.raises(JudgeFailed):
        judge_run(run_dir, ChatClient("judge", base_url=url, retries=0, cache=cache), progress=False,
                  log=lambda m: None)
    assert cache._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 0
    msgs = [{"role": "user", "content": "a"}]
    assert ReplyCache.key("m", "1", msgs, None, "http://127.0.0.1:1/v1") != \
        ReplyCache.key("m", "1", msgs, None, "http://127.0.0.1:2/v1")
    client = ChatClient("judge", base_url=url, cache=cache)
    reply = client.chat(msgs, prompt_version="t")  # accepted (no validator): cached under THIS endpoint
    assert reply.content == "banana" and client.chat(msgs, prompt_version="t").cached
    other = ChatClient("judge", base_url=url.replace("/v1", "/other/v1"), cache=cache, retries=0, timeout=2)
    assert not other.chat(msgs, prompt_version="t").cached  # same model name, other endpoint: no replay


def test_bad_limits_are_refused(run_dir, tmp_path):
    """Regression (#9): --limit 0 judged everything; --max-calls -5 was accepted."""
    with pytest.raises(ValueError, match="limit must be 1 or more"):
        load_judgeable(run_dir, limit=0)
    with pytest.raises(ValueError, match="max_calls"):
        ChatClient("m", base_url="http://127.0.0.1:9/v1", max_calls=-5, cache=ReplyCache(tmp_path / "c.sqlite"))
    for flag, value in (("--limit", "0"), ("--max-calls", "-5"), ("--concurrency", "0"), ("--timeout", "0")):
        proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "judge", str(run_dir), "--judge-model", "m",
                               flag, value], capture_output=True, text=True)
        assert proc.returncode == 2 and flag in proc.stderr and "must be" in proc.stderr


def test_judge_cli_reports_a_bad_run_dir(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "judge", str(tmp_path / "nope"),
                           "--judge-model", "m", "--judge-base-url", "http://127.0.0.1:9/v1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_serve_judge_cli_prints_the_base_url_and_stops(tmp_path):
    pytest.importorskip("llama_cpp")
    import os
    import signal

    from econ_eval.judge.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "econ_eval.cli", "serve-judge", "--port", str(port),
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in first, first + proc.stderr.read() if proc.poll() else first
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == "smollm2-135m"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(Exception):  # the server is gone with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)


# ------------------------------------------------------------------ annotate with the local server
def test_annotate_signal_appends_valid_lines_and_resumes(llama, tmp_path):
    from econ_eval.judge.annotate import annotate

    stories = [{"newid": 1, "date": "2-MAR-1987", "title": "TEXACO FILES FOR CHAPTER 11",
                "text": "Texaco Inc said it filed for protection under Chapter 11 of the bankruptcy code."},
               {"newid": 2, "date": "3-MAR-1987", "title": "ACME CORP QTR NET",
                "text": "Shr 10 cts vs nine cts Net 1.2 mln vs 1.1 mln Revs 20 mln vs 19 mln"}]
    inp, out = tmp_path / "stories.jsonl", tmp_path / "labels.jsonl"
    inp.write_text("".join(json.dumps(s) + "\n" for s in stories))
    client = ChatClient(llama.alias, base_url=llama.base_url, cache=ReplyCache(tmp_path / "c.sqlite"), max_tokens=80)
    counts = annotate("signal", inp, out, client, progress=False, log=lambda m: None)
    assert counts["annotated"] + counts["rejected"] + counts["errors"] == 2
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    assert len(lines) == counts["lines_written"]
    for line in lines:  # the format of shared/data/annotations/reuters_signal.jsonl
        assert set(line) == {"newid", "signal", "landmark", "reason"} and line["landmark"] <= line["signal"]
    again = annotate("signal", inp, out, client, progress=False, log=lambda m: None)
    assert again["already_done"] == counts["annotated"]


def test_annotation_validators():
    from econ_eval.judge.annotate import validate_qa_pairs, validate_signal

    abstract = "We study X. We find that Y rises by 3%."
    good, bad = validate_qa_pairs("p1", abstract, json.dumps({"pairs": [
        {"question": "In the study of X, what happens to Y?", "answer": "Y rises by 3%.",
         "evidence": "We find that Y rises by 3%.", "type": "finding"},
        {"question": "q", "answer": "a", "evidence": "not in the abstract", "type": "method"}]}))
    assert [g["paper_id"] for g in good] == ["p1"] and bad == ["evidence is not a verbatim substring of the abstract"]
    assert validate_qa_pairs("p1", abstract, "no json")[1]
    assert validate_signal(5, '{"signal": 1, "landmark": 0, "reason": "bid"}')[0] == \
        {"newid": 5, "signal": 1, "landmark": 0, "reason": "bid"}
    assert validate_signal(5, '{"signal": 0, "landmark": 1, "reason": "x"}') == (None, "landmark=1 requires signal=1")


def test_annotate_rejects_inputs_without_ids(tmp_path):
    from econ_eval.io import DataError
    from econ_eval.judge.annotate import annotate

    inp = tmp_path / "papers.jsonl"
    inp.write_text(json.dumps({"title": "t", "abstract": "a"}) + "\n")
    client = ChatClient("m", base_url="http://127.0.0.1:9/v1", cache=ReplyCache(tmp_path / "c.sqlite"))
    with pytest.raises(DataError, match=r"papers.jsonl: line 1: no 'id'"):
        annotate("qa", inp, tmp_path / "out.jsonl", client, progress=False)


def test_annotate_against_a_dead_endpoint_fails_loudly(tmp_path):
    """Regression (#6): `annotate` exited 0 when every call failed."""
    from econ_eval.judge.server import free_port

    inp = tmp_path / "stories.jsonl"
    inp.write_text("".join(json.dumps({"newid": i, "date": "1-MAR-1987", "title": f"T{i}", "text": "Body."}) + "\n"
                           for i in range(6)))
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "annotate", "signal", "--input", str(inp),
                           "--output", str(tmp_path / "out.jsonl"), "--judge-model", "m", "--judge-base-url", url,
                           "--retries", "0"], capture_output=True, text=True,
                          env={**os.environ, "ECON_EVAL_HOME": str(tmp_path / "home")})
    assert proc.returncode != 0 and "no item could be annotated" in proc.stderr and url in proc.stderr
    assert "unreachable: 3 connection errors in a row" in proc.stderr


# ------------------------------------------------------------------ calibration and the trust gate (#16)
def test_auc_and_spearman_on_hand_made_scores():
    from econ_eval.judge.calibration import auc, spearman, summarise

    assert auc([9, 8, 10], [1, 2, 3]) == 1.0 and auc([1, 2], [9, 8]) == 0.0
    assert auc([5, 5], [5, 5]) == 0.5  # a judge that gives everything the same score cannot tell
    assert auc([9, 5], [5, 1]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert auc([], [1]) is None
    assert spearman([0, 1, 2], [1, 5, 9]) == pytest.approx(1.0) and spearman([0, 1, 2], [9, 5, 1]) == pytest.approx(-1.0)
    assert spearman([0, 0, 1, 1], [3, 3, 3, 3]) is None  # constant scores: no correlation to speak of
    assert spearman([0, 1, 2, 2], [1, 2, 3, 3]) == pytest.approx(1.0)  # ties get average ranks
    rows = [dict(metric="qa_correctness", kind=k, expected=e, correct=c, score=s, status=st)
            for k, e, c, s, st in [("reference", 2, True, 9.0, "scored"), ("other_answer", 0, False, 9.0, "scored"),
                                    ("padded_other_answer", 0, False, 10.0, "scored"),
                                    ("empty", 0, False, None, "unparseable"), ("truncated", 1, None, 9.0, "scored")]]
    s = summarise(rows)["qa_correctness"]
    assert s["auc"] == pytest.approx(0.25) and s["length_bias"] == 1.0 and s["unparseable_rate"] == 0.2
    assert s["mean_score_by_kind"]["reference"] == 9.0 and s["n_scored"] == 4


def test_a_judge_that_answers_nothing_leaves_no_calibration_file(tiny_bundle, tmp_path):
    """Regression: an unreachable judge used to write an empty, incomplete calibration file (into the repo's
    results/ when a test ran `econ-eval judge` against a closed port)."""
    from econ_eval.judge.calibration import calibrate, trust_of
    from econ_eval.judge.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    client = ChatClient("nobody", base_url=url, retries=0, backoff=0.01, timeout=5,
                        cache=ReplyCache(tmp_path / "c.sqlite"))
    with pytest.raises(DataError, match=r"answered none of the \d+ calibration items.*nothing was saved"):
        calibrate(client, bundle=tiny_bundle, n=2, out_dir=tmp_path / "cal", log=lambda m: None)
    assert not (tmp_path / "cal").exists() or not any((tmp_path / "cal").iterdir())
    trust = trust_of(client, bundle=tiny_bundle, out_dir=tmp_path / "cal", log=lambda m: None)
    assert trust["trusted"] is None and "answered none" in trust["reason"]
    assert not (tmp_path / "cal").exists() or not any((tmp_path / "cal").iterdir())


def test_calibration_set_comes_from_validation_only(tiny_bundle):
    from econ_eval.judge.calibration import KINDS, calibration_items

    items = calibration_items(tiny_bundle, n=3)
    assert items == calibration_items(tiny_bundle, n=3)  # fixed
    val = {r["paper_id"] for r in read_jsonl(tiny_bundle / "econ_qa" / "validation.jsonl")}
    test = {r["paper_id"] for r in read_jsonl(tiny_bundle / "econ_qa" / "test.jsonl")}
    assert {i["doc"]["paper_id"] for i in items} <= val and not {i["doc"]["paper_id"] for i in items} & test
    kinds = [i["kind"] for i in items]
    for metric, per_kind in KINDS.items():
        for kind in per_kind:
            assert kinds.count(kind) == 3, kind
    qa = [i for i in items if i["metric"] == "qa_correctness" and i["doc_index"] == 0]
    by_kind = {i["kind"]: i["response"] for i in qa}
    assert by_kind["reference"] == qa[0]["doc"]["answer"] and by_kind["empty"] == ""
    assert by_kind["padded_other_answer"].startswith(by_kind["other_answer"]) and by_kind["other_answer"] != by_kind["reference"]


def test_calibrate_end_to_end_on_the_local_judge_and_cached(llama, tiny_bundle, tmp_path):
    from econ_eval.judge.calibration import calibrate, find_calibration

    cache = ReplyCache(tmp_path / "cache.sqlite")
    client = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_tokens=96)
    path = calibrate(client, bundle=tiny_bundle, n=2, concurrency=2, out_dir=tmp_path / "cal", log=lambda m: None)
    report = json.loads(path.read_text())
    assert path.name.startswith("judge_calibration_smollm2-135m_") and report["complete"]
    assert report["calls_made"] == 2 * 5 + 2 * 3 and len(report["items"]) == 16
    overall = report["results"]["all"]
    assert overall["auc"] is None or 0 <= overall["auc"] <= 1
    assert 0 <= overall["unparseable_rate"] <= 1 and report["trusted"] == (overall["auc"] is not None
                                                                            and overall["auc"] >= 0.8)
    found = find_calibration(llama.alias, llama.base_url, tmp_path / "cal")
    assert found["file"] == str(path) and found["auc"] == overall["auc"]
    # a second calibration costs no call
    client2 = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_tokens=96)
    again = json.loads(calibrate(client2, bundle=tiny_bundle, n=2, out_dir=tmp_path / "cal2",
                                 log=lambda m: None).read_text())
    assert again["calls_made"] == 0 and again["cache_hits"] == 16 and again["results"] == report["results"]


def test_judge_records_a_failed_calibration_and_warns(llama, run_dir, tmp_path, monkeypatch):
    """The gate: `econ-eval judge` looks up its judge's calibration, writes it into the report, and marks
    the scores trusted: false with a warning when the AUC is below 0.8."""
    from econ_eval.judge.calibration import CALIBRATION_VERSION

    results = tmp_path / "results"
    cal = results / "judge_calibration"
    cal.mkdir(parents=True)
    host = llama.base_url.split("//")[1].split("/")[0]
    (cal / "judge_calibration_smollm2-135m_2026-01-01T00-00-00.000001.json").write_text(json.dumps({
        "judge_model": llama.alias, "judge_base_url_host": host, "judge_prompt_version": JUDGE_PROMPT_VERSION,
        "calibration_version": CALIBRATION_VERSION, "complete": True, "trusted": False, "items_per_rubric": 20,
        "created": "2026-01-01", "results": {"all": {"auc": 0.55, "spearman": 0.1, "unparseable_rate": 0.0}}}))
    env = {**os.environ, "ECON_EVAL_RESULTS": str(results), "ECON_EVAL_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "judge", str(run_dir), "--judge-model", llama.alias,
                           "--judge-base-url", llama.base_url, "--limit", "1", "--metrics", "title_quality"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "failed calibration (AUC 0.550 < 0.8" in proc.stdout + proc.stderr
    report = _only_report(run_dir)
    assert report["trusted"] is False and report["calibration"]["auc"] == 0.55
    assert report["calls_made"] == 1  # the calibration was found, not re-run


# ------------------------------------------------------------------ pairwise (#16)
def test_pairwise_verdicts_count_only_when_both_orders_agree():
    from econ_eval.judge.pairwise import combine, win_rate_interval

    assert combine("A", "B") == "win" and combine("B", "A") == "loss" and combine("tie", "tie") == "tie"
    assert combine("A", "A") == "inconsistent"  # position bias: "whoever is first wins" is no verdict
    assert combine("tie", "B") == "inconsistent" and combine(None, "A") == "missing"
    w = win_rate_interval(["win", "win", "tie", "loss", "inconsistent", "missing"])
    assert w["win_rate"] == pytest.approx((1 + 1 + 0.5 + 0) / 4) and w["ci95"][0] <= w["win_rate"] <= w["ci95"][1]


def test_bradley_terry_orders_systems_by_their_games():
    from econ_eval.judge.pairwise import bradley_terry

    games = [(0, 1, 1.0)] * 8 + [(0, 1, 0.0)] * 2 + [(1, 2, 1.0)] * 8 + [(1, 2, 0.0)] * 2 + [(0, 2, 1.0)] * 9
    s = bradley_terry(3, games)
    assert s[0] > s[1] > s[2] and sum(s) == pytest.approx(0.0, abs=1e-9)
    equal = bradley_terry(2, [(0, 1, 1.0), (0, 1, 0.0), (0, 1, 0.5)])
    assert equal[0] == pytest.approx(equal[1])


class _AlwaysAHandler(StubHandler):
    def body(self) -> bytes:
        return chat_completion('{"winner": "A", "rationale": "the first one"}')


def test_pairwise_counts_a_position_biased_judge_as_inconsistent(run_dir, tmp_path):
    """A judge that always prefers the first answer gives no verdict at all: every pair is inconsistent."""
    from econ_eval.judge.pairwise import judge_pairwise

    other = tmp_path / "other"
    other.mkdir()
    for f in run_dir.glob("samples_*.jsonl"):  # the same documents, other answers
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        for r in rows:
            r["filtered_resps"] = ["A different answer about prices."]
        (other / f.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    httpd = HTTPServer(("127.0.0.1", 0), _AlwaysAHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = ChatClient("stub", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                            cache=ReplyCache(tmp_path / "c.sqlite"), retries=0)
        path = judge_pairwise([run_dir, other], client, out_dir=tmp_path / "pw", log=lambda m: None)
    finally:
        httpd.shutdown()
    report = json.loads(path.read_text())
    pair = report["pairs"]["run vs other"]
    assert pair["compared"] == 5 and pair["inconsistent"] == 5 and pair["consistent"] == 0
    assert pair["consistency_rate"] == 0.0 and pair["win_rate"] is None and report["calls_made"] == 10
    assert pair["position_bias"] == {"first_shown_rate": 1.0, "verdicts": 10, "ties": 0}  # the bias, measured


def test_position_bias_counts_single_order_verdicts():
    from econ_eval.judge.pairwise import position_bias

    items = [{"verdict_a_first": "A", "verdict_b_first": "B"}, {"verdict_a_first": "B", "verdict_b_first": "tie"},
             {"verdict_a_first": None, "verdict_b_first": "A"}]
    assert position_bias(items) == {"first_shown_rate": 0.5, "verdicts": 4, "ties": 1}
    assert position_bias([])["first_shown_rate"] is None


def test_pairwise_on_the_local_judge_both_orders_cached(llama, run_dir, tmp_path):
    from econ_eval.judge.pairwise import judge_pairwise

    other = tmp_path / "tuned"
    other.mkdir()
    for f in run_dir.glob("samples_econ_titles_*.jsonl"):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        for r in rows:
            r["filtered_resps"] = [r["doc"]["title"]]  # the true title: a strong judge prefers it
        (other / f.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache = ReplyCache(tmp_path / "cache.sqlite")
    client = ChatClient(llama.alias, base_url=llama.base_url, cache=cache, max_tokens=96)
    report = json.loads(judge_pairwise([run_dir, other], client, out_dir=tmp_path / "pw", concurrency=2,
                                       log=lambda m: None).read_text())
    pair = report["pairs"]["run vs tuned"]
    assert report["calls_made"] == 4 and pair["compared"] == 2  # 2 shared title documents x 2 orders
    assert pair["win"] + pair["tie"] + pair["loss"] + pair["inconsistent"] + pair["missing"] == 2
    assert all(it["verdict_a_first"] in ("A", "B", "tie", None) for it in report["items"])
    again = json.loads(judge_pairwise([run_dir, other], ChatClient(llama.alias, base_url=llama.base_url, cache=cache,
                                                                   max_tokens=96),
                                      out_dir=tmp_path / "pw2", log=lambda m: None).read_text())
    assert again["calls_made"] == 0 and again["pairs"] == report["pairs"]


def test_space_pairwise_verdict_on_the_local_judge(llama, tiny_bundle, tmp_path):
    """The Compare tab's verdict: tuned vs base in both orders on the real server, worded from the tuned
    side, with the judge's calibration status; a repeat is served from the cache."""
    from econ_eval.space.compare import VERDICT_WORDS, judge_verdict

    doc = read_jsonl(tiny_bundle / "econ_qa" / "test.jsonl")[0]
    client = ChatClient(llama.alias, base_url=llama.base_url, cache=ReplyCache(tmp_path / "c.sqlite"))
    text = judge_verdict(client, "econ_qa", doc, base_answer="", tuned_answer=doc["answer"],
                         calibration={"trusted": False, "auc": 0.52})
    assert client.calls == 2  # both orders asked
    assert text.startswith(f"judge `{llama.alias}` (FAILED calibration (AUC 0.520 < 0.8)")
    assert sum(words in text for words in VERDICT_WORDS.values()) == 1
    again = ChatClient(llama.alias, base_url=llama.base_url, cache=ReplyCache(tmp_path / "c.sqlite"))
    repeat = judge_verdict(again, "econ_qa", doc, "", doc["answer"], None)
    assert repeat.endswith(text[text.index("qa_correctness: "):]) and "(not calibrated: run" in repeat
    assert again.calls == 0 and again.cache_hits == 2
    assert judge_verdict(client, "econ_signal", doc, "No", "Yes") is None  # no rubric for the signal task
