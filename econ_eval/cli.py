"""``econ-eval`` command line: data, models, evaluate, calibrate-batch, quickstart, finetune, baselines,
leaderboard, judge, drift, ragas, serve-judge, annotate, tasks-path, space, report.

Each subcommand's parser and handler live with the module that does the work (``add_cli(subparsers)``);
this file only assembles them, in the order ``--help`` lists them, and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__, baselines, calibrate, drift, evaluate, leaderboard, models, quickstart, report, tasks
from .data import build as data_build
from .finetune import train as finetune
from .judge import annotate, ragas_scores, server
from .judge import run as judge
from .space import export as space_export

#: the modules that add subcommands, in the order of `econ-eval --help`
COMMAND_MODULES = (data_build, models, evaluate, calibrate, quickstart, finetune, baselines, leaderboard, drift, judge, ragas_scores,
                   server, annotate, tasks, space_export, report)


def build_parser() -> argparse.ArgumentParser:
    """The whole `econ-eval` parser."""
    parser = argparse.ArgumentParser(prog="econ-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"econ-eval {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``econ-eval`` console script."""
    from .io import DataError, Interrupted, RunRejected

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Interrupted as exc:  # Ctrl-C after saving what was done
        print(f"econ-eval: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\necon-eval: interrupted; nothing half-written was kept (files are written atomically)",
              file=sys.stderr)
        return 130
    except RunRejected as exc:  # a leaderboard refusal: exit 1, the reasons on stderr
        print(f"econ-eval: {exc}", file=sys.stderr)
        return 1
    except (DataError, FileExistsError, KeyError, RuntimeError, ValueError, TimeoutError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"econ-eval: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
