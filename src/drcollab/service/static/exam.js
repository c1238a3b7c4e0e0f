// drcollab exam page: the photos of one patient, each with its eye, sent together to POST /exam; the patient's
// decision on top, then each eye's photos with their results and lesion overlays.
"use strict";

const $ = (id) => document.getElementById(id);
const EYE_WORDS = [[/(^|[^a-z])(left|os)([^a-z]|$)/i, "left"], [/(^|[^a-z])(right|od)([^a-z]|$)/i, "right"]];
const DECISION_CLASS = { "refer": "refer", "not referable": "ok" }; // anything else: cannot grade
const exam = { photos: [], maxUploadMb: null, maxQueue: null, threshold: null };

function setState(state, message) {
  document.body.dataset.state = state;
  $("status").textContent = message || "";
  $("status").className = "status " + state;
}

// "10_left.jpeg" -> "left", "OD-2.png" -> "right"; "" when the name names no eye, or both.
function eyeFromName(name) {
  const stem = name.replace(/\.[^.]+$/, "");
  const found = EYE_WORDS.filter(([re]) => re.test(stem)).map(([, eye]) => eye);
  return found.length === 1 ? found[0] : "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function eyeSelect(photo) {
  const select = element("select");
  select.setAttribute("aria-label", "eye of " + photo.file.name);
  for (const [value, label] of [["", "choose…"], ["left", "left"], ["right", "right"]]) {
    const option = element("option", "", label);
    option.value = value;
    select.append(option);
  }
  select.value = photo.eye;
  select.addEventListener("change", () => { photo.eye = select.value; listPhotos(); });
  return select;
}

function listPhotos() {
  const body = $("photo-list");
  body.replaceChildren();
  exam.photos.forEach((photo, k) => {
    const row = element("tr");
    const remove = element("button", "link", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => { exam.photos.splice(k, 1); listPhotos(); });
    const eye = element("td");
    eye.append(eyeSelect(photo));
    const action = element("td");
    action.append(remove);
    row.append(element("td", "name", photo.file.name), element("td", "size",
      (photo.file.size / 1048576).toFixed(1) + " MB"), eye, action);
    body.append(row);
  });
  $("chosen").hidden = exam.photos.length === 0;
  const missing = exam.photos.filter((p) => !p.eye).length;
  $("grade-exam").disabled = exam.photos.length === 0 || missing > 0;
  if (missing) setState("idle", "Choose the eye of " + missing + " photo" + (missing > 1 ? "s" : "") + ".");
  else if (exam.photos.length) setState("idle", "");
}

function addFiles(files) {
  for (const file of files) exam.photos.push({ file, eye: eyeFromName(file.name) });
  $("exam").hidden = true;
  listPhotos();
}

function percent(p) {
  return (100 * p).toFixed(1) + "%";
}

function gradeText(item) {
  if (item.grade === null) return "";
  const dme = item.dme === null ? "" : " · DME " + item.dme + " (" + item.dme_name + ")";
  return "grade " + item.grade + " (" + item.grade_name + ")" + dme;
}

function eyeLine(eye, answer) {
  const line = element("li", "eye " + (DECISION_CLASS[eye.decision] || "regrade"));
  const n = eye.photos.length + " photo" + (eye.photos.length > 1 ? "s" : "");
  line.append(element("strong", "", eye.eye[0].toUpperCase() + eye.eye.slice(1) + " eye: " + eye.decision));
  const why = eye.decision === "cannot grade" ? "no gradable photo"
    : gradeText(eye) + " · P(" + answer.referable_rule + ") " + percent(eye.referable_probability);
  line.append(element("span", "", " · " + why + " · " + n));
  return line;
}

function photoCard(photo) {
  const card = element("figure", "card");
  card.dataset.eye = photo.eye;
  const picture = photo.overlay_png || photo.image_png;
  if (picture) {
    const img = element("img");
    img.src = "data:image/png;base64," + picture;
    img.alt = photo.name + (photo.overlay_png ? " with its lesion overlay" : "");
    card.append(img);
  } else {
    card.append(element("div", "no-image", "not decoded"));
  }
  const caption = element("figcaption");
  caption.append(element("div", "card-name", photo.name + " · " + photo.eye));
  if (photo.gradable && photo.referable !== null) {
    caption.append(element("div", "card-grade", gradeText(photo)));
    caption.append(element("div", "badge " + (photo.referable ? "refer" : "ok"),
      (photo.referable ? "Referable" : "Not referable") + " · P = " + percent(photo.referable_probability)));
  } else {
    caption.append(element("div", "card-ungradable", "Cannot be graded: " + photo.ungradable_reasons.join("; ")));
  }
  card.append(caption);
  return card;
}

function show(answer) {
  const box = $("decision");
  box.className = "decision " + (DECISION_CLASS[answer.decision] || "regrade");
  $("decision-text").textContent = answer.decision[0].toUpperCase() + answer.decision.slice(1);
  const worst = answer.grade === null ? "" : "worst " + gradeText(answer) + " · ";
  const at = exam.threshold === null ? "" : " ≥ " + percent(exam.threshold);
  $("decision-detail").textContent = worst + "referred when P(" + answer.referable_rule + ")" + at + " in any eye";
  $("eye-list").replaceChildren(...answer.eyes.map((eye) => eyeLine(eye, answer)));
  const grid = $("photos");
  grid.replaceChildren();
  for (const eye of answer.eyes) {
    const column = element("section", "eye-column");
    column.append(element("h2", "", eye.eye[0].toUpperCase() + eye.eye.slice(1) + " eye"));
    for (const k of eye.photos) column.append(photoCard(answer.photos[k]));
    grid.append(column);
  }
  $("rules").textContent = "Rules: " + answer.rules.join("; ") + ".";
  $("exam").hidden = false;
}

async function gradeExam() {
  const total = exam.photos.reduce((sum, p) => sum + p.file.size, 0);
  if (exam.maxUploadMb !== null && total > exam.maxUploadMb * 1048576) {
    setState("error", "The photos together are larger than the " + exam.maxUploadMb + " MB upload limit.");
    return;
  }
  const form = new FormData();
  for (const photo of exam.photos) {
    form.append("files", photo.file, photo.file.name);
    form.append("eyes", photo.eye);
  }
  setState("busy", "Grading " + exam.photos.length + " photos …");
  $("grade-exam").disabled = true;
  try {
    const response = await fetch("/exam", { method: "POST", body: form });
    const answer = await response.json();
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
      setState("error", detail + " (HTTP " + response.status + ")");
      return;
    }
    show(answer);
    setState("ready", "Patient: " + answer.decision);
  } catch (err) {
    setState("error", err.message);
  } finally {
    $("grade-exam").disabled = exam.photos.some((p) => !p.eye);
  }
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("files").click(); }
  });
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  $("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  $("grade-exam").addEventListener("click", gradeExam);
  $("clear").addEventListener("click", () => { exam.photos = []; $("exam").hidden = true; listPhotos(); });
  fetch("/health")
    .then((r) => r.json())
    .then((h) => {
      exam.maxUploadMb = h.max_upload_mb;
      exam.maxQueue = h.max_queue;
      exam.threshold = h.referable_threshold;
      $("model").textContent = "model " + h.model.name + " · " + h.model.engine + " · " + h.preprocess_size + " px";
      $("hint").textContent = h.formats.join(", ") + "; up to " + h.max_queue + " photos and " + h.max_upload_mb +
        " MB together. The eye is read from a name holding left / right (or OD / OS); choose it for the others.";
    })
    .catch(() => { $("model").textContent = "server not reachable"; });
}

wire();
