"""The task registry: every econ-eval task described ONCE.

Evaluation, the data build, fine-tuning, baselines, judge/RAGAS, leaderboard, report and the Space read
this registry instead of keeping their own lists. A task's lm-eval YAML (``tasks/econ/<name>.yaml``)
says how lm-eval runs it; a test keeps the YAML and its entry here in agreement (name, bundle folder,
output type, prompt function, headline metric, prompt version).

Adding a task = one :class:`TaskSpec` here + one short YAML + its prompt (``prompts.py``) and its data
builder (``data/``).
"""

from __future__ import annotations

from . import config

from dataclasses import dataclass, replace
from typing import Callable

from . import metrics, prompts
from .io import DataError
from .prompts import CLASS_LABELS, CLASS_NAMES, SIGNAL_CHOICES


def _macro_f1_of_uniform_guessing(counts: dict) -> float:
    """Expected macro F1 of guessing each of k classes uniformly, given the test label counts."""
    n, k = sum(counts.values()), len(counts)
    return sum(2 * (c / n) * (1 / k) / (c / n + 1 / k) for c in counts.values()) / k


def _abstract_doc(text: str, question: str = "") -> dict:
    return {"abstract": text}


def _qa_doc(text: str, question: str = "") -> dict:
    if not (question or "").strip():
        raise DataError("question answering needs a question as well as the context")
    return {"abstract": text, "question": question.strip()}


def _story_doc(text: str, question: str = "") -> dict:
    head, _, body = text.partition("\n")
    return {"date": "", "title": head.strip(), "text": body.strip() or head.strip()}


