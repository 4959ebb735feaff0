"""Command-line parsing shared by ``backfill-lab`` and ``backfill-grader``: one-line errors.

argparse prints a usage block and a message; learners and CI logs are better served by one line
that says what was wrong, what was received, and the closest valid name.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import NoReturn

from ..errors import did_you_mean

__all__ = ["OneLineParser", "UsageError"]


class UsageError(Exception):
    """A command line that cannot run: reported in one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` with a "Did you mean" hint.

    ``commands`` (set on the top-level parser) are the subcommand names suggestions come from.
    """

    commands: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` with one line instead of printing usage and exiting."""
        if message.startswith("argument command: invalid choice"):
            bad = message.split("'")[1] if "'" in message else ""
            message = f"unknown command {bad!r}.{did_you_mean(bad, self.commands)}"
        elif "invalid choice" in message:
            found = re.findall(r"'([^']*)'", message)
            if found:
                message = f"{message}{did_you_mean(found[0], found[1:])}"
        elif "unrecognized arguments" in message:
            bad = message.split(":", 1)[1].strip().split()[0]
            flags = [a for p in self._actions for a in p.option_strings]
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for sub in action.choices.values():
                        flags += [a for p in sub._actions for a in p.option_strings]
            message = f"unknown option {bad!r}.{did_you_mean(bad, flags)}"
        raise UsageError(f"{message} (see '{self.prog} --help')")
