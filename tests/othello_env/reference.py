"""A plain-Python reference of the Othello rules, for the tests of the engine, the games
and the tasks.

It walks the eight directions square by square on a list of 64 colour-absolute
cells (1 black, -1 white, 0 empty): slow and obvious, no bit tricks, so it shares no
bug with the bitboard engine.
"""

DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def ref_start():
    cells = [0] * 64
    cells[28] = cells[35] = 1  # black
    cells[27] = cells[36] = -1  # white
    return cells


def ref_flips(cells, player, sq):
    """Squares flipped by `player` (1 black, -1 white) playing `sq`; empty list if illegal."""
    if cells[sq] != 0:
        return []
    row, col = divmod(sq, 8)
    out = []
    for dr, dc in DIRECTIONS:
        run = []
        r, c = row + dr, col + dc
        while 0 <= r < 8 and 0 <= c < 8 and cells[r * 8 + c] == -player:
            run.append(r * 8 + c)
            r, c = r + dr, c + dc
        if run and 0 <= r < 8 and 0 <= c < 8 and cells[r * 8 + c] == player:
            out.extend(run)
    return sorted(out)


def ref_legal(cells, player):
    return {sq for sq in range(64) if ref_flips(cells, player, sq)}


def ref_play(cells, player, sq):
    new = list(cells)
    for f in ref_flips(cells, player, sq):
        new[f] = player
    new[sq] = player
    return new


def ref_game(moves, passes=None):
    """Replay a move list with the reference, resolving passes.

    Returns (boards after each move, legal set for the next mover after each
    move (empty once the game is over), whether the game is over at the end).
    Appends to ``passes`` (a list) the index of each move after which a forced pass
    happened. Raises AssertionError on an illegal move.
    """
    cells, player = ref_start(), 1
    boards, masks = [], []
    for sq in moves:
        assert sq in ref_legal(cells, player), f"illegal {sq}"
        cells = ref_play(cells, player, sq)
        player = -player
        legal = ref_legal(cells, player)
        if not legal:
            player = -player  # pass (or game over if this is empty too)
            legal = ref_legal(cells, player)
            if legal and passes is not None:
                passes.append(len(masks))
        boards.append(list(cells))
        masks.append(legal)
    return boards, masks, not masks[-1] if masks else False
