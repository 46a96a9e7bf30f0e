"""Training loop, checkpoints and deployment description of KDAD (what train/val/predict/export share)."""
import os
import sys
import time

import numpy as np
import paddle
from tqdm import tqdm

from adcommon import cli
from adcommon.compiled import CompiledForward
from adcommon.pipeline import postprocess, threshold_from_normals, vis_range

from .localization import discrepancy as discrepancy_outputs
from .loss import distill_loss
from .model import KDAD, TRAIN_LAYERS

METHOD = "kdad"
SIGMA = 4.0                 # reference: gaussian_filter(sigma=4) on the 128 x 128 map
GRADIENT_MAP_THRESHOLD = 0.5  # the seed's predict.py display threshold on the [0, 1] gradient map
# Settings a resumed run must share with the one that wrote last.pdparams.
_RESUME_KEYS = ("backbone", "image_size", "cloner_cfg", "lamda", "use_bias", "direction_loss_only", "feature_scale")
# The cloner (VGG-like: 3x3 convolutions, BN, ReLU, max-pools) trains faster as a static oneDNN graph
# on a CPU (README benchmark), whatever the expert.
COMPILE_BY_DEFAULT = True


def postprocess_spec(kind, image_size):
    """Raw outputs -> maps: output 0 is the score; the map outputs are resized to the input size
    (bilinear), summed (discrepancy: over pool3..pool5) and blurred with sigma 4."""
    maps = [1, 2, 3] if kind == "discrepancy" else [1]
    return {"out_size": int(image_size), "combine": "sum", "sigma": SIGMA, "map_outputs": maps,
            "score_output": 0}


def build_model(backbone, pretrained, image_size, lamda, use_bias, equal_network_size, direction_loss_only,
                feature_scale=None):
    return KDAD(backbone, pretrained, image_size, lamda, use_bias, equal_network_size, direction_loss_only,
                feature_scale=feature_scale)


def stack_images(ds):
    """All images of a dataset as one float32 array (N, 3, S, S); MVTec's largest train set is 77 MB at 128."""
    if ds is None or not len(ds):
        return None
    return np.stack([ds[i][0] for i in range(len(ds))]).astype(np.float32)


@paddle.no_grad()
def expert_targets(model, images, batch_size):
    """Expert pool2..pool5 of every training image, computed once: the expert is frozen and the
    reference uses no augmentation, so its outputs never change (about 1 MB per image at 128)."""
    model.expert.eval()
    parts = None
    for i in range(0, len(images), batch_size):
        feats = [f.numpy() for f in model.expert(paddle.to_tensor(images[i:i + batch_size]))]
        parts = [[f] for f in feats] if parts is None else [p + [f] for p, f in zip(parts, feats)]
    return [np.concatenate(p) for p in parts]


@paddle.no_grad()
def calibrate_feature_scale(model, images, batch_size, targets=None):
    """With model_args feature_scale 'rms': set the expert's per-layer divisors to each matched layer's
    RMS over the training images (``targets``: their cached raw expert features). Returns the
    targets divided the same way (None stays None)."""
    if model.model_args.get("feature_scale") != "rms":
        return targets
    model.expert.feature_scale.set_value(np.ones([4], np.float32))
    if targets is not None:
        ms = [float((t * t).mean()) for t in targets]
    else:
        acc, n = np.zeros(4), 0
        for i in range(0, len(images), batch_size):
            feats = model.expert(paddle.to_tensor(images[i:i + batch_size]))
            acc += [float((f * f).mean()) * len(f) for f in feats]
            n += len(feats[0])
        ms = list(acc / n)
    rms = np.sqrt(np.maximum(ms, 1e-12)).astype(np.float32)
    model.expert.feature_scale.set_value(rms)
    return None if targets is None else [t / float(r) for t, r in zip(targets, rms)]


@paddle.no_grad()
def detection_scores(model, images, batch_size=32):
    """Detection scores (N,) of an image array, eval mode, no gradients."""
    model.eval()
    out = [model.score(paddle.to_tensor(images[i:i + batch_size])).numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out)


# ------------------------------------------------------------------ optimizer state by structured names


