"""The logic behind the Space (``demo/app.py``), by tab:

- :mod:`.pair`: :class:`SideBySide` holds ONE base model wrapped in a ``PeftModel``; the base column is
  generated with the adapter disabled (``disable_adapter()``), the tuned column with it enabled.
- :mod:`.compare`: examples, prompts, gold answers and per-example scores, from the task registry; the
  pairwise verdict of a configured judge (tuned vs base, both orders).
- :mod:`.documents`: uploads, reading with limits, chunking, a per-session FAISS index (same MiniLM + FAISS
  retrieval as ``econ_qa_rag``), the RAG prompt.
- :mod:`.leaderboard_view`: the leaderboard table.
- :mod:`.export`: ``econ-eval space export`` (a self-contained Hugging Face Space folder).
"""

from .compare import (DEMO_TASKS, EXAMPLES_FILE, adapter_card, example_label, gen_prompt, gold_answer,  # noqa: F401
                      VERDICT_WORDS, judge_verdict, load_examples, pasted_doc, score_answer)
from .documents import (CHUNK_CHARS, CHUNK_OVERLAP, MAX_FILES, MAX_PDF_PAGES, MAX_UPLOAD_BYTES, Chunk,  # noqa: F401
                        chunk_pages, format_passages, index_documents, rag_prompt, read_document, uploaded_paths)
from .leaderboard_view import LEADERBOARD_COLUMNS, filter_rows, leaderboard_rows  # noqa: F401
from .pair import Answer, SideBySide  # noqa: F401
