"""Shared evaluation and deployment helpers: metrics, post-processing, visualisation,
Paddle Inference predictor, auto_log-compatible benchmark logger, backbones."""
