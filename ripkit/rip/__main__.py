import sys

from ripkit.rip.cli import main

sys.exit(main())
