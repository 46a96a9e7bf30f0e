"""Exported models and their runtimes: export, Paddle Inference / ONNX Runtime / OpenVINO, infer.py and serve.py."""
