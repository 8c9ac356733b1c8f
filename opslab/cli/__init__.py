"""The `tc` command line: parser.py (the command tree), commands.py (one handler per command), reporter.py
(text or JSON), main.py (parse -> one operation -> report -> exit code)."""

from opslab.cli.main import entry, main
from opslab.cli.parser import build_parser

__all__ = ["build_parser", "entry", "main"]
