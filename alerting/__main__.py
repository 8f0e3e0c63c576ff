import sys

from alerting.cli import main

sys.exit(main())
