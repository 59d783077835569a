"""Studies over many runs: grid sweeps, random search (Optuna) and their statistics.

Imports the training layer (to run trials) and below; no click.
"""
