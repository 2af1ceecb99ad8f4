"""``econ-hf``: lm-eval's ``hf`` backend with a faster log-likelihood path; same model, prompts and requests.

lm-eval's ``hf`` backend scores a multiple-choice answer by running the whole (context + continuation)
through the model and the LM head at *every* position, followed by a log-softmax over all 49,152
vocabulary entries at every position. Measured on the 2-core CPU with SmolLM2-135M, the LM head and
that log-softmax cost as much as the transformer body, and ``econ_classify`` pays the body three times
per abstract (one per category name). ``econ-hf`` instead

- runs the body once per distinct context, extended by the leading tokens all its continuations share
  (with a chat template every answer starts with the same newline token), which are scored once;
- runs the contexts in right-padded batches (the head they share, such as the chat template's system turn,
  once a batch; the tails after it through SDPA's causal kernel where it pays, see
  :func:`econ_eval.fast_generate.causal_attention`) and scores continuations that then differ only in their
  last token from those states;
- runs the longer continuations of a whole batch in one forward on the batch's KV cache (before: two
  forwards per context; measured on the 2-core AVX2 EPYC, float32, 1 thread, batch 8: econlite_classify
  146 -> 129 s, econlite_fomc with its generation twin 72 -> 61 s, 300 econ_fpb documents 132 -> 80 s);
- applies the LM head and log-softmax only at the positions where a continuation token is scored, once a
  batch.

Requests, prompts and truncation are lm-eval's own. Log-likelihoods differ from ``hf`` only by rounding in
kernels of other shapes (float32: up to ~5e-5 on the suite's documents; bf16 more);
``benchmarks/eval_throughput.py`` measures the agreement of the chosen answers (100% on its documents) and
the largest log-likelihood difference.

Greedy ``generate_until`` runs on ``econ_eval.fast_generate.GreedyDecoder`` (preallocated KV cache,
continuous batching of ``batch_size`` sequences, each new prompt prefilled in the same pass as the others'
decoding step, prompt-lookup draft tokens checked in the same pass, the model's own weights packed once for
oneDNN) with lm-eval's request order, stop sequences,
``max_gen_toks``, post-processing and cache entries.
In float32 its texts equal ``hf``'s (``tests/test_fast_generate.py``); in bf16 a near-tie can flip a token,
as it does between ``hf`` at batch 1 and batch 8 — the benchmark counts both. Sampling, ``auto`` batch
sizes, non-Llama models and GPUs use lm-eval's own ``generate_until``; ``fast_generate=false`` forces it.

A ``_gen`` task asks for a greedy answer to the very prompt its multiple-choice twin scores (econ_classify and
econ_classify_gen, econ_headlines and econ_headlines_gen ...), and lm-eval runs every log-likelihood request
before any generation. When econ-hf knows the run's tasks (:meth:`PrefixSharedHFLM.expect_tasks`; the
command line below tells it), the log-likelihood pass hands each such context's keys and values to the
greedy decoder at once, and the generation pass later answers those requests from what was generated then
— the same decoder, stop sequences and post-processing, without computing the prompt a second time.

Run it through ``python -m econ_eval.lm_eval_cli --model econ-hf ...`` (lm-eval's own command line with
this backend registered), which is what ``econ-eval evaluate`` runs by default.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import Collator, handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm
from transformers import AttentionInterface

from econ_eval import fast_generate

#: transformers attention implementation of econ-hf's forwards whose rows have no padding before their last
#: token: :func:`econ_eval.fast_generate.causal_attention` (no mask is built for it)
CAUSAL_ATTENTION = "econ_causal"


def _causal_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function for :data:`CAUSAL_ATTENTION` (same signature as its ``sdpa`` one)."""
    if attention_mask is not None:
        raise ValueError(f"the {CAUSAL_ATTENTION!r} attention takes no mask")
    return fast_generate.causal_attention(query, key, value, scaling).transpose(1, 2).contiguous(), None


AttentionInterface.register(CAUSAL_ATTENTION, _causal_attention)


@contextlib.contextmanager
def unmasked_causal_attention(model):
    """Within this block, ``model``'s ``sdpa`` attention runs as :data:`CAUSAL_ATTENTION`: for forwards on a
    KV cache whose rows (cached positions and inputs) have no padding before their last real token (right
    padding is harmless: no real token sees it). Any other attention implementation is left as it is."""
    config = model.config
    before = config._attn_implementation
    if before == "sdpa":
        config._attn_implementation = CAUSAL_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = before


