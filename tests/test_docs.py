"""The docs are self-contained: every "method.md section N" citation names a section of
docs/method.md, every link into it names a heading there, nothing cites the old spec file users
cannot open, and the numbers docs/method.md states agree with what the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ltrank.data.longtail import class_counts
from ltrank.reference import COLUMNS, load_reference

REPO = Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "method.md"

# Where citations can live: docs, the README, code, recipes, scripts, plugins and the tests.
SCANNED = ("README.md", "pyproject.toml", "docs", "ltrank", "recipes", "benchmarks", "plugins", "tests", ".ci")
TEXT_SUFFIXES = {".md", ".py", ".toml", ".sh", ".txt", ".cfg", ".json", ""}

# This checker's own self-test spells the old name on purpose.
OLD_SPEC_EXEMPT_FILES = {Path(__file__).resolve()}

OLD_SPEC = re.compile(r"\bMETHOD\.md")  # the spec file outside the repository (upper case)
# "method.md section 3", "method.md sections 4-5", across a line break or a comment's "#"
CITATION = re.compile(r"method\.md[\s#]*sections?\s+(\d+)(?:\s*(?:-|–|and|to)\s*(\d+))?", re.IGNORECASE)
LINK = re.compile(r"method\.md#([\w-]+)")


def _text_files() -> list[Path]:
    seen: dict[Path, Path] = {}
    for name in SCANNED:
        top = REPO / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in candidates:
            skip = {"__pycache__", ".pytest_cache"} & set(path.parts) or any(p.endswith(".egg-info") for p in path.parts)
            if path.is_file() and path.suffix in TEXT_SUFFIXES and not skip:
                seen.setdefault(path.resolve(), path)  # ltrank/recipes links to recipes/
    return sorted(seen.values())


def _sections() -> dict[int, str]:
    """Top-level numbered sections of docs/method.md: number -> title."""
    return {int(m[1]): m[2] for m in re.finditer(r"^## (\d+)\. (.+)$", METHOD.read_text(encoding="utf-8"), re.M)}


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m[1]) for m in re.finditer(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)}


def test_method_md_keeps_the_section_numbering_the_citations_use():
    titles = _sections()
    assert list(titles) == [1, 2, 3, 4, 5, 6, 7]
    for number, word in [(1, "Long-tailed CIFAR"), (2, "Head"), (3, "Backbone"), (4, "Class-balanced weights"),
                         (5, "AP Loss"), (6, "Baselines"), (7, "Reference numbers")]:
        assert word in titles[number], titles


def test_the_scan_sees_the_places_citations_live():
    files = {p.relative_to(REPO).as_posix() for p in _text_files()}
    for expected in ("README.md", "docs/method.md", "docs/data.md", "recipes/quickstart.toml",
                     "ltrank/cli/make_dataset.py", "ltrank/losses/ap.py", "pyproject.toml"):
        assert expected in files


def test_every_method_md_citation_names_an_existing_section():
    sections = set(_sections())
    bad, count = [], 0
    for path in _text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in CITATION.finditer(text):
            first, last = int(m[1]), int(m[2] or m[1])
            count += 1
            if not ({first, last} <= sections and first <= last):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(REPO)}:{line}: {' '.join(m[0].split())}")
    assert count > 20  # the pattern does find the citations (README, docs, recipes, code)
    assert not bad, "citations of sections that docs/method.md does not have:\n" + "\n".join(bad)


def test_every_link_into_method_md_names_a_heading_there():
    anchors = _anchors(METHOD)
    bad, count = [], 0
    for path in _text_files():
        for m in LINK.finditer(path.read_text(encoding="utf-8", errors="replace")):
            count += 1
            if m[1] not in anchors:
                bad.append(f"{path.relative_to(REPO)}: #{m[1]}")
    assert count > 5
    assert not bad, f"links to missing headings of docs/method.md (headings: {sorted(anchors)}):\n" + "\n".join(bad)


def test_nothing_cites_the_spec_file_users_cannot_open():
    bad = []
    for path in _text_files():
        if path.resolve() in OLD_SPEC_EXEMPT_FILES:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OLD_SPEC.search(line):
                bad.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not bad, "cite docs/method.md instead:\n" + "\n".join(bad)


def test_the_checkers_catch_what_they_look_for():
    """The patterns above match the forms used in the repository (and would flag a bad one)."""
    cited = [(m[1], m[2]) for m in CITATION.finditer(
        "see METHOD.md section 5; (docs/method.md\n# section 3) and method.md sections 4-5")]
    assert cited == [("5", None), ("3", None), ("4", "5")]
    assert OLD_SPEC.search("as METHOD.md says") and not OLD_SPEC.search("docs/method.md section 1")
    assert _slug("5. AP Loss with the identity update") == "5-ap-loss-with-the-identity-update"
    assert _slug("Groups (method.md section 2)") == "groups-methodmd-section-2"


def _section(number: int) -> str:
    text = METHOD.read_text(encoding="utf-8")
    start = re.search(rf"^## {number}\. .*$", text, re.M)
    end = re.search(rf"^## {number + 1}\. .*$", text, re.M)
    assert start is not None
    return text[start.end(): end.start() if end else len(text)]


def _table_rows(text: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.strip().startswith("|")]
    return [r for r in rows if not set("".join(r)) <= set("-: ")]  # drop the separator rows


def test_reference_numbers_on_the_page_equal_the_shipped_reference():
    reference = load_reference("thesis")
    section = _section(7)
    parts = re.split(r"^#### (.+)$", section, flags=re.M)
    tables = dict(zip(parts[1::2], parts[2::2]))
    for key, table in reference.datasets.items():
        heading = next((h for h in tables if h.startswith(table.title + " ")), None)
        assert heading is not None, f"no table for {table.title} in docs/method.md section 7"
        assert table.tables in heading
        rows = {r[1].strip("`"): r for r in _table_rows(tables[heading])[1:]}
        assert set(rows) == set(table.methods), key
        for method, expected in table.methods.items():
            row = rows[method]
            assert row[0] == expected.label, (key, method)
            for column, cell in zip(COLUMNS, row[2:]):
                want = expected.cell(column)
                if want is None:
                    assert cell == "NA", (key, method, column)
                else:
                    mean, std = (float(v) for v in cell.split("±"))
                    assert (mean, std) == (want.mean, want.std), (key, method, column)
    anchors = {(r[0], r[1]): r[2:] for r in _table_rows(tables["Other published numbers"])[1:]}
    for anchor in reference.anchors:
        row = next(v for (source, label), v in anchors.items() if source.startswith(anchor.source) and label == anchor.label)
        column = 0 if anchor.dataset == "cifar10-ir100" else 1
        assert float(row[column]) == anchor.top1, anchor


@pytest.mark.parametrize("dataset, n_max, num_classes", [("CIFAR-10-LT", 5000, 10), ("CIFAR-100-LT", 500, 100)])
def test_long_tail_sizes_on_the_page_equal_the_construction(dataset, n_max, num_classes):
    rows = [r for r in _table_rows(_section(1)) if r[0] == dataset]
    assert {r[1] for r in rows} == {"100", "50"}
    for _, ratio, total, per_class in rows:
        counts = class_counts(n_max, num_classes, float(ratio), "exp")
        assert int(total.replace(",", "")) == sum(counts)
        shown = [p.strip() for p in per_class.split(",")]
        head = [int(p) for p in shown[: shown.index("...")]] if "..." in shown else [int(p) for p in shown]
        tail = [int(p) for p in shown[shown.index("...") + 1:]] if "..." in shown else []
        assert counts[: len(head)] == head and (not tail or counts[-len(tail):] == tail)


def test_the_plain_loop_example_of_docs_ap_loss_runs():
    """The documented way to drive a class-weighted loss outside the trainer (its epoch hook) works."""
    text = (REPO / "docs" / "ap-loss.md").read_text(encoding="utf-8")
    match = re.search(r"## In a plain PyTorch loop\n\n```python\n(.*?)```", text, re.S)
    assert match, "the example is gone"
    scope: dict = {}
    exec(compile(match.group(1), "docs/ap-loss.md", "exec"), scope)  # noqa: S102 - our own docs
    assert scope["loss_fn"].class_weights.shape == (10,)
