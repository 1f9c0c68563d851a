#!/usr/bin/env python3
"""Times complete demo logins, one after another, as a client would run them.

Each login: GET /authorize (login_hint) -> simulator -> /callback -> client redirect (not
followed), POST /token, GET /userinfo. Prints the median and p90 of N logins.

usage: scripts/measure-demo-login.py [BASE_URL] [N]   (default http://localhost:8080 100)
Start the demo first: cargo run --release -- demo
"""
import base64
import http.client
import json
import statistics
import sys
import time
import urllib.parse

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8080"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100
REDIRECT = "http://localhost:3000/callback"
BASIC = "Basic " + base64.b64encode(b"demo:demo-secret").decode()

base = urllib.parse.urlsplit(BASE)
conn = http.client.HTTPConnection(base.hostname, base.port or 80)


def request(method, url, body=None, headers=None):
    parts = urllib.parse.urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, response.getheader("Location"), data


def login():
    query = urllib.parse.urlencode({
        "client_id": "demo", "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "openid email profile", "state": "s", "login_hint": "alice@example.com",
    })
    url = f"{BASE}/authorize?{query}"
    while not url.startswith(REDIRECT):
        status, location, _ = request("GET", url)
        if status != 302:
            raise SystemExit(f"unexpected {status} at {url}")
        url = urllib.parse.urljoin(url, location)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["code"][0]
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    status, _, data = request("POST", f"{BASE}/token", body,
                              {"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise SystemExit(f"token: {status} {data!r}")
    token = json.loads(data)["access_token"]
    status, _, _ = request("GET", f"{BASE}/userinfo", headers={"Authorization": f"Bearer {token}"})
    if status != 200:
        raise SystemExit(f"userinfo: {status}")


login()  # warm up: discovery and JWKS are fetched once
times = []
for _ in range(N):
    started = time.perf_counter()
    login()
    times.append((time.perf_counter() - started) * 1000)
times.sort()
print(f"{N} complete demo logins (authorize -> simulator -> callback -> token -> userinfo, one connection):")
print(f"  median {statistics.median(times):.2f} ms, p90 {times[int(N * 0.9) - 1]:.2f} ms, min {times[0]:.2f} ms, max {times[-1]:.2f} ms")
