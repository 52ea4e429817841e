"""Scaling sweeps: `submit` a grid of Slurm runs, `collect` them (`python -m vzero_nemo.scaling`)."""
