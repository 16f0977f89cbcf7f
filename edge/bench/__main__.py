"""``python -m edge.bench``: see :mod:`edge.bench.cli`."""

import sys

from edge.bench.cli import main

sys.exit(main())
