"""A stand-in for an external accelerator command: sleeps per batch, prints a line, exits 0 (or as told)."""

import argparse
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--frames", type=int, default=1)
p.add_argument("--sleep-ms", type=float, default=2.0)
p.add_argument("--exit", type=int, default=0)
a = p.parse_args()
time.sleep(a.sleep_ms / 1000.0)
print("processed %d frames" % a.frames)
if a.exit:
    print("npu failure", file=sys.stderr)
sys.exit(a.exit)
