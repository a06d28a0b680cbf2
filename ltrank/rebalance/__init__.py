"""Second-stage re-balancing of a trained :class:`~ltrank.models.Classifier` (decoupled training).

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition" (ICLR 2020):
learn the representation with plain (instance-balanced) sampling, then re-balance only the
classifier. Trained stages (a few epochs, class-balanced sampling, encoder frozen):

- :func:`prepare_crt`: classifier re-training (cRT), the head re-initialised and retrained;
- :func:`prepare_lws`: learnable weight scaling (LWS), one trained scale per class logit.

Post-hoc adjustments (no training), each giving a model that evaluation calls as ``model(x)``:

- tau-normalisation (Kang et al.): class vectors ``w_c / ||w_c||^tau`` (:mod:`.tau_norm`);
- NCM (Kang et al.): cosine similarity to the mean L2-normalised training feature (:mod:`.ncm`);
- post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021):
  ``logits - tau * log(prior)`` (:mod:`.logit_adjust`).

:func:`parse_posthoc` reads the CLI forms (``tau-norm=0.5``, ``ncm`` ...) and
:func:`build_posthoc` turns one into a model. Settings and sources: docs/recipes.md,
"Decoupled training".
"""

from ltrank.rebalance.crt import prepare_crt, reinit_head
from ltrank.rebalance.features import extract_features
from ltrank.rebalance.logit_adjust import LogitAdjusted, adjust_logits, class_prior
from ltrank.rebalance.lws import LearnableWeightScaling, prepare_lws
from ltrank.rebalance.ncm import NCMHead, class_means, ncm_logits
from ltrank.rebalance.posthoc import PosthocResult, Split, build_posthoc
from ltrank.rebalance.schedule import cosine_stage_lr
from ltrank.rebalance.spec import PosthocSpec, parse_posthoc
from ltrank.rebalance.stage import StagePlan
from ltrank.rebalance.tau_norm import (
    TAU_GRID,
    TauSelection,
    select_tau,
    tau_normalize,
    tau_normalized_head,
)

__all__ = [
    "TAU_GRID",
    "LearnableWeightScaling",
    "LogitAdjusted",
    "NCMHead",
    "PosthocResult",
    "PosthocSpec",
    "Split",
    "StagePlan",
    "TauSelection",
    "adjust_logits",
    "build_posthoc",
    "class_means",
    "class_prior",
    "cosine_stage_lr",
    "extract_features",
    "ncm_logits",
    "parse_posthoc",
    "prepare_crt",
    "prepare_lws",
    "reinit_head",
    "select_tau",
    "tau_normalize",
    "tau_normalized_head",
]
