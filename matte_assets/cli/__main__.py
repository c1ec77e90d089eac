"""`python -m matte_assets.cli` (benchmarks and tests run the CLI as a process)."""

import sys

from . import main

sys.exit(main())
