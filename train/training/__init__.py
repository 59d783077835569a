"""One training run: the run config, assembly of its parts, the loop, DDP, RNG and prefetch.

Imports the analysis layer (end-of-run evaluation and play) and below.
"""
