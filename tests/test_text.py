"""ltrank.text: counts, plurals, one-cell summaries and name patterns."""

from __future__ import annotations

import pytest

from ltrank.text import count, name_matches, plural, summary


@pytest.mark.parametrize("n, expected", [(0, "0"), (999, "999"), (1000, "1,000"), (12406, "12,406"), (1234567, "1,234,567")])
def test_count_uses_a_comma_for_thousands(n, expected):
    assert count(n) == expected


@pytest.mark.parametrize("n, args, expected", [
    (1, ("epoch",), "1 epoch"),
    (2, ("epoch",), "2 epochs"),
    (0, ("epoch",), "0 epochs"),
    (1, ("loss", "losses"), "1 loss"),
    (3, ("loss", "losses"), "3 losses"),
    (12406, ("image",), "12,406 images"),
    (1, ("class", "classes"), "1 class"),
])
def test_plural_agrees_with_the_count(n, args, expected):
    assert plural(n, *args) == expected


@pytest.mark.parametrize("name, pattern, shown", [
    ("cifar10-ir100-cbdelta-progressive", None, True),
    ("cifar10-ir100-cbdelta-progressive", "", True),
    ("cifar10-ir100-cbdelta-progressive", "cbdelta", True),  # no wildcard: a substring
    ("cifar10-ir100-cbdelta-progressive", "CBDelta", True),  # case is ignored
    ("cifar10-ir100-cbdelta-progressive", "cbdelta*", False),  # a wildcard: the whole name
    ("cifar10-ir100-cbdelta-progressive", "*cbdelta*", True),
    ("ap_cb_delta", "ap?cb*", True),
    ("ap_cb_delta", "[ab]p_cb_delta", True),
    ("ap_cb_delta", "focal", False),
])
def test_name_matches_substring_without_wildcards_fnmatch_with(name, pattern, shown):
    assert name_matches(name, pattern) is shown


def _words_intact(short: str, full: str) -> bool:
    kept = short.removesuffix("…").split()
    return full.split()[: len(kept) - 1] == kept[:-1] and full.split()[len(kept) - 1].startswith(kept[-1])


@pytest.mark.parametrize("text, limit, expected", [
    ("cross-entropy; class weights use PyTorch's weighted mean", 80, "cross-entropy…"),
    ("First sentence. Second one", 80, "First sentence…"),
    ("see e.g. this table. Then more", 80, "see e.g. this table…"),  # e.g. does not end a sentence
    ("linear blend (t=0; t=T), thesis eq. 4.1", 80, "linear blend (t=0; t=T), thesis eq. 4.1"),  # ; inside ()
    ("AP Loss with CB Delta: class-dependent step width delta * w or delta / w (thesis section 3.2)", 60,
     "AP Loss with CB Delta…"),
    ("sigmoid focal loss over all entries, summed over the batch, no alpha at all here", 50,
     "sigmoid focal loss over all entries…"),
    ("no boundaries at all in this rather long description text", 30, "no boundaries at all in this…"),
    ("short enough", 80, "short enough"),
    ("  spaces   are \n collapsed ", 80, "spaces are collapsed"),
    ("supercalifragilisticexpialidocious and more", 10, "supercalifragilisticexpialidocious…"),
])
def test_summary_cuts_at_a_sentence_or_clause_never_inside_a_word(text, limit, expected):
    short = summary(text, limit)
    assert short == expected
    assert len(short) <= limit or " " not in short.strip("…")
    if short.endswith("…"):
        assert _words_intact(short, " ".join(text.split()))
