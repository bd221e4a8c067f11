"""``python -m tempomaster_core`` — see :mod:`tempomaster_core.cli`."""

import sys

from .cli import main

sys.exit(main())
