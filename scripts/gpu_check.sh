#!/usr/bin/env bash
# The GPU check: 64 ResNet-18 shadows on CIFAR-shaped images (50,000 training images, each
# shadow on half, one epoch), timed, with peak GPU memory and images per second, against
# Privacy Meter's anchor (16 shadows and a target in about 10 minutes on a TITAN RTX).
#
#   bash scripts/gpu_check.sh            # on a machine with a CUDA GPU: the full check
#   bash scripts/gpu_check.sh --small    # anywhere, on CPU, in about a minute: the same code
#                                        # path at toy size (CI runs it, so the script is known
#                                        # to work the day a GPU is lent)
#
# Writes its rows to ${OUT:-.}/gpu_check.json and prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
out="${OUT:-.}/gpu_check.json"
if [ "${1:-}" = "--small" ]; then
    exec "$PY" benchmarks/cifar_resnet.py --device cpu --width 4 --shadows 1 2 --chunk 2 --n-train 64 --batch-size 16 \
        --json "$out"
fi
"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA GPU visible to torch (run with --small for the CPU rehearsal)")
print("GPU:", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB,",
      "torch", torch.__version__)
PYEOF
"$PY" benchmarks/cifar_resnet.py --device cuda --width 64 --shadows 1 16 64 --chunk 16 --n-train 50000 --batch-size 128 \
    --json "$out"
echo "anchor: Privacy Meter, 17 models in about 600 s on a TITAN RTX (35 s a model)"
