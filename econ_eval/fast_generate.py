"""Greedy batched generation for Llama-architecture checkpoints on the CPU, without ``generate()``'s overhead.

Measured on the 2-core CPU with SmolLM2-135M at batch 8 and ~300 cached tokens (torch profiler, one
decoding step of lm-eval's ``hf`` backend, 88 ms): 46% of the time is the CPU flash-attention kernel
called with one query token, 31% the matmuls, 16% ``torch.cat`` growing the KV cache by one token per
layer per step. ``GreedyDecoder`` keeps everything that computes the model's numbers — the model's own
projection, norm, MLP and rotary modules (a PEFT adapter's LoRA layers included, unmerged) — and
replaces only

- the KV cache: one preallocated float32 buffer per layer (bf16 keys and values are exact in float32),
  written in place;
- decode-step attention: a batched matmul over the valid cached positions with a float32 softmax
  (the CPU flash kernel also accumulates bf16 inputs in float32);
- scheduling: continuous batching — a finished sequence's slot takes the next request at once (lm-eval's
  batches of 8 run until their longest member stops: 76% of the slots do useful work on this suite);
  each prompt is prefilled alone with the model's own forward (no padding);
- prompt reuse: a prompt's leading tokens shared with the previously prefilled prompt (the chat template's
  system turn; the same abstract, table or headline asked about again — econ_qa has 2 questions per
  abstract, econ_tatqa 6 per report excerpt, econ_headlines 7 per headline) are copied from that prompt's
  cache instead of being recomputed, and prompts that share more than the common opening are admitted one
  after the other (:func:`admission_order`) so the reuse finds them. Only the order in which requests
  start changes; each one's tokens do not depend on the others'. A caller that already holds a prompt's
  keys and values (econ-hf's log-likelihood pass over the same context, see :class:`PromptHead`) hands
  them over instead.

Greedy choices are the argmax of the same bf16 logits ``generate()`` takes. Outputs can still differ
from ``hf``'s where bf16 rounding in other kernel shapes flips a near-tie (prefilling a prompt's tail on its
reused head is such a shape change: logits within a few bf16 units, ~1e-5 in float32);
``benchmarks/eval_throughput.py`` counts identical outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

#: reuse a previous prompt's cache only for at least this many leading tokens (below it a copy saves nothing)
MIN_REUSED_TOKENS = 8
#: prompts sharing this many tokens beyond what all prompts share are admitted one after the other (a
#: headline of econ_headlines is ~20 tokens, an abstract ~200)
MIN_SHARED_EXTRA = 16


def supports(model) -> bool:
    """True when ``model`` (optionally PEFT-wrapped) is a Llama-architecture causal LM this decoder drives."""
    base = _causal_lm(model)
    if getattr(base.config, "model_type", "") != "llama" or getattr(base, "lm_head", None) is None:
        return False
    body = getattr(base, "model", None)
    layers = getattr(body, "layers", None)
    if not layers or not all(hasattr(body, n) for n in ("embed_tokens", "rotary_emb", "norm")):
        return False
    layer = layers[0]
    return all(hasattr(layer, n) for n in ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn")) and \
        all(hasattr(layer.self_attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))


def _causal_lm(model):
    """The ``*ForCausalLM`` module under a PEFT wrapper (the wrapper's LoRA layers stay in place)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


#: float32 linears take the packed weight only for inputs of at most this many rows (decoding steps): there
#: MKL's sgemm streams the weight slowly (measured on an AVX2 EPYC, 8 rows: the 49,152-row LM head 18.9 ->
#: 6.2 ms, 576x1536 0.35 -> 0.16 ms), while for a prefill's hundreds of rows the two are level
FP32_PACKED_MAX_ROWS = 32


@contextlib.contextmanager
def prepacked_linears(model, batch_hint: int = 8) -> Iterator[int]:
    """Run the ``nn.Linear`` layers of ``model`` on oneDNN weights packed once, for the ``with`` block.

    bf16 (where :func:`packing_supported`): ``F.linear`` on a bf16 weight repacks it on every call; with 8 rows
    that repacking is most of the matmul's time (576x576: 45 -> 31 us; the 49,152-row LM head: 4.0 -> 2.2 ms).
    The packed kernel is the same oneDNN GEMM (bf16 inputs, float32 accumulation); ``tests/test_fast_generate.py``
    checks that its outputs are bit-identical to ``F.linear``'s on the model's own weights.

    float32 (where torch has oneDNN): inputs of at most :data:`FP32_PACKED_MAX_ROWS` rows run on the packed
    weight (see there), larger ones on ``F.linear`` as before; the packed GEMM sums in another order, so its
    outputs differ from MKL's by float32 rounding (~1e-6 relative). Not under autocast (``F.linear`` then).

    Yields how many modules were patched (0: nothing changes).
    """
    patched = []
    pack_bf16, pack_fp32 = packing_supported(), torch.backends.mkldnn.is_available()
    for module in model.modules():
        if type(module) is not torch.nn.Linear or "forward" in module.__dict__:
            continue
        dtype = module.weight.dtype
        if (dtype == torch.bfloat16 and pack_bf16) or (dtype == torch.float32 and pack_fp32):
            packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), batch_hint)
            bias = None if module.bias is None else module.bias.detach()
            module.forward = _packed_forward(module, packed, bias)
            patched.append(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward


def packing_supported() -> bool:
    """Whether this CPU runs oneDNN's packed bf16 linear (:func:`econ_eval.config.cpu_native_bf16`: AVX-512
    BW/VL/DQ or AVX-NE-CONVERT on x86). Elsewhere a bf16 linear runs on the plain ``F.linear``."""
    from .config import cpu_native_bf16

    return cpu_native_bf16()


def _packed_forward(module, packed, bias):
    dtype = module.weight.dtype

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != dtype or (dtype == torch.float32 and (
                x.numel() > FP32_PACKED_MAX_ROWS * x.shape[-1] or torch.is_autocast_enabled(x.device.type))):
            return torch.nn.functional.linear(x, module.weight, module.bias)  # the module's own path
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    return forward


@dataclass(frozen=True)
class PromptHead:
    """Keys and values a caller already computed for a prompt's leading ``tokens``: one ``(keys, values)``
    pair per layer, each shaped ``(kv_heads, >= len(tokens), head_dim)`` in the model's dtype.

    The decoder copies the part of it that agrees with the prompt (at least ``MIN_REUSED_TOKENS``, never the
    prompt's last token, whose logits pick the first generated one) instead of recomputing it."""

    tokens: Sequence[int]
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class _Slot:
    request: int
    length: int = 0          # positions written to the cache
    generated: list[int] = field(default_factory=list)


class GreedyDecoder:
    """Continuous-batching greedy decoder over ``width`` slots (see the module docstring)."""

    def __init__(self, model, width: int, max_positions: int):
        self.lm = _causal_lm(model)
        self.body = self.lm.model
        cfg = self.lm.config
        self.layers = list(self.body.layers)
        self.width = width
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5
        self.max_positions = max_positions
        shape = (width, self.n_kv, max_positions, self.head_dim)
        self._rows = torch.arange(width)
        self.keys = [torch.zeros(shape) for _ in self.layers]
        self.values = [torch.zeros(shape) for _ in self.layers]
        self._last: tuple[int, Sequence[int]] | None = None  # (slot, prompt) of the last prefill
        self.reused_tokens = 0       # prompt tokens copied from a previous prompt's cache
        self.prefilled_tokens = 0    # prompt tokens run through the model

    # -- model pieces -------------------------------------------------------------------------
    def _prefill(self, tokens: Sequence[int], slot: int, head: PromptHead | None = None) -> int:
        """Fill ``slot``'s cache with ``tokens`` and return the next (greedy) token.

        The leading tokens shared with the previously prefilled prompt are copied from its cache (its
        positions below its prompt length are never overwritten while it lives: steps write each slot at
        its own next position, idle slots not at all), or from ``head`` where that covers more of the
        prompt; the rest runs through the model's own forward on that cache. Without a usable shared head
        the whole prompt runs alone.
        """
        n = len(tokens)
        reused = from_head = 0
        if self._last is not None:
            reused = min(common_prefix(self._last[1], tokens), n - 1)  # at least one token computes the logits
        if head is not None:
            from_head = min(common_prefix(head.tokens, tokens), n - 1)
        if max(reused, from_head) < MIN_REUSED_TOKENS:
            reused = 0
        elif from_head > reused:
            reused = from_head
            for i, (k, v) in enumerate(head.layers):
                self.keys[i][slot, :, :reused].copy_(k[:, :reused])
                self.values[i][slot, :, :reused].copy_(v[:, :reused])
        elif self._last[0] != slot:
            last_slot = self._last[0]
            for i in range(len(self.layers)):
                self.keys[i][slot, :, :reused].copy_(self.keys[i][last_slot, :, :reused])
                self.values[i][slot, :, :reused].copy_(self.values[i][last_slot, :, :reused])
        cache = None
        if reused:
            dtype = self.lm.get_input_embeddings().weight.dtype  # cached values came from it: exact round trip
            cache = DynamicCache(ddp_cache_data=[(self.keys[i][slot:slot + 1, :, :reused].to(dtype),
                                                  self.values[i][slot:slot + 1, :, :reused].to(dtype))
                                                 for i in range(len(self.layers))], config=self.lm.config)
        ids = torch.tensor([list(tokens[reused:])], dtype=torch.long)
        out = self.lm(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        for i, (k, v) in enumerate(cache_layers(out.past_key_values)):
            self.keys[i][slot, :, reused:n].copy_(k[0, :, reused:n])
            self.values[i][slot, :, reused:n].copy_(v[0, :, reused:n])
        self._last = (slot, tokens)
        self.reused_tokens += reused
        self.prefilled_tokens += n - reused
        return int(out.logits[0, -1].float().argmax())

    def _step(self, tokens: torch.Tensor, positions: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """One decoding step of every slot (a token and its position each); returns the greedy tokens.

        Idle slots run too (on a dummy token at position 0, their result ignored): a matmul over 8 rows
        costs what one over 5 does, and whole-buffer views avoid gathering the cache. Only the ``active``
        slots (default: all) write their keys and values, so an idle slot keeps its prompt's cache for reuse.
        """
        b = self.width
        rows = self._rows if active is None else active
        write_at = positions if active is None else positions[active]
        h = self.body.embed_tokens(tokens.view(b, 1))
        cos, sin = self.body.rotary_emb(h, positions.view(b, 1))
        span = int(positions.max()) + 1
        # key positions beyond each row's own length are masked out (an additive -inf, built once a step)
        beyond = torch.arange(span).view(1, 1, 1, span) > positions.view(b, 1, 1, 1)
        mask = torch.zeros(beyond.shape).masked_fill_(beyond, float("-inf"))
        group = self.n_heads // self.n_kv

        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            residual = h
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(b, 1, self.n_heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(b, 1, self.n_kv, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(b, 1, self.n_kv, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            kc, vc = self.keys[i], self.values[i]
            kc[rows, :, write_at] = k[rows, :, 0].float()
            vc[rows, :, write_at] = v[rows, :, 0].float()
            keys = kc[:, :, :span]                         # (b, kv, span, d), a view
            vals = vc[:, :, :span]
            qf = q.float().view(b, self.n_kv, group, self.head_dim)
            scores = torch.matmul(qf, keys.transpose(-1, -2)).mul_(self.scaling).add_(mask)  # (b, kv, group, span)
            probs = torch.softmax(scores, dim=-1)
            out = torch.matmul(probs, vals).to(h.dtype)  # (b, kv, group, d)
            h = residual + attn.o_proj(out.reshape(b, 1, self.n_heads * self.head_dim))
            residual = h
            h = residual + layer.mlp(layer.post_attention_layernorm(h))
        h = self.body.norm(h)
        logits = self.lm.lm_head(h[:, -1])
        return logits.float().argmax(-1)

    # -- scheduling ---------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 finished: Callable[[int, list[int]], bool],
                 on_done: Callable[[int, list[int]], None] | None = None,
                 prompt_heads: Mapping[int, PromptHead] | None = None) -> list[list[int]]:
        """Greedy continuations of ``prompts`` (token lists), admitted in the given order.

        A sequence stops when ``finished(request, generated)`` is true or after ``max_new_tokens[request]``
        tokens; ``on_done(request, generated)`` is called as each one completes. Requests start in
        :func:`admission_order` (the given order, prompts that share a long head kept together).
        ``prompt_heads[request]``: keys and values already computed for that prompt's head (see
        :class:`PromptHead`).
        """
        prompt_heads = prompt_heads or {}
        results: list[list[int] | None] = [None] * len(prompts)
        pending = iter(admission_order(prompts))
        slots: dict[int, _Slot] = {}
        free = list(range(self.width - 1, -1, -1))
        exhausted = False

        def over(st: _Slot) -> bool:
            return finished(st.request, st.generated) or len(st.generated) >= max_new_tokens[st.request]

        def complete(s: int) -> None:
            st = slots.pop(s)
            results[st.request] = st.generated
            free.append(s)
            if on_done is not None:
                on_done(st.request, st.generated)

        while True:
            while free and not exhausted:
                r = next(pending, None)
                if r is None:
                    exhausted = True
                    break
                if len(prompts[r]) + max_new_tokens[r] > self.max_positions:
                    raise ValueError(f"request {r}: {len(prompts[r])} prompt + {max_new_tokens[r]} new tokens "
                                     f"exceed the decoder's {self.max_positions} positions")
                s = free.pop()
                slots[s] = _Slot(request=r, length=len(prompts[r]))
                if max_new_tokens[r] <= 0:
                    complete(s)
                    continue
                slots[s].generated.append(self._prefill(prompts[r], s, prompt_heads.get(r)))
                if over(slots[s]):
                    complete(s)
            if not slots:
                break
            tokens = torch.zeros(self.width, dtype=torch.long)
            positions = torch.zeros(self.width, dtype=torch.long)
            for s, st in slots.items():
                tokens[s], positions[s] = st.generated[-1], st.length
            active = None if len(slots) == self.width else torch.tensor(sorted(slots), dtype=torch.long)
            nxt = self._step(tokens, positions, active).tolist()
            for s in sorted(slots):
                st, t = slots[s], nxt[s]
                st.length += 1
                st.generated.append(int(t))
                if over(st):
                    complete(s)
        return results  # type: ignore[return-value]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def admission_order(prompts: Sequence[Sequence[int]], min_extra: int = MIN_SHARED_EXTRA) -> list[int]:
    """The order requests start in: the given one, except that prompts sharing at least ``min_extra``
    tokens more than all prompts share (the same abstract or table asked about again) follow the first of
    them at once, so each finds its shared head in the previous prompt's cache.

    Neighbours in sorted order share the longest heads, so the groups are runs of sorted neighbours.
    """
    n = len(prompts)
    if n < 3:
        return list(range(n))
    lexical = sorted(range(n), key=lambda i: list(prompts[i]))
    shared = [common_prefix(prompts[a], prompts[b]) for a, b in zip(lexical, lexical[1:])]
    common = min(shared)
    group_of = {lexical[0]: 0}
    for k, (a, b) in enumerate(zip(lexical, lexical[1:])):
        group_of[b] = group_of[a] if shared[k] >= common + min_extra else group_of[a] + 1
    members: dict[int, list[int]] = {}
    for i in range(n):  # in the given order
        members.setdefault(group_of[i], []).append(i)
    return [i for group in sorted(members.values(), key=lambda m: m[0]) for i in group]


def cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's (keys, values), each (batch, kv_heads, positions, head_dim), of a transformers ``Cache``
    (v5 layers API or legacy tuples)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return [cache[i] for i in range(len(cache))]
