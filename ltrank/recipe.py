"""Recipes: one TOML file per experiment, validated in two stages, resolved, and hashed.

Stage 1 (shape) checks the tables and keys of the file against :class:`Recipe` (every model
forbids unknown keys). Stage 2 validates each named component's ``params`` against the schema
its registry entry owns, so a typo reports its TOML location (``loss.params.beta: ...``).
Cross-checks (:mod:`ltrank.recipe_checks`) then reject combinations that cannot train or
would not mean what they say. The *resolved* recipe has every default filled in; its config
hash identifies the experiment: seeds, paths and display-only settings are left out of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltrank.data.config import DatasetConfig
from ltrank.errors import LtrankError, did_you_mean, format_validation_error
from ltrank.groups import SchemeName

#: Keys left out of the config hash: they say where things are, describe, or only change how
#: results are shown, not what is computed. (``data.source`` stays in: a different npz file or
#: folder is different data.)
HASH_EXCLUDED = (("train", "init_from"), ("description",), ("eval", "groups"), ("train", "compile"))
#: Keys added after runs were recorded, with their default: left out of the hash while they hold
#: it, so that adding them changed no existing config hash.
HASH_EXCLUDED_WHEN_DEFAULT = ((("eval", "max_batches"), None), (("train", "sync_bn"), False))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inf/nan: "must be a finite number"


class ModelConfig(_Section):
    backbone: str = Field("resnet32", description="backbone registry name, e.g. 'resnet32' or 'timm/resnet18'")
    params: dict[str, Any] = Field(default_factory=dict, description="the backbone's params, e.g. head = 'cosine'")


class LossConfig(_Section):
    name: str = Field(..., description="loss registry name, e.g. 'ap_cb_delta' (see 'ltrank list losses')")
    params: dict[str, Any] = Field(default_factory=dict, description="the loss's hyperparameters")


class ScheduleConfig(_Section):
    name: str = Field("none", description="weighting schedule: none, fixed, progressive, drw")
    params: dict[str, Any] = Field(default_factory=dict, description="the schedule's params")


#: Stage methods that train (``train``: the parameters ``trainable`` names; cRT and LWS: the
#: re-balancing stages of ``ltrank.rebalance``) and that only adjust a trained model (0 epochs).
TRAINING_METHODS = ("train", "crt", "lws")
POSTHOC_METHODS = ("tau-norm", "logit-adjust", "ncm")
StageMethod = Literal["train", "crt", "lws", "tau-norm", "logit-adjust", "ncm"]


class StageConfig(_Section):
    """One stage of a multi-stage run (DRO-LT, decoupled training): its own optimiser and lr.

    Keys left unset are filled in when the recipe is resolved, by ``method`` (docs/recipes.md):
    a post-hoc stage (tau-norm, logit-adjust, ncm) trains nothing and takes only ``tau``.
    """

    method: StageMethod = Field(
        "train", description="'train' (the parameters 'trainable' names), 'crt' or 'lws' (classifier re-balancing), "
        "or a post-hoc adjustment with 0 epochs: 'tau-norm', 'logit-adjust', 'ncm'")
    epochs: Optional[int] = Field(None, ge=0, description="epochs in this stage (0, or unset, for a post-hoc stage)")
    lr: Optional[float] = Field(None, gt=0, description="learning rate of this stage (training stages)")
    lr_schedule: Optional[Literal["constant", "cosine"]] = Field(
        None, description="'constant' (default) or 'cosine' (annealed per epoch from lr towards 0 over the stage)")
    weight_decay: Optional[float] = Field(None, ge=0, description="weight decay of this stage (training stages)")
    trainable: Optional[Literal["all", "encoder", "head"]] = Field(
        None, description="parameters that train (method 'train', default 'all'); the rest are frozen (frozen "
        "BatchNorm keeps its statistics). cRT trains the head, LWS its per-class scales")
    loss: Optional[LossConfig] = Field(None, description="loss for this stage; default: the recipe's [loss]")
    sampler: Optional[Literal["shuffle", "class_aware"]] = Field(
        None, description="'shuffle' (every image once per epoch; default of 'train') or 'class_aware' (classes "
        "equally often; default of 'crt' and 'lws')")
    tau: Optional[float] = Field(None, ge=0, description="tau of a 'tau-norm' or 'logit-adjust' stage")


class TrainConfig(_Section):
    """docs/method.md section 3 protocol; defaults are the thesis settings."""

    epochs: int = Field(200, ge=0, description="training epochs (with stages: their sum, filled in when resolved; "
                        "0 only for a post-hoc stage)")
    batch_size: int = Field(128, gt=0, description="images per batch (drop_last)")
    lr: float = Field(0.1, gt=0, description="peak learning rate")
    lr_schedule: Literal["step", "cosine"] = Field(
        "step",
        description="'step': warm-up, then lr times gamma at each milestone (docs/method.md section 3); 'cosine': "
        "warm-up, then a half cosine from lr towards 0 over the remaining epochs, set per epoch (Kang et al., "
        "ICLR 2020); milestones and gamma are ignored",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(True, description="Nesterov momentum")
    weight_decay: float = Field(2e-4, ge=0, description="weight decay on all parameters")
    warmup_epochs: int = Field(5, ge=0, description="epochs of linear warm-up (epoch 1 uses lr * warmup_start_factor)")
    warmup_start_factor: float = Field(1 / 3, gt=0, le=1, description="warm-up starts at lr times this")
    milestones: list[int] = Field([160, 180], description="epochs (1-indexed) from which lr is multiplied by gamma")
    gamma: float = Field(0.01, gt=0, le=1, description="lr factor at each milestone")
    max_batches_per_epoch: Optional[int] = Field(
        None, gt=0, description="stop each epoch after this many batches (smoke runs only)"
    )
    init_from: Optional[str] = Field(
        None,
        description="start from a trained model: a checkpoint.pt, a run directory, or 'recipe:NAME' "
        "(that recipe's finished run with the same seed under the same --out); '{seed}' is replaced",
    )
    stages: list[StageConfig] = Field(default_factory=list,
                                      description="multi-stage training (DRO-LT, decoupled training)")
    compile: bool = Field(
        False, description="run the model through torch.compile (CUDA fast path; speed only, not part of the config "
        "hash: results agree with eager mode up to float rounding)",
    )
    sync_bn: bool = Field(
        False, description="with several processes (torchrun), BatchNorm statistics over the global batch instead of "
        "each process's slice, so that N processes train as one (docs/distributed.md); one process computes the "
        "same either way. Part of the config hash when true",
    )

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: list[int]) -> list[int]:
        if sorted(milestones) != milestones or any(m < 1 for m in milestones):
            raise ValueError("milestones must be increasing epochs >= 1")
        return milestones


class EvalConfig(_Section):
    groups: SchemeName = Field(
        "thirds", description="class groups 'ltrank eval' and 'ltrank compare' show by default (docs/method.md section 2); "
        "display only, not part of the config hash")
    every: int = Field(1, gt=0, description="evaluate on the test set every this many epochs (and after the last)")
    batch_size: int = Field(1000, gt=0, description="images per evaluation batch")
    max_batches: Optional[int] = Field(
        None, gt=0, description="test on at most this many batches, every class kept (smoke runs only: it changes "
        "the numbers, so it is part of the config hash and the run record warns)")


class Recipe(_Section):
    """A whole recipe file."""

    description: str = Field("", description="one line shown by 'ltrank list recipes'")
    data: DatasetConfig = Field(..., description="the long-tailed dataset")
    model: ModelConfig = Field(default_factory=ModelConfig, description="backbone and head")
    loss: LossConfig = Field(..., description="the loss")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="class-weighting schedule")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation protocol")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")


@dataclass(frozen=True)
class ResolvedRecipe:
    """A validated recipe with every default filled in, and where it came from."""

    name: str
    source: str
    recipe: Recipe
    overrides: tuple[str, ...] = field(default=())  # the --set values applied, in order

    def as_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain JSON-able data (what run records store)."""
        return self.recipe.model_dump(mode="json")

    @property
    def config_hash(self) -> str:
        return config_hash(self.as_dict())


