"""Distributed correctness on CPU: 2 gloo processes against one process on the same global batch.

All rank-side work runs in one spawn of two processes (module fixture ``ranks``, see
``tests/_dist.py``); each test compares what the ranks returned with a single-process
computation here. Convention under test (ltrank.distributed): a batch-coupled loss returns the
single-process value on every rank, and the gradient of a rank's rows is ``world_size`` times
the single-process gradient of those rows, so that DDP's averaging gives the exact gradient.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist

from _dist import (
    AP_CASES,
    BASELINE_CASES,
    CENTROID_SIZES,
    STEP_CASES,
    WORLD,
    TinyNet,
    all_checks,
    centroids,
    eval_images,
    loss_and_grads,
    loss_inputs,
    one_step,
    rows,
    run_ranks,
    train_images,
)
from ltrank.data.batches import iterate_batches
from ltrank.data.samplers import class_aware_indices
from ltrank.data.sharding import eval_shard, local_batch_size, shard_order, shard_positions
from ltrank.distributed import all_reduce_sum, gather_shards, global_batch, is_distributed, rank, world_size
from ltrank.engine.evaluation import predict
from ltrank.errors import LtrankError
from ltrank.metrics import per_class_accuracy
from ltrank.models import resnet32
from ltrank.models.sync_bn import GlobalBatchNorm, maybe_sync_bn

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend",
)

TOL = 1e-6


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks(all_checks, WORLD, tmp_path_factory.mktemp("ranks"))


def _ids(cases):
    return ["-".join([c[0], *(f"{k}={v}" for k, v in c[1].items()), *c[2:]]) for c in cases]


# ----------------------------------------------------------------------------- helpers
def test_process_group_helpers(ranks):
    for r, out in enumerate(ranks):
        info = out["info"]
        assert (info["world_size"], info["rank"], info["is_distributed"]) == (WORLD, r, True)
        assert info["sum"].item() == 3.0  # 1 + 2


def test_helpers_are_the_identity_without_a_process_group():
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.arange(4)
    assert not is_distributed() and (world_size(), rank()) == (1, 0)
    gx, gy = global_batch(x, y)
    assert gx is x and gy is y
    assert gather_shards(y) is y and all_reduce_sum(x) is x


# ----------------------------------------------------------------------------- AP losses
GLOBAL_AP = [(i, c) for i, c in enumerate(AP_CASES) if c[1]["scope"] == "global"]
LOCAL_AP = [(i, c) for i, c in enumerate(AP_CASES) if c[1]["scope"] == "local"]


@pytest.mark.parametrize("index, case", GLOBAL_AP, ids=_ids([c for _, c in GLOBAL_AP]))
def test_global_ap_equals_one_process_on_the_global_batch(ranks, index, case):
    name, params, kind = case
    want = loss_and_grads(name, params, loss_inputs(name, kind), slice(None))
    for r, out in enumerate(ranks):
        got = out["ap"][index]
        assert abs(got["value"].item() - want["value"].item()) <= TOL
        # DDP averages the ranks' gradients: each rank carries world_size x its rows' gradient
        assert torch.allclose(got["logits_grad"] / WORLD, want["logits_grad"][rows(r)], atol=TOL, rtol=0)
        assert want["logits_grad"][rows(r)].abs().max() > 1e-3  # the rows do carry gradient


@pytest.mark.parametrize("index, case", LOCAL_AP, ids=_ids([c for _, c in LOCAL_AP]))
def test_local_ap_ranks_each_slice_alone_and_differs_from_global(ranks, index, case):
    name, params, kind = case
    inputs = loss_inputs(name, kind)
    single = loss_and_grads(name, params, inputs, slice(None))
    differences = []
    for r, out in enumerate(ranks):
        got = out["ap"][index]
        alone = loss_and_grads(name, params, inputs, rows(r))
        assert abs(got["value"].item() - alone["value"].item()) <= TOL
        assert torch.allclose(got["logits_grad"], alone["logits_grad"], atol=TOL, rtol=0)
        differences.append((got["logits_grad"] / WORLD - single["logits_grad"][rows(r)]).abs().max().item())
    mean_local = sum(out["ap"][index]["value"].item() for out in ranks) / WORLD
    # at least 100x the tolerance that the global scope meets, in the gradient and in the value
    assert max(differences) > 100 * TOL and abs(mean_local - single["value"].item()) > 100 * TOL


# ----------------------------------------------------------------------------- other losses
@pytest.mark.parametrize("index, case", list(enumerate(BASELINE_CASES)), ids=_ids(BASELINE_CASES))
def test_batch_global_losses_equal_one_process(ranks, index, case):
    name, params = case
    want = loss_and_grads(name, params, loss_inputs(name), slice(None))
    for r, out in enumerate(ranks):
        got = out["baselines"][index]
        assert abs(got["value"].item() - want["value"].item()) <= TOL
        assert torch.allclose(got["logits_grad"] / WORLD, want["logits_grad"][rows(r)], atol=TOL, rtol=0)
        if name == "drolt":
            assert torch.allclose(got["features_grad"] / WORLD, want["features_grad"][rows(r)], atol=TOL, rtol=0)
            # the radii see the same global loss on every rank: the single-process gradient, unscaled
            assert torch.allclose(got["radii_grad"], want["radii_grad"], atol=TOL, rtol=0)


def test_weighted_losses_would_differ_per_slice(ranks):
    """The global normaliser matters: the per-slice weighted CE is measurably different."""
    name, params = "ce", {"weighted": True}
    inputs = loss_inputs(name)
    single = loss_and_grads(name, params, inputs, slice(None))
    per_slice = [loss_and_grads(name, params, inputs, rows(r))["logits_grad"] / WORLD for r in range(WORLD)]
    assert (torch.cat(per_slice) - single["logits_grad"]).abs().max() > 1e-4


@pytest.mark.parametrize("n", CENTROID_SIZES)
def test_drolt_centroids_use_every_ranks_features(ranks, n):
    want = centroids(n)
    for out in ranks:
        assert torch.allclose(out["centroids"][CENTROID_SIZES.index(n)], want, atol=TOL, rtol=0)


# ----------------------------------------------------------------------------- evaluation
def test_sharded_evaluation_equals_one_process(ranks):
    images, labels = eval_images()
    want = predict(TinyNet(), images, labels, torch.device("cpu"), batch_size=4)
    assert len(set(want.tolist())) > 1  # a model that predicts several classes
    for out in ranks:
        assert torch.equal(out["predictions"], want)
        assert per_class_accuracy(out["predictions"], labels, 5) == per_class_accuracy(want, labels, 5)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [0, 1, 5, 23])
def test_eval_shards_cover_the_test_set_once(n, world):
    bounds = [eval_shard(n, world, r) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


# ----------------------------------------------------------------------------- sharded batches
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("sampler", ["shuffle", "class_aware"])
def test_sharded_batches_are_slices_of_the_single_process_batches(world, sampler):
    images, labels = train_images(50)
    batch = 12

    def order():
        g = torch.Generator().manual_seed(21)
        return class_aware_indices(labels, 50, g) if sampler == "class_aware" else torch.randperm(50, generator=g)

    def batches(**shard):
        return list(iterate_batches(images, labels, batch, shuffle=False, drop_last=True, augment=True,
                                    order=order(), generator=torch.Generator().manual_seed(22), **shard))

    single = batches()
    sharded = [batches(world_size=world, rank=r) for r in range(world)]
    assert len(single) == 50 // batch and all(len(s) == len(single) for s in sharded)
    for k, (x, y) in enumerate(single):
        assert torch.equal(torch.cat([s[k][0] for s in sharded]), x)  # same images, crops and flips
        assert torch.equal(torch.cat([s[k][1] for s in sharded]), y)
    full = order()
    for r in range(world):
        local = shard_order(full, batch, world, r)
        assert torch.equal(local.view(-1, batch // world), full[: 4 * batch].view(4, world, -1)[:, r])


def test_sharding_refuses_batches_that_do_not_split():
    with pytest.raises(LtrankError, match="does not split evenly over 4 processes; use a multiple of 4"):
        local_batch_size(10, 4)
    with pytest.raises(LtrankError):
        shard_positions(100, 10, 4, 0)
    images, labels = train_images(10)
    with pytest.raises(ValueError, match="drop_last"):
        next(iterate_batches(images, labels, 4, shuffle=False, drop_last=False, world_size=2, rank=0))
    assert local_batch_size(128, 4) == 32


def test_uneven_slices_are_refused_on_every_rank(ranks):
    for out in ranks:
        assert out["uneven"] is not None and "different shapes" in out["uneven"]
        assert "(5, 10)" in out["uneven"] and "(4, 10)" in out["uneven"]


# ----------------------------------------------------------------------------- one DDP step
def _max_param_diff(state, want):
    return max((state[k] - want[k]).abs().max().item() for k in want if want[k].is_floating_point() and k != "loss")


@pytest.mark.parametrize("index", [0, 3], ids=["sync_bn-ap_cb_delta-global", "sync_bn-ce_weighted"])
def test_ddp_step_with_sync_bn_equals_the_single_process_step(ranks, index):
    _, name, params = STEP_CASES[index]
    single = one_step(False, name, params, world=1)  # plain BatchNorm, the whole global batch
    initial = resnet32_state()
    assert _max_param_diff(single, initial) > 1e-3  # the step moved the parameters
    for out in ranks:
        state = out["steps"][index]
        assert abs(state["loss"].item() - single["loss"].item()) <= TOL
        for key, value in single.items():  # parameters, running statistics and the step count
            assert torch.allclose(state[key], value, atol=1e-5, rtol=0), key


@pytest.mark.parametrize("index", [1, 2], ids=["sync_bn-local_scope", "no_sync_bn"])
def test_ddp_step_differs_with_local_ranking_or_without_sync_bn(ranks, index):
    _, name, params = STEP_CASES[index]
    single = one_step(False, name, params, world=1)  # not distributed: scope makes no difference
    for out in ranks:
        assert _max_param_diff(out["steps"][index], single) > 1e-4
    # DDP still keeps the replicas' parameters identical
    learnable = [k for k in single if "running" not in k and "num_batches" not in k and k != "loss"]
    assert all(torch.equal(ranks[0]["steps"][index][k], ranks[1]["steps"][index][k]) for k in learnable)


def resnet32_state():
    torch.manual_seed(0)
    return resnet32(4).state_dict()


# ----------------------------------------------------------------------------- SyncBatchNorm
def test_sync_bn_without_a_process_group_is_plain_batchnorm():
    torch.manual_seed(0)
    plain = resnet32(4)
    synced = maybe_sync_bn(copy.deepcopy(plain), True)
    assert maybe_sync_bn(plain, False) is plain
    assert sum(isinstance(m, GlobalBatchNorm) for m in synced.modules()) == 31  # every BN of ResNet-32
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in synced.modules())
    x = torch.randn(6, 3, 8, 8)
    assert torch.equal(synced(x), plain(x))
    # same state_dict keys and values: checkpoints load either way
    assert list(synced.state_dict()) == list(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(synced.state_dict().values(), plain.state_dict().values()))
