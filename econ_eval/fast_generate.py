"""Greedy batched generation for Llama-architecture checkpoints on the CPU, without ``generate()``'s overhead.

Measured on the 2-core CPU with SmolLM2-135M at batch 8 and ~300 cached tokens (torch profiler, one
decoding step of lm-eval's ``hf`` backend, 88 ms): 46% of the time is the CPU flash-attention kernel
called with one query token, 31% the matmuls, 16% ``torch.cat`` growing the KV cache by one token per
layer per step. ``GreedyDecoder`` keeps the model's own norm, MLP activation and rotary modules and its
projection weights (a PEFT adapter's LoRA layers included, unmerged, on their own forward) and replaces

- the KV cache: one preallocated float32 buffer per layer (bf16 keys and values are exact in float32),
  written in place;
- attention: SDPA over each decoding row's valid cached positions, a kv head's query heads as its rows,
  in float32; a prefill's rows attend causally to their slot's cache in the model's dtype (SDPA's causal
  kernel for long prompts, :func:`causal_attention`: measured, float32, 1 thread, econ_tatqa's first 48
  questions 105.3 -> 102.9 s and econ_qa_rag's first 32 108.2 -> 105.3 s, the same texts);
- fused projections: where q/k/v (and gate/up) are plain ``nn.Linear`` layers, a decoding step runs each
  group as one packed matmul (4 weight passes a layer instead of 7);
- fewer small operations a layer (at 8 rows each costs about as much to dispatch as to run): the rotary
  embedding turns queries and keys in one pass, a float32 RMSNorm is torch's one fused kernel, the step's
  keys and values land with one ``index_copy_`` each, and the attention mask is additive, built once a pass
  (measured on a 2-core AVX2 EPYC, float32, 8 rows at ~350 positions, 150 interleaved steps: 4.5% less
  per decoding step);
- scheduling: continuous batching — a finished sequence's slot takes the next request at once (lm-eval's
  batches of 8 run until their longest member stops: 76% of the slots do useful work on this suite) — and
  each prompt's prefill (no padding) runs in the same pass as the other slots' decoding step, so the
  weights are read once for both (:meth:`GreedyDecoder._forward`);
- prompt-lookup drafts (``draft_tokens``): a decoding row also checks the (up to) 2 tokens that followed the
  latest earlier occurrence of its last 2 tokens in its prompt or output (a title repeats the abstract's
  phrases, an answer the passage's), as extra rows of the same pass attending causally through the cache;
  the model's greedy token after each agreeing draft token is kept, so a row gains 1 + (accepted) tokens a
  pass and the tokens are the greedy ones (:class:`PromptLookup`);
- prompt reuse: a prompt's leading tokens shared with the previously prefilled prompt (the chat template's
  system turn; the same abstract, table or headline asked about again — econ_qa has 2 questions per
  abstract, econ_tatqa 6 per report excerpt, econ_headlines 7 per headline) are copied from that prompt's
  cache instead of being recomputed, and prompts that share more than the common opening are admitted one
  after the other (:func:`admission_order`) so the reuse finds them. Only the order in which requests
  start changes; each one's tokens do not depend on the others'. A caller that already holds a prompt's
  keys and values (econ-hf's log-likelihood pass over the same context, see :class:`PromptHead`) hands
  them over instead.

Greedy choices are the argmax of the logits ``generate()`` takes, up to rounding: every row is computed
alone (the others in its pass change no value of it beyond the order of float sums), so in float32 the
tokens equal ``hf``'s unless a near-tie sits within ~1e-6; in bf16 rounding in other kernel shapes can
flip a near-tie. ``benchmarks/eval_throughput.py`` counts identical outputs.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm, rotate_half

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


#: :func:`causal_attention` pads the queries to use SDPA's causal kernel from this many keys on (below, the
#: CPU kernel's one block of keys is computed whole either way)
CAUSAL_KERNEL_MIN_KEYS = 512
#: at most this many prompt tokens are prefilled per step, in the same pass as the other slots' decoding
#: step: a whole prompt as a rule (in smaller chunks a prefill's matmuls run well below the arithmetic peak:
#: measured on a 2-core AVX2 EPYC in float32, 64-token chunks took 4.3 ms a token, whole prompts 2.4)
PREFILL_CHUNK = 1024

#: econ-hf's prompt-lookup draft tokens per decoding row and step (``draft_tokens=`` model argument). Measured
#: on a 2-core AVX2 EPYC in float32, the benchmark's 48 generation prompts replayed 6 times each way,
#: interleaved: 2 drafts a row took 251 -> 165 passes (589 of 935 draft tokens accepted) and 44.1 -> 38.8 s
#: (median paired ratio 0.89), identical tokens 48/48 every time; 3 drafts were no faster (at 8 rows a float32
#: pass there is already near the matmul peak: each extra row costs ~2 ms of a ~76 ms pass).
DRAFT_TOKENS = 2

#: prompt-lookup drafts continue the latest earlier occurrence of a sequence's last this many tokens
DRAFT_NGRAM = 2

#: float32 linears take the packed weight only for inputs of at most this many rows (decoding steps): there
#: MKL's sgemm streams the weight slowly (measured on an AVX2 EPYC, 8 rows: the 49,152-row LM head 18.9 ->
#: 6.2 ms, 576x1536 0.35 -> 0.16 ms), while for a prefill's hundreds of rows the two are level
FP32_PACKED_MAX_ROWS = 32

#: packed (and fused) weight copies are made only while they take at most this share of the memory available
#: when they are made; above it the model runs on its own weights (slower, but it fits). Packing copies every
#: linear weight once more (the embedded 135M model in float32: 513 MiB of weights, RSS 0.4 -> 1.4 GiB), the
#: decoder's fused q/k/v and gate/up weights add ~0.8x the layers' weights (+0.4 GiB): a 7B model in bf16
#: would need ~13 + ~10 GB beside its own 14, more than a 24 GiB machine has.
PACKED_COPIES_MAX_SHARE = 0.5


def available_memory() -> int | None:
    """Bytes of memory available to new allocations now (psutil's ``available``), or None where unknown."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    return int(psutil.virtual_memory().available)


def copies_fit(nbytes: int, what: str) -> bool:
    """Whether ``nbytes`` of weight copies for ``what`` fit in :data:`PACKED_COPIES_MAX_SHARE` of the memory
    available now; if not, warns (naming the sizes and the slower path taken) and returns False."""
    available = available_memory()
    if available is None or nbytes <= PACKED_COPIES_MAX_SHARE * available:
        return True
    warnings.warn(f"{what}: skipped, its {nbytes / 2**30:.1f} GiB of weight copies would take more than "
                  f"{PACKED_COPIES_MAX_SHARE:.0%} of the {available / 2**30:.1f} GiB of memory available; the model "
                  "runs on its own weights instead (same results, slower)", RuntimeWarning, stacklevel=3)
    return False


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

    Packing is skipped (with a warning) where the copies would not fit: :func:`copies_fit`.
    Yields how many modules were patched (0: nothing changes).
    """
    patched = []
    packs = {dtype: _packs(dtype) for dtype in (torch.bfloat16, torch.float32)}
    chosen = [m for m in model.modules() if type(m) is torch.nn.Linear and "forward" not in m.__dict__
              and packs.get(m.weight.dtype, False)]
    if not copies_fit(sum(m.weight.nbytes for m in chosen), "packing the linear weights for oneDNN"):
        chosen = []
    for module in chosen:
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


def _packs(dtype: torch.dtype) -> bool:
    """Whether linear weights of ``dtype`` are packed for oneDNN here (bf16: :func:`packing_supported`;
    float32: wherever torch has oneDNN)."""
    if dtype == torch.bfloat16:
        return packing_supported()
    return dtype == torch.float32 and torch.backends.mkldnn.is_available()


def _packed_forward(module, packed, bias):
    dtype = module.weight.dtype

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != dtype or not _packed_rows_ok(x):
            return torch.nn.functional.linear(x, module.weight, module.bias)  # the module's own path
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    return forward


def _packed_rows_ok(x: torch.Tensor) -> bool:
    """Whether ``x`` goes to a packed weight (float32: at most :data:`FP32_PACKED_MAX_ROWS` rows and no
    autocast; bf16: always)."""
    if x.dtype == torch.float32:
        return x.numel() <= FP32_PACKED_MAX_ROWS * x.shape[-1] and not torch.is_autocast_enabled(x.device.type)
    return True


def _norm(norm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``; a float32 ``LlamaRMSNorm`` as the one fused ``rms_norm`` kernel (bit-identical to the
    module's six operations, checked by ``tests/test_fast_generate.py``; bf16 rounds differently there)."""
    if x.dtype == torch.float32 and type(norm) is LlamaRMSNorm and norm.weight.dtype == torch.float32:
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)
    return norm(x)


