from ripkit._cli import exit_now
from ripkit.rip.cli import main

exit_now(main())
