"""How much of a CPU training step is data preparation? (issue 5 target: <= 5%.)

Trains ResNet-32 on CIFAR-10-LT IR100 batches (batch 128) for a few steps on the CPU and
times, per step, (a) data preparation -- index shuffle, gather of the uint8 rows, batched
random crop + flip + normalise (``ltrank.data.batches.iterate_batches``) -- and (b) forward +
backward + SGD step. Also times alternative ways to do the same augmentation on one batch.

    python benchmarks/data_speed.py [--steps 30] [--batch-size 128] [--rounds 15] [--data-dir DIR]

Prints the ratio and writes benchmarks/results/data_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ltrank.data import DatasetConfig, load_longtailed
from ltrank.data.batches import MEAN, STD, crop_flip, draw_crop_flip, iterate_batches, normalize
from ltrank.errors import LtrankError
from ltrank.catalog import BACKBONES

RESULTS = Path(__file__).parent / "results" / "data_speed.json"


def _groups_crop_flip(images, top, left, flip, padding=4):
    """Alternative 1: one slice per distinct (top, left) offset (up to 81 groups)."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    out = torch.empty_like(images)
    key = top * (2 * padding + 1) + left
    for k in key.unique().tolist():
        idx = (key == k).nonzero().squeeze(1)
        t, l = divmod(k, 2 * padding + 1)
        out[idx] = padded[idx, :, t : t + h, l : l + w]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def _index4_crop_flip(images, top, left, flip, padding=4):
    """Alternative 2: one advanced-indexing gather with four broadcast [B, 3, H, W] index tensors."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = top[:, None] + torch.arange(h)
    cols = torch.arange(w).expand(b, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + left[:, None]
    bi, ci = torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def _torchvision_per_image(images, top, left, flip):
    """Baseline: the reference per-image PIL pipeline (RandomCrop + Flip + ToTensor + Normalize)."""
    from PIL import Image
    from torchvision import transforms
    from torchvision.transforms import functional as TF

    norm = transforms.Normalize(MEAN, STD)
    out = []
    for img, t, l, f in zip(images, top.tolist(), left.tolist(), flip.tolist()):
        pil = TF.crop(TF.pad(Image.fromarray(img.permute(1, 2, 0).numpy()), 4, fill=0), t, l, 32, 32)
        out.append(norm(TF.to_tensor(TF.hflip(pil) if f else pil)))
    return torch.stack(out)


def _time_interleaved(fns: dict, rounds: int) -> dict[str, dict[str, float]]:
    """Median and minimum ms per call, the variants run round-robin so that a busy machine
    slows them alike."""
    for fn in fns.values():
        fn()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(1e3 * (time.perf_counter() - start))
    return {name: {"median_ms": round(statistics.median(v), 3), "min_ms": round(min(v), 3)} for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the per-variant timings")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    try:
        data = load_longtailed(DatasetConfig(source="cifar10", imbalance_ratio=100), args.data_dir)
        images, labels, source = data.train_images, data.train_labels, data.source.name
    except LtrankError as exc:  # no CIFAR here: random images of the same shape and size
        print(f"note: {exc}; using random uint8 images instead")
        images = torch.randint(0, 256, (12406, 3, 32, 32), dtype=torch.uint8)
        labels = torch.randint(0, 10, (12406,))
        source = "random"

    torch.manual_seed(0)
    model = BACKBONES.build("resnet32", num_classes=10, head="linear")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    batches = iterate_batches(
        images, labels, args.batch_size, shuffle=True, drop_last=True, generator=gen, augment=True, device="cpu"
    )
    data_times, step_times = [], []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        x, y = next(batches)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        t2 = time.perf_counter()
        if step >= args.warmup:
            data_times.append(t1 - t0)
            step_times.append(t2 - t1)
    data_s, step_s = sum(data_times), sum(step_times)
    ratio = data_s / step_s
    share = data_s / (data_s + step_s)

    batch = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[: args.batch_size]]
    top, left, flip = draw_crop_flip(len(batch), torch.Generator().manual_seed(2))
    variants = {
        "unfold view (ltrank)": lambda: normalize(crop_flip(batch, top, left, flip)),
        "per-offset groups": lambda: normalize(_groups_crop_flip(batch, top, left, flip)),
        "4-index gather": lambda: normalize(_index4_crop_flip(batch, top, left, flip)),
        "torchvision per-image PIL": lambda: _torchvision_per_image(batch, top, left, flip),
    }
    reference = variants["unfold view (ltrank)"]()
    for name, fn in variants.items():
        torch.testing.assert_close(fn(), reference, atol=1e-6, rtol=1e-6, msg=f"{name} differs")
    # Single-threaded: these ops take milliseconds, and on a shared machine a 2-thread parallel
    # region waits for whichever thread was descheduled, which swamps the differences.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_batch_ms = _time_interleaved(variants, args.rounds)
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(3))[: args.batch_size]
    gather_ms = _time_interleaved(
        {"index_select (ltrank)": lambda: images.index_select(0, rows), "images[idx]": lambda: images[rows]},
        args.rounds,
    )
    torch.set_num_threads(threads)

    result = {
        "source": source,
        "images": len(images),
        "batch_size": args.batch_size,
        "steps_timed": args.steps,
        "data_prep_s": round(data_s, 4),
        "train_step_s": round(step_s, 4),
        "data_prep_ms_per_batch": round(1e3 * data_s / args.steps, 3),
        "train_step_ms_per_batch": round(1e3 * step_s / args.steps, 2),
        "data_over_step_ratio": round(ratio, 5),
        "data_share_of_epoch": round(share, 5),
        "target_share": 0.05,
        "augment_variants_ms_per_batch": per_batch_ms,
        "row_gather_variants_ms_per_batch": gather_ms,
        "torch": torch.__version__,
        "threads_training": torch.get_num_threads(),
        "threads_variant_timings": 1,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.steps} steps of batch {args.batch_size}, ResNet-32, CPU ({torch.get_num_threads()} threads)")
    print(f"data preparation {1e3 * data_s / args.steps:8.2f} ms/batch")
    print(f"fwd+bwd+step     {1e3 * step_s / args.steps:8.2f} ms/batch")
    print(f"data / step = {ratio:.2%}; data share of the epoch = {share:.2%} (target <= 5%)")
    print(f"per batch of {args.batch_size}, 1 thread, {args.rounds} interleaved rounds: median / min ms")
    for name, t in {**per_batch_ms, **gather_ms}.items():
        print(f"  {name:28s} {t['median_ms']:9.3f} / {t['min_ms']:9.3f}")
    print(f"load average (1 min) at the end: {result['load_average_1min_at_end']} on {os.cpu_count()} CPUs")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
