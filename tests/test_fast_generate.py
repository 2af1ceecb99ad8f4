"""The greedy decoder of econ_eval/fast_generate.py and econ-hf's ``generate_until`` on it.

Unit tests run a tiny randomly initialised Llama (real Transformers code, 2 layers) in float32, where the
decoder and ``generate()`` differ only in the order of float32 operations, so greedy tokens must match
exactly; the slow tests compare econ-hf with lm-eval's own ``hf`` generation on the embedded model.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from econ_eval import fast_generate

PROMPTS = [[5, 17, 33, 2, 9, 41, 8], [3], [60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73], [7, 7, 7, 7],
           [11, 12, 13, 14, 15, 16, 17, 18, 19]]


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False, initializer_range=0.2)  # varied, non-repeating outputs
    model = LlamaForCausalLM(config).eval()
    return model


def _reference(model, prompt, n):
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, min_new_tokens=n,
                             pad_token_id=0, eos_token_id=None)
    return out[0, len(prompt):].tolist()


def test_decoder_matches_generate_token_for_token(tiny_llama):
    n = [12, 5, 9, 1, 20]
    ref = [_reference(tiny_llama, p, k) for p, k in zip(PROMPTS, n, strict=True)]
    assert len({tuple(r) for r in ref}) == len(ref)  # the prompts lead to different continuations
    assert all(len(set(r)) > len(r) // 2 for r in ref if len(r) > 4)  # not one token repeated
    for width in (1, 2, 8):  # more slots than requests, fewer, one
        for chunk in (None, 3):  # whole prompts, or 3 tokens a step (prompts filled over several steps)
            dec = fast_generate.GreedyDecoder(tiny_llama, width=width, max_positions=40, prefill_chunk=chunk)
            assert dec.generate(PROMPTS, n, lambda r, g: False) == ref, (width, chunk)


def test_prefill_chunks_ride_along_with_decoding_steps(tiny_llama):
    """A prompt's prefill runs in the same pass as the other slots' decoding step: one pass per step, the
    chunk's rows and the decoding rows together (not a prefill pass, then a step)."""
    passes = []
    dec = fast_generate.GreedyDecoder(tiny_llama, width=2, max_positions=40, prefill_chunk=4)
    forward = dec._forward

    def spy(decode=None, chunk=None, chunk_logits=True):
        passes.append((decode is not None, len(chunk[1]) if chunk else 0))
        return forward(decode, chunk, chunk_logits)
    dec._forward = spy
    prompts, n = [PROMPTS[0], PROMPTS[2]], [12, 3]  # 7 and 14 tokens
    assert dec.generate(prompts, n, lambda r, g: False) == [_reference(tiny_llama, p, k) for p, k in zip(prompts, n)]
    # prompt 0: 4 + 3 tokens alone; prompt 1 (14 tokens: 4 + 4 + 4 + 2) alongside prompt 0's steps
    assert passes[:6] == [(False, 4), (False, 3), (True, 4), (True, 4), (True, 4), (True, 2)]
    assert all(not c for _, c in passes[6:]) and len(passes) == 2 + 11  # then decoding only: 11 more steps
    assert dec.prefilled_tokens == 21


def test_fused_projections_decode_the_same_tokens_and_leave_lora_layers_alone(tiny_llama):
    """q/k/v and gate/up run as one packed matmul each in decoding steps: same tokens as the module-by-module
    path; a PEFT adapter's LoRA layers are not fused (their own forward runs)."""
    import copy

    from peft import LoraConfig, get_peft_model

    n = [12, 5, 9, 1, 20]
    fused = fast_generate.GreedyDecoder(tiny_llama, width=3, max_positions=40)
    plain = fast_generate.GreedyDecoder(tiny_llama, width=3, max_positions=40)
    plain._fused = []  # no fused weights: every projection module runs on its own
    with fast_generate.prepacked_linears(tiny_llama, 3):
        got = fused.generate(PROMPTS, n, lambda r, g: False)
        assert got == plain.generate(PROMPTS, n, lambda r, g: False)
    assert got == [_reference(tiny_llama, p, k) for p, k in zip(PROMPTS, n)]
    if torch.backends.mkldnn.is_available():
        assert all(qkv is not None and gate_up is not None for qkv, gate_up in fused._fused)

    torch.manual_seed(1)
    lora = get_peft_model(copy.deepcopy(tiny_llama), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                  init_lora_weights=False)).eval()
    dec = fast_generate.GreedyDecoder(lora, width=3, max_positions=40)
    got = dec.generate(PROMPTS, n, lambda r, g: False)
    assert all(qkv is None for qkv, _ in dec._fused)  # q and v are LoRA layers: their forward, unfused
    assert got == [_reference(lora, p, k) for p, k in zip(PROMPTS, n)]
    assert got != [_reference(tiny_llama, p, k) for p, k in zip(PROMPTS, n)]  # the adapter does change them


