"""Run code in N processes joined by a gloo process group, and the shared inputs of the distributed tests.

``run_ranks(fn, n, out_dir)`` spawns n processes (torch.multiprocessing, a free TCP port on
127.0.0.1, one thread each); rank r calls ``fn(r, n)`` and its returned dict is saved to
``out_dir/rank{r}.pt``. The test process then loads the dicts and compares them with
single-process computations on the same inputs, which the factories below give both sides.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ltrank.data.batches import iterate_batches
from ltrank.data.sharding import eval_shard
from ltrank.distributed import all_reduce_sum, gather_shards, is_distributed, rank, world_size
from ltrank.engine.evaluation import predict
from ltrank.errors import LtrankError
from ltrank.losses.base import EpochContext
from ltrank.models import resnet32
from ltrank.models.sync_bn import maybe_sync_bn
from ltrank.catalog import LOSSES

WORLD = 2
BATCH = 128  # the global batch of the loss checks: two slices of 64
NUM_CLASSES = 10
#: Training images per class (long-tailed) for the class-weighted losses.
COUNTS = [500, 300, 180, 100, 60, 35, 20, 12, 7, 4]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(fn, world: int, out_dir: Path, timeout: float = 300.0) -> list[dict]:
    """Run ``fn(rank, world)`` in ``world`` gloo processes; return each rank's dict (rank order)."""
    port = free_port()
    ctx = mp.start_processes(_entry, args=(fn, world, port, str(out_dir)), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):  # raises if a rank failed, with its traceback
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"distributed test ranks did not finish within {timeout} s")
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(world)]


