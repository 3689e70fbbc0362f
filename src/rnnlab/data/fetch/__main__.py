"""`python -m rnnlab.data.fetch`: fetch the data files no installed package ships."""

import sys

from rnnlab.data.fetch import main

sys.exit(main())
