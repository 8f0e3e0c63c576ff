import sys

from chemwatch.cli import main

sys.exit(main())
