"""wsgate's chat page (ui/) and README.md's browser snippets, in real
headless Chromium. Run by tests/chromium.rs, or by hand:

    cargo build && python3 -m unittest discover -s tests/browser -v

Each test starts its own wsgate (port 0, demo users; Chromium keeps the
`Secure` `__Host-` cookie on http://127.0.0.1, so no --insecure-cookie)
and fresh browser profiles.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness as h
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from harness import ChatPage, Site, Wsgate, browser, snippet, wait


def claims_of(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Case(unittest.TestCase):
    def setUp(self):
        self.servers = []

    def server(self, *args):
        s = Wsgate(*args)
        self.servers.append(s)
        self.addCleanup(s.stop)
        return s

    def browser(self):
        d = browser()
        self.addCleanup(d.quit)
        return d

    def site(self, host):
        s = Site(host)
        self.addCleanup(s.stop)
        return s

    def run(self, result=None):
        result = result or self.defaultTestResult()
        bad = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > bad:
            for s in self.servers:
                print(f"--- wsgate log ({self.id()}):", *s.log[-40:], sep="\n", file=sys.stderr)
        return result


class ChatPageTests(Case):
    def test_two_users_chat_both_ways_with_presence(self):
        server = self.server()
        alice = ChatPage(self.browser(), server.origin).open()
        bob = ChatPage(self.browser(), server.origin).open()
        # Security headers on the page itself.
        req = h.urllib.request.Request(server.origin + "/", headers={"Accept-Encoding": "gzip"})
        with h.urllib.request.urlopen(req, timeout=h.WAIT) as r:
            self.assertIn("script-src 'self'", r.headers["Content-Security-Policy"])
            self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
        alice.login("alice", "wonderland")
        bob.login("bob", "builder")
        alice.wait_users(["alice", "bob"])
        bob.wait_users(["alice", "bob"])

        alice.say("Hi Bob! Is the build green?")
        bob.wait_text("Hi Bob! Is the build green?")
        # Peer text is text, never markup.
        bob.say("Green ✓ <b>not bold</b>, just text")
        alice.wait_text("Green ✓ <b>not bold</b>, just text")
        self.assertEqual(
            alice.d.execute_script("return document.querySelectorAll('#log b:not(.from)').length"), 0
        )
        alice.say("/who")  # typed command: answered with the user list
        alice.say("Great, see you in #dev")
        want = [
            (1, "alice", "Hi Bob! Is the build green?"),
            (2, "bob", "Green ✓ <b>not bold</b>, just text"),
            (3, "alice", "Great, see you in #dev"),
        ]
        for page in (alice, bob):
            wait(page.d, lambda _: page.messages() == want, f"{want}; have {page.messages()}")
        # The Who button and keyboard use: Enter in the message box sends.
        bob.el("#who").click()
        wait(bob.d, lambda _: "In the room: alice, bob" in bob.el("#log").text, "the answer to Who")
        bob.el("#text").send_keys("typed with Enter\n")
        alice.wait_text("typed with Enter")
        alice.wait_users(["alice", "bob"])
        self.screenshot(alice)

    def screenshot(self, page):
        """docs/screenshot.png when $WSGATE_SCREENSHOT names it, else a temp file."""
        path = os.environ.get("WSGATE_SCREENSHOT") or os.path.join(
            tempfile.gettempdir(), f"wsgate-screenshot-{os.getpid()}.png"
        )
        page.d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 800, "height": 600, "deviceScaleFactor": 1, "mobile": False},
        )
        page.el("#text").send_keys("Typing…")
        self.assertTrue(page.d.save_screenshot(path), path)

    def test_logout_closes_with_4403_and_the_other_page_stays(self):
        server = self.server()
        alice = ChatPage(self.browser(), server.origin).open().login("alice", "wonderland")
        bob = ChatPage(self.browser(), server.origin).open().login("bob", "builder")
        alice.wait_users(["alice", "bob"])
        bob.el("#logout").click()
        bob.wait_state("out", 4403)
        self.assertIn("logged out", bob.status()[2])
        wait(bob.d, lambda _: bob.el("#login").is_displayed(), "the login form")
        alice.wait_users(["alice"])
        self.assertEqual(alice.status()[0], "open")
        alice.say("still here")
        alice.wait_text("still here")
        # Logged out means logged out: a reload shows the login form.
        bob.open()
        wait(bob.d, lambda _: bob.el("#login").is_displayed(), "the login form after reload")
        self.assertEqual(bob.status()[0], "out")

    def test_a_wrong_password_is_said(self):
        server = self.server()
        page = ChatPage(self.browser(), server.origin).open()
        wait(page.d, lambda _: page.el("#login").is_displayed(), "the login form")
        page.el("#username").send_keys("alice")
        page.el("#password").send_keys("not-it\n")
        wait(page.d, lambda _: "Wrong" in page.el("#login-error").text, "the login error")

    def test_keyboard_only_on_a_narrow_screen(self):
        server = self.server()
        d = self.browser()
        d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 360, "height": 640, "deviceScaleFactor": 1, "mobile": True},
        )
        page = ChatPage(d, server.origin).open()
        wait(d, lambda d: d.switch_to.active_element.get_attribute("id") == "username", "focus on the name")
        focused = d.switch_to.active_element
        focused.send_keys("alice" + Keys.TAB)
        d.switch_to.active_element.send_keys("wonderland" + Keys.ENTER)
        page.wait_state("open")
        # After login the message box has the focus; Enter sends.
        wait(d, lambda d: d.switch_to.active_element.get_attribute("id") == "text", "focus on the message box")
        d.switch_to.active_element.send_keys("sent from the keyboard" + Keys.ENTER)
        page.wait_text("sent from the keyboard")
        # Shift+Tab walks back through labelled controls, each with a visible focus ring.
        seen = []
        for _ in range(5):  # message log, Log out, Who, Join, Room
            ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
            seen.append(d.execute_script(
                "const e = document.activeElement, s = getComputedStyle(e);"
                "return [e.id || e.textContent.trim(), s.outlineStyle,"
                " !!(e.labels && e.labels.length) || !!e.textContent.trim() || !!e.getAttribute('aria-label')];"
            ))
        for name, outline, labelled in seen:
            self.assertEqual(outline, "solid", f"{name} has no visible focus: {seen}")
            self.assertTrue(labelled, f"{name} has no label: {seen}")
        self.assertTrue({"log", "logout", "who", "room"} <= {n for n, _, _ in seen}, seen)
        # Nothing wider than the screen.
        self.assertTrue(d.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


class EndingTests(Case):
    """The page says why a connection ended, and does what that calls for."""

    def test_replaced_by_another_tab_offers_reconnect(self):
        server = self.server("--max-conns-per-user", "1", "--per-user-policy", "evict-oldest")
        d = self.browser()
        page = ChatPage(d, server.origin).open().login("alice", "wonderland")
        first = d.current_window_handle
        d.switch_to.new_window("tab")
        second = d.current_window_handle
        page.open().wait_state("open")
        d.switch_to.window(first)
        page.wait_state("stopped", 4409)
        self.assertIn("Replaced by a newer connection", page.status()[2])
        # No reconnect by itself (it would evict the other tab in turn): a button.
        self.assertTrue(page.el("#reconnect").is_displayed())
        page.el("#reconnect").click()
        page.wait_state("open")
        d.switch_to.window(second)
        page.wait_state("stopped", 4409)

    def test_an_expired_session_asks_for_a_login(self):
        server = self.server("--session-ttl", "2s")
        page = ChatPage(self.browser(), server.origin).open().login("alice", "wonderland")
        page.wait_state("out", 4401)
        self.assertIn("session expired", page.status()[2])
        page.login("alice", "wonderland")

    def test_a_server_shutdown_is_said_and_retried(self):
        server = self.server()
        page = ChatPage(self.browser(), server.origin).open().login("alice", "wonderland")
        server.proc.terminate()
        wait(page.d, lambda _: page.d.execute_script(
            "return document.querySelector('#log li.sys[data-code=\"1001\"]')?.textContent"),
            "the 1001 line")
        self.assertIn("server is restarting", page.el("#log li.sys[data-code='1001']").text)
        page.wait_state("waiting")
        self.assertIn("Reconnecting in", page.status()[2])


# A page on another origin tries wsgate's login and cookie.
CSRF_FETCH = """
const [origin, done] = arguments;
const body = () => new URLSearchParams({ username: "alice", password: "wonderland" });
(async () => {
  const out = {};
  try {
    const r = await fetch(origin + "/login", { method: "POST", body: body(), credentials: "include" });
    out.cors = r.status;
  } catch (e) { out.cors = "blocked"; }
  try {
    const r = await fetch(origin + "/login", { method: "POST", body: body(), credentials: "include", mode: "no-cors" });
    out.nocors = r.type;
  } catch (e) { out.nocors = "error"; }
  try {
    const r = await fetch(origin + "/ws-ticket", { method: "POST", credentials: "include" });
    out.ticket = r.status;
  } catch (e) { out.ticket = "blocked"; }
  return out;
})().then(done, (e) => done(String(e)));
"""

FOREIGN_SOCKET = """
const [url, done] = arguments;
const ws = new WebSocket(url, "wsgate.json");
let opened = false;
ws.onopen = () => { opened = true; };
ws.onclose = (e) => done({ opened, code: e.code });
"""


class OriginTests(Case):
    def test_a_foreign_page_cannot_log_in_nor_use_the_cookie(self):
        server = self.server()
        d = self.browser()
        # Another site (127.0.0.2: cross-site, so SameSite keeps the cookie
        # home) and another port of the same host (same site: the cookie
        # goes along, and wsgate's Origin rule must refuse it).
        sites = [self.site("127.0.0.2"), self.site("127.0.0.1")]
        for s in sites:
            s.page("/", "<!doctype html><title>elsewhere</title><p>another origin")

        # Login CSRF: script and form posts of alice's password.
        for s in sites:
            d.get(s.origin + "/")
            out = d.execute_async_script(CSRF_FETCH, server.origin)
            self.assertEqual(out, {"cors": "blocked", "nocors": "opaque", "ticket": "blocked"}, s.origin)
            d.execute_script(
                """const f = document.createElement("form");
                f.method = "post"; f.action = arguments[0] + "/login";
                for (const [k, v] of [["username", "alice"], ["password", "wonderland"]]) {
                  const i = document.createElement("input"); i.name = k; i.value = v; f.append(i);
                }
                document.body.append(f); f.submit();""",
                server.origin,
            )
            wait(d, lambda d: "origin not allowed" in d.page_source, "wsgate's 403 to the form post")
        self.assertTrue(any("origin refused" in line for line in server.log))
        # Still not logged in: no cookie, and the page asks for a login.
        page = ChatPage(d, server.origin).open()
        wait(d, lambda _: page.el("#login").is_displayed(), "the login form")
        self.assertEqual(d.get_cookies(), [])

        # Logged in for real, the foreign pages still cannot open a socket.
        page.login("alice", "wonderland")
        self.assertEqual(len(d.get_cookies()), 1)
        for s in sites:
            d.get(s.origin + "/")
            out = d.execute_async_script(FOREIGN_SOCKET, f"ws://{server.addr}/ws")
            self.assertEqual(out, {"opened": False, "code": 1006}, s.origin)
            out = d.execute_async_script(CSRF_FETCH, server.origin)
            self.assertEqual(out["ticket"], "blocked", s.origin)
        # The session itself is fine.
        page.open().wait_state("open")


# The README's same-origin snippet, run on wsgate's origin as written.
SAME_ORIGIN = """
const done = arguments[arguments.length - 1];
const username = "alice", password = "wonderland";
window.got = [];
(async () => {
%s
  ws.addEventListener("message", (e) => window.got.push(JSON.parse(e.data)));
  window.ws = ws;
})().then(() => done(null), (e) => done(String(e)));
"""

APP_PAGE = """<!doctype html><title>app</title>
<script>
window.errors = [];
addEventListener("error", (e) => errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => errors.push(String(e.reason)));
</script>
<script type="module">
%s
window.got = [];
ws.addEventListener("message", (e) => window.got.push(JSON.parse(e.data)));
window.ws = ws;
</script>
"""


def got(d, pred):
    return any(pred(f) for f in d.execute_script("return window.got || []"))


class SnippetTests(Case):
    def test_same_origin_snippet(self):
        server = self.server()
        d = self.browser()
        d.get(server.origin + "/healthz")
        code = snippet("js", "Same origin")
        self.assertIn("new WebSocket(`${scheme}://${location.host}/ws?room=lobby`", code)
        self.assertIsNone(d.execute_async_script(SAME_ORIGIN % code))
        wait(d, lambda d: got(d, lambda f: f.get("type") == "message" and f.get("from") == "alice"
                              and f.get("text") == "hello"), "alice's hello")

    def mint_with_pyjwt(self, user):
        code = snippet("python", "PyJWT")
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "secret.txt"), "w") as f:
                f.write(h.SECRET + "\n")
            here = os.getcwd()
            os.chdir(tmp)
            try:
                ns = {}
                exec(compile(code, "README.md (PyJWT)", "exec"), ns)
            finally:
                os.chdir(here)
        token = ns["wsgate_token"](user)
        self.assertEqual(set(claims_of(token)), {"sub", "role", "iat", "exp"})
        return ns["wsgate_token"]

    def test_app_on_an_allowed_origin_chats_by_ticket(self):
        app = self.site("127.0.0.2")
        other = self.site("127.0.0.3")  # not allowed: CORS keeps the answer from it
        server = self.server("--allowed-origin", app.origin)
        wsgate_token = self.mint_with_pyjwt("carol")
        page = snippet("js", "The page on your app's origin")
        page = page.replace('"https://chat.example"', json.dumps(server.origin))
        for s in (app, other):
            s.page("/", APP_PAGE % page)
            s.routes["POST /wsgate-token"] = lambda: (200, "text/plain", wsgate_token("carol").encode())

        alice = server.client(wsgate_token("alice"))
        d = self.browser()
        d.get(app.origin + "/")
        wait(d, lambda d: d.execute_script("return window.ws && window.ws.readyState === 1 || window.errors"),
             "the app's socket")
        self.assertEqual(d.execute_script("return window.errors"), [])
        self.assertEqual(d.execute_script("return window.ws.protocol"), "wsgate.json")
        alice.expect(lambda f: f.get("type") == "join" and f.get("user") == "carol", "carol's join")
        d.execute_script("ws.send(JSON.stringify({type: 'message', text: 'hello from the app'}))")
        self.assertEqual(alice.expect_message("hello from the app")["from"], "carol")
        alice.send("hi carol")
        wait(d, lambda d: got(d, lambda f: f.get("from") == "alice" and f.get("text") == "hi carol"),
             "alice's answer in the app")
        alice.close()

        d.get(other.origin + "/")
        wait(d, lambda d: d.execute_script("return window.errors.length"), "the refusal")
        self.assertIn("Failed to fetch", d.execute_script("return window.errors.join()"))
        self.assertIsNone(d.execute_script("return window.ws"))

    def test_node_jsonwebtoken_snippet_is_accepted(self):
        modules = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules")
        node = shutil.which("node")
        if not node or not os.path.isdir(os.path.join(modules, "jsonwebtoken")):
            if os.environ.get("CI"):
                self.fail("node and tests/browser/node_modules (npm ci --prefix tests/browser) are needed in CI")
            self.skipTest("node or jsonwebtoken missing: npm ci --prefix tests/browser")
        server = self.server()
        code = snippet("js", "jsonwebtoken") + '\nconsole.log(wsgateToken("dave"));\n'
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "secret.txt"), "w") as f:
                f.write(h.SECRET + "\n")
            out = subprocess.run(
                [node, "-"], input=code, capture_output=True, text=True, cwd=tmp,
                env={**os.environ, "NODE_PATH": modules}, timeout=h.WAIT,
            )
        self.assertEqual(out.returncode, 0, out.stderr)
        token = out.stdout.strip()
        self.assertEqual(set(claims_of(token)), {"sub", "role", "iat", "exp"})
        dave = server.client(token)
        dave.expect(lambda f: f.get("type") == "join" and f.get("user") == "dave", "dave's join")
        dave.close()


if __name__ == "__main__":
    unittest.main()
