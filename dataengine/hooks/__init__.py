"""Retrain hooks: each new dataset version launches training (a local command or a Slurm job), once."""
