#!/usr/bin/env bash
# The device check of issue 26 (docs/device.md): main job, mixed-precision distill, a 2-trial
# study and one full ETTh1 epoch of FEDformer on one GPU, in under 8 minutes; numbers in
# $OUT/device_check.{json,md} (OUT defaults to ./device_check_out).
#
#   benchmarks/device_check.sh                 # on the GPU machine (CUDA)
#   benchmarks/device_check.sh --device cpu    # anywhere: the same steps on CPU, heavy epoch capped
#
# Needs tdml importable (pip install -e . or PYTHONPATH=.) and ETTh1.csv in $TDML_DATA_DIR
# (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export TDML_DATA_DIR="${TDML_DATA_DIR:-$(cd .. && pwd)/shared/data}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" benchmarks/device_check.py "$@"
