"""How fast is ltrank's exact AP-loss kernel? (issue 3 targets, measured in one run.)

(a) B=128, C=100: forward+backward of ``ltrank.losses.functional.ap_loss`` against a per-positive
    Python loop shaped like the public Rank & Sort / aLRP ``APLoss`` (loop over the positives in
    score order, vectorised over the negatives, negatives below min_i(s_i - delta_i) skipped).
    Target: >= 5x faster.
(b) B=512, C=1000 (ImageNet-LT scale): time (target <= 150 ms) and extra peak memory (target
    <= 0.5 GB). Memory is measured in a fresh child process: after building the inputs it resets
    the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``), reads VmRSS, runs one
    forward+backward, and reads VmHWM; extra = VmHWM - VmRSS before. It is the resident memory
    the call added at its peak, the gradient of the logits included. glibc is told to serve
    blocks over 64 KiB by mmap (MALLOC_MMAP_THRESHOLD_), so freed blocks are not hidden in a
    pre-grown heap, and the call measured is the first one (any one-time setup is counted).
(c) One ResNet-32 SGD step (B=128, C=100, CIFAR-100-LT IR100 class counts) with ``ap_cb_delta``
    against the same step with ``ce``. Target: <= 1.05x. Also reported: the same ratio computed
    from the two losses' own forward+backward times, which is less sensitive to machine noise.

All timings are medians (and minima) of interleaved repeats: the methods alternate, so load
changes hit both. The machine is shared; the JSON records the load average and how long one
parallel 512k-element add took before and after, as a measure of contention.

    python benchmarks/loss_speed.py [--repeats 15] [--threads N] [--out PATH]

Prints a table and writes benchmarks/results/loss_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ltrank.losses.functional import ap_loss
from ltrank.catalog import BACKBONES, LOSSES

RESULTS = Path(__file__).parent / "results" / "loss_speed.json"


# ----------------------------------------------------------------------------- baseline
class LoopAPLoss(torch.autograd.Function):
    """Per-positive loop in the shape of the public aLRP / Rank & Sort ``APLoss`` code.

    Same maths as docs/method.md section 5 (``formulation`` "thesis" or "interpolated"), same
    identity-update gradient computed in the forward pass; computed in the logits' dtype as the
    public code does. Used only as the speed baseline (and cross-checked against the kernel).
    """

    @staticmethod
    def forward(ctx, logits, targets, delta, formulation):  # type: ignore[override]
        batch, num_classes = logits.shape
        flat = logits.detach().reshape(-1)
        is_pos = torch.zeros_like(flat, dtype=torch.bool)
        is_pos[torch.arange(batch, device=flat.device) * num_classes + targets] = True
        fg = flat[is_pos]
        d = torch.full_like(fg, delta)
        # negatives below every positive's lower breakpoint change nothing: skip them
        relevant = (~is_pos) & (flat >= (fg - d).min())
        bg = flat[relevant]
        bg_grad = torch.zeros_like(bg)
        fg_grad = torch.zeros_like(fg)
        primary = torch.zeros_like(fg)
        best = 0.0
        for ii in torch.sort(fg, stable=True).indices.tolist():
            fg_rel = torch.clamp((fg - fg[ii]) / (2 * d[ii]) + 0.5, min=0, max=1)
            if formulation == "interpolated":
                fg_rel[ii] = 0
                rank_pos = 1 + fg_rel.sum()
            else:
                rank_pos = fg_rel.sum()  # includes H(0) = 1/2 for itself
            bg_rel = torch.clamp((bg - fg[ii]) / (2 * d[ii]) + 0.5, min=0, max=1)
            rank = rank_pos + bg_rel.sum()
            if formulation == "interpolated":
                current = rank_pos / rank
                if best <= current:
                    best = current
                    bg_grad += bg_rel / rank
                else:
                    bg_grad += (bg_rel / rank) * ((1 - best) / (1 - current))
                primary[ii] = 1 - best
            else:
                bg_grad += bg_rel / rank
                primary[ii] = 1 - rank_pos / rank
            fg_grad[ii] = -primary[ii]
        grad = torch.zeros_like(flat)
        grad[is_pos] = fg_grad
        grad[relevant] = bg_grad
        ctx.save_for_backward((grad / batch).view_as(logits))
        return primary.mean()

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None


def loop_ap_loss(logits, targets, formulation="thesis"):
    return LoopAPLoss.apply(logits, targets, 1.0, formulation)


def fast_ap_loss(logits, targets, formulation="thesis"):
    return ap_loss(logits, targets, formulation=formulation)


# ----------------------------------------------------------------------------- helpers
def make_batch(batch: int, classes: int, kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """'random': N(0, 1) logits (every negative is relevant: the loop's worst case, as early in
    training); 'separated': positives lifted by 4 (later in training; the loop skips most)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=g)
    targets = torch.randint(0, classes, (batch,), generator=g)
    if kind == "separated":
        logits[torch.arange(batch), targets] += 4.0
    return logits, targets


