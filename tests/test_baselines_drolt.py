"""DRO-LT (docs/method.md section 6): loop reference, hand-computed toy, centroids, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ltrank.losses.base import EpochContext
from ltrank.losses.functional import drolt_loss
from ltrank.catalog import LOSSES


def drolt_reference(features, targets, centroids, radii, temperature):
    """Per centroid c present in the batch: log-softmax over the batch of
    (-||mu_c - f_b|| - [y_b == c] eps_c) / T, minus the mean over c's own samples; mean over c."""
    B = features.shape[0]
    present = sorted({int(t) for t in targets})
    total = features.new_zeros(())
    for c in present:
        scores = []
        for b in range(B):
            d = torch.sqrt(sum((centroids[c, k] - features[b, k]) ** 2 for k in range(features.shape[1])))
            a = -d - (radii[c] if int(targets[b]) == c else 0.0)
            scores.append(a / temperature)
        lse = torch.log(sum(torch.exp(s) for s in scores))
        own = [scores[b] - lse for b in range(B) if int(targets[b]) == c]
        total = total - sum(own) / len(own)
    return total / len(present)


def _grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    value = fn(*leaves)
    return value, torch.autograd.grad(value, leaves)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_drolt_matches_loop_reference_on_values_and_gradients(temperature):
    g = torch.Generator().manual_seed(7)
    C, D = 5, 3
    features = torch.randn(7, D, generator=g, dtype=torch.float64)
    centroids = torch.randn(C, D, generator=g, dtype=torch.float64)
    radii = torch.rand(C, generator=g, dtype=torch.float64) + 0.5  # all different: alignment matters
    targets = torch.tensor([3, 0, 1, 1, 3, 3, 0])  # classes 2 and 4 absent; not sorted
    got, g_got = _grads(lambda f, m, r: drolt_loss(f, targets, m, r, temperature=temperature), features, centroids, radii)
    want, g_want = _grads(lambda f, m, r: drolt_reference(f, targets, m, r, temperature), features, centroids, radii)
    assert abs(got.item() - want.item()) < 1e-9
    for a, b in zip(g_got, g_want):
        assert torch.allclose(a, b, rtol=0, atol=1e-9)


