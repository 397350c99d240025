// The creator dashboard (/dashboard): create a stream, the stream key shown once (copy,
// rotate with confirmation), the RTMP URL with ffmpeg and OBS how-tos, live health from
// GET /api/streams/{id}/analytics refreshed every few seconds, and analytics charts.
//
// The key never goes to storage of any kind (not localStorage, not the URL): it lives in
// the page's inputs until the page is left, as the API shows it only once.

import { api, boot, explain } from "./app.js";
import { drawChart, formatNumber, series } from "./charts.js";

const HEALTH_REFRESH_MS = 3000;
const CHARTS_EVERY = 5; // the whole-stream charts every 5th refresh (15 s): a longer read
const HEALTH_WINDOW_MS = 5 * 60 * 1000; // live health reads the last five minutes, raw
const STALE_HEALTH_S = 30; // an ingest sample older than this: the publisher is gone

const $ = (id) => document.getElementById(id);

const state = {
  user: null, streams: [], selected: null, timer: null, busy: false, analytics: null,
  refreshes: 0,
};

function showError(where, message) {
  const box = $(where);
  box.textContent = message;
  box.hidden = !message;
}

function errorText(err) {
  return explain(err);
}

function say(message) {
  $("dash-status").textContent = message;
}

// -- key panel ----------------------------------------------------------------------------

// A keyframe every 2 s whatever the source's frame rate (the segments are 2 s long).
export function ffmpegCommand(publishUrl) {
  return "ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -tune zerolatency " +
    "-force_key_frames \"expr:gte(t,n_forced*2)\" -sc_threshold 0 -b:v 3000k " +
    "-c:a aac -b:a 128k -f flv " +
    `"${publishUrl}"`;
}

function revealKey(body) {
  $("stream-key").value = body.stream_key;
  $("ingest-url").value = body.ingest_url;
  $("publish-url").value = body.publish_url;
  $("ffmpeg-cmd").textContent = ffmpegCommand(body.publish_url);
  $("copy-status").textContent = "";
  $("key-panel").hidden = false;
  $("key-h").focus();
}

async function copyFrom(id) {
  const node = $(id);
  const text = node.value ?? node.textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copy-status").textContent = "Copied.";
  } catch {
    // no clipboard permission (an http page, a locked-down browser): select it instead
    if (node.select) node.select();
    $("copy-status").textContent = "Could not copy: it is selected, press Ctrl+C.";
  }
}

// -- streams --------------------------------------------------------------------------------

function statusLabel(stream) {
  return { created: "Waiting for your encoder", live: "Live", ended: "Ended" }[stream.status]
    ?? stream.status;
}

function renderStreams() {
  const list = $("stream-list");
  list.replaceChildren();
  $("streams-empty").hidden = state.streams.length > 0;
  for (const stream of state.streams) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "stream-pick";
    button.dataset.streamId = stream.id;
    button.setAttribute("aria-pressed", String(state.selected?.id === stream.id));
    const title = document.createElement("span");
    title.className = "stream-title";
    title.textContent = stream.title;
    const badge = document.createElement("span");
    badge.className = `badge badge-${stream.status}`;
    badge.textContent = statusLabel(stream);
    const when = document.createElement("span");
    when.className = "hint";
    when.textContent = `${stream.category} · created ${new Date(stream.created_at)
      .toLocaleString("en-GB")}`;
    button.append(title, " ", badge, " ", when);
    button.addEventListener("click", () => select(stream.id));
    item.append(button);
    list.append(item);
  }
}

async function loadStreams() {
  const page = await api("GET",
                         `/api/streams?user_id=${encodeURIComponent(state.user.id)}&limit=20`);
  state.streams = page.items;
  if (state.selected) {
    state.selected = state.streams.find((s) => s.id === state.selected.id) ?? state.selected;
  }
  renderStreams();
}

async function select(streamId) {
  state.selected = state.streams.find((s) => s.id === streamId) ?? null;
  renderStreams();
  if (!state.selected) return;
  state.refreshes = 0;  // a new stream's charts at once
  $("stream-panel").hidden = false;
  $("stream-h").textContent = state.selected.title;
  $("stream-channel").href = `/channel/${encodeURIComponent(state.selected.id)}`;
  for (const id of ["h-viewers", "h-bitrate", "h-fps", "h-keyframe", "h-lag", "h-load",
                    "h-shed", "h-dropped"]) $(id).textContent = "–";
  await refresh();
}

