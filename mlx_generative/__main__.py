"""`python -m mlx_generative train|sample|info|fetch-data ...`"""

import sys

from .cli import main

sys.exit(main())
