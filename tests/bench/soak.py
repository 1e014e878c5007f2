#!/usr/bin/env python3
"""Soak test (issue 18, "Steady over hours"): a fixed, moderate mix of real traffic
through the gateway for a long time, sampling what must stay level.

    python3 tests/bench/soak.py                  # 30 minutes, release build
    python3 tests/bench/soak.py --minutes 5      # the CI version
    CLOSEDLOOP_BENCH_BIN=target/debug python3 tests/bench/soak.py --minutes 5 --scale 0.25

It starts a private stack with the local launcher (bench.Stack; by default in
target/soak on gateway port 19080 and store ports 194xx, so that it does not collide
with bench.py's target/bench on 18080), a simulated Okta org (the okta-sim binary, with
a signing key this script also holds, so that it can send Universal Logouts as the org),
connects the demo workspace to it through the admin page, seeds the workspace modestly,
then runs, each at a fixed rate for the whole time:

  * SCIM (loadgen --rate): userName lookups, user creates, PATCH deactivate then
    reactivate, group member add then remove, pages of 100 users, the groups list;
  * token checks (loadgen --rate): GET /api/me with an API token (both regions),
    GET /api/mcp/whoami with an MCP token;
  * sign-ins (Python): "Sign in with your work email" in a fresh browser, through the
    simulated Okta's login page and back, ending on the home page with a session;
  * Universal Logouts (Python): Okta's POST /api/okta/universal-logout with a JWT signed
    by the org's key, for a user who signed in earlier; the user's last session must be
    refused on the next request.

The load runs in consecutive 10 s chunks (one loadgen per SCIM/token kind per chunk, with
a request budget of rate x 10 so that counters line up across chunks: a chunk reactivates
and removes exactly what the chunk before deactivated and added). After each chunk it
samples resident memory (VmRSS), open file descriptors and sockets of both workers and
the gateway, Redis keys and memory, Postgres client connections of both regions, and each
traffic kind's requests, errors and p99 in the chunk. It writes soak.csv and soak.png
(matplotlib, installed into a venv under target/ when it is not importable) to the work
directory (--png copies the plot elsewhere), prints the verdict, and exits 1 if it fails:

  * resident memory levels off: over the last third, each process grows < 5 % (the mean of
    the last three samples against the mean of the first three samples of the last third);
  * no error: every answer is the expected one (2xx for SCIM and token checks, the full
    redirect chain for a sign-in, 204 then a refused session for a logout);
  * p99 flat: per kind, the median of the per-chunk p99 over the last third is at most
    1.5x the median over the first third after the warm-up (first minute, at most a tenth
    of the run), with 1 ms of slack for sub-millisecond kinds where 1.5x is noise
    (--p99-factor, --p99-slack-ms: the CI run, whose per-chunk p99 of a 5/s kind is the
    slowest of 50 requests, allows 3x or 20 ms: it catches a gross slow-down, not drift).

Build first: cargo build --release --bins -p region-worker -p gateway -p deploy -p closedloop-tests
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Defaults of this script: its own work directory and ports (bench.py reads them at import).
os.environ.setdefault("CLOSEDLOOP_BENCH_WORK", str(ROOT / "target" / "soak"))
os.environ.setdefault("CLOSEDLOOP_BENCH_PORT", "19080")
os.environ.setdefault("CLOSEDLOOP_BENCH_BASE_PORT", "19400")
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # no __pycache__ beside bench.py in the checkout

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import html  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import bench  # noqa: E402
from bench import BIN, GATEWAY_PORT, PATCH, SEED_SQL, WORK, Stack, admin_cookie, b64url, new_token, sh  # noqa: E402

INTERVAL = 10  # seconds per chunk and between samples
GID = "00000000-0000-4000-9000-000000000001"  # SEED_SQL's "Bench half" group
UID = "00000000-0000-4000-8000-{n12}"


# ------------------------------------------------------------------ the simulated Okta org

class Okta:
    """okta-sim with one app for the US region, `users` people assigned to it (any
    password), and a signing key this script holds too (Universal Logout JWTs)."""

    def __init__(self, us, users):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        d = WORK / "okta"
        d.mkdir(parents=True, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (d / "key.pem").write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.client_id = "0oasoak" + os.urandom(6).hex()
        self.client_secret = b64url(os.urandom(30))
        self.logins = [f"signin{i}@soak.test" for i in range(users)]
        seed = {
            "apps": [{"name": "closedloop-soak", "client_id": self.client_id, "client_secret": self.client_secret,
                      "redirect_uris": [f"{us['api_url']}/api/okta/oidc/callback"],
                      "post_logout_redirect_uris": [f"{us['app_url']}/auth"]}],
            "users": [{"login": login, "given_name": "Soak", "family_name": str(i), "apps": ["closedloop-soak"]}
                      for i, login in enumerate(self.logins)],
        }
        (d / "org.json").write_text(json.dumps(seed))
        self.log = open(d / "okta-sim.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN / "okta-sim"), "--seed-file", str(d / "org.json"), "--signing-key", str(d / "key.pem")],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"okta-sim did not start; see {d / 'okta-sim.log'}")
        ready = json.loads(line)
        self.issuer = ready["issuer"]
        jwks = json.loads(request_direct("GET", ready["jwks_uri"])[2])
        self.kid = jwks["keys"][0]["kid"]

    def logout_jwt(self, aud):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        now = int(time.time())
        header = {"alg": "RS256", "kid": self.kid, "typ": "global-token-revocation+jwt"}
        claims = {"jti": b64url(os.urandom(16)), "iss": self.issuer, "sub": self.client_id, "aud": aud,
                  "iat": now, "nbf": now - 300, "exp": now + 300}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(sig)}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def request_direct(method, url, body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read().decode()
    conn.close()
    return r.status, r.getheaders(), data


# ------------------------------------------------------------------ a small browser

def hidden(page, name):
    needle = f'name="{name}" value="'
    start = page.index(needle) + len(needle)
    return html.unescape(page[start:page.index('"', start)])


class Browser:
    """Cookies per host name (not port, as browsers keep them), redirects followed by
    the caller; region hosts (*.closedloop.localhost) reached through the gateway with
    their Host header, the simulated org directly. Keep-alive connections per origin."""

    def __init__(self):
        self.jar, self.conns = {}, {}

    def send(self, method, url, form=None, headers=None):
        u = urllib.parse.urlsplit(url)
        via_gateway = u.hostname.endswith("closedloop.localhost")
        origin = ("127.0.0.1", GATEWAY_PORT) if via_gateway else (u.hostname, u.port)
        hdrs = {"Host": u.netloc}
        cookies = self.jar.get(u.hostname, {})
        if cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        hdrs.update(headers or {})
        path = u.path + (f"?{u.query}" if u.query else "")
        for attempt in (0, 1):
            conn = self.conns.get(origin)
            if conn is None:
                conn = self.conns[origin] = http.client.HTTPConnection(*origin, timeout=30)
            try:
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                text = r.read().decode(errors="replace")
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed between requests: once more.
                conn.close()
                del self.conns[origin]
                if attempt:
                    raise
        for k, v in r.getheaders():
            if k.lower() != "set-cookie":
                continue
            name, _, value = v.split(";", 1)[0].partition("=")
            jar = self.jar.setdefault(u.hostname, {})
            if "max-age=0" in v.lower() or not value:
                jar.pop(name.strip(), None)
            else:
                jar[name.strip()] = value
        location = r.getheader("Location")
        if location:
            location = urllib.parse.urljoin(url, location)
        return r.status, location, text

    def close(self):
        for c in self.conns.values():
            c.close()


# ------------------------------------------------------------------ traffic in Python

class Recorder:
    """Per-kind latencies and errors of the Python traffic, drained at each sample."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = {}
        self.failures = []

    def add(self, kind, ms, ok, why=None):
        with self.lock:
            self.items.setdefault(kind, []).append((ms, ok))
            if not ok and len(self.failures) < 50:
                self.failures.append(f"{kind}: {why}")

    def drain(self):
        with self.lock:
            items, self.items = self.items, {}
        return items