def test_decoder_stops_where_finished_says_and_reports_each_request_once(tiny_llama):
    full = [_reference(tiny_llama, p, 10) for p in PROMPTS]
    stop_token = {r: full[r][3] for r in range(len(PROMPTS))}  # stop at the 4th token's first occurrence
    done = []
    dec = fast_generate.GreedyDecoder(tiny_llama, width=3, max_positions=40)
    got = dec.generate(PROMPTS, [10] * len(PROMPTS), lambda r, g: g[-1] == stop_token[r],
                       on_done=lambda r, g: done.append(r))
    for r, tokens in enumerate(got):
        assert tokens == full[r][:full[r].index(stop_token[r]) + 1]
    assert sorted(done) == list(range(len(PROMPTS)))
    assert dec.generate(PROMPTS[:2], [0, 3], lambda r, g: False) == [[], full[1][:3]]


HEAD = list(range(21, 61))  # 40 tokens: longer than fast_generate.MIN_SHARED_EXTRA
SHARED = [[1, 2] + HEAD + [80, 81, 82], [1, 2, 90, 91, 92, 93], [1, 2] + HEAD + [83], [1, 2] + HEAD[:12] + [85, 86],
          [1, 2, 70, 71, 72, 73, 74, 75, 76, 77], [1, 2] + HEAD + [80, 81, 82, 84, 85]]


def test_decoder_reuses_shared_prompt_heads_token_for_token(tiny_llama):
    """Prompts that repeat another's head (the same abstract asked about again) copy its cache instead of
    recomputing it, and still decode exactly what generate() does on the whole prompt."""
    n = [9, 6, 11, 4, 7, 8]
    ref = [_reference(tiny_llama, p, k) for p, k in zip(SHARED, n, strict=True)]
    assert len({tuple(r) for r in ref}) == len(ref)
    total = sum(map(len, SHARED))
    for width in (1, 2, 8):
        dec = fast_generate.GreedyDecoder(tiny_llama, width=width, max_positions=64)
        assert dec.generate(SHARED, n, lambda r, g: False) == ref
        # admitted 0, 2, 5 (the HEAD group), then 1, 3, 4: 2 and 5 each copy the 42 tokens [1, 2] + HEAD
        assert dec.reused_tokens == 2 * 42 and dec.prefilled_tokens == total - dec.reused_tokens


def test_decoder_takes_a_prompt_head_computed_elsewhere_token_for_token(tiny_llama):
    """Keys and values a caller already holds (econ-hf's log-likelihood pass, in a right-padded batch or
    extended past the prompt) are copied instead of recomputed; only the part agreeing with the prompt is
    used, never its last token, and the tokens decoded are generate()'s."""
    prompts = [[1, 2] + HEAD + [80, 81], [1, 2, 90, 91, 92, 93, 94, 95, 6, 5, 8, 9], [3, 4, 5]]
    n = [7, 5, 6]
    ref = [_reference(tiny_llama, p, k) for p, k in zip(prompts, n, strict=True)]
    # the caller's batch: row 0 ran the prompt plus one more token, row 1 the prompt's first 9 tokens then
    # other ones, right-padded to the longest row
    rows = [prompts[0] + [7], prompts[1][:9] + [40, 41]]
    width = max(map(len, rows))
    padded = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    with torch.inference_mode():
        cache = tiny_llama(input_ids=padded, use_cache=True).past_key_values
    layers = fast_generate.cache_layers(cache)
    heads = {0: fast_generate.PromptHead(rows[0], [(k[0], v[0]) for k, v in layers]),
             1: fast_generate.PromptHead(rows[1], [(k[1], v[1]) for k, v in layers]),
             2: fast_generate.PromptHead([3, 4], [(k[1], v[1]) for k, v in layers])}  # too short to bother
    for width_ in (1, 3):
        dec = fast_generate.GreedyDecoder(tiny_llama, width=width_, max_positions=64)
        assert dec.generate(prompts, n, lambda r, g: False, prompt_heads=heads) == ref
        # prompt 0: all but its last token (43 of 44); prompt 1: its 9 tokens shared with row 1; prompt 2: none
        assert dec.reused_tokens == 43 + 9
        assert dec.prefilled_tokens == sum(map(len, prompts)) - dec.reused_tokens
    # a head whose tokens disagree with the prompt from the start is not used
    dec = fast_generate.GreedyDecoder(tiny_llama, width=2, max_positions=64)
    wrong = {0: fast_generate.PromptHead([9] + rows[0][1:], heads[0].layers)}
    assert dec.generate(prompts[:1], n[:1], lambda r, g: False, prompt_heads=wrong) == ref[:1]
    assert dec.reused_tokens == 0