def _opt_state_by_name(opt, layer):
    """Adam state keyed by structured parameter names ('features.0.weight_moment1_0'), so that it can
    be restored into a model whose auto-generated names differ (a second model in the same process)."""
    to_struct = {p.name: n for n, p in layer.named_parameters()}
    out = {}
    for k, v in opt.state_dict().items():
        pname = next((p for p in to_struct if k.startswith(p + "_")), None)
        out[k if pname is None else to_struct[pname] + k[len(pname):]] = v
    return out


def _opt_state_from_name(state, layer):
    to_auto = {n: p.name for n, p in layer.named_parameters()}
    out = {}
    for k, v in state.items():
        sname = next((n for n in sorted(to_auto, key=len, reverse=True) if k.startswith(n + "_")), None)
        out[k if sname is None else to_auto[sname] + k[len(sname):]] = v
    return out


# ------------------------------------------------------------------ training


def train(model, fit_ds, hold_ds, out_dir, log, epochs=601, batch_size=64, lr=1e-3, seed=0, eval_interval=10,
          save_interval=10, resume=False, cache_expert=True, select="last", compiled=False):
    """Adam on the cloner with the distillation loss over pool2..pool5 (docs/reference.md#kdad-training).

    Every ``eval_interval`` epochs the held-out NORMAL images are scored (mean detection score; no
    test data is ever looked at). ``select='holdout'`` keeps the epoch with the lowest such mean,
    'last' (the reference) the final epoch. ``<out_dir>/last.pdparams`` (weights, Adam state, epoch,
    history) is rewritten atomically every ``save_interval`` epochs; ``resume`` continues from it.
    The order of images in epoch e comes from numpy Generator([seed, e]), so a resumed run repeats
    the same batches as an uninterrupted one. ``compiled``: the cloner's training forward and backward
    run as a static oneDNN graph (adcommon.compiled; the same numbers). Returns training statistics.
    """
    images = stack_images(fit_ds)                       # (N, 3, S, S) in [0, 1]
    hold = stack_images(hold_ds)
    n = len(images)
    opt = paddle.optimizer.Adam(learning_rate=float(lr), parameters=model.cloner.parameters())
    last_path = os.path.join(out_dir, "last.pdparams")
    log_path = os.path.join(out_dir, "train.log")
    start, history, best = 0, [], None
    if resume:
        if os.path.isfile(last_path):
            ck = cli.load_checkpoint(last_path, METHOD)
            diff = [k for k in _RESUME_KEYS if ck["model_args"].get(k) != model.model_args.get(k)]
            if diff:
                raise cli.UserError(f"{last_path} was trained with other settings ({', '.join(diff)}); "
                                    "drop --resume or delete it")
            cli.set_state_strict(model, ck["state_dict"], f"KDAD checkpoint {last_path}")
            opt.set_state_dict(_opt_state_from_name(ck["optimizer"], model.cloner))
            start, history, best = int(ck["epoch"]), list(ck.get("history", [])), ck.get("best")
            log(f"resumed from {last_path} at epoch {start}")
        else:
            log(f"--resume: no {last_path} yet, starting at epoch 0")
    t0 = time.perf_counter()
    targets = expert_targets(model, images, batch_size) if cache_expert else None
    if start == 0:  # a resumed run keeps the divisors its checkpoint holds
        targets = calibrate_feature_scale(model, images, batch_size, targets)
    elif targets is not None and model.model_args.get("feature_scale") == "rms":
        targets = [t / float(r) for t, r in zip(targets, model.expert.feature_scale.numpy())]
    if model.model_args.get("feature_scale") == "rms":
        log("expert layers scaled to unit RMS, divisors " +
            ", ".join(f"{v:.3f}" for v in model.expert.feature_scale.numpy()))
    if targets is not None:
        targets = [paddle.to_tensor(t) for t in targets]
        mb = sum(int(np.prod(t.shape)) for t in targets) * 4 / 2 ** 20
        log(f"expert pool2-pool5 of {n} training images cached ({mb:.0f} MB, {time.perf_counter() - t0:.1f} s)")
    cloner = CompiledForward(model.cloner, enabled=compiled)

    def save_last(epoch):
        cli.save_checkpoint(last_path, METHOD, model.model_args, model.state_dict(), epoch=epoch,
                            optimizer=_opt_state_by_name(opt, model.cloner), history=history, best=best)

    t_train, seen = 0.0, 0
    bar = tqdm(range(start, epochs), initial=start, total=epochs, desc="train", unit="epoch", disable=None,
               file=sys.stdout)
    for epoch in bar:
        model.cloner.train()
        t_ep = time.perf_counter()
        perm = np.random.default_rng([int(seed), epoch]).permutation(n)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            x = paddle.to_tensor(images[idx])
            outs = cloner(x)
            pred = [outs[k] for k in TRAIN_LAYERS]
            if targets is not None:
                it = paddle.to_tensor(idx)
                real = [paddle.gather(t, it) for t in targets]
            else:
                with paddle.no_grad():
                    real = model.expert(x)
            loss = distill_loss(pred, real, model.lamda, model.direction_only)
            cloner.backward(loss)
            opt.step()
            opt.clear_grad()
            total += float(loss) * len(idx)
        t_train += time.perf_counter() - t_ep
        seen += n
        done = epoch + 1
        ep_loss = total / n
        bar.set_postfix(loss=f"{ep_loss:.4f}")
        _append(log_path, f"[Train] epoch {done}/{epochs} loss {ep_loss:.4f} ({time.perf_counter() - t_ep:.2f} s)")
        if hold is not None and (done % eval_interval == 0 or done == epochs or done == start + 1):
            hs = detection_scores(model, hold, batch_size)
            rec = {"epoch": done, "loss": round(ep_loss, 6), "holdout_mean_score": float(hs.mean())}
            history.append(rec)
            msg = f"[Eval] epoch {done}: held-out normal mean score {rec['holdout_mean_score']:.4f} ({len(hs)} images)"
            if select == "holdout" and (best is None or rec["holdout_mean_score"] < best["score"]):
                best = {"epoch": done, "score": rec["holdout_mean_score"],
                        "state": {k: v.numpy() for k, v in model.cloner.state_dict().items()}}
                msg += " (best so far)"
            log(msg)
        if done % save_interval == 0 or done == epochs:
            save_last(done)
    bar.close()
    chosen = epochs
    if select == "holdout" and best is not None:
        model.cloner.set_state_dict({k: paddle.to_tensor(v) for k, v in best["state"].items()})
        chosen = best["epoch"]
        log(f"selected epoch {chosen} (lowest held-out normal mean score {best['score']:.4f})")
    model.eval()
    return {"epochs": epochs, "start_epoch": start, "selected_epoch": chosen, "select": select,
            "n_fit": n, "n_holdout": 0 if hold is None else len(hold), "history": history,
            "train_seconds": round(t_train, 3),
            "train_images_per_s": round(seen / t_train, 2) if t_train > 0 else None,
            "expert_cached": targets is not None, "compiled": cloner.enabled}


