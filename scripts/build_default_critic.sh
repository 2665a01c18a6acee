#!/usr/bin/env bash
# Rebuild the embedded default compact critic (primo_loop/assets/compact/) and its report, from scratch.
# Datasets go under data/ (git-ignored). About 45 min of collection and 8-15 min of training on 2 CPU cores;
# see docs/critic.md. Each step resumes if interrupted: run the script again.
WORKERS_DEFAULT=2 source "$(dirname "$0")/_env.sh"
OUT=${OUT:-runs/compact_default}

# training data: scripted rollouts, half of them with an injected failure
$PY scripts/collect.py --env Lift --robot Panda IIWA --episodes 150 --seed 0 --failure-rate 0.5 \
    --workers "$W" --out data/train_lift
$PY scripts/collect.py --env Stack PickPlaceCan --robot Panda --episodes 100 --seed 0 --failure-rate 0.5 \
    --frame-every 10 --workers "$W" --out data/train_stack_ppc
# held-out evaluation data: other seeds; unseen robots; the humanoid (no scripted policy: random actions)
$PY scripts/collect.py --env Lift --robot Panda IIWA --episodes 20 --seed 100000 --failure-rate 0.5 \
    --frame-every 10 --workers "$W" --out data/eval_lift
$PY scripts/collect.py --env Stack PickPlaceCan --robot Panda --episodes 20 --seed 100000 --failure-rate 0.5 \
    --frame-every 10 --workers "$W" --out data/eval_stack_ppc
$PY scripts/collect.py --env Lift --robot Sawyer UR5e --episodes 20 --seed 200000 --failure-rate 0.5 \
    --frame-every 10 --workers "$W" --out data/eval_robots
$PY scripts/collect.py --env Lift --robot GR1ArmsOnly --episodes 10 --seed 300000 --failure-rate 0 \
    --policy random --frame-every 10 --workers "$W" --out data/eval_gr1

# training (deterministic under the seed; --resume continues an interrupted run)
RESUME=()
[ -f "$OUT/train_state.pt" ] && RESUME=(--resume)
$PY scripts/train_critic.py compact --data data/train_lift data/train_stack_ppc --out "$OUT" --epochs 40 \
    --seed 0 --failure-weight 1.0 --max-minutes 28 "${RESUME[@]}"

# evaluation report
$PY scripts/eval_critic.py --critic compact --checkpoint "$OUT" \
    --data data/eval_lift data/eval_stack_ppc data/eval_robots data/eval_gr1 --overwrite --out "$OUT/eval"

if [ "${INSTALL:-0}" = 1 ]; then  # replace the embedded default
    cp "$OUT/config.json" "$OUT/weights.pt" primo_loop/assets/compact/
    $PY scripts/eval_critic.py --critic compact \
        --data data/eval_lift data/eval_stack_ppc data/eval_robots data/eval_gr1 --overwrite --out "$OUT/eval_installed"
    cp "$OUT"/eval_installed/* primo_loop/assets/compact/  # the report beside the installed weights
fi
