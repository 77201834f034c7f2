"""`python -m sprechstunde …` is the `sprechstunde` command (tests and the worker supervisor start it so)."""

from sprechstunde.web.core.cli import main

raise SystemExit(main())
