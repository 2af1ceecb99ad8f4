"""``python -m econ_eval.lm_eval_cli ARGS``: lm-eval's own command line, with the ``econ-hf`` backend registered.

Every ``lm_eval`` argument works as documented by lm-eval; the only addition is ``--model econ-hf``
(:mod:`econ_eval.fast_hf`), which ``lm_eval`` itself cannot see because it does not load plugins.
"""

from __future__ import annotations


def main() -> None:
    """Register ``econ-hf`` and hand over to ``lm_eval``'s command line."""
    from lm_eval.__main__ import cli_evaluate

    from . import fast_hf  # noqa: F401  (registers the econ-hf model)

    cli_evaluate()


if __name__ == "__main__":
    main()
