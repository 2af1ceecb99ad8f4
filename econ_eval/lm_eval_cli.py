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

    from lm_eval.__main__ import cli_evaluate

    from . import hf_prefix_shared  # noqa: F401  (registers the econ-hf model)
    from .io import DataError

    try:
        cli_evaluate()
    except DataError as exc:
        print(f"econ-eval: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\nlm_eval interrupted; no results were written", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