// -- live health and analytics ----------------------------------------------------------

function renderStream(stream) {
  state.selected = stream;
  const badge = $("stream-state");
  badge.textContent = statusLabel(stream);
  badge.className = `badge badge-${stream.status}`;
  $("stop-button").disabled = stream.status === "ended";
  $("rotate-button").disabled = stream.status === "ended";
  $("h-viewers").textContent = stream.status === "live" ? String(stream.viewer_count) : "–";
}

function renderHealth(health, stream) {
  const latest = health.length ? health[health.length - 1] : null;
  const ageS = latest ? (Date.now() - Date.parse(latest.at)) / 1000 : Infinity;
  const note = $("health-note");
  if (stream.status === "ended") {
    note.textContent = "The stream has ended.";
  } else if (!latest || ageS > STALE_HEALTH_S) {
    note.textContent = stream.status === "live"
      ? "No ingest report for a while: is your encoder still sending?"
      : "Offline: start your encoder with the publish URL to go live.";
  } else {
    note.textContent = "";
  }
  if (!latest) return;
  $("h-bitrate").textContent = `${formatNumber(latest.ingest_kbps, 0)} kbps`;
  $("h-fps").textContent = `${formatNumber(latest.frame_rate_fps)} fps`;
  // 0 until the ingest has seen two keyframes
  $("h-keyframe").textContent = latest.keyframe_interval_s > 0
    ? `${formatNumber(latest.keyframe_interval_s, 2)} s` : "measuring…";
  $("h-lag").textContent = `${formatNumber(latest.transcoder_behind_s, 2)} s`;
  $("h-load").textContent = formatNumber(latest.transcoder_load, 2);
  $("h-shed").textContent = latest.shed_rungs.length ? latest.shed_rungs.join(", ") : "none";
  $("h-dropped").textContent = String(latest.dropped_frames);
}

function renderAnalytics(body) {
  state.analytics = body;
  const s = body.summary;
  $("s-peak").textContent = String(s.peak_viewers);
  $("s-unique").textContent = String(s.unique_viewers);
  $("s-watch").textContent = `${formatNumber(s.watch_minutes)} min`;
  $("s-chat").textContent = `${s.chat_messages} (${formatNumber(s.chat_messages_per_minute)}/min)`;
  const renditions = Object.entries(s.viewers_by_rendition ?? {})
    .sort(([, a], [, b]) => b - a).map(([name, n]) => `${name}: ${n}`);
  $("s-renditions").textContent = renditions.length ? renditions.join(", ") : "–";
  const charts = [
    ["c-viewers", series(body.viewers, "concurrent"),
     { label: "Concurrent viewers", unit: "viewers" }],
    ["c-chat", series(body.chat, "messages_per_minute"),
     { label: "Chat messages per minute", unit: "messages/min", kind: "bars" }],
    ["c-bitrate", series(body.health, "ingest_kbps"),
     { label: "Ingest bitrate", unit: "kbps" }],
  ];
  for (const [id, points, options] of charts) {
    $(`${id}-cap`).textContent = drawChart($(id), points, options);
  }
}

async function refresh() {
  const stream = state.selected;
  if (!stream || state.busy) return;
  state.busy = true;
  try {
    const fresh = await api("GET", `/api/streams/${stream.id}`);
    renderStream(fresh);
    const listed = state.streams.findIndex((s) => s.id === fresh.id);
    if (listed >= 0 && state.streams[listed].status !== fresh.status) {
      state.streams[listed] = fresh;
      renderStreams();
    }
    if (fresh.status === "created") {
      renderHealth([], fresh);
      renderAnalytics({ summary: emptySummary(), viewers: [], chat: [], health: [] });
    } else {
      // an explicit `to`: an ended stream's default range ends a minute after it did
      const now = Date.now();
      const from = new Date(now - HEALTH_WINDOW_MS).toISOString();
      const to = new Date(now).toISOString();
      const charts = state.refreshes % CHARTS_EVERY === 0 || fresh.status !== stream.status;
      const [recent, full] = await Promise.all([
        api("GET", `/api/streams/${stream.id}/analytics?from=${encodeURIComponent(from)}` +
            `&to=${encodeURIComponent(to)}&resolution=raw`),
        charts ? api("GET", `/api/streams/${stream.id}/analytics`) : null,
      ]);
      renderHealth(recent.health, fresh);
      if (full) renderAnalytics(full);
      state.refreshes += 1;
    }
    $("health-updated").textContent =
      `Updated ${new Date().toLocaleTimeString("en-GB")}.`;
    showError("dash-error", "");
  } catch (err) {
    showError("dash-error", `Could not refresh the stream's health: ${errorText(err)}`);
  } finally {
    state.busy = false;
  }
}

