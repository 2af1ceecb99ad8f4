"""Thin shim: lm-eval imports this file by path, so it must not use relative imports (lm-eval #2713).

Everything lives in the installed ``econ_eval`` package; see ``econ_eval/lm_tasks.py``.
"""

from econ_eval.lm_tasks import *  # noqa: F401,F403
from econ_eval.lm_tasks import (  # noqa: F401  (names the YAMLs use)
    bleu, classify_choices, classify_gold, classify_label_filter, classify_prompt, classify_target, f1,
    load_rag_dataset, load_task_dataset, macro_f1, macro_precision, macro_recall, mcc, mmlu_choices, mmlu_gold, mmlu_prompt,
    precision, process_classify, process_classify_gen, process_mmlu, process_qa, process_qa_rag, process_signal,
    process_signal_gen, process_titles, qa_prompt, qa_rag_prompt, qa_target, recall, score, signal_choices, signal_gold,
    signal_label_filter, signal_prompt, signal_target, titles_prompt, titles_target, weighted_f1,
    fomc_choices, fomc_gold, fomc_label_filter, fomc_prompt, fomc_target, fpb_prompt, process_fomc, process_fomc_gen,
    process_sentiment, process_sentiment_gen, sentiment_choices, sentiment_gold, sentiment_label_filter,
    sentiment_target, avg_f1, headlines_prompt, process_headlines, process_headlines_gen, yes_no_gold, yes_no_target,
    fiqasa_prompt, process_tatqa, tatqa_prompt, tatqa_target,
)

# the quick suite's document filters (econ_eval/lite.py): one per full task
from econ_eval.lite import LITE_SIZES as _LITE_SIZES, process_docs_for as _lite_docs  # noqa: E402

for _task in _LITE_SIZES:
    globals()[f"lite_{_task}"] = _lite_docs(_task)
