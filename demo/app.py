"""econ-eval Space: base vs tuned side by side, ask-your-documents RAG, and the leaderboard.

    python demo/app.py [--port 7860] [--base smollm2-135m] [--adapter adapters/smollm2-135m-lora]
    gradio demo/app.py          # hot reload; a Hugging Face Space imports the module-level `demo`

Offline-safe: no analytics, no share link, nothing fetched from the internet. One model in memory:
the base column is the same PeftModel with its adapter disabled. Settings also come from the
environment (ECON_EVAL_BASE, ECON_EVAL_ADAPTER, ECON_EVAL_MAX_NEW_TOKENS, ECON_EVAL_EXAMPLES_PER_TASK,
ECON_EVAL_JUDGE_MODEL, ECON_EVAL_JUDGE_BASE_URL), which is how a Space configures the module-level app.

With a judge (``--judge-model M --judge-base-url URL``, any OpenAI-compatible endpoint, e.g.
``econ-eval serve-judge``), the Compare tab adds the judge's pairwise verdict on test examples of the
judged tasks (QA, titles): tuned vs base asked in both orders, with the judge's calibration status.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
# from a checkout: econ_eval/ is beside demo/; in an exported Space (`econ-eval space export`): beside app.py
REPO = HERE.parent if (HERE.parent / "econ_eval").is_dir() else HERE
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("ECON_EVAL_RESULTS", str(REPO / "results"))  # the leaderboard, wherever the app runs from

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402

from econ_eval import config, space  # noqa: E402
from econ_eval.io import DataError  # noqa: E402

def _default_adapter() -> Path:
    """The adapter an exported Space serves (its space_config.json), else the published CPU LoRA adapter."""
    import json

    from econ_eval.space.export import SPACE_CONFIG

    cfg = REPO / SPACE_CONFIG
    if cfg.is_file():
        return REPO / json.loads(cfg.read_text())["adapter"]
    return config.PUBLISHED_ADAPTER


DEFAULT_ADAPTER = _default_adapter()


def parse_args(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=int(env("PORT", 7860)))
    p.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="interface to bind (default: %(default)s; a Space sets 0.0.0.0)")
    p.add_argument("--base", default=env("ECON_EVAL_BASE", config.DEFAULT_MODEL),
                   help="registered model or HF model path (default: %(default)s)")
    p.add_argument("--adapter", default=env("ECON_EVAL_ADAPTER", str(DEFAULT_ADAPTER)),
                   help="PEFT adapter directory (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=int(env("ECON_EVAL_MAX_NEW_TOKENS", 64)),
                   help="generation length per answer (default: %(default)s)")
    p.add_argument("--dtype", default=config.FITTED_DTYPE, help="model dtype (default: %(default)s: bfloat16 where "
                   "the machine has native bf16 matmuls (AVX-512/AMX, GPU), else float32)")
    p.add_argument("--examples", type=int, default=int(env("ECON_EVAL_EXAMPLES_PER_TASK", 40)),
                   help="test examples offered per task (default: %(default)s)")
    p.add_argument("--judge-model", default=env("ECON_EVAL_JUDGE_MODEL"),
                   help="judge for a pairwise verdict in the Compare tab (default: none)")
    p.add_argument("--judge-base-url", default=env("ECON_EVAL_JUDGE_BASE_URL"),
                   help="the judge's OpenAI-compatible base URL (e.g. http://127.0.0.1:8091/v1)")
    return p.parse_args(argv)


def build_app(pair: space.SideBySide, *, max_new_tokens: int = 64, n_examples: int = 40, judge=None) -> gr.Blocks:
    """The Blocks app; ``judge``: a ChatClient whose pairwise verdict the Compare tab shows (None: no judge)."""
    examples = {}
    for label, task in space.DEMO_TASKS.items():
        try:
            examples[task] = space.load_examples(task, n_examples)
        except DataError:
            examples[task] = []
    adapter_name, adapter_card = space.adapter_card(pair.adapter)
    judge_calibration = None
    if judge is not None:
        from econ_eval.judge.calibration import find_calibration

        judge_calibration = find_calibration(judge.model, judge.base_url)
    tuned_label = f"tuned ({adapter_name})" if pair.adapter else "tuned (no adapter given)"

    def example_choices(task_label):
        task = space.DEMO_TASKS[task_label]
        return [space.example_label(task, d, i) for i, d in enumerate(examples[task])]

    def pick_doc(task_label, example, pasted, question):
        task = space.DEMO_TASKS.get(task_label)
        if task is None:
            raise gr.Error(f"unknown task {task_label!r}; choose one of {list(space.DEMO_TASKS)}")
        if (pasted or "").strip():
            return task, space.pasted_doc(task, pasted, question), False
        choices = example_choices(task_label)
        if not choices:
            raise gr.Error("no test examples: build the data bundle (`econ-eval data build`) or paste text")
        idx = choices.index(example) if example in choices else 0
        return task, examples[task][idx], True

    def compare(task_label, example, pasted, question):
        """Stream the base and the tuned answer to one task example; then show gold answer and metric."""
        try:
            task, doc, from_test = pick_doc(task_label, example, pasted, question)
        except DataError as exc:
            raise gr.Error(str(exc))
        prompt = space.gen_prompt(task, doc)
        gold = space.gold_answer(task, doc) if from_test else "(pasted text: no gold answer)"
        base_text = tuned_text = ""
        timing = {}
        try:
            for base_text, ttft in pair.stream(prompt, tuned=False, max_new_tokens=max_new_tokens):
                timing["base"] = ttft
                yield base_text, tuned_text, gold, "generating the base answer ..."
            for tuned_text, ttft in pair.stream(prompt, tuned=True, max_new_tokens=max_new_tokens):
                timing["tuned"] = ttft
                yield base_text, tuned_text, gold, "generating the tuned answer ..."
        except Exception as exc:  # shown in the UI, never a dead page
            raise gr.Error(f"generation failed: {exc}")
        lines = [f"time to first token: base {timing.get('base') or 0:.2f} s, tuned {timing.get('tuned') or 0:.2f} s"]
        if from_test:
            lines.append(f"base: {space.score_answer(task, doc, base_text)}")
            lines.append(f"tuned: {space.score_answer(task, doc, tuned_text)}")
            if judge is not None:
                yield base_text.strip(), tuned_text.strip(), gold, "\n\n".join(lines + ["asking the judge ..."])
                try:
                    verdict = space.judge_verdict(judge, task, doc, base_text, tuned_text, judge_calibration)
                except Exception as exc:  # noqa: BLE001 - the answers stand; the verdict says what failed
                    verdict = f"judge `{judge.model}` failed: {exc}"
                if verdict:
                    lines.append(verdict)
        yield base_text.strip(), tuned_text.strip(), gold, "\n\n".join(lines)

    def show_example(task_label, example):
        try:
            task, doc, _ = pick_doc(task_label, example, "", "")
        except (gr.Error, DataError):
            return ""
        return space.gen_prompt(task, doc)

    def index_files(files, progress=gr.Progress()):
        """Build this session's FAISS index over uploaded PDF/TXT/MD files."""
        progress(0.1, desc="reading and chunking")
        try:
            # only files Gradio's upload route received: an API caller may name any server path
            paths = space.uploaded_paths(files, app.upload_file_set, get_upload_folder())
            index, summary = space.index_documents(paths)
        except DataError as exc:
            raise gr.Error(str(exc))
        progress(1.0, desc="indexed")
        return index, summary

    def ask_documents(question, index):
        """Answer a question from the uploaded documents with both models; show the retrieved passages."""
        if index is None:
            raise gr.Error("upload documents and press 'Index documents' first")
        if not (question or "").strip():
            raise gr.Error("type a question")
        hits = index.search(question, k=3)
        prompt = space.rag_prompt(question, [p.text for p, _ in hits])
        passages = space.format_passages(hits)
        base_text = tuned_text = ""
        for base_text, _ in pair.stream(prompt, tuned=False, max_new_tokens=max_new_tokens):
            yield base_text, tuned_text, passages
        for tuned_text, _ in pair.stream(prompt, tuned=True, max_new_tokens=max_new_tokens):
            yield base_text, tuned_text, passages
        yield base_text.strip(), tuned_text.strip(), passages

    try:
        all_rows = space.leaderboard_rows()
        board_note = ""
    except DataError as exc:
        all_rows, board_note = [], str(exc)

    def leaderboard(query, sort_by):
        """The leaderboard rows matching ``query`` (system or method), sorted by ``sort_by``."""
        return space.filter_rows(all_rows, query, sort_by)

    with gr.Blocks(title="econ-eval: does this model understand economics?") as app:
        gr.Markdown("# econ-eval\n*Does this model — and this LoRA adapter of it — understand economics?*  "
                    f"Base: `{pair.base_name}`; tuned: `{adapter_name}`"
                    + (" (its model card is below)" if adapter_card else "")
                    + " — one model in memory; the base column runs with the adapter disabled.",
                    elem_id="header")
        if adapter_card:
            with gr.Accordion(f"Model card: {adapter_name}", open=False):
                gr.Markdown(adapter_card)
        with gr.Tab("Compare"):
            with gr.Row():
                task_dd = gr.Dropdown(list(space.DEMO_TASKS), value="Classification", label="Task")
                first = example_choices("Classification")
                example_dd = gr.Dropdown(first, value=first[0] if first else None, label="Test example",
                                         allow_custom_value=True)  # API callers may pass "" (the first example)
            with gr.Accordion("…or paste your own text", open=False):
                pasted = gr.Textbox(label="Text (abstract, or news: headline on the first line)", lines=5)
                question = gr.Textbox(label="Question (question answering only)")
            prompt_box = gr.Textbox(label="Prompt (the task's own)", lines=6, interactive=False,
                                    value=show_example("Classification", first[0] if first else None))
            run_btn = gr.Button("Compare", variant="primary", elem_id="compare-button")
            with gr.Row():
                base_out = gr.Textbox(label=f"base ({pair.base_name})", lines=4, elem_id="base-answer")
                tuned_out = gr.Textbox(label=tuned_label, lines=4, elem_id="tuned-answer")
            gold_out = gr.Textbox(label="gold answer", interactive=False)
            score_out = gr.Markdown(elem_id="compare-score")

            task_dd.change(lambda t: gr.update(choices=example_choices(t), value=(example_choices(t) or [None])[0]),
                           task_dd, example_dd, api_visibility="private")
            example_dd.change(show_example, [task_dd, example_dd], prompt_box, api_visibility="private")
            run_btn.click(compare, [task_dd, example_dd, pasted, question], [base_out, tuned_out, gold_out, score_out],
                          api_name="compare")

        with gr.Tab("Your documents"):
            gr.Markdown(f"Upload up to {space.MAX_FILES} PDF, TXT or MD files (each ≤ "
                        f"{space.MAX_UPLOAD_BYTES // 2**20} MB, PDFs ≤ {space.MAX_PDF_PAGES} pages). They are "
                        "chunked, embedded with all-MiniLM-L6-v2 and indexed with FAISS for this session only.")
            files = gr.File(file_count="multiple", file_types=[".pdf", ".txt", ".md"], label="Documents")
            index_state = gr.State(None)
            index_btn = gr.Button("Index documents")
            index_info = gr.Markdown()
            doc_q = gr.Textbox(label="Question about your documents")
            ask_btn = gr.Button("Ask both models", variant="primary")
            with gr.Row():
                doc_base = gr.Textbox(label=f"base ({pair.base_name})", lines=4)
                doc_tuned = gr.Textbox(label=tuned_label, lines=4)
            doc_passages = gr.Markdown(label="retrieved passages")
            index_btn.click(index_files, files, [index_state, index_info], api_name="index_documents")
            ask_btn.click(ask_documents, [doc_q, index_state], [doc_base, doc_tuned, doc_passages],
                          api_name="ask_documents")

        with gr.Tab("Leaderboard"):
            gr.Markdown("Headline score per task (titles/QA ROUGE-L, classify macro F1, signal F1, MMLU acc) with its "
                        "95% interval in brackets: systems whose intervals overlap are not clearly distinguishable. "
                        "Ranked by the average normalised against random guessing over the tasks every system has "
                        "(`common_average`); `normalised_average` covers all of a system's tasks. From "
                        "`results/leaderboard.json`."
                        + (f"\n\n**{board_note}**" if board_note else ""))
            with gr.Row():
                query = gr.Textbox(label="Filter (system or method)")
                sort_by = gr.Dropdown(space.LEADERBOARD_COLUMNS, value="rank", label="Sort by")
            table = gr.Dataframe(value=space.filter_rows(all_rows), headers=space.LEADERBOARD_COLUMNS,
                                 interactive=False, wrap=True)
            query.change(leaderboard, [query, sort_by], table, api_name="leaderboard")
            sort_by.change(leaderboard, [query, sort_by], table, api_visibility="private")
            plot = config.results_dir() / "plots" / "leaderboard.png"
            if plot.is_file():
                gr.Image(str(plot), label="leaderboard", show_label=False, interactive=False)
    return app


