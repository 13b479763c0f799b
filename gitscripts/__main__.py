"""`python -m gitscripts`: the command line, as a job script (dask-jobqueue's) starts it."""

import sys

from gitscripts.cli import main

sys.exit(main())
