"""Not an MCP server: prints text on stdout and waits."""

import sys
import time

print("hello, I am definitely not JSON-RPC", flush=True)
sys.stdin.readline()
time.sleep(60)
