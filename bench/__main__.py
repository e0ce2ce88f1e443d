"""`python -m bench [--quick] [--duration S] [--rows N] [--stores sqlite,postgresql] ...`"""

from bench.run import main

raise SystemExit(main())
