"""Experiments: a TOML file of grids (:mod:`.spec`), planned into idempotent units of work
(:mod:`.units`), run by the job function (:mod:`.jobs`) on an executor (:mod:`.executors`):
local processes, Slurm through submitit, or Ray (docs/experiments.md)."""
