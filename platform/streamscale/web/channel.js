// The channel page: the LL-HLS player (vendored hls.js), its live readout and quality
// selector, the follow button and the chat panel over the chat WebSocket
// (docs/chat-protocol.md). State for tests and people alike lives in the DOM:
// #latency has data-latency-s, #player-state says what is wrong, chat lines carry
// data-state (visible, pending, held, removed).
import { ApiFailure, api, boot, chatToken, explain, formatViewers, h } from "./app.js";

const $ = (id) => document.getElementById(id);
const streamId = location.pathname.split("/").filter(Boolean).pop();
const Hls = window.Hls;

// hls.js for low latency: parts and blocking reloads, and catching up after a stall by
// playing faster (up to 1.5x) instead of staying behind; a part's first byte is due about
// one part (~0.33 s) after it is asked for, so a CDN that does not answer in 0.75 s is
// treated as failed (fails over with content steering) rather than waited on for 10 s.
const HLS_CONFIG = {
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 30,
  fragLoadPolicy: { default: {
    maxTimeToFirstByteMs: 750, maxLoadTimeMs: 120000,
    timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
    errorRetry: { maxNumRetry: 6, retryDelayMs: 1000, maxRetryDelayMs: 8000 },
  } },
};

const session_ = await boot();
let stream = null;
let hls = null;
let watched = false;

function playerState(text) {
  const el = $("player-state");
  el.textContent = text || "";
  el.hidden = !text;
  el.dataset.state = text ? "problem" : "ok";
}

async function loadStream() {
  stream = await api("GET", `/api/streams/${streamId}`);
  $("stream-title").textContent = stream.title;
  document.title = `${stream.title} · streamscale`;
  $("viewers").textContent = formatViewers(stream.viewer_count);
  return stream;
}

async function showStreamer() {
  const user = await api("GET", `/api/users/${stream.user_id}`);
  $("stream-meta").textContent =
    `${user.display_name || user.username} · ${stream.category} · ${user.followers} followers`;
  if (!session_.user || session_.user.id === user.id) return;
  const button = $("follow");
  let following = false;
  try {
    const page = await api("GET", `/api/users/${session_.user.id}/following?limit=100`);
    following = page.items.some((f) => f.user_id === user.id);
  } catch (_) { /* shown as not following */ }
  const render = () => {
    button.textContent = following ? "Following" : "Follow";
    button.setAttribute("aria-pressed", String(following));
    button.className = following ? "secondary" : "";
  };
  render();
  button.hidden = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const state = await api(following ? "DELETE" : "PUT", `/api/users/${user.id}/follow`);
      following = state.following;
      render();
    } catch (err) {
      $("channel-error").textContent = explain(err);
      $("channel-error").hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

function offlineText(status) {
  if (status === "created") return "This stream has not started yet. It will play here when it goes live.";
  if (status === "ended") return "This stream has ended.";
  return "The stream is offline or cannot be reached. Retrying…";
}

// --- player ---------------------------------------------------------------------------

function fillQualities() {
  const select = $("quality");
  const current = select.value;
  const levels = hls.levels.map((level, i) => ({ level, i }))
    .sort((x, y) => y.level.height - x.level.height || y.level.bitrate - x.level.bitrate);
  select.replaceChildren(h("option", { value: "-1" }, "Auto"),
    ...levels.map(({ level, i }) => h("option", { value: String(i), "data-height": level.height },
      `${level.height}p (${Math.round(level.bitrate / 1000)} kb/s)`)));
  select.value = [...select.options].some((o) => o.value === current) ? current : "-1";
}

function readout() {
  if (!hls) return;
  const latency = hls.latency;
  const el = $("latency");
  if (Number.isFinite(latency) && latency > 0) {
    el.textContent = `${latency.toFixed(1)} s`;
    el.dataset.latencyS = latency.toFixed(3);
  }
  const target = hls.targetLatency;
  if (Number.isFinite(target) && target > 0) {
    $("target-latency").textContent = `${target.toFixed(1)} s`;
    $("target-latency").dataset.targetS = target.toFixed(3);
  }
  const level = hls.levels[hls.currentLevel];
  if (level) {
    $("rendition").textContent = `${level.height}p ${Math.round(level.bitrate / 1000)} kb/s` +
      (hls.autoLevelEnabled ? " (auto)" : "");
    $("rendition").dataset.height = String(level.height);
  }
}

let retryTimer = null;

function retryLater() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(async () => {
    try {
      await loadStream();
    } catch (_) { /* keep the message */ }
    if (stream && stream.status === "live") startPlayer();
    else {
      playerState(offlineText(stream && stream.status));
      if (!stream || stream.status !== "ended") retryLater();
    }
  }, 5000);
}

function startPlayer() {
  const video = $("video");
  if (hls) hls.destroy();
  if (!Hls || !Hls.isSupported()) {
    playerState("This browser cannot play the stream (no Media Source Extensions).");
    return;
  }
  playerState("Loading the stream…");
  hls = new Hls(HLS_CONFIG);
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    fillQualities();
    video.play().catch(() => playerState("Press play to start the stream."));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, readout);
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    hls.destroy();
    hls = null;
    playerState(offlineText(null));
    retryLater();
  });
  hls.loadSource(stream.playback_url);
  hls.attachMedia(video);
}

