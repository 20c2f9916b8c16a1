#!/bin/bash
# Runs train.sbatch on this machine without SLURM: fake `srun` (runs the task once, as node 0)
# and `scontrol` (`show hostnames` prints this host; `requeue` is only recorded), 2 CPU
# processes through `accelerate launch`, a tiny recipe on the built-in shapes.
#   1. an uninterrupted run (the reference);
#   2. the batch script, sent SIGUSR1 once 5 history rows exist: it must stop the training
#      processes with a checkpoint and call `scontrol requeue`;
#   3. the batch script again (the "requeued job"): it must resume and finish;
#   4. history.csv (all columns but samples_per_s) and the final weights must equal the reference.
# Usage, from the repository root: bash examples/slurm/check_locally.sh   (about 2 minutes)
set -euo pipefail

repo=$(pwd)
sbatch_script=$repo/examples/slurm/train.sbatch
work=$(mktemp -d /tmp/multivic-slurm-check.XXXXXX)
mkdir -p "$work/bin"
echo "working in $work"

cat > "$work/bin/srun" <<'EOF'
#!/bin/bash
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
export SLURM_NODEID=0 SLURM_PROCID=0 SLURM_LOCALID=0
exec "$@"
EOF
cat > "$work/bin/scontrol" <<'EOF'
#!/bin/bash
case "$1 ${2:-}" in
  "show hostnames") hostname ;;
  requeue*) echo "requeue $2" >> "$FAKE_SLURM_LOG" ;;
  *) echo "fake scontrol: unsupported: $*" >&2; exit 1 ;;
esac
EOF
chmod +x "$work/bin/srun" "$work/bin/scontrol"

uv run --locked python - "$work" <<'EOF'
import sys
from pathlib import Path
from multivic.data.builtin import write_shapes_dataset
work = Path(sys.argv[1])
root = write_shapes_dataset(work / "data", train_per_class=12, val_per_class=4, size=32)
(work / "tiny.yaml").write_text(f"""seed: 0
model:
  shared: true
  branch_a: {{name: tiny, encoder: resnet18, expander: 64-64, view: {{crop_scale: [0.5, 1.0]}}}}
  branch_b: {{name: tiny, encoder: resnet18, expander: 64-64, view: {{crop_scale: [0.5, 1.0], solarize_p: 0.2}}}}
data: {{format: image_folder, root: {root}, image_size: 16, num_workers: 0}}
optim: {{name: adamw, base_lr: 0.004, weight_decay: 0.0001, warmup_epochs: 0}}
train: {{epochs: 1, batch_size: 16, log_every: 1}}
""")
EOF

export PATH=$work/bin:$PATH FAKE_SLURM_LOG=$work/slurm.log OMP_NUM_THREADS=1
export SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=1 SLURM_JOB_NODELIST=localhost SLURM_SUBMIT_DIR=$repo
export RECIPE=$work/tiny.yaml GPUS_PER_NODE=2 ACCELERATE=$repo/.venv/bin/accelerate STATE_DIR=$work
export TRAIN_ARGS="train.cpu=true train.epochs=6 data.num_workers=1 eval.enabled=false"

echo "1. reference run"
SLURM_RESTART_COUNT=0 OUTPUT_DIR=$work/reference bash "$sbatch_script" > "$work/reference.log" 2>&1

echo "2. interrupted run"
SLURM_RESTART_COUNT=0 OUTPUT_DIR=$work/run bash "$sbatch_script" > "$work/job0.log" 2>&1 &
job=$!
until [[ -f $work/run/history.csv ]] && (( $(wc -l < "$work/run/history.csv") > 5 )); do sleep 0.05; done
kill -USR1 "$job"
start=$SECONDS
rc=0; wait "$job" || rc=$?
echo "   batch script ended $((SECONDS - start)) s after SIGUSR1 with exit code $rc"
grep -E "SIGUSR1|srun exited|requeueing" "$work/job0.log" | sed 's/^/   /'
grep -q "requeue 4242" "$FAKE_SLURM_LOG" || { echo "FAIL: no scontrol requeue"; exit 1; }

echo "3. requeued run"
SLURM_RESTART_COUNT=1 OUTPUT_DIR=$work/run bash "$sbatch_script" > "$work/job1.log" 2>&1
grep -E "resumed from|srun exited|training finished" "$work/job1.log" | sed 's/^/   /'
[[ $(wc -l < "$FAKE_SLURM_LOG") == 1 ]] || { echo "FAIL: the finished job requeued itself"; exit 1; }

echo "4. compare"
uv run --locked python - "$work" <<'EOF'
import sys
from pathlib import Path
import pandas as pd
from safetensors.torch import load_file
work = Path(sys.argv[1])
a, b = (pd.read_csv(work / r / "history.csv").drop(columns="samples_per_s") for r in ("reference", "run"))
assert a.equals(b), "history.csv differs"
final = (work / "reference" / "checkpoints" / "LATEST").read_text().strip()
wa, wb = (load_file(work / r / "checkpoints" / final / "model.safetensors") for r in ("reference", "run"))
assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), "weights differ"
print(f"   OK: {len(a)} history rows and the {len(wa)} tensors of {final} equal the uninterrupted run's")
EOF
