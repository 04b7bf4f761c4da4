"""The chat page loses its connection and comes back: every message shown
once, in order (resume by since/epoch, docs/PROTOCOL.md). See test_chat.py
for how these tests run."""

import unittest

from harness import ChatPage, Forwarder, wait
from test_chat import Case


class ReconnectTests(Case):
    def test_a_cut_connection_resumes_every_message_once(self):
        server = self.server()
        fwd = Forwarder(server.addr)
        self.addCleanup(fwd.stop)
        page = ChatPage(self.browser(), fwd.origin).open().login("alice", "wonderland")
        bob = server.client(server.token("bob", "builder"))
        self.addCleanup(bob.close)
        texts = []

        def send(text):
            texts.append(text)
            bob.send(text)
            bob.expect_message(text)

        for i in range(3):
            send(f"before the cut {i}")
        page.wait_text(texts[-1])
        fwd.cut(hold=True)
        page.wait_state("waiting")
        self.assertIn("Connection lost", page.status()[2])
        for i in range(4):
            send(f"while away {i}")
        fwd.release()
        page.wait_state("open")
        for i in range(3):
            send(f"after {i}")
        page.wait_text(texts[-1])
        want = [(i + 1, "bob", t) for i, t in enumerate(texts)]
        self.assertEqual(page.messages(), want)
        self.assertEqual(page.el("#notice").text, "")


    def test_missing_messages_are_said_and_rooms_resume_apart(self):
        server = self.server("--history", "2")
        fwd = Forwarder(server.addr)
        self.addCleanup(fwd.stop)
        page = ChatPage(self.browser(), fwd.origin).open().login("alice", "wonderland")
        bob = server.client(server.token("bob", "builder"))
        self.addCleanup(bob.close)

        def send(text):
            bob.send(text)
            return bob.expect_message(text)["seq"]

        send("one")
        page.wait_text("one")
        fwd.cut(hold=True)
        page.wait_state("waiting")
        for text in ("two", "three", "four", "five"):
            send(text)
        fwd.release()
        page.wait_state("open")
        # Only the last two were kept: the page says some are missing.
        page.wait_text("five")
        self.assertEqual(page.messages(), [(1, "bob", "one"), (4, "bob", "four"), (5, "bob", "five")])
        self.assertIn("may be missing", page.el("#notice").text)

        # Another room, then back: the lobby resumes from where it was.
        page.el("#room").clear()
        page.el("#room").send_keys("dev\n")
        wait(page.d, lambda _: page.d.execute_script("return document.getElementById('log').dataset.room") == "dev"
             and page.status()[0] == "open", "the dev room")
        self.assertEqual(page.messages(), [])
        self.assertEqual(page.d.execute_script("return location.hash"), "#room=dev")
        send("six")
        page.el("#room").clear()
        page.el("#room").send_keys("lobby\n")
        page.wait_text("six")
        self.assertEqual(page.texts(), ["one", "four", "five", "six"])

        # A new page (since=0) shows what the room kept, with no notice.
        page.open().wait_state("open")
        page.wait_text("six")
        self.assertEqual(page.texts(), ["five", "six"])
        self.assertEqual(page.el("#notice").text, "")

    def test_a_restarted_server_numbers_afresh(self):
        server = self.server()
        fwd = Forwarder(server.addr)
        self.addCleanup(fwd.stop)
        page = ChatPage(self.browser(), fwd.origin).open().login("alice", "wonderland")
        bob = server.client(server.token("bob", "builder"))
        for text in ("old one", "old two"):
            bob.send(text)
        page.wait_text("old two")
        bob.close()
        old_epoch = page.d.execute_script("return document.querySelector('#log li[data-seq]').dataset.epoch")

        # A new server behind the same address: sessions are gone, so the
        # page asks for a login; then the room has a new epoch.
        server.stop()
        new = self.server()
        fwd.retarget(new.addr)
        page.login("alice", "wonderland")
        bob = new.client(new.token("bob", "builder"))
        self.addCleanup(bob.close)
        bob.send("new one")
        page.wait_text("new one")
        shown = page.d.execute_script(
            "return [...document.querySelectorAll('#log li[data-seq]')].map(li => [li.dataset.epoch, Number(li.dataset.seq), li.querySelector('.text').textContent])"
        )
        self.assertEqual([s[1:] for s in shown], [[1, "old one"], [2, "old two"], [1, "new one"]])
        self.assertEqual(shown[0][0], old_epoch)
        self.assertNotEqual(shown[2][0], old_epoch)
        self.assertIn("restarted", page.el("#log").text)
        self.assertIn("may be missing", page.el("#notice").text)


if __name__ == "__main__":
    unittest.main()
