"""othello_env: a Numba bitboard Othello engine and its Gymnasium / PettingZoo environments.

The engine (:mod:`othello_env.engine`, :mod:`othello_env.games`) is pure Numba
over uint64 bitboards and imports nothing from Gymnasium, PettingZoo or torch.
Importing this package registers ``Othello-v0`` with Gymnasium.
"""

from othello_env.engine import perft
from othello_env.games import board_states, generate_games, legal_move_masks, validate_games
from othello_env.tokens import PAD, VOCAB_SIZE, squares_to_tokens, tokens_to_squares

__all__ = [
    "PAD",
    "VOCAB_SIZE",
    "board_states",
    "generate_games",
    "legal_move_masks",
    "perft",
    "squares_to_tokens",
    "tokens_to_squares",
    "validate_games",
]
