"""``python -m difhydro`` = the ``difhydro`` command."""

import sys

from .experiment.cli import main

sys.exit(main())
