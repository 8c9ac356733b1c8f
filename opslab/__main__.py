import sys

from opslab.cli import main

sys.exit(main())
