"""python -m bot -> the mia command."""

import sys

from bot.cli import main

sys.exit(main())
