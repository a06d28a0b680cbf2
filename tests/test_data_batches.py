"""The batched train/test transforms equal torchvision's per-image transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from ltrank.data.batches import (
    MEAN,
    STD,
    crop_flip,
    draw_crop_flip,
    iterate_batches,
    normalize,
    num_batches,
    train_transform,
)


def _batch(n=16, h=32, w=32, seed=0):
    return torch.from_numpy(np.random.RandomState(seed).randint(0, 256, (n, 3, h, w), dtype=np.uint8))


def _torchvision_per_image(image_chw: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize with fixed params."""
    pil = Image.fromarray(image_chw.permute(1, 2, 0).numpy())
    h, w = pil.height, pil.width
    padded = TF.pad(pil, 4, fill=0)
    cropped = TF.crop(padded, top, left, h, w)
    if flip:
        cropped = TF.hflip(cropped)
    return transforms.Normalize(MEAN, STD)(TF.to_tensor(cropped))


def test_batched_train_transform_equals_torchvision_per_image():
    images = _batch(24)
    gen = torch.Generator().manual_seed(5)
    top, left, flip = draw_crop_flip(len(images), gen)
    # every offset extreme and both flip states occur in the check
    top[:4], left[:4], flip[:4] = torch.tensor([0, 8, 0, 8]), torch.tensor([0, 8, 8, 0]), torch.tensor([1, 0, 1, 0]).bool()
    ours = normalize(crop_flip(images, top, left, flip))
    ref = torch.stack(
        [_torchvision_per_image(img, int(t), int(l), bool(f)) for img, t, l, f in zip(images, top, left, flip)]
    )
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_transform_on_non_square_images_matches_torchvision():
    images = _batch(5, h=12, w=20)
    top, left, flip = torch.tensor([0, 3, 8, 8, 1]), torch.tensor([8, 2, 0, 5, 7]), torch.tensor([1, 0, 1, 0, 1]).bool()
    ours = normalize(crop_flip(images, top, left, flip))
    ref = torch.stack([_torchvision_per_image(img, int(t), int(l), bool(f)) for img, t, l, f in zip(images, top, left, flip)])
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_test_transform_is_torchvision_to_tensor_and_normalize():
    images = _batch(6)
    ref = torch.stack([transforms.Normalize(MEAN, STD)(TF.to_tensor(Image.fromarray(i.permute(1, 2, 0).numpy()))) for i in images])
    torch.testing.assert_close(normalize(images), ref, atol=1e-6, rtol=1e-6)


def test_random_parameters_cover_the_range_and_are_seeded():
    top, left, flip = draw_crop_flip(4000, torch.Generator().manual_seed(0))
    assert set(top.tolist()) == set(range(9)) == set(left.tolist())
    assert 0.45 < flip.float().mean().item() < 0.55
    a = train_transform(_batch(8), torch.Generator().manual_seed(3))
    b = train_transform(_batch(8), torch.Generator().manual_seed(3))
    c = train_transform(_batch(8), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(("drop_last", "expected"), [(True, 3), (False, 4)])
def test_iterate_batches_visits_each_sample_once(drop_last, expected):
    n = 50
    images = _batch(n)
    labels = torch.arange(n)
    batches = list(
        iterate_batches(images, labels, 16, shuffle=True, drop_last=drop_last, generator=torch.Generator().manual_seed(0))
    )
    assert len(batches) == expected == num_batches(n, 16, drop_last)
    seen = torch.cat([y for _, y in batches])
    assert len(set(seen.tolist())) == len(seen) == (48 if drop_last else 50)
    assert seen.tolist() != sorted(seen.tolist())  # shuffled
    for x, y in batches:  # without augment each x is the normalised image of its label's row
        torch.testing.assert_close(x, normalize(images[y]))


def test_iterate_batches_augment_and_order_are_reproducible():
    images, labels = _batch(20), torch.arange(20) % 4
    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return [b for b in iterate_batches(images, labels, 8, shuffle=True, drop_last=False, generator=gen, augment=True)]
    first, again = run(1), run(1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    order = torch.tensor([3, 3, 0, 7])
    (x, y), = list(iterate_batches(images, labels, 4, shuffle=False, drop_last=True, order=order, device="cpu"))
    assert y.tolist() == labels[order].tolist()
    torch.testing.assert_close(x, normalize(images[order]))
