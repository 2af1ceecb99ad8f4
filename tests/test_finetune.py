"""Fine-tuning: recipe validation, training data, LoRA+ parameter groups, and a tiny real training run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from econ_eval import prompts
from econ_eval.finetune.data import mixture_rows
from econ_eval.finetune.recipe import load_recipe, validate
from econ_eval.io import DataError, read_jsonl

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "finetune").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.method in ("lora", "loraplus", "qlora")


@pytest.mark.parametrize("data,match", [
    ({"lora_rank": 8}, r"unknown key\(s\) \['lora_rank'\]"),
    ({"lora_r": "16"}, r"'lora_r' must be int"),
    ({"learning_rate": "fast"}, r"'learning_rate' must be float"),
    ({"method": "dora"}, r"method must be one of"),
    ({"lora_dropout": 1.5}, r"lora_dropout must be in \[0, 1\)"),
    ({"mixture": {"econ_mmlu": {"weight": 1}}}, r"mixture task 'econ_mmlu' is not trainable"),
    ({"mixture": {"econ_qa": {"weight": 1, "cap": 3}}}, r"mixture.econ_qa takes only"),
    ({"mixture": {"econ_qa": {"balance_labels": True}}}, r"balance_labels applies to"),
    ({"mixture": {"econ_qa": {"max_chars": 10}}}, r"mixture.econ_qa.max_chars must be an integer >= 50"),
    ({"validation": {"econ_mmlu": 5}}, r"validation task 'econ_mmlu' is not trainable"),
    ({"validation": {"econ_signal": 0}}, r"validation.econ_signal must be a positive number of rows"),
    ({"validation": [1, 2]}, r"key .validation. must be dict"),
    ({"bf16": "yes"}, r"'bf16' must be true/false"),
    ({"lr_scheduler_type": "cosyne"}, r"cosyne is not a valid SchedulerType"),  # TRL/transformers' own check
    # recipes written before the TrlParser format: a clear error naming the new key
    ({"base_model": "smollm2-135m"}, r"renamed key\(s\).*base_model -> model_name_or_path"),
    ({"warmup_ratio": 0.03}, r"warmup_ratio -> warmup_steps \(a value below 1 is a ratio"),
    ({"method": "lora", "load_in_4bit": True}, r"quantised base model needs method: qlora"),
])
def test_recipe_errors_name_the_key(data, match):
    with pytest.raises(DataError, match=match):
        validate(data, "finetune/x.yaml")


def test_overrides_and_missing_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("method: loraplus\nmax_steps: 100\n")
    r = load_recipe(p, ["max_steps=3", "learning_rate=1e-4"])
    assert r.training.max_steps == 3 and r.training.learning_rate == 1e-4 and r.method == "loraplus"
    with pytest.raises(DataError, match="key=value"):
        load_recipe(p, ["max_steps"])
    with pytest.raises(DataError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_mixture_uses_train_split_and_task_prompts(real_bundle):
    bundle, _ = real_bundle
    recipe = validate({"mixture": {"econ_classify": {"max_examples": 5}, "econ_signal": {"max_examples": 3},
                                   "econ_titles": {"weight": 0}}})
    rows = mixture_rows(bundle, recipe)
    assert len(rows) == 8 and {r["task"] for r in rows} == {"econ_classify", "econ_signal"}
    assert rows == mixture_rows(bundle, recipe)  # seeded, deterministic
    train_abstracts = {r["abstract"]: r for r in read_jsonl(bundle / "econ_classify" / "train.jsonl")}
    test_ids = {r["paper_id"] for r in read_jsonl(bundle / "econ_classify" / "test.jsonl")}
    for r in rows:
        if r["task"] != "econ_classify":
            continue
        text = r["prompt"][0]["content"]
        doc = next(d for a, d in train_abstracts.items() if a in text)
        assert doc["paper_id"] not in test_ids
        assert text == prompts.classify_prompt(doc)  # the same prompt lm-eval shows
        assert r["completion"][0]["content"] == prompts.classify_target(doc)
    balanced = mixture_rows(bundle, validate({"mixture": {"econ_signal": {"max_examples": 10, "balance_labels": True}}}))
    answers = [r["completion"][0]["content"] for r in balanced]
    assert answers.count("Yes") == 5 and answers.count("No") == 5  # 13% positives in train, 50% here


def test_max_chars_clips_texts_and_validation_rows_come_from_validation(real_bundle):
    from econ_eval.finetune.data import validation_rows

    bundle, _ = real_bundle
    recipe = validate({"mixture": {"econ_signal": {"max_examples": 6, "max_chars": 120},
                                   "econ_classify": {"max_examples": 4, "max_chars": 200}},
                       "validation": {"econ_signal": 3, "econ_classify": 2}})
    full = mixture_rows(bundle, validate({"mixture": {"econ_signal": {"max_examples": 6},
                                                      "econ_classify": {"max_examples": 4}}}))
    clipped = mixture_rows(bundle, recipe)
    assert [r["completion"] for r in clipped] == [r["completion"] for r in full]  # same examples, same order
    for short, long in zip(clipped, full):
        assert len(short["prompt"][0]["content"]) <= len(long["prompt"][0]["content"])
    story = next(r for r in clipped if r["task"] == "econ_signal")["prompt"][0]["content"]
    assert len(story.split("Story: ", 1)[1].split("\n\n", 1)[0]) <= 120 + 4  # clipped at a word, " ..." marks it
    held_out = validation_rows(bundle, recipe)
    assert [r["task"] for r in held_out].count("econ_signal") == 3 and len(held_out) == 5
    assert held_out == validation_rows(bundle, recipe)  # fixed set
    val_titles = {r["title"] for r in read_jsonl(bundle / "econ_signal" / "validation.jsonl")}
    for r in held_out:
        if r["task"] == "econ_signal":
            headline = r["prompt"][0]["content"].split("Headline: ", 1)[1].split("\n", 1)[0]
            assert headline in val_titles
    assert validation_rows(bundle, validate({})) == []  # no validation key: no held-out set


def test_loraplus_gives_b_ratio_times_a_learning_rate():
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.optimizers import create_loraplus_optimizer
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=1e-4, loraplus_lr_ratio=16)
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {}
    for group in opt.param_groups:
        for p in group["params"]:
            lr_of[names[id(p)]] = group["lr"]
    a = {lr for n, lr in lr_of.items() if "lora_A" in n}
    b = {lr for n, lr in lr_of.items() if "lora_B" in n}
    assert a == {1e-4} and len(b) == 1 and b.pop() == pytest.approx(16e-4)


@pytest.mark.slow
def test_tiny_training_run_saves_reloads_resumes_and_evaluates(real_bundle, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from econ_eval.finetune.train import TRAINING_RECORD, train
    from econ_eval.models import fetch_model

    bundle, _ = real_bundle
    out = tmp_path / "adapter"
    recipe = validate(dict(method="lora", output_dir=str(out), max_steps=3, save_steps=2, logging_steps=1,
                           per_device_train_batch_size=2, max_length=384, lora_r=4, lora_alpha=8,
                           mixture={"econ_signal": {"max_examples": 8}, "econ_classify": {"max_examples": 4}},
                           validation={"econ_signal": 2}, eval_steps=2))
    train(recipe, bundle=bundle, log=lambda m: None)
    record = json.loads((out / TRAINING_RECORD).read_text())
    assert record["steps"] == 3 and record["tokens_per_second"] > 0 and record["final_loss"] > 0
    # the held-out loss: at the scheduled step 2 and, since the schedule stops short of it, at the final step
    assert [h["step"] for h in record["validation_loss_history"]] == [2, 3]
    assert record["final_validation_loss"] == record["validation_loss_history"][-1]["loss"] > 0
    assert "validation " in (out / "README.md").read_text() and "| data mix | econ_signal" in (out / "README.md").read_text()
    assert (out / "adapter_model.safetensors").is_file() and (out / "loss_curve.png").is_file()
    assert "| method | lora" in (out / "README.md").read_text()
    assert (out / "checkpoint-2").is_dir()

    # reload: the adapter changes the base model's outputs
    base = AutoModelForCausalLM.from_pretrained(fetch_model("smollm2-135m"))
    ids = torch.tensor([[1, 504, 3250, 314]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(out))
        after = tuned(ids).logits
    assert not torch.allclose(before, after)

    # regression (#11): re-running a finished fine-tune trained past max_steps and rewrote its record
    from econ_eval.io import DataError

    record_bytes = (out / TRAINING_RECORD).read_bytes()
    with pytest.raises(DataError, match="holds a finished adapter; refusing to overwrite it"):
        train(recipe, bundle=bundle, log=lambda m: None)
    assert (out / TRAINING_RECORD).read_bytes() == record_bytes

    # resume: an interrupted run continues from its last checkpoint instead of starting over
    from transformers import TrainerCallback

    class StopAtFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt  # what a Ctrl-C after the first checkpoint does

    again = tmp_path / "again"
    recipe = recipe.replace(output_dir=str(again))
    with pytest.raises(KeyboardInterrupt):
        train(recipe, bundle=bundle, log=lambda m: None, callbacks=[StopAtFirstSave()])
    assert (again / "checkpoint-2").is_dir() and not (again / TRAINING_RECORD).exists()
    changed = recipe.replace(lora_r=8)
    with pytest.raises(DataError, match=r"different recipe \(lora_r: 4 -> 8\).*--no-resume"):
        train(changed, bundle=bundle, log=lambda m: None)  # a clear error, not a 200-line state-dict error
    train(recipe, bundle=bundle, log=lambda m: None)
    record = json.loads((again / TRAINING_RECORD).read_text())
    assert record["steps"] == 3 and record["resumed_from"].endswith("checkpoint-2")

    # evaluable through lm-eval with peft=
    env = {**os.environ, "ECON_EVAL_DATA": str(bundle), "ECON_EVAL_RESULTS": str(tmp_path / "results")}
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "evaluate", "--adapter", str(out),
                           "--tasks", "econ_signal", "--limit", "2"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = next((tmp_path / "results" / "runs" / "smollm2-135m+adapter").glob("results_*.json"))
    assert json.loads(results.read_text())["config"]["model_args"]["peft"] == str(out)


def test_lora_vs_loraplus_speedup_logic():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from lora_vs_loraplus import smooth, speedup, summarise

    def curve(values):
        return [{"step": 10 * (i + 1), "loss": v} for i, v in enumerate(values)]

    lora = curve([1.0, 0.8, 0.6, 0.5, 0.4, 0.4, 0.4])        # best smoothed 0.4 first at step 60
    plus = curve([0.9, 0.5, 0.38, 0.38, 0.38, 0.38, 0.38])   # smoothed 0.7, 0.59, 0.42, 0.38: at or below 0.4 from step 40
    assert smooth([1.0, 0.5, 0.0]) == pytest.approx([0.75, 0.5, 0.25])
    s = speedup(lora, plus)
    assert s["lora_steps_to_best"] == 60 and s["loraplus_steps_to_same_loss"] == 40 and s["speedup"] == 1.5
    never = speedup(lora, curve([1.0] * 7))
    assert never["loraplus_steps_to_same_loss"] is None and never["speedup"] is None  # reported, not dropped
    runs = [{"method": m, "learning_rate": lr, "seed": 1, "validation_loss_history": h, "validation_f1": 0.5}
            for lr, (a, b) in {1e-3: (lora, plus), 2e-4: (lora, curve([1.0] * 7))}.items()
            for m, h in (("lora", a), ("loraplus", b))]
    summary = summarise(runs)
    assert summary["speedup_mean"] == 1.5 and summary["pairs_where_loraplus_never_reached"] == 1
    assert summary["speedup_by_learning_rate"] == {"0.0002": [None], "0.001": [1.5]}


def test_learning_curve_scores_the_suite_tasks_on_validation(tmp_path, bundle_env):
    """The learning curve's task files are the suite's own tasks with the validation split as test split."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from learning_curve import validation_task_yaml
    from lm_eval.tasks import TaskManager

    path = validation_task_yaml("econ_signal", tmp_path)
    loaded = TaskManager(include_path=str(REPO / "tasks")).load([str(path)])
    task = loaded["tasks"]["econ_signal_validation"]
    docs = list(task.test_docs())
    assert len(docs) == len(read_jsonl(bundle_env / "econ_signal" / "validation.jsonl"))
    assert docs[0] == read_jsonl(bundle_env / "econ_signal" / "validation.jsonl")[0]
    assert task.config.doc_to_text(docs[0]) == prompts.signal_prompt(docs[0])