# ------------------------------------------------------------------------------------ loading
def recipes_dir() -> Path:
    """The folder of the recipes shipped with ltrank."""
    return Path(str(resources.files("ltrank") / "recipes"))


def shipped_recipes() -> list[str]:
    """Names of the shipped recipes, sorted."""
    from ltrank.registry import natural_key

    return sorted((p.stem for p in recipes_dir().glob("*.toml")), key=natural_key)


def find_recipe(name_or_path: str) -> Path:
    """A shipped recipe name (``cifar10-ir100-ap``) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():  # not a folder: '--out quickstart' must not hide the recipe
        if not path.is_file():
            raise LtrankError(f"recipe file {path} not found; give a shipped recipe name or an existing .toml file")
        return path
    shipped = recipes_dir() / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    raise LtrankError(
        f"unknown recipe {name_or_path!r}{did_you_mean(name_or_path, shipped_recipes())}; "
        "run 'ltrank list recipes' or pass a path to a .toml file"
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names file and line, a file that is not UTF-8 the byte."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a BOM (Windows editors) is fine
    except UnicodeDecodeError as exc:
        raise LtrankError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "TOML recipes must be UTF-8: save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise LtrankError(f"{path}: TOML syntax error: {exc}; fix the file") from None
    except OSError as exc:
        raise LtrankError(f"{path}: cannot read recipe ({exc.strerror})") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``dotted.key=value`` -> (keys, value); the value is read as TOML, else kept as a string."""
    key, sep, raw = text.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(k.strip() for k in keys):
        raise LtrankError(f"--set {text!r}: expected dotted.key=value, e.g. --set loss.params.beta=0.999")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return [k.strip() for k in keys], value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to the raw recipe data (before validation)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise LtrankError(f"--set {text!r}: {'.'.join(keys[: i + 1])} is a value, not a table")
            node = child
        node[keys[-1]] = value
    return raw


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> ResolvedRecipe:
    """Find, read, override, validate and resolve a recipe."""
    path = find_recipe(name_or_path)
    raw = apply_overrides(read_toml(path), list(overrides or []))
    name = path.stem
    try:
        recipe = resolve(raw)
    except LtrankError as exc:
        raise LtrankError(f"recipe {name} ({path}): {exc}") from None
    return ResolvedRecipe(name=name, source=str(path), recipe=recipe, overrides=tuple(overrides or ()))


