// Shared by the live and photo pages: colours, probability bars, face boxes.
"use strict";
const COLOURS = {angry: "#dc2828", disgust: "#3c8c28", fear: "#a03ca0", happy: "#fac828",
                 sad: "#2878c8", surprise: "#faa028", neutral: "#c8c8c8"};
const colour = (emotion) => COLOURS[emotion] || "#4fb3ff";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// One face: its label and a bar per emotion, highest first.
function faceCard(face, title) {
  const card = el("div", {class: "face", "data-face": String(face.face ?? "")},
    el("div", {class: "title"}, `${title}: ${face.emotion} ${Math.round(face.confidence * 100)}%`));
  const ranked = Object.entries(face.probs).sort((a, b) => b[1] - a[1]);
  for (const [emotion, p] of ranked) {
    card.append(el("div", {class: "bar"}, el("span", {}, emotion),
      el("span", {class: "track"}, el("span", {class: "fill",
        style: `display:block;width:${(p * 100).toFixed(1)}%;background:${colour(emotion)}`})),
      el("span", {class: "pct"}, `${Math.round(p * 100)}%`)));
  }
  return card;
}

// Boxes with "#id emotion nn%" labels, scaled from image pixels to the canvas.
function drawBoxes(ctx, faces, scale) {
  ctx.lineWidth = Math.max(2, 3 * scale);
  ctx.font = `${Math.max(12, Math.round(16 * scale))}px system-ui, sans-serif`;
  for (const f of faces) {
    const [x, y, w, h] = f.box.map((v) => v * scale);
    ctx.strokeStyle = ctx.fillStyle = colour(f.emotion);
    ctx.strokeRect(x, y, w, h);
    const label = `${f.face ? "#" + f.face + " " : ""}${f.emotion} ${Math.round(f.confidence * 100)}%`;
    ctx.fillText(label, x, Math.max(14, y - 6));
  }
}
