"""What a resolved recipe must mean: the cross-checks run before any data is loaded.

Each check reads the components' capability flags (:mod:`ltrank.registry`), never their names:
a cosine-head loss on a linear head, a weighting schedule on a loss that ignores class weights, a
class-balanced loss under schedule 'none', a loss that trains on top of a trained model without
``train.init_from``. Then the settings a run would silently ignore (a class-weighted flag a
schedule overwrites, an LR milestone or DRW epoch after the last epoch, a warm-up longer than the
run) and a fixed-input-size timm model on images of another size. Every refusal is one
:class:`~ltrank.errors.LtrankError` line with its TOML location and the fix.
"""

from __future__ import annotations

from typing import Any

from ltrank.data.config import BUILTIN_IMAGE_SIZES
from ltrank.errors import LtrankError
from ltrank.recipe import LossConfig, Recipe
from ltrank.registry import (
    EPOCH_PARAM,
    NEEDS_CLASS_WEIGHTS,
    NEEDS_COSINE_HEAD,
    NEEDS_INIT_FROM,
    USES_CLASS_WEIGHTS,
)


def cross_check(recipe: Recipe, losses: Any) -> None:
    """Reject combinations that cannot train, before any data is loaded."""
    head = recipe.model.params.get("head")
    loss_names = [("loss", recipe.loss.name)] + [
        (f"train.stages[{i}].loss", s.loss.name) for i, s in enumerate(recipe.train.stages) if s.loss
    ]
    for where, name in loss_names:
        if losses.get(name).has(NEEDS_COSINE_HEAD) and head != "cosine":
            raise LtrankError(
                f"{where}.name: loss {name!r} needs a cosine classifier head but model.params.head is {head!r}; "
                "set [model.params] head = \"cosine\""
            )
    if recipe.schedule.name != "none" and not all(losses.get(n).has(USES_CLASS_WEIGHTS) for _, n in loss_names):
        unweighted = next(n for _, n in loss_names if not losses.get(n).has(USES_CLASS_WEIGHTS))
        raise LtrankError(
            f"schedule.name: schedule {recipe.schedule.name!r} hands class weights to the loss, but loss "
            f"{unweighted!r} does not use class weights; use schedule 'none' or a class-weighted loss"
        )
    if recipe.schedule.name == "none":
        for where, name in loss_names:
            if losses.get(name).has(NEEDS_CLASS_WEIGHTS):
                raise LtrankError(
                    f"schedule.name: loss {name!r} ({where}) is class-balanced, but schedule 'none' would train it "
                    "unweighted; set [schedule] name = \"fixed\" (or \"progressive\")"
                )
    pretrained = [n for _, n in loss_names if losses.get(n).has(NEEDS_INIT_FROM)]
    if pretrained and not recipe.train.init_from:
        raise LtrankError(
            f"train.init_from: loss {pretrained[0]!r} trains on top of a trained model (DRO-LT: the matching '-ce' "
            "recipe's run); first train that run, then pass --set train.init_from=recipe:<its recipe> (or a checkpoint path)"
        )
    check_meaning(recipe, losses)


def check_meaning(recipe: Recipe, losses: Any) -> None:
    """Refuse a recipe that cannot mean what it says, so a record never claims what did not run.

    A loss's ``weighted = true`` that the schedule overwrites every epoch; epoch numbers (LR
    milestones, the warm-up length, params marked ``EPOCH_PARAM`` such as DRW's ``start_epoch``)
    past the last epoch; a fixed-input-size timm model that does not fit the images (checked
    where the image size is known without loading data: CIFAR). Raises a one-line LtrankError.
    """
    _check_weighted_flags(recipe, losses)
    _check_epoch_numbers(recipe, losses)
    _check_input_size(recipe)


def _stage_losses(recipe: Recipe) -> list[tuple[str, LossConfig]]:
    """(TOML location, config) of the recipe's loss and of every stage's own loss."""
    return [("loss", recipe.loss)] + [
        (f"train.stages[{i}].loss", s.loss) for i, s in enumerate(recipe.train.stages) if s.loss
    ]


def _check_weighted_flags(recipe: Recipe, losses: Any) -> None:
    """``weighted = true`` only means something when the weights in force stay class-balanced.

    The trainer hands a class-weighted loss the schedule's weights before every epoch, so the
    flag's starting weights are always replaced: by ones under 'none' (the run is unweighted),
    by the schedule's own weights under 'progressive' or 'drw'. Only 'fixed' keeps them.
    """
    schedule = recipe.schedule.name
    if schedule == "fixed":
        return
    for where, config in _stage_losses(recipe):
        if config.params.get("weighted") is not True or not losses.get(config.name).has(USES_CLASS_WEIGHTS):
            continue
        if schedule == "none":
            raise LtrankError(
                f"{where}.params.weighted: true, but schedule 'none' gives the loss all-ones weights every epoch, "
                f"so {config.name!r} would train unweighted; set [schedule] name = \"fixed\" for class-balanced "
                "weights throughout, or remove weighted"
            )
        raise LtrankError(
            f"{where}.params.weighted: true has no effect, schedule {schedule!r} sets the class weights every epoch; "
            "remove weighted, or use [schedule] name = \"fixed\" for class-balanced weights throughout"
        )


def _check_input_size(recipe: Recipe) -> None:
    """A ``timm/`` model with a fixed input size must be told the CIFAR image size."""
    from ltrank.models.timm_adapter import check_timm_input_size
    from ltrank.catalog import BACKBONES

    backbone = recipe.model.backbone
    size = BUILTIN_IMAGE_SIZES.get(recipe.data.source)
    if size is None or not backbone.startswith("timm/") or BACKBONES.origin(backbone) != "built-in":
        return
    check_timm_input_size(backbone[len("timm/"):], size, recipe.model.params.get("img_size"))


def _check_epoch_numbers(recipe: Recipe, losses: Any) -> None:
    """Epoch numbers past the last epoch would never fire; the fix names the valid range."""
    from ltrank.catalog import SCHEDULES

    last = recipe.train.epochs
    if not recipe.train.stages:  # stages run at constant rates: milestones and warm-up do not apply
        late = [m for m in recipe.train.milestones if m > last]
        if late:
            example = sorted({max(1, round(last * 0.8)), max(1, round(last * 0.9))})
            raise LtrankError(
                f"train.milestones: {late} {'is' if len(late) == 1 else 'are'} after the last epoch ({last}), so the "
                f"learning rate would never decay there; give epochs within 1..{last} (e.g. --set "
                f"'train.milestones={example}', at 80% and 90% of the run as in the thesis) or [] for no decay"
            )
        if recipe.train.warmup_epochs > last:
            raise LtrankError(
                f"train.warmup_epochs: {recipe.train.warmup_epochs} is longer than the run ({last} epochs), so the "
                f"learning rate would never reach train.lr; set warmup_epochs to at most {last} (0 for none)"
            )
    components = [(SCHEDULES, "schedule", recipe.schedule.name, recipe.schedule.params)]
    components += [(losses, where, c.name, c.params) for where, c in _stage_losses(recipe)]
    for registry, where, name, params in components:
        for key, info in registry.get(name).params.model_fields.items():
            value = params.get(key)
            if info.json_schema_extra == EPOCH_PARAM and isinstance(value, int) and value > last:
                raise LtrankError(
                    f"{where}.params.{key}: epoch {value} is after the last epoch ({last}), so it would never "
                    f"take effect; set it within 1..{last}, or train for more epochs"
                )
