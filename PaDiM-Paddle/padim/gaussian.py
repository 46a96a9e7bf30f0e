"""Per-position multivariate Gaussian fitted without holding the training features (paper section 3.1).

The reference stacks every training embedding (N x C x HW, ~5.6 MB per image for ResNet-18 and
22.5 MB for Wide-ResNet-50) and then calls np.cov per position: it runs out of memory on large
categories. Here each batch adds to running sums, so memory is flat in N:
    S1 = sum_n (x_n - k),   S2 = sum_n (x_n - k)(x_n - k)^T     per position,
with a shift k (the first batch's mean) that keeps float32 sums accurate. Then
    mean = k + S1/N,   cov = (S2 - S1 S1^T / N) / (N - 1) + eps I     (np.cov, unbiased, + 0.01 I).
"""
import numpy as np
import paddle


class GaussianAccumulator:
    """Running sums for P positions of D-dim embeddings; add() takes (B, D, P) tensors."""

    def __init__(self, dim, positions):
        self.dim, self.positions = dim, positions
        self.n = 0
        self.shift = None                                   # (P, D)
        self.s1 = paddle.zeros([positions, dim], "float32")  # (P, D)
        self.s2 = paddle.zeros([positions, dim, dim], "float32")  # (P, D, D)

    def add(self, emb):
        """emb: (B, D, P) float32 embeddings of B normal images."""
        x = emb.transpose([2, 0, 1])                         # (P, B, D)
        if self.shift is None:
            self.shift = x.mean(axis=1)                      # (P, D)
        xc = x - self.shift.unsqueeze(1)                     # (P, B, D)
        self.s1 += xc.sum(axis=1)
        self.s2 += paddle.matmul(xc, xc, transpose_x=True)   # (P, D, D)
        self.n += int(emb.shape[0])

    def merged(self, other):
        """A new accumulator holding the sums of both (used to refit on fit + holdout images)."""
        if other.n == 0:
            return self
        out = GaussianAccumulator(self.dim, self.positions)
        # Re-express other's sums around self.shift: x - k1 = (x - k2) + (k2 - k1).
        d = (other.shift - self.shift).unsqueeze(2)          # (P, D, 1)
        s1o = other.s1.unsqueeze(2)                          # (P, D, 1)
        out.shift, out.n = self.shift, self.n + other.n
        out.s1 = self.s1 + other.s1 + other.n * d.squeeze(2)
        out.s2 = (self.s2 + other.s2 + paddle.matmul(s1o, d, transpose_y=True)
                  + paddle.matmul(d, s1o, transpose_y=True) + other.n * paddle.matmul(d, d, transpose_y=True))
        return out

    def mean_cov(self, eps=0.01):
        """(mean (P, D), covariance (P, D, D)) with eps on the diagonal, as float32."""
        if self.n < 2:
            raise ValueError(f"need at least 2 training images to fit a covariance, got {self.n}")
        m1 = self.s1 / self.n                                # (P, D)
        cov = (self.s2 - self.n * paddle.matmul(m1.unsqueeze(2), m1.unsqueeze(1))) / (self.n - 1)
        cov = cov + eps * paddle.eye(self.dim, dtype="float32")
        return self.shift + m1, cov

    def mean_inv_cov(self, eps=0.01, chunk=512):
        """(mean, inverse covariance) as float32; inverted in float64, a chunk of positions at a time."""
        mean, cov = self.mean_cov(eps)
        inv = np.empty([self.positions, self.dim, self.dim], np.float32)
        for i in range(0, self.positions, chunk):
            c = cov[i:i + chunk].astype("float64")
            inv[i:i + chunk] = np.linalg.inv(c.numpy()).astype(np.float32)
        return mean, paddle.to_tensor(inv)
