"""``python -m tempomaster_core`` — see :mod:`tempomaster_core.cli`."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: no traceback either
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
