"""DRO-LT's distributionally robust centroid loss (Samuel & Chechik 2021; docs/method.md section 6)."""

from __future__ import annotations

import torch


def drolt_loss(
    features: torch.Tensor,
    targets: torch.Tensor,
    centroids: torch.Tensor,
    radii: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The DRO-LT loss of a batch of pooled features against fixed class centroids.

    ``a[c, b] = -||centroids[c] - features[b]||_2``; the radius of sample b's OWN class is
    subtracted from its own entry only: ``a[y_b, b] -= radii[y_b]`` (the worst case over a ball
    of that radius around the centroid). Scores are divided by ``temperature`` and
    log-softmax-normalised over the batch dimension, separately for each centroid. For each
    class c present in the batch the loss takes minus the mean log-probability of c's own
    samples in row c; the result is the mean over the classes present.

    The public DRO-LT code assigns the radii with a boolean mask whose row-major order
    (centroid, then sample) differs from the batch order of ``radii[targets]``, so samples get
    other samples' radii; here every sample gets the radius of its own class.

    Shapes: features [B, D], targets [B] (int64), centroids [C, D], radii [C]. Rows of classes
    absent from the batch do not enter the loss (they only need to be finite).
    """
    if features.ndim != 2 or centroids.ndim != 2 or features.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"expected features [B, D] and centroids [C, D], got {tuple(features.shape)} and {tuple(centroids.shape)}"
        )
    if targets.shape != features.shape[:1] or radii.shape != centroids.shape[:1]:
        raise ValueError(
            f"expected targets [B] and radii [C], got {tuple(targets.shape)} and {tuple(radii.shape)} "
            f"for B={features.shape[0]}, C={centroids.shape[0]}"
        )
    if features.dtype in (torch.float16, torch.bfloat16):
        features = features.float()
    dtype = features.dtype
    num_classes, batch = centroids.shape[0], features.shape[0]
    centroids = centroids.to(dtype)
    # Direct differences (not the |x|^2 - 2xy + |y|^2 expansion): exact, and a zero gradient
    # at zero distance instead of NaN.
    scores = -torch.cdist(centroids, features, compute_mode="donot_use_mm_for_euclid_dist")  # [C, B]
    columns = torch.arange(batch, device=features.device)
    own_radius = torch.zeros_like(scores).index_put((targets, columns), radii.to(dtype)[targets])
    log_prob = torch.log_softmax((scores - own_radius) / temperature, dim=1)
    own = log_prob[targets, columns]  # [B]: log-prob of each sample in its own class's row
    counts = torch.bincount(targets, minlength=num_classes).to(dtype)
    per_class_sum = torch.zeros(num_classes, dtype=dtype, device=features.device).index_add(0, targets, own)
    per_class_mean = per_class_sum / counts.clamp_min(1)
    return -per_class_mean.sum() / (counts > 0).sum()
