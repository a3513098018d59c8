"""`python -m spuriverse.data.mini [--out DIR]`: build spuriverse-mini (see the package docstring)."""

from __future__ import annotations

import sys

from .build import main

if __name__ == "__main__":
    sys.exit(main())
