"""setcomp_env: the set complement task (predict the tokens absent from the input).

Importing this package registers ``SetComplement-v0`` with Gymnasium.
"""
