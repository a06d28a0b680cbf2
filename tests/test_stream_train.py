"""A tiny run on a generated ``imagenet_lt:ROOT`` tree through the streaming pipeline (issue 13):
a small timm model at a reduced image size trains one epoch identically for any worker count,
and a run resumed after epoch 1 ends exactly where an uninterrupted run ends (CPU).

The loop here is the minimal one (lr, forward, AP CB Delta loss, backward, step); the trainer's
own 1-epoch test comes when the trainer consumes ``ltrank.data.make_loader``.
"""

from __future__ import annotations

import pytest
import torch

from _streamfakes import imagenet_lt_tree
from ltrank.data import DatasetConfig, make_loader, open_stream_source
from ltrank.losses import CBDeltaAPLoss
from ltrank.models.timm_adapter import build_timm

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture(scope="module")
def source_and_cfg(tmp_path_factory):
    root = imagenet_lt_tree(tmp_path_factory.mktemp("inet"), train=(12, 8, 4), val=(2, 2, 2), test=(2, 2, 2))
    cfg = DatasetConfig(source=f"imagenet_lt:{root}", profile="asis", image_size=32, color_jitter=0.4)
    return open_stream_source(cfg), cfg


def fresh(source, seed: int = 0):
    torch.manual_seed(seed)
    model = build_timm(source.num_classes, "test_resnet")
    criterion = CBDeltaAPLoss(source.class_counts, delta=1.0, beta=0.999)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return model, criterion, optimizer


def train_epochs(model, criterion, optimizer, loader, epochs) -> list[float]:
    losses = []
    model.train()
    for epoch in epochs:
        loader.set_epoch(epoch)
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def weights(model) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_one_epoch_is_the_same_for_any_worker_count(source_and_cfg):
    source, cfg = source_and_cfg
    results = []
    for workers in (0, 2):
        model, criterion, optimizer = fresh(source)
        loader = make_loader(source, "train", cfg, seed=0, batch_size=8, num_workers=workers, device="cpu")
        losses = train_epochs(model, criterion, optimizer, loader, [1])
        results.append((losses, weights(model)))
    (losses0, w0), (losses2, w2) = results
    assert len(losses0) == 3 and all(torch.isfinite(torch.tensor(losses0)))
    assert losses0 == losses2
    assert all(torch.equal(a, b) for a, b in zip(w0, w2))


def test_resume_after_epoch_1_equals_the_uninterrupted_run(source_and_cfg, tmp_path):
    source, cfg = source_and_cfg
    model, criterion, optimizer = fresh(source)
    loader = make_loader(source, "train", cfg, seed=7, batch_size=8, num_workers=0, device="cpu")
    straight = train_epochs(model, criterion, optimizer, loader, [1, 2])
    final = weights(model)

    model, criterion, optimizer = fresh(source)
    loader = make_loader(source, "train", cfg, seed=7, batch_size=8, num_workers=0, device="cpu")
    first = train_epochs(model, criterion, optimizer, loader, [1])
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.pt")

    model, criterion, optimizer = fresh(source, seed=123)  # other initial weights: the checkpoint must win
    state = torch.load(tmp_path / "ckpt.pt")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    loader = make_loader(source, "train", cfg, seed=7, batch_size=8, num_workers=2, device="cpu")
    second = train_epochs(model, criterion, optimizer, loader, [2])
    assert first + second == straight
    assert all(torch.equal(a, b) for a, b in zip(final, weights(model)))


def test_evaluation_on_the_validation_split_gives_per_class_accuracy(source_and_cfg):
    from ltrank.groups import group_accuracies
    from ltrank.metrics import per_class_accuracy

    source, cfg = source_and_cfg
    model, _, _ = fresh(source)
    model.eval()
    loader = make_loader(source, "val", cfg, seed=0, batch_size=4, num_workers=0, device="cpu")
    with torch.no_grad():
        preds, labels = zip(*[(model(x).argmax(1), y) for x, y in loader])
    acc = per_class_accuracy(torch.cat(preds), torch.cat(labels), source.num_classes)
    assert len(acc) == 3 and all(0.0 <= a <= 1.0 for a in acc)
    groups = group_accuracies(acc, source.class_counts, "shots")
    assert groups["Many"] is None and set(groups) == {"Many", "Medium", "Few", "Average"}
