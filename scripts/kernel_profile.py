#!/usr/bin/env python3
"""Where one steady training step's GPU time goes, kernel by kernel.

CubeCL's profiling log (CUBECL_DEBUG_LOG=FILE CUBECL_DEBUG_OPTION=profile; it syncs after every
kernel, so each line is one kernel's own time) lists every launch of a run, warm-up and kernel
compilation included. Given the logs of two runs of the same bench, the second one step longer,
the launches the second has in excess are one step's; this sums the last that many launches of
the second log by kernel name:

    scripts/kernel_profile.py steps2.log steps3.log
"""

import collections
import re
import signal
import sys

LINE = re.compile(r"^\| +([0-9.]+)(ns|µs|us|ms|s) +\| +([^ |]+)")
TO_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def launches(path):
    """(kernel name, ms) of every profiled launch in the log, in order."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m:
                # Names end in a hash of the kernel's compile-time arguments: group without it.
                name = m.group(3).split("_")[0]
                out.append((name, float(m.group(1)) * TO_MS[m.group(2)]))
    return out


def main(argv):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    if len(argv) != 3:
        sys.exit(__doc__)
    shorter, longer = launches(argv[1]), launches(argv[2])
    per_step = len(longer) - len(shorter)
    if not shorter or per_step <= 0:
        sys.exit(f"{argv[2]} has {len(longer)} profiled launches, {argv[1]} {len(shorter)}: "
                 "expected profiling logs of two runs, the second one step longer")
    time, count = collections.Counter(), collections.Counter()
    for name, ms in longer[-per_step:]:
        time[name] += ms
        count[name] += 1
    total = sum(time.values())
    print(f"one step: {per_step} kernel launches, {total:.1f} ms of kernel time")
    for name, ms in time.most_common():
        print(f"  {name:40s} {ms:10.2f} ms {100 * ms / total:5.1f} % {count[name]:6d} launches")


if __name__ == "__main__":
    main(sys.argv)
