"""A stdio "server" that fails the way real ones do at start: a reason on stderr, then exit."""

import sys

print("starting the demo server", file=sys.stderr, flush=True)
print("fatal: DEMO_API_KEY is not set; export it and try again", file=sys.stderr, flush=True)
sys.exit(3)
