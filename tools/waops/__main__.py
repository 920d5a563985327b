"""``python -m waops`` is ``nxwa``."""

from waops.cli import main

raise SystemExit(main())