def _positive_f1_of_coin_flips(counts: dict) -> float:
    """Expected F1 of the positive class ("1") when guessing yes/no with equal probability."""
    p = counts.get("1", 0) / sum(counts.values())
    return 2 * p * 0.5 / (p + 0.5)


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task of the suite and everything the rest of econ-eval needs to know about it."""

    name: str
    bundle_task: str                      # the bundle folder its documents come from
    output_type: str                      # "multiple_choice" | "generate_until"
    prompt: Callable[[dict], str]         # the task's input text (the YAML's doc_to_text)
    target: Callable[[dict], str]         # the reference answer as text (generation target, training completion)
    metrics: tuple[str, ...]              # metrics shown in tables, headline first
    title: str                            # a short column title
    parse: Callable[[str], object] | None = None    # answer parser of a classification answered in words
    label_field: str | None = None        # the doc field with the gold label (classification tasks)
    labels: tuple = ()                    # gold label values, in the order of the choices
    label_names: tuple[str, ...] = ()     # what each label is called in answers
    random_score: Callable[[dict], float] | float = 0.0   # headline score of uniform guessing (given test counts)
    in_suite: bool = True                 # a member of the `econ` group (the leaderboard suite)
    lite_of: str | None = None            # an `econlite` task: the full task it subsamples (econ_eval/lite.py)
    on_leaderboard: bool = False          # one column of the leaderboard (one per task family)
    trainable: bool = False               # offered to fine-tuning mixtures
    baselines: bool = False               # classic baselines run on it
    judge_metrics: tuple[str, ...] = ()   # LLM-judge rubrics that apply to its generations
    ragas: bool = False                   # RAGAS scores apply to its generations
    retrieval_corpus: bool = False        # its papers feed the econ_qa_rag retrieval corpus
    demo_label: str | None = None         # shown in the Space's Compare tab under this name
    baseline_text: Callable[[dict], str] | None = None   # what a classic baseline reads
    doc_from_text: Callable[[str, str], dict] | None = None  # a doc from pasted text (+ question), for the Space
    clean_answer: Callable[[str], str] = str.strip       # the part of a generation that is scored

    @property
    def headline(self) -> str:
        """The headline metric (the task's `score`)."""
        return self.metrics[0]

    @property
    def is_classification(self) -> bool:
        return self.label_field is not None

    def gold_label(self, doc: dict):
        """The gold label of a classification document (a code such as econ.EM, or 0/1)."""
        value = doc[self.label_field]
        return int(value) if isinstance(self.labels[0], int) else value

    def label_name(self, label) -> str:
        """How a label reads in an answer ("Econometrics", "Yes"); invalid answers stay as they are."""
        return self.label_names[self.labels.index(label)] if label in self.labels else str(label)

    def random_headline(self, test_label_counts: dict | None = None) -> float:
        """Expected headline score of uniform random guessing on a test set with these label counts."""
        if callable(self.random_score):
            return self.random_score(test_label_counts or {})
        return float(self.random_score)


def _classify(name: str, output_type: str, **kw) -> TaskSpec:
    gen = output_type == "generate_until"
    return TaskSpec(name=name, bundle_task="econ_classify", output_type=output_type, prompt=prompts.classify_prompt,
                    target=prompts.classify_target, title="Classify macro-F1",
                    metrics=("macro_f1", "acc", "invalid_rate") if gen else ("macro_f1", "acc", "weighted_f1", "mcc"),
                    parse=prompts.parse_class_answer, label_field="label", labels=tuple(CLASS_LABELS),
                    label_names=tuple(CLASS_NAMES), random_score=_macro_f1_of_uniform_guessing,
                    baseline_text=lambda doc: doc["abstract"], doc_from_text=_abstract_doc, **kw)


def _signal(name: str, output_type: str, **kw) -> TaskSpec:
    gen = output_type == "generate_until"
    return TaskSpec(name=name, bundle_task="econ_signal", output_type=output_type, prompt=prompts.signal_prompt,
                    target=prompts.signal_target, title="Signal F1",
                    metrics=("f1", "acc", "invalid_rate") if gen else ("f1", "acc", "precision", "recall", "mcc"),
                    parse=prompts.parse_signal_answer, label_field="signal", labels=(0, 1),
                    label_names=tuple(SIGNAL_CHOICES), random_score=_positive_f1_of_coin_flips,
                    baseline_text=lambda doc: f"{doc['title']}\n{doc['text'][: prompts.SIGNAL_STORY_CHARS]}",
                    doc_from_text=_story_doc, **kw)


def _text_doc(text: str, question: str = "") -> dict:
    return {"text": text}


def _sentence(name: str, bundle_task: str, output_type: str, *, title: str, prompt, target, parse, labels, names,
              **kw) -> TaskSpec:
    """A 3-class sentence classification (FOMC stance, financial sentiment): macro F1 headline, weighted F1
    (what FinBen and the FOMC paper report) next to it."""
    gen = output_type == "generate_until"
    return TaskSpec(name=name, bundle_task=bundle_task, output_type=output_type, prompt=prompt, target=target,
                    title=title, metrics=("macro_f1", "weighted_f1", "acc", "invalid_rate") if gen
                    else ("macro_f1", "weighted_f1", "acc", "mcc"), parse=parse, label_field="label",
                    labels=tuple(labels), label_names=tuple(names), random_score=_macro_f1_of_uniform_guessing,
                    baseline_text=lambda doc: doc["text"], doc_from_text=_text_doc, **kw)


def _fomc(name: str, output_type: str, **kw) -> TaskSpec:
    return _sentence(name, "econ_fomc", output_type, title="FOMC macro-F1", prompt=prompts.fomc_prompt,
                     target=prompts.fomc_target, parse=prompts.parse_fomc_answer, labels=prompts.FOMC_LABELS,
                     names=prompts.FOMC_NAMES, **kw)


def _fpb(name: str, output_type: str, **kw) -> TaskSpec:
    return _sentence(name, "econ_fpb", output_type, title="FPB macro-F1", prompt=prompts.fpb_prompt,
                     target=prompts.sentiment_target, parse=prompts.parse_sentiment_answer,
                     labels=prompts.SENTIMENT_LABELS, names=prompts.SENTIMENT_NAMES, **kw)


def _fiqasa(name: str, output_type: str, **kw) -> TaskSpec:
    return _sentence(name, "econ_fiqasa", output_type, title="FiQA-SA macro-F1", prompt=prompts.fiqasa_prompt,
                     target=prompts.sentiment_target, parse=prompts.parse_sentiment_answer,
                     labels=prompts.SENTIMENT_LABELS, names=prompts.SENTIMENT_NAMES, **kw)


def _headline_doc(text: str, question: str = "") -> dict:
    return {"text": text, "question": question.strip() or "Does the news headline talk about price going up?"}


def _weighted_f1_of_coin_flips(counts: dict) -> float:
    """Expected support-weighted F1 of guessing yes/no with equal probability (per question type: about 0.5
    whatever the balance; FinBen's avg_f1 averages it over types)."""
    n = sum(counts.values()) or 1
    return sum((c / n) * 2 * (c / n) * 0.5 / (c / n + 0.5) for c in counts.values() if c) if counts else 0.5


def _headlines(name: str, output_type: str, **kw) -> TaskSpec:
    gen = output_type == "generate_until"
    return TaskSpec(name=name, bundle_task="econ_headlines", output_type=output_type, prompt=prompts.headlines_prompt,
                    target=prompts.yes_no_target, title="Headlines avg-F1",
                    metrics=("avg_f1", "acc", "f1", "invalid_rate") if gen else ("avg_f1", "acc", "f1", "mcc"),
                    parse=prompts.parse_signal_answer, label_field="label", labels=(0, 1),
                    label_names=tuple(SIGNAL_CHOICES), random_score=_weighted_f1_of_coin_flips,
                    baseline_text=lambda doc: f"{doc['question']} {doc['text']}", doc_from_text=_headline_doc, **kw)


#: Every task, in the order tables list them.
TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec(name="econ_titles", bundle_task="econ_titles", output_type="generate_until",
             prompt=prompts.titles_prompt, target=prompts.titles_target, title="Titles ROUGE-L",
             metrics=("rougeL", "rouge1", "rouge2", "bleu"), on_leaderboard=True, trainable=True,
             judge_metrics=("title_quality",), retrieval_corpus=True, demo_label="Title generation",
             doc_from_text=_abstract_doc, clean_answer=metrics.clean_generation),
    _classify("econ_classify", "multiple_choice", on_leaderboard=True, trainable=True, baselines=True,
              retrieval_corpus=True, demo_label="Classification"),
    _classify("econ_classify_gen", "generate_until"),
    TaskSpec(name="econ_qa", bundle_task="econ_qa", output_type="generate_until", prompt=prompts.qa_prompt,
             target=prompts.qa_target, title="QA ROUGE-L", metrics=("rougeL", "token_f1"), on_leaderboard=True,
             trainable=True, judge_metrics=("qa_correctness",), ragas=True, retrieval_corpus=True,
             demo_label="Question answering", doc_from_text=_qa_doc),
    _signal("econ_signal", "multiple_choice", on_leaderboard=True, trainable=True, baselines=True,
            demo_label="Investment signal"),
    _signal("econ_signal_gen", "generate_until"),
    TaskSpec(name="econ_mmlu", bundle_task="econ_mmlu", output_type="multiple_choice", prompt=prompts.mmlu_prompt,
             target=lambda doc: prompts.MMLU_LETTERS[prompts.mmlu_gold(doc)], title="MMLU acc", metrics=("acc",),
             random_score=0.25, on_leaderboard=True),
    # monetary-policy stance: the one central-bank task, a member of the `econ` group
    _fomc("econ_fomc", "multiple_choice", on_leaderboard=True, trainable=True, baselines=True,
          demo_label="Monetary-policy stance"),
    _fomc("econ_fomc_gen", "generate_until"),
    TaskSpec(name="econ_qa_rag", bundle_task="econ_qa", output_type="generate_until", prompt=prompts.qa_rag_prompt,
             target=prompts.qa_target, title="RAG QA ROUGE-L", metrics=("rougeL", "token_f1", "hit_rate"),
             in_suite=False, judge_metrics=("qa_correctness",), ragas=True),

    # the finance core of FinBen: the `econfin` group (non-commercial data: CC BY-NC-SA 3.0)
    _fpb("econ_fpb", "multiple_choice", in_suite=False, on_leaderboard=True, trainable=True, baselines=True,
         demo_label="Financial sentiment"),
    _fpb("econ_fpb_gen", "generate_until", in_suite=False),
    _headlines("econ_headlines", "multiple_choice", in_suite=False, on_leaderboard=True, trainable=True,
               baselines=True),
    _headlines("econ_headlines_gen", "generate_until", in_suite=False),
    _fiqasa("econ_fiqasa", "multiple_choice", in_suite=False, on_leaderboard=True, trainable=True, baselines=True),
    _fiqasa("econ_fiqasa_gen", "generate_until", in_suite=False),
    TaskSpec(name="econ_tatqa", bundle_task="econ_tatqa", output_type="generate_until", prompt=prompts.tatqa_prompt,
             target=prompts.tatqa_target, title="TAT-QA F1", metrics=("num_f1", "em"), in_suite=False,
             on_leaderboard=True),
)}