def _append(path, msg):
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")


def holdout_calibration(model, hold_ds, batch_size=32, quantile=0.99, rule="robust"):
    """Thresholds and colour ranges from held-out NORMAL images only (never test labels).

    threshold: the ``quantile`` of their detection scores (adcommon's threshold rule). Gradient maps are
    scaled per image to [0, 1], so their display threshold is the seed's fixed 0.5 and the colour range [0, 1];
    discrepancy maps have absolute units, so theirs come from the held-out maps (quantile of the
    per-image maximum, as PaDiM/STFPM do for their maps).
    """
    s = model.model_args["image_size"]
    out = {"threshold": None, "threshold_quantile": quantile, "threshold_rule": rule, "holdout_scores": [],
           "map_thresholds": {"gradients": GRADIENT_MAP_THRESHOLD, "smooth_grad": GRADIENT_MAP_THRESHOLD,
                              "gbp": GRADIENT_MAP_THRESHOLD, "discrepancy": None},
           "vis_ranges": {"gradients": [0.0, 1.0], "smooth_grad": [0.0, 1.0], "gbp": [0.0, 1.0],
                          "discrepancy": None}}
    images = stack_images(hold_ds)
    if images is None:
        return out
    model.eval()
    raw = None
    for i in range(0, len(images), batch_size):
        r = discrepancy_outputs(model, images[i:i + batch_size])
        raw = [[a] for a in r] if raw is None else [p + [a] for p, a in zip(raw, r)]
    raw = [np.concatenate(p) for p in raw]
    maps, scores = postprocess(raw, postprocess_spec("discrepancy", s))
    out["threshold"] = threshold_from_normals(scores, quantile, rule)
    out["holdout_scores"] = [float(v) for v in scores]
    mthr = threshold_from_normals(maps.reshape(len(maps), -1).max(1), quantile, rule)
    out["map_thresholds"]["discrepancy"] = mthr
    out["vis_ranges"]["discrepancy"] = list(vis_range(maps, mthr))
    return out


