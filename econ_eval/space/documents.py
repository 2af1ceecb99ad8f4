"""The "Your documents" tab: uploads (only those Gradio's upload route received), PDF/TXT/MD reading with
limits, chunking with page numbers, a per-session MiniLM + FAISS index, and the RAG prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import prompts
from ..io import DataError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PDF_PAGES = 60
MAX_FILES = 5
CHUNK_CHARS = 900
CHUNK_OVERLAP = 150


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
    from ..retrieval import Passage, VectorIndex

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
