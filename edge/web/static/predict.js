// The photo page: upload, then the photo with its faces boxed and a chart per face.
"use strict";

// A busy device answers 503 with Retry-After: the page waits that long and sends the
// photo again, a few times, instead of leaving the person to press the button again.
const TRIES = 5;

async function upload(file, message) {
  for (let attempt = 1; ; attempt++) {
    const form = new FormData(); form.append("photo", file);
    const response = await fetch("/api/predict", {method: "POST", body: form, credentials: "same-origin"});
    const wait = Number(response.headers.get("Retry-After"));
    if (response.status !== 503 || !(wait > 0) || attempt >= TRIES) return response;
    message.textContent = `The device is busy; trying again in ${wait} s (${attempt + 1} of ${TRIES})…`;
    await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 30) * 1000));
    message.textContent = "Labelling…";
  }
}

document.getElementById("upload").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = document.getElementById("photo").files[0];
  const message = document.getElementById("message");
  if (!file) return;
  message.className = "note"; message.textContent = "Labelling…";
  const response = await upload(file, message);
  const result = await response.json().catch(() => ({error: `The device answered ${response.status}.`}));
  if (!response.ok) {
    message.className = "error"; message.textContent = result.error; return;
  }
  message.textContent = `${result.faces.length} face(s), model ${result.model}`;
  const image = new Image();
  image.onload = () => {
    const canvas = document.getElementById("picture");
    const scale = Math.min(1, 900 / image.width);
    canvas.width = image.width * scale; canvas.height = image.height * scale;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    drawBoxes(ctx, result.faces.map((f, i) => ({...f, face: i + 1})), scale);
    URL.revokeObjectURL(image.src);
  };
  image.src = URL.createObjectURL(file);
  const faces = document.getElementById("faces");
  faces.replaceChildren(...(result.faces.length
    ? result.faces.map((f, i) => faceCard({...f, face: i + 1}, `Face ${i + 1}`))
    : [el("p", {class: "note"}, "No face found in this photo.")]));
});
