"""What a trained model does: evaluation metrics, play, human play, board probes, figures.

Imports the data layer and below; never the training loop.
"""
