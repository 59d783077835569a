"""The task data layer: tokens and legal-target masks for both tasks, corpus files.

Imports only the envs (and torch); every other part of ``train`` builds on it. This
file holds the facts of the tasks that the command line needs without importing
torch (the options of ``lgagent train`` are built from them).
"""

TASKS = ("othello", "setcomp")
DEFAULT_VOCAB = 16  # set complement tokens when --vocab-size is not given
EVAL_SIZE = 1024  # held-out sequences of an evaluation
EVAL_SEED = 1234  # seed of the held-out batch: the same for every training seed
FORMATS = ("npy", "parquet")  # corpus files of lgagent datagen (train.data.datagen)