# ------------------------------------------------------------------ QLoRA on this CPU (bitsandbytes 4-bit)
def _lora_b_grads(model, ids):
    import torch

    model.zero_grad()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    # a parameter the backward pass never reached counts as a zero gradient
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().flatten()
                      for n, p in sorted(model.named_parameters()) if "lora_B" in n])


def _qlora_and_reference():
    """The 4-bit model as econ-eval's trainer loads it, and an fp32 twin holding its dequantised weights,
    both with the same LoRA initialisation."""
    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from econ_eval.finetune.train import _load_model
    from econ_eval.models import fetch_model

    path = str(fetch_model("smollm2-135m"))
    recipe = validate({"method": "qlora", "dtype": "float32"})  # TRL: the model dtype is the compute dtype
    q = _load_model(recipe, path, on_gpu=False)
    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ref_modules = dict(ref.named_modules())
    n4 = 0
    for name, module in q.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            w = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
            ref_modules[name].weight.data.copy_(w.reshape(ref_modules[name].weight.shape))
            n4 += 1
    lora = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    torch.manual_seed(0)
    q = get_peft_model(q, LoraConfig(**lora))
    torch.manual_seed(0)
    ref = get_peft_model(ref, LoraConfig(**lora))
    return q, ref, n4


@pytest.mark.slow
def test_qlora_trains_on_cpu_with_correct_gradients():
    """bitsandbytes 4-bit nf4 on CPU: LoRA gradients equal those of an fp32 model with the same weights."""
    pytest.importorskip("bitsandbytes")
    import torch

    q, ref, n4 = _qlora_and_reference()
    assert n4 > 100  # every linear layer of the body is 4-bit
    ids = torch.tensor([[1, 504, 3250, 314, 2683, 1248, 982, 30, 1159, 2]])
    gq, gr = _lora_b_grads(q, ids), _lora_b_grads(ref, ids)
    cos = torch.nn.functional.cosine_similarity(gq, gr, dim=0).item()
    assert cos > 0.98, f"4-bit LoRA gradients differ from the dequantised reference (cosine {cos:.3f})"


