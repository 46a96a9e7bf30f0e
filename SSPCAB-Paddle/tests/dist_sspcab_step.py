"""Run under paddle.distributed.launch by this folder's test_distributed.py (or alone as the reference): CutPaste +
SSPCAB updates of sspcab.engine.train (ResNet-18, random start, 3-way, batch 4 x 3 views) with the
network in float64, every process taking its share of each step; rank 0 saves the change of the weights and
running statistics and the logged losses to argv[1].

float64 because the random-start ProjectionNet is ill-conditioned in float32: its one-step gradients move
by ~0.4 % when the input is scaled by (1 + 1e-7), so a float32 comparison could not tell a wrong
data-parallel step from rounding; in float64 the two runs must agree to ~1e-12.
    python SSPCAB-Paddle/tests/dist_sspcab_step.py OUT.npz [STEPS] [DTYPE]
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # SSPCAB-Paddle
sys.path[:0] = [os.path.dirname(HERE), HERE]
import paddle  # noqa: E402

from adcommon import distributed as D  # noqa: E402
from sspcab import engine  # noqa: E402
from sspcab.model import ProjectionNet  # noqa: E402

paddle.set_device("cpu")
rank, world = D.init()
DTYPE = sys.argv[3] if len(sys.argv) > 3 else "float64"
paddle.set_default_dtype(DTYPE)
paddle.seed(0)
model = ProjectionNet("resnet18", "none", head_layer=1, image_size=128)
forward = model.train_forward
model.train_forward = lambda x: forward(x.astype(DTYPE))   # the loader's batches are float32
# textured images: smooth random fields plus noise (CutPaste needs no particular content)
rng = np.random.default_rng(0)
images = [np.clip(128 + 60 * np.sin(np.arange(128)[:, None, None] / (3 + i) + rng.normal(size=(1, 128, 3)))
                  + rng.normal(0, 20, (128, 128, 3)), 0, 255).astype(np.uint8) for i in range(6)]
start = {k: v.numpy().copy() for k, v in model.state_dict().items()}   # rank 0's = the broadcast weights
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
stats = engine.train(model, images, engine.TrainSettings(steps, batch_size=4, lr=0.1, momentum=0.9, weight_decay=3e-5,
                                                        freeze_steps=0, sspcab_lambda=0.1, seed=0, num_workers=0,
                                                        log_interval=1), log=lambda m: None)
if rank == 0:
    sd = model.state_dict()
    np.savez(sys.argv[1], **{k: v.numpy() - start[k] for k, v in sd.items()},
             _loss=np.array([r["loss"] for r in stats["history"]]), _world=np.array(world))
