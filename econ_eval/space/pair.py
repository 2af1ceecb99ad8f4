"""ONE model in memory for both columns: a ``PeftModel`` whose base column runs under ``disable_adapter()``."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from .. import config


@dataclass
class Answer:
    text: str
    ttft_s: float | None  # time to first token
    total_s: float


class SideBySide:
    """Base and tuned answers from ONE model in memory (a PeftModel; base = adapter disabled)."""

    def __init__(self, base: str = config.DEFAULT_MODEL, adapter: str | None = None, *, dtype: str = config.FITTED_DTYPE,
                 threads: int | None = None):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..models import check_adapter, resolve_model

        if threads:
            torch.set_num_threads(threads)
        path = resolve_model(base)
        self.base_name, self.adapter = base, adapter
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.dtype, _ = config.fitted_dtype(dtype, "cpu")  # the models run on the CPU: bf16 only where it is native
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype))
        if adapter:
            check_adapter(adapter, base, warn=lambda m: print(m, file=sys.stderr))  # names a broken file
            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()
        self._lock = threading.Lock()  # one generation at a time: the adapter switch is model-global

    def _inputs(self, prompt: str):
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer(text, return_tensors="pt")

    def stream(self, prompt: str, *, tuned: bool, max_new_tokens: int = 64) -> Iterator[tuple[str, float | None]]:
        """Yield ``(text so far, time to first token)`` while generating greedily."""
        import contextlib

        from transformers import TextIteratorStreamer

        inputs = self._inputs(prompt)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        use_base = not tuned and self.adapter
        with self._lock:
            ctx = self.model.disable_adapter() if use_base else contextlib.nullcontext()
            errors: list[BaseException] = []

            def run():
                try:
                    with ctx:
                        self.model.generate(**inputs, streamer=streamer, max_new_tokens=max_new_tokens,
                                            do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
                except BaseException as exc:  # surfaced below, never a dead page
                    errors.append(exc)
                    streamer.end()

            start = time.perf_counter()
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            text, ttft = "", None
            for piece in streamer:
                if ttft is None and piece:
                    ttft = time.perf_counter() - start
                text += piece
                yield text, ttft
            worker.join()
            if errors:
                raise errors[0]
            yield text, ttft

    def answer(self, prompt: str, *, tuned: bool, max_new_tokens: int = 64) -> Answer:
        """The whole answer (not streamed), with timings."""
        start = time.perf_counter()
        text, ttft = "", None
        for text, ttft in self.stream(prompt, tuned=tuned, max_new_tokens=max_new_tokens):
            pass
        return Answer(text.strip(), ttft, time.perf_counter() - start)
