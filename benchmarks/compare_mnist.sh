#!/usr/bin/env bash
# The README's MNIST-subset comparison: BN (with every AdaptiveBN scenario), LocalNorm,
# BN + Lipschitz and LocalNorm + Lipschitz, then `main.py compare` over all of them.
# 8,000 real training digits, tested on the held-out 2,000; 2 epochs each on CPU (~10 min on 2 cores).
#   bash benchmarks/compare_mnist.sh [DATA_DIR] [OUT]
set -euo pipefail
DATA=${1:-../shared/data/mnist-train-10k}
OUT=${2:-runs/mnist-compare}
COMMON=(--dataset=mnist "--data_dir=$DATA" --holdout=2000 --epochs=2 --batch_size=100 --verbose=2
        "--eval_noise=agn:0.5,1,2;mbn:0.3,0.5;gaussian:0.1,0.3,0.5")
LIP=(--lip_lambda=1 --lip_k=0.1 --lip_sigma=0.1)
python main.py "${COMMON[@]}" --norm=batch --adapt=none --adapt=adhoc --adapt=partial --adapt=fixed --model_dir="$OUT/bn"
python main.py "${COMMON[@]}" --norm=local --groups=10 --eval_mode=batch --eval_mode=voting --model_dir="$OUT/localnorm"
python main.py "${COMMON[@]}" --norm=batch "${LIP[@]}" --model_dir="$OUT/bn-lipschitz"
python main.py "${COMMON[@]}" --norm=local --groups=10 "${LIP[@]}" --model_dir="$OUT/localnorm-lipschitz"
python main.py compare "$OUT/bn" "$OUT/localnorm" "$OUT/bn-lipschitz" "$OUT/localnorm-lipschitz" \
  --baseline="$OUT/bn" --out="$OUT/report"