def _fusable(module) -> bool:
    """A plain bias-free CPU ``nn.Linear`` in a dtype this CPU packs (see :func:`prepacked_linears`)."""
    return (type(module) is torch.nn.Linear and module.bias is None and not module.weight.is_cuda
            and _packs(module.weight.dtype))


def _packed_concat(modules) -> torch.Tensor | None:
    """One packed oneDNN weight for ``modules`` (their outputs side by side), or None where they are not all
    :func:`_fusable` and of one dtype."""
    if not all(_fusable(m) for m in modules) or len({m.weight.dtype for m in modules}) != 1:
        return None
    weight = torch.cat([m.weight.detach() for m in modules])
    return torch.ops.mkldnn._reorder_linear_weight(weight, 8)


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

    def __init__(self, model, width: int, max_positions: int, prefill_chunk: int | None = None,
                 draft_tokens: int = 0, draft_ngram: int = DRAFT_NGRAM):
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
        self.prefill_chunk = prefill_chunk or PREFILL_CHUNK
        self.draft_tokens, self.draft_ngram = draft_tokens, draft_ngram  # prompt lookup (see generate)
        self._fused: list[tuple[torch.Tensor | None, torch.Tensor | None]] | None = None  # see _fuse
        shape = (width, self.n_kv, max_positions, self.head_dim)
        # each (slot, kv head)'s first row in a layer's cache viewed as (rows, head_dim); a step writes at that
        # row + the position
        self._cache_rows = (torch.arange(width).view(width, 1) * self.n_kv + torch.arange(self.n_kv)) * shape[2]
        self.keys = [torch.zeros(shape) for _ in self.layers]
        self.values = [torch.zeros(shape) for _ in self.layers]
        self._last: tuple[int, Sequence[int]] | None = None  # (slot, prompt) of the last prefill
        self.reused_tokens = 0       # prompt tokens copied from a previous prompt's cache
        self.prefilled_tokens = 0    # prompt tokens run through the model
        self.drafted_tokens = 0      # prompt-lookup draft tokens checked in decoding steps
        self.accepted_tokens = 0     # of which the model's greedy choice agreed
        self.decode_passes = 0       # passes with decoding rows

    # -- model pieces -------------------------------------------------------------------------
    def _fuse(self) -> None:
        """Pack each layer's q/k/v projections, and its MLP's gate/up projections, as ONE oneDNN weight each
        (built once per decoder): a decoding step then makes 4 weight passes a layer instead of 7 (measured on
        a 2-core AVX2 EPYC, float32, 8 rows: the 211 linears of a step 47-55 -> 38-42 ms). Only plain
        ``nn.Linear`` projections without bias, in a dtype packed here (:func:`prepacked_linears`), are fused;
        a PEFT adapter's LoRA layers keep their own forward. Skipped where the copies would not fit in memory
        (:func:`copies_fit`)."""
        self._fused = []
        fusable = [m for layer in self.layers for m in (layer.self_attn.q_proj, layer.self_attn.k_proj,
                                                         layer.self_attn.v_proj, getattr(layer.mlp, "gate_proj", None),
                                                         getattr(layer.mlp, "up_proj", None))
                   if _fusable(m)]
        if not copies_fit(sum(m.weight.nbytes for m in fusable), "fusing the q/k/v and gate/up projections"):
            return
        for layer in self.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv = _packed_concat([attn.q_proj, attn.k_proj, attn.v_proj])
            llama_mlp = all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn"))
            gate_up = _packed_concat([mlp.gate_proj, mlp.up_proj]) if llama_mlp else None
            self._fused.append((qkv, gate_up))

    def _projections(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``i``'s (queries and keys side by side, values) for ``x``: one fused matmul where :meth:`_fuse`
        packed them and the rows are few enough for the packed kernel (see :data:`FP32_PACKED_MAX_ROWS`)."""
        attn = self.layers[i].self_attn
        fused = self._fused[i][0] if self._fused and _packed_rows_ok(x) else None
        if fused is None:
            return torch.cat([attn.q_proj(x), attn.k_proj(x)], dim=-1), attn.v_proj(x)
        out = torch.ops.mkldnn._linear_pointwise(x, fused, None, "none", [], "")
        nqk = (self.n_heads + self.n_kv) * self.head_dim
        return out[..., :nqk], out[..., nqk:]

    def _mlp(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s MLP on ``x`` (``down(act(gate(x)) * up(x))``, gate and up as one matmul where fused)."""
        mlp = self.layers[i].mlp
        fused = self._fused[i][1] if self._fused and _packed_rows_ok(x) else None
        if fused is None:
            return mlp(x)
        gate, up = torch.ops.mkldnn._linear_pointwise(x, fused, None, "none", [], "").chunk(2, dim=-1)
        return mlp.down_proj(mlp.act_fn(gate) * up)

    def _begin(self, tokens: Sequence[int], slot: int, head: PromptHead | None = None) -> int:
        """Start ``slot`` on the prompt ``tokens``: copy the leading tokens it shares with the previously
        begun prompt (complete by now: one prompt fills at a time), or with ``head`` where that covers more
        of it, into the slot's cache; return how many (the prompt's prefill starts there).

        The previous prompt's positions below its length are never overwritten while it lives: steps write
        each slot at its own next position, idle slots not at all. At least the last token is left to
        compute, since its logits pick the first generated token.
        """
        n = len(tokens)
        reused = from_head = 0
        if self._last is not None:
            reused = min(common_prefix(self._last[1], tokens), n - 1)
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
        self._last = (slot, tokens)
        self.reused_tokens += reused
        self.prefilled_tokens += n - reused
        return reused

    def _prefill(self, tokens: Sequence[int], slot: int, head: PromptHead | None = None) -> int:
        """Fill ``slot``'s cache with ``tokens`` in one pass (after :meth:`_begin`'s reuse) and return the
        next (greedy) token."""
        start = self._begin(tokens, slot, head)
        return self._forward(chunk=(slot, tokens[start:], start))[1]

    def _step(self, tokens: torch.Tensor, positions: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """One decoding step of every slot (a token and its position each); returns the greedy tokens."""
        return self._forward(decode=(tokens, positions, active))[0]

    def _forward(self, decode: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
                 chunk: tuple[int, Sequence[int], int] | None = None, chunk_logits: bool = True):
        """One pass of the model over a decoding step and/or a chunk of one prompt's prefill, as ONE batch
        of rows: every projection, norm and MLP runs once over all rows, so a decoding step that carries a
        prefill chunk streams the weights once for both; only attention runs per part.

        ``decode = (tokens, positions, active)``: every slot's token and position (shape ``(width,)``), or its
        ``q`` queries — its last token and a draft's, at consecutive positions, attending causally to each other
        through the cache (shape ``(width, q)``, a grid in the order slot, query). Only the ``active`` cells (flat
        indices into the grid; default: all) run through the model and write their keys and values, so an idle
        slot — or the one being prefilled — keeps its cache; attention alone runs over the whole grid, on
        whole-buffer views of the cache (no gathering), an idle cell's result dropped.
        ``chunk = (slot, tokens, start)``: the prompt tokens at positions ``start, start + 1, ...`` of
        ``slot``, attending causally to its cache below ``start`` and to each other. Returns (the decoding
        slots' greedy tokens or None, the greedy token after the chunk's last token or None; that one only
        when ``chunk_logits``); the first shaped like ``tokens``.
        """
        heads, kv, d = self.n_heads, self.n_kv, self.head_dim
        group = heads // kv
        w, nq, b = self.width, 0, 0
        parts, pos = [], []
        if decode is not None:
            tokens, positions, active = decode
            nq = tokens.shape[1] if tokens.dim() == 2 else 1  # queries per slot: its token and its draft's
            grid = positions.reshape(w * nq)  # every (slot, query)'s position; only the active rows run
            rows_tokens, rows_pos = tokens.reshape(w * nq), grid
            if active is not None:
                rows_tokens, rows_pos = rows_tokens[active], grid[active]
            b = len(rows_tokens)
            parts.append(rows_tokens)
            pos.append(rows_pos)
        c = len(chunk[1]) if chunk is not None else 0
        n = b + c
        if chunk is not None:
            slot, chunk_tokens, start = chunk
            parts.append(torch.tensor(list(chunk_tokens), dtype=torch.long))
            pos.append(torch.arange(start, start + c))
        ids, all_pos = (parts[0], pos[0]) if len(parts) == 1 else (torch.cat(parts), torch.cat(pos))
        h = self.body.embed_tokens(ids.view(1, n))
        cos, sin = self.body.rotary_emb(h, all_pos.view(1, n))
        cos, sin = cos.view(n, 1, d), sin.view(n, 1, d)  # every row's rotation, for its query and key heads
        if decode is not None:
            span = int(rows_pos.max()) + 1
            # each query sees the key positions up to its own: an additive mask, built once a step; attention
            # runs over the whole (slot, query) grid, a slot's queries (query, query head) the rows of its kv
            # heads' attention (an idle grid cell attends to position 0, its result dropped)
            hidden = torch.arange(span).view(1, 1, 1, 1, span) > positions.view(w, 1, nq, 1, 1)
            visible = torch.zeros(hidden.shape).masked_fill_(hidden, float("-inf"))
            visible = visible.expand(w, 1, nq, group, span).reshape(w, 1, nq * group, span)
            # where each row's keys and values go in the flattened cache: its slot's first row + its position
            slot_of_row = torch.arange(w).repeat_interleave(nq) if active is None else active // nq
            write = (self._cache_rows[slot_of_row] + rows_pos.view(b, 1)).view(-1)
        if chunk is not None:
            end = start + c

        for i, layer in enumerate(self.layers):
            residual = h
            qk, v_all = self._projections(i, _norm(layer.input_layernorm, h))  # (1, n, features)
            qk = qk.view(n, heads + kv, d)
            qk = qk * cos + rotate_half(qk) * sin  # the rotary embedding, as apply_rotary_pos_emb computes it
            v_all = v_all.view(n, kv, d)
            kc, vc = self.keys[i], self.values[i]
            outs = []
            if decode is not None:
                kc.view(-1, d).index_copy_(0, write, qk[:b, heads:].reshape(b * kv, d).float())
                vc.view(-1, d).index_copy_(0, write, v_all[:b].reshape(b * kv, d).float())
                # a kv head's query heads (for each of the slot's queries) as its rows
                qf = qk[:b, :heads].float()
                if active is not None:  # the rows into their grid cells
                    qf = qf.new_zeros(w * nq, heads, d).index_copy_(0, active, qf)
                qf = qf.reshape(w, nq, kv, group, d)
                qf = qf.reshape(w, kv, group, d) if nq == 1 else qf.transpose(1, 2).reshape(w, kv, nq * group, d)
                out = torch.nn.functional.scaled_dot_product_attention(
                    qf, kc[:, :, :span], vc[:, :, :span], attn_mask=visible, scale=self.scaling)
                if nq > 1:  # (w, kv, nq * group, d) -> the grid's order (slot, query)
                    out = out.view(w, kv, nq, group, d).transpose(1, 2)
                out = out.reshape(w * nq, heads * d)
                outs.append((out if active is None else out[active]).to(h.dtype))
            if chunk is not None:
                kc[slot, :, start:end] = qk[b:, heads:].transpose(0, 1).float()
                vc[slot, :, start:end] = v_all[b:].transpose(0, 1).float()
                q = qk[b:, :heads].transpose(0, 1).unsqueeze(0)  # (1, heads, c, d)
                # the model's own dtype for the attention, as its prefill runs it (float32 -> bf16 is exact here)
                keys, vals = kc[slot:slot + 1, :, :end].to(q.dtype), vc[slot:slot + 1, :, :end].to(q.dtype)
                out = causal_attention(q, keys, vals, self.scaling)  # (1, heads, c, d)
                outs.append(out[0].transpose(0, 1).reshape(c, heads * d))
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            h = residual + layer.self_attn.o_proj(out.view(1, n, -1))
            h = h + self._mlp(i, _norm(layer.post_attention_layernorm, h))
        wanted = list(range(b)) + ([b + c - 1] if chunk is not None and chunk_logits else [])
        if not wanted:
            return None, None
        last = h[0, wanted] if len(wanted) < b + c else h[0]
        greedy = self.lm.lm_head(_norm(self.body.norm, last)).float().argmax(-1)
        if decode is not None and active is not None:  # back into the grid (idle cells: 0)
            greedy = torch.cat([greedy.new_zeros(w * nq).index_copy_(0, active, greedy[:b]), greedy[b:]])
        return (greedy[:w * nq].view(tokens.shape) if decode is not None else None,
                int(greedy[-1]) if chunk is not None and chunk_logits else None)

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
        :class:`PromptHead`). A started prompt is prefilled ``self.prefill_chunk`` tokens a step, in the
        same pass as the other slots' decoding step; one prompt fills at a time.
        """
        prompt_heads = prompt_heads or {}
        if self._fused is None:
            self._fuse()
        results: list[list[int] | None] = [None] * len(prompts)
        pending = iter(admission_order(prompts))
        slots: dict[int, _Slot] = {}  # slot -> its request, decoding or (the one in `filling`) prefilling
        free = list(range(self.width - 1, -1, -1))
        filling: tuple[int, int] | None = None  # (slot, next prompt position to prefill)
        exhausted = False

        def over(st: _Slot) -> bool:
            return finished(st.request, st.generated) or len(st.generated) >= max_new_tokens[st.request]

        lookup: dict[int, PromptLookup] = {}  # slot -> its drafts' source (with draft_tokens)

        def complete(s: int) -> None:
            lookup.pop(s, None)
            st = slots.pop(s)
            results[st.request] = st.generated
            free.append(s)
            if on_done is not None:
                on_done(st.request, st.generated)

        while True:
            while filling is None and free and not exhausted:
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
                filling = (s, self._begin(prompts[r], s, prompt_heads.get(r)))
            if not slots:
                break
            decoding = sorted(s for s in slots if filling is None or s != filling[0])
            decode = chunk = None
            drafts: dict[int, list[int]] = {}
            if decoding:
                if self.draft_tokens:  # never past the request's last token
                    drafts = {s: lookup[s].draft(min(self.draft_tokens, max_new_tokens[slots[s].request]
                                                     - len(slots[s].generated) - 1)) for s in decoding}
                nq = 1 + max(map(len, drafts.values()), default=0)
                tokens = torch.zeros(self.width, nq, dtype=torch.long)
                positions = torch.zeros(self.width, nq, dtype=torch.long)
                rows = []
                for s in decoding:
                    row = [slots[s].generated[-1]] + drafts.get(s, [])
                    tokens[s, :len(row)] = torch.tensor(row)
                    positions[s, :len(row)] = torch.arange(slots[s].length, slots[s].length + len(row))
                    rows += range(s * nq, s * nq + len(row))
                active = None if len(rows) == self.width * nq else torch.tensor(rows, dtype=torch.long)
                decode = (tokens, positions, active)
                self.decode_passes += 1
            if filling is not None:
                s, start = filling
                prompt = prompts[slots[s].request]
                end = min(start + self.prefill_chunk, len(prompt))
                chunk = (s, prompt[start:end], start)
            nxt, first = self._forward(decode, chunk, chunk_logits=chunk is not None and end == len(prompt))
            nxt = nxt.tolist() if nxt is not None else []
            for s in decoding:
                st, draft, greedy = slots[s], drafts.get(s, []), nxt[s]
                accepted = 0  # the model's choice after each accepted draft token is the next draft token
                while accepted < len(draft) and draft[accepted] == greedy[accepted]:
                    accepted += 1
                self.drafted_tokens += len(draft)
                self.accepted_tokens += accepted
                for token in greedy[:accepted + 1]:  # as many tokens as one step each would give
                    st.length += 1
                    st.generated.append(token)
                    if s in lookup:
                        lookup[s].extend([token])
                    if over(st):
                        complete(s)
                        break
            if chunk is not None:
                s = chunk[0]
                filling = None if end == len(prompt) else (s, end)
                if first is not None:
                    slots[s].generated.append(first)
                    if self.draft_tokens:
                        lookup[s] = PromptLookup(prompt, self.draft_ngram)
                        lookup[s].extend([first])
                    if over(slots[s]):
                        complete(s)
        return results  # type: ignore[return-value]


class PromptLookup:
    """Draft tokens for prompt-lookup decoding of one sequence: what followed the latest earlier occurrence
    of its last ``n`` tokens (a title repeats the abstract's phrases, an answer the passage's)."""

    def __init__(self, tokens: Sequence[int], n: int = DRAFT_NGRAM):
        self.n, self.seq = n, list(tokens)
        self.ends: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest occurrence (not the last) ends
        for end in range(n, len(self.seq)):
            self.ends[tuple(self.seq[end - n:end])] = end

    def extend(self, tokens: Sequence[int]) -> None:
        """Append ``tokens`` to the sequence."""
        for token in tokens:
            end = len(self.seq)
            if end >= self.n:
                self.ends[tuple(self.seq[end - self.n:end])] = end
            self.seq.append(token)

    def draft(self, k: int) -> list[int]:
        """Up to ``k`` tokens that followed the sequence's last ``n`` tokens where they occurred before."""
        if k <= 0 or len(self.seq) < self.n:
            return []
        end = self.ends.get(tuple(self.seq[-self.n:]))
        return [] if end is None else self.seq[end:end + k]


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


def causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     scale: float | None = None) -> torch.Tensor:
    """Causal attention of ``query`` (batch, heads, L, d) over ``key`` and ``value`` (batch, kv heads, P + L, d)
    whose last L positions are the queries' own: query i sees the P earlier (cached) positions and queries
    0..i — a causal mask aligned to the lower right, as a prefill on a cache computes it.

    SDPA's ``is_causal`` aligns its mask to the upper left, so with a cache (P > 0) callers pass an explicit
    mask, and the CPU flash kernel then computes every block, those above the diagonal included. Here the P
    cached positions get zero queries of their own (results dropped), which makes the mask a square causal
    one: the kernel skips the blocks above the diagonal, at the cost of P extra query rows.
    The kernel skips whole blocks of keys only: measured on the 2-core AVX2 EPYC (float32, 1 thread, batch 8,
    9 query heads on 3 kv heads, 26 cached positions), 600 queries took 176 ms with the mask and 110 ms here,
    900 queries 375 -> 199 ms, but 100-400 queries gained nothing or lost up to 26% (one block of keys): so
    only where P < L and P + L >= :data:`CAUSAL_KERNEL_MIN_KEYS`; otherwise (also a short question after a
    long shared table) the explicit mask. Several query heads per kv head go in as such (``enable_gqa``)."""
    batch, heads, length, dim = query.shape
    earlier = key.shape[2] - length
    gqa = heads != key.shape[1]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    if earlier == 0:
        return sdpa(query, key, value, is_causal=length > 1, scale=scale, enable_gqa=gqa)
    if earlier < length and earlier + length >= CAUSAL_KERNEL_MIN_KEYS:
        padded = torch.cat([query.new_zeros(batch, heads, earlier, dim), query], dim=2)
        return sdpa(padded, key, value, is_causal=True, scale=scale, enable_gqa=gqa)[:, :, earlier:]
    hidden = torch.arange(earlier + length, device=query.device) > torch.arange(earlier, earlier + length,
                                                                                device=query.device)[:, None]
    mask = torch.zeros(hidden.shape, dtype=query.dtype, device=query.device).masked_fill_(hidden, float("-inf"))
    return sdpa(query, key, value, attn_mask=mask, scale=scale, enable_gqa=gqa)


def cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's (keys, values), each (batch, kv_heads, positions, head_dim), of a transformers ``Cache``
    (v5 layers API or legacy tuples)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return [cache[i] for i in range(len(cache))]
