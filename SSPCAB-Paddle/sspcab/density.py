"""Gaussian density estimation (GDE) on L2-normalised embeddings (Rippel et al. 2020, as used by CutPaste).

Fit: mean and Ledoit-Wolf shrunk precision (sklearn.covariance.LedoitWolf) of the normalised normal
embeddings. Score: Mahalanobis distance sqrt((x - mu)^T P (x - mu)). The numpy functions here fit;
the model holds mean and precision as buffers and scores inside the exported graph.
"""
import numpy as np


def l2_normalize(x, eps=1e-12):
    """Rows of (n, d) scaled to unit length (torch F.normalize(p=2, dim=1); eps as paddle's normalize)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def fit_gaussian(embeddings):
    """(n, d) normalised embeddings -> (mean (d,), precision (d, d)), float64.

    Ledoit-Wolf shrinkage keeps the precision finite when n < d (e.g. 160 images of 512 dims).
    """
    from sklearn.covariance import LedoitWolf
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 embeddings of shape (n, d), got {x.shape}")
    lw = LedoitWolf().fit(x)
    return lw.location_, lw.precision_


def mahalanobis(x, mean, precision):
    """(n, d) -> (n,) distances sqrt((x - mu)^T P (x - mu)); negative round-off clipped to 0."""
    d = np.asarray(x, np.float64) - mean
    return np.sqrt(np.clip(np.einsum("nd,de,ne->n", d, precision, d), 0, None))


def subsample(x, max_rows, seed=0):
    """At most ``max_rows`` rows of (n, d), chosen without replacement by a seeded Generator."""
    if max_rows is None or len(x) <= max_rows:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), int(max_rows), replace=False))
    return x[idx]