class People:
    """Sign-ins and Universal Logouts of the org's people, each at its own fixed rate
    in its own thread. A person is never signed in and logged out at the same time (a
    lock each), so that every answer has one expected value."""

    def __init__(self, stack, okta, recorder, signin_rate, logout_rate):
        us = stack.us
        self.app_url, self.api_url, self.app_host = us["app_url"], us["api_url"], us["app_host"]
        self.okta, self.rec = okta, recorder
        self.rates = (signin_rate, logout_rate)
        self.locks = [threading.Lock() for _ in okta.logins]
        self.sessions = [None] * len(okta.logins)  # each person's latest session cookie
        self.next_signin = 0
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.paced, args=(self.sign_in_next, signin_rate), daemon=True),
                        threading.Thread(target=self.paced, args=(self.logout_next, logout_rate), daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=60)

    def paced(self, action, rate):
        """Calls `action` `rate` times a second on a fixed schedule (late calls go at once)."""
        if rate <= 0:
            return
        period, due = 1.0 / rate, time.monotonic()
        while not self.stop_flag.is_set():
            wait = due - time.monotonic()
            if wait > 0 and self.stop_flag.wait(wait):
                return
            due += period
            try:
                action()
            except Exception as e:  # a connection error is an error of the run, not of the script
                self.rec.add("errors", 0, False, f"{action.__name__}: {e!r}")

    def sign_in_next(self):
        i = self.next_signin % len(self.locks)
        self.next_signin += 1
        with self.locks[i]:
            self.sign_in(i)

    def sign_in(self, i):
        """Signs person i in ('Sign in with your work email') in a fresh browser, to the home page."""
        email = self.okta.logins[i]
        b = Browser()
        t0 = time.perf_counter()
        try:
            status, location, page = b.send("POST", f"{self.app_url}/auth", {"email": email})
            hops = 0
            while True:
                if status in (302, 303) and location:
                    status, location, page = b.send("GET", location)
                elif status == 200 and 'action="/sim/login"' in page:
                    # The simulated org's login page (a fresh browser has no org session).
                    status, location, page = b.send("POST", f"{self.okta.issuer}/sim/login", {
                        "authorize": hidden(page, "authorize"), "username": email, "password": "soak"})
                else:
                    break
                hops += 1
                if hops > 15:
                    break
            ms = (time.perf_counter() - t0) * 1000
            session = b.jar.get(self.app_host, {}).get("clk_session")
            ok = status == 200 and f"Signed in as <strong>{email}</strong>" in page and session
            if ok:
                self.sessions[i] = session
            self.rec.add("sign-in", ms, bool(ok), f"{email}: ended on {status} {location} {page[:200]!r}")
        finally:
            b.close()

    def logout_next(self):
        # The person half the round away from the one signing in now: signed in a while
        # ago, not signing in at the moment (and the lock makes sure).
        n = len(self.locks)
        i = (self.next_signin + n // 2) % n
        with self.locks[i]:
            if self.sessions[i] is None:
                return
            self.logout(i)

    def logout(self, i):
        email = self.okta.logins[i]
        jwt = self.okta.logout_jwt(f"{self.api_url}/api/okta/universal-logout")
        b = Browser()
        try:
            t0 = time.perf_counter()
            status, body = self.post_logout(jwt, email)
            ms = (time.perf_counter() - t0) * 1000
            if status != 204:
                self.rec.add("logout", ms, False, f"{email}: {status} {body[:200]!r}")
                return
            # The person's last session must be refused at once: a page asks to sign in.
            b.jar[self.app_host] = {"clk_session": self.sessions[i]}
            after, location, _ = b.send("GET", f"{self.app_url}/")
            refused = after == 303 and location and urllib.parse.urlsplit(location).path == "/auth"
            self.rec.add("logout", ms, bool(refused), f"{email}: the session answered {after} {location} after the logout")
            self.sessions[i] = None
        finally:
            b.close()

    def post_logout(self, jwt, email):
        """Okta's request: a new connection each time, as the org's sender makes."""
        u = urllib.parse.urlsplit(self.api_url)
        conn = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=30)
        try:
            conn.request("POST", "/api/okta/universal-logout",
                         body=json.dumps({"sub_id": {"format": "email", "email": email}}),
                         headers={"Host": u.netloc, "Authorization": f"Bearer {jwt}",
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()


# ------------------------------------------------------------------ traffic with loadgen

class Kind:
    """One loadgen traffic kind: a fixed rate, run as one loadgen per 10 s chunk with a
    budget of rate x 10 requests. `window` gives chunk k's first counter value (None: no
    counter), so that chunks walk their resources without overlap."""

    def __init__(self, name, url, rate, host=bench.US_API, method="GET", body=None, headers=(),
                 window=None, extra=(), first_chunk=0):
        self.name, self.url, self.rate, self.host = name, url, rate, host
        self.first_chunk = first_chunk  # undo kinds start once there is something to undo
        self.method, self.body, self.headers, self.window, self.extra = method, body, list(headers), window, list(extra)
        self.budget = max(1, round(rate * INTERVAL))

    def start(self, k):
        cmd = [str(BIN / "loadgen"), "--url", self.url, "--host", self.host,
               "-c", str(max(1, min(4, round(self.rate / 25)))), "--threads", "1",
               # The budget ends the chunk (at about INTERVAL s, paced); the duration
               # only bounds a chunk that falls behind.
               "-d", f"{INTERVAL + 5}s", "-n", str(self.budget), "--rate", str(self.rate),
               "-m", self.method, "--json"]
        for h in self.headers:
            cmd += ["-H", h]
        if self.body is not None:
            cmd += ["--body", self.body]
        if self.window is not None:
            cmd += ["--counter-start", str(self.window(k))]
        cmd += self.extra
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kinds(stack, scale, users, secrets):
    """The loadgen kinds and their rates (requests/s), scaled by `scale`."""
    us = stack.us
    team = us["demo_workspace"]["team_id"]
    eu_team = stack.info["regions"]["eu"]["demo_workspace"]["team_id"]
    base = f"http://127.0.0.1:{GATEWAY_PORT}"
    scim = f"{base}/api/scim/v2/{team}"
    auth = f"Authorization: Bearer {secrets['scim']}"
    ct = "Content-Type: application/json"
    r = lambda x: max(0.2, x * scale)
    half = users // 2
    # Chunk k walks counters [first + k*budget, first + (k+1)*budget) of a range of
    # `size` values; the undo kind walks the previous chunk's values.
    walk = lambda first, size, rate, behind=0: (
        lambda k: first + ((k - behind) * max(1, round(rate * INTERVAL))) % (size - max(1, round(rate * INTERVAL))))
    patch_rate, member_rate = r(4), r(4)
    return [
        Kind("scim lookup", f"{scim}/Users?filter=userName%20eq%20%22user{{n}}%40bench.test%22", r(40),
             headers=[auth], window=walk(1, users, r(40))),
        Kind("scim create", f"{scim}/Users", r(4), method="POST", headers=[auth, ct],
             body=json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": "new{n}@soak.test", "name": {"givenName": "New", "familyName": "{n}"},
                              "emails": [{"value": "new{n}@soak.test", "primary": True, "type": "work"}],
                              "active": True}),
             window=lambda k, t0=int(time.time()) * 1000: t0 + k * 1000),
        Kind("scim deactivate", f"{scim}/Users/{UID}", patch_rate, method="PATCH", headers=[auth, ct],
             body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}),
             window=walk(1, half, patch_rate)),
        Kind("scim reactivate", f"{scim}/Users/{UID}", patch_rate, method="PATCH", headers=[auth, ct],
             body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}),
             window=walk(1, half, patch_rate, behind=1), first_chunk=1),
        Kind("scim member add", f"{scim}/Groups/{GID}", member_rate, method="PATCH", headers=[auth, ct],
             body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": UID}]}]}),
             window=walk(half + 1, users - half, member_rate)),
        Kind("scim member remove", f"{scim}/Groups/{GID}", member_rate, method="PATCH", headers=[auth, ct],
             body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "remove", "path": f"members[value eq \"{UID}\"]"}]}),
             window=walk(half + 1, users - half, member_rate, behind=1), first_chunk=1),
        Kind("scim page", f"{scim}/Users?startIndex={{n}}&count=100", r(2), headers=[auth],
             window=lambda k, rate=r(2): 1 + (k * max(1, round(rate * INTERVAL)) * 100) % max(1, users - 100),
             extra=["--counter-step", "100"]),
        Kind("scim groups", f"{scim}/Groups?excludedAttributes=members&count=50", r(1), headers=[auth]),
        Kind("token check us", f"{base}/api/me", r(100), headers=[f"Authorization: Bearer {secrets['api']}"]),
        Kind("mcp check us", f"{base}/api/mcp/whoami", r(20), headers=[f"Authorization: Bearer {secrets['mcp']}"]),
        Kind("token check eu", f"{base}/api/me", r(20), host="eu.api.closedloop.localhost",
             headers=[f"Authorization: Bearer {secrets['eu_api']}"]),
    ]


