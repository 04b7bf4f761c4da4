"""What the browser tests share: a wsgate process on a free loopback port,
headless Chromium through chromedriver (a fresh profile each), small HTTP
sites on other origins, a TCP forwarder that can cut its connections, a
plain WebSocket client, and README.md's snippets.

The server binary is $WSGATE_BIN (tests/chromium.rs passes
the one cargo built), else target/debug/wsgate. Every wait is a poll with
a deadline (WebDriverWait, or wait_until below); nothing sleeps to assert.
"""

import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from websockets.sync.client import connect as ws_connect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("WSGATE_BIN") or os.path.join(ROOT, "target", "debug", "wsgate")
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or "/usr/bin/chromedriver"
WAIT = 15  # seconds: the longest any one step may take
# At least 32 bytes (PROTOCOL.md, Tokens): the tests' token secret.
SECRET = "browser-tests-secret-0123456789-abcdefghij"


def wait_until(what, cond, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Wsgate:
    """wsgate on 127.0.0.1:0 with `args`; its log is kept for failures."""

    def __init__(self, *args):
        env = {"PATH": os.environ.get("PATH", ""), "WSGATE_SECRET": SECRET}
        self.proc = subprocess.Popen(
            [BIN, "--listen", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log = []
        found = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on (\S+)", line)
                if m and not found.is_set():
                    self.addr = m.group(1)
                    found.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not found.wait(WAIT):
            self.stop()
            raise AssertionError("wsgate did not start:\n" + "\n".join(self.log))
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)
        self.origin = f"http://{self.addr}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(WAIT)
        self.proc.stderr.close()

    def token(self, user, password):
        """A token from POST /token."""
        body = f"username={user}&password={password}".encode()
        with urllib.request.urlopen(f"{self.origin}/token", body, timeout=WAIT) as r:
            return json.load(r)["access_token"]

    def client(self, token, room="lobby", query=""):
        """A plain JSON-mode WebSocket straight to wsgate."""
        return JsonClient(f"ws://{self.addr}/ws?room={room}&token={token}{query}")


class JsonClient:
    """A wsgate.json WebSocket that keeps what it received."""

    def __init__(self, url, origin=None):
        self.cm = ws_connect(
            url, subprotocols=["wsgate.json"], open_timeout=WAIT, origin=origin
        )
        self.ws = self.cm.__enter__()
        self.frames = []

    def send(self, text):
        self.ws.send(json.dumps({"type": "message", "text": text}))

    def expect(self, pred, what):
        """Receives until a frame satisfies `pred`; that frame."""
        for f in self.frames:
            if pred(f):
                return f
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame {what}; got {self.frames}")
            f = json.loads(self.ws.recv(timeout=left))
            self.frames.append(f)
            if pred(f):
                return f

    def expect_message(self, text):
        return self.expect(
            lambda f: f.get("type") == "message" and f.get("text") == text,
            f"message {text!r}",
        )

    def close(self):
        self.cm.__exit__(None, None, None)


def browser():
    """Headless Chromium with a fresh profile (chromedriver makes one)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--window-size=800,600",
        "--lang=en-US",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(WAIT)
    return driver


def wait(driver, cond, what, timeout=WAIT):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: cond(d), message=f"waiting for {what}"
    )


class ChatPage:
    """wsgate's own page (ui/) in one browser."""

    def __init__(self, driver, origin):
        self.d = driver
        self.origin = origin

    def open(self, path="/"):
        self.d.get(self.origin + path)
        return self

    def el(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def login(self, user, password):
        wait(self.d, lambda d: self.el("#login").is_displayed(), "the login form")
        self.el("#username").clear()
        self.el("#username").send_keys(user)
        self.el("#password").send_keys(password)
        self.el("#login-button").click()
        self.wait_state("open")
        return self

    def status(self):
        return self.d.execute_script(
            "const s = document.getElementById('status');"
            "return [s.dataset.state || '', s.dataset.code || '', s.textContent];"
        )

    def wait_state(self, state, code=None):
        def ok(_):
            s = self.status()
            return s[0] == state and (code is None or s[1] == str(code))

        wait(self.d, ok, f"status {state} {code or ''}; it says {self.status()}")

    def say(self, text):
        box = self.el("#text")
        box.send_keys(text)
        self.el("#send button[type=submit]").click()

    def messages(self):
        """(seq, from, text) of every message shown, in order."""
        return [
            tuple(m)
            for m in self.d.execute_script(
                "return [...document.querySelectorAll('#log li[data-seq]')].map("
                "li => [Number(li.dataset.seq), li.dataset.from,"
                " li.querySelector('.text').textContent]);"
            )
        ]

    def texts(self):
        return [m[2] for m in self.messages()]

    def wait_text(self, text):
        wait(self.d, lambda _: text in self.texts(), f"message {text!r}; have {self.texts()}")

    def users(self):
        return self.d.execute_script(
            "return [...document.querySelectorAll('#users li')].map(li => li.dataset.user);"
        )

    def wait_users(self, users):
        wait(self.d, lambda _: sorted(self.users()) == sorted(users),
             f"users {users}; have {self.users()}")


class Site:
    """A tiny HTTP site on (host, 0): `routes` maps "METHOD /path" to a
    function returning (status, content_type, body bytes)."""

    def __init__(self, host="127.0.0.2", routes=None):
        self.routes = dict(routes or {})
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self):
                route = site.routes.get(f"{self.command} {self.path}")
                if route is None:
                    self.send_error(404)
                    return
                status, ctype, body = route()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            do_GET = answer
            do_POST = answer

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path, html):
        self.routes[f"GET {path}"] = lambda: (200, "text/html; charset=utf-8", html.encode())

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Forwarder:
    """A TCP forwarder on 127.0.0.1:0 to `target` ("host:port") that can
    cut every connection it carries, and hold (refuse) new ones."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.origin = f"http://{self.addr}"
        self.lock = threading.Lock()
        self.socks = []
        self.holding = False
        self.accepted = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                if self.holding:
                    self.reset(client)
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=WAIT)
                    upstream.settimeout(None)
                except OSError:
                    self.reset(client)
                    continue
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    @staticmethod
    def reset(sock):
        """Closes with a RST: an abrupt loss, as a dropped network gives."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            # shutdown wakes the pump blocked in recv (close alone would not).
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self, hold=False):
        """Drops every connection; with `hold`, refuses new ones until release()."""
        with self.lock:
            self.holding = hold
            socks, self.socks = self.socks, []
        for s in socks:
            self.reset(s)

    def retarget(self, target):
        """New connections go to `target` ("host:port") from now on."""
        host, port = target.rsplit(":", 1)
        with self.lock:
            self.target = (host, int(port))

    def release(self):
        with self.lock:
            self.holding = False

    def stop(self):
        self.listener.close()
        self.cut()


README = os.path.join(ROOT, "README.md")


def readme_blocks(section):
    """The fenced blocks (lang, code) of README.md's `## section`."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 4)
    body = text[start : end if end >= 0 else len(text)]
    return re.findall(r"```(\w+)\n(.*?)```", body, re.S)


def snippet(lang, marker, section="In the browser"):
    """The one block of `lang` whose first line holds `marker`."""
    found = [
        code
        for l, code in readme_blocks(section)
        if l == lang and marker in code.split("\n", 1)[0]
    ]
    assert len(found) == 1, f"README {section}: {len(found)} {lang} blocks marked {marker!r}"
    return found[0]
