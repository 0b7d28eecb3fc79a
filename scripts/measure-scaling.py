#!/usr/bin/env python3
"""Figures for ephemeral agents and the autoscaler (issue 4), on 127.0.0.1.

Starts a coordinator from BIN (a `swift build --show-bin-path`), then measures:
  * agent startup-to-ready: spawn of `gantry-agent run --one-shot` to its
    "connected to the coordinator" log line (handshake done), N runs;
  * idle RSS of a connected agent and of an idle scaler (`gantry-agent scale`);
  * queued-to-running through the scaler: with --min 0 --max 1 --cooldown 0 and no agent
    running, submit a one-step pipeline whose step prints CLOCK_REALTIME; the time from
    sending the submit to that instruction includes the demand push, the scaler spawning
    a fresh one-shot agent, its TLS handshake and the lease. N sequential jobs, each on a
    new agent process (the previous one exited after its job).

Usage: measure-scaling.py BIN [--runs 20]
Every process it starts is stopped by pid; every wait has a deadline.
"""
import argparse, json, os, re, signal, statistics, subprocess, sys, tempfile, time, urllib.request

def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

class Proc:
    def __init__(self, args, log):
        self.log = log
        self.handle = open(log, "w")
        self.p = subprocess.Popen(args, stdout=self.handle, stderr=subprocess.STDOUT)
        self.started = time.time()

    def wait_line(self, text, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log) as f:
                for line in f:
                    if text in line:
                        return line
            if self.p.poll() is not None:
                break
            time.sleep(0.002)
        raise RuntimeError("no '%s' in %s" % (text, self.log))

    def stop(self, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.handle.close()

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="gantry-scaling-")
    procs = []
    try:
        c = os.path.join(tmp, "coordinator")
        subprocess.run([args.bin + "/gantry-coordinator", "init", "--state", c, "--advertise", "127.0.0.1:0"],
                       check=True, stdout=subprocess.DEVNULL)
        coordinator = Proc([args.bin + "/gantry-coordinator", "serve", "--state", c, "--listen", "127.0.0.1:0",
                            "--http", "127.0.0.1:0",
                            # Every simulated agent connects from 127.0.0.1: lift the per-address caps.
                            "--max-agent-connections", "60000", "--max-connections-per-address", "60000",
                            "--max-handshakes", "1024", "--max-handshakes-per-address", "1024"],
                           os.path.join(tmp, "coordinator.log"))
        procs.append(coordinator)
        line = coordinator.wait_line("gantry-coordinator listening")
        agents_address = re.search(r"agents=(\S+)", line).group(1)
        http = "http://" + re.search(r"http=(\S+)", line).group(1)
        info = json.loads(subprocess.run([args.bin + "/gantry-coordinator", "join-info", "--state", c, "--json"],
                                         check=True, capture_output=True, text=True).stdout)
        token = open(os.path.join(c, "admin.token")).read().strip()
        state = os.path.join(tmp, "agent")
        subprocess.run([args.bin + "/gantry-agent", "enroll", "--coordinator", agents_address, "--token", info["token"],
                        "--ca-fingerprint", info["ca_fingerprint"], "--state", state, "--name", "measure"],
                       check=True, stdout=subprocess.DEVNULL)
        work = os.path.join(tmp, "work")

        # Startup to ready, and idle agent RSS.
        startup = []
        idle_agent_rss = []
        for run in range(args.runs):
            agent = Proc([args.bin + "/gantry-agent", "run", "--state", state, "--work-root", work, "--slot",
                          "probe-%d" % run, "--one-shot", "--labels", "pool=probe"], os.path.join(tmp, "probe.log"))
            procs.append(agent)
            agent.wait_line("connected to the coordinator", timeout=10)
            startup.append((time.time() - agent.started) * 1000)
            if run < 3:
                time.sleep(2)
                idle_agent_rss.append(rss_mb(agent.p.pid))
            agent.stop()

        scaler = Proc([args.bin + "/gantry-agent", "scale", "--state", state, "--labels", "pool=scaled", "--min", "0",
                       "--max", "1", "--cooldown", "0", "--provider", "process", "--work-root", work],
                      os.path.join(tmp, "scaler.log"))
        procs.append(scaler)
        scaler.wait_line("scaler connected to the coordinator")
        time.sleep(2)
        scaler_idle_rss = rss_mb(scaler.p.pid)

        def api(method, path, body=None):
            request = urllib.request.Request(http + path, method=method,
                                             data=json.dumps(body).encode() if body is not None else None,
                                             headers={"Authorization": "Bearer " + token,
                                                      "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return json.loads(raw) if raw.startswith(b"{") or raw.startswith(b"[") else raw

        def scaler_live_zero():
            with open(scaler.log) as f:
                lives = re.findall(r"live=(\d+)", f.read())
            return lives and lives[-1] == "0"

        latencies = []
        for run in range(args.runs):
            deadline = time.time() + 30
            while not scaler_live_zero() and time.time() < deadline:
                time.sleep(0.01)
            yaml = "steps:\n  - command: date +%%s%%N\n    agents: {pool: scaled}\n    key: s%d\n" % run
            sent = time.time_ns()
            pipeline = api("POST", "/v1/pipelines", {"yaml": yaml, "file": "scaling.yml"})
            deadline = time.time() + 60
            while time.time() < deadline:
                pipeline = api("GET", "/v1/pipelines/" + pipeline["id"])
                if pipeline["state"] != "running":
                    break
                time.sleep(0.02)
            log = api("GET", "/v1/jobs/%s/log" % pipeline["jobs"][0]["id"])
            first = int(log.decode().split()[0])
            latencies.append((first - sent) / 1e6)
        scaler_after_rss = rss_mb(scaler.p.pid)

        def summary(values):
            return "median %.1f ms, p95 %.1f ms, min %.1f ms, max %.1f ms (n=%d)" % (
                statistics.median(values), percentile(values, 95), min(values), max(values), len(values))
        print("agent startup-to-ready (spawn -> handshake done): " + summary(startup))
        print("idle agent RSS: %s MB" % ", ".join("%.1f" % v for v in idle_agent_rss))
        print("idle scaler RSS: %.1f MB (after %d scaled jobs: %.1f MB)" % (scaler_idle_rss, args.runs, scaler_after_rss))
        print("job queued -> running on a new scaler-started agent: " + summary(latencies))
    finally:
        for proc in reversed(procs):
            proc.stop()
        subprocess.run(["rm", "-rf", tmp])

if __name__ == "__main__":
    sys.exit(main())
