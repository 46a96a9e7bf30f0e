"""Training objective: CutPaste's cross-entropy over the augmentation classes plus lambda * L_SSPCAB.

    L = CE(logits, y) + lambda * MSE(SSPCAB(x), x)            (Ristea et al., total loss, Sec. 3)

lambda = 0.1: the SSPCAB authors tuned lambda over 0.1 .. 1 in steps of 0.1 and kept 0.1 for all
models except two video baselines where 0.001 was needed (restated in their TPAMI extension,
Madan et al. 2024, Sec. IV-C "Implementation Details"). The Paddle ports used 0.1 (liuxtakeoff)
and 0.01 (Lieberk).
"""
import paddle
import paddle.nn.functional as F

from .sspcab import sspcab_loss

SSPCAB_LAMBDA = 0.1


def class_labels(n_views, batch_size):
    """Labels of a batch laid out view by view: [0]*B + [1]*B (+ [2]*B) (Runinho's repeat_interleave)."""
    return paddle.arange(n_views, dtype="int64").repeat_interleave(batch_size)


def total_loss(logits, labels, sspcab_io=None, lam=SSPCAB_LAMBDA):
    """(loss, cross-entropy, L_SSPCAB) as tensors; L_SSPCAB is 0 for the baseline (no block) or lam = 0."""
    ce = F.cross_entropy(logits, labels)
    if sspcab_io is None:
        return ce, ce, paddle.zeros([], ce.dtype)
    rec = sspcab_loss(sspcab_io[1], sspcab_io[0])
    return ce + lam * rec, ce, rec