@pytest.mark.slow
def test_bitsandbytes_cpu_hazard_inference_before_training_breaks_gradients():
    """Known bitsandbytes-on-CPU hazard that econ-eval's trainer avoids (no inference before training).

    A no-grad forward repacks the 4-bit weights; gradients after it are wrong. If this test starts
    failing, bitsandbytes fixed it and the restriction in ``finetune/train.py`` can go. The repacking happens
    only on CPUs with AVX512-BF16 (``Linear4bit``'s ``support_avx512bf16_for_cpu``): elsewhere the gradients
    stay right (the test once assumed every CPU had it, and failed on an AVX2-only EPYC).
    """
    pytest.importorskip("bitsandbytes")
    import torch
    from bitsandbytes.functional import has_avx512bf16

    q, ref, _ = _qlora_and_reference()
    ids = torch.tensor([[1, 504, 3250, 314, 2683, 1248, 982, 30, 1159, 2]])
    with torch.no_grad():
        q.eval()(input_ids=ids)
    q.train()
    gq, gr = _lora_b_grads(q, ids), _lora_b_grads(ref, ids)
    cos = torch.nn.functional.cosine_similarity(gq, gr, dim=0).item()
    if not has_avx512bf16():
        assert cos > 0.98, f"no repacking on this CPU, yet the gradients are wrong (cosine {cos:.3f})"
        return
    assert cos < 0.5, f"gradients after an inference pass now match (cosine {cos:.3f}): the hazard is gone"


