// The moderator dashboard (/moderation?channel=<user id>): a channel's review queue
// (approve or remove held messages), recent chat with quick ban / time-out picks, bans and
// timeouts in force, slow mode, appeals and the audit log.
//
// Who moderates: a channel is its streamer's user id; its owner and the moderators the
// owner appointed (GET /api/channels/{c}/moderators/{user}: 200 or 404) are its staff, and
// every staff route answers 403 to anyone else. Without ?channel= the page opens the
// signed-in user's own channel, which they always moderate.

import { api, boot, explain } from "./app.js";

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const state = { user: null, channel: null, names: new Map(), timer: null, busy: false };

function errorText(err) {
  return explain(err);  // a refusal's own words: e.g. who may decide an appeal
}

function showError(where, message) {
  $(where).textContent = message;
  $(where).hidden = !message;
}

function say(message) {
  $("mod-status").textContent = message;
}

function when(iso) {
  return new Date(iso).toLocaleString("en-GB");
}

/** Learn the usernames of ids the lists show (a profile read each, cached; a deleted
 * account stays an id). */
async function learnNames(ids) {
  const unknown = [...new Set(ids)].filter((id) => id && !state.names.has(id)).slice(0, 20);
  await Promise.all(unknown.map(async (id) => {
    try {
      state.names.set(id, (await api("GET", `/api/users/${encodeURIComponent(id)}`)).username);
    } catch {
      state.names.set(id, null);
    }
  }));
}

function nameOf(userId) {
  const name = state.names.get(userId);
  return name ? `${name} (${userId.slice(0, 8)}…)` : userId;
}

function button(label, onClick, { className = "", describedBy = null } = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  if (describedBy) b.setAttribute("aria-describedby", describedBy);
  b.addEventListener("click", onClick);
  return b;
}

const rendered = new Map(); // list id -> what it shows now

/** Redraw a list only when what it shows changed: the periodic refresh must not take the
 * keyboard focus away from a button in an unchanged list. */
function changed(listId, items) {
  const key = JSON.stringify([items, [...state.names]]);
  if (rendered.get(listId) === key) return false;
  rendered.set(listId, key);
  return true;
}

function renderList(listId, emptyId, items, render) {
  if (!changed(listId, items)) return;
  const list = $(listId);
  list.replaceChildren(...items.map(render));
  $(emptyId).hidden = items.length > 0;
}

function messageItem(message, actions) {
  const li = document.createElement("li");
  li.className = "item";
  li.dataset.messageId = message.id;
  const id = `msg-${message.id}`;
  const text = document.createElement("p");
  text.id = id;
  const author = document.createElement("strong");
  author.textContent = message.username;
  text.append(author, `: ${message.text}`);
  const meta = document.createElement("p");
  meta.className = "hint";
  const reasons = message.moderation?.reasons;
  meta.textContent = when(message.at) +
    (reasons && reasons.length ? ` · held for: ${reasons.join(", ")}` : "");
  const row = document.createElement("div");
  row.className = "actions";
  row.append(...actions(id));
  li.append(text, meta, row);
  return li;
}

function pickUser(message) {
  state.names.set(message.user_id, message.username);
  $("target-user").value = message.user_id;
  $("target-user").focus();
  say(`Selected ${message.username}: choose ban or time out below.`);
}

// -- loading ------------------------------------------------------------------------------

async function loadReview() {
  const page = await api("GET", `/api/channels/${state.channel}/review?limit=50`);
  renderList("review-list", "review-empty", page.items, (m) => messageItem(m, (id) => [
    button("Approve", () => review(m, true), { describedBy: id }),
    button("Remove", () => review(m, false), { className: "danger", describedBy: id }),
    button(`Pick ${m.username}`, () => pickUser(m), { describedBy: id }),
  ]));
}

async function loadChat() {
  const open = [];
  for (const status of ["live", "created"]) {
    const page = await api("GET",
                           `/api/streams?user_id=${state.channel}&status=${status}&limit=5`);
    open.push(...page.items);
  }
  if (open.length === 0) {
    renderList("chat-list", "chat-empty", [], () => null);
    return;
  }
  const history = await api("GET", `/api/streams/${open[0].id}/chat?limit=30`);
  for (const m of history.items) state.names.set(m.user_id, m.username);
  renderList("chat-list", "chat-empty", history.items, (m) => messageItem(m, (id) => [
    button(`Pick ${m.username}`, () => pickUser(m), { describedBy: id }),
    button("Delete", () => deleteMessage(m), { className: "danger", describedBy: id }),
  ]));
}

