"""The training loop of docs/method.md section 3 (plus the stages of section 6 for DRO-LT, and
the decoupled-training stages of docs/recipes.md: cRT, LWS, post-hoc adjustments).

Per epoch: pick the phase (a cRT or LWS phase first prepares the model; new optimiser at a
phase's first epoch), set the learning rate,
call the loss's epoch hook (``loss.epoch_start(ctx)``: the loss consults the weighting schedule
for its class weights, DRO-LT recomputes its centroids), train on shuffled (or class-aware)
batches augmented on the device, evaluate on the test set when due, then call ``on_epoch_end``
so the caller can write a checkpoint and the run record. Everything the loop does is reported
as events; nothing is printed. A non-finite loss or logit raises :class:`Diverged`, and a stop
request (Ctrl-C, SIGTERM) raises :class:`Interrupted` at the next batch boundary; either way the
epoch is abandoned, so the last checkpoint stays the last good one. A recipe whose one stage
is post-hoc (tau-norm, logit-adjust, ncm) trains 0 epochs: :meth:`Trainer.fit` applies the
adjustment to the model it starts from and evaluates that once (metrics of "epoch 0").

With several processes (torchrun, docs/distributed.md) every rank runs this loop on its slice
of the same global batches; the differences live in :mod:`ltrank.engine.parallel` and are
called at marked places: the DDP wrapper per phase, divergence and stop decided together,
the epoch's totals summed over the ranks, rank 0's buffers shared at epoch ends, and sharded
evaluation gathered into one prediction vector.

The trainer only trains: the run folder, its record and lock, signals and every way a run ends
belong to :mod:`ltrank.engine.run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice
from typing import Any, Optional

import numpy as np
import torch

from ltrank.data.batches import num_batches
from ltrank.data.sharding import local_batch_size
from ltrank.distributed import any_rank, gather_shards, rank, world_size
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.components import (
    build_model,
    build_optimizer,
    build_phase_losses,
    build_schedule,
    phase_method,
    posthoc_stage,
    prepare_phase,
)
from ltrank.engine.device import autocast_for, place_model, to_model_layout
from ltrank.engine.evaluation import accuracy, predict_batches
from ltrank.engine.feeds import Caps, Sharding, TrainingData, full_batches, make_feed
from ltrank.engine.events import (
    BatchEnded,
    Callback,
    EpochEnded,
    EpochStarted,
    EvalEnded,
    EvalStarted,
    FeaturePassEnded,
    FeaturePassStarted,
    Notice,
    PassProgress,
    ignore,
)
from ltrank.engine.parallel import batch_verdict, data_parallel, epoch_totals, prepare_model, share_buffers
from ltrank.engine.phases import Phase, lr_at, phase_at, phases
from ltrank.engine.state import Diverged, Interrupted, TrainState, check_scalar, seed_everything
from ltrank.errors import LtrankError
from ltrank.losses.base import EpochContext
from ltrank.metrics import make_metrics
from ltrank.models.probe import check_backbone_input
from ltrank.recipe import Recipe
from ltrank.records import InitSource

class Trainer:
    """Trains one model with one seed on data already in memory."""

    def __init__(self, recipe: Recipe, data: TrainingData, *, seed: int, device: torch.device,
                 callback: Callback = ignore, init_model: Optional[dict[str, torch.Tensor]] = None,
                 init_source: Optional[InitSource] = None,
                 should_stop: Callable[[], bool] = lambda: False, workers: int = 0,
                 sharding: Optional[Sharding] = None) -> None:
        """``data`` is held in memory or streamed from disk (:mod:`ltrank.engine.feeds`; ``workers``
        decoding processes for a streamed source). ``should_stop`` is polled after every batch;
        when it returns True the trainer raises :class:`Interrupted` (the run lifecycle sets it
        from signal handlers). ``init_source`` describes the run ``init_model`` comes from (a
        post-hoc logit adjustment reads its ``logit_scale``). ``sharding``: this process's place
        among the data-parallel processes, by default that of the torch.distributed process group
        (one process when there is none); ``recipe.train.batch_size`` stays the global batch and
        must split evenly over them (else :class:`LtrankError`)."""
        sharding = Sharding(world_size(), rank()) if sharding is None else sharding
        local_batch_size(recipe.train.batch_size, sharding.world_size)
        self.recipe, self.data, self.seed, self.device, self.callback = recipe, data, seed, device, callback
        self.sharding = sharding
        self.should_stop = should_stop
        self.total_epochs = recipe.train.epochs
        self.phases = phases(recipe.train)
        self.feed = make_feed(data, recipe.data, seed=seed, device=device, batch_size=recipe.train.batch_size,
                              eval_batch_size=recipe.eval.batch_size, workers=workers, sharding=sharding,
                              caps=Caps.of(recipe))
        if self.total_epochs:  # a post-hoc run takes no batch
            self._check_batches()
        seed_everything(seed)
        self.model = build_model(recipe, data.num_classes)
        if init_model is not None:
            self._load_init(init_model)
        place_model(self.model, device)
        check_backbone_input(self.model, self.feed.image_shape, data.num_classes, recipe.model.backbone)
        self.model = prepare_model(self.model, recipe.train.sync_bn)  # distributed: synchronised BatchNorm
        # the training forward may be compiled (speed only); state dicts, evaluation and hooks use the model itself
        self.forward = torch.compile(self.model) if recipe.train.compile else self.model
        self.losses = build_phase_losses(recipe, self.phases, data.class_counts)
        for loss in self.losses:
            loss.module.to(device)
        self.schedule = build_schedule(recipe)
        self.state = TrainState()
        self.optimizer: Optional[torch.optim.SGD] = None
        self.phase: Optional[Phase] = None
        self.frozen: list[torch.nn.Module] = []
        self._pending_optimizer_state: Optional[dict[str, Any]] = None
        self._prepared_phase: Optional[int] = None  # the phase prepare_phase last ran for
        self.posthoc = posthoc_stage(recipe)
        self.logit_scale = self._check_posthoc(init_source)

    def _load_init(self, state: dict[str, torch.Tensor]) -> None:
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise LtrankError(
                f"train.init_from: the checkpoint does not fit this recipe's model ({first}); "
                "start from a run of the same backbone, head and dataset"
            ) from None

    def _check_posthoc(self, source: Optional[InitSource]) -> float:
        """Refuse, before any work, a post-hoc stage that cannot apply; the logit scale it uses."""
        from ltrank.rebalance.posthoc import check_posthoc  # it imports the engine: not at module load

        if self.posthoc is None:
            return 1.0
        return check_posthoc(self.posthoc, self.model, class_counts=self.data.class_counts, has_validation=False,
                             logit_scale=source.logit_scale if source is not None else None)

    # ------------------------------------------------------------------ geometry
    @property
    def batches_per_epoch(self) -> int:
        n = full_batches(self.feed.num_train, self.recipe.train.batch_size)
        cap = self.recipe.train.max_batches_per_epoch
        return min(n, cap) if cap else n

    def _check_batches(self) -> None:
        """An epoch without a single full batch cannot train (drop_last): say so before any work."""
        n, batch = self.feed.num_train, self.recipe.train.batch_size
        if full_batches(n, batch) == 0:
            raise LtrankError(
                f"train.batch_size: the training set has {n} images, fewer than one batch of {batch} "
                f"(incomplete batches are dropped); set train.batch_size to at most {n}"
            )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after ``progress.epoch`` (tensors and plain data only)."""
        p = self.state
        return {
            "seed": self.seed,
            "world_size": self.sharding.world_size,  # a resume may use another (checkpoints are at epoch ends)
            "epoch": p.epoch,
            # a post-hoc run trains no phase: its checkpoint is of its one (post-hoc) phase
            "phase": self.phase.index if self.phase is not None else self.phases[-1].index,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "losses": [loss.module.state_dict() for loss in self.losses],
            "rng": ckpt.capture_rng(self.feed.generators),
            "history": p.history,
            "final": p.final,
            "best": p.best,
            "train_seconds": p.train_seconds,
            "eval_seconds": p.eval_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`state_dict` (call before :meth:`fit`).

        A checkpoint of a cRT or LWS phase holds the model as that phase prepared it (LWS: a
        wrapped head), so the phase is prepared first; the loaded weights then replace the
        re-drawn cRT head, and the phase is not prepared again when training continues in it.
        """
        phase = self.phases[int(state["phase"])]
        if phase_method(phase) in ("crt", "lws"):
            self.frozen = prepare_phase(self.model, phase, self.recipe.model.backbone)
            self._prepared_phase = phase.index
        self.model.load_state_dict(state["model"])
        for loss, loss_state in zip(self.losses, state["losses"]):
            loss.module.load_state_dict(loss_state)
        self.state = TrainState(
            epoch=int(state["epoch"]), history=list(state["history"]), final=state["final"], best=state["best"],
            train_seconds=float(state["train_seconds"]), eval_seconds=float(state["eval_seconds"]),
        )
        # The optimiser is rebuilt when the next epoch's phase starts; its state carries over
        # only if that epoch is in the same phase as the checkpoint's.
        if self.state.epoch < self.total_epochs:
            next_phase = phase_at(self.state.epoch + 1, self.recipe.train)
            if next_phase.index == int(state["phase"]):
                self._pending_optimizer_state = state["optimizer"]
        ckpt.restore_rng(state["rng"], self.feed.generators)

    # ------------------------------------------------------------------ the loop
    def fit(self, on_epoch_end: Callable[["Trainer"], None] = lambda trainer: None) -> TrainState:
        """Train from ``state.epoch + 1`` to the last epoch."""
        for epoch in range(self.state.epoch + 1, self.total_epochs + 1):
            if any_rank(self.should_stop()):  # distributed: all ranks stop, or none
                raise Interrupted(epoch, 0)
            self._enter_phase(epoch)
            start = time.perf_counter()
            train_loss, train_acc, lr = self._train_epoch(epoch)
            train_seconds = time.perf_counter() - start
            metrics = self._maybe_evaluate(epoch)
            test_acc = None if metrics is None else metrics["top1"]
            seconds = time.perf_counter() - start
            p = self.state
            p.epoch = epoch
            p.train_seconds += train_seconds
            p.eval_seconds += seconds - train_seconds
            p.history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                              "test_acc": test_acc, "seconds": seconds})
            on_epoch_end(self)
            self.callback(EpochEnded(epoch, self.total_epochs, lr, train_loss, train_acc, test_acc, seconds,
                                     None if metrics is None else metrics["groups"]))
        if self.posthoc is not None and self.state.final is None:
            self._adjust_and_evaluate()
            on_epoch_end(self)
        return self.state

    def _adjust_and_evaluate(self) -> None:
        """The post-hoc stage: adjust the model (it stays as loaded; the checkpoint keeps it) and
        evaluate the adjusted one; its metrics ("epoch 0") are the run's final and best."""
        from ltrank.data import LongTailedData
        from ltrank.rebalance.posthoc import Split, build_posthoc  # it imports the engine: not at module load

        assert self.posthoc is not None
        start = time.perf_counter()
        train = Split(self.data.train_images, self.data.train_labels) if isinstance(self.data, LongTailedData) else None
        result = build_posthoc(self.posthoc, self.model, class_counts=self.data.class_counts, device=self.device,
                               train=train, validation=None, batch_size=self.recipe.eval.batch_size,
                               logit_scale=self.logit_scale)
        self.callback(Notice(f"evaluating the model of train.init_from with {result.label}"))
        metrics = self._test_metrics(result.model, self.state.epoch)
        self.state.final = self.state.best = metrics
        self.state.eval_seconds += time.perf_counter() - start

    def _enter_phase(self, epoch: int) -> None:
        phase = phase_at(epoch, self.recipe.train)
        if self.phase is not None and phase.index == self.phase.index:
            return
        self.phase = phase
        if self._prepared_phase != phase.index:  # a resumed cRT phase must not re-draw its trained head
            self.frozen = prepare_phase(self.model, phase, self.recipe.model.backbone)
            self._prepared_phase = phase.index
        loss = self.losses[phase.index].module
        self.optimizer = build_optimizer(self.model, loss, phase, self.recipe)
        if self._pending_optimizer_state is not None:
            self.optimizer.load_state_dict(self._pending_optimizer_state)
            self._pending_optimizer_state = None
        self._wrap_for_phase()

    def _wrap_for_phase(self) -> None:
        """Distributed: the training forward is DDP over the parameters this phase trains."""
        if self.sharding.world_size > 1:
            wrapped = data_parallel(self.model, self.device)
            self.forward = torch.compile(wrapped) if self.recipe.train.compile else wrapped

    def _batches(self, epoch: int):
        """This epoch's augmented training batches, in shuffled or class-aware order."""
        sampler = self.phase.stage.sampler if self.phase and self.phase.stage is not None else "shuffle"
        return self.feed.train_batches(epoch, self.recipe.train.batch_size, sampler)

    def _feature_batches(self, epoch: int):
        """Un-augmented training batches for a loss's epoch-start pass (DRO-LT centroids), reported
        as events; capped like the epoch by ``train.max_batches_per_epoch`` (every class kept)."""
        batch_size = self.recipe.eval.batch_size
        images = self.feed.feature_count
        batches = num_batches(images, batch_size, drop_last=False)
        self.callback(FeaturePassStarted(epoch, images, batches))
        start = time.perf_counter()
        for b, (x, y) in enumerate(self.feed.feature_batches(batch_size), start=1):
            yield to_model_layout(x), y
            self.callback(PassProgress(b, batches))
        self.callback(FeaturePassEnded(epoch, time.perf_counter() - start))

    def _train_epoch(self, epoch: int) -> tuple[float, float, float]:
        assert self.optimizer is not None and self.phase is not None
        loss = self.losses[self.phase.index]
        lr = lr_at(epoch, self.recipe.train)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        epoch_start = getattr(loss.module, "epoch_start", None)
        if callable(epoch_start):  # the one per-epoch hook of every loss (class weights, DRO-LT centroids)
            epoch_start(EpochContext(epoch, self.total_epochs, schedule=self.schedule, model=self.model,
                                     feature_batches=lambda: self._feature_batches(epoch), device=self.device))
        batches = self.batches_per_epoch
        self.callback(EpochStarted(epoch, self.total_epochs, lr, batches))
        self.model.train()
        for part in self.frozen:
            part.eval()  # a frozen encoder keeps its BatchNorm statistics too
        sync_every = 1 if self.device.type == "cpu" else 25  # .item() stalls an asynchronous GPU
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        bad_logits = torch.zeros((), dtype=torch.bool, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        for b, (x, y) in enumerate(islice(self._batches(epoch), batches), start=1):
            with autocast_for(self.device):
                if loss.needs_features:
                    logits, features = self.forward(to_model_layout(x), return_features=True)
                else:
                    logits, features = self.forward(to_model_layout(x)), None
            logits = logits.float()
            value = (loss.module(logits, y, features=features.float()) if features is not None
                     else loss.module(logits, y))
            if b == 1:
                check_scalar(value, loss.name)
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            self.optimizer.step()
            detached = logits.detach()
            loss_sum += value.detach()
            # a bounded loss (AP) can stay finite while the model blows up: watch the logits too
            bad_logits |= ~torch.isfinite(detached).all()
            correct += (detached.argmax(dim=1) == y).sum()
            seen += len(y)
            alone = self.sharding.world_size == 1
            if b % sync_every == 0 or b == batches:
                last = value.item()
                # distributed: one rank's NaN or stop request stops every rank at this batch
                diverged, stop = batch_verdict(loss_sum, bad_logits, False if alone else self.should_stop())
                if diverged:
                    mine = not (torch.isfinite(loss_sum).item() and np.isfinite(last)) or bool(bad_logits.item())
                    raise Diverged(epoch, b, last if not np.isfinite(last) else float(loss_sum.item()), not mine)
                self.callback(BatchEnded(epoch, b, batches, last))
                if stop:
                    raise Interrupted(epoch, b)
            if alone and self.should_stop():
                raise Interrupted(epoch, b)
        share_buffers(self.model)  # distributed: rank 0's BatchNorm statistics on every rank
        total_loss, total_correct, total_seen = epoch_totals(loss_sum, correct, seen)
        return total_loss / batches, 100.0 * total_correct / max(total_seen, 1), lr

    def _maybe_evaluate(self, epoch: int) -> Optional[dict[str, Any]]:
        """The test metrics after ``epoch`` (a ``Metrics`` dict) when it is evaluated, else None."""
        cfg = self.recipe.eval
        if epoch % cfg.every and epoch != self.total_epochs:
            return None
        metrics = self._test_metrics(self.model, epoch)
        p = self.state
        if p.best is None or metrics["top1"] > p.best["top1"]:
            p.best = metrics
        if epoch == self.total_epochs:
            p.final = metrics
        return metrics

    def _test_metrics(self, model: torch.nn.Module, epoch: int) -> dict[str, Any]:
        """``model``'s test metrics after ``epoch`` (a :class:`~ltrank.records.Metrics` as a dict),
        the pass reported as events."""
        batch_size = self.recipe.eval.batch_size
        images = self.feed.test_count
        batches = num_batches(images, batch_size, drop_last=False)
        self.callback(EvalStarted(epoch, images, batches))
        start = time.perf_counter()
        preds, labels = predict_batches(model, self.feed.test_batches(batch_size), self.device,
                                        on_batch=lambda b, n: self.callback(PassProgress(b, n)), total=batches)
        # distributed: each rank predicted its shard; every rank scores the whole test set
        acc = accuracy(gather_shards(preds), gather_shards(labels), self.data.num_classes)
        metrics = make_metrics(epoch, acc.per_class, self.data.class_counts, top1=acc.top1).model_dump(mode="json")
        self.callback(EvalEnded(epoch, metrics["top1"], time.perf_counter() - start))
        return metrics
