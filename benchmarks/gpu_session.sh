#!/usr/bin/env bash
# One GPU session, everything that needs the accelerator in one prepared command (a lent GPU
# machine gives ~10 minutes): run from the repo root with the emoji data prepared under data/
# (README: `ylg data emoji ...`), e.g.
#
#     OUT=gpu-out bash benchmarks/gpu_session.sh
#
# Stages, each bounded in time from the script's start (a failing stage does not stop the
# others; every log lands in $OUT):
#   1. environment (nvidia-smi, torch, CUDA);
#   2. one G+D training step, fp32 vs bf16 interleaved (benchmarks/train_step.py), which also
#      picks the precision of stage 3 (the faster one);
#   3. YLG and SAGAN emoji models, 3 seeds each, trained at once for TRAIN_S seconds (shipped
#      recipe, batch 64), while the CUDA tests (pytest -m gpu) run beside them; then every run
#      is exported at the last checkpoint step that all of them reached;
#   4. the inversion benchmark's reconstructions on seed 0's models (benchmarks/
#      inversion_trained.py --reconstruct-only: its metrics need the FID weights, computed
#      afterwards on a machine that has them, from the same --state);
#   5. grid attention, fwd+bwd, dense SDPA vs blocks vs flex, bf16 and fp32
#      (benchmarks/grid_attention.py), in the time left;
#   6. everything packed into at most 6 archives in $OUT.
set -u
OUT=${OUT:?set OUT to the folder for the results}
DEV=${DEVICE:-cuda}
PY=${PYTHON:-python3}
TRAIN_S=${TRAIN_S:-270}        # wall-clock seconds of training
DEADLINE=${DEADLINE:-565}      # seconds after the start by which everything is packed
INV_STEPS=${INV_STEPS:-300}
INV_N=${INV_N:-40}
SEEDS=${SEEDS:-"0 1 2"}
W=${WORK:-/tmp/ylg-gpu}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT" "$W/runs" "$W/logs" "$W/models" "$W/results"
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
left() { echo $((DEADLINE - $(date +%s) + T0)); }
log() { echo "[$(el) s] $*" | tee -a "$W/logs/session.log"; }

# 1. environment ------------------------------------------------------------------------
{
  nvidia-smi
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available()); print(torch.cuda.get_device_name(0) \
if torch.cuda.is_available() else 'no GPU')"
  nproc
} >"$W/logs/env.txt" 2>&1
log "env: $(tail -2 "$W/logs/env.txt" | head -1)"

# 2. one training step, fp32 vs bf16 ----------------------------------------------------------
timeout "${STEP_S:-60}" $PY benchmarks/train_step.py --device "$DEV" --presets demo \
  --set g_width=32 d_width=32 z_dim=128 --num-classes 9 --batch-size 64 --steps 10 \
  --precisions fp32 bf16 --tag emoji32-batch64 --json "$W/results/train-step-$DEV.jsonl" \
  >"$W/logs/train-step.log" 2>&1
log "train-step rc=$? $(grep -c '^|' "$W/logs/train-step.log") table lines"
PREC=$($PY - "$W/results/train-step-$DEV.jsonl" <<'EOF'
import json, sys
from collections import defaultdict
rate = defaultdict(list)
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        rate[r["precision"]].append(r["steps_per_s"])
except OSError:
    pass
ok = {p: sum(v) / len(v) for p, v in rate.items() if len(v) == 2}
print(max(ok, key=ok.get) if ok else "fp32")
EOF
)
log "training precision: $PREC"

# 3. training, 3 seeds x {ylg, sagan}, with the CUDA tests beside it ------------------------
train() {  # name attention seed
  timeout -s TERM "$TRAIN_S" $PY -m ylg train --preset demo --data data/emoji32-train.npz \
    --resolution 32 --attention "$2" --g-width 32 --d-width 32 --z-dim 128 --batch-size 64 \
    --g-lr 0.0004 --d-lr 0.0008 --steps 1000000 --seed "$3" --precision "$PREC" \
    --augment translation,cutout --lecam 0.3 --ema-decay 0.999 --ema-start 500 \
    --checkpoint-every 250 --keep-checkpoints --sample-every 1000 --log-every 50 \
    --workers 0 --threads 1 --no-progress --device "$DEV" --out "$W/runs/$1" \
    >"$W/logs/train-$1.log" 2>&1
  echo "$1 rc=$?" >>"$W/logs/train-rc.txt"
}
pids=()
for seed in $SEEDS; do
  for att in ylg sagan; do
    train "$att-s$seed" "$att" "$seed" &
    pids+=($!)
  done
done
log "training ${#pids[@]} runs for $TRAIN_S s"
timeout $((TRAIN_S - 20)) $PY -m pytest -m gpu -q -p no:cacheprovider tests \
  >"$W/logs/pytest-gpu.log" 2>&1
