"""The ``lgagent`` commands: one thin module per command (parse options, call the library, print).

``main.py`` holds the click group; each subcommand is imported only when it runs,
so ``--help`` and option errors never import torch or numba. Commands may import
every layer below them (study, training, analysis, data).
"""
