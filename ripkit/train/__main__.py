from ripkit._cli import exit_now
from ripkit.train.cli import main

exit_now(main())