def test_drolt_hand_computed_three_class_toy():
    # 2-d toy with 3-4-5 distances. Centroids mu0 = (0,0), mu1 = (6,8), mu2 = (100,0) (absent).
    # Features f0 = (0,0), f1 = (3,4), f2 = (6,8); targets 0, 0, 1.
    # Row 0 distances 0, 5, 10 -> scores 0, -5, -10; own samples b=0,1.
    # Row 1 distances 10, 5, 0 -> scores -10, -5, 0; own sample b=2.
    # With L = log(1 + e^-5 + e^-10) (the same for both rows):
    # loss = -[((0 - L) + (-5 - L)) / 2 + (0 - L)] / 2 = (2.5 + 2L) / 2 = 1.25 + L.
    features = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], dtype=torch.float64, requires_grad=True)
    centroids = torch.tensor([[0.0, 0.0], [6.0, 8.0], [100.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([0, 0, 1])
    L = math.log(1 + math.exp(-5) + math.exp(-10))
    loss = drolt_loss(features, targets, centroids, torch.zeros(3, dtype=torch.float64), temperature=1.0)
    assert abs(loss.item() - (1.25 + L)) < 1e-12
    loss.backward()  # zero distances on the diagonal must not give NaN
    assert torch.isfinite(features.grad).all()

    # Radius 0.5 for class 0 only touches its own samples in row 0: scores -0.5, -5.5, -10.
    # L0 = log(e^-0.5 + e^-5.5 + e^-10); row-0 term = ((-0.5 - L0) + (-5.5 - L0)) / 2 = -3 - L0.
    radii = torch.tensor([0.5, 0.0, 7.0], dtype=torch.float64)  # class 2's radius is irrelevant
    L0 = math.log(math.exp(-0.5) + math.exp(-5.5) + math.exp(-10))
    loss = drolt_loss(features.detach(), targets, centroids, radii, temperature=1.0)
    assert abs(loss.item() - (3 + L0 + L) / 2) < 1e-12


def test_radius_goes_to_each_samples_own_class():
    # Targets in non-sorted order with different radii: the public code's mask order would hand
    # sample 0 (class 1) the radius of class 0. Compare with the loop reference, which cannot.
    features = torch.tensor([[1.0], [0.0], [2.0], [0.5]], dtype=torch.float64)
    centroids = torch.tensor([[0.0], [1.5]], dtype=torch.float64)
    targets = torch.tensor([1, 0, 1, 0])
    radii = torch.tensor([0.1, 2.0], dtype=torch.float64)
    got = drolt_loss(features, targets, centroids, radii)
    assert abs(got.item() - drolt_reference(features, targets, centroids, radii, 1.0).item()) < 1e-12


def test_gradient_reaches_features_and_radii():
    g = torch.Generator().manual_seed(8)
    features = torch.randn(6, 4, generator=g, requires_grad=True)
    radii = torch.ones(4, requires_grad=True)
    centroids = torch.randn(4, 4, generator=g)
    targets = torch.tensor([0, 1, 1, 2, 0, 2])  # class 3 absent
    drolt_loss(features, targets, centroids, radii).backward()
    assert features.grad.abs().sum() > 0 and torch.isfinite(features.grad).all()
    # each present class's radius gets a gradient, and it is positive: a larger radius lowers
    # the own-sample scores, so this loss alone always pushes the radii down (docs/baselines.md)
    assert (radii.grad[:3] > 0).all()
    assert radii.grad[3] == 0  # an absent class's radius does not


def test_edge_cases_one_class_batch_and_b1():
    centroids = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    radii = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    # B = 1: the batch-wise softmax of one entry is 1, so the loss is exactly 0
    f1 = torch.tensor([[0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    loss = drolt_loss(f1, torch.tensor([1]), centroids, radii)
    assert loss.item() == 0.0
    # one-class batch: the radius shifts every entry of the row equally and cancels out
    f = torch.tensor([[0.2, 0.1], [3.0, -1.0], [0.0, 0.5]], dtype=torch.float64, requires_grad=True)
    loss = drolt_loss(f, torch.tensor([0, 0, 0]), centroids, radii)
    want = drolt_reference(f.detach(), torch.tensor([0, 0, 0]), centroids, torch.zeros(2, dtype=torch.float64), 1.0)
    assert abs(loss.item() - want.item()) < 1e-12
    loss.backward()
    assert abs(radii.grad[0].item()) < 1e-12


class TinyClassifier(nn.Module):
    """Stand-in for ltrank.models.Classifier: encoder -> features, head -> logits."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))  # dropout: eval mode matters
        self.head = nn.Linear(4, num_classes)

    def forward(self, x, return_features=False):
        f = self.encoder(x)
        logits = self.head(f)
        return (logits, f) if return_features else logits


def _context(model, images, labels, batch=4):
    def batches():
        for i in range(0, len(labels), batch):
            yield images[i : i + batch], labels[i : i + batch]

    return EpochContext(epoch=1, total_epochs=2, model=model, feature_batches=batches, device=torch.device("cpu"))


def test_module_centroids_and_forward():
    torch.manual_seed(0)
    counts = [5, 3, 1, 0]  # class 3 has no images at all
    labels = torch.tensor([0, 1, 0, 2, 0, 1, 0, 1, 0])
    images = torch.randn(len(labels), 3)
    model = TinyClassifier(4).train()
    loss = LOSSES.build("drolt", class_counts=counts)
    with pytest.raises(RuntimeError, match="epoch_start"):
        loss(torch.zeros(2, 4), torch.tensor([0, 1]), features=torch.zeros(2, 4))
    loss.epoch_start(_context(model, images, labels))
    assert model.training  # mode restored
    with torch.no_grad():
        feats = model.eval().encoder(images)
    model.train()
    for c in range(3):
        members = [feats[i] for i in range(len(labels)) if labels[i] == c]
        assert torch.allclose(loss.centroids[c], sum(members) / len(members), atol=1e-6)
    assert torch.equal(loss.centroids[3], torch.zeros(4))

    # forward = CE weighted by n_c / n_max (weighted mean) + the DRO term
    assert isinstance(loss.radii, nn.Parameter) and torch.equal(loss.radii.data, torch.ones(4))
    assert any(p is loss.radii for p in loss.parameters())
    logits, f = model.eval()(images, return_features=True)
    total = loss(logits, labels, features=f)
    w = [n / 5 for n in counts]
    ce_num = sum(w[int(y)] * (torch.logsumexp(logits[i], 0) - logits[i, int(y)]) for i, y in enumerate(labels))
    ce = ce_num / sum(w[int(y)] for y in labels)
    dro = drolt_reference(f.double(), labels, loss.centroids.double(), loss.radii.double(), 1.0)
    assert abs(total.item() - (ce + dro).item()) < 1e-5
    total.backward()
    assert loss.radii.grad is not None and (loss.radii.grad[:3] != 0).all()
    assert model.encoder[0].weight.grad.abs().sum() > 0

    with pytest.raises(ValueError, match="features"):
        loss(logits, labels)
