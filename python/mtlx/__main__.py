"""``python -m mtlx``: the same command line as the ``mtlx`` console script."""

from .cli import main

raise SystemExit(main())
