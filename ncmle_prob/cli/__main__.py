"""``python -m ncmle_prob.cli`` runs the ``ncmle`` command."""

import sys

from . import main

sys.exit(main())
