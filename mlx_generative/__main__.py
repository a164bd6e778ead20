"""`python -m mlx_generative train|sample|eval|sweep|report|info|fetch-data ...`"""

import sys

from .cli import main

sys.exit(main())
