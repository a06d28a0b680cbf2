"""Small text helpers shared by everything that shows words to people: counts, plurals, short
summaries of long descriptions, and name patterns.

One style everywhere: counts get a comma as thousands separator (``12,406``), a count and its
noun agree (``1 epoch``, ``2 epochs``), and a shortened text ends in one ``…``.
"""

from __future__ import annotations

import fnmatch
import re

ELLIPSIS = "…"
WILDCARDS = frozenset("*?[")


def count(n: int) -> str:
    """``12406`` -> ``'12,406'``: the thousands separator every ltrank listing uses."""
    return f"{n:,}"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``plural(1, 'epoch')`` -> ``'1 epoch'``; ``plural(12406, 'image')`` -> ``'12,406 images'``.

    ``plural_form`` is for nouns that do not just take an ``s`` (``plural(3, 'loss', 'losses')``).
    """
    word = singular if n == 1 else (plural_form or singular + "s")
    return f"{count(n)} {word}"


def has_wildcard(pattern: str) -> bool:
    """Whether ``pattern`` uses fnmatch syntax (``*``, ``?`` or ``[...]``)."""
    return any(ch in WILDCARDS for ch in pattern)


def name_matches(name: str, pattern: str | None) -> bool:
    """Whether a listing with ``pattern`` shows ``name``, ignoring case.

    No pattern shows everything. A pattern with a wildcard is an fnmatch pattern over the whole
    name (``ap*``); a pattern without one is a substring (``cbdelta`` finds
    ``cifar10-ir100-cbdelta-progressive``), since a bare word rarely names an entry exactly.
    """
    if not pattern:
        return True
    if has_wildcard(pattern):
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return pattern.lower() in name.lower()


_SENTENCE_END = re.compile(r"[;.](?=\s)")  # "; " or ". " ends the first sentence or clause
_CLAUSE_BREAKS = (", ", ": ", " (", " - ")


def summary(text: str, limit: int = 80) -> str:
    """The first sentence or clause of ``text``, at most ``limit`` characters, for one table cell.

    Cut at the first ``; `` or ``. `` outside parentheses; if that is still longer than
    ``limit``, cut again at the last ``, `` / ``: `` / `` (`` / `` - `` outside parentheses that
    fits, else at the last space that fits. Words are never split (a single word longer than
    ``limit`` is kept whole). Anything removed is replaced by one trailing ``…``; a text that
    fits whole comes back unchanged (whitespace collapsed).
    """
    words = " ".join(text.split())
    head = _first_clause(words)
    if len(head) > limit:
        head = _fit(head, limit - len(ELLIPSIS))
    head = head.rstrip(" ,;:.-(")
    return words if head == words else head + ELLIPSIS


def _depths(text: str) -> list[int]:
    """Parenthesis depth before each character."""
    depth, out = 0, []
    for ch in text:
        out.append(depth)
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        depth = max(depth, 0)
    return out


def _first_clause(text: str) -> str:
    depth = _depths(text)
    for m in _SENTENCE_END.finditer(text):
        if depth[m.start()] == 0 and not _is_abbreviation(text, m.start()):
            return text[: m.start()]
    return text


def _is_abbreviation(text: str, dot: int) -> bool:
    """``e.g.``, ``i.e.``, ``et al.``, ``eq.``, ``eqs.``: a dot that does not end a sentence."""
    if text[dot] != ".":
        return False
    word = text[:dot].rsplit(" ", 1)[-1].lower()
    return word in {"e.g", "i.e", "al", "eq", "eqs", "cf", "vs", "fig", "sec"}


def _fit(text: str, width: int) -> str:
    depth = _depths(text)
    cuts = [i for sep in _CLAUSE_BREAKS for i in _find_all(text, sep) if 0 < i <= width and depth[i] == 0]
    if cuts:
        return text[: max(cuts)]
    space = text.rfind(" ", 0, width + 1)
    if space > 0:
        return text[:space]
    end = text.find(" ")
    return text if end < 0 else text[:end]  # one long first word: keep it whole


def _find_all(text: str, sep: str) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(sep), text)]