@register_model("econ-hf")
class PrefixSharedHFLM(HFLM):
    """lm-eval's ``HFLM`` with prefix-shared log-likelihoods (see the module docstring).

    Every ``hf`` model argument works unchanged (``pretrained=``, ``peft=``, ``dtype=`` ...);
    ``shared_prefix=False`` turns the fast log-likelihood path off and ``fast_generate=False`` the greedy
    decoder of ``econ_eval.fast_generate`` (lm-eval's own code then runs for that request type);
    ``draft_tokens=N`` sets how many prompt-lookup draft tokens a decoding row checks per step (0: none).
    """

    def __init__(self, *args, shared_prefix: bool = True, fast_generate: bool = True,
                 draft_tokens: int = fast_generate.DRAFT_TOKENS, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_prefix = _flag(shared_prefix)
        self.fast_generate = _flag(fast_generate)
        self.draft_tokens = int(draft_tokens)
        if self.draft_tokens < 0:
            raise ValueError(f"econ-hf model argument draft_tokens={draft_tokens}: expected 0 (no drafts) or more")
        self._run_tasks: list = []          # the run's lm-eval tasks (expect_tasks), to look ahead at generation
        self._early_answers: dict[tuple[str, str], str] = {}  # greedy answers generated alongside log-likelihoods
        self.answered_early = 0             # generation requests answered from _early_answers (for benchmarks)

    def expect_tasks(self, tasks) -> None:
        """Tell econ-hf the lm-eval task objects of the coming run (``lm_eval.evaluator.evaluate``'s
        ``task_dict["tasks"].values()``): the log-likelihood pass then also answers the greedy generation
        requests whose prompt it computes anyway (see the module docstring). Without it nothing changes."""
        self._run_tasks = list(tasks)
        self._early_answers.clear()

    def _pending_generation(self) -> list:
        """The run's generate_until requests lm-eval has built but not yet answered."""
        return [inst for task in self._run_tasks for inst in (getattr(task, "instances", None) or [])
                if inst.request_type == "generate_until" and not inst.resps]

    # ------------------------------------------------------------------ helpers
    def _base_causal_lm(self):
        """The Transformers causal LM under an optional PEFT wrapper (LoRA layers are injected into it)."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def _prompt_learning(self) -> bool:
        """True for a PEFT prompt-learning adapter (virtual tokens only the wrapper's forward adds)."""
        peft_config = getattr(self.model, "active_peft_config", None)
        return peft_config is not None and bool(getattr(peft_config, "is_prompt_learning", False))

    def _body_and_head(self):
        """(decoder body, LM head), or None when the model does not expose them."""
        if self._prompt_learning():
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
        # contexts that share a long head (the same headline asked about again) next to each other, so a
        # batch computes that head once (see _score_batch); groups with longer rests in batches of their own
        parts = ([g for g in groups if g.one_token_rests], [g for g in groups if not g.one_token_rests])
        parts = [[part[i] for i in fast_generate.admission_order([g.extended for g in part])] for part in parts]

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        batch_size = int(override_bs or (self.batch_size if str(self.batch_size).isdigit() else 1) or 1)
        alongside = self._generation_alongside(requests, groups)
        desc = "Running loglikelihood requests (econ-hf, shared prefixes)"
        if alongside is not None:
            desc += f" + {alongside.planned} generations on the same prompts"
        pbar = tqdm(total=len(requests), disable=(disable_tqdm or self.rank != 0), desc=desc)
        with torch.inference_mode(), self._autocast(), fast_generate.prepacked_linears(self.model, batch_size):
            for part in parts:
                for start in range(0, len(part), batch_size):
                    batch = part[start:start + batch_size]
                    self._score_batch(body, head, batch, results, alongside)
                    pbar.update(sum(len(g.indices) for g in batch))
            if alongside is not None:
                alongside.flush()
                self._early_answers.update(alongside.answers)
        pbar.close()
        for (request_str, _, _), answer in zip(requests, results, strict=True):
            if request_str is not None:
                self.cache_hook.add_partial("loglikelihood", request_str, answer)
        return results

    # ------------------------------------------------------------------ generation
    def _fast_generate_applies(self, requests) -> bool:
        """Whether every request can run on ``fast_generate.GreedyDecoder`` (else lm-eval's own path)."""
        if not (self.fast_generate and self.backend == "causal" and self.device.type == "cpu"
                and str(self.batch_size).isdigit() and self.think_end_token is None
                and self.mixed_precision_dtype is None and fast_generate.supports(self.model)
                and not self._prompt_learning()):
            return False
        for request in requests:
            kwargs = normalize_gen_kwargs(request.args[1], self.max_gen_toks)
            if kwargs.get("do_sample") or set(kwargs) - {"until", "max_gen_toks", "do_sample", "temperature"}:
                return False
        return True

    def _encode_context(self, context: str, max_ctx_len: int) -> list[int]:
        """The context's tokens as lm-eval's ``tok_batch_encode`` makes them (one row: no padding)."""
        ids, _ = self.tok_batch_encode([context], left_truncate_len=max_ctx_len, truncation=self.truncation)
        return ids[0].tolist()

    def _greedy_requests(self, items) -> list[_GreedyRequest]:
        """``(context, gen_kwargs)`` pairs as the decoder runs them: lm-eval's tokenisation and left truncation
        to ``max_length - max_gen_toks``, its stop sequences plus the EOS string, ``max_gen_toks``."""
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        out, by_kwargs = [], {}
        for context, gen_kwargs in items:
            key = _kwargs_key(gen_kwargs)
            if key not in by_kwargs:
                kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
                until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
                max_gen_toks = kwargs.pop("max_gen_toks")
                if self.max_length - max_gen_toks <= 0:
                    raise ValueError(f"max_gen_toks {max_gen_toks} leaves no room for a context in the model's "
                                     f"maximum length {self.max_length}")
                lookback = max((len(self.tokenizer.encode(s, add_special_tokens=False)) for s in until), default=0) + 2
                by_kwargs[key] = (until, max_gen_toks, lookback)
            until, max_gen_toks, lookback = by_kwargs[key]
            prompt = self._encode_context(context, self.max_length - max_gen_toks)
            out.append(_GreedyRequest(context, gen_kwargs, key, prompt, max_gen_toks, until, lookback))
        return out

    def _decode_greedy(self, requests: list[_GreedyRequest], decoder, on_done=None, prompt_heads=None) -> list[str]:
        """Run ``requests`` on ``decoder`` (a ``fast_generate.GreedyDecoder``); their texts as lm-eval
        post-processes them (cut at the first stop sequence)."""
        eos_ids = self.model.generation_config.eos_token_id if self.model.generation_config else None
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [] if eos_ids is None else [eos_ids])

        def finished(request: int, generated: list[int]) -> bool:
            if generated[-1] in eos_ids:
                return True
            r = requests[request]
            tail = self.tokenizer.decode(generated[-r.lookback:])
            return any(s in tail for s in r.until)

        generated = decoder.generate([r.prompt for r in requests], [r.max_gen_toks for r in requests], finished,
                                     on_done=on_done, prompt_heads=prompt_heads)
        return [postprocess_generated_text(generation=self.tok_decode(tokens), stop=r.until, think_end_token=None)
                for tokens, r in zip(generated, requests, strict=True)]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm-eval's ``generate_until`` for greedy requests on ``fast_generate.GreedyDecoder``.

        Same request order (longest context first, grouped by generation kwargs; prompts sharing a long
        head start together, see ``fast_generate.admission_order``), tokenisation, left truncation, stop
        sequences (plus the EOS token), ``max_gen_toks``, post-processing and cache entries as
        ``HFLM.generate_until``; ``batch_size`` sequences decode at once, a finished one's slot taking the
        next request, whatever its kwargs group. Requests already answered during the log-likelihood pass
        (same context, same kwargs; see the module docstring) take that answer. Anything else (sampling,
        ``auto`` batch size, other architectures, GPUs) runs lm-eval's own code.
        """
        if not self._fast_generate_applies(requests):
            self._early_answers.clear()
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        width = int(self.batch_size)
        collator = Collator([r.args for r in requests], group_by="gen_kwargs", group_fn=lambda x: x[1],
                            sort_fn=lambda req: (-len(self.tok_encode(req[0])), req[0]))
        # every kwargs group (in lm-eval's order) in ONE decoder run: the slots need not drain between groups
        ordered = [item for group in collator.get_batched(n=0) for item in group]
        texts: list[str | None] = [self._early_answers.get((c, _kwargs_key(kw))) for c, kw in ordered]
        todo = [i for i, text in enumerate(texts) if text is None]  # only these are tokenised and decoded
        self.answered_early += len(texts) - len(todo)
        self._early_answers.clear()
        desc = f"Running generate_until requests (econ-hf, {width} at once)"
        if len(todo) < len(texts):
            desc += f"; {len(texts) - len(todo)} answered with the log-likelihoods"
        pbar = tqdm(total=len(requests), initial=len(texts) - len(todo), disable=(disable_tqdm or self.rank != 0),
                    desc=desc)
        if todo:
            greedy = self._greedy_requests([ordered[i] for i in todo])
            decoder = fast_generate.GreedyDecoder(
                self.model, width=width, max_positions=max(len(r.prompt) + r.max_gen_toks for r in greedy),
                draft_tokens=self.draft_tokens)
            with torch.inference_mode(), fast_generate.prepacked_linears(self.model, width):
                decoded = self._decode_greedy(greedy, decoder, on_done=lambda _r, _g: pbar.update(1))
            for i, text in zip(todo, decoded, strict=True):
                texts[i] = text
        pbar.close()
        for (context, gen_kwargs), text in zip(ordered, texts, strict=True):
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return collator.get_original(texts)

    def _generation_alongside(self, requests, groups: list[_Group]) -> _GenerationAlongside | None:
        """Plan the pending greedy generation requests whose context is one of these log-likelihood
        contexts: each group gets the ones for its context(s) in ``group.twins``."""
        if self.backend != "causal":
            return None
        pending = self._pending_generation()
        if not pending or not self._fast_generate_applies(pending):
            return None
        by_context: dict[str, dict[str, dict]] = defaultdict(dict)
        for inst in pending:
            by_context[inst.args[0]][_kwargs_key(inst.args[1])] = inst.args[1]
        items, owners = [], []  # every planned (context, kwargs), and the group that computes its context
        for group in groups:
            contexts = {requests[i][0][0] for i in group.indices if requests[i][0] is not None}
            for c in sorted(contexts & by_context.keys()):
                items += [(c, kw) for kw in by_context[c].values()]
                owners += [group] * len(by_context[c])
        if not items:
            return None
        planned = self._greedy_requests(items)  # one call: stop sequences prepared once per kwargs
        for group, request in zip(owners, planned, strict=True):
            group.twins.append(request)
        width = int(self.batch_size) if str(self.batch_size).isdigit() else 1
        return _GenerationAlongside(self, width, planned)

    @staticmethod
    def _prefix_and_next(logprobs: torch.Tensor, group: _Group):
        """Score the group's common prefix from ``logprobs`` (the LM head's log-softmax at positions
        len(context)-1 ... len(extended)-1): (prefix log-prob, prefix greedy?, log-probs of the token after the
        extended context)."""
        prefix = torch.tensor(group.prefix, dtype=torch.long, device=logprobs.device)
        if len(group.prefix):
            rows = logprobs[:-1]
            lp = float(rows.gather(1, prefix[:, None]).sum())
            greedy = bool((rows.argmax(-1) == prefix).all())
        else:
            lp, greedy = 0.0, True
        return lp, greedy, logprobs[-1]

    def _score_batch(self, body, head, batch: list[_Group], results, alongside=None) -> None:
        """Score a batch of groups: one right-padded forward for their contexts, one for their longer rests.

        The head every context of the batch shares (at least the chat template's system turn, ~26 tokens)
        runs once, and the rows' tails run on its cache. Rows with generation requests on the same prompt
        hand their keys and values to ``alongside``. Continuations of more than one token then run as one
        batch on the contexts' keys and values (each row attending to its own context only, at its own
        positions), and the LM head runs once for every position the batch scores."""
        rows = [g.extended for g in batch]
        shared = min(min(g.first_scored for g in batch),
                     min(fast_generate.common_prefix(rows[0], r) for r in rows))
        width = max(len(r) for r in rows)
        keep = alongside is not None and any(g.twins for g in batch)
        longer = [(row, rest) for row, g in enumerate(batch) for rest in g.rests if len(rest) > 1]
        if len(batch) > 1 and shared >= fast_generate.MIN_REUSED_TOKENS:
            cache = body(input_ids=torch.tensor([rows[0][:shared]], device=self.device),
                         use_cache=True).past_key_values
            cache.batch_repeat_interleave(len(batch))
            tails = self._right_padded([r[shared:] for r in rows], width - shared)
            with unmasked_causal_attention(body):  # the tails after the shared head: lower-right causal, no mask
                hidden = body(input_ids=tails, past_key_values=cache, use_cache=True).last_hidden_state
        else:
            shared = 0
            out = body(input_ids=self._right_padded(rows, width), use_cache=keep or bool(longer))
            hidden, cache = out.last_hidden_state, out.past_key_values
        if keep:  # before the rests' forward below selects from the cache
            for row, group in enumerate(batch):
                alongside.add(group, [(k[row], v[row]) for k, v in fast_generate.cache_layers(cache)])
        states = [hidden[row, g.first_scored - shared:len(g.extended) - shared] for row, g in enumerate(batch)]
        if longer:
            states += self._rest_states(body, cache, batch, longer, width)
        logprobs = self._log_probs(head, torch.cat(states)).split([len(s) for s in states])
        later = iter(logprobs[len(batch):])
        for row, group in enumerate(batch):
            lp, greedy, nxt = self._prefix_and_next(logprobs[row], group)
            best = int(nxt.argmax())
            for i, rest in zip(group.indices, group.rests, strict=True):
                total, ok = lp + float(nxt[rest[0]]), greedy and best == rest[0]
                if len(rest) > 1:
                    rows_lp = next(later)
                    targets = torch.tensor(rest[1:], dtype=torch.long, device=rows_lp.device)
                    total += float(rows_lp.gather(1, targets[:, None]).sum())
                    ok = ok and bool((rows_lp.argmax(-1) == targets).all())
                results[i] = (total, ok)

    def _rest_states(self, body, cache, batch: list[_Group], longer, width: int) -> list[torch.Tensor]:
        """Hidden states that score the 2nd... tokens of the ``longer`` rests (``(row, rest)`` pairs in the
        batch's order), from one forward of their tokens on the batch's cache (``width`` positions, each row
        right-padded after its context): a rest's row sees its own context's positions and its own tokens,
        and its tokens take the positions that follow its context."""
        cache.batch_select_indices(torch.tensor([row for row, _ in longer], device=self.device))
        longest = max(len(rest) for _, rest in longer) - 1
        ids = self._right_padded([rest[:-1] for _, rest in longer], longest)
        mask = torch.zeros(len(longer), width + longest, dtype=torch.long, device=self.device)
        positions = torch.empty(len(longer), longest, dtype=torch.long, device=self.device)
        for r, (row, _) in enumerate(longer):
            context = len(batch[row].extended)
            mask[r, :context] = 1
            positions[r] = torch.arange(context, context + longest, device=self.device)
        mask[:, width:] = 1  # right padding of the rests comes after everything scored
        later = body(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                     use_cache=True).last_hidden_state
        return [later[r, :len(rest) - 1] for r, (_, rest) in enumerate(longer)]


def preview_run_tasks() -> None:
    """Make ``lm_eval.evaluator.evaluate`` hand an econ-hf model the run's tasks (:meth:`PrefixSharedHFLM.expect_tasks`)
    before it sends any request, so that its log-likelihood pass can answer the greedy generation requests on
    the same prompts. lm-eval sends each request type in the order of the first task that asks for it, so
    for econ-hf the tasks are put in an order where log-likelihood tasks come first (``econ`` starts with
    econ_titles; results and samples are the same in any order). Call it before
    ``simple_evaluate``/``cli_evaluate`` (``econ_eval.lm_eval_cli`` does); other models are passed through
    untouched. Idempotent."""
    import functools

    import lm_eval.evaluator as evaluator

    original = evaluator.evaluate
    if getattr(original, "econ_hf_preview", False):
        return

    @functools.wraps(original)
    def evaluate(*args, **kwargs):
        args = list(args)
        lm = kwargs["lm"] if "lm" in kwargs else (args[0] if args else None)
        model = getattr(lm, "lm", lm)  # under lm-eval's CachingLM (--use_cache)
        by_name = "task_dict" in kwargs
        task_dict = kwargs["task_dict"] if by_name else (args[1] if len(args) > 1 else None)
        if isinstance(model, PrefixSharedHFLM) and isinstance(task_dict, dict):
            task_dict = loglikelihood_tasks_first(task_dict)
            if by_name:
                kwargs["task_dict"] = task_dict
            else:
                args[1] = task_dict
            model.expect_tasks(run_task_objects(task_dict))
        return original(*args, **kwargs)

    evaluate.econ_hf_preview = True
    evaluator.evaluate = evaluate


def loglikelihood_tasks_first(task_dict: dict) -> dict:
    """``TaskManager.load``'s task dict with its generation tasks after the others (stable otherwise), so that
    lm-eval sends the log-likelihood requests first; a nested ``get_task_dict`` dict is returned as it is."""
    tasks = task_dict.get("tasks")
    if not isinstance(tasks, dict):
        return task_dict
    ordered = sorted(tasks.items(), key=lambda item: getattr(item[1], "OUTPUT_TYPE", None) == "generate_until")
    return {**task_dict, "tasks": dict(ordered)}


def run_task_objects(task_dict: dict) -> list:
    """The task objects of an lm-eval task dict (``TaskManager.load``'s, or ``get_task_dict``'s nested one)."""
    if isinstance(task_dict.get("tasks"), dict):
        return list(task_dict["tasks"].values())
    found = []
    for value in task_dict.values():
        if isinstance(value, dict):
            found += run_task_objects(value)
        elif hasattr(value, "OUTPUT_TYPE"):
            found.append(value)
    return found


def _kwargs_key(gen_kwargs) -> str:
    """A generation-kwargs dict as a hashable key."""
    return json.dumps(gen_kwargs, sort_keys=True, default=str)


@dataclass(frozen=True)
class _GreedyRequest:
    """One greedy generation request as the decoder runs it (see ``PrefixSharedHFLM._greedy_requests``)."""

    context: str
    gen_kwargs: dict
    kwargs_key: str
    prompt: list[int]
    max_gen_toks: int
    until: list[str]
    lookback: int


class _GenerationAlongside:
    """Greedy generation requests answered during the log-likelihood pass over the same prompt.

    Each context's keys and values (``add``) go to a ``fast_generate.GreedyDecoder`` as a ``PromptHead``;
    they are queued and decoded together (continuous batching within a flush) once ``FLUSH_REQUESTS x
    width`` requests or ``FLUSH_BYTES`` of held keys and values are queued: a flush ends with its slots
    draining (the longest answer decodes alone), so fewer, larger flushes waste fewer steps (with 4 x 8
    requests a flush, econ_headlines_gen's short prompts and long-winded answers gained nothing), while
    the batches the log-likelihood pass holds on to stay bounded."""

    FLUSH_REQUESTS = 16
    FLUSH_BYTES = 512 * 2**20

    def __init__(self, lm: PrefixSharedHFLM, width: int, requests: list[_GreedyRequest]):
        self.lm, self.width = lm, width
        self.planned = len(requests)
        self.decoder = fast_generate.GreedyDecoder(lm.model, width=width,
                                                   max_positions=max(len(r.prompt) + r.max_gen_toks for r in requests),
                                                   draft_tokens=lm.draft_tokens)
        self.queue: list[tuple[_GreedyRequest, fast_generate.PromptHead]] = []
        self.held: dict[int, int] = {}  # storage address -> bytes of the cache tensors the queue keeps alive
        self.answers: dict[tuple[str, str], str] = {}

    def add(self, group: _Group, layers) -> None:
        """``group``'s context was just computed: ``layers`` holds its keys and values (``group.extended``)."""
        for request in group.twins:
            self.queue.append((request, fast_generate.PromptHead(group.extended, layers)))
        for k, v in layers:
            for t in (k, v):
                self.held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        if len(self.queue) >= self.FLUSH_REQUESTS * self.width or sum(self.held.values()) >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Decode what is queued."""
        if not self.queue:
            return
        requests = [r for r, _ in self.queue]
        heads = {i: head for i, (_, head) in enumerate(self.queue)}
        texts = self.lm._decode_greedy(requests, self.decoder, prompt_heads=heads)
        self.answers.update({(r.context, r.kwargs_key): t for r, t in zip(requests, texts, strict=True)})
        self.queue.clear()
        self.held.clear()


def _flag(value) -> bool:
    """A model argument's boolean (lm-eval passes ``key=value`` strings through)."""
    return str(value).lower() not in ("false", "0", "no")


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
        self.twins: list[_GreedyRequest] = []  # generation requests on this context (answered alongside)

    @classmethod
    def plan(cls, context, indices, continuations):
        n = min(len(c) for c in continuations) - 1  # every continuation keeps at least one token of its own
        common = 0
        while common < n and len({c[common] for c in continuations}) == 1:
            common += 1
        prefix = continuations[0][:common]
        return cls(context, indices, prefix, [c[common:] for c in continuations])
