"""``python -m train.cli ...``: the ``lgagent`` command without its console script."""

from train.cli.main import main

main()
