#!/usr/bin/env bash
# Rebuild the default compact critic from nothing, then score it on held-out sets collected AFTER training,
# beside the shipped default, and write the target report (benchmarks/default_critic.py).
#
#   scripts/build_default_critic.sh                 # the real recipe (issue 33 item 5)
#   QUICK=1 scripts/build_default_critic.sh         # the whole pipeline at toy scale (a few minutes)
#   INSTALL=1 scripts/build_default_critic.sh       # also replace the embedded default (primo_loop/assets/compact)
#
# Stages (every one resumes: collection skips finished episodes, training continues from its train_state.pt,
# a finished training or evaluation is skipped; run the script again after an interruption):
#   1. training data: TASKS x ARMS, EPISODES_PER_TASK each, half with an injected failure, CAMERAS, APPEARANCE
#   2. train the model ($OUT/model)
#   3. held-out sets, seeds never used in training, collected after training: in-domain (ARMS, nominal and
#      training-split looks), unseen robots (UNSEEN_ROBOTS on the tasks that support them), unseen appearance
#      (--appearance heldout), the humanoid (GR1ArmsOnly Lift, scripted)
#   4. side models: leave-one-task-out (train on the other tasks, LOTO_EPOCHS), the humanoid variant (the model
#      fine-tuned with HUMANOID_TRAIN_EPISODES humanoid episodes added to its training data), and with two or more
#      CAMERAS the first camera alone (FIRST_VIEW=1: the main model's data and budget; which view set reads better)
#   5. evaluation of every model and of the shipped default on the held-out sets ($OUT/eval/...), and the report
#      ($REPORT/report.md + report.json)
# Every knob is an environment variable whose default is the real recipe (see below). Stage wall and CPU times
# (seconds) go to $OUT/build_times.tsv (CPU time sizes a run on a machine shared with other jobs; it counts the
# processes the stage waited for, so not a collection's pool workers: their CPU is the collection summary's
# "cpu_s", in the log), the settings to $OUT/build.json.
WORKERS_DEFAULT=2 source "$(dirname "$0")/_env.sh"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then  # toy scale, and only the collection flags that exist today
    : "${OUT:=runs/default_critic_quick}" "${TASKS:=Lift Stack}" "${ARMS:=Panda}" "${UNSEEN_ROBOTS:=Sawyer}"
    : "${CAMERAS:=}" "${APPEARANCE:=}" "${EPISODES_PER_TASK:=2}" "${EVAL_EPISODES:=2}" "${GR1_EVAL_EPISODES:=1}"
    : "${HUMANOID_TRAIN_EPISODES:=1}" "${EPOCHS:=2}" "${LOTO_EPOCHS:=1}" "${HUMANOID_EPOCHS:=1}" "${MAX_MINUTES:=5}"
    : "${IMAGE_SIZE:=32}" "${RENDER_SIZE:=32}" "${HORIZON:=60}" "${LOTO_TASKS:=Stack}" "${REPORT:=$OUT/report}"
    : "${LATENCY_REPEATS:=5}" "${CHANNELS:=8 16}"
