"""``python -m edge_runtime`` is ``edgert``."""

from .cli import main

main()
