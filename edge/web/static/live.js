// The live page: device state and faces every second, events as they happen (SSE).
"use strict";
let preview = null, drawn = false;
const timeline = document.getElementById("timeline");

function legend() {
  const box = document.getElementById("legend");
  for (const [emotion, c] of Object.entries(COLOURS)) {
    box.append(el("span", {style: `--c:${c}`}, emotion));
  }
}

function setView(state) {
  if (preview === state.preview) return;
  preview = state.preview;
  const view = document.getElementById("view");
  view.replaceChildren(preview ? el("img", {src: "/stream.mjpg", alt: "live view"})
                               : el("canvas", {id: "boxes", width: 640, height: 480}));
  document.getElementById("privacy").textContent = preview
    ? "Preview is on: the camera's pixels are served to this page while it is open, and never stored."
    : "Preview is off: no camera pixels leave the device; the boxes above are drawn from face positions only.";
}

function drawFaces(state) {
  if (preview) return;
  const canvas = document.getElementById("boxes");
  const [w, h] = state.size[0] ? state.size : [640, 480];
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
  drawBoxes(ctx, state.faces, 1);
}

function showState(state) {
  document.getElementById("device").textContent = `emotion-edge: ${state.device}`;
  const m = state.model, pct = (v) => v == null ? "–" : `${(v * 100).toFixed(1)} %`;
  document.getElementById("model").textContent =
    `model ${m.id} (${m.mode}); agrees with people (FER+) ${pct(m.accuracy_ferplus_paper)} ` +
    `under the paper protocol, ${pct(m.accuracy_ferplus)} with every face's majority; ` +
    `FER-2013 labels ${pct(m.accuracy_fer2013)}`;
  const s = state.status, rows = [
    ["fps", s.fps ?? "–"], ["source", s.source ?? "ok"], ["faces", state.faces.length],
    ["dropped", s.dropped ?? 0], ["events", s.events ?? 0], ["frame", state.frame]];
  if ("mqtt_connected" in s) rows.push(["MQTT", s.mqtt_connected ? "connected" : "away"],
                                       ["spooled", s.spooled ?? 0]);
  document.getElementById("state").replaceChildren(
    ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  const faces = document.getElementById("faces");
  faces.replaceChildren(...(state.faces.length ? state.faces.map((f) => faceCard(f, `Face #${f.face}`))
                                               : [el("p", {class: "note"}, "No face in view.")]));
}

function drawTimeline(state) {
  const ctx = timeline.getContext("2d"), w = timeline.width, h = timeline.height;
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
  const now = state.time, span = 600;
  for (const p of state.timeline) {
    if (!p.dominant) continue;
    const x = Math.floor(w - (now - p.t) / span * w);
    ctx.fillStyle = colour(p.dominant);
    ctx.fillRect(x, 0, Math.ceil(w / span) + 1, h);
  }
}

async function poll() {
  try {
    const response = await fetch("/api/state", {credentials: "same-origin"});
    if (response.ok) {
      const state = await response.json();
      setView(state); drawFaces(state); showState(state); drawTimeline(state);
    }
  } catch (e) { /* the device restarting: try again next second */ }
  setTimeout(poll, 1000);
}

function addEvent(e) {
  const list = document.getElementById("events");
  const time = new Date(e.ts).toLocaleTimeString();
  list.prepend(el("li", {}, el("time", {}, time),
    `face #${e.face} ${e.type}: ${e.emotion} ${Math.round(e.confidence * 100)}%`));
  while (list.children.length > 100) list.lastChild.remove();
}

function events() {
  // The stream starts with the events the device still keeps, then sends each new one;
  // after a dropped connection the browser resumes from the last id it saw.
  const stream = new EventSource("/api/events/stream");
  stream.addEventListener("emotion", (m) => addEvent(JSON.parse(m.data)));
}

legend(); poll(); events();
