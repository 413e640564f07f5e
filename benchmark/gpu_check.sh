#!/usr/bin/env bash
# The suite's first CUDA run (issue 14), on the GPU machine, from the repository root:
#
#     bash benchmark/gpu_check.sh "$OUT" [benchmark/gpu_check.py options, e.g. --only flow,throughput]
#
# The GPU machine's Python 3.12 has torch 2.11, torchvision 0.26 and opencv-python-headless, but neither PyAV nor
# OpenCV's contrib modules, and reaches no package registry. This script installs the wheels carried in .whl/ into
# a folder of their own, puts the checkout and that folder first on PYTHONPATH (the machine's own torch is used:
# never pip-install torch or the project with its dependencies there, the project pins torch==2.14.1) and runs
# benchmark/gpu_check.py, which writes gpu_check.json, gpu_check.md and gpu_check.log under the folder given.
#
# Fill .whl/ (ignored by git: never commit it) on the CPU machine first, from the repository root:
#
#     python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         -d .whl av==18.1.0
#     PYTHONPATH=. python benchmark/flow_throughput.py --save-reference .whl/tvl1-reference.npz --pairs 8 --threads 2
#
# The first is PyAV (35.8 MB); the second, the OpenCV side of the TV-L1 comparison (the pairs, OpenCV's flows and
# its measured rate, about 6 MB), since opencv-contrib-python-headless (73.4 MB for 5.1.0.95) does not fit the
# device tool's 64 MiB carry limit beside PyAV and the checkout. Were it carried instead, it would go into the same
# --target folder, whose cv2 then shadows the machine's opencv-python-headless on PYTHONPATH; never install it
# into the machine's site-packages beside opencv-python-headless: both own the folder cv2/, and pip would overwrite
# one's files with the other's (and uninstalling either breaks the other).
#
# The device tool's call (see benchmark/RESULTS.md, "GPU check"):
#
#     run(command='bash benchmark/gpu_check.sh "$OUT"', carry=[".whl"], timeout_s=540)
#
# PYTHON (default python3), WHEELS (default .whl) and SITE (default /tmp/gpu-check-site) can be set otherwise, as
# the CPU test of this script does (tests/test_benchmark_scripts.py).
set -uo pipefail
out=${1:?usage: bash benchmark/gpu_check.sh OUT_DIR [gpu_check.py options]}
shift
python=${PYTHON:-python3}
wheels=${WHEELS:-.whl}
site=${SITE:-/tmp/gpu-check-site}
if compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$wheels"/*.whl || { echo "gpu_check.sh: installing the wheels of $wheels/ failed" >&2; exit 1; }
fi
reference=()
if [ -f "$wheels/tvl1-reference.npz" ]; then
    reference=(--flow-reference "$wheels/tvl1-reference.npz")
fi
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" benchmark/gpu_check.py --out "$out" ${reference[@]+"${reference[@]}"} "$@"
