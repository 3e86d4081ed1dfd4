#!/usr/bin/env bash
# `make demo`: the main job on the built-in sample data. Today: train the three kinds of
# model the audit compares (original, retrained without a random forget set, retrained
# without a class), repair the original with two unlearning methods, inspect the results.
# It grows into a full audit.
set -euo pipefail
cd "$(dirname "$0")/.."
AUDIT=.venv/bin/audit
OUT=demo-out
mkdir -p "$OUT"

echo "== datasets, architectures, unlearning methods"
$AUDIT datasets
$AUDIT archs
$AUDIT methods

echo "== train an original digits MLP"
$AUDIT train --data digits --arch mlp --epochs 60 --out "$OUT/original.safetensors" --overwrite -q

echo "== retrain without the sample forget set (random 10% of the training ids)"
$AUDIT train --data digits --arch mlp --epochs 60 --exclude sample_models/forget_random10.txt \
  --out "$OUT/retrained_random10.safetensors" --overwrite -q

echo "== retrain without class 3"
$AUDIT train --data digits --arch mlp --epochs 60 --exclude-class 3 \
  --out "$OUT/retrained_class3.safetensors" --overwrite -q

echo "== unlearn the forget set with SalUn, and class 3 with TRW"
$AUDIT unlearn --model "$OUT/original.safetensors" --forget sample_models/forget_random10.txt \
  --method salun --out "$OUT/salun_random10.safetensors" --overwrite
$AUDIT unlearn --model "$OUT/original.safetensors" --forget-class 3 \
  --method trw --out "$OUT/trw_class3.safetensors" --overwrite

echo "== inspect what was written"
$AUDIT inspect "$OUT/trw_class3.safetensors"

echo "== the committed sample models"
for f in sample_models/*.safetensors; do
  $AUDIT inspect "$f"
done
