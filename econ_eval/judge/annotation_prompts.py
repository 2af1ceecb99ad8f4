"""Annotation prompts: the data-making side of the judge (``econ-eval annotate qa|signal``).

The task definitions follow the project's annotation briefs (``shared/data/annotations/*_brief.md``), so
new data matches the format of the shipped annotations. Versioned like the rubrics
(``ANNOTATE_PROMPT_VERSION`` is part of every cache key).
"""

from __future__ import annotations

ANNOTATE_PROMPT_VERSION = "1"

QA_TYPES = ("contribution", "method", "data", "finding", "setting", "definition", "implication")
QA_ANSWER_MAX_WORDS = 45

QA_PAIRS_SCHEMA = {
    "type": "object",
    "properties": {"pairs": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
        "type": "object",
        "properties": {"question": {"type": "string", "maxLength": 400},
                       "answer": {"type": "string", "maxLength": 400},
                       "evidence": {"type": "string", "maxLength": 1500},
                       "type": {"type": "string", "enum": list(QA_TYPES)}},
        "required": ["question", "answer", "evidence", "type"]}}},
    "required": ["pairs"],
}

SIGNAL_LABEL_SCHEMA = {
    "type": "object",
    "properties": {"signal": {"type": "integer", "enum": [0, 1]},
                   "landmark": {"type": "integer", "enum": [0, 1]},
                   "reason": {"type": "string", "maxLength": 120}},
    "required": ["signal", "landmark", "reason"],
}

_QA_ANNOTATOR = f"""You are an expert economist writing a benchmark. For the economics paper below, write TWO
question-answer pairs a researcher might ask, answerable from the abstract alone.
- question: self-contained and specific: name the paper's subject, setting or method so the paper could be found
  among thousands of abstracts from the question alone; never "this paper" or "the authors" without saying which;
  do not copy the title; do not put the answer in the question.
- answer: correct and fully supported by the abstract; one or two sentences, at most {QA_ANSWER_MAX_WORDS} words,
  plain text (write LaTeX such as $\\beta$ in words).
- evidence: the sentence(s) of the abstract that support the answer, copied VERBATIM.
- type: one of {", ".join(QA_TYPES)}. The two pairs ask about different things (prefer concrete findings,
  methods, data and settings).
If the abstract is too thin for two good questions, return one pair.
Reply with JSON only: {{"pairs": [{{"question": ..., "answer": ..., "evidence": ..., "type": ...}}, ...]}}"""

_SIGNAL_ANNOTATOR = """You are an experienced buy-side financial analyst labelling 1987 Reuters stories.
signal = 1 if the story reports a NEW, MATERIAL, NON-ROUTINE event an investor would act on because it is likely
to move a company's securities, a sector, a commodity, a currency or a market: announced takeover bids, mergers,
large stake purchases; earnings surprises, profit warnings, dividend cuts or unusual special dividends; credit-rating
changes, defaults, bankruptcies, rescues; central-bank or government policy DECISIONS (rates, currency
intervention, taxes, tariffs, quotas, deregulation); supply or demand shocks (OPEC decisions, strikes, embargoes,
discoveries); major contracts, approvals, restructurings; macro data that surprised markets.
signal = 0 for routine or informational items: plain results tables, usual dividends, bond/note issues, tenders
and auctions, money-market operations, routine statistics, price quotes and market wraps, forecasts and
commentary, minor appointments, small deals, denied rumours.
landmark = 1 only for exceptional news that later showed lasting impact for a sector, an economy or the world
(the story that reports the event itself); every landmark is also a signal; usually 0.
Reply with JSON only: {"signal": 0 or 1, "landmark": 0 or 1, "reason": "<= 15 words"}"""


def annotate_qa_messages(paper: dict) -> list[dict]:
    """Messages asking for two QA pairs about one paper (``title``, ``abstract``)."""
    return [{"role": "system", "content": _QA_ANNOTATOR},
            {"role": "user", "content": f"Title: {paper['title']}\n\nAbstract: {paper['abstract']}"}]


def annotate_signal_messages(story: dict, story_chars: int = 600) -> list[dict]:
    """Messages asking for the signal/landmark labels of one story (``date``, ``title``, ``text``)."""
    text = " ".join(str(story.get("text", "")).split())[:story_chars]
    return [{"role": "system", "content": _SIGNAL_ANNOTATOR},
            {"role": "user", "content": f"Date: {story.get('date', '')}\nHeadline: {story['title']}\nStory: {text}"}]