# ------------------------------------------------------------------ setting the stack up

def seed(stack, users, okta):
    """The workspace: `users` SCIM users and a group with half of them (SEED_SQL), the
    org's people (SCIM-created, so that their email finds the workspace), Okta sign-in
    on with the simulated org (through the admin page, which seals the client secret),
    and the credentials of the token checks."""
    us, eu = stack.us, stack.info["regions"]["eu"]
    team = us["demo_workspace"]["team_id"]
    sh(["psql", us["postgres_url"], "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=SEED_SQL.format(team=team, users=users, members=users // 2))
    env = dict(os.environ, **us["env"])
    scim_token = json.loads(sh([str(BIN / "region-worker"), "token", "issue", "--config", stack.info["config"],
                                "--region", "us", "--team", team, "--kind", "scim"], env=env))["token"]
    gw = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=30)
    for i, login in enumerate(okta.logins):
        gw.request("POST", f"/api/scim/v2/{team}/Users", body=json.dumps({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": login,
            "name": {"givenName": "Soak", "familyName": str(i)},
            "emails": [{"value": login, "primary": True, "type": "work"}], "active": True}),
            headers={"Host": bench.US_API, "Authorization": f"Bearer {scim_token}", "Content-Type": "application/json"})
        r = gw.getresponse()
        body = r.read()
        if r.status not in (201, 409):
            raise SystemExit(f"creating {login} answered {r.status}: {body[:300]!r}")
    gw.close()

    cookie = admin_cookie(stack, team)[len("Cookie: "):]
    b = Browser()
    b.jar[us["app_host"]] = dict(c.split("=", 1) for c in cookie.split("; "))
    page_url = f"{us['app_url']}/integrations/okta"
    status, _, page = b.send("GET", page_url)
    if status != 200:
        raise SystemExit(f"the Okta settings page answered {status}")
    form_at = page.index('action="/integrations/okta"')
    status, location, page = b.send("POST", page_url, {
        "csrf": hidden(page[form_at:], "csrf"), "okta_domain": okta.issuer.removeprefix("http://"),
        "client_id": okta.client_id, "client_secret": okta.client_secret, "sign_in_enabled": "on"})
    if status != 303:
        raise SystemExit(f"saving the Okta settings answered {status}: {page[:500]!r}")
    b.close()

    secrets = {"scim": scim_token}
    for region, info, kinds_ in (("us", us, ("api", "mcp")), ("eu", eu, ("api",))):
        ws = info["demo_workspace"]
        pg = info["postgres_url"]
        epoch = sh(["psql", pg, "-qtAc", f"SELECT token_epoch FROM users WHERE team_id = '{ws['team_id']}' "
                    f"AND id = '{ws['admin_user_id']}'"]).strip()
        for kind in kinds_:
            secret, h = new_token(region, kind)
            sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                "INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by, expires_at, id) "
                f"VALUES ('\\x{h}', '{ws['team_id']}', '{kind}', '{ws['admin_user_id']}', {epoch}, 'soak {kind}', "
                "'soak', now() + interval '30 days', gen_random_uuid())"])
            secrets[kind if region == "us" else f"{region}_{kind}"] = secret
    return secrets


