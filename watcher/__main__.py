import sys

from watcher.interfaces.cli import main

sys.exit(main())
