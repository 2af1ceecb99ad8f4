"""The logic behind the Space (``demo/app.py``): one model in memory, base vs tuned, documents, leaderboard.

- :class:`SideBySide` holds ONE base model wrapped in a ``PeftModel``; the base column is generated with
  the adapter disabled (``disable_adapter()``), the tuned column with it enabled.
- Prompts and answer parsing are the tasks' own (:mod:`econ_eval.prompts`), scores the tasks' metrics.
- Uploaded documents are read (PDF/TXT/MD, with limits), chunked with page numbers, and indexed with
  the same MiniLM + FAISS retrieval as ``econ_qa_rag`` (:mod:`econ_eval.retrieval`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import config, metrics, prompts, tasks
from .io import DataError, read_jsonl

#: Compare tab: label shown -> task (the registry's ``demo_label``)
DEMO_TASKS = {t.demo_label: t.name for t in tasks.TASKS.values() if t.demo_label}

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PDF_PAGES = 60
MAX_FILES = 5
CHUNK_CHARS = 900
CHUNK_OVERLAP = 150


# ------------------------------------------------------------------ prompts for the Compare tab
def gen_prompt(task: str, doc: dict) -> str:
    """The task's prompt (classification and signal are answered in words, as their ``_gen`` twins are)."""
    return tasks.task(task).prompt(doc)


def gold_answer(task: str, doc: dict) -> str | None:
    """The reference answer of a test example (None for pasted text)."""
    try:
        return tasks.task(task).target(doc)
    except (KeyError, ValueError):
        return None


def score_answer(task: str, doc: dict, answer: str) -> str:
    """The task's per-example metric for one answer, as a short text."""
    spec = tasks.task(task)
    if spec.is_classification:
        label = spec.parse(answer)
        shown = label if label == prompts.INVALID or isinstance(label, str) else spec.label_name(label)
        return f"parsed: {shown} — {'correct' if label == spec.gold_label(doc) else 'wrong'}"
    ref = gold_answer(task, doc)
    pred = spec.clean_answer(answer)
    parts = [f"ROUGE-L {metrics.rouge_scores(ref, pred)['rougeL']:.3f}"]
    if "token_f1" in spec.metrics:
        parts.append(f"token F1 {metrics.token_f1(ref, pred):.3f}")
    return ", ".join(parts)


def pasted_doc(task: str, text: str, question: str = "") -> dict:
    """A doc built from pasted text, in the fields the task's prompt reads."""
    text = (text or "").strip()
    if not text:
        raise DataError("paste some text first (an abstract, or a news story)")
    return tasks.task(task).doc_from_text(text, question)


#: Test examples shipped with an exported Space (``econ-eval space export``), used when no bundle is built.
EXAMPLES_FILE = "space_examples.jsonl"


def load_examples(task: str, n: int = 40, bundle: Path | None = None) -> list[dict]:
    """The first ``n`` test examples of a bundle task (the bundle's seeded order); without a built bundle,
    those of the examples file an exported Space ships (``<checkout>/space_examples.jsonl``)."""
    bundle = bundle or config.data_dir()
    path = bundle / task / "test.jsonl"
    if path.is_file():
        return read_jsonl(path)[:n]
    shipped = config.REPO_ROOT / EXAMPLES_FILE
    if shipped.is_file():
        return [r["doc"] for r in read_jsonl(shipped) if r.get("task") == task][:n]
    raise DataError(f"{path}: not found; build the bundle with `econ-eval data build`")


def uploaded_paths(files, accepted: set[str], upload_root: str | Path) -> list[Path]:
    """The paths of files a visitor uploaded, refusing any that Gradio's upload route did not receive.

    An API caller can send a FileData whose ``path`` names any file on the server; only paths in
    ``accepted`` (the files Gradio's own upload route stored, ``Blocks.upload_file_set``) that lie inside
    its upload folder are read. Anything else is a :class:`DataError` (the file is never opened).
    """
    root = Path(upload_root).resolve()
    known = {str(Path(p).resolve()) for p in accepted}
    out = []
    for f in files or []:
        raw = f if isinstance(f, (str, Path)) else (f.get("path") if isinstance(f, dict) else getattr(f, "path", None)
                                                   or getattr(f, "name", None))
        if not raw:
            raise DataError("an uploaded file arrived without a path; upload it again")
        path = Path(raw).resolve()
        if str(path) not in known or not path.is_relative_to(root):
            raise DataError(f"{Path(str(raw)).name}: not a file uploaded through this page; upload it with the "
                            "Documents box (or gradio_client.handle_file) and try again")
        out.append(path)
    return out


def adapter_card(adapter: str | Path | None) -> tuple[str, str]:
    """``(name, model card markdown)`` of an adapter folder, for display: never its local path."""
    if not adapter:
        return "—", ""
    adapter = Path(adapter)
    card = adapter / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    if text.startswith("---"):  # drop the YAML front matter
        end = text.find("\n---", 3)
        text = text[end + 4:] if end > 0 else text
    # the card's table names the base model's local path: show the short name only
    text = "\n".join(line for line in text.splitlines() if "](" not in line or "loss_curve" not in line)
    text = re.sub(r"\(`/[^`]*`\)", "", text)
    return adapter.name, text.strip()


def example_label(task: str, doc: dict, i: int) -> str:
    head = doc.get("question") or doc.get("title", "")  # a question, else the paper's or story's title
    head = " ".join(str(head).split())
    return f"{i + 1}. {head[:90]}"


# ------------------------------------------------------------------ the model pair
@dataclass
class Answer:
    text: str
    ttft_s: float | None  # time to first token
    total_s: float


