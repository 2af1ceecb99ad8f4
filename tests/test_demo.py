"""The Space: unit logic, its endpoints through gradio_client, and a click in headless Chromium.

The app is launched for real (``python demo/app.py``) on 127.0.0.1 with the embedded model and the
published CPU LoRA adapter, with a tiny generation length.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from econ_eval import space
from econ_eval.io import DataError

REPO = Path(__file__).resolve().parent.parent
ADAPTER = REPO / "adapters" / "smollm2-135m-lora"


# ------------------------------------------------------------------ unit
def test_chunking_keeps_pages_and_overlaps():
    text = " ".join(f"word{i}" for i in range(600))
    chunks = space.chunk_pages("a.pdf", [(1, text), (2, "short page")], size=500, overlap=100)
    assert {c.page for c in chunks} == {1, 2} and all(len(c.text) <= 500 for c in chunks)
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert set(first[-5:]) & set(second[:20])  # consecutive chunks overlap
    assert " ".join(c.text for c in chunks if c.page == 1).count("word599") >= 1


def test_read_document_limits_and_types(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("x" * 2000)
    with pytest.raises(DataError, match=r"big.txt: .* over the .* limit"):
        space.read_document(big, max_bytes=1000)
    with pytest.raises(DataError, match="unsupported file type .docx"):
        space.read_document(tmp_path / "a.docx")
    empty = tmp_path / "empty.md"
    empty.write_text("   \n")
    with pytest.raises(DataError, match="no text found"):
        space.read_document(empty)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    with pytest.raises(DataError, match="not a readable PDF"):
        space.read_document(bad)


def _text_pdf(path: Path, pages: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["pdf.fonttype"] = 42
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for text in pages:
            fig = plt.figure(figsize=(8, 3))
            fig.text(0.05, 0.5, text, fontsize=10)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def test_pdf_pages_are_read_and_the_page_limit_holds(tmp_path):
    pdf = _text_pdf(tmp_path / "paper.pdf", ["Inflation in Ruritania was 7 percent.", "Rates rose by 50 basis points."])
    pages = space.read_document(pdf)
    assert [p for p, _ in pages] == [1, 2] and "50 basis points" in pages[1][1]
    with pytest.raises(DataError, match="2 pages is over the 1-page limit"):
        space.read_document(pdf, max_pages=1)


def test_pasted_docs_and_scores():
    with pytest.raises(DataError, match="needs a question"):
        space.pasted_doc("econ_qa", "some context")
    doc = space.pasted_doc("econ_signal", "ACME BIDS FOR XYZ\nAcme offered 10 dlrs a share.")
    assert doc["title"] == "ACME BIDS FOR XYZ" and "Acme offered" in space.gen_prompt("econ_signal", doc)
    cls = {"abstract": "a", "label": "econ.TH"}
    assert space.score_answer("econ_classify", cls, "Theoretical Economics") == "parsed: econ.TH — correct"
    assert space.score_answer("econ_signal", {"signal": 1}, "No.").endswith("wrong")
    assert space.score_answer("econ_titles", {"title": "A B C"}, "A B C").startswith("ROUGE-L 1.000")
    # the sentence tasks come through the registry too: pasted text, parsed answers, example labels
    fomc = space.pasted_doc(space.DEMO_TASKS["Monetary-policy stance"], "Rates should rise soon.")
    assert "Rates should rise soon." in space.gen_prompt("econ_fomc", fomc)
    assert space.score_answer("econ_fomc", {"label": "hawkish"}, "Hawkish.") == "parsed: hawkish — correct"
    assert space.score_answer("econ_fpb", {"label": "neutral"}, "It is positive") == "parsed: positive — wrong"
    assert space.example_label("econ_fpb", {"text": "Sales rose 5 % ."}, 0) == "1. Sales rose 5 % ."


def test_leaderboard_rows_filter_and_sort():
    rows = space.leaderboard_rows()
    assert rows and all(len(r) == len(space.LEADERBOARD_COLUMNS) for r in rows)
    baselines = space.filter_rows(rows, "baseline")
    assert baselines and all("baseline" in (r[1] + r[2]).lower() for r in baselines) and len(baselines) < len(rows)
    col = space.LEADERBOARD_COLUMNS.index("econ_classify")
    by_classify = space.filter_rows(rows, "", "econ_classify")
    values = [float(r[col].split()[0]) for r in by_classify if r[col] is not None]
    assert values == sorted(values, reverse=True) and len(values) == len(rows)
    # each score is shown with its 95% interval, which contains it
    for r in by_classify:
        score, lo, hi = (float(x) for x in r[col].replace("[", "").replace("]", "").replace(",", "").split())
        assert lo <= score <= hi
    assert [r[0] for r in space.filter_rows(rows)] == sorted(r[0] for r in rows)  # rank order by default


# ------------------------------------------------------------------ the running app
@pytest.fixture(scope="module")
def app_url(tmp_path_factory, real_bundle, llama):
    from econ_eval.judge.server import free_port

    if not ADAPTER.is_dir():
        pytest.skip("published adapter not found")
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "app.log"
    # test examples come from the bundle built from the real data (a clean clone has no data/econbench)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "ECON_EVAL_DATA": str(real_bundle[0])}
    env["ECON_EVAL_HOME"] = str(tmp_path_factory.mktemp("home"))  # the judge's reply cache
    proc, url = _launch([sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port), "--max-new-tokens", "6",
                         "--examples", "5", "--judge-model", llama.alias, "--judge-base-url", llama.base_url],
                        port, log, env)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.mark.slow
def test_compare_endpoint_returns_two_answers(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    name = next(e for e in endpoints if "compare" in e)
    base, tuned, gold, score = client.predict("Investment signal", "", "", "", api_name=name)
    assert base.strip() and tuned.strip() and gold in ("Yes", "No")
    assert "time to first token" in score and score.count("parsed:") == 2
    assert "judge" not in score  # no judge rubric applies to the signal task
    # a QA test example: the configured judge's pairwise verdict, both orders, with its calibration status
    base, tuned, gold, score = client.predict("Question answering", "", "", "", api_name=name)
    verdict = next(line for line in score.splitlines() if line.startswith("judge `smollm2-135m`"))
    assert "qa_correctness: **" in verdict and "tuned first: " in verdict and "base first: " in verdict
    assert any(words in verdict for words in space.VERDICT_WORDS.values())
    assert "calibrat" in verdict  # says whether the judge passed, failed or was never calibrated
    # pasted text works too (no gold answer)
    base, tuned, gold, _ = client.predict("Title generation", "", "We study minimum wages and teen employment.", "",
                                          api_name=name)
    assert base.strip() and tuned.strip() and "no gold" in gold


@pytest.mark.slow
def test_documents_endpoints_answer_with_sources(app_url, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    doc = tmp_path / "ruritania.md"
    doc.write_text("# Ruritania\n\nThe central bank of Ruritania raised its policy rate by 50 basis points.\n")
    pdf = _text_pdf(tmp_path / "memo.pdf", ["Unrelated memo about football.", "Wheat harvests fell by a third."])
    summary = client.predict([handle_file(str(doc)), handle_file(str(pdf))], api_name="/index_documents")
    assert "from 2 file(s)" in summary
    base, tuned, passages = client.predict("How much did the Ruritanian central bank raise rates?",
                                           api_name="/ask_documents")
    assert base.strip() and tuned.strip()
    assert passages.index("ruritania.md") < passages.index("memo.pdf, page")  # best source first, pages cited
    with pytest.raises(Exception, match="Invalid file type"):
        client.predict([handle_file(str(REPO / "pyproject.toml"))], api_name="/index_documents")


@pytest.mark.slow
def test_documents_endpoint_refuses_server_paths(app_url, tmp_path, monkeypatch):
    """Regression (#2): a FileData naming a server path was indexed and /ask_documents returned its text.

    The stock gradio_client uploads a path it can read itself; an attacker's client sends the path as it is,
    which is what this client does (its upload step is switched off). Gradio refuses paths outside its
    upload folder; a file inside that folder that this app's upload route never received (another app's
    or an earlier run's file in the shared /tmp/gradio) got through until the app checked its own uploads.
    """
    import uuid

    import gradio_client.client as gc
    from gradio.utils import get_upload_folder
    from gradio_client import Client

    monkeypatch.setattr(gc.Endpoint, "_upload_file", lambda self, f, data_index: f)  # send paths verbatim
    client = Client(app_url, verbose=False)
    planted = Path(get_upload_folder()) / uuid.uuid4().hex / "other-visitor.txt"
    planted.parent.mkdir(parents=True)
    planted.write_text("The vault code is 81-22-37. Someone else's upload.\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("The vault code is 81-22-37.\n")
    try:
        for path in (planted, outside, Path("/etc/hostname")):
            crafted = [{"path": str(path), "orig_name": "x.txt", "meta": {"_type": "gradio.FileData"}}]
            with pytest.raises(Exception) as err:
                client.predict(crafted, api_name="/index_documents")
            assert "81-22-37" not in str(err.value)
        with pytest.raises(Exception, match="upload documents and press 'Index documents' first"):
            client.predict("What is the vault code?", api_name="/ask_documents")  # nothing was indexed
    finally:
        shutil.rmtree(planted.parent, ignore_errors=True)


@pytest.mark.slow
def test_header_names_the_adapter_not_its_path(app_url):
    """Regression (#16): the header showed the server's adapter path."""
    with urllib.request.urlopen(app_url + "config", timeout=10) as resp:
        cfg = resp.read().decode()
    assert "smollm2-135m-lora" in cfg and "Model card: smollm2-135m-lora" in cfg
    assert str(ADAPTER) not in cfg and str(REPO) not in cfg and "/.cache/" not in cfg


def test_uploaded_paths_only_accepts_gradio_uploads(tmp_path):
    uploads = tmp_path / "gradio"
    (uploads / "abc").mkdir(parents=True)
    ok = uploads / "abc" / "doc.md"
    ok.write_text("x")
    assert space.uploaded_paths([str(ok)], {str(ok)}, uploads) == [ok.resolve()]
    outside = tmp_path / "etc.txt"
    outside.write_text("x")
    for files, accepted in (([str(outside)], {str(outside)}),          # outside the upload folder
                            ([str(uploads / "abc" / ".." / "abc" / "doc2.md")], {str(ok)}),  # never uploaded
                            ([{"path": str(outside)}], set())):
        with pytest.raises(DataError, match="not a file uploaded through this page"):
            space.uploaded_paths(files, accepted, uploads)


@pytest.mark.slow
def test_leaderboard_endpoint_filters(app_url):
    from gradio_client import Client

    table = Client(app_url, verbose=False).predict("baseline", "econ_signal", api_name="/leaderboard")
    assert table["data"] and all(row[2] == "baseline" for row in table["data"])  # [rank, system, method, ...]


def _chromium(tmp_path):
    """Headless Debian Chromium driven by selenium (skipped where it is not installed, failed in CI)."""
    chromium, driver_bin = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver_bin.exists()):
        if os.environ.get("CI"):
            pytest.fail("Chromium/ChromeDriver missing in CI: scripts/setup-test-system.sh should install them")
        pytest.skip("Debian chromium + chromium-driver not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(chromium)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1600", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(str(driver_bin)), options=opts)


def _launch(cmd: list[str], port: int, log: Path, env: dict, cwd: Path | None = None, timeout: float = 300):
    """Start an app and wait until it serves its page; returns (process, url)."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{cmd[1]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    pytest.fail(f"{cmd[1]} not serving after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_browser_click_compare_and_screenshot(app_url, tmp_path):
    """Headless Debian Chromium: load the page, click Compare, both answers appear, screenshot checked."""
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(tmp_path)
    try:
        driver.get(app_url)
        wait = WebDriverWait(driver, 120)
        button = wait.until(ec.element_to_be_clickable((By.ID, "compare-button")))
        button.click()

        def answers(d):
            vals = [d.find_element(By.CSS_SELECTOR, f"#{i} textarea").get_attribute("value")
                    for i in ("base-answer", "tuned-answer")]
            score = d.find_element(By.ID, "compare-score").text
            return vals if all(v.strip() for v in vals) and "time to first token" in score else False

        base, tuned = WebDriverWait(driver, 300).until(answers)
        shot = tmp_path / "compare.png"
        assert driver.save_screenshot(str(shot))
        # the screenshot shows both answer boxes filled: crop each box and check it has text pixels
        img = Image.open(shot).convert("L")
        scale = img.width / driver.execute_script("return window.innerWidth")
        for elem_id in ("base-answer", "tuned-answer"):
            el = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea")
            r = driver.execute_script("const r=arguments[0].getBoundingClientRect();"
                                      "return [r.left, r.top, r.right, r.bottom];", el)
            box = img.crop(tuple(int(v * scale) for v in r))
            lo, hi = box.getextrema()
            assert hi - lo > 80, f"{elem_id} looks empty in the screenshot"
        assert base.strip() and tuned.strip()
    finally:
        driver.quit()


# ------------------------------------------------------------------ the exported Space (#15)
def test_space_metadata_rules(tmp_path):
    from econ_eval.space.export import front_matter, validate_space_metadata

    validate_space_metadata(front_matter(REPO / "demo" / "README.md"))  # what we publish passes
    meta = front_matter(REPO / "demo" / "README.md")
    with pytest.raises(DataError, match=r"short_description' has 70 characters; the Hub allows 60"):
        validate_space_metadata(dict(meta, short_description="x" * 70))
    with pytest.raises(DataError, match="'sdk_version' is required"):
        validate_space_metadata({k: v for k, v in meta.items() if k != "sdk_version"})
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    from econ_eval.space.export import export_space

    with pytest.raises(DataError, match="refusing to overwrite it"):
        export_space(out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    broken = tmp_path / "broken-adapter"
    shutil.copytree(ADAPTER, broken, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"broken-adapter/adapter_model.safetensors: not a readable safetensors"):
        export_space(tmp_path / "new-space", adapter=broken)  # the same adapter check as `evaluate`
    assert not (tmp_path / "new-space").exists()


@pytest.mark.slow
def test_exported_space_runs_from_a_fresh_venv(real_bundle, tmp_path):
    """`econ-eval space export OUT`; OUT's requirements into a fresh venv; OUT's app launched from there with no
    bundle and no checkout on its path; /compare through gradio_client; the page in headless Chromium."""
    from gradio_client import Client

    from econ_eval.judge.server import free_port

    out = tmp_path / "space"
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "space", "export", str(out), "--examples", "3"],
                          capture_output=True, text=True, env={**os.environ, "ECON_EVAL_DATA": str(real_bundle[0])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {"app.py", "README.md", "requirements.txt", "econ_eval", "adapters",
                                              "results", "space_examples.jsonl"}
    assert not list(out.rglob("checkpoint-*")) and not list(out.rglob("training_args.bin"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile",
                          "--disable-pip-version-check", "-r", str(out / "requirements.txt"),
                          "-c", str(REPO / "constraints.txt")], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECON_EVAL_DATA", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", ECON_EVAL_DATA=str(tmp_path / "no-bundle"))
    app, url = _launch([str(venv / "bin" / "python"), str(out / "app.py"), "--port", str(port), "--max-new-tokens",
                        "4", "--examples", "3"], port, tmp_path / "space.log", env, cwd=tmp_path)
    try:
        client = Client(url, verbose=False)
        base, tuned, gold, score = client.predict("Investment signal", "", "", "", api_name="/compare")
        assert base.strip() and tuned.strip() and gold in ("Yes", "No") and score.count("parsed:") == 2
        table = client.predict("", "normalised_average", api_name="/leaderboard")
        assert table["data"]
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver = _chromium(tmp_path)
        try:
            driver.get(url)
            WebDriverWait(driver, 120).until(ec.element_to_be_clickable((By.ID, "compare-button")))
            header = driver.find_element(By.ID, "header").text
            assert "smollm2-135m-lora" in header and str(out) not in driver.page_source
        finally:
            driver.quit()
    finally:
        app.terminate()
        app.wait(30)