#: The quick suite (``econ_eval/lite.py``): every `econ` task again as ``econlite_<name>``, on a seeded, stratified
#: subset of its test split; outside the ``econ_*`` wildcard and never on the leaderboard.
LITE_PREFIX = "econlite_"
TASKS.update({
    LITE_PREFIX + name.removeprefix("econ_"): replace(
        spec, name=LITE_PREFIX + name.removeprefix("econ_"), in_suite=False, on_leaderboard=False, trainable=False,
        baselines=False, retrieval_corpus=False, demo_label=None, lite_of=name)
    for name, spec in list(TASKS.items()) if spec.in_suite
})


def task(name: str) -> TaskSpec:
    """The spec of a task; an unknown name is a ``KeyError`` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def names(**flags) -> list[str]:
    """Task names whose spec has every given flag value, e.g. ``names(in_suite=True)``."""
    return [t.name for t in TASKS.values() if all(getattr(t, k) == v for k, v in flags.items())]


def multiple_choice_twin(name: str) -> str | None:
    """The multiple-choice task that scores the very prompts a generation task answers (``econ_classify`` for
    ``econ_classify_gen``; both lite or both full), or None. Run together, econ-hf answers the generation
    requests during the twin's log-likelihood pass (``econ_eval/hf_prefix_shared.py``)."""
    spec = task(name)
    if spec.output_type != "generate_until":
        return None
    return next((t.name for t in TASKS.values() if t.output_type == "multiple_choice"
                 and t.bundle_task == spec.bundle_task and t.prompt is spec.prompt
                 and (t.lite_of is None) == (spec.lite_of is None)), None)