log "pytest -m gpu rc=$?: $(tail -1 "$W/logs/pytest-gpu.log")"
wait "${pids[@]}"
log "training done: $(tr '\n' ' ' <"$W/logs/train-rc.txt")"
COMMON=$($PY - "$W/runs" <<'EOF'
import re, sys
from pathlib import Path
# the last step that every run has a checkpoint of (a run stopped by SIGTERM also keeps one
# at its own stopping step, which the others do not have)
common = None
for run in sorted(Path(sys.argv[1]).iterdir()):
    done = {int(m.group(1)) for f in run.glob("ckpt-*.pt") if (m := re.match(r"ckpt-(\d+)\.pt", f.name))}
    common = done if common is None else common & done
print(max(common) if common else 0)
EOF
)
log "common checkpoint step: $COMMON"
if [ "$COMMON" -gt 0 ]; then
  for run in "$W"/runs/*; do
    name=$(basename "$run")
    $PY -m ylg export "$run/ckpt-$(printf %07d "$COMMON").pt" --out "$W/models/$name" \
      --name "emoji32-$name" >>"$W/logs/export.log" 2>&1 &
  done
  wait
  log "exported: $(ls "$W/models" | tr '\n' ' ')"
fi

# 4. inversion reconstructions on seed 0's models ------------------------------------------
if [ -f "$W/models/ylg-s0/model.json" ]; then
  INV=(benchmarks/inversion_trained.py --ylg "$W/models/ylg-s0" --sagan "$W/models/sagan-s0"
    --targets data/openmoji32.npz --n "$INV_N" --seeds 0 1 --restarts 4 --chunk "$INV_N"
    --device "$DEV" --force --state "$W/inv-state")
  timeout 35 $PY "${INV[@]}" --curves 8 --curve-steps 400 --curves-only --reconstruct-only \
    --out "$W/results/inversion-curves.json" >"$W/logs/inversion-curves.log" 2>&1
  log "inversion curves rc=$?"
  t=$(($(left) - 100)); [ $t -gt 5 ] && timeout $t $PY "${INV[@]}" --steps "$INV_STEPS" \
    --reconstruct-only --out "$W/results/inversion-reconstruct.json" >"$W/logs/inversion.log" 2>&1
  log "inversion: $(ls "$W/inv-state" 2>/dev/null | wc -l) chunks"
fi

# 5. grid attention on the GPU, in the time left -----------------------------------------------
GA=(benchmarks/grid_attention.py --device "$DEV" --side-head-dims --reps 10 --budget-s 8
  --case-timeout-s 60 --json "$W/results/grid-attention-$DEV.json")
t=$(($(left) - 75)); [ $t -gt 5 ] && timeout $t $PY "${GA[@]}" --dtype bfloat16 \
  --methods sdpa blocks flex --grids 64x64 128x128 --extra-tokens 0 >"$W/logs/ga-bf16.log" 2>&1
t=$(($(left) - 45)); [ $t -gt 5 ] && timeout $t $PY "${GA[@]}" --dtype float32 \
  --methods sdpa blocks flex --grids 64x64 128x128 --extra-tokens 0 >"$W/logs/ga-fp32.log" 2>&1
t=$(($(left) - 15)); [ $t -gt 5 ] && timeout $t $PY "${GA[@]}" --dtype bfloat16 \
  --methods sdpa blocks --grids 64x64 128x128 --extra-tokens 1 >"$W/logs/ga-bf16-global.log" 2>&1
log "grid attention: $(grep -c '"method"' "$W/results/grid-attention-$DEV.json" 2>/dev/null) rows"

# 6. pack (at most 8 files of 16 MiB come back) ------------------------------------------
for s in 0; do
  for att in ylg sagan; do
    [ -d "$W/models/$att-s$s" ] && tar -C "$W/models" -cf "$OUT/model-$att-s$s.tar" "$att-s$s"
  done
done
for att in ylg sagan; do  # other seeds: G only (FID, KID, GAN-test need no D)
  files=$(cd "$W/models" && ls -d "$att"-s* 2>/dev/null | grep -v -- "-s0$" \
    | sed 's|$|/G.safetensors|;p;s|G.safetensors|model.json|' | sort -u)
  [ -n "$files" ] && tar -C "$W/models" -cf "$OUT/seeds-$att.tar" $files
done
[ -d "$W/inv-state" ] && tar -C "$W" -czf "$OUT/inv-state.tgz" inv-state
for run in "$W"/runs/*; do  # logs, stats and the last sample grid of every run
  mkdir -p "$W/runlogs/$(basename "$run")"
  cp "$run"/config.json "$run"/stats.jsonl "$W/runlogs/$(basename "$run")/" 2>/dev/null
  cp "$(ls "$run"/samples/*.png 2>/dev/null | tail -1)" "$W/runlogs/$(basename "$run")/" 2>/dev/null
done
log "packed at $(el) s"
tar -C "$W" -czf "$OUT/results.tgz" results logs runlogs
ls -la "$OUT"
