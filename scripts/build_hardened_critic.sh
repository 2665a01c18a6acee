#!/usr/bin/env bash
# Harden the compact critic against the states RL agents visit: collect episodes of trained agents (labelled
# from privileged sim state like all our data), fine-tune the embedded default critic on them mixed with a
# share of its original scripted Lift data, and score old and new critic side by side on held-out episodes.
#
#   AGENTS="runs/pilot_scratch/critic_s100 ..." HELD_OUT="runs/pilot_scratch/dense_s101" \
#       scripts/build_hardened_critic.sh
#
# AGENTS: run folders of scripts/train_agent.py on Lift (Panda) whose episodes train the critic (40 each) and
#   score it (10 new episodes each); HELD_OUT: run folders whose episodes only score it (an agent the critic
#   never saw). Datasets go under data/ (git-ignored), the checkpoint and reports under $OUT. Every step
#   resumes if interrupted: run the script again. About 35 minutes with one worker (measured while two
# training runs shared the machine's 2 cores).
WORKERS_DEFAULT=1 source "$(dirname "$0")/_env.sh"
OUT=${OUT:-runs/compact_hardened}
AGENTS=${AGENTS:?set AGENTS to the training run folders whose episodes train the critic}
HELD_OUT=${HELD_OUT:-}
HORIZON=${HORIZON:-80}
# agents: the whole episode (no early stop), action noise drawn from [0, 0.3] per episode
AGENT=(--env Lift --robot Panda --failure-rate 0 --noise 0.3 --horizon "$HORIZON" --frame-every 5
       --post-success-steps -1 --post-failure-steps -1 --workers "$W")

# training data: 40 episodes of each agent (seed ranges apart from each other) and scripted Lift episodes
# with the seeds of a third of the default critic's Lift data (re-collected on today's code: close to, not
# identical with, the originals; docs/critic.md), so that fine-tuning does not forget scripted rollouts
train_dirs=()
i=0
for run in $AGENTS; do
    $PY scripts/collect.py --policy "$run" "${AGENT[@]}" --episodes 40 --seed $((i * 1000)) \
        --out "data/agent_$(basename "$run")"
    train_dirs+=("data/agent_$(basename "$run")")
    i=$((i + 1))
done
$PY scripts/collect.py --env Lift --robot Panda IIWA --episodes 50 --seed 0 --failure-rate 0.5 \
    --workers "$W" --out data/train_lift

RESUME=()
[ -f "$OUT/train_state.pt" ] && RESUME=(--resume)
$PY scripts/train_critic.py compact --init default --data "${train_dirs[@]}" data/train_lift --out "$OUT" \
    --epochs 12 --lr 5e-4 --seed 0 --failure-weight 1.0 "${RESUME[@]}"

# held-out data: 10 new episodes of each agent, 10 of each HELD_OUT agent, the default critic's scripted
# Lift evaluation episodes
eval_dirs=()
i=0
for run in $AGENTS $HELD_OUT; do
    kind=eval; [[ " $AGENTS " == *" $run "* ]] || kind=heldout
    $PY scripts/collect.py --policy "$run" "${AGENT[@]}" --episodes 10 --seed $((500000 + i * 1000)) \
        --out "data/${kind}_agent_$(basename "$run")"
    eval_dirs+=("data/${kind}_agent_$(basename "$run")")
    i=$((i + 1))
done
$PY scripts/collect.py --env Lift --robot Panda IIWA --episodes 20 --seed 100000 --failure-rate 0.5 \
    --frame-every 10 --workers "$W" --out data/eval_lift

for critic in default hardened; do
    ckpt=()
    [ "$critic" = hardened ] && ckpt=(--checkpoint "$OUT")
    $PY scripts/eval_critic.py --critic compact "${ckpt[@]}" --data "${eval_dirs[@]}" data/eval_lift \
        --split-by source --overwrite --out "$OUT/eval_$critic"
done
$PY scripts/eval_critic.py --compare "$OUT/eval_default" "$OUT/eval_hardened" --names default hardened \
    --overwrite --out "$OUT/compared"  # OUT holds the checkpoint: the comparison gets its own folder
