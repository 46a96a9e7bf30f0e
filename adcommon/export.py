"""Export a model to a Paddle Inference folder: inference.json|pdmodel + .pdiparams + inference.yml.

Paddle 3.x (PIR) writes ``inference.json``; Paddle 2.6 writes ``inference.pdmodel``. inference.yml
records what a deployment needs besides the graph: preprocessing, post-processing, the order of the
outputs (Paddle 3 names them fetch_name_0, 1, ...), the threshold and the Paddle version.
"""
import json
import os
import shutil

import yaml

from shared_data.errors import UserError, make_temp_dir, write_text_atomic

MODEL_FILES = ("inference.json", "inference.pdmodel")


def export_inference(layer, out_dir, input_shape, meta, input_name="image"):
    """Trace ``layer`` (eval mode) with a dynamic batch and save it with its meta data into ``out_dir``.

    The folder is written beside the target and renamed into place, so a failure leaves the previous
    export (if any) untouched. Returns the path of inference.yml.
    """
    import paddle
    from paddle.static import InputSpec

    layer.eval()
    spec = [InputSpec(shape=list(input_shape), dtype="float32", name=input_name)]
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = make_temp_dir("inference", parent)
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
        old = None
        if os.path.exists(out_dir):
            old = out_dir.rstrip("/") + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(out_dir, "inference.yml")
