"""Which method a run is, and what to call it in a table.

A run's *method key* names the thesis method its recipe runs (``cbdelta``, ``ldam-drw``, ...):
it finds the reference numbers to show beside the run and orders the rows as the thesis does.
It is read from the resolved recipe's loss and weighting schedule, so any recipe that runs a
thesis method (e.g. ``quickstart``) finds its row; other runs are keyed by their recipe name.

A run that re-balanced another run's classifier (a cRT or LWS stage, a post-hoc stage, or a
record of ``ltrank eval --posthoc``) is the method of the run it started from plus its steps:
key ``cbdelta+crt``, label ``AP CB Delta (beta 0.99) + cRT`` (docs/results.md).
"""

from __future__ import annotations

from typing import Optional

from ltrank.errors import LtrankError
from ltrank.rebalance.spec import format_tau
from ltrank.records import RunRecord
from ltrank.reference import dataset_key
from ltrank.registry import NEEDS_CLASS_WEIGHTS, USES_CLASS_WEIGHTS, Spec

#: Method keys (recipe-name suffixes) in the thesis's table order, with their display labels.
METHOD_LABELS = {
    "ce": "CE",
    "focal": "Focal",
    "cbfocal": "CB Focal",
    "ldam": "LDAM",
    "ldam-drw": "LDAM-DRW",
    "drolt": "DRO-LT",
    "ap": "AP",
    "cbdelta": "AP CB Delta",
    "cbdelta-divide": "AP CB Delta divide",
    "cbdelta-progressive": "AP CB Delta progressive",
    "cbprimary": "AP CB Primary",
    "cbprimary-progressive": "AP CB Primary progressive",
}


#: Labels of the re-balancing steps (stage methods, docs/recipes.md "Decoupled training").
STEP_LABELS = {"crt": "cRT", "lws": "LWS", "tau-norm": "tau-norm", "logit-adjust": "logit-adjust", "ncm": "NCM"}


def _tau_label(method: str, tau: Optional[float], auto: bool = False) -> str:
    if method == "ncm" or tau is None:
        return STEP_LABELS[method]
    return f"{STEP_LABELS[method]} (tau {format_tau(tau)}{', auto' if auto else ''})"


def _steps(record: RunRecord) -> list[tuple[str, str]]:
    """(key, label) of each re-balancing step the run applied to the model it started from."""
    if record.posthoc is not None:
        p = record.posthoc
        return [(p.method, _tau_label(p.method, p.tau, auto=p.tau_scores is not None))]
    steps = []
    for stage in (record.recipe.get("train") or {}).get("stages") or []:
        method = stage.get("method", "train")
        if method in ("crt", "lws"):
            loss = str((stage.get("loss") or record.recipe.get("loss") or {}).get("name", "ce"))
            extra = "" if loss == "ce" else f" ({METHOD_LABELS.get(loss, loss)})"
            steps.append((method, STEP_LABELS[method] + extra))
        elif method in STEP_LABELS:
            steps.append((method, _tau_label(method, stage.get("tau"))))
    return steps


def _base(record: RunRecord) -> tuple[str, str]:
    """(key, label) of the model a re-balancing run started from."""
    source = record.init_from
    if source is not None and source.method_key:
        return source.method_key, source.method_label or source.method_key
    if source is not None:  # a bare checkpoint, or a record written before methods were kept
        name = source.recipe_name or "pretrained"
        return name, name
    return _plain_key(record), _plain_label(record)  # stages before the re-balancing one trained it


def _infer_key(recipe: dict) -> Optional[str]:
    """The thesis method a resolved recipe runs, from its loss and weighting schedule."""
    loss = recipe.get("loss") or {}
    name, params = loss.get("name"), loss.get("params") or {}
    schedule = (recipe.get("schedule") or {}).get("name", "none")
    progressive = "-progressive" if schedule == "progressive" else ""
    if name == "ap_cb_delta":
        return "cbdelta" + ("-divide" if params.get("mode") == "divide" else "") + progressive
    if name == "ap_cb_primary":
        return "cbprimary" + progressive
    if name == "ldam":
        return {"none": "ldam", "drw": "ldam-drw"}.get(schedule)
    if name == "cb_focal":
        return "cbfocal"
    if schedule != "none":
        return None  # e.g. CE with deferred re-weighting: no thesis row
    return name  # ce, focal, ap, drolt, or e.g. a plugin loss: the loss name is the key


def method_key(record: RunRecord) -> str:
    """The method a run belongs to, used to find reference numbers and to order rows.

    Read from the resolved recipe's loss and schedule when they are a known combination
    (so ``quickstart`` is ``cbdelta``), else the recipe-name suffix after the dataset
    (``cifar10-ir100-foo`` -> ``foo``), else the recipe name. A re-balancing run: the key of
    the run it started from, ``+`` its steps (``ce+crt``, ``cbdelta+tau-norm``).
    """
    steps = _steps(record)
    if steps:
        return "+".join([_base(record)[0], *(key for key, _ in steps)])
    return _plain_key(record)


def _plain_key(record: RunRecord) -> str:
    inferred = _infer_key(record.recipe)
    if inferred is not None:
        return inferred
    prefix = dataset_key(record.data.source_name, record.data.imbalance_ratio) + "-"
    name = record.recipe_name
    return name[len(prefix):] if name.startswith(prefix) else name


def _beta_in_use(recipe: dict) -> Optional[float]:
    """The effective-number beta when class weights are in force, read from the loss's
    capability flags: a class-balanced loss (``needs_class_weights``), or a loss that takes
    class weights (``uses_class_weights``) under a schedule or with ``weighted = true``."""
    loss = recipe.get("loss") or {}
    params = loss.get("params") or {}
    beta = params.get("beta")
    if beta is None:
        beta = ((recipe.get("schedule") or {}).get("params") or {}).get("beta")
    scheduled = (recipe.get("schedule") or {}).get("name", "none") != "none"
    spec = _spec(str(loss.get("name", "")))
    if spec is None:  # e.g. a plugin that is not installed where the records are compared
        return beta if scheduled else None
    weighted = spec.has(NEEDS_CLASS_WEIGHTS) or (
        spec.has(USES_CLASS_WEIGHTS) and (scheduled or bool(params.get("weighted"))))
    return beta if weighted else None


def _spec(name: str) -> Optional[Spec]:
    from ltrank.catalog import LOSSES

    try:
        return LOSSES.get(name)
    except LtrankError:
        return None


def method_label(record: RunRecord) -> str:
    """A table label such as ``AP CB Delta (beta 0.99)``, or ``CE + tau-norm (tau 1.0)``.

    A thesis method has its thesis name; a run whose method is its loss alone (no weighting
    schedule) and whose loss declares a display label (``Spec.label``, e.g. a plugin's
    ``"Balanced Softmax"``) shows that label; any other run shows its recipe name. A re-balanced
    run is the label of the run it started from plus its steps.
    """
    steps = _steps(record)
    if steps:
        return " + ".join([_base(record)[1], *(label for _, label in steps)])
    return _plain_label(record)


def _plain_label(record: RunRecord) -> str:
    key = _plain_key(record)
    label = METHOD_LABELS.get(key)
    if label is None:
        loss_name = str((record.recipe.get("loss") or {}).get("name", ""))
        spec = _spec(loss_name) if _infer_key(record.recipe) == loss_name else None
        label = spec.label if spec is not None and spec.label else record.recipe_name
    beta = _beta_in_use(record.recipe)
    return f"{label} (beta {beta:g})" if beta is not None else label
