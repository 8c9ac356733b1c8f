"""Entry point of `tc`: parse, call one operation, report its result, set the exit code in one place."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from opslab.cli.parser import build_parser
from opslab.cli.reporter import Reporter
from opslab.errors import OpsLabError, exit_code_of

def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tc`: parse, call one operation, report its result, return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    report = Reporter("--json" in argv)  # before parsing, so a usage error is JSON too; parsing then decides
    want_trace = "--traceback" in argv or os.environ.get("TC_DEBUG") == "1"
    try:
        args = build_parser(argv).parse_args(argv)
        report.json = args.json
        result = args.handler(args, report)
    except KeyboardInterrupt:
        report.error("interrupted", 130)
        return 130
    except Exception as exc:  # the one place an error becomes an exit code (unexpected ones: 1)
        if want_trace and not isinstance(exc, OpsLabError):
            import traceback

            traceback.print_exc()
        code = exit_code_of(exc)
        text = str(exc) if isinstance(exc, OpsLabError) else f"unexpected {type(exc).__name__}: {exc} (rerun with --traceback for details)"
        report.error(text, code)
        return code
    report.result(result)
    return exit_code_of(result)



def entry() -> None:
    """`tc` and `python -m opslab`: main(), then exit with its code. A process that gave up a pyarrow CSV reader mid-file
    (a refused line; opslab.datasets.imports.ABANDONED_READER) ends with os._exit once its output is flushed: pyarrow's
    read-ahead thread pool, torn down by the interpreter's finalization, can abort the process then (SIGABRT, exit 134
    after the right message and files). Everything it writes is closed by then; nothing else runs at exit."""
    code = main()
    imports = sys.modules.get("opslab.datasets.imports")
    if imports is not None and getattr(imports, "ABANDONED_READER", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
