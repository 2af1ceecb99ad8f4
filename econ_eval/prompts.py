"""THE prompts: one place for every task's input text, target and answer choices.

The lm-eval task YAMLs call these through ``tasks/econ/utils.py`` (``doc_to_text: !function ...``)
and the task registry (:mod:`econ_eval.tasks`) hands the same functions to fine-tuning, baselines and
the Space, so training and evaluation see the same prompt.
Change a prompt here and bump ``PROMPT_VERSION`` (it is recorded in the task metadata).
"""

from __future__ import annotations

import re

PROMPT_VERSION = "1"

#: econ_classify labels (arXiv codes) and the names the model chooses between.
CLASS_LABELS = ["econ.EM", "econ.GN", "econ.TH"]
CLASS_NAMES = ["Econometrics", "General Economics", "Theoretical Economics"]
SIGNAL_CHOICES = ["No", "Yes"]  # index = signal label
MMLU_LETTERS = ["A", "B", "C", "D"]
INVALID = "[invalid]"

#: Characters of a Reuters story shown to the model (the annotators saw about 600).
SIGNAL_STORY_CHARS = 600


def clip_text(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, marking the cut."""
    text = text.replace("\n", " ")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


# ------------------------------------------------------------------ econ_titles
def titles_prompt(doc: dict) -> str:
    return (f"Abstract: {doc['abstract']}\n\n"
            "Write a short title for this economics paper. Reply with the title only.")


def titles_target(doc: dict) -> str:
    return doc["title"]


# ------------------------------------------------------------------ econ_classify
def classify_prompt(doc: dict) -> str:
    options = "\n".join(f"- {name} ({code})" for name, code in zip(CLASS_NAMES, CLASS_LABELS))
    return (f"Abstract: {doc['abstract']}\n\n"
            "Which arXiv category does this economics paper belong to?\n"
            f"{options}\n"
            "Answer with the category name.\nAnswer:")


def classify_choices(doc: dict | None = None) -> list[str]:
    return list(CLASS_NAMES)


def classify_gold(doc: dict) -> int:
    return CLASS_LABELS.index(doc["label"])


def classify_target(doc: dict) -> str:
    return CLASS_NAMES[classify_gold(doc)]


_CLASS_PATTERNS = [  # (regex, label); the earliest match in the answer wins
    (r"\becon\.?\s*em\b|\beconometric", "econ.EM"),
    (r"\becon\.?\s*gn\b|\bgeneral\s+econom", "econ.GN"),
    (r"\becon\.?\s*th\b|\btheoretical\s+econom|\beconomic\s+theory\b", "econ.TH"),
]


def parse_class_answer(text: str) -> str:
    """The first category the answer mentions (code or name), or ``INVALID``."""
    return _first_match(text, _CLASS_PATTERNS)


# ------------------------------------------------------------------ econ_qa
def qa_prompt(doc: dict) -> str:
    return (f"Context: {doc['abstract']}\n\n"
            f"Question: {doc['question']}\n\n"
            "Answer the question using the context, in one or two sentences.")


def qa_target(doc: dict) -> str:
    return doc["answer"]


def qa_rag_prompt(doc: dict) -> str:
    """econ_qa_rag: the question and the passages retrieved for it (``doc['contexts']``), not the gold abstract."""
    passages = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(doc["contexts"], 1))
    return (f"Passages:\n{passages}\n\n"
            f"Question: {doc['question']}\n\n"
            "Answer the question using the passages, in one or two sentences.")


# ------------------------------------------------------------------ econ_signal
def signal_prompt(doc: dict) -> str:
    return (f"Date: {doc['date'].split(' ')[0]}\nHeadline: {doc['title']}\n"
            f"Story: {clip_text(doc['text'], SIGNAL_STORY_CHARS)}\n\n"
            "Is this news story an investment signal: a new, material, non-routine event that an investor "
            "would act on (takeover bid, earnings surprise or warning, rating change, default, policy "
            "decision, supply shock, major contract)? Routine items (results tables, usual dividends, bond "
            "issues, statistics, prices, commentary) are not.\n"
            "Answer Yes or No.\nAnswer:")


def signal_choices(doc: dict | None = None) -> list[str]:
    return list(SIGNAL_CHOICES)


def signal_gold(doc: dict) -> int:
    return int(doc["signal"])


def signal_target(doc: dict) -> str:
    return SIGNAL_CHOICES[signal_gold(doc)]


_SIGNAL_PATTERNS = [(r"\byes\b", 1), (r"\bno\b|\bnot\s+(?:an?\s+)?(?:investment\s+)?signal\b", 0)]


def parse_signal_answer(text: str):
    """1 for yes, 0 for no (the first one the answer says), else ``INVALID``."""
    return _first_match(text, _SIGNAL_PATTERNS)


# ------------------------------------------------------------------ econ_mmlu
def mmlu_prompt(doc: dict) -> str:
    subject = doc["subject"].replace("_", " ")
    lines = [f"The following is a multiple choice question about {subject}.", "", doc["question"].strip()]
    lines += [f"{letter}. {choice}" for letter, choice in zip(MMLU_LETTERS, doc["choices"])]
    lines.append("Answer:")
    return "\n".join(lines)


def mmlu_choices(doc: dict | None = None) -> list[str]:
    return list(MMLU_LETTERS)


def mmlu_gold(doc: dict) -> int:
    return int(doc["answer"])


# ------------------------------------------------------------------ econ_fomc
#: FOMC stance labels (the bundle's codes) and the words the model chooses between
FOMC_LABELS = ["dovish", "hawkish", "neutral"]
FOMC_NAMES = ["Dovish", "Hawkish", "Neutral"]


def fomc_prompt(doc: dict) -> str:
    return (f"Sentence: {doc['text']}\n\n"
            "This sentence is from a US Federal Reserve (FOMC) communication. Which monetary-policy stance does "
            "it express? Hawkish: leaning towards tighter policy (higher rates, less accommodation, worry about "
            "inflation). Dovish: leaning towards easier policy (lower rates, more accommodation, worry about "
            "growth or jobs). Neutral: neither.\n"
            "Answer Hawkish, Dovish or Neutral.\nAnswer:")


def fomc_choices(doc: dict | None = None) -> list[str]:
    return list(FOMC_NAMES)


def fomc_gold(doc: dict) -> int:
    return FOMC_LABELS.index(doc["label"])


def fomc_target(doc: dict) -> str:
    return FOMC_NAMES[fomc_gold(doc)]


_FOMC_PATTERNS = [(r"\bhawk", "hawkish"), (r"\bdov", "dovish"), (r"\bneutral", "neutral")]


def parse_fomc_answer(text: str) -> str:
    """The first stance the answer names (hawkish, dovish, neutral), or ``INVALID``."""
    return _first_match(text, _FOMC_PATTERNS)


# ------------------------------------------------------------------ econ_fpb (financial sentiment)
#: sentiment labels (the bundle's codes) and the words the model chooses between
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
SENTIMENT_NAMES = ["Negative", "Neutral", "Positive"]


def fpb_prompt(doc: dict) -> str:
    return (f"Sentence: {doc['text']}\n\n"
            "What is the sentiment of this sentence from financial news for an investor in the company it "
            "is about: its likely effect on the share price?\n"
            "Answer Negative, Neutral or Positive.\nAnswer:")


def fiqasa_prompt(doc: dict) -> str:
    """FiQA task 1 (aspect sentiment): the target is named, as one text can carry two targets' sentiments."""
    kind = "headline" if doc.get("type") == "headline" else "post"
    return (f"{kind.capitalize()}: {doc['text']}\n\n"
            f"What is the sentiment of this financial {kind} towards {doc['target']}?\n"
            "Answer Negative, Neutral or Positive.\nAnswer:")


def sentiment_choices(doc: dict | None = None) -> list[str]:
    return list(SENTIMENT_NAMES)


def sentiment_gold(doc: dict) -> int:
    return SENTIMENT_LABELS.index(doc["label"])


def sentiment_target(doc: dict) -> str:
    return SENTIMENT_NAMES[sentiment_gold(doc)]


_SENTIMENT_PATTERNS = [(r"\bnegative\b|\bbearish\b", "negative"), (r"\bneutral\b", "neutral"),
                       (r"\bpositive\b|\bbullish\b", "positive")]


def parse_sentiment_answer(text: str) -> str:
    """The first sentiment the answer names (negative, neutral, positive), or ``INVALID``."""
    return _first_match(text, _SENTIMENT_PATTERNS)


# ------------------------------------------------------------------ econ_headlines (yes/no per question type)
def headlines_prompt(doc: dict) -> str:
    return (f"Headline: {doc['text']}\n\n"
            f"{doc['question']} This headline is about the gold market.\n"
            "Answer Yes or No.\nAnswer:")


def yes_no_gold(doc: dict) -> int:
    return int(doc["label"])


def yes_no_target(doc: dict) -> str:
    return SIGNAL_CHOICES[yes_no_gold(doc)]


# ------------------------------------------------------------------ econ_tatqa (numeric QA over a table + text)
#: how a scale is written after a number in a reference answer (and asked for in the prompt)
TATQA_SCALE_SUFFIX = {"": "", "thousand": " thousand", "million": " million", "billion": " billion", "percent": "%"}


def tatqa_prompt(doc: dict) -> str:
    """A TAT-QA question over its report excerpt: the table (cells separated by " | "), then the paragraphs."""
    table = "\n".join(" | ".join(row) for row in doc["table"] if any(cell for cell in row))
    text = "\n".join(p for p in doc["paragraphs"] if p)
    return (f"Table:\n{table}\n\nText:\n{text}\n\nQuestion: {doc['question']}\n"
            "Answer with the answer only: a number with its scale (thousand, million, billion, or % for a "
            "percentage) when it has one, a phrase from the table or text, or several phrases separated by "
            "\";\".\nAnswer:")


def tatqa_target(doc: dict) -> str:
    """The reference answer as the prompt asks for it: spans joined by "; ", a number with its scale."""
    if doc["answer_type"] in ("span", "multi-span"):
        return "; ".join(doc["answer"])
    return f"{doc['answer'][0]}{TATQA_SCALE_SUFFIX[doc['scale']]}"


#: every string label set of the suite: a multi-class metric scores against the set its gold labels belong to
LABEL_SETS = (CLASS_LABELS, FOMC_LABELS, SENTIMENT_LABELS)


# ------------------------------------------------------------------ shared
def _first_match(text: str, patterns):
    if not isinstance(text, str):
        return INVALID
    best_pos, best = None, INVALID
    low = text.lower()
    for pattern, label in patterns:
        m = re.search(pattern, low)
        if m and (best_pos is None or m.start() < best_pos):
            best_pos, best = m.start(), label
    return best

