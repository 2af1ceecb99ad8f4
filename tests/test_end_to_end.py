"""End to end on the real embedded model: fetch/convert, and a real lm_eval run of every econ_* task."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from econ_eval.config import native_bf16
from econ_eval.evaluate import WILDCARD_TASKS
from econ_eval.report import TASK_METRICS, task_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir():
    from econ_eval.models import fetch_model

    return fetch_model("smollm2-135m")


def test_converted_model_matches_gguf(model_dir):
    from transformers import AutoTokenizer, GenerationConfig

    from econ_eval.models import gguf_path, model_info

    info = model_info("smollm2-135m")
    assert info["probe_max_abs_logit_diff"] <= 1e-4
    assert gguf_path("smollm2-135m").stat().st_size > 50_000_000
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.model_max_length == 8192 and tok.chat_template
    gen = GenerationConfig.from_pretrained(model_dir)
    assert gen.eos_token_id == tok.eos_token_id and gen.pad_token_id is not None
    assert "dequantised Q4_1" in (model_dir / "README.md").read_text()


def test_models_path_prints_only_the_path(model_dir):
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "models", "path", "smollm2-135m"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == str(model_dir)


def test_unknown_model_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "models", "path", "gpt-17"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown model 'gpt-17'" in proc.stderr and "smollm2-135m" in proc.stderr


def test_lm_eval_runs_every_task(model_dir, bundle_env, tmp_path):
    env_results = tmp_path / "results"
    import os

    env = {**os.environ, "ECON_EVAL_RESULTS": str(env_results), "ECON_EVAL_DATA": str(bundle_env),
           "ECON_EVAL_CALIBRATION": str(tmp_path / "calibration.json")}
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "evaluate", "--tasks", "econ_*", "--limit", "3"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = env_results / "runs" / "smollm2-135m"
    results_files = list(run_dir.glob("results_*.json"))
    assert len(results_files) == 1
    results = json.loads(results_files[0].read_text())
    assert sorted(results["results"]) == sorted(WILDCARD_TASKS)  # every task but the quick suite's subsets
    for task in WILDCARD_TASKS:  # the suite and the tasks outside it (FOMC, FPB ...): every one runs end to end
        got = task_metrics(results, task)
        for metric in TASK_METRICS[task]:
            value, _ = got[metric]
            assert not math.isnan(value), (task, metric)
        assert results["configs"][task]["metadata"]["bundle_version"] == "2.0"
        assert results["n-samples"][task]["effective"] == 3
        assert (run_dir / f"samples_{task}_{results_files[0].stem[len('results_'):]}.jsonl").is_file()
    # corpus-level metrics carry a bootstrap standard error (lm-eval alone would say N/A)
    assert isinstance(results["results"]["econ_titles"]["bleu_stderr,none"], float)
    assert isinstance(results["results"]["econ_classify"]["macro_f1_stderr,none"], float)
    assert results["chat_template"]  # recorded, since chat templates change scores
    system = json.loads(next(run_dir.glob("system_*.json")).read_text())
    assert system["limit"] == 3 and "--apply_chat_template" in system["command"]
    # the batch size fitted to the machine: a --limit run never calibrates, so with nothing cached it is the fallback
    assert system["batch_size_choice"]["requested"] == "fitted" and system["batch_size"] == "8"
    assert system["batch_size_choice"]["source"].startswith("fallback") and "--batch_size 8" in system["command"]
    assert not (tmp_path / "calibration.json").exists()
    # the dtype fitted to the machine: bf16 only where it has native bf16 matmuls (emulated and slower elsewhere)
    assert system["dtype"] == ("bfloat16" if native_bf16() else "float32") and system["dtype_choice"].startswith("fitted")
    assert f"dtype={system['dtype']}" in system["command"]
    # the machine it ran on: the CPU extensions that change kernel speed and the threads used
    assert system["machine"]["cores"] >= 1 and isinstance(system["machine"]["amx"], bool)
    assert system["machine"]["omp_num_threads"] and system["machine"]["torch_threads"] >= 1
    # the default backend: lm-eval's command line with econ-hf registered (prefix-shared log-likelihoods)
    assert system["backend"] == "econ-hf" and "econ_eval.lm_eval_cli --model econ-hf" in system["command"]
    assert results["config"]["model"] == "econ-hf"
    # the _gen variants parse answers into labels or [invalid]
    samples = [json.loads(line) for line in next(run_dir.glob("samples_econ_classify_gen_*.jsonl")).open()]
    assert all(s["filtered_resps"][0] in ("econ.EM", "econ.GN", "econ.TH", "[invalid]") for s in samples)
    assert "| econ_classify | **macro_f1** |" in proc.stdout
    # econ_qa_rag: the question plus abstracts retrieved from the whole corpus; hit rate reported
    rag = results["results"]["econ_qa_rag"]
    assert 0.0 <= rag["hit_rate,none"] <= 1.0 and results["n-samples"]["econ_qa_rag"]["effective"] == 3
    rag_samples = [json.loads(line) for line in next(run_dir.glob("samples_econ_qa_rag_*.jsonl")).open()]
    for s in rag_samples:
        assert len(s["doc"]["context_ids"]) == 3 and s["doc"]["question"] in s["arguments"]["gen_args_0"]["arg_0"]
        assert s["hit_rate"] == float(s["doc"]["paper_id"] in s["doc"]["context_ids"])
    assert (bundle_env / "index" / "faiss.index").is_file()  # built once, cached with the bundle


def test_quickstart_prints_base_and_tuned_side_by_side(model_dir, bundle_env, tmp_path):
    """The README's first command: base model, then the published CPU LoRA adapter, one table."""
    import os

    from econ_eval.config import REPO_ROOT

    adapter = REPO_ROOT / "adapters" / "smollm2-135m-lora"
    if not (adapter / "adapter_model.safetensors").is_file():
        pytest.skip("published adapter not found")
    env = {**os.environ, "ECON_EVAL_RESULTS": str(tmp_path / "results"), "ECON_EVAL_DATA": str(bundle_env)}
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "quickstart", "--limit", "2"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing the adapter" in proc.stdout
    # the default is the quick suite: every lite task, its group's mean, and it says how to get the full suite
    assert "quick suite: econlite" in proc.stdout and "--full runs the full econ suite" in proc.stdout
    assert "| econlite_signal |" in proc.stdout and "| **econlite** | mean headline score |" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| task | metric |"))
    assert "smollm2-135m (base)" in header and "smollm2-135m-lora (tuned)" in header
    runs = tmp_path / "results" / "runs"
    assert list((runs / "smollm2-135m").glob("results_*.json")) and list((runs / "smollm2-135m-lora").glob("results_*.json"))
    from econ_eval.config import default_threads

    if default_threads() >= 2:  # both at once, half the threads each, lm_eval's output in a log per run
        assert "base and tuned side by side" in proc.stdout
        for system in ("smollm2-135m", "smollm2-135m-lora"):
            assert f"[{system}] results filed in" in proc.stdout
            log = next((runs / system).glob("lm_eval_*.log")).read_text()
            assert "Running loglikelihood requests" in log and "Running generate_until requests" in log
            record = json.loads(next((runs / system).glob("system_*.json")).read_text())
            assert record["machine"]["omp_num_threads"] == str(default_threads() // 2)
            assert record["machine"]["torch_threads"] == default_threads() // 2  # the run's, not the parent's
            assert record["machine"]["threads_when_alone"] == default_threads() // 2 * 2  # if the other ends first