def fwd_bwd(fn: Callable, logits: torch.Tensor, targets: torch.Tensor, **kw) -> Callable[[], None]:
    z = logits.clone().requires_grad_(True)

    def run() -> None:
        z.grad = None
        fn(z, targets, **kw).backward()

    return run


def interleaved_times(runs: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median and minimum ms per call of each function, calls alternating between the functions.

    The median is the number reported against the targets; the minimum shows what the code
    costs when no other process interferes (this machine is shared).
    """
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3} for name, t in times.items()}


def parallel_op_ms(repeats: int = 50) -> float:
    """Median time of one 512k-element float32 add: about 0.1 ms on two free cores; far more
    when other processes hold the cores and torch's worker threads wait for each other."""
    x = torch.randn(512_000)
    return interleaved_times({"add": lambda: torch.add(x, 1.0)}, repeats)["add"]["median_ms"]


def agreement(logits: torch.Tensor, targets: torch.Tensor, formulation: str, time_loop: bool = False) -> dict:
    """Largest differences between the kernel and the loop (float32 both); optionally the loop's time."""
    out, seconds = {}, 0.0
    for name, fn in (("fast", fast_ap_loss), ("loop", loop_ap_loss)):
        z = logits.clone().requires_grad_(True)
        start = time.perf_counter()
        loss = fn(z, targets, formulation=formulation)
        loss.backward()
        seconds = time.perf_counter() - start
        out[name] = (loss.item(), z.grad)
    result = {"loss_abs_diff": abs(out["fast"][0] - out["loop"][0]),
              "grad_max_abs_diff": (out["fast"][1] - out["loop"][1]).abs().max().item()}
    if time_loop:
        result["loop_seconds"] = seconds
    return result


# ----------------------------------------------------------------------------- memory probe
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(batch: int, classes: int, method: str) -> dict[str, float]:
    """Runs in the child process: extra peak resident memory of one forward+backward."""
    logits, targets = make_batch(batch, classes, "random")
    z = logits.requires_grad_(True)
    torch.ones(4).sum()  # let torch finish its own lazy start-up before measuring
    fn = fast_ap_loss if method == "fast" else loop_ap_loss
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current VmRSS
    before = _status_kb("VmRSS")
    fn(z, targets).backward()
    peak = _status_kb("VmHWM")
    return {"rss_before_mb": before / 1024, "peak_mb": peak / 1024, "extra_peak_mb": (peak - before) / 1024}


def measure_memory(batch: int, classes: int, method: str, threads: int | None) -> dict[str, float]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, __file__, "--memory-probe", f"{batch},{classes},{method}"]
    if threads:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the three checks
def check_small(repeats: int) -> dict:
    out = {}
    for kind in ("random", "separated"):
        logits, targets = make_batch(128, 100, kind)
        runs = {}
        for formulation in ("thesis", "interpolated"):
            runs[f"fast_{formulation}"] = fwd_bwd(fast_ap_loss, logits, targets, formulation=formulation)
            runs[f"loop_{formulation}"] = fwd_bwd(loop_ap_loss, logits, targets, formulation=formulation)
        t = interleaved_times(runs, repeats)
        out[kind] = {"times": t}
        for formulation in ("thesis", "interpolated"):
            fast, loop = t[f"fast_{formulation}"], t[f"loop_{formulation}"]
            out[kind][f"speedup_{formulation}"] = loop["median_ms"] / fast["median_ms"]
            out[kind][f"speedup_{formulation}_min"] = loop["min_ms"] / fast["min_ms"]
            out[kind][f"agreement_{formulation}"] = agreement(logits, targets, formulation)
    return out


def check_large(repeats: int, threads: int | None) -> dict:
    out = {}
    for kind in ("random", "separated"):
        logits, targets = make_batch(512, 1000, kind)
        runs = {f"fast_{f}": fwd_bwd(fast_ap_loss, logits, targets, formulation=f) for f in ("thesis", "interpolated")}
        out[kind] = {"times": interleaved_times(runs, repeats)}
    logits, targets = make_batch(512, 1000, "random")
    # the loop is slow at this size: one timed call, which is also the cross-check
    out["random"]["agreement_thesis"] = agreement(logits, targets, "thesis", time_loop=True)
    loop_ms = out["random"]["agreement_thesis"].pop("loop_seconds") * 1e3
    out["random"]["loop_thesis_one_call_ms"] = loop_ms
    out["random"]["speedup_thesis"] = loop_ms / out["random"]["times"]["fast_thesis"]["median_ms"]
    out["memory_fast"] = measure_memory(512, 1000, "fast", threads)
    pairs = 512 * 512 * 999
    out["dense_pair_matrix_mb"] = pairs * 4 / 2**20  # one float32 |P| x |N| matrix, for scale
    return out


