"""setcomp_env: the set complement task (predict the tokens absent from the input).

The core (:mod:`setcomp_env.core`) is pure NumPy. Importing this package
registers ``SetComplement-v0`` with Gymnasium.
"""

from setcomp_env.core import complement_masks, sample_sequences

__all__ = ["complement_masks", "sample_sequences"]
