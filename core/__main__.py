"""``python -m core`` runs the ``s2kd`` command line."""

import sys

from core.cli import main

sys.exit(main())
