// The explorer's page: four panels, each a few functions over the server's JSON API (server.py).
"use strict";

const $ = (id) => document.getElementById(id);
// Matplotlib's tab10, so the maps' colours match the reports' latent maps.
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];

async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)};
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// One request in flight per channel; while it runs, only the newest request waits. Dragging
// or hovering fires far more events than a model can answer; the screen follows the latest.
function channel(send, onError) {
  let busy = false, waiting = null;
  return async function request(args) {
    if (busy) { waiting = args; return; }
    busy = true;
    try { await send(args); } catch (error) { onError(error); }
    busy = false;
    if (waiting !== null) { const next = waiting; waiting = null; request(next); }
  };
}

function say(text) { $("status").textContent = text; }

// ---- Draw ----------------------------------------------------------------------------

const DRAW_DOWNSAMPLE = 5;  // the 280-pixel canvas travels as 56x56 averages

function setUpDrawing(info) {
  const canvas = $("draw-canvas"), ctx = canvas.getContext("2d");
  let drawing = false, last = null;
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  const send = channel(async () => showDrawing(await api("/api/draw", canvasPixels(canvas)), info),
                       (e) => say(`draw: ${e.message}`));
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true; last = at(event); canvas.setPointerCapture(event.pointerId);
    stroke(ctx, last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const next = at(event); stroke(ctx, last, next); last = next; send(null);
  });
  const end = () => { if (drawing) { drawing = false; send(null); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", () => {
    clear();
    for (const id of ["draw-input", "draw-ae", "draw-vae"]) $(id).removeAttribute("src");
    $("probs").replaceChildren();
    drawPosterior(null, null);
  });
  drawPosterior(null, null);
}

function stroke(ctx, from, to) {
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 20; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(from[0], from[1]); ctx.lineTo(to[0], to[1]); ctx.stroke();
}

function canvasPixels(canvas) {
  const k = DRAW_DOWNSAMPLE, width = canvas.width / k, height = canvas.height / k;
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const pixels = new Array(width * height).fill(0);
  for (let y = 0; y < canvas.height; y++)
    for (let x = 0; x < canvas.width; x++)
      pixels[Math.floor(y / k) * width + Math.floor(x / k)] += rgba[(y * canvas.width + x) * 4];
  const scale = 1 / (255 * k * k);
  return {width, height, pixels: pixels.map((v) => Math.round(v * scale * 1000) / 1000)};
}

function showDrawing(seen, info) {
  $("draw-input").src = seen.input;
  if (seen.ae) $("draw-ae").src = seen.ae;
  if (seen.vae) $("draw-vae").src = seen.vae;
  if (seen.probs) showProbabilities(seen.probs);
  drawPosterior(seen.mu || null, seen.sigma || null);
}

function showProbabilities(probs) {
  const top = probs.indexOf(Math.max(...probs));
  $("probs").replaceChildren(...probs.map((p, digit) => {
    const bar = document.createElement("div");
    bar.className = "bar" + (digit === top ? " top" : "");
    bar.dataset.p = p.toFixed(4);
    bar.title = `p(${digit}) = ${p.toFixed(3)}`;
    const fill = document.createElement("div");
    fill.className = "fill"; fill.style.height = `${Math.max(0.5, p * 100)}%`;
    const name = document.createElement("span");
    name.className = "digit-name"; name.textContent = digit;
    bar.append(fill, name);
    return bar;
  }));
}

function drawPosterior(mu, sigma) {
  const canvas = $("posterior"), ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, range = 3.5, y = (v) => h / 2 - (v / range) * (h / 2 - 8);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#eee"; ctx.fillRect(0, y(1), w, y(-1) - y(1));  // the prior's +-1
  ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(w, y(0)); ctx.stroke();
  if (!mu) return;
  const step = w / mu.length;
  mu.forEach((m, i) => {
    const x = (i + 0.5) * step, s = sigma[i];
    ctx.fillStyle = "rgba(74, 120, 194, 0.35)";
    ctx.fillRect(x - step * 0.3, y(m + s), step * 0.6, y(m - s) - y(m + s));
    ctx.fillStyle = "#1f4f9c"; ctx.beginPath(); ctx.arc(x, y(Math.max(-range, Math.min(range, m))), 3, 0, 2 * Math.PI); ctx.fill();
  });
}

// ---- Latent map ------------------------------------------------------------------------

