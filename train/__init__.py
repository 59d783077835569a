"""Training, evaluation and the ``lgagent`` command line.

The task data layer (:mod:`train.data.tasks`) turns the engines' games and sequences
into (tokens, legal-target mask) batches; :mod:`train.training.trainer` runs the loop.
"""
