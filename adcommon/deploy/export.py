"""Export a model to a Paddle Inference folder: inference.json|pdmodel + .pdiparams + inference.yml.

Paddle 3.x (PIR) writes ``inference.json``; Paddle 2.6 writes ``inference.pdmodel``. inference.yml
records what a deployment needs besides the graph: preprocessing, post-processing, the order of the
outputs (Paddle 3 names them fetch_name_0, 1, ...), the threshold and the Paddle version.
"""
import contextlib
import json
import os
import shutil

import yaml

from adbase import UserError, make_temp_dir, write_text_atomic
from adcommon.outputs import EXPORT_NAMES, MODEL_FILES

EXPORT_FILES = EXPORT_NAMES - {"inference.yml"}   # what an export may write besides inference.yml


def export_inference(layer, out_dir, input_shape, meta, input_name="image", onnx=False):
    """Trace ``layer`` (eval mode) with a dynamic batch and save it with its meta data into ``out_dir``
    (claimed and locked by the caller: adcommon.outputs). ``onnx``: also inference.onnx, converted and
    checked by adcommon.deploy.backends.to_onnx, and recorded in inference.yml.

    The files are written in a temporary folder inside ``out_dir`` and then moved into place one by one:
    inference.yml goes first (a folder without it is not a model) and comes back last, so a stop at any
    moment leaves either the previous export or no usable one, never a mix. Returns inference.yml's path.
    """
    import paddle
    from paddle.static import InputSpec

    layer.eval()
    spec = [InputSpec(shape=list(input_shape), dtype="float32", name=input_name)]
    tmp = make_temp_dir("inference", out_dir)
    try:
        try:
            static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
        except TypeError:  # very old signatures without full_graph
            static = paddle.jit.to_static(layer, input_spec=spec)
        paddle.jit.save(static, os.path.join(tmp, "inference"))
        model_file = next((f for f in MODEL_FILES if os.path.isfile(os.path.join(tmp, f))), None)
        if model_file is None:
            raise UserError(f"paddle.jit.save wrote no model file in {tmp}")
        info = json.loads(json.dumps(meta))  # plain copies: no YAML anchors for shared lists
        info.update({
            "model_file": model_file,
            "params_file": "inference.pdiparams",
            "input": {"name": input_name, "shape": [None if s is None or s < 0 else int(s) for s in input_shape]},
            "paddle_version": paddle.__version__,
        })
        write_text_atomic(os.path.join(tmp, "inference.yml"), yaml.safe_dump(info, sort_keys=False))
        if onnx:
            from adcommon.deploy.backends import to_onnx
            info["onnx"] = to_onnx(tmp, model_file, "inference.pdiparams", info)
        # the SHA-256 of every file of the model, checked before it scores (predictor.verify_files)
        from adcommon.deploy.predictor import file_digest
        info["sha256"] = {name: file_digest(os.path.join(tmp, name))
                          for name in sorted(set(os.listdir(tmp)) - {"inference.yml"})}
        write_text_atomic(os.path.join(tmp, "inference.yml"), yaml.safe_dump(info, sort_keys=False))
        new = set(os.listdir(tmp))
        yml = os.path.join(out_dir, "inference.yml")
        if os.path.exists(yml):
            os.remove(yml)
        for name in sorted(EXPORT_FILES - new):   # the previous export's files this one does not have
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out_dir, name))
        for name in sorted(new - {"inference.yml"}) + ["inference.yml"]:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(out_dir, "inference.yml")
