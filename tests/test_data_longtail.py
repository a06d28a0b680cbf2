"""Long-tail construction (docs/method.md section 1) against the reference sizes and a naive loop."""

from __future__ import annotations

import numpy as np
import pytest

from ltrank.data import DatasetConfig
from ltrank.data.longtail import class_counts, select_indices
from ltrank.errors import LtrankError


def test_exp_counts_match_the_published_cifar10_ir100_sizes():
    # The ten sizes quoted in docs/method.md section 1 for CIFAR-10-LT IR 100.
    assert class_counts(5000, 10, 100, "exp") == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


@pytest.mark.parametrize(
    ("n_max", "num_classes", "ratio", "total"),
    [(5000, 10, 100, 12406), (5000, 10, 50, 13996), (500, 100, 100, 10847), (500, 100, 50, 12608)],
)
def test_exp_totals_match_the_reference_subsets(n_max, num_classes, ratio, total):
    counts = class_counts(n_max, num_classes, ratio, "exp")
    assert sum(counts) == total
    assert counts[0] == n_max and counts[-1] == int(n_max / ratio)
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_step_profile_keeps_half_the_classes_at_n_max():
    assert class_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert class_counts(500, 100, 10, "step") == [500] * 50 + [50] * 50
    # odd C: the middle class goes to the minority side
    assert class_counts(100, 3, 4, "step") == [100, 25, 25]


def test_ratio_one_is_balanced():
    assert class_counts(300, 4, 1, "exp") == [300] * 4
    assert class_counts(300, 4, 1, "step") == [300] * 4


def test_ratio_that_empties_a_class_is_a_clear_error():
    with pytest.raises(LtrankError, match="0 images"):
        class_counts(50, 10, 100, "exp")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        DatasetConfig(source="cifar10", imbalance_ratio=0.5)
    with pytest.raises(ValueError, match="did you mean 'cifar10'"):
        DatasetConfig(source="cifar-10")
    with pytest.raises(ValueError):
        DatasetConfig(source="cifar10", extra_key=1)
    with pytest.raises(ValueError, match="needs a path"):
        DatasetConfig(source="npz:")
    assert DatasetConfig(source="npz: /x.npz").source == "npz:/x.npz"


def _reference_selection(labels: np.ndarray, counts: list[int], seed: int) -> list[np.ndarray]:
    """The public LDAM-DRW / Bag of Tricks loop, written out: one global seed, per-class shuffle."""
    np.random.seed(seed)
    kept = []
    for the_class, the_img_num in zip(np.unique(labels), counts):
        idx = np.where(labels == the_class)[0]
        np.random.shuffle(idx)
        kept.append(idx[:the_img_num])
    return kept


def _interleaved_balanced_labels(num_classes: int, per_class: int, seed: int = 7) -> np.ndarray:
    return np.random.RandomState(seed).permutation(np.repeat(np.arange(num_classes), per_class))


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("profile", ["exp", "step"])
def test_selection_on_a_full_set_is_the_reference_selection(seed, profile):
    labels = _interleaved_balanced_labels(10, 200)
    counts = class_counts(200, 10, 20, profile)
    ours = select_indices(labels, counts, seed, [str(c) for c in range(10)])
    ref = _reference_selection(labels, counts, seed)
    assert [a.tolist() for a in ours] == [b.tolist() for b in ref]


def test_selection_is_deterministic_and_seed_dependent():
    labels = _interleaved_balanced_labels(5, 100)
    counts = class_counts(100, 5, 10, "exp")
    names = list("abcde")
    a = select_indices(labels, counts, 0, names)
    b = select_indices(labels, counts, 0, names)
    c = select_indices(labels, counts, 1, names)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert [x.tolist() for x in a] != [x.tolist() for x in c]


def test_pool_selection_keeps_every_reference_image_the_pool_holds():
    # A full balanced set in original order, and a pool holding each class's first n_pool images.
    num_classes, full = 6, 300
    labels = _interleaved_balanced_labels(num_classes, full)
    ranks_full = np.zeros_like(labels)
    for c in range(num_classes):
        ranks_full[labels == c] = np.arange(full)
    pool_sizes = class_counts(full, num_classes, 5, "exp")  # the pool is an IR-5 tail
    in_pool = ranks_full < np.asarray(pool_sizes)[labels]
    pool_rows = np.flatnonzero(in_pool)  # pool keeps the full set's order; row r of pool = pool_rows[r]
    pool_labels, pool_ranks = labels[pool_rows], ranks_full[pool_rows]

    counts = class_counts(full, num_classes, 25, "exp")
    names = [str(c) for c in range(num_classes)]
    ref = _reference_selection(labels, counts, 0)
    ours = select_indices(pool_labels, counts, 0, names, source_ranks=pool_ranks, full_class_size=full)
    for c in range(num_classes):
        chosen_full_rows = set(pool_rows[ours[c]].tolist())
        assert len(ours[c]) == counts[c] == len(chosen_full_rows)
        assert all(pool_labels[ours[c]] == c)
        ref_in_pool = {r for r in ref[c].tolist() if in_pool[r]}
        assert ref_in_pool <= chosen_full_rows
    # class 0 is whole in the pool, so it is exactly the reference selection, order included
    assert pool_rows[ours[0]].tolist() == ref[0].tolist()


def test_pool_without_ranks_shuffles_its_own_rows():
    labels = np.repeat(np.arange(3), [10, 6, 4])
    ours = select_indices(labels, [5, 3, 2], 0, list("abc"))
    rng = np.random.RandomState(0)
    expected = []
    for c, n in enumerate([5, 3, 2]):
        rows = np.flatnonzero(labels == c)
        rng.shuffle(rows)
        expected.append(rows[:n].tolist())
    assert [x.tolist() for x in ours] == expected


def test_asking_for_more_images_than_a_class_holds_names_class_needed_available():
    labels = np.repeat(np.arange(3), [10, 6, 2])
    with pytest.raises(LtrankError, match=r"class 2 \('c'\) needs 3 training images but the source holds 2"):
        select_indices(labels, [10, 5, 3], 0, list("abc"))


def test_a_class_the_step_profile_keeps_at_n_max_gets_advice_that_works():
    # step keeps classes 0 and 1 at n_max = 10; class 1 holds 6, so no ratio can help
    labels = np.repeat(np.arange(4), [10, 6, 2, 2])
    counts = class_counts(10, 4, 5, "step")
    assert counts == [10, 10, 2, 2]
    with pytest.raises(LtrankError, match=r"class 1 \('b'\) needs 10 .* holds 6; this profile keeps the class at n_max"):
        select_indices(labels, counts, 0, list("abcd"))
