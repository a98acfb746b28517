"""`python -m k2s_dns doctor [HOST]`: the same as the `k2s-dns` console script."""

import sys

from .cli import main

sys.exit(main())
