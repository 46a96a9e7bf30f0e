"""The PyTorch anchor of the training-step benchmark (`python scripts/benchmark.py --train_step --peer_python
PEER_VENV/bin/python`): STFPM's step with an EfficientNet-Lite0 student, written with PyTorch and timm,
run in ../shared/peer's venv (torch, timm), on the same images as our train.py.

    PEER_VENV/bin/python scripts/peer_stfpm_step.py IMAGE_FOLDER --size 256 --batch 8 --threads 2

The step is ours (STFPM-Paddle/stfpm/engine.py with cached teacher features): the student is timm's
tf_efficientnet_lite0 cut after its stride-16 stage (the 24-, 40- and 112-channel outputs, as our
layer1-3), randomly initialised; the teacher's features are computed once and L2-normalised over
channels; the loss is the sum over the three layers of the mean squared distance of the normalised
features; SGD lr 0.4, momentum 0.9, weight decay 1e-4. The teacher's weights do not change the speed,
so it is random here too. Prints one JSON line: images/s over the timed steps, after two untimed ones.
Not a project dependency, and never run by the tests.
"""
import argparse
import json
import os
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    names = sorted(f for f in os.listdir(a.folder) if f.endswith(".png"))
    imgs = np.stack([np.asarray(Image.open(os.path.join(a.folder, f)).convert("RGB").resize((a.size, a.size)),
                                np.float32) / 127.5 - 1.0 for f in names]).transpose(0, 3, 1, 2)
    x_all = torch.from_numpy(np.ascontiguousarray(imgs))

    def net():
        return timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(1, 2, 3))
    teacher, student = net().eval(), net().train()
    with torch.no_grad():
        targets = [torch.cat(t) for t in zip(*[[F.normalize(f, dim=1) for f in teacher(x_all[i:i + a.batch])]
                                               for i in range(0, len(x_all), a.batch)])]
    opt = torch.optim.SGD(student.parameters(), lr=0.4, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    timed, t0 = 0, None
    for step in range(a.steps + 2):
        if step == 2:
            t0 = time.perf_counter()
        idx = torch.from_numpy(rng.choice(len(x_all), a.batch, replace=False))
        feats = student(x_all[idx])
        loss = sum((t[idx] - F.normalize(s, dim=1)).pow(2).sum(1).mean() for t, s in zip(targets, feats))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 2:
            timed += a.batch
    secs = time.perf_counter() - t0
    print(json.dumps({"images_per_s": round(timed / secs, 2), "steps": a.steps, "batch": a.batch, "size": a.size,
                      "threads": a.threads, "torch": torch.__version__, "timm": timm.__version__}))


if __name__ == "__main__":
    main()