def _entry(rank: int, fn, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        result = fn(rank, world)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


# ----------------------------------------------------------------------------- shared inputs
def rows(rank: int, local: int = BATCH // WORLD) -> slice:
    return slice(rank * local, (rank + 1) * local)


def loss_batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """[128, 10] float32 logits and [128] targets, rank 0's slice first.

    Class 7 appears only in rank 0's slice, class 8 only in rank 1's, class 9 nowhere. ``kind``:
    "random" (N(0, 2^2) logits) or "tied" (rounded to multiples of 0.5: many exact ties, also
    across the ranks' slices).
    """
    g = torch.Generator().manual_seed(1234)
    half = BATCH // 2
    first = torch.randint(0, 8, (half,), generator=g)  # classes 0..7
    second = torch.randint(0, 8, (half,), generator=g)
    second[second == 7] = 8  # classes 0..6 and 8
    first[:3], second[:3] = 7, 8  # make sure both rank-specific classes occur
    targets = torch.cat([first, second])
    logits = 2.0 * torch.randn(BATCH, NUM_CLASSES, generator=g)
    if kind == "tied":
        logits = torch.round(logits * 2.0) / 2.0
    return logits, targets


def cosine_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine-similarity logits in (-1, 1) for LDAM, every class present."""
    g = torch.Generator().manual_seed(99)
    return torch.tanh(torch.randn(BATCH, NUM_CLASSES, generator=g)), torch.arange(BATCH) % NUM_CLASSES


def drolt_inputs() -> dict[str, torch.Tensor]:
    """Logits, targets, 6-d features, class centroids and radii for the DRO-LT loss checks."""
    g = torch.Generator().manual_seed(7)
    logits, targets = loss_batch("random")
    return {
        "logits": logits,
        "targets": targets,
        "features": torch.randn(BATCH, 6, generator=g),
        "centroids": torch.randn(NUM_CLASSES, 6, generator=g),
        "radii": 0.5 + torch.rand(NUM_CLASSES, generator=g),
    }


class TinyNet(nn.Module):
    """images [B, 3, 4, 4] -> (logits [B, 5], features [B, 3]); the model contract of ltrank."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
        self.head = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = self.encoder(x)
        logits = self.head(features)
        return (logits, features) if return_features else logits


def feature_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n float images [n, 3, 4, 4] and labels in 0..3 (class 4 never occurs)."""
    g = torch.Generator().manual_seed(11)
    return torch.randn(n, 3, 4, 4, generator=g), torch.arange(n) % 4


def eval_images(n: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 test images [n, 3, 4, 4] and labels in 0..4 (n not divisible by 2)."""
    g = torch.Generator().manual_seed(12)
    return torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8, generator=g), torch.arange(n) % 5


def train_images(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 training images [n, 3, 8, 8] and labels in 0..3 for the DDP step."""
    g = torch.Generator().manual_seed(13)
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(n) % 4


# ----------------------------------------------------------------------------- the cases
AP_LOSSES = [("ap", {}), ("ap_cb_delta", {}), ("ap_cb_delta", {"mode": "divide"}), ("ap_cb_primary", {})]
#: (loss name, params, input kind): every AP loss, both formulations, both scopes, random and tied logits.
AP_CASES = [
    (name, {**params, "formulation": formulation, "scope": scope}, kind)
    for name, params in AP_LOSSES
    for formulation in ("thesis", "interpolated")
    for scope in ("global", "local")
    for kind in ("random", "tied")
]
BASELINE_CASES = [("ce", {}), ("ce", {"weighted": True}), ("focal", {}), ("cb_focal", {}),
                  ("ldam", {}), ("ldam", {"weighted": True}), ("drolt", {})]
#: (sync_bn, loss name, params) of the one-step DDP checks.
STEP_CASES = [(True, "ap_cb_delta", {}), (True, "ap_cb_delta", {"scope": "local"}), (False, "ap_cb_delta", {}),
              (True, "ce", {"weighted": True})]
CENTROID_SIZES = [21, 1]  # 21 images: uneven shards; 1 image: rank 1's shard is empty


def loss_inputs(name: str, kind: str = "random") -> dict[str, torch.Tensor]:
    if name == "drolt":
        return drolt_inputs()
    logits, targets = cosine_batch() if name == "ldam" else loss_batch(kind)
    return {"logits": logits, "targets": targets}


def loss_and_grads(name: str, params: dict, inputs: dict[str, torch.Tensor], part: slice) -> dict[str, torch.Tensor]:
    """The loss value and the gradients of its inputs for the rows ``part`` (float32, as in training)."""
    loss_fn = LOSSES.build(name, class_counts=COUNTS, **params)
    logits = inputs["logits"][part].clone().requires_grad_(True)
    targets = inputs["targets"][part]
    out: dict[str, torch.Tensor] = {}
    if name == "drolt":
        loss_fn.centroids = inputs["centroids"].clone()
        with torch.no_grad():
            loss_fn.radii.copy_(inputs["radii"])
        features = inputs["features"][part].clone().requires_grad_(True)
        value = loss_fn(logits, targets, features=features)
        value.backward()
        out["features_grad"], out["radii_grad"] = features.grad, loss_fn.radii.grad
    else:
        value = loss_fn(logits, targets)
        value.backward()
    out["value"], out["logits_grad"] = value.detach(), logits.grad
    return out


def centroids(n: int, shard: tuple[int, int] | None = None) -> torch.Tensor:
    """DRO-LT centroids of TinyNet's features over ``feature_images(n)`` (or rows ``shard`` of them)."""
    images, labels = feature_images(n)
    if shard is not None:
        images, labels = images[shard[0]:shard[1]], labels[shard[0]:shard[1]]
    loss_fn = LOSSES.build("drolt", class_counts=[5, 5, 5, 5, 5])

    def batches():
        for start in range(0, len(labels), 4):
            yield images[start:start + 4], labels[start:start + 4]

    loss_fn.epoch_start(EpochContext(1, 1, model=TinyNet(), feature_batches=batches))
    return loss_fn.centroids


def one_step(sync_bn: bool, name: str, params: dict, world: int = 1, rank: int = 0) -> dict[str, torch.Tensor]:
    """State after one SGD step of ResNet-32 (8x8 images, 4 classes) on global batch 16.

    ``world`` > 1: this rank's slice under DistributedDataParallel (SyncBatchNorm if ``sync_bn``).
    """
    images, labels = train_images()
    torch.manual_seed(0)
    model = maybe_sync_bn(resnet32(4), sync_bn)
    net = DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-4)
    loss_fn = LOSSES.build(name, class_counts=[10, 7, 4, 3], **params)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(3))
    x, y = next(iterate_batches(images, labels, 16, shuffle=False, drop_last=True, augment=True, order=order,
                                generator=torch.Generator().manual_seed(4), world_size=world, rank=rank))
    loss = loss_fn(net(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["loss"] = loss.detach()
    return state


# ----------------------------------------------------------------------------- what each rank runs
def all_checks(rank_: int, world: int) -> dict:
    """Every distributed check, run by each rank; returns what the tests compare."""
    out: dict = {"info": {"world_size": world_size(), "rank": rank(), "is_distributed": is_distributed(),
                          "sum": all_reduce_sum(torch.tensor([rank_ + 1.0]))}}
    part = rows(rank_)
    out["ap"] = [loss_and_grads(name, params, loss_inputs(name, kind), part) for name, params, kind in AP_CASES]
    out["baselines"] = [loss_and_grads(name, params, loss_inputs(name), part) for name, params in BASELINE_CASES]
    out["centroids"] = [centroids(n, eval_shard(n, world, rank_)) for n in CENTROID_SIZES]
    images, labels = eval_images()
    start, stop = eval_shard(len(labels), world, rank_)
    local = predict(TinyNet(), images[start:stop], labels[start:stop], torch.device("cpu"), batch_size=4)
    out["predictions"] = gather_shards(local)
    out["steps"] = [one_step(sync, name, params, world, rank_) for sync, name, params in STEP_CASES]
    uneven = loss_batch("random")[0][: 5 - rank_].requires_grad_(True)  # 5 rows on rank 0, 4 on rank 1
    try:
        LOSSES.build("ap", class_counts=COUNTS)(uneven, torch.zeros(5 - rank_, dtype=torch.long))
        out["uneven"] = None
    except LtrankError as exc:
        out["uneven"] = str(exc)
    return out
