from ripkit._cli import exit_now
from ripkit.analyze.cli import main

exit_now(main())
