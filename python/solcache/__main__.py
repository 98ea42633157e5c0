"""`python -m solcache` runs the CLI."""

import sys

from solcache.cli import main

sys.exit(main())
