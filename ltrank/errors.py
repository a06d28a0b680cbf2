"""User-facing errors.

Anything a user can fix (a typo, a missing file, a bad value) is raised as
:class:`LtrankError` with a one-line message that says what is wrong and how to fix it.
The CLI prints it on stderr and exits with code 2; library users get a normal exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LtrankError(Exception):
    """A problem the user can fix; the message is one line: what is wrong, and the fix."""

    exit_code = 2


class RunFailed(Exception):
    """A run that started but did not finish (diverged, interrupted); exit code 1."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
