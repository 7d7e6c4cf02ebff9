"""``python -m benchbed`` is the ``benchbed`` command."""

import sys

from benchbed.cli import main

sys.exit(main())