# ------------------------------------------------------------------ checkpoints and deployment


def save(path, model, category, calib, train_stats, config_name=None, localization="gradients"):
    s = model.model_args["image_size"]
    args = dict(model.model_args, postprocess={k: postprocess_spec(k, s) for k in ("gradients", "discrepancy")})
    # threshold: image level (detection score); map_threshold / vis_range: the paper's gradient map;
    # the *_ranges / *_thresholds dicts hold them per localization method.
    cli.save_checkpoint(path, METHOD, args, model.state_dict(), category=category, threshold=calib["threshold"],
                        map_threshold=calib["map_thresholds"]["gradients"],
                        vis_range=calib["vis_ranges"]["gradients"],
                        map_thresholds=calib["map_thresholds"], vis_ranges=calib["vis_ranges"],
                        calibration={k: calib[k] for k in ("threshold_quantile", "threshold_rule", "holdout_scores")},
                        train=train_stats, experiment_name=config_name, localization_method=localization)


def load(path):
    """(model in eval mode, checkpoint) from model.pdparams; the architecture comes from model_args."""
    ck = cli.load_checkpoint(path, METHOD)
    a = ck["model_args"]
    sd = ck["state_dict"]
    if "expert.feature_scale" not in sd:  # written before the expert's feature scale existed: unscaled
        a = dict(a, feature_scale="none")
        sd = dict(sd, **{"expert.feature_scale": np.ones([4], np.float32)})
    try:
        model = KDAD(a["backbone"], "none", a["image_size"], a["lamda"], a["use_bias"], a["equal_network_size"],
                     a["direction_loss_only"], feature_scale=a["feature_scale"])
    except KeyError as e:
        raise cli.UserError(f"{path}: model_args lacks {e} (written by another version?)") from None
    cli.set_state_strict(model, sd, f"KDAD checkpoint {path}")
    model.model_args["weights"] = a.get("weights")
    model.eval()
    return model, ck


def localization_of(ck, flag=None):
    """The localization method: the flag if given, else the one stored at training (paper: gradients)."""
    return flag or ck.get("localization_method") or "gradients"


def map_kind(method):
    """Maps of smooth_grad / gbp share the gradient post-processing (one map output, sigma 4)."""
    return "discrepancy" if method == "discrepancy" else "gradients"


def deploy_meta(ck, method="gradients"):
    """What a deployment needs besides the graph (inference.yml; predict.py builds the same dict)."""
    a = ck["model_args"]
    kind = map_kind(method)
    outputs = ["score", "discrepancy_pool3", "discrepancy_pool4", "discrepancy_pool5"] \
        if kind == "discrepancy" else ["score", "gradient_map"]
    return {"method": METHOD, "category": ck.get("category"), "localization": method,
            "preprocess": {"image_size": a["image_size"], "crop_size": None, "mean": None, "std": None},
            "postprocess": postprocess_spec(kind, a["image_size"]), "outputs": outputs,
            "threshold": ck.get("threshold"),
            "map_threshold": (ck.get("map_thresholds") or {}).get(method),
            "vis_range": (ck.get("vis_ranges") or {}).get(method),
            # Paddle Inference's oneDNN kernels cannot run the backward ops of the gradient graph
            "graph_has_gradients": kind == "gradients",
            # gradient maps are scaled per image (every image has a hot spot): draw the region only
            # for images over the image threshold
            "region_only_if_anomalous": True,
            "model_args": {k: v for k, v in a.items() if k != "postprocess"}}