async function loadBans() {
  const [bans, timeouts] = await Promise.all([
    api("GET", `/api/channels/${state.channel}/bans?limit=50`),
    api("GET", `/api/channels/${state.channel}/timeouts`),
  ]);
  await learnNames([...bans.items, ...timeouts.items].map((b) => b.user_id));
  renderList("ban-list", "bans-empty", bans.items, (b) => {
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.userId = b.user_id;
    const p = document.createElement("p");
    p.id = `ban-${b.id}`;
    p.textContent = `${nameOf(b.user_id)}, banned ${when(b.created_at)}` +
      (b.reason ? `: ${b.reason}` : "");
    li.append(p, button("Unban", () => unban(b.user_id), { describedBy: p.id }));
    return li;
  });
  renderList("timeout-list", "timeouts-empty", timeouts.items, (t) => {
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.userId = t.user_id;
    const p = document.createElement("p");
    p.id = `timeout-${t.user_id}`;
    p.textContent = `${nameOf(t.user_id)}, until ${when(t.until)}` +
      (t.reason ? `: ${t.reason}` : "");
    li.append(p, button("End timeout", () => untimeout(t.user_id), { describedBy: p.id }));
    return li;
  });
}

async function loadAppeals() {
  const page = await api("GET", `/api/channels/${state.channel}/appeals?limit=50`);
  await learnNames(page.items.map((a) => a.user_id));
  renderList("appeal-list", "appeals-empty", page.items, (a) => {
    const li = document.createElement("li");
    li.className = "item";
    const p = document.createElement("p");
    p.id = `appeal-${a.id}`;
    p.textContent = `${nameOf(a.user_id)} (${when(a.created_at)}): “${a.text}”`;
    const row = document.createElement("div");
    row.className = "actions";
    row.append(button("Lift ban", () => decide(a, "lift"), { describedBy: p.id }),
               button("Uphold ban", () => decide(a, "uphold"), { describedBy: p.id }));
    li.append(p, row);
    return li;
  });
}

async function loadAudit() {
  const page = await api("GET", `/api/channels/${state.channel}/audit?limit=50`);
  await learnNames(page.items.flatMap((e) => [e.actor_id, e.target_user_id]));
  if (!changed("audit-body", page.items)) return;
  const body = $("audit-body");
  body.replaceChildren(...page.items.map((e) => {
    const tr = document.createElement("tr");
    for (const value of [when(e.created_at), nameOf(e.actor_id), e.action.replaceAll("_", " "),
                         e.target_user_id ? nameOf(e.target_user_id) : "–", e.reason ?? ""]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    return tr;
  }));
  $("audit-empty").hidden = page.items.length > 0;
}

async function loadSettings() {
  const settings = await api("GET", `/api/channels/${state.channel}/chat-settings`);
  if (document.activeElement !== $("slow-mode")) $("slow-mode").value = settings.slow_mode_s;
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    await loadChat();  // first: it learns the usernames the other lists show
    await Promise.all([loadReview(), loadBans(), loadAppeals(), loadAudit()]);
    showError("mod-error", "");
  } catch (err) {
    if (err && err.status === 403) {
      notModerator();
    } else {
      showError("mod-error", `Could not refresh: ${errorText(err)}`);
    }
  } finally {
    state.busy = false;
  }
}

// -- actions --------------------------------------------------------------------------------

async function act(work, done) {
  showError("action-error", "");
  try {
    await work();
    say(done);
    await refresh();
  } catch (err) {
    showError("mod-error", errorText(err));
  }
}

function review(message, approve) {
  return act(() => api("POST", `/api/channels/${state.channel}/review/${message.id}`,
                       { approve }), approve ? `Approved ${message.username}'s message.`
    : `Removed ${message.username}'s message.`);
}

function deleteMessage(message) {
  return act(() => api("DELETE", `/api/streams/${message.room}/chat/${message.id}`),
             `Deleted ${message.username}'s message.`);
}

function unban(userId) {
  return act(() => api("DELETE", `/api/channels/${state.channel}/bans/${userId}`),
             `Lifted the ban on ${nameOf(userId)}.`);
}

function untimeout(userId) {
  return act(() => api("DELETE", `/api/channels/${state.channel}/timeouts/${userId}`),
             `Ended the timeout of ${nameOf(userId)}.`);
}