$("video").addEventListener("playing", async () => {
  playerState("");
  if (watched || !session_.user) return;
  watched = true;
  try {
    await api("POST", `/api/streams/${streamId}/watch`);
  } catch (_) { /* history is best effort */ }
});
$("video").addEventListener("waiting", () => {
  if (hls) playerState("Buffering…");
});
$("quality").addEventListener("change", (event) => {
  if (hls) hls.currentLevel = Number(event.target.value);
  readout();
});
setInterval(readout, 500);
setInterval(async () => {
  try {
    const s = await api("GET", `/api/streams/${streamId}`);
    $("viewers").textContent = formatViewers(s.viewer_count);
    if (s.status === "ended" && stream.status !== "ended") {
      stream = s;
      if (hls) { hls.destroy(); hls = null; }
      playerState(offlineText("ended"));
    }
  } catch (_) { /* next time */ }
}, 10000);

// --- chat -----------------------------------------------------------------------------

const log = $("chat-log");
const input = $("chat-input");
const send = $("chat-send");
const lines = new Map(); // server message id -> <li>
const pending = new Map(); // client id -> <li>
let socket = null;
let canPost = false;
let blockedUntil = 0;
let counter = 0;
let retriedAuth = false;

function chatStatus(text) {
  const el = $("chat-status");
  el.textContent = text || "";
  el.hidden = !text;
}

function setCanPost(value) {
  canPost = value;
  const open = canPost && Date.now() >= blockedUntil;
  input.disabled = !open;
  send.disabled = !open;
}

// --- moderation from the chat panel (the channel's owner and its moderators) ----------
// Each other person's line gets Remove, Time out (10 min) and Ban; the room's own
// `deleted` frame marks a line removed for everyone, and the API refuses anyone else.
let staff = false;

async function findStaff() {
  const me = session_.user;
  if (!me || !stream) return false;
  if (stream.user_id === me.id) return true;
  try {
    await api("GET", `/api/channels/${stream.user_id}/moderators/${me.id}`);
    return true;
  } catch (_) {
    return false;  // 404 not_a_moderator: no actions shown
  }
}

async function moderate(label, call) {
  try {
    await call();
    chatStatus("");
    notifyMod(label);
  } catch (err) {
    chatStatus(explain(err));
  }
}

function notifyMod(text) {
  const el = $("mod-status");
  el.textContent = text;
}

function modActions(message) {
  const channel = stream.user_id;
  const who = message.username || "this user";
  const button = (text, title, onClick) => {
    const b = h("button", { type: "button", class: "secondary small", title,
                            "aria-label": `${text} ${who}` }, text);
    b.addEventListener("click", () => { b.disabled = true; onClick().finally(() => {
      b.disabled = false; }); });
    return b;
  };
  return h("span", { class: "mod-actions" },
    button("Remove", "Remove this message", () => moderate(`Removed ${who}'s message.`,
      () => api("DELETE", `/api/streams/${streamId}/chat/${message.id}`))),
    button("Time out", "Time out for 10 minutes", () => moderate(
      `Timed out ${who} for 10 minutes.`, () => api("POST", `/api/channels/${channel}/timeouts`,
        { user_id: message.user_id, duration_s: 600, reason: "timed out from the chat" }))),
    button("Ban", "Ban from this channel's chat", () => moderate(`Banned ${who}.`,
      () => api("POST", `/api/channels/${channel}/bans`,
        { user_id: message.user_id, reason: "banned from the chat" }))));
}

function line(message, state) {
  const li = h("li", { "data-state": state, "data-message-id": message.id || null },
    h("span", { class: "who" }, message.username || "deleted user"),
    h("span", { class: "text" }, message.text));
  if (staff && message.id && message.user_id && message.user_id !== session_.user?.id
      && state === "visible") {
    li.append(modActions(message));
  }
  return li;
}

function append(li) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  while (log.children.length > 300) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function markRemoved(li) {
  li.dataset.state = "removed";
  li.className = "removed";
  li.querySelector(".text").textContent = "message removed by a moderator";
  li.querySelector(".mod-actions")?.remove();
}

const REFUSALS = {
  banned: "You are banned from this chat.",
  timed_out: "You are timed out in this chat.",
  slow_mode: "Slow mode is on: wait before sending again.",
  followers_only: "Only followers can chat here. Follow the channel to chat.",
  blocked: "That message contains a word this channel does not allow.",
  rate_limited: "You are sending messages too fast. Wait a moment.",
  room_busy: "The chat is very busy. Try again in a moment.",
  auth_required: "Sign in to chat.",
  account_deleted: "Your account was deleted.",
  unavailable: "The message could not be sent. Try again.",
};