# ------------------------------------------------------------------ output folders (no training needed)
def test_output_folder_rules(tmp_path):
    """Regression (#3, #11): never overwrite a folder training did not make, say how to resume or move on."""
    from econ_eval.finetune.train import RUN_MARKER, prepare_output_dir, recipe_fingerprint
    from econ_eval.io import DataError

    recipe = validate({"output_dir": str(tmp_path / "x")})
    assert prepare_output_dir(tmp_path / "new", recipe, resume=True) is False       # absent: fresh
    (tmp_path / "empty").mkdir()
    assert prepare_output_dir(tmp_path / "empty", recipe, resume=True) is False     # empty: fresh
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="exists and is not a folder"):
        prepare_output_dir(tmp_path / "file", recipe, resume=True)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an unfinished econ-eval run.*--output-dir"):
        prepare_output_dir(user, recipe, resume=False)
    assert (user / "notes.txt").read_text() == "mine"
    published = REPO / "adapters" / "smollm2-135m-lora"
    with pytest.raises(DataError, match="holds a finished adapter"):
        prepare_output_dir(published, recipe, resume=False)
    # an unfinished run of ours: resumed with the same recipe, cleared with resume=False
    run = tmp_path / "run"
    (run / "checkpoint-5").mkdir(parents=True)
    (run / RUN_MARKER).write_text(json.dumps({"recipe": recipe_fingerprint(recipe)}))
    assert prepare_output_dir(run, recipe, resume=True) is True
    assert prepare_output_dir(run, recipe, resume=False) is False and not any(run.iterdir())