fi
OUT=${OUT:-runs/default_critic}
DATA=${DATA:-$OUT/data}
REPORT=${REPORT:-docs/results/default_critic}
TASKS=${TASKS:-Lift Stack PickPlaceCan Door NutAssemblySquare}
ARMS=${ARMS:-Panda IIWA}                           # the training arms
UNSEEN_ROBOTS=${UNSEEN_ROBOTS:-Sawyer UR5e}        # scored on each task that supports them
CAMERAS=${CAMERAS-agentview robot0_eye_in_hand}    # empty: collect.py's single default camera
APPEARANCE=${APPEARANCE-train}                     # empty: no --appearance flag (nominal look only)
EPISODES_PER_TASK=${EPISODES_PER_TASK:-70}         # training episodes per task and arm (sized: README there)
EVAL_EPISODES=${EVAL_EPISODES:-10}                 # held-out episodes per task, robot (and look)
GR1_EVAL_EPISODES=${GR1_EVAL_EPISODES:-30}
HUMANOID_TRAIN_EPISODES=${HUMANOID_TRAIN_EPISODES:-20}
FAILURE_RATE=${FAILURE_RATE:-0.5}
EPOCHS=${EPOCHS:-40}
MAX_MINUTES=${MAX_MINUTES:-60}                     # a cap on the main training's wall time
LOTO_EPOCHS=${LOTO_EPOCHS:-10}                     # side models get a smaller budget (the report says so)
LOTO_TASKS=${LOTO_TASKS:-$TASKS}                   # which tasks are left out, one side model each
HUMANOID_EPOCHS=${HUMANOID_EPOCHS:-10}
HUMANOID_LR=${HUMANOID_LR:-5e-4}
IMAGE_SIZE=${IMAGE_SIZE:-64}
STEM=${STEM:-patch}                                # the CNN's first layer: patch (4x4 stride 4) or conv (5x5 s2)
CHANNELS=${CHANNELS:-24 48 64}                     # two views in ~2.2 ms/query at batch 8 (docs/critic.md)
RENDER_SIZE=${RENDER_SIZE:-128}
TRAIN_FRAME_EVERY=${TRAIN_FRAME_EVERY:-5}          # the trainer also samples half its stride of 10
HORIZON=${HORIZON:-}
SEED=${SEED:-0}
TRAIN_THREADS=${TRAIN_THREADS:-$W}                 # torch threads of the training stages (they run one at a time)
LATENCY_REPEATS=${LATENCY_REPEATS:-50}
# seed bases of the held-out sets: far from the training seeds (SEED .. SEED+EPISODES_PER_TASK-1)
SEED_IN_DOMAIN=100000 SEED_ROBOTS=200000 SEED_APPEARANCE=300000 SEED_GR1_EVAL=400000 SEED_GR1_TRAIN=500000

# ----------------------------------------------------------------------------------------- fail early
COLLECT_HELP=$($PY scripts/collect.py --help)
need_flag() {  # need_flag FLAG WHY
    if ! grep -q -- "$1" <<<"$COLLECT_HELP"; then
        echo "build_default_critic.sh: scripts/collect.py has no $1 option, needed for $2. Merge the branch that" \
             "adds it, or run with ${3:-the variable} empty (QUICK=1 does)." >&2
        exit 2
    fi
}
need_flag --supported-only "ARMS that not every task supports"
[ -n "$CAMERAS" ] && need_flag --cameras "CAMERAS=\"$CAMERAS\" (multi-view frames)" CAMERAS
[ -n "$APPEARANCE" ] && need_flag --appearance "APPEARANCE=$APPEARANCE and the unseen-appearance set" APPEARANCE
$PY - "$TASKS" "$ARMS" <<'EOF' || exit 2
import sys
import envs
tasks, arms = sys.argv[1].split(), sys.argv[2].split()
bad = [t for t in tasks if t not in envs.TASKS]
if bad:
    sys.exit(f"build_default_critic.sh: unknown task(s) {bad}; envs/ has {list(envs.TASKS)}. Merge the branch "
             "that adds them, or set TASKS")
bad = [t for t in tasks if not set(arms) & set(envs.supported_robots(t))]
if bad:
    sys.exit(f"build_default_critic.sh: no training arm can do {bad}; add one of their robots to ARMS")
skip = [f"{r} on {t}" for t in tasks for r in arms if r not in envs.supported_robots(t)]
if skip:  # each task is collected with the training arms that can do it
    print(f"build_default_critic.sh: no episodes of {', '.join(skip)} (the arm cannot do the task)", file=sys.stderr)
EOF

mkdir -p "$OUT" "$DATA"
VIEW=(); [ -n "$CAMERAS" ] && VIEW=(--cameras $CAMERAS)
LOOK_TRAIN=(); [ -n "$APPEARANCE" ] && LOOK_TRAIN=(--appearance "$APPEARANCE")
SIZE=(--image-size "$IMAGE_SIZE" --render-size "$RENDER_SIZE")
[ -n "$HORIZON" ] && SIZE+=(--horizon "$HORIZON")
COMMON=(--failure-rate "$FAILURE_RATE" --workers "$W" --no-progress "${SIZE[@]}" "${VIEW[@]}")
ARMS_OF=(--robot $ARMS --supported-only)  # each task with the training arms that can do it
MODEL=(--image-size "$IMAGE_SIZE" --stem "$STEM" --channels $CHANNELS --threads "$TRAIN_THREADS" --seed "$SEED"
       --failure-weight 1.0 --no-progress)

