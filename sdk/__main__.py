import sys

from splitsdk.cli.main import main

sys.exit(main())
