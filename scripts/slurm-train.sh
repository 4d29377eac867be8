#!/usr/bin/env bash
# A Slurm batch script for data-parallel crate-ts training (an example to adapt: partition, account,
# time, paths). Submit with `sbatch scripts/slurm-train.sh`; srun starts one crate-ts process per
# task, and each finds its rank in Slurm's variables (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID).
#
#   CPU nodes:  every task trains on the cpu backend; --dist mpi (the MPI addon: npm run build:mpi,
#               built against the cluster's MPI; srun needs --mpi=pmix or pmi2, whichever the
#               cluster's MPI was built for).
#   GPU nodes:  one task per GPU, --backend cuda --dist nccl; the NCCL id goes over MPI when the MPI
#               addon is built, else over TCP to MASTER_ADDR:MASTER_PORT (set below).
#
# Rank 0 writes the run directory (--out, on a shared filesystem); `--resume DIR` continues it on any
# number of tasks that divides the run's micro-batches per step.
#SBATCH --job-name=crate-ts
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=crate-ts-%j.out
set -euo pipefail

OUT="${OUT:-$PWD/runs/crate-B-$SLURM_JOB_ID}"
MODE="${MODE:-gpu}"   # gpu | cpu
export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_PORT="${MASTER_PORT:-29500}"

if [ "$MODE" = gpu ]; then
  srun --mpi="${SRUN_MPI:-pmix}" npx crate-ts train --backend cuda --dist nccl \
    --preset B --data "${DATA:?set DATA to a nanoGPT token directory}" \
    --batch 8 --grad-accum 1 --steps 600000 --out "$OUT" ${RESUME:+--resume "$RESUME"}
else
  srun --mpi="${SRUN_MPI:-pmix}" npx crate-ts train --backend cpu --dist mpi \
    --threads "$SLURM_CPUS_PER_TASK" --preset char --data "${DATA:?set DATA}" \
    --batch 8 --steps 5000 --out "$OUT" ${RESUME:+--resume "$RESUME"}
fi
