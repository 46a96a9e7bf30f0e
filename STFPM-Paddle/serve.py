"""An exported STFPM model as an HTTP service (FastAPI + uvicorn: pip install -e .[serve]); the scores,
regions and masks of infer.py, for a line's cameras, PLC gateways and MES.

    python serve.py --model_dir output/screw/inference [--backend openvino] [--port 8866] [--token SECRET]
    curl -F file=@part.png http://127.0.0.1:8866/predict
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, _ = entry("serve", "stfpm", __doc__)

if __name__ == "__main__":
    run_cli(main)
