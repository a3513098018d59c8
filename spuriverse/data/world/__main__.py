"""`python -m spuriverse.data.world --out DIR [--p-align 0.95] [--seed 0] [--n-train N]` (see the package docstring)."""

from __future__ import annotations

import sys

from .build import main

if __name__ == "__main__":
    sys.exit(main())
