"""othello_env: a Numba bitboard Othello engine and its Gymnasium / PettingZoo environments.

The engine (:mod:`othello_env.engine`, :mod:`othello_env.games`) is pure Numba
over uint64 bitboards and imports nothing from Gymnasium, PettingZoo or torch.
Importing this package registers ``Othello-v0`` with Gymnasium.
"""

from othello_env.engine import perft
from othello_env.games import board_states, generate_games, legal_move_masks, validate_games
from othello_env.opponents import OPPONENT_NAMES, make_policy
from othello_env.tokens import PAD, VOCAB_SIZE, squares_to_tokens, tokens_to_squares

__all__ = [
    "OPPONENT_NAMES",
    "PAD",
    "VOCAB_SIZE",
    "board_states",
    "generate_games",
    "legal_move_masks",
    "make_policy",
    "perft",
    "squares_to_tokens",
    "tokens_to_squares",
    "validate_games",
]

# Environment registration (gymnasium 1.x has no plugin discovery; "othello_env:Othello-v0"
# imports this module first, so it works without a prior import).
import gymnasium as _gym  # noqa: E402
import pettingzoo as _pz  # noqa: E402

_gym.register(
    id="Othello-v0",
    entry_point="othello_env.env:OthelloEnv",
    vector_entry_point="othello_env.vector:OthelloVectorEnv",
)
_pz.register("aec", "othello_env/Othello-v0", entry_point="othello_env.pettingzoo:env")