def bundle_folders() -> list[str]:
    """Every bundle folder a task reads, in table order."""
    return list(dict.fromkeys(t.bundle_task for t in TASKS.values()))


SUITE_TASKS = names(in_suite=True)
LITE_TASKS = [t.name for t in TASKS.values() if t.lite_of]


def yaml_configs(folder=None) -> dict[str, dict]:
    """Every task YAML under the lm-eval task folder, with ``include:`` templates merged as lm-eval merges
    them (the task's keys over the template's); ``!function`` tags are kept as ``"module.name"`` strings."""
    from pathlib import Path

    import yaml

    from .config import tasks_dir

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!function", lambda loader, suffix, node: loader.construct_scalar(node))

    def load(path: Path) -> dict:
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader) or {}
        includes = cfg.pop("include", None)
        merged: dict = {}
        for inc in [includes] if isinstance(includes, str) else includes or []:
            merged.update(load(path.parent / inc))
        merged.update(cfg)
        return merged

    out = {}
    for path in sorted(Path(folder or tasks_dir()).rglob("*.yaml")):
        cfg = load(path)
        if isinstance(cfg.get("task"), str):
            out[cfg["task"]] = cfg
    return out


def group_members(folder=None) -> dict[str, list[str]]:
    """Every lm-eval group YAML under the task folder (``econ``, ``econfin``, ``econlite``): its member tasks."""
    from pathlib import Path

    import yaml

    from .config import tasks_dir

    out = {}
    for path in sorted(Path(folder or tasks_dir()).rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        cfg = None if "!function" in text else yaml.safe_load(text)  # task YAMLs use tags; groups do not
        if isinstance(cfg, dict) and isinstance(cfg.get("group"), str):
            out[cfg["group"]] = [t for t in cfg.get("task", []) if isinstance(t, str)]
    return out


def _cmd_tasks_path(args) -> int:
    print(config.tasks_dir())
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    tp = sub.add_parser("tasks-path", help="print the lm-eval task folder, for "
                        "`lm_eval --include_path \"$(econ-eval tasks-path)\" --tasks econ ...` (works in a wheel install)")
    tp.set_defaults(func=_cmd_tasks_path)
