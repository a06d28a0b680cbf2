"""One generic registry for losses, backbones and weighting schedules.

An entry is a name plus a :class:`Spec` (factory, pydantic params schema, description, paper,
capability flags). Built-ins are registered explicitly by :mod:`ltrank.catalog`; third-party
packages add entries through an entry-point group (``ltrank.losses.v1`` ...). Discovery reads
only package metadata; a plugin is imported the first time one of its names is needed, and a
plugin that cannot be loaded becomes a failed :class:`PluginRecord` instead of an exception, so
commands that do not need it keep working.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ltrank.errors import LtrankError, did_you_mean, field_location, format_validation_error

T = TypeVar("T")

#: Set to 1/true/yes to skip every third-party plugin (tests and debugging use it).
PLUGINS_ENV = "LTRANK_NO_PLUGINS"

# Capability flags a Spec may carry. The trainer and the recipe checks read them.
NEEDS_FEATURES = "needs_features"  # loss is called as loss(logits, targets, features=...)
NEEDS_COSINE_HEAD = "needs_cosine_head"  # logits must be cosine similarities (head="cosine")
USES_CLASS_WEIGHTS = "uses_class_weights"  # the loss takes its class weights from the weighting schedule
# the loss is class-balanced by definition: under schedule "none" it would train unweighted, so a
# recipe must give it a schedule (implies USES_CLASS_WEIGHTS)
NEEDS_CLASS_WEIGHTS = "needs_class_weights"
NEEDS_INIT_FROM = "needs_init_from"  # trains on top of a trained model: the recipe must set train.init_from
CAPABILITIES = frozenset(
    {NEEDS_FEATURES, NEEDS_COSINE_HEAD, USES_CLASS_WEIGHTS, NEEDS_CLASS_WEIGHTS, NEEDS_INIT_FROM}
)

#: ``json_schema_extra`` of a params field that names an epoch (1-indexed), e.g. DRW's
#: ``start_epoch``: a recipe whose value lies past its last epoch is refused (it would never fire).
EPOCH_PARAM: dict[str, Any] = {"unit": "epoch"}


class NoParams(BaseModel):
    """Params schema of an entry without hyperparameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Spec:
    """What a registry knows about one entry. Plugins expose an instance of this.

    ``description``: what it is, one sentence or a short paragraph (lists show its first clause).
    ``paper``: the publication it implements, shown by ``ltrank show``. ``capabilities``: flags
    from :data:`CAPABILITIES` telling the trainer what the entry needs. ``label``: a short
    display name (``"Balanced Softmax"``) for listings; empty means the registry name alone.
    """

    factory: Callable[..., Any]
    description: str
    params: type[BaseModel] = NoParams
    paper: str = ""
    capabilities: frozenset[str] = frozenset()
    label: str = ""

    def __post_init__(self) -> None:
        if self.params.model_config.get("extra") != "forbid":
            raise TypeError(f"{self.params.__name__} must set model_config extra='forbid'")
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            raise TypeError(f"unknown capability flags {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
        if NEEDS_CLASS_WEIGHTS in self.capabilities and USES_CLASS_WEIGHTS not in self.capabilities:
            raise TypeError(f"{NEEDS_CLASS_WEIGHTS} implies {USES_CLASS_WEIGHTS}; list both")
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class PluginRecord:
    """One discovered entry point and, once loading was tried, its outcome."""

    name: str
    group: str
    value: str  # "module:attribute"
    distribution: str
    version: str
    error: str | None = None
    loaded: bool = False

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version} (entry point {self.name} = {self.value})"


