import sys

from spuriverse.cli import main

sys.exit(main())
