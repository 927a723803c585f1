"""``python -m switchover``: the ``switchover`` command."""

import sys

from ._cli import main

sys.exit(main())
