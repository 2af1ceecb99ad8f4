"""``econ-hf``: lm-eval's ``hf`` backend with a faster log-likelihood path; same model, prompts and requests.

lm-eval's ``hf`` backend scores a multiple-choice answer by running the whole (context + continuation)
through the model and the LM head at *every* position, followed by a log-softmax over all 49,152
vocabulary entries at every position. Measured on the 2-core CPU with SmolLM2-135M, the LM head and
that log-softmax cost as much as the transformer body, and ``econ_classify`` pays the body three times
per abstract (one per category name). ``econ-hf`` instead

- runs the body once per distinct context, extended by the leading tokens all its continuations share
  (with a chat template every answer starts with the same newline token), which are scored once;
- scores continuations that then differ only in their last token from right-padded batches of such
  contexts, and longer ones from the context's KV cache (one batched forward of their tokens);
- applies the LM head and log-softmax only at the positions where a continuation token is scored.

Requests, prompts, truncation and generation are lm-eval's own (``generate_until`` is inherited
unchanged, so generated texts are identical). Log-likelihoods differ from ``hf`` only by bf16 rounding in
kernels of other shapes; ``benchmarks/eval_throughput.py`` measures the agreement of the chosen answers
(100% on its documents) and the largest log-likelihood difference.

Run it through ``python -m econ_eval.lm_eval_cli --model econ-hf ...`` (lm-eval's own command line with
this backend registered), which is what ``econ-eval evaluate`` runs by default.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm


@register_model("econ-hf")
class PrefixSharedHFLM(HFLM):
    """lm-eval's ``HFLM`` with prefix-shared log-likelihoods (see the module docstring).

    Every ``hf`` model argument works unchanged (``pretrained=``, ``peft=``, ``dtype=`` ...);
    ``shared_prefix=False`` turns the fast path off (lm-eval's own code then runs).
    """

    def __init__(self, *args, shared_prefix: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_prefix = str(shared_prefix).lower() not in ("false", "0", "no")

    # ------------------------------------------------------------------ helpers
    def _base_causal_lm(self):
        """The Transformers causal LM under an optional PEFT wrapper (LoRA layers are injected into it)."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def _body_and_head(self):
        """(decoder body, LM head), or None when the model does not expose them."""
        peft_config = getattr(self.model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            return None  # virtual prompt tokens: only the PEFT wrapper's forward knows how to add them
        base = self._base_causal_lm()
        try:
            body, head = base.get_decoder(), base.get_output_embeddings()
        except (AttributeError, NotImplementedError):
            return None
        if body is None or head is None or body is base:
            return None
        return body, head

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                              enabled=self.mixed_precision_dtype is not None)

    def _right_padded(self, rows, width: int) -> torch.Tensor:
        """Token rows padded on the right to ``width`` (causal attention never lets a token see its right)."""
        pad = self.tokenizer.pad_token_id or 0
        return torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=self.device)

    def _log_probs(self, head, hidden: torch.Tensor) -> torch.Tensor:
        """Log-softmax of the LM head at the given hidden states ([n, hidden] -> [n, vocab])."""
        logits = head(hidden)[..., : self.vocab_size]
        return F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)

    # ------------------------------------------------------------------ log-likelihood
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        parts = self._body_and_head() if (self.shared_prefix and self.backend == "causal") else None
        too_long = any(len(ctx) + len(cont) > self.max_length + 1 for _, ctx, cont in requests)
        if parts is None or too_long:  # lm-eval's own path (and its left-truncation rule)
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        body, head = parts

        by_context: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (_, ctx, cont) in enumerate(requests):
            assert len(ctx) > 0 and len(cont) > 0
            by_context[tuple(ctx)].append(i)
        groups = [_Group.plan(ctx, idx, [tuple(requests[i][2]) for i in idx]) for ctx, idx in by_context.items()]
        # Longest inputs first, like lm-eval (time estimates err high; memory peaks come first).
        groups.sort(key=lambda g: (-len(g.extended), g.extended))
        one_token = [g for g in groups if g.one_token_rests]
        several = [g for g in groups if not g.one_token_rests]

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        batch_size = int(override_bs or (self.batch_size if str(self.batch_size).isdigit() else 1) or 1)
        pbar = tqdm(total=len(requests), disable=(disable_tqdm or self.rank != 0),
                    desc="Running loglikelihood requests (econ-hf, shared prefixes)")
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(one_token), batch_size):
                batch = one_token[start:start + batch_size]
                self._score_one_token_batch(body, head, batch, results)
                pbar.update(sum(len(g.indices) for g in batch))
            for group in several:
                self._score_shared_context(body, head, group, results)
                pbar.update(len(group.indices))
        pbar.close()
        for (request_str, _, _), answer in zip(requests, results, strict=True):
            if request_str is not None:
                self.cache_hook.add_partial("loglikelihood", request_str, answer)
        return results

    def _prefix_and_next(self, head, hidden: torch.Tensor, group: _Group):
        """Score the group's common prefix from ``hidden`` (its positions, then the last extended position).

        ``hidden`` holds the states at positions len(context)-1 ... len(extended)-1; returns (prefix log-prob,
        prefix greedy?, log-probs of the token after the extended context)."""
        logprobs = self._log_probs(head, hidden)  # [len(prefix) + 1, vocab]
        prefix = torch.tensor(group.prefix, dtype=torch.long, device=logprobs.device)
        if len(group.prefix):
            rows = logprobs[:-1]
            lp = float(rows.gather(1, prefix[:, None]).sum())
            greedy = bool((rows.argmax(-1) == prefix).all())
        else:
            lp, greedy = 0.0, True
        return lp, greedy, logprobs[-1]

    def _score_one_token_batch(self, body, head, batch: list[_Group], results) -> None:
        """Groups whose continuations differ only in their last token: one right-padded forward for the batch."""
        ids = self._right_padded([g.extended for g in batch], max(len(g.extended) for g in batch))
        hidden = body(input_ids=ids, use_cache=False).last_hidden_state
        for row, group in enumerate(batch):
            lp, greedy, nxt = self._prefix_and_next(head, hidden[row, group.first_scored:len(group.extended)], group)
            best = int(nxt.argmax())
            for i, rest in zip(group.indices, group.rests, strict=True):
                results[i] = (lp + float(nxt[rest[0]]), greedy and best == rest[0])

    def _score_shared_context(self, body, head, group: _Group, results) -> None:
        """One context, longer continuations: run it once, then all continuations from its KV cache."""
        out = body(input_ids=torch.tensor([list(group.extended)], device=self.device), use_cache=True)
        lp, greedy, nxt = self._prefix_and_next(head, out.last_hidden_state[0, group.first_scored:], group)
        longest = max(len(r) for r in group.rests) - 1
        later = None
        if longest > 0:
            cache = out.past_key_values
            if len(group.rests) > 1:
                cache.batch_repeat_interleave(len(group.rests))
            ids = self._right_padded([r[:-1] for r in group.rests], longest)
            mask = torch.ones(len(group.rests), len(group.extended) + longest, dtype=torch.long, device=self.device)
            # row r, position j predicts token j + 1 of rest r (right padding comes after everything scored)
            later = body(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True).last_hidden_state
        best = int(nxt.argmax())
        for row, (i, rest) in enumerate(zip(group.indices, group.rests, strict=True)):
            total, ok = lp + float(nxt[rest[0]]), greedy and best == rest[0]
            if len(rest) > 1:
                logprobs = self._log_probs(head, later[row, : len(rest) - 1])
                targets = torch.tensor(rest[1:], dtype=torch.long, device=self.device)
                total += float(logprobs.gather(1, targets[:, None]).sum())
                ok = ok and bool((logprobs.argmax(-1) == targets).all())
            results[i] = (total, ok)


class _Group:
    """Requests sharing one context, with the continuations' common leading tokens moved into it.

    lm-eval moves a context's trailing whitespace into the continuation, so with a chat template every
    answer starts with the same newline token: "\\nNo" / "\\nYes". Scoring that shared prefix once, as
    part of an *extended* context, leaves one-token rests, which batch like lm-eval's one-token cache.
    """

    def __init__(self, context, indices, prefix, rests):
        self.context, self.indices, self.prefix, self.rests = context, indices, prefix, rests
        self.extended = tuple(context) + tuple(prefix)
        self.first_scored = len(context) - 1  # the position whose output predicts the first prefix/rest token
        self.one_token_rests = all(len(r) == 1 for r in rests)

    @classmethod
    def plan(cls, context, indices, continuations):
        n = min(len(c) for c in continuations) - 1  # every continuation keeps at least one token of its own
        common = 0
        while common < n and len({c[common] for c in continuations}) == 1:
            common += 1
        prefix = continuations[0][:common]
        return cls(context, indices, prefix, [c[common:] for c in continuations])