# ------------------------------------------------------------------------------------ resolving
def resolve(raw: dict[str, Any]) -> Recipe:
    """Validate raw recipe data in two stages and fill in every default."""
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise LtrankError(format_validation_error(exc, "", Recipe).strip()) from None
    from ltrank.catalog import BACKBONES, LOSSES, SCHEDULES

    model_params = _validate(BACKBONES, recipe.model.backbone, recipe.model.params, "model")
    loss = _resolve_loss(recipe.loss, "loss")
    schedule_params = _validate(SCHEDULES, recipe.schedule.name, recipe.schedule.params, "schedule")
    stages = [
        _resolve_stage(s, i, recipe.train).model_copy(
            update={"loss": _resolve_loss(s.loss, f"train.stages[{i}].loss") if s.loss else None})
        for i, s in enumerate(recipe.train.stages)
    ]
    resolved = recipe.model_copy(
        update={
            "model": recipe.model.model_copy(update={"params": model_params}),
            "loss": loss,
            "schedule": recipe.schedule.model_copy(update={"params": schedule_params}),
            "train": recipe.train.model_copy(update={"stages": stages, "epochs": _total_epochs(recipe.train)}),
        }
    )
    from ltrank.recipe_checks import cross_check

    cross_check(resolved, LOSSES)
    return resolved


def _total_epochs(train: TrainConfig) -> int:
    """With stages, the run's epochs are their sum (an explicit ``epochs`` must agree)."""
    if not train.stages:
        if train.epochs == 0:
            raise LtrankError("train.epochs: must be > 0 (only a recipe whose one stage is post-hoc trains 0 epochs)")
        return train.epochs
    total = sum(s.epochs or 0 for s in train.stages)
    if "epochs" in train.model_fields_set and train.epochs != total:
        raise LtrankError(f"train.epochs: {train.epochs}, but the stages add up to {total}; remove epochs or fix it")
    return total


