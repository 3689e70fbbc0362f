#!/usr/bin/env bash
# One prepared pass on a CUDA machine (issue 2): the GPU tests, `rnnlab train hardware=gpu` at
# 16-mixed and bf16-mixed on an LSTM, and the overhead benchmark on the GPU.
#
# Runs from the repository root without installing rnnlab and without Ray (PYTHONPATH=src), so
# it works on a machine that has torch and Lightning but not the rest of rnnlab's dependencies:
# carry those as wheels in .whl/ (docs/benchmarks.md says which) and they go to a scratch folder.
# Logs go to $OUT (default ./gpu-check-out), one file per step; every step has its own time
# limit so that a slow one cannot take the others' results with it.
#
#   bash benchmarks/gpu_wheels.sh           # here, before: the wheels a bare GPU machine lacks
#   bash benchmarks/gpu_check.sh            # there: about 5 minutes on one H100/H200
set -uo pipefail

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
REPO=$PWD
SITE=${SITE:-/tmp/rnnlab-site}
PY=${PYTHON:-python3}
export MLFLOW_DISABLE_TELEMETRY=true PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl || exit 1
    export PYTHONPATH=$SITE:$REPO/src
else
    export PYTHONPATH=$REPO/src
fi
# The lent GPU machines run Python with PYTHONDONTWRITEBYTECODE set, so a module without a
# compiled .pyc is compiled again in every process: uncompiled, mlflow and SQLAlchemy alone
# cost 3-5 s of every fresh process's set-up there (docs/benchmarks.md). pip compiles what it
# installs; the source tree is compiled here, as `pip install` would for a user.
"$PY" -m compileall -q -j 0 "$REPO/src" >/dev/null

step() {  # step NAME LIMIT_S COMMAND...: run, log to $OUT/NAME.log, report rc and seconds
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: rc=$rc in $((SECONDS - t0)) s"
    tail -n "${TAIL:-25}" "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, pytorch_lightning as pl, platform
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(),
      '| lightning', pl.__version__, '| python', platform.python_version(),
      '|', torch.cuda.get_device_name(0))"

"$PY" -c "import os, sys; print('dont_write_bytecode', sys.flags.dont_write_bytecode,
      '| PYTHONPYCACHEPREFIX', os.environ.get('PYTHONPYCACHEPREFIX'), '| HOME', os.path.expanduser('~'))"

# Steps in order of what matters most, each with its own limit, so that a run cut short by
# the machine's lease still brings back the first ones' logs.
#
# Set-up as a first user meets it: nothing imported yet in any process, no rnnlab cache and no
# MLflow store template; then the same again in a second fresh process, which has what the
# first one left on disk.
for n in 1 2; do
    TAIL=8 step "setup-fresh-$n" 60 "$PY" benchmarks/overhead.py --accelerator gpu --quick \
        --workloads parity
done

step pytest 150 "$PY" -m pytest -p no:cacheprovider -q -m gpu \
    tests/integration/test_gpu.py tests/unit/test_recurrent_model.py \
    tests/integration/test_trial_resume_best.py

TAIL=40 step overhead-fp32 150 "$PY" benchmarks/overhead.py --accelerator gpu --precision 32

# The command a user types, in an empty folder, as `rnnlab train` (entry point run by module).
RUN=$(mktemp -d)
for precision in 16-mixed bf16-mixed; do
    (cd "$RUN" && step "train-$precision" 60 "$PY" -m rnnlab train model=lstm hardware=gpu \
        "hardware.precision=$precision" model.num_layers=2 model.hidden_size=256 \
        task=adding task.seq_len=100 train.max_epochs=5)
done

TAIL=20 step overhead-fp16 90 "$PY" benchmarks/overhead.py --accelerator gpu \
    --precision 16-mixed --workloads realistic
TAIL=22 step overhead-ablations 120 "$PY" benchmarks/overhead.py --accelerator gpu \
    --precision 32 --workloads parity --ablations