SHIPPED_CKPT=-  # the shipped default ("-") scores the held-out sets; on one-camera data its one-camera twin
[ "$(wc -w <<<"$CAMERAS")" -le 1 ] && SHIPPED_CKPT=one_view
$PY - "$OUT/build.json" <<EOF
import json, sys
json.dump({"quick": "$QUICK" == "1", "tasks": "$TASKS".split(), "arms": "$ARMS".split(),
           "unseen_robots": "$UNSEEN_ROBOTS".split(), "cameras": "$CAMERAS".split(),
           "appearance": "$APPEARANCE" or None,
           "episodes_per_task": $EPISODES_PER_TASK, "eval_episodes": $EVAL_EPISODES,
           "gr1_eval_episodes": $GR1_EVAL_EPISODES, "humanoid_train_episodes": $HUMANOID_TRAIN_EPISODES,
           "epochs": $EPOCHS, "max_minutes": $MAX_MINUTES, "loto_epochs": $LOTO_EPOCHS,
           "loto_tasks": "$LOTO_TASKS".split(),
           "humanoid_epochs": $HUMANOID_EPOCHS, "image_size": $IMAGE_SIZE, "stem": "$STEM",
           "channels": [int(c) for c in "$CHANNELS".split()], "render_size": $RENDER_SIZE,
           "train_frame_every": $TRAIN_FRAME_EVERY, "workers": $W, "train_threads": $TRAIN_THREADS,
           "seed": $SEED, "shipped_scored_as": "${SHIPPED_CKPT/#-/default}"},
          open(sys.argv[1], "w"), indent=1)
EOF

echo "# run started $(date -u +%FT%TZ) (QUICK=$QUICK)" >>"$OUT/build_times.tsv"  # a rerun appends its own lines
cpu_now() {  # CPU_NOW := CPU seconds (user + system) of this shell's finished children (`times` in this shell)
    times >"$OUT/.times"
    CPU_NOW=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /m|s/); t += a[1] * 60 + a[2] }
                             printf "%.1f", t }' "$OUT/.times")
}
stage() {  # stage NAME COMMAND...: run it, record its wall time and CPU time (seconds; CPU = all its processes)
    local t0=$SECONDS c0
    cpu_now
    c0=$CPU_NOW
    echo "== $1" >&2
    "${@:2}"
    cpu_now
    printf '%s\t%s\t%s\n' "$1" $((SECONDS - t0)) "$(awk -v a="$c0" -v b="$CPU_NOW" 'BEGIN { printf "%.1f", b - a }')" \
        >>"$OUT/build_times.tsv"
}
train() {  # train DIR ARGS...: skipped once finished; continued from train_state.pt if interrupted
    local dir=$1; shift
    [ -f "$dir/.built" ] && { echo "skip: $dir is trained" >&2; return; }
    local resume=(); [ -f "$dir/train_state.pt" ] && resume=(--resume)
    $PY scripts/train_critic.py compact --out "$dir" "$@" "${resume[@]}" && touch "$dir/.built"
}
evaluate() {  # evaluate OUTDIR CHECKPOINT(- for the shipped default) SPLIT_BY DATA...: skipped once written
    local dir=$1 ckpt=$2 split=$3; shift 3
    [ -f "$dir/report.json" ] && { echo "skip: $dir is scored" >&2; return; }
    local c=(); [ "$ckpt" != - ] && c=(--checkpoint "$ckpt")
    $PY scripts/eval_critic.py --critic compact "${c[@]}" --data "$@" --split-by "$split" --no-progress \
        --overwrite --out "$dir"
}

