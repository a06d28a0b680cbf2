"""Where command output goes and how wide it may be.

In a terminal, output fits the terminal (rich measures it, ``COLUMNS`` overrides). Piped or
redirected output has no width to fit: tables come out at their natural width and prose is not
wrapped, so nothing is padded to an arbitrary width; an explicit ``COLUMNS`` is still honoured
as the limit. Text that came from data (names, descriptions, paths, errors) is printed as
:class:`rich.text.Text`, never parsed as rich markup.
"""

from __future__ import annotations

import os
import textwrap

from rich.console import Console
from rich.style import Style
from rich.text import Text

#: The width of a console without a limit: wider than any table ltrank prints.
UNLIMITED = 10_000


def make_console(stderr: bool = False) -> Console:
    """A console for one command's output (stdout, or stderr with ``stderr``)."""
    console = Console(stderr=stderr, highlight=False)
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return console
    return Console(stderr=stderr, highlight=False, width=UNLIMITED)


def wrap_width(console: Console) -> int | None:
    """The width prose should wrap at, or None when there is no limit (piped output)."""
    return None if console.width >= UNLIMITED else console.width


def wrapped(text: str, width: int | None, first: str = "", rest: str = "") -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken at spaces only.

    ``first`` starts the first line (e.g. ``"paper: "``) and ``rest`` indents the others. Words
    are never split, at hyphens neither; a word longer than the line stays whole. With
    ``width`` None the text is one line.
    """
    words = " ".join(text.split())
    if width is None:
        return [first + words]
    return textwrap.wrap(words, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def print_lines(console: Console, lines: list[str], style: str | Style = "") -> None:
    """Print already wrapped lines as plain text (no markup, no re-wrapping)."""
    for line in lines:
        console.print(Text(line, style=style), soft_wrap=True)
