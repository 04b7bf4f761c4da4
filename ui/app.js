// wsgate's chat page: log in with the session cookie, get a single-use
// ticket, chat in JSON mode, and reconnect (with backoff) resuming where
// the page left off. Peer data is only ever rendered with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), login: $("login"), loginError: $("login-error"),
  loginButton: $("login-button"), username: $("username"), password: $("password"),
  chat: $("chat"), roomForm: $("room-form"), room: $("room"), who: $("who"),
  reconnect: $("reconnect"), logout: $("logout"), notice: $("notice"),
  log: $("log"), users: $("users"), send: $("send"), text: $("text"),
};

// Reconnection: full jitter over an exponential backoff (PROTOCOL.md, Chat).
const BASE_MS = 500, CAP_MS = 30000, STABLE_MS = 5000;

// Why a connection ended, in words; `retry` says whether to reconnect
// by itself, `login` whether the session is gone.
const ENDINGS = {
  4401: { text: "Your session expired. Please log in again.", login: true },
  4403: { text: "You were logged out.", login: true },
  4409: { text: "Replaced by a newer connection (another tab or window?).", manual: true },
  4429: { text: "Too many messages, too fast.", retry: true },
  1013: { text: "The server is overloaded, or this page fell behind.", retry: true },
  1001: { text: "The server is restarting, or the connection timed out.", retry: true },
};
const LOST = { text: "Connection lost.", retry: true };

let ws = null;          // the live socket, if any
let room = "";          // the room shown
let attempt = 0;        // reconnect attempts since the last stable connection
let timer = 0;          // a pending reconnect
let openedAt = 0;
let generation = 0;     // bumps whenever the page drops a socket on purpose
const rooms = new Map(); // room -> { epoch, seq, list, users }

const user = () => sessionStorage.getItem("wsgate.user") || "";

function setStatus(text, state, code) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
  if (code === undefined) delete ui.status.dataset.code;
  else ui.status.dataset.code = String(code);
}

function notice(text, kind) {
  ui.notice.textContent = text;
  ui.notice.dataset.kind = kind || "";
}

function show(which) {
  ui.login.hidden = which !== "login";
  ui.chat.hidden = which !== "chat";
  if (which === "login") {
    ui.loginButton.disabled = false;
    ui.username.value = ui.username.value || user();
    (ui.username.value ? ui.password : ui.username).focus();
  }
}

// The state of `name`, made on first use: its own message list, kept
// while another room is shown so coming back resumes it.
function roomState(name) {
  let r = rooms.get(name);
  if (!r) {
    const list = document.createElement("ol");
    list.className = "messages";
    list.dataset.room = name;
    r = { epoch: "", seq: 0, list, users: new Set() };
    rooms.set(name, r);
  }
  return r;
}

function showRoom(name) {
  room = name;
  ui.room.value = name;
  const r = roomState(name);
  ui.log.replaceChildren(r.list);
  ui.log.dataset.room = name;
  history.replaceState(null, "", name === "lobby" ? location.pathname : `#room=${name}`);
  renderUsers();
}

function renderUsers() {
  const r = roomState(room);
  const items = [...r.users].sort().map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    li.dataset.user = name;
    if (name === user()) li.className = "me";
    return li;
  });
  ui.users.replaceChildren(...items);
}

function append(r, li) {
  const atEnd = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  r.list.append(li);
  if (atEnd && r.list.parentNode) ui.log.scrollTop = ui.log.scrollHeight;
}

function systemLine(r, text) {
  const li = document.createElement("li");
  li.className = "sys";
  li.textContent = text;
  append(r, li);
  return li;
}

function showMessage(r, m) {
  // Resume: never show a message twice (the server replays what the page
  // may not have seen; anything at or below the last shown seq was shown).
  if (typeof m.seq !== "number" || m.seq <= r.seq) return;
  r.seq = m.seq;
  const li = document.createElement("li");
  li.className = m.from === user() ? "msg me" : "msg";
  li.dataset.seq = String(m.seq);
  li.dataset.from = m.from;
  li.dataset.epoch = r.epoch;
  const when = new Date(m.ts);
  const time = document.createElement("time");
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  time.title = when.toLocaleString();
  const from = document.createElement("b");
  from.className = "from";
  from.textContent = m.from;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  li.append(time, " ", from, " ", text);
  append(r, li);
}

function onFrame(r, m, first) {
  if (first && m.type !== "resume") {
    // A server without resume replays nothing: count this room afresh.
    r.seq = 0;
    r.epoch = "";
  }
  switch (m.type) {
    case "resume": {
      const had = r.seq > 0 || r.epoch !== "";
      if (m.epoch !== r.epoch) {
        if (had) systemLine(r, "The server restarted; its message numbers start again.");
        r.epoch = m.epoch;
        r.seq = 0;
      }
      if (had && !m.recovered) {
        notice("Some messages may be missing: the server no longer had all of them.", "warn");
        systemLine(r, "Some messages may be missing here.");
      }
      break;
    }
    case "message":
      showMessage(r, m);
      break;
    case "who":
      r.users = new Set(m.users);
      if (r.asked) systemLine(r, `In the room: ${[...r.users].sort().join(", ")}`);
      r.asked = false;
      if (r === roomState(room)) renderUsers();
      break;
    case "join":
    case "leave":
      if (m.type === "join") r.users.add(m.user);
      else r.users.delete(m.user);
      systemLine(r, `${m.user} ${m.type === "join" ? "joined" : "left"}`);
      if (r === roomState(room)) renderUsers();
      break;
    case "error":
      notice(`Not sent: ${m.detail || m.code}`, "error");
      break;
    case "expiring":
      notice(`This connection's credential expires in ${m.in} s.`, "warn");
      break;
  }
}

