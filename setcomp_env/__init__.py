"""setcomp_env: the set complement task (predict the tokens absent from the input).

The core (:mod:`setcomp_env.core`) is pure NumPy: :func:`sample_sequences`
draws sequences of distinct tokens, :func:`complement_masks` gives the absent
tokens after every prefix. Importing this package registers
``SetComplement-v0`` with Gymnasium (single env and native vector env), so
``gym.make("setcomp_env:SetComplement-v0")`` works without a prior import.
"""

import gymnasium

from setcomp_env.core import complement_masks, sample_sequences
from setcomp_env.env import SetComplementEnv
from setcomp_env.vector import SetComplementVectorEnv

__all__ = ["SetComplementEnv", "SetComplementVectorEnv", "complement_masks", "sample_sequences"]

if "SetComplement-v0" not in gymnasium.registry:
    gymnasium.register(
        id="SetComplement-v0",
        entry_point="setcomp_env.env:SetComplementEnv",
        vector_entry_point="setcomp_env.vector:SetComplementVectorEnv",
    )