function setUpMap(model, data) {
  const canvas = $(`map-${model}`), ctx = canvas.getContext("2d");
  const xs = data.points.map((p) => p[0]), ys = data.points.map((p) => p[1]);
  const pad = 0.06, x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x1 - x0) * pad, sy = (y1 - y0) * pad;
  const box = {left: x0 - sx, right: x1 + sx, bottom: y0 - sy, top: y1 + sy};
  const toScreen = ([a, b]) => [(a - box.left) / (box.right - box.left) * canvas.width,
                                (box.top - b) / (box.top - box.bottom) * canvas.height];
  const toCode = ([px, py]) => [box.left + px / canvas.width * (box.right - box.left),
                                box.top - py / canvas.height * (box.top - box.bottom)];
  const base = document.createElement("canvas");  // the scatter, drawn once
  base.width = canvas.width; base.height = canvas.height;
  const b = base.getContext("2d");
  data.points.forEach((p, i) => {
    const [px, py] = toScreen(p);
    b.fillStyle = data.labels[i] >= 0 ? COLOURS[data.labels[i] % 10] : "#555";
    b.globalAlpha = 0.75; b.beginPath(); b.arc(px, py, 2.4, 0, 2 * Math.PI); b.fill();
  });
  const redraw = (marks) => {
    ctx.clearRect(0, 0, canvas.width, canvas.height); ctx.drawImage(base, 0, 0);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
    if (marks.length === 2) {
      ctx.beginPath(); ctx.moveTo(...marks[0]); ctx.lineTo(...marks[1]); ctx.stroke();
    }
    for (const m of marks) { ctx.beginPath(); ctx.arc(m[0], m[1], 5, 0, 2 * Math.PI); ctx.stroke(); }
  };
  redraw([]);
  const decode = channel(async (point) => {
    const answer = await api("/api/decode", {model, points: [point]});
    $(`map-${model}-decoded`).src = answer.images[0];
  }, (e) => say(`decode: ${e.message}`));
  const strip = channel(async ([start, end]) => {
    const answer = await api("/api/interpolate", {model, start, end, steps: 8});
    $(`map-${model}-strip`).src = answer.strip;
  }, (e) => say(`interpolate: ${e.message}`));
  const at = (event) => {
    const r = canvas.getBoundingClientRect();
    return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
  };
  let start = null;
  canvas.addEventListener("pointerdown", (event) => {
    start = at(event); canvas.setPointerCapture(event.pointerId);
    redraw([start]); decode(toCode(start));
  });
  canvas.addEventListener("pointermove", (event) => {
    const here = at(event);
    if (start) { redraw([start, here]); } else { redraw([here]); }
    decode(toCode(here));
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!start) return;
    const end = at(event);
    if (Math.hypot(end[0] - start[0], end[1] - start[1]) > 6) strip([toCode(start), toCode(end)]);
    start = null;
  });
}

function setUpLegend() {
  $("legend").replaceChildren(...COLOURS.map((colour, digit) => {
    const item = document.createElement("span");
    item.style.setProperty("--colour", colour); item.textContent = digit;
    return item;
  }));
}

// ---- Sliders ---------------------------------------------------------------------------

function setUpSliders(info) {
  const values = new Array(info.sliders).fill(0);
  const slide = channel(async () => { $("slider-image").src = (await api("/api/slide", {values})).image; },
                        (e) => say(`sliders: ${e.message}`));
  const inputs = values.map((_, i) => {
    const label = document.createElement("label");
    label.textContent = `direction ${i + 1}`; label.htmlFor = `slider-${i}`;
    const input = document.createElement("input");
    Object.assign(input, {type: "range", id: `slider-${i}`, min: -info.slider_range, max: info.slider_range,
                          step: 0.1, value: 0});
    const shown = document.createElement("output");
    shown.textContent = "0.0";
    input.addEventListener("input", () => {
      values[i] = Number(input.value); shown.textContent = values[i].toFixed(1); slide(null);
    });
    $("sliders").append(label, input, shown);
    return [input, shown];
  });
  $("sliders-reset").addEventListener("click", () => {
    inputs.forEach(([input, shown], i) => { input.value = 0; shown.textContent = "0.0"; values[i] = 0; });
    slide(null);
  });
  slide(null);
}

// ---- Diffusion player ------------------------------------------------------------------

const FRAME_MS = 350;

