#!/usr/bin/env python3
"""Browser tests of the web dashboard: real binaries, real headless Chromium.

Starts a coordinator (embedded SQLite, mutual TLS to its agents) and an autoscaler of
one-shot agents on 127.0.0.1 in a temporary directory, drives Debian's chromium through
chromium-driver with Selenium, and saves a screenshot of every page. Every process it
starts is stopped by its pid. Run by scripts/test (scripts/browser-test).

    python3 Tests/Browser/test_dashboard.py --bin .build/debug --screenshots DIR
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ARGS = None


def wait_for(condition, timeout, what):
    """Polls `condition` until it returns something truthy or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))


class Cluster:
    """A coordinator and a scaler of one-shot agents, stopped by pid."""

    def __init__(self, binaries):
        self.bin = binaries
        self.root = tempfile.mkdtemp(prefix="gantry-browser-")
        self.processes = []
        state = os.path.join(self.root, "coordinator")
        self.run("gantry-coordinator", "init", "--state", state, "--advertise", "127.0.0.1:0")
        out = open(os.path.join(self.root, "coordinator.out"), "w")
        err = open(os.path.join(self.root, "coordinator.log"), "w")
        self.coordinator = subprocess.Popen(
            [self.path("gantry-coordinator"), "serve", "--state", state, "--listen", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--handshake-timeout", "30", "--allow-untrusted-environment-steps"], stdout=out, stderr=err)
        self.processes.append(self.coordinator)
        line = wait_for(lambda: self.grep(os.path.join(self.root, "coordinator.out"), "listening"), 60, "the coordinator")
        self.agents = re.search(r"agents=(\S+)", line).group(1)
        self.http = "http://" + re.search(r"http=(\S+)", line).group(1)
        self.token = open(os.path.join(state, "admin.token")).read().strip()
        info = self.run("gantry-coordinator", "join-info", "--state", state)
        join = re.search(r"^token:\s*(\S+)", info, re.M).group(1)
        fingerprint = re.search(r"^ca_fingerprint:\s*(\S+)", info, re.M).group(1)
        agent_state = os.path.join(self.root, "agent")
        self.run("gantry-agent", "enroll", "--coordinator", self.agents, "--token", join, "--ca-fingerprint", fingerprint,
                 "--state", agent_state, "--name", "browserhost")
        scaler_log = open(os.path.join(self.root, "scaler.log"), "w")
        self.scaler = subprocess.Popen(
            [self.path("gantry-agent"), "scale", "--state", agent_state, "--coordinator", self.agents, "--work-root",
             os.path.join(self.root, "work"), "--labels", "os=linux", "--min", "2", "--max", "3", "--cooldown", "30"],
            stdout=subprocess.DEVNULL, stderr=scaler_log)
        self.processes.append(self.scaler)
        wait_for(lambda: any(a["connected"] for a in self.api("GET", "/v1/agents")), 90, "an agent to connect")

    def path(self, name):
        return os.path.join(self.bin, name)

    def run(self, *arguments):
        result = subprocess.run([self.path(arguments[0])] + list(arguments[1:]), capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError("%s failed: %s" % (arguments[:2], result.stderr))
        return result.stdout

    @staticmethod
    def grep(path, text):
        try:
            for line in open(path):
                if text in line:
                    return line
        except FileNotFoundError:
            pass
        return None

    def api(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.http + path, data=data, method=method)
        request.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def submit(self, yaml, file="browser.yml"):
        return self.api("POST", "/v1/pipelines", {"yaml": yaml, "file": file, "repository": "https://git.example.com/shop/web.git",
                                                   "branch": "main", "commit": "4f2a9c1e0b7d3a5f6e8c9b0a1d2e3f405162738a"})

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # The scaler's one-shot agents are its children; one started as the scaler was
        # told to stop could outlive it. Anything still running from this cluster's
        # directory is stopped by its pid.
        leftovers = self.leftover_pids()
        if leftovers:
            print("warning: processes outlived their scaler: %s" % leftovers, file=sys.stderr)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if os.environ.get("GANTRY_KEEP_TEST_FILES") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def leftover_pids(self):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if self.root.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
        return pids


GRAPH_PIPELINE = """
steps:
  - key: build
    name: Build
    checkout: false
    command: echo building
  - key: test
    name: Test {{matrix.suite}}
    depends_on: build
    matrix:
      suite: [unit, integration]
    checkout: false
    command: echo "testing {{matrix.suite}}"
  - key: package
    name: Package
    depends_on: test
    checkout: false
    command: echo packaging
"""

SLOW_LOG = r"""
steps:
  - key: slow-log
    name: Slow log
    checkout: false
    command: |
      for i in $(seq 1 60); do printf '\033[32mline %d\033[0m of the \033[1mslow\033[0m step\n' "$i"; sleep 0.25; done
"""

DEPLOY = """
steps:
  - key: build
    name: Build
    checkout: false
    command: echo "built"
  - key: deploy
    name: Deploy to staging
    depends_on: build
    environment: staging
    checkout: false
    command: echo "deployed"
"""

FAILING = """
steps:
  - key: lint
    name: Lint
    checkout: false
    command: echo "3 problems" && exit 1
"""

LONG_STEP = """
steps:
  - key: long
    name: Long step
    checkout: false
    command: sleep 300
"""


class DashboardTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(ARGS.bin)
        options = webdriver.ChromeOptions()
        options.binary_location = ARGS.chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,900",
                     "--force-device-scale-factor=1"):
            options.add_argument(flag)
        cls.driver = webdriver.Chrome(service=Service(ARGS.chromedriver), options=options)
        cls.driver.set_page_load_timeout(60)
        os.makedirs(ARGS.screenshots, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            cls.cluster.stop()

    def url(self, path):
        return self.cluster.http + path

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(ARGS.screenshots, name + ".png"))

    def wait(self, condition, timeout=60):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)

    def sign_in(self):
        self.driver.get(self.url("/ui/pipelines"))
        if "/ui/login" in self.driver.current_url:
            self.driver.find_element(By.ID, "token").send_keys(self.cluster.token)
            self.driver.find_element(By.ID, "sign-in").click()
            self.wait(EC.url_contains("/ui/pipelines"))

    def mark_page(self):
        """A value that lives only as long as this page: proof that nothing reloaded it."""
        self.driver.execute_script("window.__gantryMark = 'still-here'")

    def assert_not_reloaded(self):
        self.assertEqual(self.driver.execute_script("return window.__gantryMark"), "still-here")

    def test_1_sign_in(self):
        self.driver.delete_all_cookies()
        self.driver.get(self.url("/ui/agents"))
        self.wait(EC.url_contains("/ui/login"))
        self.assertIn("next=/ui/agents", self.driver.current_url)
        self.shot("sign-in")
        self.driver.find_element(By.ID, "token").send_keys("gat_not-a-real-token")
        self.driver.find_element(By.ID, "sign-in").click()
        error = self.wait(EC.presence_of_element_located((By.ID, "login-error")))
        self.assertIn("refused", error.text)
        self.driver.find_element(By.ID, "token").send_keys(self.cluster.token)
        self.driver.find_element(By.ID, "sign-in").click()
        self.wait(EC.url_contains("/ui/agents"))
        cookie = self.driver.get_cookie("gantry_session")
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertIsNone(self.driver.execute_script("return document.cookie.match(/gantry_session/)"))

    def test_2_pipelines_list_updates_live(self):
        self.sign_in()
        self.cluster.submit(GRAPH_PIPELINE)
        self.driver.get(self.url("/ui/pipelines"))
        self.mark_page()
        before = len(self.driver.find_elements(By.CSS_SELECTOR, "#pipeline-rows tr[data-id]"))
        created = self.cluster.submit(GRAPH_PIPELINE)
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#pipeline-rows tr[data-id="%s"]' % created["id"]))
        self.assertGreater(len(self.driver.find_elements(By.CSS_SELECTOR, "#pipeline-rows tr[data-id]")), before)
        self.assert_not_reloaded()
        # The filter narrows the list (by state), from the form.
        self.wait(lambda d: self.cluster.api("GET", "/v1/pipelines/" + created["id"])["state"] == "succeeded", 120)
        self.driver.get(self.url("/ui/pipelines?state=succeeded"))
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#pipeline-rows tr[data-id] .state")
        self.assertTrue(rows and all(r.text == "succeeded" for r in rows))

    def test_3_pipeline_graph(self):
        self.sign_in()
        created = self.cluster.submit(GRAPH_PIPELINE)
        self.driver.get(self.url("/ui/pipelines/" + created["id"]))
        boxes = self.driver.find_elements(By.CSS_SELECTOR, "#graph .job")
        self.assertEqual(len(boxes), 4)
        # Edges: build → test ×2, test ×2 → package.
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR, "#graph svg path")), 4)
        self.mark_page()
        self.wait(lambda d: d.find_element(By.ID, "pipeline-state").text == "succeeded", 120)
        self.assertEqual({b.find_element(By.CSS_SELECTOR, ".jstate").text for b in self.driver.find_elements(By.CSS_SELECTOR, "#graph .job")},
                         {"succeeded"})
        self.assert_not_reloaded()
        self.shot("pipeline")

    def test_4_log_grows_live_with_colours(self):
        self.sign_in()
        created = self.cluster.submit(SLOW_LOG)
        job = created["jobs"][0]["id"]
        self.driver.get(self.url("/ui/jobs/" + job))
        self.mark_page()
        self.wait(lambda d: "line 3 of the slow step" in d.find_element(By.ID, "log").text)
        first = len(self.driver.find_elements(By.CSS_SELECTOR, "#log .line"))
        self.wait(lambda d: "line 20 of the slow step" in d.find_element(By.ID, "log").text)
        self.assertGreater(len(self.driver.find_elements(By.CSS_SELECTOR, "#log .line")), first)
        green = self.driver.find_elements(By.CSS_SELECTOR, "#log .line span.f32")
        self.assertTrue(green and green[0].text.startswith("line "))
        self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, "#log .line span.b"))
        self.assertNotIn("\x1b", self.driver.find_element(By.ID, "log").text)
        # Line numbers link to themselves.
        self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, "#L2 a.ln").get_attribute("href").split("#")[1], "L2")
        self.shot("job-log")
        self.wait(lambda d: d.find_element(By.ID, "job-state").text == "succeeded", 120)
        text = self.driver.find_element(By.ID, "log").text
        for i in range(1, 61):
            self.assertEqual(text.count("line %d of the slow step" % i), 1, "line %d" % i)
        self.assert_not_reloaded()

    def test_5_cancel_from_the_page(self):
        self.sign_in()
        created = self.cluster.submit(LONG_STEP)
        job = created["jobs"][0]["id"]
        self.wait(lambda d: self.cluster.api("GET", "/v1/jobs/" + job)["state"] == "running", 120)
        self.driver.get(self.url("/ui/pipelines/" + created["id"]))
        self.mark_page()
        box = self.driver.find_element(By.ID, "job-" + job)
        self.wait(lambda d: box.find_element(By.CSS_SELECTOR, ".jstate").text == "running")
        box.find_element(By.CSS_SELECTOR, 'button[data-action="cancel"]').click()
        self.wait(EC.alert_is_present()).accept()
        self.wait(lambda d: box.find_element(By.CSS_SELECTOR, ".jstate").text == "cancelled", 60)
        self.wait(lambda d: d.find_element(By.ID, "pipeline-state").text == "cancelled", 60)
        self.assert_not_reloaded()
        self.assertEqual(self.cluster.api("GET", "/v1/jobs/" + job)["state"], "cancelled")
        audit = self.cluster.api("GET", "/v1/audit?limit=50")["records"]
        self.assertTrue(any(r["action"] == "job.cancel" and r["outcome"] == "succeeded" for r in audit))

    def test_5b_approve_from_the_page(self):
        self.sign_in()
        created = self.cluster.submit(
            "steps:\n  - key: ship-it\n    block: Ship it?\n  - key: ship\n    depends_on: ship-it\n"
            "    checkout: false\n    command: echo shipped\n")
        self.driver.get(self.url("/ui/pipelines/" + created["id"]))
        self.mark_page()
        button = self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, 'button.approve[data-step="ship-it"]')))
        self.shot("pipeline-blocked")
        button.click()
        self.wait(EC.alert_is_present()).accept()
        self.wait(lambda d: d.find_element(By.ID, "pipeline-state").text == "succeeded", 120)
        self.assert_not_reloaded()
        audit = self.cluster.api("GET", "/v1/audit?limit=100")["records"]
        self.assertTrue(any(r["action"] == "pipeline.approve" and r["outcome"] == "succeeded" for r in audit))

    def test_6_state_changes_need_the_csrf_token(self):
        self.sign_in()
        created = self.cluster.submit(LONG_STEP)
        status = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/v1/pipelines/' + arguments[0] + '/cancel', {method: 'POST', credentials: 'same-origin'})"
            ".then(r => done(r.status)).catch(e => done(String(e)));", created["id"])
        self.assertEqual(status, 403)
        self.assertEqual(self.cluster.api("GET", "/v1/pipelines/" + created["id"])["state"], "running")
        self.cluster.api("POST", "/v1/pipelines/%s/cancel" % created["id"])

    def test_7_agents_deployments_audit(self):
        self.sign_in()
        deploy = self.cluster.submit(DEPLOY)
        failing = self.cluster.submit(FAILING)
        for created in (deploy, failing):
            wait_for(lambda: self.cluster.api("GET", "/v1/pipelines/" + created["id"])["state"] != "running", 120, "a pipeline")
        self.driver.get(self.url("/ui/pipelines"))
        self.wait(lambda d: "ago" in d.find_element(By.CSS_SELECTOR, "#pipeline-rows time").text)
        self.assertIn("failed", self.driver.find_element(By.ID, "pipelines").text)
        self.shot("pipelines")
        self.driver.get(self.url("/ui/agents"))
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#agents tr[data-id]"))
        self.assertIn("os=linux", self.driver.find_element(By.ID, "agents").text)
        self.shot("agents")
        self.driver.get(self.url("/ui/deployments"))
        self.wait(lambda d: "staging" in d.find_element(By.ID, "deployments").text)
        self.wait(lambda d: "staging" in d.find_element(By.ID, "dora").text)
        self.shot("deployments")
        self.driver.get(self.url("/ui/audit"))
        self.wait(lambda d: "session.sign_in" in d.find_element(By.ID, "audit").text)
        self.shot("audit")

    def events(self, job, headers):
        """The (event, id, data) triples of a finished job's log stream, read to its end."""
        cookie = self.driver.get_cookie("gantry_session")["value"]
        request = urllib.request.Request(self.url("/ui/jobs/%s/events?from=start" % job))
        request.add_header("Cookie", "gantry_session=" + cookie)
        for name, value in headers.items():
            request.add_header(name, value)
        events, current = [], {}
        with urllib.request.urlopen(request, timeout=60) as response:
            for raw in response:
                line = raw.decode("utf-8").rstrip("\n")
                if not line:
                    events.append((current.get("event"), current.get("id"), json.loads(current.get("data", "null"))))
                    current = {}
                    if events[-1][0] == "end":
                        break
                    continue
                name, _, value = line.partition(": ")
                current[name] = value
        return events

    def test_7b_log_stream_resumes_at_the_last_event_id(self):
        self.sign_in()
        # Multi-byte characters cut by chunk boundaries, and more than one event's worth.
        created = self.cluster.submit(
            "steps:\n  - key: words\n    checkout: false\n    command: |\n"
            "      for i in $(seq 1 3000); do echo \"$i: grüße aus köln – 😀 naïve café\"; done\n")
        job = created["jobs"][0]["id"]
        wait_for(lambda: self.cluster.api("GET", "/v1/jobs/" + job)["state"] == "succeeded", 120, "the job")
        raw = urllib.request.Request(self.url("/v1/jobs/%s/log" % job))
        raw.add_header("Authorization", "Bearer " + self.cluster.token)
        expected = urllib.request.urlopen(raw, timeout=60).read().decode("utf-8")
        whole = self.events(job, {})
        logs = [e for e in whole if e[0] == "log"]
        self.assertGreater(len(logs), 2)
        self.assertEqual("".join(e[2]["t"] for e in logs), expected)
        middle = len(logs) // 2
        resumed = self.events(job, {"Last-Event-ID": logs[middle][1]})
        self.assertEqual(resumed[0][0], "start")
        self.assertEqual(resumed[0][2]["offset"], int(logs[middle][1].split(":")[1]))
        self.assertEqual(resumed[-1], ("end", None, {"state": "succeeded"}))
        before = "".join(e[2]["t"] for e in logs[: middle + 1])
        after = "".join(e[2]["t"] for e in resumed if e[0] == "log")
        self.assertEqual(before + after, expected)

    def test_8_sign_out(self):
        self.sign_in()
        self.driver.find_element(By.CSS_SELECTOR, ".signout button").click()
        self.wait(EC.url_contains("/ui/login"))
        self.driver.get(self.url("/ui/pipelines"))
        self.wait(EC.url_contains("/ui/login"))


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
