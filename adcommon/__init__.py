"""What every method shares around its own model (the method lifecycle, adcommon.method.pipeline): evaluation,
post-processing, metrics, pictures, checkpoints, export and Paddle Inference, the command line,
backbones and their weights, the compiled training step, the auto_log-compatible benchmark logger."""

import warnings as _warnings

# Paddle warns about a missing C++ compiler cache on every import; it concerns custom-op builds only
# and would put noise before our one-line errors on stderr.
_warnings.filterwarnings("ignore", message="No ccache found")

import os as _os
import sys as _sys

# Importing Paddle sets OMP_NUM_THREADS to "1" when it is unset; remember what the user had set
# (None when Paddle was imported first, then nobody can tell) for adcommon.cli.cpu_threads.
USER_OMP_NUM_THREADS = _os.environ.get("OMP_NUM_THREADS") if "paddle" not in _sys.modules else None
