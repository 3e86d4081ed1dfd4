#!/usr/bin/env bash
# `make demo`: the main job on the built-in sample data. Train the three kinds of model
# the audit compares (original, retrained without a random forget set, retrained without
# a class), repair the original with two unlearning methods, then audit: the retrained
# sample model, the original passed off as unlearned, the SalUn model, the TRW model (class
# forgetting), and a gradient-boosted tree repaired with an MPRU output filter.
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

# Audits exit 1 when leakage is shown and 3 when inconclusive; the demo reports the code
# and goes on. The shadow bank in demo-out/bank is reused by later runs. Digits is a
# weak-signal dataset (models generalise well): 128 shadows with a pooled variance are
# what it takes to show the original model's leakage (see docs/audit.md).
audit_run() {
  echo "== audit run $*"
  set +e
  $AUDIT run --bank "$OUT/bank" --shadows 128 --variance global -q "$@"
  echo "exit code $?"
  set -e
}
audit_run --model sample_models/digits_mlp_retrained_random10.safetensors --forget sample_models/forget_random10.txt
audit_run --model sample_models/digits_mlp_original.safetensors --forget sample_models/forget_random10.txt \
  --retrained sample_models/digits_mlp_retrained_random10.safetensors
audit_run --model "$OUT/salun_random10.safetensors" --forget sample_models/forget_random10.txt \
  --original "$OUT/original.safetensors" --retrained sample_models/digits_mlp_retrained_random10.safetensors \
  -f json="$OUT/salun_report.json" -f markdown="$OUT/salun_report.md"

# Class forgetting: 32 shadows, each with a twin retrained without class 3.
class_audit() {
  echo "== audit run $*"
  set +e
  $AUDIT run --bank "$OUT/bank" --shadows 32 -q "$@"
  echo "exit code $?"
  set -e
}
class_audit --model "$OUT/trw_class3.safetensors" --forget-class 3 \
  --retrained sample_models/digits_mlp_retrained_class3.safetensors -f markdown="$OUT/trw_report.md"

echo "== a tree on Covertype-like tabular data: original, retrained without class 3, MPRU filter"
TREE_DATA=(--data synthetic --data-opt n_samples=3000 --data-opt n_classes=7 --data-opt n_features=54
  --data-opt n_informative=20 --data-opt class_sep=1.5 --data-opt flip_y=0.02)
$AUDIT train "${TREE_DATA[@]}" --arch hist-gradient-boosting --arch-arg max_iter=50 \
  --out "$OUT/tree.skops" --overwrite -q
$AUDIT train "${TREE_DATA[@]}" --arch hist-gradient-boosting --arch-arg max_iter=50 --exclude-class 3 \
  --out "$OUT/tree_retrained_class3.skops" --overwrite -q
$AUDIT unlearn --model "$OUT/tree.skops" --forget-class 3 --method mpru --out "$OUT/tree_mpru.safetensors" --overwrite
$AUDIT run --bank "$OUT/bank" --shadows 16 -q --model "$OUT/tree.skops" --filter "$OUT/tree_mpru.safetensors" \
  --retrained "$OUT/tree_retrained_class3.skops" || echo "exit code $?"
