"""What a trained model does: evaluation metrics, play, human play, board probes, figures.

Imports the data layer and below; never the training loop.
"""

# The choices of the analysis commands' options, here so that ``lgagent play --help`` and
# ``lgagent probe --help`` read them without importing numpy, scipy, numba or torch.
COLORS = ("both", "black", "white")  # the model's colour in play (train.analysis.play)
# The seed of model-vs-random play unless one is given: ``lgagent play --seed``, ``lgagent eval
# --play-seed`` and the trainer's end-of-run play (``play_games``) all default to it, so the
# three play the same games for the same weights (train.analysis.play.play_models).
PLAY_SEED = 0
CODINGS = ("mover", "colour")  # board coding of the probes (train.analysis.probe)
FIT_LENGTHS = ("seen", "all")  # positions the probes are fitted on (train.analysis.probe)
LENGTH_BANDS = ("seen", "unseen", "all")  # where interventions are made (train.analysis.intervene)
MARGIN = 2.0  # the probe logit margin an intervention edits to (train.analysis.intervene)
EDIT_METHODS = ("margin", "gradient")  # how an intervention edits (train.analysis.intervene)
