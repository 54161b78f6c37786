import sys

from miner.app.cli import main

sys.exit(main())