function emptySummary() {
  return { peak_viewers: 0, unique_viewers: 0, watch_minutes: 0, chat_messages: 0,
           chat_messages_per_minute: 0 };
}

// -- actions --------------------------------------------------------------------------------

function parseTags(text) {
  return text.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean);
}

async function create(event) {
  event.preventDefault();
  const form = event.target;
  showError("create-error", "");
  // by id: `form.title` would be the form's own title attribute
  const [titleInput, categoryInput] = [$("title"), $("category")];
  const title = titleInput.value.trim();
  const category = categoryInput.value.trim();
  const missing = [];
  for (const [input, value] of [[titleInput, title], [categoryInput, category]]) {
    input.setAttribute("aria-invalid", String(!value));
    if (!value) missing.push(input.labels[0].textContent.trim());
  }
  if (missing.length) {
    showError("create-error", `Please fill in: ${missing.join(", ")}.`);
    (title ? categoryInput : titleInput).focus();
    return;
  }
  const button = $("create-button");
  button.disabled = true;
  try {
    const body = await api("POST", "/api/streams/start",
                           { title, category, tags: parseTags($("tags").value) });
    form.reset();
    revealKey(body);
    say(`Stream “${body.stream.title}” created. Copy your key: it is shown only once.`);
    await loadStreams();
    await select(body.stream.id);
  } catch (err) {
    showError("create-error", `Could not create the stream: ${errorText(err)}`);
  } finally {
    button.disabled = false;
  }
}

async function rotate() {
  const dialog = $("rotate-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  $("rotate-cancel").focus();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  if (dialog.returnValue !== "rotate" || !state.selected) {
    $("rotate-button").focus();
    return;
  }
  try {
    const body = await api("POST", `/api/streams/${state.selected.id}/key`);
    revealKey(body);
    say("New stream key made: the old one no longer works. Copy it: it is shown only once.");
  } catch (err) {
    showError("dash-error", `Could not rotate the key: ${errorText(err)}`);
  }
}

async function stop() {
  if (!state.selected) return;
  try {
    renderStream(await api("POST", `/api/streams/${state.selected.id}/stop`));
    say("Stream ended.");
    await loadStreams();
  } catch (err) {
    showError("dash-error", `Could not end the stream: ${errorText(err)}`);
  }
}

async function loadCategories() {
  try {
    const body = await api("GET", "/api/categories?limit=50");
    const list = $("categories");
    for (const c of body.items ?? []) {
      const option = document.createElement("option");
      option.value = c.category;
      list.append(option);
    }
  } catch {
    // suggestions only
  }
}

async function main() {
  const session = await boot();
  state.user = session.user;
  if (!state.user) {
    $("signed-out").hidden = false;
    $("signin-link").href = `/login?next=${encodeURIComponent("/dashboard")}`;
    $("signin-link").focus();
    return;
  }
  $("dash-body").hidden = false;
  $("create-form").addEventListener("submit", create);
  $("rotate-button").addEventListener("click", rotate);
  $("stop-button").addEventListener("click", stop);
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => copyFrom(button.dataset.copy));
  }
  loadCategories();
  try {
    await loadStreams();
    const open = state.streams.find((s) => s.status !== "ended");
    if (open) await select(open.id);
  } catch (err) {
    showError("dash-error", `Could not load your streams: ${errorText(err)}`);
  }
  state.timer = setInterval(refresh, HEALTH_REFRESH_MS);
  // charts are drawn at their shown width: again when it changes (three small SVGs)
  window.addEventListener("resize", () => {
    if (state.analytics) renderAnalytics(state.analytics);
  });
  document.body.dataset.ready = "1";
}

main();
