"""``python -m loyalty.cli``: the ``jifen`` command."""

from loyalty.cli import main

main()