# ------------------------------------------------------------------ sampling

def children(pid):
    """Every descendant of `pid` with its command line."""
    out = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            try:
                out[k] = Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            todo.append(k)
    return out


def processes(stack):
    """The pids of the US and EU workers and of the gateway."""
    found = {}
    for pid, cmd in children(stack.proc.pid).items():
        if " serve --config " in cmd and "--region us" in cmd:
            found["worker us"] = pid
        elif " serve --config " in cmd and "--region eu" in cmd:
            found["worker eu"] = pid
        elif cmd.split(" ", 1)[0].endswith("/gateway"):
            found["gateway"] = pid
    missing = {"worker us", "worker eu", "gateway"} - set(found)
    if missing:
        raise SystemExit(f"cannot find {missing} among the launcher's processes")
    return found


def proc_figures(pid):
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fds = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss / 1024, fds, sockets, cpu


def store_pids(stack):
    """The pids of each region's Postgres (the postmaster, whose children are the
    backends and background workers) and Redis server: the launcher starts them as
    daemons, so they are found from the postmaster's pid file and Redis's port."""
    found = {}
    for region in ("us", "eu"):
        pid_file = WORK / "stack" / region / "postgres" / "data" / "postmaster.pid"
        found[f"postgres {region}"] = int(pid_file.read_text().split("\n", 1)[0])
        port = urllib.parse.urlsplit(stack.info["regions"][region]["redis_url"]).port
        found[f"redis {region}"] = int(sh(["pgrep", "-f", f"redis-server .*:{port}"]).split()[0])
    return found