def _resolve_stage(stage: StageConfig, i: int, train: TrainConfig) -> StageConfig:
    """Check a stage's keys against its method and fill in the method's defaults.

    Training stages need epochs > 0, lr and weight_decay; cRT and LWS fix what trains and sample
    class-balanced unless told otherwise; a post-hoc stage takes only ``tau`` and must be the
    recipe's one stage, on top of ``train.init_from`` (docs/recipes.md, "Decoupled training").
    """
    where, method = f"train.stages[{i}]", stage.method
    if method in POSTHOC_METHODS:
        keys = ("lr", "lr_schedule", "weight_decay", "trainable", "loss", "sampler")
        extra = [k for k in keys if getattr(stage, k) is not None]
        if extra:
            raise LtrankError(f"{where}.{extra[0]}: a {method} stage trains nothing; remove {extra[0]}")
        if stage.epochs:
            raise LtrankError(f"{where}.epochs: a {method} stage trains nothing; set epochs = 0 or remove it")
        if len(train.stages) > 1:
            raise LtrankError(
                f"{where}.method: a {method} stage must be the recipe's only stage (it adjusts the model of "
                "train.init_from); adjust a staged run with a recipe of its own, or with 'ltrank eval --posthoc'")
        if not train.init_from:
            raise LtrankError(f"train.init_from: a {method} stage adjusts a trained model; set train.init_from "
                              "(e.g. \"recipe:<the run's recipe>\", a run folder or a checkpoint.pt)")
        if method == "ncm" and stage.tau is not None:
            raise LtrankError(f"{where}.tau: ncm takes no tau; remove it")
        if method != "ncm" and stage.tau is None:
            raise LtrankError(f"{where}.tau: a {method} stage needs tau, a number >= 0 (e.g. tau = 1.0)")
        return stage.model_copy(update={"epochs": 0})
    if stage.tau is not None:
        raise LtrankError(f"{where}.tau: only tau-norm and logit-adjust stages take tau; remove it")
    for key in ("epochs", "lr", "weight_decay"):
        if getattr(stage, key) is None:
            raise LtrankError(f"{where}.{key}: missing; a {method} stage needs epochs, lr and weight_decay")
    if stage.epochs == 0:
        raise LtrankError(f"{where}.epochs: a {method} stage trains; give epochs > 0 (0 is for post-hoc stages)")
    update: dict[str, Any] = {"lr_schedule": stage.lr_schedule or "constant"}
    if method == "train":
        update.update(trainable=stage.trainable or "all", sampler=stage.sampler or "shuffle")
        return stage.model_copy(update=update)
    name = {"crt": "cRT", "lws": "LWS"}[method]
    if method == "crt" and stage.trainable not in (None, "head"):
        raise LtrankError(f"{where}.trainable: cRT trains only the re-drawn classifier; remove trainable = "
                          f"{stage.trainable!r} (or use method = \"train\")")
    if method == "lws" and stage.trainable is not None:
        raise LtrankError(f"{where}.trainable: LWS trains only its per-class scales; remove trainable = "
                          f"{stage.trainable!r}")
    if i == 0 and not train.init_from:
        raise LtrankError(
            f"train.init_from: {name} re-balances the classifier of a trained model; set train.init_from "
            "(e.g. \"recipe:<stage-1 recipe>\", a run folder or a checkpoint.pt) or train a stage before it")
    if method == "lws" and i + 1 < len(train.stages):
        raise LtrankError(f"train.stages[{i + 1}]: LWS must be the last stage (its head is wrapped by the "
                          "scales); start another recipe from this run instead")
    update.update(trainable="head" if method == "crt" else None, sampler=stage.sampler or "class_aware")
    return stage.model_copy(update=update)


def _validate(registry: Any, name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    key = "backbone" if where == "model" else "name"
    try:
        registry.get(name)
    except LtrankError as exc:
        raise LtrankError(f"{where}.{key}: {exc}") from None
    return registry.validate(name, params, where=f"{where}.params").model_dump(mode="json")


def _resolve_loss(loss: LossConfig, where: str) -> LossConfig:
    from ltrank.catalog import LOSSES

    return loss.model_copy(update={"params": _validate(LOSSES, loss.name, loss.params, where)})


# ------------------------------------------------------------------------------------ hashing
def config_hash(resolved: dict[str, Any], length: int = 12) -> str:
    """sha256 of the canonical JSON of a resolved recipe without :data:`HASH_EXCLUDED` keys (and
    :data:`HASH_EXCLUDED_WHEN_DEFAULT` keys that hold their default), as short hex."""
    data = json.loads(json.dumps(resolved))
    unset = object()
    for keys, default in [(k, unset) for k in HASH_EXCLUDED] + list(HASH_EXCLUDED_WHEN_DEFAULT):
        node = data
        for key in keys[:-1]:
            node = node.get(key, {})
        if default is unset or node.get(keys[-1], default) == default:
            node.pop(keys[-1], None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]
