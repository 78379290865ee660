"""`python -m service.cli` runs the `parley` command."""

import sys

from service.cli.parley import main

sys.exit(main())
