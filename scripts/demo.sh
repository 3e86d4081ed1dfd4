#!/usr/bin/env bash
# `make demo`: the main job on the built-in sample data. Today that is training the
# three kinds of model the audit compares (original, retrained without a random forget
# set, retrained without a class) and inspecting them; it grows into a full audit.
set -euo pipefail
cd "$(dirname "$0")/.."
AUDIT=.venv/bin/audit
OUT=demo-out
mkdir -p "$OUT"

echo "== datasets and architectures"
$AUDIT datasets
$AUDIT archs

echo "== train an original digits MLP"
$AUDIT train --data digits --arch mlp --epochs 60 --out "$OUT/original.safetensors" --overwrite -q

echo "== retrain without the sample forget set (random 10% of the training ids)"
$AUDIT train --data digits --arch mlp --epochs 60 --exclude sample_models/forget_random10.txt \
  --out "$OUT/retrained_random10.safetensors" --overwrite -q

echo "== retrain without class 3"
$AUDIT train --data digits --arch mlp --epochs 60 --exclude-class 3 \
  --out "$OUT/retrained_class3.safetensors" --overwrite -q

echo "== inspect what was written"
$AUDIT inspect "$OUT/retrained_random10.safetensors"

echo "== the committed sample models"
for f in sample_models/*.safetensors; do
  $AUDIT inspect "$f"
done
