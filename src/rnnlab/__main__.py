"""`python -m rnnlab` runs the `rnnlab` command: for machines where rnnlab is on PYTHONPATH
but not installed (no console script), such as a GPU box that only has the source tree."""

import sys

from rnnlab.cli import console_main

if __name__ == "__main__":
    sys.exit(console_main())