def test_finetune_cli_refuses_to_overwrite_the_published_adapter(bundle_env, tmp_path):
    """Regression (#3): the README's example (relative output_dir) replaced adapters/smollm2-135m-lora."""
    published = REPO / "adapters" / "smollm2-135m-lora"
    before = {p.name: p.read_bytes() for p in published.iterdir() if p.is_file()}
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "finetune", "finetune/smollm2-135m-lora.yaml",
                           "max_steps=1", "--output-dir", "adapters/smollm2-135m-lora"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "holds a finished adapter; refusing to overwrite it" in proc.stderr
    assert "--output-dir" in proc.stderr
    assert {p.name: p.read_bytes() for p in published.iterdir() if p.is_file()} == before
    # the recipes themselves write to the git-ignored adapters/runs/, never over a published adapter
    for recipe_file in (REPO / "finetune").glob("*.yaml"):
        assert load_recipe(recipe_file).output_dir.startswith("adapters/runs/"), recipe_file


def test_finetune_verifies_the_bundle(tmp_path, real_bundle, monkeypatch):
    """Regression (#11): `finetune` trained on a bundle whose files no longer match their MANIFEST."""
    import shutil

    from econ_eval.finetune.train import train
    from econ_eval.io import DataError

    bundle = tmp_path / "bundle"
    shutil.copytree(real_bundle[0], bundle)
    with (bundle / "econ_signal" / "train.jsonl").open("a") as fh:
        fh.write("{}\n")
    with pytest.raises(DataError, match=r"econ_signal/train.jsonl: sha256 differs from MANIFEST.json"):
        train(validate({"output_dir": str(tmp_path / "out")}), bundle=bundle, log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_recipe_keys_reach_trl_dataclasses_as_written():
    """Issue #13: a recipe is parsed by TRL's TrlParser into ModelConfig + SFTConfig, and the trainer gets that
    SFTConfig as it is (no hand copy: the old code passed `warmup_steps=recipe.warmup_ratio` by hand)."""
    from trl import ModelConfig, SFTConfig

    for path in RECIPES:
        recipe = load_recipe(path)
        assert isinstance(recipe.model, ModelConfig) and isinstance(recipe.training, SFTConfig)
        written = yaml.safe_load(path.read_text())
        econ_keys = {f.name for f in dataclasses.fields(recipe.econ)}  # econ-eval's own keys (EconArguments)
        for key, value in written.items():
            if key in econ_keys:
                assert getattr(recipe.econ, key) == value, (path.name, key)
                continue
            part = recipe.model if hasattr(recipe.model, key) else recipe.training
            got = getattr(part, key)
            assert getattr(got, "value", got) == value, (path.name, key, got, value)
    # any SFTConfig field is a recipe key, with TRL's own type conversion (YAML 1.1 reads 1e-4 as a string)
    recipe = validate({"max_grad_norm": 0.5, "learning_rate": "1e-4", "warmup_steps": 0.1})
    assert recipe.training.max_grad_norm == 0.5 and recipe.training.learning_rate == 1e-4
    assert recipe.training.warmup_steps == 0.1
    assert recipe.to_dict()["warmup_steps"] == 0.1 and recipe.fingerprint()["max_grad_norm"] == 0.5


def test_lora_initialisation_follows_the_recipe_seed():
    """Regression: the LoRA A matrices were drawn from whatever state the global RNG was in (the trainer seeds
    itself only after the adapter exists), so the same recipe could start from a different adapter."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from econ_eval.finetune.train import peft_model

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    recipe = validate({"lora_r": 2, "lora_alpha": 4, "lora_target_modules": ["q_proj", "v_proj"]})

    def lora_a(consume: int, r=recipe):
        torch.manual_seed(0)
        base = LlamaForCausalLM(cfg)
        torch.rand(consume)  # other code touching the global RNG before training
        model = peft_model(r, base)
        return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_A" in n])

    assert torch.equal(lora_a(1), lora_a(1000))
    assert not torch.equal(lora_a(1), lora_a(1, validate({**recipe.to_dict(), "seed": 7})))


def test_model_card_evaluation_table_comes_from_results_files(tmp_path):
    """`econ-eval card`: the card's evaluation table is generated from lm-eval results files, not typed."""
    import shutil

    from econ_eval.report import task_metrics
    from econ_eval.run_folder import results_files

    def suite_run(folder):  # the newest `econ` run (a finance-group run may be filed after it)
        return [p for p in results_files(folder) if "econ" in json.loads(p.read_text())["results"]][-1]

    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    shutil.copy(REPO / "adapters" / "smollm2-135m-lora" / "econ_eval_training.json", adapter)
    base, tuned = suite_run(REPO / "results" / "smollm2-135m"), suite_run(REPO / "results" / "smollm2-135m-lora")
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "card", str(adapter), "--results", str(tuned),
                           "--base-results", str(base)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = (adapter / "README.md").read_text()
    assert "## Evaluation" in card and "my-adapter (tuned)" in card and "smollm2-135m (base)" in card
    mean = task_metrics(json.loads(tuned.read_text()), "econ")["score"][0]
    assert f"{mean:.4f}" in card.split("| **econ** | mean headline score |")[1].split("\n")[0]
    proc = subprocess.run([sys.executable, "-m", "econ_eval.cli", "card", str(tmp_path), "--results", str(tuned)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "econ_eval_training.json: not found" in proc.stderr


def test_publish_adapter_halves_the_weights_and_never_overwrites(tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    from econ_eval.finetune.train import publish_adapter

    from safetensors.torch import save_file

    run = tmp_path / "run"
    shutil.copytree(REPO / "adapters" / "smollm2-135m-lora", run)
    # a training run saves float32 weights (the published adapter is already halved)
    weights = run / "adapter_model.safetensors"
    save_file({k: v.to(torch.float32) for k, v in load_file(weights).items()}, weights)
    (run / "checkpoint-5").mkdir()
    (run / "checkpoint-5" / "optimizer.pt").write_bytes(b"x" * 100)
    dest = publish_adapter(run, tmp_path / "published")
    assert not (dest / "checkpoint-5").exists() and not (dest / "training_args.bin").exists()
    before, after = load_file(run / "adapter_model.safetensors"), load_file(dest / "adapter_model.safetensors")
    assert before.keys() == after.keys() and all(v.dtype == torch.bfloat16 for v in after.values())
    assert all(torch.equal(before[k].to(torch.bfloat16), after[k]) for k in before)
    assert (dest / "adapter_model.safetensors").stat().st_size < 0.6 * (run / "adapter_model.safetensors").stat().st_size
    card = (dest / "README.md").read_bytes()
    with pytest.raises(DataError, match="already exists; refusing to overwrite"):
        publish_adapter(run, dest)
    assert (dest / "README.md").read_bytes() == card
    with pytest.raises(DataError, match="not a finished training run"):
        publish_adapter(tmp_path / "nothing", tmp_path / "x")
