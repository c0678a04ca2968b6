"""``python -m ncmle_prob.cli`` runs the ``ncmle`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