async function post(path) {
  return fetch(path, { method: "POST", credentials: "same-origin" });
}

function scheduleReconnect(why) {
  clearTimeout(timer);
  const delay = Math.random() * Math.min(CAP_MS, BASE_MS * 2 ** attempt);
  attempt += 1;
  const secs = Math.max(1, Math.round(delay / 1000));
  setStatus(`${why} Reconnecting in about ${secs} s…`, "waiting");
  ui.reconnect.hidden = false;
  timer = setTimeout(connect, delay);
}

function drop() {
  generation += 1;
  clearTimeout(timer);
  if (ws) {
    const old = ws;
    ws = null;
    old.close(1000);
  }
}

async function connect() {
  drop();
  const gen = generation;
  const name = room;
  const r = roomState(name);
  ui.reconnect.hidden = true;
  setStatus(`Connecting to ${name}…`, "connecting");
  let res;
  try {
    res = await post("/ws-ticket");
  } catch {
    if (gen === generation) scheduleReconnect("The server cannot be reached.");
    return;
  }
  if (gen !== generation) return;
  if (res.status === 401) {
    setStatus("Not logged in.", "out");
    show("login");
    return;
  }
  if (!res.ok) {
    scheduleReconnect(`The server refused a ticket (${res.status}).`);
    return;
  }
  const { ticket } = await res.json();
  if (gen !== generation) return;
  show("chat");
  const params = new URLSearchParams({ room: name, ticket, since: String(r.seq) });
  if (r.epoch) params.set("epoch", r.epoch);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sock = new WebSocket(`${scheme}//${location.host}/ws?${params}`, "wsgate.json");
  ws = sock;
  let first = true;
  sock.onopen = () => {
    openedAt = Date.now();
    setStatus(`Connected to ${name}.`, "open");
    sock.send(JSON.stringify({ type: "who" }));
  };
  sock.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    onFrame(r, m, first);
    first = false;
  };
  sock.onclose = (e) => {
    if (sock !== ws) return; // dropped on purpose
    ws = null;
    const wasOpen = openedAt > 0;
    if (wasOpen && Date.now() - openedAt >= STABLE_MS) attempt = 0;
    openedAt = 0;
    const end = ENDINGS[e.code] || LOST;
    const why = `Disconnected: ${end.text} (code ${e.code})`;
    systemLine(r, why).dataset.code = String(e.code);
    if (end.login) {
      setStatus(why, "out", e.code);
      show("login");
    } else if (end.manual) {
      setStatus(why, "stopped", e.code);
      ui.reconnect.hidden = false;
      ui.reconnect.focus();
    } else {
      scheduleReconnect(why);
      ui.status.dataset.code = String(e.code);
    }
  };
}

ui.login.addEventListener("submit", async (e) => {
  e.preventDefault();
  ui.loginError.textContent = "";
  ui.loginButton.disabled = true;
  const username = ui.username.value.trim();
  let res;
  try {
    res = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      body: new URLSearchParams({ username, password: ui.password.value }),
    });
  } catch {
    ui.loginError.textContent = "The server cannot be reached.";
    ui.loginButton.disabled = false;
    return;
  }
  ui.loginButton.disabled = false;
  if (res.status === 204 || res.ok) {
    ui.password.value = "";
    sessionStorage.setItem("wsgate.user", username);
    attempt = 0;
    notice("");
    connect().then(() => ui.text.focus());
    return;
  }
  const wait = res.headers.get("Retry-After");
  ui.loginError.textContent =
    res.status === 401 ? "Wrong user name or password."
    : res.status === 429 ? `Too many attempts; try again in ${wait || "a few"} seconds.`
    : res.status === 403 ? "This page's origin may not log in."
    : `Login failed (${res.status}).`;
});

ui.roomForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.room.value.trim();
  if (!ui.room.checkValidity() || name === room) return;
  notice("");
  showRoom(name);
  attempt = 0;
  connect();
});

function sendJson(obj) {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    notice("Not connected: nothing was sent.", "error");
    return false;
  }
  ws.send(JSON.stringify(obj));
  // The user asked who is here: the answer gets a line of its own.
  if (obj.type === "who") roomState(room).asked = true;
  return true;
}

ui.send.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  const ok = text.trim() === "/who" ? sendJson({ type: "who" }) : sendJson({ type: "message", text });
  if (ok) {
    ui.text.value = "";
    notice("");
  }
});

ui.who.addEventListener("click", () => sendJson({ type: "who" }));

ui.reconnect.addEventListener("click", () => {
  attempt = 0;
  notice("");
  connect();
});

ui.logout.addEventListener("click", async () => {
  // The server closes this page's socket with 4403 (onclose says so).
  try {
    await post("/logout");
  } catch {
    notice("The server cannot be reached: not logged out.", "error");
    return;
  }
  sessionStorage.removeItem("wsgate.user");
  if (!ws && ui.status.dataset.state !== "out") {
    setStatus("You were logged out.", "out");
    show("login");
  }
});

const asked = new URLSearchParams(location.hash.slice(1)).get("room") || "";
showRoom(/^[A-Za-z0-9._-]{1,64}$/.test(asked) ? asked : "lobby");
connect();
