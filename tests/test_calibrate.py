"""Machine-fitted batch size (econ_eval/calibrate.py): the choice rule, the per-machine cache, and what a run
records. The calibration itself runs for real on the embedded model with a tiny workload."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from econ_eval import calibrate, config


@pytest.fixture(scope="module")
def model_dir():
    from econ_eval.models import fetch_model

    return fetch_model("smollm2-135m")


def test_choose_takes_the_smallest_batch_within_the_margin():
    assert calibrate.choose({8: 10.0, 16: 9.9, 32: 12.0}) == 8  # 1% faster is noise: keep the smaller batch
    assert calibrate.choose({8: 21.1, 16: 18.0, 32: 16.6}) == 32  # the AMX machine's case: 1.27x
    assert calibrate.choose({8: 10.0, 16: 9.0, 32: 9.2}) == 16
    with pytest.raises(ValueError):
        calibrate.choose({})


def test_default_dtype_is_bf16_only_where_the_machine_has_native_bf16_matmuls(monkeypatch):
    # regression: the default was bfloat16 everywhere; on an AVX2-only CPU (no AVX-512/AMX) torch emulates bf16
    # matmuls, several times slower than float32 (measured ~5x on a 2-core AVX2 EPYC)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not config.native_bf16()
    dtype, reason = config.fitted_dtype()
    assert dtype == "float32" and reason.startswith("fitted") and "no native bf16" in reason
    assert config.fitted_dtype("bfloat16") == ("bfloat16", "requested")  # an explicit dtype is kept
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert config.fitted_dtype()[0] == "bfloat16" and config.native_bf16()
    from econ_eval import evaluate, fast_generate

    assert evaluate.EvalSpec().dtype == config.FITTED_DTYPE and fast_generate.packing_supported()


def test_fitted_dtype_asks_the_device_the_run_uses(monkeypatch):
    # regression: a --device cpu run on a machine with a CUDA GPU got bf16 although its CPU emulates it
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert config.native_bf16() and config.native_bf16("cuda:0")
    assert not config.native_bf16("cpu")
    assert config.fitted_dtype(device="cpu")[0] == "float32"
    assert config.fitted_dtype(device="cuda")[0] == "bfloat16"
    assert config.fitted_dtype("bfloat16", "cpu") == ("bfloat16", "requested")


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert config.usable_cores() == 1
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert config.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert config.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "zero")  # not a number: ignored, not a crash
    assert config.default_threads() == 1


def test_the_key_names_what_the_speed_depends_on():
    key = json.loads(calibrate.machine_key("smollm2-135m", "bfloat16", "econ-hf", 2))
    assert {"cpu", "usable_cores", "avx512", "amx", "threads", "torch", "lm_eval", "model", "dtype",
            "backend"} <= set(key)
    assert calibrate.machine_key("smollm2-135m", "bfloat16", "econ-hf", 2) != \
        calibrate.machine_key("smollm2-135m", "bfloat16", "econ-hf", 1)


def test_a_calibration_of_another_machine_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ECON_EVAL_CALIBRATION", str(tmp_path / "calibration.json"))
    key = json.loads(calibrate.machine_key("smollm2-135m", "bfloat16", "econ-hf", 2))
    other = json.dumps({**key, "amx": not key["amx"]}, sort_keys=True)
    (tmp_path / "calibration.json").write_text(json.dumps({other: {"batch_size": 32}}))
    batch, record = calibrate.fitted_batch_size("unused", "smollm2-135m", dtype="bfloat16", backend="econ-hf",
                                                threads=2, calibrate_if_missing=False)
    assert batch == calibrate.FALLBACK_BATCH_SIZE and record["source"].startswith("fallback")


def test_an_unreadable_cache_is_treated_as_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("ECON_EVAL_CALIBRATION", str(tmp_path / "calibration.json"))
    (tmp_path / "calibration.json").write_text("{not json")
    assert calibrate.cached(calibrate.machine_key("m", "bfloat16", "econ-hf", 2)) is None


@pytest.mark.slow
def test_calibration_measures_each_candidate_once_then_reads_the_cache(model_dir, bundle_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ECON_EVAL_CALIBRATION", str(tmp_path / "calibration.json"))
    kw = dict(dtype="bfloat16", backend="econ-hf", threads=1, candidates=(1, 2),
              workload={"econ_classify": 2, "econ_titles": 2})
    import torch

    seen, before = [], torch.get_num_threads()
    batch, record = calibrate.fitted_batch_size(str(model_dir), "smollm2-135m", calibrate_if_missing=True,
                                                log=lambda m: seen.append((m, torch.get_num_threads())), **kw)
    timed = [n for m, n in seen if m.startswith("  batch ")]
    assert timed == [1, 1]  # each batch timed on the run's thread count (1 here), not this process's default
    assert torch.get_num_threads() == before  # and the process's own setting restored
    assert record["source"] == "calibrated now" and batch in (1, 2)
    assert set(record["seconds"]) == {"1", "2"} and all(s > 0 for s in record["seconds"].values())
    assert batch == calibrate.choose({int(b): s for b, s in record["seconds"].items()})
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert len(stored) == 1 and next(iter(stored.values()))["batch_size"] == batch
    again, record2 = calibrate.fitted_batch_size(str(model_dir), "smollm2-135m", calibrate_if_missing=True,
                                                 log=lambda m: None, **kw)
    assert again == batch and record2["source"] == "cached calibration"
    assert record2["seconds"] == record["seconds"]  # read back, not measured again


@pytest.mark.slow
def test_evaluate_runs_at_the_cached_batch_size_and_records_why(model_dir, bundle_env, tmp_path):
    cache = tmp_path / "calibration.json"
    env = {**os.environ, "ECON_EVAL_CALIBRATION": str(cache), "ECON_EVAL_RESULTS": str(tmp_path / "results"),
           "OMP_NUM_THREADS": "1"}
    key = calibrate.machine_key("smollm2-135m", config.fitted_dtype()[0], "econ-hf", 1)
    cache.write_text(json.dumps({key: {"batch_size": 3, "seconds": {"3": 1.0}}}))
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "evaluate", "--tasks", "econ_signal", "--limit", "2"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    system = json.loads(next((tmp_path / "results" / "runs" / "smollm2-135m").glob("system_*.json")).read_text())
    assert system["batch_size"] == "3" and "--batch_size 3" in system["command"]
    assert system["batch_size_choice"]["requested"] == "fitted"
    assert system["batch_size_choice"]["source"] == "cached calibration"
    assert system["machine"]["omp_num_threads"] == "1"
    assert system["dtype"] == config.fitted_dtype()[0] and system["dtype_choice"].startswith("fitted")
