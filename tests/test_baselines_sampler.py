"""Class-aware sampler for DRO-LT's classifier stage."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from ltrank.data.samplers import ClassAwareSampler, class_aware_indices

LABELS = torch.tensor([0] * 400 + [1] * 40 + [2] * 4 + [4] * 1)  # class 3 has no images


def test_classes_are_drawn_equally_often_whatever_their_size():
    n = 40_000
    idx = class_aware_indices(LABELS, n, torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64 and idx.shape == (n,)
    per_class = torch.bincount(LABELS[idx], minlength=5).double()
    assert per_class[3] == 0  # a class without images is never drawn
    present = per_class[[0, 1, 2, 4]]
    # each count is Binomial(n, 1/4): std ~ 87; allow ~6 std
    assert ((present - n / 4).abs() < 500).all(), present


def test_images_within_a_class_are_drawn_uniformly():
    idx = class_aware_indices(LABELS, 40_000, torch.Generator().manual_seed(1))
    class2 = idx[LABELS[idx] == 2]
    per_image = torch.bincount(class2 - 440, minlength=4).double()  # class 2 is indices 440..443
    expected = len(class2) / 4  # ~2500 each, std ~ 43
    assert ((per_image - expected).abs() < 300).all(), per_image


def test_seeded_and_reproducible():
    a = class_aware_indices(LABELS, 100, torch.Generator().manual_seed(3))
    b = class_aware_indices(LABELS, 100, torch.Generator().manual_seed(3))
    c = class_aware_indices(LABELS, 100, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampler_batches_and_dataloader():
    sampler = ClassAwareSampler(LABELS, generator=torch.Generator().manual_seed(5))
    assert len(sampler) == len(LABELS)
    batches = list(sampler.batches(64))
    assert [len(b) for b in batches] == [64] * (len(LABELS) // 64)
    assert len(list(sampler.batches(64, drop_last=False))[-1]) == len(LABELS) % 64
    loader = DataLoader(TensorDataset(LABELS), batch_size=32, sampler=sampler)
    seen = torch.cat([y for (y,) in loader])
    assert len(seen) == len(LABELS) and set(seen.tolist()) <= {0, 1, 2, 4}
