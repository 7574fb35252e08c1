"""`python -m slimguard_testbed.images`: warm the fixture cache."""

from slimguard_testbed.images.warm import main

raise SystemExit(main())