def check_train_step(repeats: int) -> dict:
    classes = 100
    counts = [int(500 * (1 / 100) ** (c / (classes - 1))) for c in range(classes)]
    torch.manual_seed(0)
    model = BACKBONES.build("resnet32", num_classes=classes, head="linear")
    optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=2e-4)
    images = torch.randn(128, 3, 32, 32)
    targets = torch.randint(0, classes, (128,))
    losses = {"ce": LOSSES.build("ce", class_counts=counts),
              "ap_cb_delta": LOSSES.build("ap_cb_delta", class_counts=counts, beta=0.99)}

    def step(loss_fn) -> Callable[[], None]:
        def run() -> None:
            optim.zero_grad(set_to_none=True)
            loss_fn(model(images), targets).backward()
            optim.step()
        return run

    steps = interleaved_times({name: step(fn) for name, fn in losses.items()}, repeats)
    logits, _ = make_batch(128, classes, "random")
    loss_only = interleaved_times({name: fwd_bwd(fn, logits, targets) for name, fn in losses.items()}, 5 * repeats)
    ce, ap = steps["ce"], steps["ap_cb_delta"]
    return {
        "step_times": steps,
        "loss_only_times": loss_only,
        "step_ratio": ap["median_ms"] / ce["median_ms"],
        "step_ratio_min": ap["min_ms"] / ce["min_ms"],
        "step_ratio_from_loss_times": 1 + (loss_only["ap_cb_delta"]["median_ms"] - loss_only["ce"]["median_ms"])
        / ce["median_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        batch, classes, method = args.memory_probe.split(",")
        print(json.dumps(memory_probe(int(batch), int(classes), method)))
        return

    load_before = os.getloadavg()
    contention_before = parallel_op_ms()
    started = time.time()
    small = check_small(args.repeats)
    large = check_large(args.repeats, args.threads)
    step = check_train_step(max(5, args.repeats // 2))
    result = {
        "command": " ".join(["python", "benchmarks/loss_speed.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "parallel_add_512k_ms_before": contention_before, "parallel_add_512k_ms_after": parallel_op_ms(),
                    "seconds": time.time() - started},
        "a_small_B128_C100": small,
        "b_large_B512_C1000": large,
        "c_resnet32_step_B128_C100": step,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    _print_table(result)


def _print_table(r: dict) -> None:
    m = r["machine"]
    print(f"torch {m['torch']}, {m['torch_threads']} threads, {m['cpus']} CPUs; load average "
          f"{m['loadavg_before'][0]:.1f} before / {m['loadavg_after'][0]:.1f} after; one 512k add "
          f"{m['parallel_add_512k_ms_before']:.2f} / {m['parallel_add_512k_ms_after']:.2f} ms (~0.1 on free cores)")
    print("(a) B=128 C=100, forward+backward, ms (median / min)                          target >= 5x")
    for kind, v in r["a_small_B128_C100"].items():
        for f in ("thesis", "interpolated"):
            fast, loop = v["times"][f"fast_{f}"], v["times"][f"loop_{f}"]
            print(f"  {kind:9s} {f:12s} fast {fast['median_ms']:7.2f} / {fast['min_ms']:6.2f}   loop "
                  f"{loop['median_ms']:8.2f} / {loop['min_ms']:7.2f}   speed-up {v[f'speedup_{f}']:5.1f}x "
                  f"(min: {v[f'speedup_{f}_min']:.1f}x)")
    large = r["b_large_B512_C1000"]
    print("(b) B=512 C=1000, forward+backward, ms (median / min)                         target <= 150 ms")
    for kind in ("random", "separated"):
        t = large[kind]["times"]
        print(f"  {kind:9s} thesis {t['fast_thesis']['median_ms']:7.1f} / {t['fast_thesis']['min_ms']:6.1f}   "
              f"interpolated {t['fast_interpolated']['median_ms']:7.1f} / {t['fast_interpolated']['min_ms']:6.1f}")
    rnd = large["random"]
    print(f"  per-positive loop, one call: {rnd['loop_thesis_one_call_ms']:.0f} ms ({rnd['speedup_thesis']:.0f}x the "
          f"kernel's median); max |grad difference| {rnd['agreement_thesis']['grad_max_abs_diff']:.1e}")
    mem = large["memory_fast"]
    print(f"  extra peak memory of the kernel: {mem['extra_peak_mb']:.1f} MB                       target <= 512 MB "
          f"(one dense float32 |P|x|N| matrix: {large['dense_pair_matrix_mb']:.0f} MB)")
    s = r["c_resnet32_step_B128_C100"]
    st, lo = s["step_times"], s["loss_only_times"]
    print("(c) ResNet-32 SGD step, B=128 C=100, ms (median / min)                       target <= 1.05x")
    print(f"  ce {st['ce']['median_ms']:.1f} / {st['ce']['min_ms']:.1f}   ap_cb_delta {st['ap_cb_delta']['median_ms']:.1f}"
          f" / {st['ap_cb_delta']['min_ms']:.1f}   ratio {s['step_ratio']:.3f} (min: {s['step_ratio_min']:.3f})")
    print(f"  loss alone: ce {lo['ce']['median_ms']:.2f} ms, ap_cb_delta {lo['ap_cb_delta']['median_ms']:.2f} ms "
          f"-> step ratio from loss times {s['step_ratio_from_loss_times']:.3f}")


if __name__ == "__main__":
    main()
