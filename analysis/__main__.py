"""``python -m analysis triage SOURCE --out DIR``."""

import sys

from analysis.cli import main

sys.exit(main())
