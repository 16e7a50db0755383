#!/usr/bin/env bash
# Every method on the embedded mnist5k with smallcnn, 5 seeds x 5 epochs, attacked with the
# whole suite at reduced repeats (5 noise draws, 5 dropout repeats, a 200-image DeepFool
# subset) and reported against CE. Usage: scripts/mnist5k-methods.sh [OUT] (default
# runs/mnist5k-methods). About an hour on a 2-core CPU.
set -euo pipefail
OUT=${1:-runs/mnist5k-methods}
RBG=${RBG:-.venv/bin/rbg}
COMMON=(--dataset mnist5k --model smallcnn --seeds 0-4 --epochs 5)
ATTACK=(--suite all -p gaussian.draws=5 -p gaussian-iid.draws=5 -p dropout.repeats=5 -p deepfool.samples=200)
graph=("--loss ce" "--loss ce --parseval" "--loss laplacian" "--loss laplacian --parseval"
       "--loss gsl")
margin=("--loss lmd" "--loss lmd-noise" "--loss noisy" "--loss both" "--loss stability"
        "--loss sp" "--loss sp-focal")
for family in graph margin; do
  declare -n methods=$family
  for m in "${methods[@]}"; do
    # shellcheck disable=SC2086
    $RBG train "${COMMON[@]}" $m --out "$OUT/$family"
  done
  [ "$family" = margin ] && cp -r "$OUT"/graph/mnist5k-smallcnn-ce-seed* "$OUT/margin/" 2>/dev/null || true
  $RBG attack --runs "$OUT/$family" "${ATTACK[@]}"
  $RBG report --runs "$OUT/$family" --out "$OUT/$family/report" --baseline ce
done
