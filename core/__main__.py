import sys

from core.faces.cli import main

sys.exit(main())