def natural_key(name: str) -> list[Any]:
    """Sort key that orders 'resnet8' before 'resnet32' before 'resnet110'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def plugins_disabled() -> bool:
    return os.environ.get(PLUGINS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Registry(Generic[T]):
    """Name -> :class:`Spec` for one kind of component.

    ``context`` names the keyword arguments that the caller supplies at build time besides the
    validated params (e.g. ``class_counts`` for losses); they are never validated as params.
    ``prefixes`` map a namespace such as ``"timm/"`` to a Spec whose factory also receives
    ``model_name`` (the part after the prefix); a namespace may carry a name check that
    :meth:`get` runs, so an unknown ``timm/<model>`` is refused at validation, not at build.
    """

    kind: str  # "loss", "backbone", "schedule"
    group: str  # entry-point group, e.g. "ltrank.losses.v1"
    context: tuple[str, ...] = ()
    _entries: dict[str, Spec] = field(default_factory=dict, repr=False)
    _prefixes: dict[str, Spec] = field(default_factory=dict, repr=False)
    _name_checks: dict[str, Callable[[str], None]] = field(default_factory=dict, repr=False)
    _plugins: dict[str, PluginRecord] | None = field(default=None, repr=False)
    _plugin_eps: dict[str, metadata.EntryPoint] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- registration
    def register(self, name: str, spec: Spec, name_check: Callable[[str], None] | None = None) -> Spec:
        """Register a built-in entry. Names are unique; params may not shadow context keys.

        ``name_check`` (namespaces ending in ``/`` only) gets the part after the prefix and
        raises a one-line :class:`LtrankError` when the namespace has no such name.
        """
        if not isinstance(spec, Spec):
            raise TypeError(f"register({name!r}) needs an ltrank.registry.Spec, got {type(spec).__name__}")
        if name in self._entries or name in self._prefixes:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        clash = set(spec.params.model_fields) & set(self.context)
        if clash:
            raise ValueError(f"{self.kind} {name!r}: params {sorted(clash)} clash with build context")
        if name.endswith("/"):
            self._prefixes[name] = spec
            if name_check is not None:
                self._name_checks[name] = name_check
        elif name_check is not None:
            raise ValueError(f"{self.kind} {name!r}: only a namespace ending in '/' takes a name check")
        else:
            self._entries[name] = spec
        return spec

    # ---------------------------------------------------------------- plugins
    def discover(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Read entry-point metadata (no imports). Tests pass hand-built EntryPoint objects."""
        self._plugins = {}
        self._plugin_eps = {}
        if entry_points is None:
            entry_points = [] if plugins_disabled() else metadata.entry_points(group=self.group)
        for ep in entry_points:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "<unknown distribution>"
            version = dist.version if dist is not None else "?"
            record = PluginRecord(ep.name, self.group, ep.value, dist_name, version)
            prefix = self._prefix_for(ep.name)
            if ep.name in self._entries or prefix:
                builtin = f"{self.kind} {ep.name!r}" if prefix is None else f"{self.kind} namespace {prefix + '*'!r}"
                record = replace(record, error=f"name collides with the built-in {builtin}")
            elif ep.name in self._plugins:
                other = self._plugins[ep.name]
                record = replace(record, error=f"name also provided by {other.origin}")
            self._plugins[ep.name] = record
            self._plugin_eps[ep.name] = ep

    def _ensure_discovered(self) -> dict[str, PluginRecord]:
        if self._plugins is None:
            self.discover()
        assert self._plugins is not None
        return self._plugins

    def _load_plugin(self, name: str) -> PluginRecord:
        record = self._ensure_discovered()[name]
        if record.loaded or record.error:
            return record
        try:
            obj = self._plugin_eps[name].load()
            if not isinstance(obj, Spec):
                raise TypeError(f"exposes {type(obj).__name__}, expected an ltrank.registry.Spec")
            clash = set(obj.params.model_fields) & set(self.context)
            if clash:
                raise TypeError(f"params {sorted(clash)} clash with build context")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must never break ltrank
            record = replace(record, error=_describe_failure(exc))
        else:
            self._entries[name] = obj
            record = replace(record, loaded=True)
        self._plugins[name] = record  # type: ignore[index]
        return record

    def plugins(self, load: bool = True) -> list[PluginRecord]:
        """Every discovered plugin entry; with ``load`` each is imported so failures show."""
        records = self._ensure_discovered()
        if load:
            for name in list(records):
                self._load_plugin(name)
        return sorted(records.values(), key=lambda r: natural_key(r.name))

    # ---------------------------------------------------------------- lookup
    def _prefix_for(self, name: str) -> str | None:
        return next((p for p in self._prefixes if name.startswith(p) and len(name) > len(p)), None)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names (built-ins, usable plugins, prefix namespaces as 'timm/*')."""
        plugins = self._ensure_discovered()
        candidates = set(self._entries) | {p + "*" for p in self._prefixes}
        candidates |= {n for n, r in plugins.items() if not r.error}
        return sorted(fnmatch.filter(candidates, pattern), key=natural_key)

    def get(self, name: str) -> Spec:
        """The Spec for ``name``; an unknown or broken name raises a one-line LtrankError."""
        if name in self._entries:
            return self._entries[name]
        prefix = self._prefix_for(name)
        if prefix:
            check = self._name_checks.get(prefix)
            if check is not None and name != prefix + "*":  # 'timm/*' is how names() lists the namespace
                check(name[len(prefix):])
            return self._prefixes[prefix]
        plugins = self._ensure_discovered()
        if name in plugins:
            record = self._load_plugin(name)
            if record.error:
                raise LtrankError(
                    f"{self.kind} {name!r} comes from the plugin {record.origin}, which failed: "
                    f"{record.error}; fix or uninstall that package, or pick another {self.kind}"
                )
            return self._entries[name]
        raise LtrankError(
            f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
            f"run 'ltrank list {self.kind_plural}' to see them all"
        )

    @property
    def kind_plural(self) -> str:
        return {"loss": "losses"}.get(self.kind, self.kind + "s")

    def plugin_record(self, name: str) -> PluginRecord | None:
        """The record of the usable plugin that provides ``name``; None for a built-in."""
        record = self._ensure_discovered().get(name)
        return record if record is not None and not record.error else None

    def origin(self, name: str) -> str:
        """'built-in', or the plugin distribution that provides ``name``."""
        record = self.plugin_record(name)
        return "built-in" if record is None else record.origin

    # ---------------------------------------------------------------- building
    def validate(self, name: str, params: Mapping[str, Any] | None = None, where: str = "") -> BaseModel:
        """Validate ``params`` against the entry's schema; errors name their location.

        ``where`` is the location prefix used in messages, e.g. ``"loss.params"`` in a recipe.
        Every float in the validated params, nested ones included, must be finite, whatever
        the schema says: a plugin schema that forgot ``allow_inf_nan=False`` cannot let
        ``inf`` or ``nan`` into a run.
        """
        spec = self.get(name)
        where = where or f"{self.kind} {name!r} parameter"
        try:
            validated = spec.params.model_validate(dict(params or {}))
        except ValidationError as exc:
            raise LtrankError(format_validation_error(exc, where, spec.params)) from None
        except Exception as exc:  # a validator that raised something pydantic does not wrap
            record = self._ensure_discovered().get(name)
            if record is None or record.error:
                raise
            raise LtrankError(
                f"{where}: the plugin {record.origin} failed to validate them ({_describe_failure(exc)}); "
                f"fix or uninstall that package, or pick another {self.kind}"
            ) from None
        bad = next(_non_finite_floats(validated, ()), None)
        if bad is not None:
            raise LtrankError(f"{field_location(where, bad[0])}: must be a finite number (got {bad[1]!r})")
        return validated

    def build(self, name: str, /, **kwargs: Any) -> T:
        """Build ``name``: context keywords are passed through, the rest validated as params."""
        spec = self.get(name)
        context = {k: kwargs.pop(k) for k in self.context if k in kwargs}
        missing = [k for k in self.context if k not in context]
        if missing:
            raise TypeError(f"building {self.kind} {name!r} needs {missing}")
        params = self.validate(name, kwargs)
        extra = {"model_name": name[len(p):]} if (p := self._prefix_for(name)) and name not in self._entries else {}
        record = self._ensure_discovered().get(name)
        if record is None or record.error:  # a built-in: its errors are ltrank's own
            return spec.factory(**context, **extra, **dict(params))
        try:
            return spec.factory(**context, **extra, **dict(params))
        except (KeyboardInterrupt, LtrankError):
            raise
        except BaseException as exc:  # a plugin's constructor failing is the plugin's fault, in one line
            raise LtrankError(
                f"{self.kind} {name!r} from the plugin {record.origin} failed to build "
                f"({_describe_failure(exc)}); fix or uninstall that package, or pick another {self.kind}"
            ) from None


def _describe_failure(exc: BaseException) -> str:
    """``Type: first line`` of an exception; a ``sys.exit`` says so in words."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__


def _non_finite_floats(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], float]]:
    """(location, value) of every nan/inf float inside validated params (models, dicts, lists)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield loc, value
    elif isinstance(value, BaseModel):
        for key in type(value).model_fields:
            yield from _non_finite_floats(getattr(value, key), loc + (key,))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite_floats(item, loc + (key,))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            yield from _non_finite_floats(item, loc + (i,))