function decide(appeal, decision) {
  return act(() => api("POST", `/api/channels/${state.channel}/appeals/${appeal.id}/decision`,
                       { decision }), decision === "lift" ? "Ban lifted." : "Ban upheld.");
}

async function banOrTimeout(event) {
  event.preventDefault();
  const form = event.target;
  const which = event.submitter?.value ?? "timeout";
  const userId = form.user.value.trim();
  form.user.setAttribute("aria-invalid", String(!userId));
  if (!userId) {
    showError("action-error", "Enter the user id of the person to " +
              (which === "ban" ? "ban." : "time out."));
    form.user.focus();
    return;
  }
  const reason = form.reason.value.trim();
  try {
    if (which === "ban") {
      await api("POST", `/api/channels/${state.channel}/bans`, { user_id: userId, reason });
      say(`Banned ${nameOf(userId)}: they can no longer chat here.`);
    } else {
      const duration = Number(form.duration.value);
      await api("POST", `/api/channels/${state.channel}/timeouts`,
                { user_id: userId, duration_s: duration, reason });
      say(`Timed out ${nameOf(userId)} for ${form.duration.selectedOptions[0].text}.`);
    }
    showError("action-error", "");
    form.reset();
    await refresh();
  } catch (err) {
    showError("action-error", errorText(err));
  }
}

async function saveSettings(event) {
  event.preventDefault();
  const value = Number($("slow-mode").value);
  try {
    await api("PATCH", `/api/channels/${state.channel}/chat-settings`, { slow_mode_s: value });
    say(value ? `Slow mode on: one message per ${value} s per user.` : "Slow mode off.");
    await refresh();
  } catch (err) {
    showError("mod-error", `Could not save the chat settings: ${errorText(err)}`);
  }
}

// -- start ----------------------------------------------------------------------------------

function notModerator() {
  clearInterval(state.timer);
  $("mod-body").hidden = true;
  $("not-moderator").hidden = false;
}

/** The channel a value names: a user id is one; a stream id (a channel page's) names its
 * streamer's (/moderation?channel=<stream id> from a channel page works too). */
async function channelOf(value) {
  if (value === state.user.id) return value;
  try {
    await api("GET", `/api/users/${encodeURIComponent(value)}`);
    return value;
  } catch (err) {
    if (!(err && (err.status === 404 || err.status === 400))) throw err;
  }
  try {
    return (await api("GET", `/api/streams/${encodeURIComponent(value)}`)).user_id;
  } catch (err) {
    if (err && (err.status === 404 || err.status === 400)) {
      throw Object.assign(new Error("no such channel"), { status: 404 });
    }
    throw err;
  }
}

async function isStaff(channel) {
  if (channel === state.user.id) return true;
  try {
    await api("GET", `/api/channels/${channel}/moderators/${state.user.id}`);
    return true;
  } catch (err) {
    // 404 not_a_moderator; 404 channel_not_found (no such user) is the caller's to say
    if (err && err.status === 404 && err.code !== "channel_not_found") return false;
    throw err;
  }
}

async function main() {
  const session = await boot();
  state.user = session.user;
  if (!state.user) {
    $("signed-out").hidden = false;
    const here = `${location.pathname}${location.search}`;
    $("signin-link").href = `/login?next=${encodeURIComponent(here)}`;
    return;
  }
  state.names.set(state.user.id, state.user.username);
  const params = new URLSearchParams(location.search);
  $("channel-form").hidden = false;
  let staff;
  try {
    state.channel = await channelOf(params.get("channel")?.trim() || state.user.id);
    $("channel-input").value = state.channel;
    staff = await isStaff(state.channel);
  } catch (err) {
    showError("mod-error", err && err.status === 404 ? "No such channel."
      : `Could not check your role: ${errorText(err)}`);
    return;
  }
  if (!staff) {
    notModerator();
    return;
  }
  const owner = state.channel === state.user.id;
  await learnNames([state.channel]);
  const channelName = state.names.get(state.channel) ?? state.channel;
  $("channel-line").textContent = owner ? "Your channel: you are its owner."
    : `${channelName}'s channel: you are a moderator.`;
  $("mod-body").hidden = false;
  $("action-form").addEventListener("submit", banOrTimeout);
  $("settings-form").addEventListener("submit", saveSettings);
  await Promise.all([refresh(), loadSettings()]);
  state.timer = setInterval(refresh, REFRESH_MS);
  document.body.dataset.ready = "1";
}

main();
