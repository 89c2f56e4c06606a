"""`python -m tensor_cast` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
