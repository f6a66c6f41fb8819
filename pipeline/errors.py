"""The one error type a user can cause, and the exit codes the CLI maps errors to."""

from __future__ import annotations

# Exit codes of `edgeaudit`. A crash (an uncaught exception) exits 1, as Python does.
EXIT_OK = 0
EXIT_CRASH = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3


class InputError(ValueError):
    """Bad input from the user: a file, a column, a value or an option.

    The message says what happened, names the file / column / value, and says how
    to fix it. The CLI prints it without a traceback and exits with EXIT_BAD_INPUT.
    """

    def __init__(self, problem: str, *, fix: str, source: str | None = None):
        self.problem = problem
        self.fix = fix
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{problem}\n  How to fix: {fix}")
