"""Shared evaluation and deployment helpers: metrics, post-processing, visualisation,
Paddle Inference predictor, auto_log-compatible benchmark logger, backbones."""

import warnings as _warnings

# Paddle warns about a missing C++ compiler cache on every import; it concerns custom-op builds only
# and would put noise before our one-line errors on stderr.
_warnings.filterwarnings("ignore", message="No ccache found")