function refused(code, message, clientId) {
  const li = clientId && pending.get(clientId);
  if (li) { li.remove(); pending.delete(clientId); }
  chatStatus(REFUSALS[code] || message);
  if (code === "banned" || code === "account_deleted") setCanPost(false);
  if (code === "timed_out" || code === "rate_limited" || code === "slow_mode") {
    blockedUntil = Date.now() + 3000;
    setCanPost(canPost);
    setTimeout(() => setCanPost(canPost), 3100);
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "joined":
      setCanPost(frame.can_post);
      if (!session_.user) chatStatus("Sign in to chat.");
      else if (!frame.can_post) chatStatus("You cannot post in this chat.");
      else chatStatus(frame.slow_mode_s ? `Slow mode: one message every ${frame.slow_mode_s} s.` : "");
      log.dataset.joined = "1";
      break;
    case "batch":
      if (frame.skipped) append(h("li", { class: "hint" }, `${frame.skipped} messages skipped`));
      for (const message of frame.messages) {
        if (lines.has(message.id)) continue;
        const li = line(message, "visible");
        lines.set(message.id, li);
        append(li);
      }
      break;
    case "ack": {
      const li = pending.get(frame.id);
      pending.delete(frame.id);
      if (!li) break;
      if (frame.status === "held") {
        li.dataset.state = "held";
        li.className = "held";
        li.dataset.messageId = frame.message_id;
        li.querySelector(".text").append(" (held for review: only you see it)");
        lines.set(frame.message_id, li);
      } else if (lines.has(frame.message_id)) {
        li.remove(); // the batch brought it already
      } else {
        li.dataset.state = "visible";
        li.className = "";
        li.dataset.messageId = frame.message_id;
        lines.set(frame.message_id, li);
      }
      break;
    }
    case "deleted": {
      const li = lines.get(frame.message_id);
      if (li) markRemoved(li);
      break;
    }
    case "notice":
      if (frame.kind === "settings") {
        chatStatus(frame.slow_mode_s ? `Slow mode: one message every ${frame.slow_mode_s} s.` : "");
      } else if (frame.kind === "ban") {
        setCanPost(false);
        chatStatus(frame.text || REFUSALS.banned);
      } else if (frame.kind === "timeout") {
        chatStatus(frame.text || REFUSALS.timed_out);
      } else if (frame.text) {
        chatStatus(frame.text);
      }
      break;
    case "error":
      refused(frame.code, frame.message, frame.id);
      break;
    default:
      break;
  }
}

async function connectChat(attempt = 0) {
  if (!session_.chatUrl) return;
  let token = null;
  if (session_.user) {
    try { token = await chatToken(); } catch (err) {
      if (err instanceof ApiFailure && err.status === 401) {
        chatStatus("Your session expired. Sign in again to chat.");
      }
    }
  }
  socket = new WebSocket(session_.chatUrl);
  socket.addEventListener("open", () => {
    attempt = 0;
    const join = { v: 1, type: "join", room: streamId };
    if (token) join.token = token;
    socket.send(JSON.stringify(join));
  });
  socket.addEventListener("message", (event) => {
    try { onFrame(JSON.parse(event.data)); } catch (_) { /* not JSON */ }
  });
  socket.addEventListener("close", (event) => {
    setCanPost(false);
    socket = null;
    if (event.code === 4001) {
      if (!retriedAuth) { retriedAuth = true; connectChat(); return; }
      chatStatus("Your session expired. Sign in again to chat.");
      return;
    }
    if (event.code === 1008) {  // policy: banned, flooding, account deleted
      chatStatus(/ban/i.test(event.reason) ? REFUSALS.banned
        : event.reason || "The chat closed this connection (banned or flooding).");
      log.dataset.closed = /ban/i.test(event.reason) ? "banned" : "policy";
      return;
    }
    chatStatus("Chat disconnected. Reconnecting…");
    const delay = Math.min(30000, 1000 * 2 ** attempt);
    setTimeout(() => connectChat(attempt + 1), delay);
  });
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || !socket || socket.readyState !== WebSocket.OPEN || !canPost) return;
  const id = `c-${Date.now().toString(36)}-${counter++}`;
  const li = line({ username: session_.user.username, text }, "pending");
  li.className = "pending";
  pending.set(id, li);
  append(li);
  socket.send(JSON.stringify({ v: 1, type: "send", id, text }));
  input.value = "";
});
setInterval(() => {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ v: 1, type: "ping" }));
  }
}, 30000);

// --- start ----------------------------------------------------------------------------

try {
  await loadStream();
  showStreamer().catch(() => {});
  staff = await findStaff();
  if (staff) {
    const link = $("moderate-link");
    link.href = `/moderation?channel=${encodeURIComponent(stream.user_id)}`;
    link.hidden = false;
  }
  if (stream.status === "live") startPlayer();
  else {
    playerState(offlineText(stream.status));
    if (stream.status !== "ended") retryLater();
  }
  connectChat();
} catch (err) {
  $("stream-title").textContent = err instanceof ApiFailure && err.status === 404
    ? "No such stream" : "This stream could not be loaded";
  $("channel-error").textContent = explain(err);
  $("channel-error").hidden = false;
  playerState("Nothing to play.");
}
document.body.dataset.ready = "1";
