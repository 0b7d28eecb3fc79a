#!/usr/bin/env python3
"""Rough figures for a running Gantry cluster (not the benchmark harness).

Submits N one-step pipelines whose step is `date +%s%N` and reports:
  * sequential: median / p95 time from sending the submit request to the step's first
    instruction running (the step prints the wall clock; same host, same clock);
  * burst: N pipelines submitted at once, jobs per second until all have finished.

Usage: measure-rough.py --server http://127.0.0.1:PORT --token TOKEN [--jobs 200]
Talks only to the given server (use 127.0.0.1). Bounded: N requests, 120 s deadline per phase.
"""
import argparse, json, statistics, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

def call(args, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(args.server + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + args.token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get("Content-Type", "").startswith("application/json") else raw

def submit(args, command):
    return call(args, "POST", "/v1/pipelines", {"yaml": "steps:\n  - command: '%s'\n" % command, "file": "rough.yml"})

def wait_done(args, pipeline_id, deadline):
    while time.time() < deadline:
        pipeline = call(args, "GET", "/v1/pipelines/" + pipeline_id)
        if pipeline["state"] != "running":
            return pipeline
        time.sleep(0.005)
    raise SystemExit("timed out waiting for pipeline " + pipeline_id)

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()

    latencies = []
    deadline = time.time() + 120
    for _ in range(args.jobs):
        sent = time.time_ns()
        pipeline = submit(args, "date +%s%N")
        done = wait_done(args, pipeline["id"], deadline)
        job = done["jobs"][0]
        started = int(call(args, "GET", "/v1/jobs/%s/log" % job["id"]).decode().strip())
        latencies.append((started - sent) / 1e6)
    latencies.sort()
    print("sequential %d jobs: submit -> first instruction median %.1f ms, p95 %.1f ms, max %.1f ms"
          % (len(latencies), statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1], latencies[-1]))

    start = time.time()
    with ThreadPoolExecutor(max_workers=16) as pool:
        pipelines = list(pool.map(lambda _: submit(args, "true"), range(args.jobs)))
    deadline = time.time() + 120
    for pipeline in pipelines:
        result = wait_done(args, pipeline["id"], deadline)
        assert result["state"] == "succeeded", result
    elapsed = time.time() - start
    print("burst %d jobs: all finished in %.2f s = %.1f jobs/s" % (args.jobs, elapsed, args.jobs / elapsed))

if __name__ == "__main__":
    main()