def tree_cpu(pid):
    """CPU seconds of `pid` and of its live children (a Postgres server's backends)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that just exited
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy():
    """(busy, total, steal) jiffies of the whole machine, from /proc/stat. Steal is time
    the hypervisor gave this machine's CPUs to another guest: it counts as busy, and a
    request that is running when it happens takes longer."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v), v[7]


def reference_ms():
    """CPU milliseconds of a fixed piece of work (hashing 4 MB): how fast the machine
    itself is in this chunk. On a shared host the same work costs more CPU time when
    a neighbour contends for the core's caches and turbo budget; a rise in every
    process's CPU at a fixed rate that this rises with too is the machine, not us."""
    block = b"\x5a" * (1 << 20)
    start = time.process_time()
    for _ in range(4):
        hashlib.sha256(block).digest()
    return (time.process_time() - start) * 1000


def redis_figures(url):
    u = urllib.parse.urlsplit(url)
    cli = ["redis-cli", "-h", u.hostname, "-p", str(u.port)]
    keys = int(sh(cli + ["DBSIZE"]).strip())
    mem = 0
    for line in sh(cli + ["INFO", "memory"]).splitlines():
        if line.startswith("used_memory:"):
            mem = int(line.split(":")[1])
    return keys, mem / 2**20


def redis_census(url):
    """Keys by kind (the name up to its first id-like part), with how many never expire:
    what grows in Redis, and whether it is bounded by a TTL."""
    u = urllib.parse.urlsplit(url)
    cli = ["redis-cli", "-h", u.hostname, "-p", str(u.port)]
    keys = sh(cli + ["--scan"]).split()
    kinds_ = {}
    for key in keys:
        parts = []
        for part in key.split(":"):
            if len(part) > 16 or any(c.isdigit() for c in part):
                parts.append("…")
                break
            parts.append(part)
        kinds_.setdefault(":".join(parts), []).append(key)
    out = []
    for kind, ks in sorted(kinds_.items(), key=lambda x: -len(x[1])):
        sample = ks[:50]
        no_ttl = int(subprocess.run(cli + ["EVAL", 'local n=0 for _,k in ipairs(KEYS) do if redis.call("TTL",k)==-1 then n=n+1 end end return n',
                                           str(len(sample)), *sample], capture_output=True, text=True).stdout.strip() or 0)
        out.append(f"{kind} {len(ks)} ({no_ttl} of {len(sample)} sampled without TTL)")
    return f"{len(keys)} keys: " + "; ".join(out)


