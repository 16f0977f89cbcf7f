// The photo page: upload, then the photo with its faces boxed and a chart per face.
"use strict";
document.getElementById("upload").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = document.getElementById("photo").files[0];
  const message = document.getElementById("message");
  if (!file) return;
  message.className = "note"; message.textContent = "Labelling…";
  const form = new FormData(); form.append("photo", file);
  const response = await fetch("/api/predict", {method: "POST", body: form, credentials: "same-origin"});
  const result = await response.json();
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
