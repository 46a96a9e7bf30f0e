"""Run under paddle.distributed.launch by tests/test_distributed.py (or alone as the reference): a small
network with 1D and 2D batch norm, one forward and backward on the global batch, every process taking
its share; rank 0 saves the summed gradients and the running statistics to argv[1]."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import paddle  # noqa: E402

from adcommon import distributed as D  # noqa: E402

paddle.set_device("cpu")
rank, world = D.init()
paddle.seed(0)
net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 6, 3), paddle.nn.BatchNorm2D(6), paddle.nn.ReLU(),
                           paddle.nn.AdaptiveAvgPool2D(2), paddle.nn.Flatten(), paddle.nn.Linear(24, 8),
                           paddle.nn.BatchNorm1D(8), paddle.nn.ReLU(), paddle.nn.Linear(8, 3))
D.data_parallel(net, 6, False, lambda msg: None)
net.train()
x = np.random.default_rng(1).normal(size=(6, 3, 10, 10)).astype("float32")
share, weight = D.batch_share(np.arange(6))
loss = net(paddle.to_tensor(x[share])).pow(2).mean() * weight
loss.backward()
D.all_sum_gradients(net.parameters())
if rank == 0:
    grads = np.concatenate([p.grad.numpy().ravel() for p in net.parameters() if p.grad is not None])
    stats = np.concatenate([p.numpy().ravel() for p in net.parameters() if p.stop_gradient])
    np.savez(sys.argv[1], grads=grads, stats=stats)
