import sys

from ripkit.analyze.cli import main

sys.exit(main())