def create_demo(args) -> gr.Blocks:
    """Load the model pair named by ``args`` and build the app."""
    adapter = args.adapter if args.adapter and Path(args.adapter).exists() else None
    if args.adapter and not adapter:
        print(f"warning: adapter {args.adapter} not found; the tuned column will equal the base", file=sys.stderr)
    print(f"loading {args.base}" + (f" + {Path(adapter).name}" if adapter else "") + " ...", flush=True)
    pair = space.SideBySide(args.base, adapter, dtype=args.dtype)
    judge = None
    if args.judge_model:
        from econ_eval.judge.client import ChatClient

        judge = ChatClient(args.judge_model, base_url=args.judge_base_url, timeout=60, retries=1, max_tokens=256)
        print(f"pairwise judge: {args.judge_model} at {args.judge_base_url or 'the default endpoint'}", flush=True)
    return build_app(pair, max_new_tokens=args.max_new_tokens, n_examples=args.examples, judge=judge).queue(
        default_concurrency_limit=1)


ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])
#: The app, at module level: `gradio app.py` (hot reload) and Hugging Face Spaces look for `demo`.
demo = create_demo(ARGS)

if __name__ == "__main__":
    demo.launch(server_name=ARGS.host, server_port=ARGS.port, share=False, show_error=True)
