"""Per-position multivariate Gaussian fitted without holding the training features (paper section 3.1).

The reference stacks every training embedding (N x C x HW, ~5.6 MB per image for ResNet-18 and
22.5 MB for Wide-ResNet-50) and then calls np.cov per position: it runs out of memory on large
categories. Here each batch adds to running sums, so memory is flat in N:
    S1 = sum_n (x_n - k),   S2 = sum_n (x_n - k)(x_n - k)^T     per position,
with a shift k (the first batch's mean) that keeps float32 sums accurate. Then
    mean = k + S1/N,   cov = (S2 - S1 S1^T / N) / (N - 1) + eps I     (np.cov, unbiased, + 0.01 I).

The sums are numpy arrays updated in place, a chunk of positions at a time: for Wide-ResNet-50
(3136 x 550 x 550) one float32 array is 3.8 GB, and Paddle's eager ops on it make full-size
temporaries (and slicing such a tensor is slow), which is what ran out of memory on 24 GB.
"""
import numpy as np
import paddle

CHUNK = 256  # positions per in-place step: 256 x 550 x 550 float64 = 620 MB for Wide-ResNet-50
# S2 is kept in float64 when it takes at most this much (ResNet-18 / Lite0 d=100 at 224: 250 MB), else in
# float32 (Wide-ResNet-50 d=550: 3.8 GB instead of 7.6). float64 sums make the fit independent of the
# order the images are added in (one process or several, any batch size) to ~1e-9 before inversion,
# which matters because the inverse multiplies any difference by the covariance's condition number.
S2_FLOAT64_MB = 2048


class GaussianAccumulator:
    """Running sums for P positions of D-dim embeddings; add() takes (B, D, P) tensors or arrays."""

    def __init__(self, dim, positions, shift=None):
        self.dim, self.positions = dim, positions
        self.n = 0
        self.shift = shift                                         # (P, D) float32; another's to subtract it
        self.s1 = np.zeros((positions, dim), np.float64)           # (P, D)
        wide = positions * dim * dim * 8 <= S2_FLOAT64_MB * 2 ** 20
        self.s2 = np.zeros((positions, dim, dim), np.float64 if wide else np.float32)   # (P, D, D)

    def add(self, emb, chunk=CHUNK):
        """emb: (B, D, P) float32 embeddings of B normal images (paddle tensor or numpy)."""
        e = emb.numpy() if hasattr(emb, "numpy") else np.asarray(emb)
        x = e.astype(np.float32, copy=False).transpose(2, 0, 1)    # (P, B, D) view
        if self.shift is None:
            self.shift = x.mean(axis=1)                            # (P, D)
        kind = self.s2.dtype                                       # the products in the sums' precision
        tmp = np.empty((min(chunk, self.positions), self.dim, self.dim), kind)  # reused: no page faults
        for i in range(0, self.positions, chunk):
            xc = (x[i:i + chunk] - self.shift[i:i + chunk, None, :]).astype(kind, copy=False)   # (p, B, D)
            self.s1[i:i + chunk] += xc.sum(axis=1)
            t = tmp[:len(xc)]
            np.matmul(xc.transpose(0, 2, 1), xc, out=t)
            self.s2[i:i + chunk] += t
        self.n += int(e.shape[0])

    def all_reduce(self):
        """Add every process's sums and counts (adcommon.distributed; a no-op alone). The processes must
        share the shift. Returns self."""
        from adcommon.distributed import all_sum, world_size
        if world_size() > 1:
            all_sum(self.s1)
            all_sum(self.s2, chunk_rows=CHUNK)
            n = np.array([self.n], np.int64)
            self.n = int(all_sum(n)[0])
        return self

    def _check(self, minus=None):
        n = self.n - (minus.n if minus is not None else 0)
        if n < 2:
            raise ValueError(f"need at least 2 training images to fit a covariance, got {n}")
        if minus is not None and minus.shift is not self.shift:
            raise ValueError("the subtracted sums must share this accumulator's shift")
        return n

    def mean(self, minus=None):
        """(P, D) float32 mean; ``minus``: another accumulator (same shift) whose images are left out."""
        n = self._check(minus)
        s1 = self.s1 if minus is None else self.s1 - minus.s1
        return (self.shift + s1 / n).astype(np.float32)

    def cov_chunk(self, start, stop, eps=0.01, minus=None):
        """Covariance of positions start..stop-1 as float64 (np.cov, unbiased) + eps I, of this
        accumulator's images or, with ``minus``, of those not in ``minus``."""
        n = self._check(minus)
        s1 = self.s1[start:stop] if minus is None else self.s1[start:stop] - minus.s1[start:stop]
        m1 = s1 / n                                                           # (p, D)
        cov = self.s2[start:stop].astype(np.float64)                          # (p, D, D)
        if minus is not None:
            cov -= minus.s2[start:stop]
        cov -= n * m1[:, :, None] * m1[:, None, :]
        cov /= n - 1
        cov += eps * np.eye(self.dim)
        return cov

    def mean_cov(self, eps=0.01, chunk=CHUNK):
        """(mean (P, D), covariance (P, D, D)) as float32 numpy (for inspection and tests)."""
        cov = np.concatenate([self.cov_chunk(i, min(i + chunk, self.positions), eps).astype(np.float32)
                              for i in range(0, self.positions, chunk)])
        return self.mean(), cov

    @paddle.no_grad()
    def write_inverse(self, out, eps=0.01, chunk=CHUNK, minus=None):
        """Invert each position's covariance in float64, a chunk at a time, straight into ``out``
        (the model's (P, D, D) float32 buffer): no full-size temporaries. ``minus`` as in cov_chunk."""
        self._check(minus)
        for i in range(0, self.positions, chunk):
            j = min(i + chunk, self.positions)
            out[i:j] = paddle.to_tensor(np.linalg.inv(self.cov_chunk(i, j, eps, minus)).astype(np.float32))
        return out
