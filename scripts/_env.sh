# Shared set-up of the build scripts (sourced): strict mode, the repository root, CPU rendering,
# single-threaded math, and the project's interpreter. WORKERS_DEFAULT sets W's default.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MUJOCO_GL=${MUJOCO_GL:-egl} PRIMO_LOG_LEVEL=${PRIMO_LOG_LEVEL:-INFO}
PY=${PY:-.venv/bin/python}
W=${WORKERS:-${WORKERS_DEFAULT:-1}}