function setUpPlayer(info) {
  const runs = Object.fromEntries(info.denoisers.map((d) => [d.name, d]));
  const runSelect = $("dn-run"), samplerSelect = $("dn-sampler"), steps = $("dn-steps");
  let frames = [], timer = null;
  runSelect.replaceChildren(...info.denoisers.map((d) => new Option(`${d.name} (${d.kind}${d.conditional ? ", conditional" : ""})`, d.name)));
  $("dn-label").replaceChildren(...Array.from({length: info.classes}, (_, i) => new Option(String(i), String(i))));
  const chooseRun = () => {
    const run = runs[runSelect.value];
    samplerSelect.replaceChildren(...Object.keys(run.samplers).map((s) => new Option(s, s)));
    samplerSelect.value = run.sampler;
    steps.value = run.steps || "";
    for (const el of document.querySelectorAll(".conditional")) el.hidden = !run.conditional;
    if (run.conditional) $("dn-guidance").value = run.guidance ?? 0;
    chooseSampler();
  };
  const chooseSampler = () => {
    const sampler = runs[runSelect.value].samplers[samplerSelect.value];
    steps.disabled = !sampler.stepped;
    if (!sampler.stepped) { steps.value = ""; steps.placeholder = "all T"; return; }
    steps.max = sampler.max_steps;
    if (!steps.value) steps.value = Math.min(6, sampler.max_steps);
    else if (Number(steps.value) > sampler.max_steps) steps.value = sampler.max_steps;
  };
  runSelect.addEventListener("change", chooseRun);
  samplerSelect.addEventListener("change", chooseSampler);
  const show = (i) => {
    const frame = frames[i];
    $("dn-x").src = frame.x; $("dn-x0").src = frame.x0;
    $("dn-step").value = i;
    $("dn-step-name").textContent = `${frame.name}  (${i} of ${frames.length - 1})`;
    $("diffusion-panel").dataset.state = i === frames.length - 1 ? "done" : "playing";
  };
  const stop = () => { if (timer) clearInterval(timer); timer = null; $("dn-play").textContent = "Play"; };
  const play = () => {
    stop();
    let i = Number($("dn-step").value) >= frames.length - 1 ? 0 : Number($("dn-step").value);
    show(i); $("dn-play").textContent = "Pause";
    timer = setInterval(() => { i += 1; show(i); if (i >= frames.length - 1) stop(); }, FRAME_MS);
  };
  $("diffusion-form").addEventListener("submit", async (event) => {
    event.preventDefault(); stop();
    const run = runs[runSelect.value], sampler = run.samplers[samplerSelect.value];
    const body = {run: run.name, seed: Number($("dn-seed").value), sampler: samplerSelect.value};
    if (sampler.stepped) body.steps = Number(steps.value);
    if (run.conditional) { body.label = Number($("dn-label").value); body.guidance = Number($("dn-guidance").value); }
    $("dn-error").textContent = ""; $("dn-sample").disabled = true;
    try {
      frames = (await api("/api/denoise", body)).frames;
      $("dn-step").max = frames.length - 1; $("dn-step").disabled = false; $("dn-play").disabled = false;
      show(0); play();
    } catch (error) {
      $("dn-error").textContent = error.message;
    } finally {
      $("dn-sample").disabled = false;
    }
  });
  $("dn-play").addEventListener("click", () => (timer ? stop() : play()));
  $("dn-step").addEventListener("input", () => { stop(); show(Number($("dn-step").value)); });
  chooseRun();
}

// ---- start -----------------------------------------------------------------------------

function missing(panelId, text) {
  const note = document.createElement("p");
  note.className = "missing"; note.textContent = text;
  $(panelId).append(note);
}

async function start() {
  const info = await api("/api/info");
  setUpLegend();
  if (info.ae || info.vae || info.classifier) setUpDrawing(info); else missing("draw-panel", "no AE, VAE or classifier loaded");
  const maps = await api("/api/latent-map");
  for (const model of ["ae", "vae"]) {
    if (maps[model]) setUpMap(model, maps[model]);
    else missing("map-panel", `no ${model.toUpperCase()} run loaded`);
  }
  if (info.vae) setUpSliders(info); else missing("slider-panel", "no VAE run loaded");
  if (info.denoisers.length) setUpPlayer(info); else missing("diffusion-panel", "no DDPM or flow run loaded");
  const parts = [info.ae && `AE (latent ${info.ae.latent_dim})`, info.vae && `VAE (latent ${info.vae.latent_dim})`,
                 info.denoisers.length && `${info.denoisers.length} denoising run(s)`].filter(Boolean);
  say(`ready: ${parts.join(", ")}`);
  document.body.dataset.ready = "true";
}

start().catch((error) => say(`could not start: ${error.message}`));
