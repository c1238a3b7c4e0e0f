// drcollab web page: upload a fundus photograph to POST /predict and show the answer.
// The overlay is composed here from the per-lesion probability maps, so each lesion can be toggled.
"use strict";

const OPACITY = 0.6; // opacity of a pixel with lesion probability 1 (as in drcollab.viz.overlay_masks)
const $ = (id) => document.getElementById(id);
const view = { base: null, layers: {}, maxUploadMb: null };

function setState(state, message) {
  document.body.dataset.state = state;
  $("status").textContent = message || "";
  $("status").className = "status " + state;
}

function loadImage(b64) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("cannot decode an image in the answer"));
    img.src = "data:image/png;base64," + b64;
  });
}

// A grey probability map -> a canvas of the lesion's colour with alpha = OPACITY * probability.
async function colourLayer(b64, rgb) {
  const img = await loadImage(b64);
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const p = px[i]; // grey: R = G = B = 255 * probability
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
    px[i + 3] = Math.round(OPACITY * p);
  }
  ctx.putImageData(data, 0, 0);
  return canvas;
}

function compose() {
  const canvas = $("overlay");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (view.base === null) return; // refused from its header: never decoded
  ctx.drawImage(view.base, 0, 0);
  for (const box of document.querySelectorAll("#toggles input")) {
    const layer = view.layers[box.dataset.lesion];
    if (box.checked && layer) ctx.drawImage(layer, 0, 0);
  }
}

function drawChart(id, grades, probabilities, best) {
  const chart = $(id);
  chart.replaceChildren();
  probabilities.forEach((p, g) => {
    const row = document.createElement("div");
    row.className = "bar-row" + (g === best ? " best" : "");
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = g + " " + grades[g];
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (100 * p).toFixed(1) + "%";
    track.append(bar);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = (100 * p).toFixed(1) + "%";
    row.append(label, track, value);
    chart.append(row);
  });
}

// An ungradable photo: its reasons are listed and nothing graded is shown.
function showReasons(answer) {
  $("ungradable").hidden = answer.gradable;
  const list = $("reasons");
  list.replaceChildren();
  for (const reason of answer.ungradable_reasons) {
    const item = document.createElement("li");
    item.textContent = reason;
    list.append(item);
  }
}

async function show(answer) {
  const hasGrade = answer.grade !== null;
  $("grade").textContent = hasGrade ? String(answer.grade) : "–";
  $("grade-name").textContent = hasGrade ? answer.grade_name
    : (answer.gradable ? "no grader in this model" : "ungradable");
  showReasons(answer);
  const badge = $("referable");
  if (answer.referable === null) {
    badge.textContent = "";
    badge.className = "badge";
  } else {
    const pct = (100 * answer.referable_probability).toFixed(1) + "%";
    badge.textContent = (answer.referable ? "Referable" : "Not referable") + " · P(" + answer.referable_rule + ") = "
      + pct;
    badge.className = "badge " + (answer.referable ? "refer" : "ok");
  }
  drawChart("chart", answer.grades, answer.probabilities, answer.grade);
  // DME: shown only when the model has a DME head and the photo was graded.
  const hasDme = answer.dme !== null;
  $("dme-box").hidden = !hasDme;
  $("dme-section").hidden = !hasDme;
  $("dme").textContent = hasDme ? String(answer.dme) : "";
  $("dme-name").textContent = hasDme ? answer.dme_name : "";
  drawChart("dme-chart", answer.dme_grades, answer.dme_probabilities, answer.dme);
  view.base = answer.image_png === null ? null : await loadImage(answer.image_png);
  view.layers = {};
  for (const lesion of answer.lesions) {
    const rgb = answer.colours[lesion];
    const box = $("toggle-" + lesion);
    box.parentElement.querySelector(".swatch").style.background = "rgb(" + rgb.join(",") + ")";
    const area = answer.lesion_area[lesion];
    $("area-" + lesion).textContent = area === undefined ? "" : (100 * area).toFixed(2) + "%";
    box.disabled = !(lesion in answer.lesion_png);
    if (lesion in answer.lesion_png) view.layers[lesion] = await colourLayer(answer.lesion_png[lesion], rgb);
  }
  const canvas = $("overlay");
  canvas.width = answer.display_width;
  canvas.height = answer.display_height;
  $("caption").textContent = "Original " + answer.width + " × " + answer.height + " px, shown at " +
    answer.display_width + " × " + answer.display_height + " px";
  compose();
  $("result").hidden = false;
}

async function upload(file) {
  if (view.maxUploadMb !== null && file.size > view.maxUploadMb * 1048576) {
    setState("error", file.name + " is larger than the " + view.maxUploadMb + " MB upload limit.");
    return;
  }
  setState("busy", "Analysing " + file.name + " …");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    const answer = await response.json();
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
      setState("error", file.name + ": " + detail + " (HTTP " + response.status + ")");
      return;
    }
    await show(answer);
    if (answer.gradable) setState("ready", file.name);
    else setState("ungradable", file.name + " cannot be graded: " + answer.ungradable_reasons.join("; "));
  } catch (err) {
    setState("error", file.name + ": " + err.message);
  }
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      $("file").click(); // keyboard users open the file picker from the focused drop zone
    }
  });
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => {
    if (e.target.files.length) upload(e.target.files[0]);
    e.target.value = "";
  });
  for (const box of document.querySelectorAll("#toggles input")) {
    box.addEventListener("change", () => view.base && compose());
  }
  fetch("/health")
    .then((r) => r.json())
    .then((h) => {
      view.maxUploadMb = h.max_upload_mb;
      $("model").textContent = "model " + h.model.name + " · " + h.model.engine + " · " + h.preprocess_size + " px";
      $("hint").textContent = h.formats.join(", ") + "; up to " + h.max_upload_mb + " MB.";
    })
    .catch(() => { $("model").textContent = "server not reachable"; });
}

wire();
