"""Training, evaluation and the ``lgagent`` command line.

The task data layer (:mod:`train.tasks`) turns the engines' games and sequences
into (tokens, legal-target mask) batches; :mod:`train.trainer` runs the loop.
"""