class SideBySide:
    """Base and tuned answers from ONE model in memory (a PeftModel; base = adapter disabled)."""

    def __init__(self, base: str = config.DEFAULT_MODEL, adapter: str | None = None, *, dtype: str = "bfloat16",
                 threads: int | None = None):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve_model

        if threads:
            torch.set_num_threads(threads)
        path = resolve_model(base)
        self.base_name, self.adapter = base, adapter
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        if adapter:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise DataError(f"{adapter}: no adapter_config.json; pass a PEFT adapter directory "
                                "(e.g. adapters/smollm2-135m-lora) with --adapter")
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


# ------------------------------------------------------------------ documents
@dataclass
class Chunk:
    source: str
    page: int | None
    text: str


def read_document(path: Path | str, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pages: int = MAX_PDF_PAGES
                  ) -> list[tuple[int | None, str]]:
    """``[(page, text)]`` of a PDF (pages from 1), TXT or MD file; limits give a clear :class:`DataError`."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".txt", ".md"):
        raise DataError(f"{name}: unsupported file type {suffix or '(none)'}; upload PDF, TXT or MD")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                        "upload a smaller file or split it")
    if suffix == ".pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(str(path))
            n = len(reader.pages)
        except (PdfReadError, ValueError, OSError) as exc:
            raise DataError(f"{name}: not a readable PDF ({exc})") from exc
        if n > max_pages:
            raise DataError(f"{name}: {n} pages is over the {max_pages}-page limit; upload fewer pages")
        pages = [(i + 1, (p.extract_text() or "")) for i, p in enumerate(reader.pages)]
    else:
        try:
            pages = [(None, path.read_text(encoding="utf-8"))]
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 text; save it as UTF-8 and upload again") from exc
    if not any(t.strip() for _, t in pages):
        raise DataError(f"{name}: no text found (a scanned PDF needs OCR first)")
    return pages


def chunk_pages(source: str, pages: list[tuple[int | None, str]], *, size: int = CHUNK_CHARS,
                overlap: int = CHUNK_OVERLAP) -> list[Chunk]:
    """Split page texts into overlapping chunks of about ``size`` characters, cut at whitespace."""
    chunks = []
    for page, text in pages:
        text = " ".join(text.split())
        start = 0
        while start < len(text):
            end = min(len(text), start + size)
            if end < len(text):
                cut = text.rfind(" ", start + size // 2, end)
                end = cut if cut > start else end
            piece = text[start:end].strip()
            if piece:
                chunks.append(Chunk(source, page, piece))
            if end >= len(text):
                break
            start = max(end - overlap, start + 1)
    return chunks


def index_documents(paths: list[Path | str], names: list[str] | None = None):
    """A per-session FAISS index over the chunks of uploaded files; returns (index, summary text)."""
    from .retrieval import Passage, VectorIndex

    if not paths:
        raise DataError("upload at least one PDF, TXT or MD file")
    if len(paths) > MAX_FILES:
        raise DataError(f"{len(paths)} files: at most {MAX_FILES} per session")
    names = names or [Path(p).name for p in paths]
    chunks: list[Chunk] = []
    for path, name in zip(paths, names):
        chunks += chunk_pages(name, read_document(path))
    passages = [Passage(f"{c.source}#{i}", c.text, {"source": c.source, "page": c.page}) for i, c in enumerate(chunks)]
    index = VectorIndex.build(passages)
    return index, f"indexed {len(passages)} passages from {len(paths)} file(s): {', '.join(names)}"


def rag_prompt(question: str, passages: list[str]) -> str:
    """The econ_qa_rag prompt over retrieved passages."""
    return prompts.qa_rag_prompt({"question": question, "contexts": passages})


def format_passages(hits) -> str:
    """Markdown list of retrieved passages with source, page and similarity."""
    lines = []
    for i, (p, s) in enumerate(hits, 1):
        where = p.meta["source"] + (f", page {p.meta['page']}" if p.meta.get("page") else "")
        lines.append(f"**[{i}] {where}** (similarity {s:.2f})\n\n> {p.text[:600]}")
    return "\n\n".join(lines)


# ------------------------------------------------------------------ leaderboard
LEADERBOARD_COLUMNS = ["system", "method", "econ_titles", "econ_classify", "econ_qa", "econ_signal", "econ_mmlu",
                       "normalised_average", "tasks_scored"]


def leaderboard_rows(results: Path | None = None) -> list[list]:
    """Rows of ``results/leaderboard.json`` (headline score per task), best normalised average first."""
    path = (results or config.results_dir()) / "leaderboard.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; build it with `econ-eval leaderboard build`")
    doc = json.loads(path.read_text())
    rows = []
    for r in doc["rows"]:
        score = {t: r["metrics"].get(t, {}).get("score") for t in LEADERBOARD_COLUMNS[2:7]}
        rows.append([r["system"], r["method"], *[None if v is None else round(v, 4) for v in score.values()],
                     r.get("normalised_average"), r.get("tasks_scored")])
    rows.sort(key=lambda row: -(row[7] if row[7] is not None else -1e9))
    return rows


def filter_rows(rows: list[list], query: str = "", sort_by: str = "normalised_average") -> list[list]:
    """Rows whose system or method contains ``query``, sorted descending by ``sort_by`` (missing last)."""
    q = (query or "").strip().lower()
    kept = [r for r in rows if not q or q in str(r[0]).lower() or q in str(r[1]).lower()]
    col = LEADERBOARD_COLUMNS.index(sort_by) if sort_by in LEADERBOARD_COLUMNS else 7
    if col <= 1:
        return sorted(kept, key=lambda r: str(r[col]))
    return sorted(kept, key=lambda r: (r[col] is None, -(r[col] or 0)))