@pytest.fixture(scope="module")
def looping_llama():
    """A tiny Llama whose greedy outputs fall into loops with breaks (weights near zero): prompt-lookup drafts
    are accepted in the loops and rejected at the breaks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False, initializer_range=0.05)
    return LlamaForCausalLM(config).eval()


def test_prompt_lookup_drafts_continue_the_latest_earlier_occurrence():
    lookup = fast_generate.PromptLookup([1, 2, 3, 9, 1, 2, 4, 5], n=2)
    assert lookup.draft(3) == []           # (4, 5) occurred nowhere before
    lookup.extend([1, 2])
    assert lookup.draft(3) == [4, 5, 1]    # the latest (1, 2) before the last one: followed by 4, 5, 1
    assert lookup.draft(1) == [4] and lookup.draft(0) == []
    lookup.extend([4])
    assert lookup.draft(5) == [5, 1, 2, 4]  # never past the sequence's end
    assert fast_generate.PromptLookup([7], n=2).draft(3) == []


def test_decoder_with_prompt_lookup_drafts_gives_the_same_tokens_in_fewer_passes(looping_llama):
    """Each decoding row checks up to k draft tokens (its prompt's or output's continuation of its last two
    tokens) in one pass: the tokens are the greedy ones, only fewer passes run."""
    n = [30, 25, 30, 12, 40]
    ref = [_reference(looping_llama, p, k) for p, k in zip(PROMPTS, n)]
    plain = fast_generate.GreedyDecoder(looping_llama, width=3, max_positions=80)
    assert plain.generate(PROMPTS, n, lambda r, g: False) == ref
    for width in (1, 3, 8):
        for chunk in (None, 3):
            for k in (1, 3, 5):
                dec = fast_generate.GreedyDecoder(looping_llama, width=width, max_positions=80, prefill_chunk=chunk,
                                                  draft_tokens=k)
                assert dec.generate(PROMPTS, n, lambda r, g: False) == ref, (width, chunk, k)
                assert 0 < dec.accepted_tokens < dec.drafted_tokens, (width, chunk, k)  # accepted and rejected
        assert dec.decode_passes < plain.decode_passes if width == 3 else True
    # a stop inside an accepted run ends the sequence there, as one token a step would
    stops = {r: ref[r].index(ref[r][12]) + 1 for r in range(len(PROMPTS)) if len(ref[r]) > 12}
    dec = fast_generate.GreedyDecoder(looping_llama, width=3, max_positions=80, draft_tokens=4)
    got = dec.generate(PROMPTS, n, lambda r, g: r in stops and len(g) >= stops[r])
    assert got == [ref[r][:stops[r]] if r in stops else ref[r] for r in range(len(PROMPTS))]


@pytest.mark.parametrize("earlier,length", [(0, 12), (5, 12), (12, 12), (30, 12), (26, 600), (0, 600)])
def test_causal_attention_after_a_cache_equals_sdpa_with_its_explicit_mask(earlier, length):
    """Queries after ``earlier`` cached positions: the causal-kernel path (zero queries for the cached positions,
    kv heads not repeated) gives what SDPA gives with the lower-right causal mask and repeated kv heads."""
    torch.manual_seed(earlier)
    heads, kv, d = 6, 2, 16
    q = torch.randn(2, heads, length, d)
    k, v = torch.randn(2, kv, earlier + length, d), torch.randn(2, kv, earlier + length, d)
    sees = torch.arange(earlier + length) <= torch.arange(earlier, earlier + length)[:, None]  # (length, all)
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(heads // kv, 1), v.repeat_interleave(heads // kv, 1), attn_mask=sees, scale=0.3)
    got = fast_generate.causal_attention(q, k, v, scale=0.3)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    unmasked = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(heads // kv, 1), v.repeat_interleave(heads // kv, 1), scale=0.3)
    assert not torch.allclose(got, unmasked, atol=1e-3)  # the mask matters here: a wrong one would show


def test_admission_order_keeps_prompts_with_a_long_shared_head_together():
    assert fast_generate.admission_order(SHARED) == [0, 2, 5, 1, 3, 4]
    # what every prompt shares (a chat template's system turn) does not regroup anything
    system = list(range(100, 140))
    assert fast_generate.admission_order([system + [i, i + 1] for i in (5, 9, 1, 7)]) == [0, 1, 2, 3]
    assert fast_generate.admission_order(PROMPTS) == list(range(len(PROMPTS)))
    assert fast_generate.admission_order([[1], [1]]) == [0, 1]


def test_idle_slots_keep_their_cache_during_a_step(tiny_llama):
    dec = fast_generate.GreedyDecoder(tiny_llama, width=3, max_positions=40)
    with torch.inference_mode():
        for slot, prompt in enumerate(PROMPTS[:3]):
            dec._prefill(prompt, slot)
        kept = [k[1, :, :40].clone() for k in dec.keys]  # the positions (an idle row writes past them)
        dec._step(torch.tensor([4, 0, 6]), torch.tensor([len(PROMPTS[0]), 0, len(PROMPTS[2])]),
                  active=torch.tensor([0, 2]))
    assert all(torch.equal(k[1, :, :40], before) for k, before in zip(dec.keys, kept, strict=True))
    assert not torch.equal(dec.keys[0][0, :, len(PROMPTS[0])], torch.zeros_like(dec.keys[0][0, :, 0]))


def test_fused_rms_norm_is_bit_identical_to_the_model_norm_in_float32_only(tiny_llama):
    import copy

    torch.manual_seed(1)
    norms = [tiny_llama.model.norm] + [m for layer in tiny_llama.model.layers
                                       for m in (layer.input_layernorm, layer.post_attention_layernorm)]
    for norm in norms:
        norm_ = copy.deepcopy(norm)
        norm_.weight.data = torch.randn_like(norm_.weight)  # not the initial ones
        for rows in (1, 8, 37):
            x = torch.randn(1, rows, norm_.weight.shape[0]) * 3
            with torch.inference_mode():
                assert torch.equal(fast_generate._norm(norm_, x), norm_(x))
    # bf16: the module itself runs (the fused kernel rounds differently there)
    bf16 = copy.deepcopy(tiny_llama.model.norm).to(torch.bfloat16)
    calls = []
    bf16.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 4, bf16.weight.shape[0], dtype=torch.bfloat16)
    with torch.inference_mode():
        assert torch.equal(fast_generate._norm(bf16, x), bf16(x)) and len(calls) == 2


def test_decoder_refuses_a_request_longer_than_its_cache(tiny_llama):
    dec = fast_generate.GreedyDecoder(tiny_llama, width=2, max_positions=16)
    with pytest.raises(ValueError, match="request 2: 14 prompt \\+ 5 new tokens exceed the decoder's 16 positions"):
        dec.generate(PROMPTS, [5] * len(PROMPTS), lambda r, g: False)


def test_prepacked_linears_are_bit_identical_and_restored(tiny_llama):
    import copy

    model = copy.deepcopy(tiny_llama).to(torch.bfloat16)
    ids = torch.tensor([PROMPTS[0], PROMPTS[4][:7]])
    with torch.inference_mode():
        plain = model(ids).logits
        with fast_generate.prepacked_linears(model) as patched:
            packed = model(ids).logits
            one_row = model(ids[:1, :1]).logits
        after = model(ids).logits
    if not fast_generate.packing_supported():  # e.g. an AVX2-only CPU: plain F.linear, nothing patched
        assert patched == 0
    else:
        assert patched == 2 * 7 + 1  # 7 projections a layer + the LM head
    assert torch.equal(plain, packed) and torch.equal(plain, after)
    assert torch.equal(one_row, model(ids[:1, :1]).logits)
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_prepacked_float32_linears_run_decoding_rows_only(tiny_llama):
    import copy

    model = copy.deepcopy(tiny_llama)  # float32
    step = torch.tensor([[5], [9], [17]])                    # 3 rows: a decoding step's shape
    prefill = torch.randint(0, 96, (2, fast_generate.FP32_PACKED_MAX_ROWS))  # 64 rows: the module's own F.linear
    head = model.lm_head
    with torch.inference_mode():
        plain_step, plain_prefill = model(step).logits, model(prefill).logits
        x = torch.randn(3, 64)
        plain_head = head(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain_auto = head(x)
        with fast_generate.prepacked_linears(model) as patched:
            packed_step, packed_prefill = model(step).logits, model(prefill).logits
            packed_head = head(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                packed_auto = head(x)
    if not torch.backends.mkldnn.is_available():
        assert patched == 0
        return
    assert patched == 2 * 7 + 1
    assert "forward" not in head.__dict__  # restored
    # the packed GEMM sums in another order: float32 rounding apart, not bit-equal in general
    assert torch.allclose(packed_step, plain_step, rtol=1e-4, atol=1e-5)
    assert torch.allclose(packed_head, plain_head, rtol=1e-5, atol=1e-6)
    assert torch.equal(packed_prefill, plain_prefill)  # above FP32_PACKED_MAX_ROWS rows: F.linear, unchanged
    assert torch.equal(packed_auto, plain_auto) and packed_auto.dtype == torch.bfloat16  # autocast: F.linear


def test_weight_copies_are_skipped_where_they_would_not_fit_in_memory(tiny_llama, monkeypatch):
    """Packed and fused weight copies are made only within a share of the available memory (a 7B model's
    would not fit beside it on a 24 GiB machine); without them the same tokens come out, on the model's own
    weights."""
    n = [12, 5, 9, 1, 20]
    ref = [_reference(tiny_llama, p, k) for p, k in zip(PROMPTS, n)]
    assert fast_generate.available_memory() > 0
    if torch.backends.mkldnn.is_available():  # within the default share: packed and fused
        dec = fast_generate.GreedyDecoder(tiny_llama, width=3, max_positions=40)
        with fast_generate.prepacked_linears(tiny_llama, 3) as patched:
            assert patched == 2 * 7 + 1
            assert dec.generate(PROMPTS, n, lambda r, g: False) == ref
        assert all(qkv is not None for qkv, _ in dec._fused)
    monkeypatch.setattr(fast_generate, "PACKED_COPIES_MAX_SHARE", 1e-12)  # no copy fits
    dec = fast_generate.GreedyDecoder(tiny_llama, width=3, max_positions=40)
    with warnings.catch_warnings(record=True) as caught, fast_generate.prepacked_linears(tiny_llama, 3) as patched:
        warnings.simplefilter("always")
        assert patched == 0
        assert dec.generate(PROMPTS, n, lambda r, g: False) == ref
    assert not any("forward" in m.__dict__ for m in tiny_llama.modules())
    if torch.backends.mkldnn.is_available():
        assert dec._fused == []
        messages = [str(w.message) for w in caught]
        assert any(m.startswith("packing the linear weights for oneDNN: skipped") for m in messages), messages
        assert any(m.startswith("fusing the q/k/v and gate/up projections: skipped") and "GiB of memory available"
                   in m for m in messages), messages


def test_supports_only_llama_layouts(tiny_llama):
    from transformers import GPT2Config, GPT2LMHeadModel

    assert fast_generate.supports(tiny_llama)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    assert not fast_generate.supports(gpt2)


# ---------------------------------------------------------------- econ-hf generate_until (embedded model)
GEN_CONTEXTS = [
    "<|im_start|>user\nWrite a title for this economics abstract: We study minimum wages and teen employment "
    "with a synthetic control design across US states.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWhat is inflation? Answer in one sentence.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nName one central bank.<|im_end|>\n<|im_start|>assistant\n",
    "The three largest economies of the world are",
    "<|im_start|>user\nIs a tariff a tax? Answer Yes or No.<|im_end|>\n<|im_start|>assistant\n",
]
# the same abstract asked about twice (as econ_qa does): the second prompt reuses the first one's cache
_ABSTRACT = ("<|im_start|>user\nContext: We estimate the effect of a minimum wage increase on teen employment "
             "in US counties, using a synthetic control design and payroll records from 2010 to 2019.\n\n")
GEN_CONTEXTS += [_ABSTRACT + "Question: What design is used?<|im_end|>\n<|im_start|>assistant\n",
                 _ABSTRACT + "Question: Which years are covered?<|im_end|>\n<|im_start|>assistant\n"]


def _gen_instances(kwargs):
    from lm_eval.api.instance import Instance

    return [Instance(request_type="generate_until", doc={}, arguments=(c, dict(kw)), idx=i)
            for i, (c, kw) in enumerate(zip(GEN_CONTEXTS, kwargs, strict=True))]


@pytest.mark.slow
def test_econ_hf_generations_match_lm_eval_hf_in_float32():
    from lm_eval.models.huggingface import HFLM

    from econ_eval.hf_prefix_shared import PrefixSharedHFLM
    from econ_eval.models import fetch_model

    path = str(fetch_model("smollm2-135m"))
    kwargs = [{"until": ["\n\n"], "max_gen_toks": 24, "do_sample": False}] * 3 + \
        [{"until": ["."], "max_gen_toks": 16, "do_sample": False}] * 2 + \
        [{"until": ["\n\n"], "max_gen_toks": 24, "do_sample": False}] * 2  # two kwargs groups, one stop each
    common = dict(pretrained=path, device="cpu", dtype="float32", batch_size=1)
    ref = HFLM(**common).generate_until(_gen_instances(kwargs))
    fast = PrefixSharedHFLM(**{**common, "batch_size": 3})
    decoders = []
    original = fast_generate.GreedyDecoder.generate
    fast_generate.GreedyDecoder.generate = lambda self, *a, **k: decoders.append(self) or original(self, *a, **k)
    try:
        got = fast.generate_until(_gen_instances(kwargs))
    finally:
        fast_generate.GreedyDecoder.generate = original
    assert len(decoders) == 1  # the decoder ran, once for both generation-kwargs groups
    assert decoders[0].reused_tokens > 40  # the second question on the abstract reused the first one's cache
    assert got == ref
    assert all(got) and len(set(got)) == len(got)
    assert "." not in got[3] and "." not in got[4]  # stop sequences are cut off as lm-eval does


@pytest.mark.slow
def test_econ_hf_sampling_requests_take_lm_eval_own_path():
    from econ_eval.hf_prefix_shared import PrefixSharedHFLM
    from econ_eval.models import fetch_model

    fast = PrefixSharedHFLM(pretrained=str(fetch_model("smollm2-135m")), device="cpu", dtype="float32",
                            batch_size=2)
    greedy = _gen_instances([{"until": ["\n"], "max_gen_toks": 4, "do_sample": False}] * len(GEN_CONTEXTS))
    sampled = _gen_instances([{"until": ["\n"], "max_gen_toks": 4, "do_sample": True, "temperature": 0.7}] * len(GEN_CONTEXTS))
    assert fast._fast_generate_applies(greedy)
    assert not fast._fast_generate_applies(sampled)
    assert not PrefixSharedHFLM(pretrained=str(fetch_model("smollm2-135m")), device="cpu", dtype="float32",
                                batch_size=2, fast_generate="false")._fast_generate_applies(greedy)


@pytest.mark.slow
def test_econ_hf_generations_with_a_lora_adapter_match_hf():
    from lm_eval.models.huggingface import HFLM

    from econ_eval.config import REPO_ROOT
    from econ_eval.hf_prefix_shared import PrefixSharedHFLM
    from econ_eval.models import fetch_model

    adapter = REPO_ROOT / "adapters" / "smollm2-135m-lora"
    if not (adapter / "adapter_model.safetensors").is_file():
        pytest.skip("published adapter not found")
    kwargs = [{"until": ["\n\n"], "max_gen_toks": 24, "do_sample": False}] * len(GEN_CONTEXTS)
    common = dict(pretrained=str(fetch_model("smollm2-135m")), device="cpu", dtype="float32", batch_size=1)
    ref = HFLM(**common, peft=str(adapter)).generate_until(_gen_instances(kwargs))
    got = PrefixSharedHFLM(**{**common, "batch_size": 3}, peft=str(adapter)).generate_until(_gen_instances(kwargs))
    base = PrefixSharedHFLM(**{**common, "batch_size": 3}).generate_until(_gen_instances(kwargs))
    assert got == ref
    assert sum(a != b for a, b in zip(got, base, strict=True)) >= 2  # the adapter's LoRA layers really ran
