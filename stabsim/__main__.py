"""``python -m stabsim``: the ``stabsim`` command line (:func:`stabsim.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