def pg_connections(url):
    return int(sh(["psql", url, "-qtAc", "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                   "'client backend' AND pid <> pg_backend_pid()"]).strip())


def p99(ms_list):
    if not ms_list:
        return float("nan")
    s = sorted(ms_list)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


# ------------------------------------------------------------------ the run

PROCS = ("worker us", "worker eu", "gateway")
STORES = ("postgres us", "redis us", "postgres eu", "redis eu")
PY_KINDS = ("sign-in", "logout")


def soak(args):
    scale = args.scale
    stack = Stack(fresh=True)
    okta = people = None
    csv_path = WORK / "soak.csv"
    rows, notes = [], []
    try:
        okta = Okta(stack.us, args.signin_users)
        secrets = seed(stack, args.users, okta)
        ks = kinds(stack, scale, args.users, secrets)
        rec = Recorder()
        people = People(stack, okta, rec, args.signin_rate * scale, args.logout_rate * scale)
        pids = processes(stack)
        rates = {k.name: k.rate for k in ks}
        rates.update({"sign-in": args.signin_rate * scale, "logout": args.logout_rate * scale})
        print(f"soak: {args.minutes} min, build {BIN}, work {WORK}, gateway :{GATEWAY_PORT}")
        print("rates (req/s): " + ", ".join(f"{n} {r:g}" for n, r in rates.items()), flush=True)
        t0 = time.time()
        end = t0 + args.minutes * 60
        prev_cpu = {n: proc_figures(p)[3] for n, p in pids.items()}
        stores = store_pids(stack)
        prev_cpu.update({n: tree_cpu(p) for n, p in stores.items()})
        prev_busy, prev_t = machine_busy(), time.time()
        people.start()
        k = 0
        while time.time() < end:
            running = [(kd, kd.start(k)) for kd in ks if k >= kd.first_chunk]
            results = {}
            for kd, p in running:
                out, err = p.communicate(timeout=INTERVAL + 120)
                if p.returncode != 0:
                    notes.append(f"chunk {k}: loadgen for {kd.name} exited {p.returncode}: {err.strip()[:300]}")
                    results[kd.name] = None
                else:
                    results[kd.name] = json.loads(out)
            py = rec.drain()
            now = time.time()
            row = {"t_s": round(now - t0, 1)}
            for name, pid in pids.items():
                rss, fds, socks, cpu = proc_figures(pid)
                row[f"{name} rss_mb"] = round(rss, 2)
                row[f"{name} fds"] = fds
                row[f"{name} sockets"] = socks
                row[f"{name} cpu_pct"] = round((cpu - prev_cpu[name]) / (now - prev_t) * 100, 1)
                prev_cpu[name] = cpu
            # The stores' CPU: a cost that grows with the run shows here first.
            for name, pid in stores.items():
                cpu = tree_cpu(pid)
                row[f"{name} cpu_pct"] = round((cpu - prev_cpu[name]) / (now - prev_t) * 100, 1)
                prev_cpu[name] = cpu
            busy = machine_busy()
            ticks = max(1, busy[1] - prev_busy[1])
            row["machine cpu_pct"] = round((busy[0] - prev_busy[0]) / ticks * 100, 1)
            row["machine steal_pct"] = round((busy[2] - prev_busy[2]) / ticks * 100, 1)
            row["machine reference_ms"] = round(reference_ms(), 2)
            # Other work on the machine (compilers) shows here, and in the p99s.
            row["load avg"] = os.getloadavg()[0]
            prev_busy, prev_t = busy, now
            for region in ("us", "eu"):
                info = stack.info["regions"][region]
                keys, mem = redis_figures(info["redis_url"])
                row[f"redis {region} keys"] = keys
                row[f"redis {region} mb"] = round(mem, 2)
                row[f"pg {region} connections"] = pg_connections(info["postgres_url"])
            for kd in ks:
                r = results.get(kd.name)
                if r is None:
                    row[f"{kd.name} requests"], row[f"{kd.name} errors"], row[f"{kd.name} p99_ms"] = 0, \
                        (1 if kd.name in results else 0), float("nan")
                    continue
                errors = r["non_2xx"] + r["errors"] + r["timeouts"]
                if errors and len(notes) < 100:
                    notes.append(f"chunk {k}: {kd.name}: status counts {r['status_counts']}, "
                                 f"errors {r['errors']}, timeouts {r['timeouts']}")
                row[f"{kd.name} requests"] = r["requests"]
                row[f"{kd.name} errors"] = errors
                row[f"{kd.name} p99_ms"] = round(r["p99_ms"], 3)
            for kind in PY_KINDS:
                items = py.get(kind, [])
                row[f"{kind} requests"] = len(items)
                row[f"{kind} errors"] = sum(1 for _, ok in items if not ok)
                row[f"{kind} p99_ms"] = round(p99([ms for ms, _ in items]), 3)
            row["script errors"] = len(py.get("errors", []))
            rows.append(row)
            write_csv(rows, csv_path)
            errs = sum(v for c, v in row.items() if c.endswith(" errors"))
            print(f"[{row['t_s']:7.1f} s] RSS worker us {row['worker us rss_mb']:.1f} MB, "
                  f"eu {row['worker eu rss_mb']:.1f} MB, gateway {row['gateway rss_mb']:.1f} MB; "
                  f"sockets {row['worker us sockets']}/{row['worker eu sockets']}/{row['gateway sockets']}; "
                  f"redis keys {row['redis us keys']}; pg conns {row['pg us connections']}/{row['pg eu connections']}; "
                  f"cpu {row['machine cpu_pct']:.0f} %; errors {errs}", flush=True)
            k += 1
        if people:
            people.stop()
        for region in ("us", "eu"):
            try:
                notes.append(f"Redis {region} at the end: " + redis_census(stack.info["regions"][region]["redis_url"]))
            except (subprocess.CalledProcessError, ValueError) as e:
                notes.append(f"Redis {region} at the end: no census ({e})")
    finally:
        if people:
            people.stop()
        if okta:
            okta.stop()
        stack.stop()
    if people:
        notes += rec.failures
    return rows, notes, csv_path


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def traffic_kinds(rows):
    return [c[: -len(" p99_ms")] for c in rows[0] if c.endswith(" p99_ms")]


def verdict(rows, out=print, p99_factor=1.5, p99_slack_ms=1.0):
    """Checks the three conditions; prints them with their figures; True when all hold.
    A kind's p99 may grow to `p99_factor` times its first-third median, or by
    `p99_slack_ms`, whichever is more."""
    n = len(rows)
    third = max(3, n // 3)
    if n < 2 * third:
        out(f"FAIL: {n} samples are too few for a verdict (at least {2 * third})")
        return False
    ok = True
    last = rows[n - third:]
    out(f"\nVerdict over {n} samples of {INTERVAL} s; last third = the last {third} samples "
        f"({third * INTERVAL / 60:.1f} min):")
    for name in PROCS:
        col = f"{name} rss_mb"
        a = statistics.mean(r[col] for r in last[:3])
        b = statistics.mean(r[col] for r in last[-3:])
        growth = b / a - 1
        good = growth < 0.05
        ok &= good
        out(f"  {'ok  ' if good else 'FAIL'} {name} RSS: {rows[0][col]:.1f} MB at the start, {a:.1f} MB when "
            f"the last third begins, {b:.1f} MB at the end: {growth * 100:+.1f} % over the last third (< 5 %)")
    err_cols = [c for c in rows[0] if c.endswith(" errors")]
    total_errors = sum(r[c] for r in rows for c in err_cols)
    ok &= total_errors == 0
    by_kind = {c[: -len(" errors")]: int(sum(r[c] for r in rows)) for c in err_cols}
    out(f"  {'ok  ' if total_errors == 0 else 'FAIL'} errors: {int(total_errors)} "
        + ("" if total_errors == 0 else str({k: v for k, v in by_kind.items() if v})))
    warm = max(1, min(60 // INTERVAL, n // 10))
    first = rows[warm: warm + third]
    for kind in traffic_kinds(rows):
        col = f"{kind} p99_ms"
        f_vals = [r[col] for r in first if r[col] == r[col]]
        l_vals = [r[col] for r in last if r[col] == r[col]]
        if not f_vals or not l_vals:
            out(f"  FAIL {kind}: no p99 figures")
            ok = False
            continue
        fm, lm = statistics.median(f_vals), statistics.median(l_vals)
        limit = max(p99_factor * fm, fm + p99_slack_ms)
        good = lm <= limit
        ok &= good
        requests = int(sum(r[f"{kind} requests"] for r in rows))
        out(f"  {'ok  ' if good else 'FAIL'} {kind} p99: median {fm:.2f} ms in the first third (after "
            f"{warm * INTERVAL} s), {lm:.2f} ms in the last (limit {limit:.2f}); {requests:,} requests")
    # Not a condition: where CPU went, first third against last, at the same rates.
    # A part whose cost grows with the run (a table, a keyspace) shows here.
    cpu = [c for c in [f"{name} cpu_pct" for name in PROCS + STORES]
           + ["machine cpu_pct", "machine steal_pct", "machine reference_ms"] if c in rows[0]]
    out("  not checked, medians per 10 s, first third -> last: " + ", ".join(
        f"{c.replace('_pct', ' %').replace('_ms', ' ms')} {statistics.median(r[c] for r in first):.1f} -> "
        f"{statistics.median(r[c] for r in last):.1f}" for c in cpu))
    return ok


def plot(rows, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r["t_s"] / 60 for r in rows]
    fig, ax = plt.subplots(6, 1, figsize=(9, 15), sharex=True)
    for name in PROCS:
        ax[0].plot(t, [r[f"{name} rss_mb"] for r in rows], label=name)
    ax[0].set_ylabel("resident memory, MB")
    ax[0].set_ylim(bottom=0)
    for name in PROCS:
        line, = ax[1].plot(t, [r[f"{name} sockets"] for r in rows], label=f"{name} sockets")
        ax[1].plot(t, [r[f"{name} fds"] for r in rows], linestyle=":", color=line.get_color(), label=f"{name} fds")
    ax[1].set_ylabel("open sockets / fds")
    ax[1].set_ylim(bottom=0)
    for region in ("us", "eu"):
        ax[2].plot(t, [r[f"redis {region} keys"] for r in rows], label=f"Redis {region} keys")
    ax[2].set_ylabel("Redis keys")
    ax[2].set_ylim(bottom=0)
    for region in ("us", "eu"):
        ax[3].plot(t, [r[f"pg {region} connections"] for r in rows], label=f"Postgres {region}")
    ax[3].set_ylabel("Postgres client\nconnections")
    ax[3].set_ylim(bottom=0)
    for kind in traffic_kinds(rows):
        ax[4].plot(t, [r[f"{kind} p99_ms"] for r in rows], label=kind, linewidth=0.9)
    ax[4].set_yscale("log")
    ax[4].set_ylabel("p99 per 10 s, ms")
    ax[5].plot(t, [r["machine cpu_pct"] for r in rows], label="machine CPU % (both cores)")
    if "machine steal_pct" in rows[0]:
        ax[5].plot(t, [r["machine steal_pct"] for r in rows], label="of which stolen by the host", linestyle="--")
    for name in PROCS + STORES:
        if f"{name} cpu_pct" in rows[0]:  # a CSV of an older run has no stores' CPU
            ax[5].plot(t, [r[f"{name} cpu_pct"] for r in rows], label=f"{name} CPU % (of one core)", linewidth=0.9)
    ax[5].set_ylabel("CPU %")
    ax[5].set_ylim(bottom=0)
    load = ax[5].twinx()
    load.plot(t, [r["load avg"] for r in rows], color="black", linestyle=":", label="load average (right)")
    load.set_ylabel("load average")
    load.set_ylim(bottom=0)
    load.legend(fontsize=7, loc="upper right")
    ax[5].set_xlabel("minutes")
    for a in list(ax[:4]) + [ax[5]]:
        a.legend(fontsize=7, loc="lower right", ncol=3)
    ax[4].legend(fontsize=6, loc="upper left", ncol=4)
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle(f"Soak: {t[-1]:.0f} min of mixed traffic through the gateway, sampled every {INTERVAL} s")
    fig.tight_layout()
    fig.savefig(png, dpi=64)  # under 200 KB, still readable
    plt.close(fig)


# ------------------------------------------------------------------ dependencies

VENV = ROOT / "target" / "soak-venv"


def ensure_deps():
    """matplotlib (the plot) and cryptography (the org's key): when this interpreter
    lacks one, run again in a venv under target/ that has them, made with pip once."""
    try:
        import cryptography  # noqa: F401
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    python = VENV / "bin" / "python3"
    if Path(sys.prefix).resolve() == VENV.resolve():
        raise SystemExit("soak: matplotlib or cryptography missing even in the venv " + str(VENV))
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    done = subprocess.run([str(python), "-c", "import cryptography, matplotlib"], capture_output=True)
    if done.returncode != 0:
        print(f"soak: installing matplotlib and cryptography into {VENV} with pip…", flush=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "matplotlib", "cryptography"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            raise SystemExit("soak: pip could not install matplotlib and cryptography into "
                             f"{VENV}:\n{pip.stdout}{pip.stderr}\nInstall them (e.g. apt-get install "
                             "python3-matplotlib python3-cryptography) and run again.")
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30, help="how long the load runs")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every rate (0.25 for a debug build)")
    p.add_argument("--users", type=int, default=5000, help="SCIM users seeded (half in one group)")
    p.add_argument("--signin-users", type=int, default=20, help="people of the Okta org who sign in")
    p.add_argument("--signin-rate", type=float, default=1.0, help="sign-ins per second")
    p.add_argument("--logout-rate", type=float, default=0.2, help="Universal Logouts per second")
    p.add_argument("--png", type=Path, help="also write the plot here (e.g. tests/bench/soak.png)")
    p.add_argument("--p99-factor", type=float, default=1.5,
                   help="how much a kind's p99 may grow from the first third to the last")
    p.add_argument("--p99-slack-ms", type=float, default=1.0,
                   help="growth of a kind's p99 always allowed, in ms (for the CI run's small samples)")
    p.add_argument("--replot", type=Path, metavar="CSV", help="only plot and judge an earlier run's CSV")
    args = p.parse_args()
    ensure_deps()
    if args.replot:
        rows, notes, csv_path = read_csv(args.replot), [], args.replot
    else:
        rows, notes, csv_path = soak(args)
        rows = read_csv(csv_path)
    png = csv_path.with_suffix(".png")
    plot(rows, png)
    if args.png:
        shutil.copyfile(png, args.png)
    print(f"\nsamples: {csv_path}\nplot: {png}" + (f" (and {args.png})" if args.png else ""))
    census = [n for n in notes if n.startswith("Redis ")]
    for n in census + [n for n in notes if n not in census][:40]:
        print(f"  note: {n}")
    ok = verdict(rows, p99_factor=args.p99_factor, p99_slack_ms=args.p99_slack_ms)
    print("\nSOAK PASSED" if ok else "\nSOAK FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
