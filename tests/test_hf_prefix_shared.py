"""``econ-hf`` (econ_eval/hf_prefix_shared.py) against lm-eval's own ``hf`` backend on the real embedded model.

Both run in float32 here, where the only difference between the two code paths is the order of
floating-point operations, so log-likelihoods must agree to ~1e-3 and greedy flags exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from econ_eval import fast_generate
from econ_eval.config import REPO_ROOT
from econ_eval.evaluate import EvalSpec, lm_eval_command

LONG = ("Abstract: We estimate the effect of minimum wages on teen employment with a synthetic control "
        "design across US states, and find small negative elasticities that vary with local labour market "
        "tightness. Which arXiv category does this economics paper belong to?\nAnswer:")
SHORT = "Is this news story an investment signal?\nAnswer:"
MEDIUM = "The following is a multiple choice question about economics. Inflation is\nA. x\nB. y\nAnswer:"
CHAT = "<|im_start|>user\nIs this an investment signal? Answer Yes or No.\nAnswer:<|im_end|>\n<|im_start|>assistant\n"
REQUESTS = [  # (context, continuation): multi-token choices sharing a context, single tokens, repeats
    (LONG, " Econometrics"), (LONG, " General Economics"), (LONG, " Theoretical Economics"),
    # as with --apply_chat_template: lm-eval moves the trailing newline into every continuation
    (CHAT, "No"), (CHAT, "Yes"), (LONG + "\n", "Econometrics"), (LONG + "\n", "Theoretical Economics"),
    (SHORT, " No"), (SHORT, " Yes"), (MEDIUM, " A"), (MEDIUM, " B"), (MEDIUM, " B"),
    ("Paris is the capital of", " France"), ("Paris is the capital of", " the French Republic"),
    # a shared leading word that is far from certain, then one-token and longer rests
    ("The central bank's answer was", " definitely yes"), ("The central bank's answer was", " definitely no"),
    ("The stock market reaction was", " very strong and fast"), ("The stock market reaction was", " very weak"),
]


@pytest.fixture(scope="module")
def model_dir():
    from econ_eval.models import fetch_model

    return str(fetch_model("smollm2-135m"))


def _instances(pairs):
    from lm_eval.api.instance import Instance

    return [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]


def _models(model_dir, **kw):
    from lm_eval.models.huggingface import HFLM

    from econ_eval.hf_prefix_shared import PrefixSharedHFLM

    common = {**dict(pretrained=model_dir, device="cpu", dtype="float32", batch_size=4), **kw}
    return HFLM(**common), PrefixSharedHFLM(**common)


def _assert_close(ref, got, tol=2e-3):
    assert len(ref) == len(got)
    for (lp_ref, greedy_ref), (lp, greedy) in zip(ref, got, strict=True):
        assert lp == pytest.approx(lp_ref, abs=tol)
        assert greedy == greedy_ref


@pytest.mark.slow
def test_econ_hf_loglikelihoods_match_hf(model_dir):
    hf, fast = _models(model_dir)
    ref, got = hf.loglikelihood(_instances(REQUESTS)), fast.loglikelihood(_instances(REQUESTS))
    _assert_close(ref, got)
    # the scores are not degenerate: the three category names get different log-likelihoods
    assert len({round(lp, 3) for lp, _ in got[:3]}) == 3
    assert got[10] == got[11]  # a repeated request gets the same answer


@pytest.mark.slow
def test_econ_hf_falls_back_to_lm_eval_when_a_request_is_too_long(model_dir):
    hf, fast = _models(model_dir, max_length=16)  # LONG does not fit: lm-eval truncates it from the left
    ref, got = hf.loglikelihood(_instances(REQUESTS[:6])), fast.loglikelihood(_instances(REQUESTS[:6]))
    assert got == ref


SYSTEM = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
          "<|im_start|>user\n")
HEADLINES = [f"{SYSTEM}Headline: {h}\n\n{q} Answer Yes or No.<|im_end|>\n<|im_start|>assistant\n"
             for h in ("Gold prices climb to a two-month high as the dollar weakens",
                       "Gold slips while traders await the Federal Reserve's decision")
             for q in ("Does the headline talk about price going up?", "Is the price in the past?",
                       "Does the news headline compare gold with any other asset?")]


@pytest.mark.slow
def test_econ_hf_computes_a_head_shared_by_a_batch_once(model_dir):
    """Contexts sharing a head (the chat template's system turn; the same headline asked about again) run it
    once per batch; the log-likelihoods still agree with hf's whole-context ones."""
    hf, fast = _models(model_dir)
    pairs = [(c, a) for c in HEADLINES for a in ("\nNo", "\nYes")]
    fed = []
    body = fast._body_and_head()[0]
    hook = body.register_forward_pre_hook(lambda _m, _a, kw: fed.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        got = fast.loglikelihood(_instances(pairs))
    finally:
        hook.remove()
    _assert_close(hf.loglikelihood(_instances(pairs)), got)
    assert len({round(lp, 2) for lp, _ in got}) > len(HEADLINES)  # not one number for every answer
    whole = sum(len(fast.tok_encode(c)) for c in HEADLINES)
    assert sum(rows * width for rows, width in fed) < 0.75 * whole  # heads ran once, not once per context
    assert any(rows == 1 for rows, _ in fed)  # a head alone, then the batch's tails


@pytest.mark.slow
def test_econ_hf_batches_after_a_shared_head_attend_causally_without_a_mask(model_dir, monkeypatch):
    """Long tails (>= 512 keys) that run on a batch's shared head go to SDPA's causal kernel, which skips the
    blocks above the diagonal, not with an explicit mask, which computes them all; before, transformers built
    that mask for every such forward."""
    import torch

    hf, fast = _models(model_dir)
    def story(j):  # ~900 tokens, different from the first word on: only the system turn is shared
        return " ".join(f"{j}: gold rose {i} dollars on day {i} as the dollar weakened." for i in range(60))

    long_contexts = [c.replace("Headline: ", f"Story {story(j)}\nHeadline: ") for j, c in enumerate(HEADLINES[:4])]
    pairs = [(c, a) for c in long_contexts for a in ("\nNo", "\nYes")]  # one-token answers: no masked rests
    calls, sdpa = [], torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, is_causal=False, **kw):
        calls.append((query.shape[2], key.shape[2], attn_mask is not None, is_causal))
        return sdpa(query, key, value, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    got = fast.loglikelihood(_instances(pairs))
    monkeypatch.undo()
    _assert_close(hf.loglikelihood(_instances(pairs)), got)
    assert any(q >= 512 and not masked and causal for q, _, masked, causal in calls)  # the tails, padded
    assert not [c for c in calls if c[2]], "an explicit mask reached SDPA"
    assert fast.model.config._attn_implementation == "sdpa"  # restored after the pass


@pytest.mark.slow
def test_econ_hf_scores_the_longer_continuations_of_a_batch_in_one_forward(model_dir):
    """Contexts whose answers run to several tokens (the category names of econ_classify, FOMC's stances) are
    batched like one-token ones: one forward for the contexts, one for every continuation of the batch, each
    row at its own positions after its own context (contexts and continuations of different lengths here);
    before, every context and its continuations took two forwards of their own."""
    hf, fast = _models(model_dir, batch_size=8)
    several = [pair for pair in REQUESTS
               if pair[0] in (LONG, LONG + "\n") or pair[0].startswith(("Paris", "The stock"))]
    fed = []
    body = fast._body_and_head()[0]
    hook = body.register_forward_pre_hook(lambda _m, _a, kw: fed.append(tuple(kw["input_ids"].shape)),
                                          with_kwargs=True)
    try:
        got = fast.loglikelihood(_instances(several))
    finally:
        hook.remove()
    _assert_close(hf.loglikelihood(_instances(several)), got)
    # 3 contexts (lm-eval moves LONG + "\n"'s newline into its answers) with multi-token answers: 6 forwards before
    assert len(fed) == 2, fed
    assert fed[0][0] == 3 and fed[1][0] >= 3  # the contexts; then at least one longer answer of each


@pytest.mark.slow
def test_econ_hf_without_shared_prefix_is_lm_eval(model_dir):
    from econ_eval.hf_prefix_shared import PrefixSharedHFLM

    hf = _models(model_dir)[0]
    off = PrefixSharedHFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=4, shared_prefix="false")
    assert off.loglikelihood(_instances(REQUESTS)) == hf.loglikelihood(_instances(REQUESTS))


@pytest.mark.slow
def test_econ_hf_with_a_lora_adapter_matches_hf(model_dir):
    adapter = REPO_ROOT / "adapters" / "smollm2-135m-lora"
    if not (adapter / "adapter_model.safetensors").is_file():
        pytest.skip("published adapter not found")
    hf, fast = _models(model_dir, peft=str(adapter))
    base = _models(model_dir)[1]
    ref, got = hf.loglikelihood(_instances(REQUESTS)), fast.loglikelihood(_instances(REQUESTS))
    _assert_close(ref, got)
    # and the adapter is really applied on the fast path (scores move away from the base model's)
    untuned = base.loglikelihood(_instances(REQUESTS))
    assert max(abs(a[0] - b[0]) for a, b in zip(got, untuned, strict=True)) > 0.05


def test_lm_eval_command_per_backend():
    fast = lm_eval_command(EvalSpec(), "/m", Path("/out"))
    assert fast[1:5] == ["-m", "econ_eval.lm_eval_cli", "--model", "econ-hf"]
    plain = lm_eval_command(EvalSpec(backend="hf"), "/m", Path("/out"))
    assert plain[1:5] == ["-m", "lm_eval", "--model", "hf"]
    assert fast[5:] == plain[5:]  # everything else is the same lm_eval command line
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        lm_eval_command(EvalSpec(backend="vllm"), "/m", Path("/out"))


def test_group_plan_moves_the_shared_leading_tokens_into_the_context():
    from econ_eval.hf_prefix_shared import _Group

    g = _Group.plan((1, 2), [0, 1], [(198, 5230), (198, 10539)])  # newline + "No", newline + "Yes"
    assert g.extended == (1, 2, 198) and g.prefix == (198,) and g.rests == [(5230,), (10539,)] and g.one_token_rests
    g = _Group.plan((1,), [0, 1], [(7, 8, 9), (7, 8)])  # every continuation keeps a token of its own
    assert g.prefix == (7,) and g.rests == [(8, 9), (8,)] and not g.one_token_rests
    g = _Group.plan((1,), [0], [(5,)])
    assert g.prefix == () and g.rests == [(5,)] and g.first_scored == 0


def test_lm_eval_cli_skips_lm_eval_builtin_tasks_only_for_econ_runs():
    """Start-up: lm-eval's command line indexes ~14,700 built-in task configs unless every task asked for is
    ours; a run that names any other task keeps lm-eval's own index."""
    from econ_eval.lm_eval_cli import only_econ_tasks

    assert only_econ_tasks(["--model", "econ-hf", "--tasks", "econlite", "--include_path", "tasks"])
    assert only_econ_tasks(["--tasks=econ_*,econfin"])
    assert not only_econ_tasks(["--tasks", "econ,mmlu"])
    assert not only_econ_tasks(["--model", "hf"])  # no --tasks: lm-eval's own handling



GEN_KWARGS = {"until": ["\n\n", "<|im_end|>"], "max_gen_toks": 16, "do_sample": False}
CLASSIFY = (f"{SYSTEM}Abstract: We estimate the effect of minimum wages on teen employment with a synthetic control "
            "design across US states. Which arXiv category does this economics paper belong to: Econometrics, "
            "General Economics or Theoretical Economics?<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_econ_hf_answers_generation_twins_during_the_loglikelihood_pass(model_dir):
    """A generation request on a context the log-likelihood pass computes (a _gen task's twin) is answered
    from that pass's keys and values, with the text lm-eval's hf generates; the others are generated as usual."""
    from types import SimpleNamespace

    from lm_eval.api.instance import Instance

    hf, fast = _models(model_dir)
    pairs = [(c, f" {a}") for c in HEADLINES[:4] for a in ("No", "Yes")]  # one-token rests, batched
    pairs += [(CLASSIFY, f" {name}") for name in ("Econometrics", "General Economics", "Theoretical Economics")]
    ll = _instances(pairs)
    gen_contexts = HEADLINES[:4] + [CLASSIFY, CHAT]  # CHAT has no log-likelihood twin here
    gen = [Instance(request_type="generate_until", doc={}, arguments=(c, dict(GEN_KWARGS)), idx=i)
           for i, c in enumerate(gen_contexts)]
    fast.expect_tasks([SimpleNamespace(instances=gen)])
    decoders = []
    original = fast_generate.GreedyDecoder.generate
    fast_generate.GreedyDecoder.generate = lambda self, *a, **k: decoders.append(self) or original(self, *a, **k)
    try:
        _assert_close(hf.loglikelihood(_instances(pairs)), fast.loglikelihood(ll))
    finally:
        fast_generate.GreedyDecoder.generate = original
    assert len(fast._early_answers) == 5
    # the prompts were not computed again: each ran at most its last token or two through the model
    assert decoders and sum(d.prefilled_tokens for d in set(decoders)) <= 2 * 5
    assert sum(d.reused_tokens for d in set(decoders)) > sum(len(fast.tok_encode(c)) for c in gen_contexts[:5]) - 10
    got = fast.generate_until(gen)
    assert fast.answered_early == 5 and not fast._early_answers
    assert got == hf.generate_until(gen)
    assert all(got) and len(set(got)) > 1
    # answered requests are no longer pending: a second log-likelihood pass plans nothing
    for inst, text in zip(gen, got, strict=True):
        inst.resps.append(text)
    fast.loglikelihood(_instances(pairs))
    assert not fast._early_answers


@pytest.mark.slow
def test_lm_eval_evaluator_tells_econ_hf_the_run_tasks(model_dir, bundle_env):
    """Through lm-eval's own evaluator: with the preview installed, econ_classify's log-likelihood pass
    answers econ_classify_gen's requests (the same documents and prompts) even when the generation task
    comes first, and the run's generations and scores are the ones it makes without."""
    import lm_eval.evaluator
    from lm_eval.tasks import TaskManager

    from econ_eval.config import tasks_dir
    from econ_eval.hf_prefix_shared import PrefixSharedHFLM, preview_run_tasks

    preview_run_tasks()
    preview_run_tasks()  # idempotent: one wrapper
    assert lm_eval.evaluator.evaluate.__wrapped__.__name__ == "evaluate"
    assert not hasattr(lm_eval.evaluator.evaluate.__wrapped__, "econ_hf_preview")
    tm = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    lm = PrefixSharedHFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=4)

    def generations(evaluate):
        # the generation task named first: lm-eval would then send its requests first
        out = evaluate(lm=lm, task_dict=tm.load(["econ_classify_gen", "econ_classify"]), limit=6,
                       apply_chat_template=True, bootstrap_iters=0, log_samples=True)
        return [s["resps"] for s in out["samples"]["econ_classify_gen"]], out["results"]

    with_preview = generations(lm_eval.evaluator.evaluate)
    early = lm.answered_early
    without = generations(lm_eval.evaluator.evaluate.__wrapped__)
    assert early == 6 and lm.answered_early == early  # all 6 with the preview, none without
    assert with_preview == without and len(with_preview[0]) == 6  # the same generations and scores
