#!/usr/bin/env python3
"""CPU µs per call from a `perf record -F 999 --call-graph dwarf` of 4 s:
by what the thread was doing (the first matching frame of each sample's
stack), then by the functions that cost most themselves.

    contrib/perf-where.py PERF_DATA CALLS_PER_SECOND [SECONDS=4] [FREQUENCY=999]

Samples whose stack perf could not unwind to a known frame count as
"other": mostly the HTTP connection's (rmcp's handle_post, copies of futures).
"""
import collections, re, subprocess, sys

data, rps = sys.argv[1], float(sys.argv[2])
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 4.0
frequency = float(sys.argv[4]) if len(sys.argv) > 4 else 999.0
per_call = 1e6 / frequency / (rps * seconds)
WHERE = [
    ("handler task (rmcp handle_request: the tool call)", r"handle_request"),
    ("HTTP connection (hyper, axum, rmcp handle_post)", r"handle_connection"),
    ("rmcp session worker", r"LocalSessionWorker"),
    ("rmcp serve_inner", r"serve_inner"),
    ("blocking threads", r"BlockingTask|blocking::pool"),
    ("extism's timer thread", r"extism::timer|Timer::"),
    ("idle (epoll, park)", r"Context::park|park_timeout|epoll_wait|Driver::park"),
    ("log writer", r"logging::batched"),
    ("tokio scheduling", r"multi_thread::worker|notify_parked|unpark"),
]
script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"],
                        capture_output=True, text=True, check=True).stdout
where, itself, extism = collections.Counter(), collections.Counter(), 0
for block in script.split("\n\n"):
    frames = [re.sub(r"\+0x[0-9a-f]+$", "", line.strip().split(None, 1)[-1])
              for line in block.splitlines() if line.strip()]
    if not frames:
        continue
    itself[frames[0]] += 1
    stack = "\n".join(frames)
    if re.search(r"extism::plugin::Plugin::(call|raw_call|call_get_error_code)", stack):
        extism += 1
    where[next((name for name, pattern in WHERE if re.search(pattern, stack)), "other")] += 1
total = sum(where.values())
print(f"{total * per_call:7.1f} µs of CPU per call, of which")
for name, count in where.most_common():
    print(f"{count * per_call:7.1f}  {name}")
print(f"{extism * per_call:7.1f}  (in extism's Plugin::call, any thread)")
print("costliest functions themselves:")
for name, count in itself.most_common(8):
    print(f"{count * per_call:7.1f}  {name[:100]}")
