"""The STFPM objective (paper Sec. 3.2, Eq. 1-4) as the official code computes it.

Per layer l and position (i, j): the teacher and student feature vectors are L2-normalised over
channels (Eq. 1) and compared with a squared distance (Eq. 2); a layer's loss is the mean over the
h_l x w_l positions (Eq. 3, and over the batch); the total is the sum over layers with alpha_l = 1 (Eq. 4).
The paper writes 0.5 * ||.||^2; the official code (gdwang08/STFPM, main.py) has no 0.5 and neither do we,
so the learning rate 0.4 means what it means there.
"""
import paddle
import paddle.nn.functional as F


def layer_distance(t, s):
    """Squared distance of channel-L2-normalised features, Eq. 1-2 without the 0.5.

    t, s: (N, C, h, w) teacher / student features -> (N, 1, h, w), each value in [0, 4].
    Also the anomaly map of the layer at test time (Sec. 3.3).
    """
    t = F.normalize(t, axis=1)  # x / max(||x||_2, 1e-12) over channels, like torch's F.normalize(dim=1)
    s = F.normalize(s, axis=1)
    return (t - s).pow(2).sum(axis=1, keepdim=True)


def stfpm_loss(t_feats, s_feats, teacher_normalized=False):
    """Eq. 3-4: sum over layers of the mean over batch x positions of ``layer_distance``.

    t_feats, s_feats: lists of (N, C_l, h_l, w_l) -> scalar tensor. ``teacher_normalized``: the teacher
    features are already L2-normalised over channels (training caches them that way).
    """
    if len(t_feats) != len(s_feats):
        raise ValueError(f"{len(t_feats)} teacher vs {len(s_feats)} student feature maps")
    if teacher_normalized:
        terms = [(t - F.normalize(s, axis=1)).pow(2).sum(axis=1, keepdim=True).mean() for t, s in zip(t_feats, s_feats)]
    else:
        terms = [layer_distance(t, s).mean() for t, s in zip(t_feats, s_feats)]
    return paddle.add_n(terms)
