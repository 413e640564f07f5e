"""Running a plan's runs as SLURM jobs: `commands` (sbatch, squeue, scontrol), `ledger` (which job holds which run,
in the store), `executor` (one job per run with `afterok` dependencies from the run graph, a data-preparation job
before them and a table job after them) and `requeue` (a signalled job requeues itself and resumes)."""