# 1-2. training data and the model
stage collect_train $PY scripts/collect.py --env $TASKS "${ARMS_OF[@]}" --episodes "$EPISODES_PER_TASK" \
    --seed "$SEED" --frame-every "$TRAIN_FRAME_EVERY" "${COMMON[@]}" "${LOOK_TRAIN[@]}" --out "$DATA/train"
stage train train "$OUT/model" --data "$DATA/train" --epochs "$EPOCHS" --max-minutes "$MAX_MINUTES" "${MODEL[@]}"

# 3. held-out sets, collected after training, on seeds training never used
EVAL=(--episodes "$EVAL_EPISODES" --frame-every 10 "${COMMON[@]}")
stage collect_in_domain_nominal $PY scripts/collect.py --env $TASKS "${ARMS_OF[@]}" --seed $SEED_IN_DOMAIN \
    "${EVAL[@]}" --out "$DATA/eval_in_domain_nominal"
IN_DOMAIN=("$DATA/eval_in_domain_nominal")
if [ -n "$APPEARANCE" ]; then
    stage collect_in_domain_train_look $PY scripts/collect.py --env $TASKS "${ARMS_OF[@]}" \
        --seed $((SEED_IN_DOMAIN + 50000)) "${EVAL[@]}" --appearance train --out "$DATA/eval_in_domain_train_look"
    IN_DOMAIN+=("$DATA/eval_in_domain_train_look")
    stage collect_appearance $PY scripts/collect.py --env $TASKS "${ARMS_OF[@]}" --seed $SEED_APPEARANCE \
        "${EVAL[@]}" --appearance heldout --out "$DATA/eval_appearance"
fi
ROBOT_SETS=()
for task in $TASKS; do  # unseen robots, each task with the ones it supports
    robots=$($PY -c "import envs, sys; t, *rs = sys.argv[1:]; print(*(r for r in rs if r in envs.supported_robots(t)))"\
        "$task" $UNSEEN_ROBOTS)
    [ -z "$robots" ] && continue
    stage "collect_robots_$task" $PY scripts/collect.py --env "$task" --robot $robots --seed $SEED_ROBOTS \
        "${EVAL[@]}" --out "$DATA/eval_robots_$task"
    ROBOT_SETS+=("$DATA/eval_robots_$task")
done
GR1=(--env Lift --robot GR1ArmsOnly --policy scripted "${COMMON[@]}")  # scored in the nominal look
stage collect_gr1 $PY scripts/collect.py "${GR1[@]}" --episodes "$GR1_EVAL_EPISODES" --seed $SEED_GR1_EVAL \
    --frame-every 10 --out "$DATA/eval_gr1"

# 4. side models: leave one task out; the humanoid variant
for task in $LOTO_TASKS; do
    rest=$(tr ' ' '\n' <<<"$TASKS" | grep -vx "$task" | tr '\n' ' ')
    stage "train_loto_$task" train "$OUT/loto_$task" --data "$DATA/train" --tasks $rest --epochs "$LOTO_EPOCHS" \
        --max-minutes "$MAX_MINUTES" "${MODEL[@]}"
done
FIRST_VIEW=${FIRST_VIEW:-1}  # with 2+ CAMERAS: a side model on the first camera only, the main model's budget
if [ "$FIRST_VIEW" = 1 ] && [ "$(wc -w <<<"$CAMERAS")" -gt 1 ]; then
    stage train_first_view train "$OUT/model_first_view" --data "$DATA/train" --views ${CAMERAS%% *} \
        --epochs "$EPOCHS" --max-minutes "$MAX_MINUTES" "${MODEL[@]}"
fi
stage collect_gr1_train $PY scripts/collect.py "${GR1[@]}" "${LOOK_TRAIN[@]}" --episodes "$HUMANOID_TRAIN_EPISODES" \
    --seed $SEED_GR1_TRAIN --frame-every "$TRAIN_FRAME_EVERY" --out "$DATA/train_gr1"
stage train_humanoid train "$OUT/model_humanoid" --init "$OUT/model" --data "$DATA/train" "$DATA/train_gr1" \
    --epochs "$HUMANOID_EPOCHS" --lr "$HUMANOID_LR" --max-minutes "$MAX_MINUTES" "${MODEL[@]}"

