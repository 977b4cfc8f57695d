"""Video-language summarisation: moved to :mod:`readpvla.tasks.vls` (this name re-exports it, so
``from readpvla import vls`` and ``python -m readpvla.vls`` keep working)."""

import sys

from readpvla.tasks.vls import *  # noqa: F403
from readpvla.tasks.vls import __all__, __doc__, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
