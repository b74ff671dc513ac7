import sys

from ripkit.train.cli import main

sys.exit(main())
