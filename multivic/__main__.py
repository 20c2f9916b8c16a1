"""``python -m multivic``: the same command as ``multivic``."""

import sys

from multivic.cli import main

sys.exit(main())
