"""``python -m econ_eval.lm_eval_cli ARGS``: lm-eval's own command line, with the ``econ-hf`` backend registered.

Every ``lm_eval`` argument works as documented by lm-eval; the only addition is ``--model econ-hf``
(:mod:`econ_eval.hf_prefix_shared`), which ``lm_eval`` itself cannot see because it does not load plugins.
"""

from __future__ import annotations


def main() -> None:
    """Register ``econ-hf`` and hand over to ``lm_eval``'s command line.

    A data problem (no bundle, a bundle that fails its MANIFEST check) ends with one clear line and exit
    code 2 instead of the last line of a long traceback.
    """
    import sys

    from .io import DataError

    try:  # a Ctrl-C while lm-eval and torch are still being imported ends the same clean way
        from lm_eval.__main__ import cli_evaluate

        from . import hf_prefix_shared  # registers the econ-hf model

        hf_prefix_shared.preview_run_tasks()  # econ-hf answers _gen twins during the log-likelihood pass

        if only_econ_tasks(sys.argv[1:]):
            skip_lm_eval_task_index()
        take_more_threads_on_sigusr1()
        cli_evaluate()
    except DataError as exc:
        print(f"econ-eval: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\nlm_eval interrupted; no results were written", file=sys.stderr)
        sys.exit(130)


#: environment variable: the torch threads this run switches to on SIGUSR1 (set by econ_eval/evaluate.py)
THREADS_WHEN_ALONE_ENV = "ECON_EVAL_THREADS_WHEN_ALONE"


def take_more_threads_on_sigusr1() -> None:
    """With ``ECON_EVAL_THREADS_WHEN_ALONE=N`` (set by the quickstart for runs side by side), SIGUSR1 sets torch
    to N threads: the run beside this one finished and its cores are free. The parent starts this process
    with SIGUSR1 blocked (a signal sent earlier waits); it is unblocked once the handler is in place."""
    import atexit
    import os
    import signal
    import sys

    target = os.environ.get(THREADS_WHEN_ALONE_ENV)
    if not target or not hasattr(signal, "SIGUSR1"):
        return

    def grow(_signum, _frame):
        import torch

        torch.set_num_threads(int(target))
        print(f"\necon-eval: the run beside this one finished: {target} threads from here", file=sys.stderr,
              flush=True)

    signal.signal(signal.SIGUSR1, grow)
    # at exit, ignore it: Python's shutdown puts SIGUSR1 back to its default action (terminate) after the exit
    # functions, so a signal sent as lm_eval is finishing (both runs ending together) killed it with code -10
    # and its results were lost; an ignored signal stays ignored to the end
    atexit.register(signal.signal, signal.SIGUSR1, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})


def only_econ_tasks(argv: list[str]) -> bool:
    """Whether ``--tasks`` names only this project's tasks and groups (``econ``, ``econ_*``, ``econlite``...)."""
    names = []
    for i, arg in enumerate(argv):
        if arg == "--tasks" and i + 1 < len(argv):
            names += argv[i + 1].split(",")
        elif arg.startswith("--tasks="):
            names += arg.split("=", 1)[1].split(",")
    return bool(names) and all(n.strip().startswith("econ") for n in names)


def skip_lm_eval_task_index() -> None:
    """Let lm-eval's TaskManager index only ``--include_path`` (our tasks), not its ~14,700 built-in task
    configs: 7.7 s of every run's start-up on the 2-core machine, twice as long for two runs side by side."""
    import lm_eval.tasks

    class IncludePathOnly(lm_eval.tasks.TaskManager):
        def __init__(self, *args, include_defaults: bool = False, **kwargs):
            super().__init__(*args, include_defaults=include_defaults, **kwargs)

    lm_eval.tasks.TaskManager = IncludePathOnly


if __name__ == "__main__":
    main()
