"""The distillation loss of KDAD (paper eq. 1-3; reference ``MseDirectionLoss``).

For matched layers k with cloner features p_k and expert features r_k of one image:
    L_val = sum_k mean((p_k - r_k)^2)                       (value loss, eq. 1)
    L_dir = sum_k 1 - cos(vec(p_k), vec(r_k))               (direction loss, eq. 2; vec = C*H*W)
    L     = L_dir + lamda * L_val                           (eq. 3; lamda = 0.5 for MVTec)
Training averages L over the batch on pool2..pool5; the detection score is L of one image on
pool3..pool5. ``direction_loss_only`` keeps L_dir alone (the reference's DirectionOnlyLoss).
"""
import paddle

EPS = 1e-8  # torch.nn.CosineSimilarity default


def flat_cosine(a, b):
    """Cosine similarity of each sample's flattened features: (N, ...) x (N, ...) -> (N,)."""
    a = a.flatten(1)                                     # (N, C*H*W)
    b = b.flatten(1)
    dot = (a * b).sum(axis=1)
    norm = paddle.sqrt((a * a).sum(axis=1)) * paddle.sqrt((b * b).sum(axis=1))
    return dot / norm.clip(min=EPS)


def distill_score(preds, reals, lamda=0.5, direction_only=False):
    """Per-image loss (N,) summed over the given layers (eq. 3)."""
    total = None
    for p, r in zip(preds, reals):
        term = 1.0 - flat_cosine(p, r)                            # (N,)
        if not direction_only:
            term = term + lamda * ((p - r) ** 2).mean(axis=[1, 2, 3])  # per-image MSE over C, H, W
        total = term if total is None else total + term
    return total


def distill_loss(preds, reals, lamda=0.5, direction_only=False):
    """Training loss (scalar): batch mean of the per-image loss. Equal to the reference's
    sum_k mean_b(1 - cos_k) + lamda * sum_k MSELoss_k, since every image has the same size."""
    return distill_score(preds, reals, lamda, direction_only).mean()