# 5. evaluation: every model, and the shipped default where it can read the frames
# the sets each model is scored on (each eval_critic run costs ~20-40 s of start-up even at toy scale): the
# humanoid variant where the report compares it (humanoid; in-domain: what it costs the arms), the per-task
# in-domain split for the shipped default (its figure beside each leave-one-task-out row), the per-look one only
# with two looks
SETS=(in_domain humanoid)
[ ${#IN_DOMAIN[@]} -gt 1 ] && SETS+=(in_domain_by_look)
[ ${#ROBOT_SETS[@]} -gt 0 ] && SETS+=(unseen_robots)
[ -n "$APPEARANCE" ] && SETS+=(unseen_appearance)
SETS+=(in_domain_by_task)
score() {  # score NAME CHECKPOINT SET: one held-out set
    local dir=$OUT/eval/$1/$3
    case $3 in
        in_domain) evaluate "$dir" "$2" none "${IN_DOMAIN[@]}" ;;
        in_domain_by_look) evaluate "$dir" "$2" source "${IN_DOMAIN[@]}" ;;
        in_domain_by_task) evaluate "$dir" "$2" task "${IN_DOMAIN[@]}" ;;
        unseen_robots) evaluate "$dir" "$2" robot "${ROBOT_SETS[@]}" ;;
        unseen_appearance) evaluate "$dir" "$2" none "$DATA/eval_appearance" ;;
        humanoid) evaluate "$dir" "$2" none "$DATA/eval_gr1" ;;
    esac
}
for set in "${SETS[@]}"; do
    [ "$set" != in_domain_by_task ] && stage "eval_model_$set" score model "$OUT/model" "$set"
    [[ $set = in_domain || $set = humanoid ]] && stage "eval_model_humanoid_$set" score model_humanoid \
        "$OUT/model_humanoid" "$set"
    # the shipped default where it can read the frames: on one-camera data (CAMERAS empty or one camera) its
    # one-camera twin, since the two-view default refuses them (a failure is reported, not fatal)
    set +e  # set -e holds inside the subshell
    (set -e; stage "eval_shipped_$set" score shipped "$SHIPPED_CKPT" "$set")
    rc=$?
    set -e
    [ $rc = 0 ] || echo "build_default_critic.sh: the shipped default could not score $set; the report reads n/a" >&2
done
[ -f "$OUT/model_first_view/.built" ] && stage eval_model_first_view_in_domain score model_first_view \
    "$OUT/model_first_view" in_domain
for task in $LOTO_TASKS; do
    stage "eval_loto_$task" evaluate "$OUT/eval/loto/$task" "$OUT/loto_$task" task "${IN_DOMAIN[@]}"
done

stage report $PY benchmarks/default_critic.py --build "$OUT" --out "$REPORT" --repeats "$LATENCY_REPEATS"

if [ "${INSTALL:-0}" = 1 ]; then  # replace the embedded default, with its report (every held-out set) beside it
    SHIP=${INSTALL_MODEL:-model}  # model_humanoid if the report shows it costs the arms nothing
    evaluate "$OUT/eval/$SHIP/all" "$OUT/$SHIP" auto "${IN_DOMAIN[@]}" "${ROBOT_SETS[@]}" "$DATA/eval_gr1" \
        $([ -n "$APPEARANCE" ] && echo "$DATA/eval_appearance")
    rm -f primo_loop/assets/compact/*.png  # the new report's plots only
    cp "$OUT/$SHIP/config.json" "$OUT/$SHIP/weights.pt" primo_loop/assets/compact/
    cp "$OUT/eval/$SHIP/all"/report.* "$OUT/eval/$SHIP/all"/*.png primo_loop/assets/compact/
    if [ -f "$OUT/model_first_view/.built" ]; then  # the one-camera twin, for envs that give one frame of their own
        mkdir -p primo_loop/assets/compact_one_view
        cp "$OUT/model_first_view/config.json" "$OUT/model_first_view/weights.pt" primo_loop/assets/compact_one_view/
        cp "$OUT/eval/model_first_view/in_domain"/report.* primo_loop/assets/compact_one_view/
    fi
fi
