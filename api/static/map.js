// Land officers' web map: MapLibre GL (vendored into the package from npm, no CDN), local raster tiles only.
// Everything from the server reaches the page as text nodes or attributes, never as parsed HTML.
import { t, LANG, classLabel, CLASS_COLORS, fmt, fmtQ, fmtShare } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const state = { survey: null, products: [], map: null };

/** An element with text content only: nothing that came from the server is parsed as HTML. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v);
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

/** The server's words for an error, in this page's language (codes in messages.json). */
class ServerError extends Error {
  constructor(body, status) {
    super(body.message || t("error.generic"));
    this.code = body.code; this.detail = typeof body.detail === "string" ? body.detail : ""; this.status = status;
  }
}

async function getJSON(url, opts = {}) {
  const r = await fetch(url, { credentials: "same-origin", ...opts, headers: { "Accept-Language": LANG, ...(opts.headers || {}) } });
  if (!r.ok) throw new ServerError(await r.json().catch(() => ({})), r.status);
  return r.json();
}

/** "Алдаа гарлаа: <message>" in the job line; the English detail only as a tooltip. */
function showError(err) {
  const status = $("job-status");
  status.textContent = `${t("error.generic")}: ${err instanceof ServerError ? err.message : t("error.internal")}`;
  status.title = err.detail || "";
}

function layerTitle(p) {
  if (p.kind === "index") return p.name.toUpperCase() + (p.relative ? " (RGB)" : "");
  return t(`layer.${p.kind}`);
}

/** MapLibre's own button titles and labels, from the catalogue (keys "mapctl.<its key>"). */
function mapLocale() {
  const out = {};
  for (const key of ["Map.Title", "NavigationControl.ZoomIn", "NavigationControl.ZoomOut",
    "NavigationControl.ResetBearing", "Popup.Close", "ScaleControl.Meters", "ScaleControl.Kilometers"]) out[key] = t(`mapctl.${key}`);
  return out;
}

function makeMap() {
  if (!window.maplibregl) return null;
  const map = new maplibregl.Map({
    container: "map",
    style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#eef0e6" } }] },
    center: [106.9, 47.9], zoom: 4, attributionControl: false, preserveDrawingBuffer: true,
    locale: mapLocale(),
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  return map;
}

function clearSurveyLayers(map) {
  for (const l of map.getStyle().layers) if (l.id !== "bg") map.removeLayer(l.id);
  for (const s of Object.keys(map.getStyle().sources)) map.removeSource(s);
}

async function showLegend() {
  const box = $("legend");
  box.replaceChildren();
  for (const p of state.products) {
    if (!p.visible || p.kind === "orthomosaic" || p.kind === "reflectance") continue;
    const leg = await getJSON(`/legend/${p.id}?lang=${LANG}`);
    const div = document.createElement("div");
    div.className = "legend";
    div.append(el("strong", {}, leg.title));
    if (leg.units_label) div.append(" ", el("span", { class: "units" }, `(${leg.units_label})`));
    if (leg.type === "classes") {
      for (const c of leg.classes) div.append(el("div", {}, el("i", { style: { background: c.color } }), " ", c.label));
    } else if (leg.type === "ramp") {
      const bar = document.createElement("div");
      bar.className = "ramp";
      bar.style.background = `linear-gradient(to right, ${leg.stops.map((s) => s.color).join(",")})`;
      const ends = document.createElement("div");
      ends.className = "ramp-ends";
      ends.textContent = `${fmt(leg.min)} ${leg.low} … ${leg.high} ${fmt(leg.max)}`;
      div.append(bar, ends);
    }
    box.append(div);
  }
}

function addProductLayers(map) {
  const list = $("layers");
  list.replaceChildren();
  let bounds = null;
  state.products.forEach((p, i) => {
    // imagery first and visible; the condition raster visible; other indices listed, hidden
    p.visible = p.kind === "orthomosaic" || p.kind === "condition" || (p.kind === "index" && p.name === "ndvi");
    // TileJSON gives bounds and zoom range, so the map never asks for tiles outside the product
    map.addSource(`src-${p.id}`, { type: "raster", url: p.tilejson, tileSize: 256 });
    map.addLayer({ id: `lyr-${p.id}`, type: "raster", source: `src-${p.id}`,
                   layout: { visibility: p.visible ? "visible" : "none" }, paint: { "raster-opacity": p.kind === "orthomosaic" ? 1 : 0.85 } });
    const li = document.createElement("li");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.checked = p.visible; cb.id = `cb-${p.id}`;
    cb.addEventListener("change", () => {
      p.visible = cb.checked;
      map.setLayoutProperty(`lyr-${p.id}`, "visibility", cb.checked ? "visible" : "none");
      showLegend();
    });
    const label = document.createElement("label");
    label.htmlFor = cb.id; label.textContent = layerTitle(p);
    li.append(cb, label);
    list.append(li);
  });
  return bounds;
}

async function addParcels(map) {
  const fc = await getJSON(`/collections/parcels/items?limit=1000&survey=${encodeURIComponent(state.survey)}`);
  map.addSource("parcels", { type: "geojson", data: fc, promoteId: "parcel_id" });
  map.addLayer({ id: "parcels-fill", type: "fill", source: "parcels",
    paint: { "fill-color": ["match", ["coalesce", ["get", "condition_class"], 0],
      1, CLASS_COLORS[1], 2, CLASS_COLORS[2], 3, CLASS_COLORS[3], 4, CLASS_COLORS[4], 5, CLASS_COLORS[5], "#888888"],
      "fill-opacity": 0.15 } });
  map.addLayer({ id: "parcels-line", type: "line", source: "parcels", paint: { "line-color": "#222", "line-width": 1.5 } });
  $("layers").append(checkboxItem("cb-parcels", t("layer.parcels"), (on) => {
    for (const id of ["parcels-fill", "parcels-line"]) map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
  }));
  return fc;
}

async function addBoundaries(map) {
  const r = await fetch("/boundaries/soum.geojson");
  if (!r.ok) return; // optional: only when the workspace has soum boundaries
  map.addSource("soums", { type: "geojson", data: await r.json() });
  map.addLayer({ id: "soums-line", type: "line", source: "soums", paint: { "line-color": "#6a3d9a", "line-width": 1, "line-dasharray": [2, 2] } });
  $("layers").append(checkboxItem("cb-soums", t("layer.soums"),
    (on) => map.setLayoutProperty("soums-line", "visibility", on ? "visible" : "none")));
}

function checkboxItem(id, label, onChange) {
  const cb = el("input", { type: "checkbox", id });
  cb.checked = true;
  cb.addEventListener("change", () => onChange(cb.checked));
  return el("li", {}, cb, " ", el("label", { for: id }, label));
}

function fitTo(map, fc) {
  let b = null;
  for (const f of fc.features) {
    const walk = (c) => (typeof c[0] === "number" ? (b = b ? [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])] : [c[0], c[1], c[0], c[1]]) : c.forEach(walk));
    if (f.geometry) walk(f.geometry.coordinates);
  }
  return b;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

/** A small inline-SVG line chart of a parcel's index means over surveys (null when none). */
function sparkline(series) {
  const pts = series.filter((s) => s.mean !== null);
  if (!pts.length) return null;
  const w = 220, h = 60, pad = 6;
  const lo = Math.min(...pts.map((p) => p.mean)), hi = Math.max(...pts.map((p) => p.mean));
  const x = (i) => pad + (pts.length === 1 ? (w - 2 * pad) / 2 : (i * (w - 2 * pad)) / (pts.length - 1));
  const y = (v) => h - pad - (hi === lo ? (h - 2 * pad) / 2 : ((v - lo) * (h - 2 * pad)) / (hi - lo));
  const path = pts.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p.mean).toFixed(1)}`).join(" ");
  const dots = pts.map((p, i) => svg("circle", { cx: x(i).toFixed(1), cy: y(p.mean).toFixed(1), r: 3 },
    svg("title", {}, `${p.date || p.survey}: ${fmt(p.mean, 3)}`)));
  return svg("svg", { class: "chart", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" },
    svg("path", { d: path, fill: "none", stroke: "#1a9850", "stroke-width": 2 }), ...dots);
}

async function showParcel(id, lngLat) {
  const f = await getJSON(`/collections/parcels/items/${encodeURIComponent(id)}?survey=${encodeURIComponent(state.survey)}`);
  const p = f.properties;
  const idx = Object.keys(p).find((k) => k === "ndvi_mean") || Object.keys(p).find((k) => k.endsWith("_mean"));
  const index = idx ? idx.slice(0, -5) : "ndvi";
  const stats = await getJSON(`/parcels/${encodeURIComponent(id)}/stats?index=${index}`).catch(() => ({ series: [] }));
  const cls = p.condition_class;
  const bal = p.balance_su;
  const row = (label, value, cls = undefined) => el("tr", {}, el("th", {}, label), el("td", cls ? { class: cls } : {}, ...[value].flat()));
  const grazing = p.use_group !== "cropland";
  // names, soums and index names come from users' files: text nodes only, never parsed as HTML
  const card = () => el("div", { class: "popup" },
    el("h3", {}, String(p.name || p.parcel_id)),
    el("table", {},
      row(t("parcel.soum"), String(p.soum || ""), "soum"),
      row(t("parcel.area"), fmtQ(p.area_ha)),
      row(`${index.toUpperCase()} ${t("stats.mean")}`, fmt(p[idx], 3), "index-mean"),
      row(t("parcel.land_use"), p.land_use ? t(`use.${p.land_use}`) : "–", "land-use"),
      row(t("parcel.surveyed"), fmtShare(p.surveyed_share), "surveyed"),
      ...(grazing ? [
        row(t("parcel.condition"), [el("i", { style: { background: CLASS_COLORS[cls] || "#888" } }), " ", classLabel(cls)], "condition"),
        ...(p.bare_cover === null || p.bare_cover === undefined ? [] : [row(t("parcel.bare_cover"), fmtShare(p.bare_cover), "bare-cover")]),
        row(t("parcel.capacity"), fmtQ(p.capacity_su), "capacity"),
        row(t("parcel.ha_per_su"), fmtQ(p.ha_per_su), "ha-per-su"),
        row(t("parcel.registered"), fmtQ(p.registered_su)),
        row(t("parcel.balance"), `${fmtQ(bal)} ${bal === null || bal === undefined ? "" : bal < 0 ? t("parcel.overstocked") : t("parcel.understocked")}`),
      ] : [row(t("parcel.uniformity"), fmtQ(p.crop_uniformity), "uniformity")])),
    ...(grazing && p.condition_basis === "bare_cover"
      ? [el("p", { class: "condition-note" }, t("parcel.bare_lowered", { cls: classLabel(p.condition_class_index) }))] : []),
    el("p", { class: "capacity-note" }, String(p[`capacity_note_${LANG}`] || "")),
    el("div", {}, t("parcel.series")), sparkline(stats.series || []));
  $("parcel-body").replaceChildren(card());
  if (state.map && lngLat) {
    new maplibregl.Popup({ maxWidth: "min(320px, 90vw)" }).setLngLat(lngLat).setDOMContent(card()).addTo(state.map);
  }
}

function showExports() {
  const s = encodeURIComponent(state.survey || "");
  $("exports").replaceChildren(...["shp", "gpkg", "geojson", "fgb", "csv", "kml"].flatMap((f) =>
    [el("a", { class: "button", href: `/export/parcels.${f}?survey=${s}` }, f.toUpperCase()), " "]));
}

/** A calibration note in the reader's language, from its code and values. */
function noteText(n) {
  if (n.code === "panel_sensor_disagree") {
    const bands = Object.entries(n.bands || {}).map(([b, v]) => `${b} ${v > 0 ? "+" : ""}${Math.round(v * 100)}%`);
    return t("note.panel_sensor_disagree", { bands: bands.join(", ") });
  }
  if (n.code === "sensor_skipped") return t("note.sensor_skipped", { count: (n.captures || []).length });
  if (n.code && n.code.startsWith("dji_")) return t("note.tags", { band: n.band || "" });
  return t(`note.${n.code}`);
}

/** How the survey's reflectance was made, and what the user must know about it. */
function showCalibration(cal) {
  const box = $("calibration");
  if (!box) return;
  if (!cal) { box.textContent = t("calibration.none"); return; }
  const lines = [t(`calibration.method.${cal.method}`)];
  const albedo = [...new Set(Object.values(cal.albedos || {}))];
  if (cal.panel_capture) lines.push(t("calibration.panel", { capture: cal.panel_capture, albedo: albedo.join(", ") }));
  if (cal.absolute === false) lines.push(t("calibration.relative"));
  for (const n of cal.notes || []) lines.push(`⚠ ${noteText(n)}`);
  box.replaceChildren(...lines.map((l) => el("p", {}, l)));
}

async function loadSurvey(name) {
  state.survey = name;
  const s = await getJSON(`/surveys/${encodeURIComponent(name)}`);
  state.products = s.products;
  showExports();
  showCalibration(s.calibration);
  const map = state.map;
  if (!map) return;
  clearSurveyLayers(map);
  addProductLayers(map);
  await addBoundaries(map);
  const fc = await addParcels(map);
  const b = fitTo(map, fc);
  if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 30, duration: 0 });
  await showLegend();
  document.body.dataset.ready = "yes";
}

function watchJob(id) {
  const bar = $("job-progress"), status = $("job-status");
  bar.hidden = false;
  const es = new EventSource(`/jobs/${id}/events`);
  es.addEventListener("progress", (e) => {
    const j = JSON.parse(e.data);
    bar.value = j.progress;
    const stage = j.stage_label ? j.stage_label[LANG] : t(`job.${j.state}`);
    status.textContent = `${t("job.progress")}: ${Math.round(j.progress * 100)}% · ${stage}`;
    status.title = "";
    if (j.state === "done") {
      // a job that kept what succeeded: its warnings (in the page's language) and its products
      const cal = (j.result || {}).calibration;
      const warn = ((j.result && j.result.warnings) || []).map((w) => w[LANG] || w.en).join(" ");
      const prods = ((j.result && j.result.products) || []).join(", ");
      status.textContent = t("job.done")
        + (cal ? ` — ${t("calibration.job", { method: t(`calibration.method.${cal.method}`) })}` : "")
        + (warn ? ` — ${t("job.warnings")}: ${warn}` : "")
        + (prods ? ` ${t("job.products")}: ${prods}` : "");
      refreshSurveys();
    }
    if (j.state === "failed") {
      status.textContent = `${t("job.failed")}: ${j.error_message ? j.error_message[LANG] : t("error.generic")}`;
      status.title = j.error || "";
    }
  });
  es.addEventListener("end", () => es.close());
}

/** Phones: the panel is a drawer (style.css); the sign-in form lives in it while the screen is narrow. */
function wireDrawer() {
  const toggle = $("panel-toggle"), panel = $("panel"), login = $("login"), home = login.parentNode;
  const setOpen = (open) => {
    document.body.classList.toggle("panel-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", () => setOpen(!document.body.classList.contains("panel-open")));
  $("panel-close").addEventListener("click", () => setOpen(false));
  $("panel-backdrop").addEventListener("click", () => setOpen(false));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") setOpen(false); });
  const narrow = window.matchMedia("(max-width: 700px)");
  const place = () => {
    if (narrow.matches) panel.insertBefore(login, $("panel-close").nextSibling);
    else { home.append(login); setOpen(false); }
  };
  narrow.addEventListener("change", place);
  place();
  return { setOpen, narrow };
}

function wireForms() {
  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const me = await getJSON("/token", { method: "POST", body: new URLSearchParams(new FormData(e.target)) });
      $("whoami").textContent = `${e.target.username.value} (${t(`role.${me.role}`)})`;
    } catch { $("whoami").textContent = t("login.failed"); }
  });
  $("upload-parcels").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await getJSON("/parcels/upload", { method: "POST", body: new FormData(e.target) }); loadSurvey(state.survey); }
    catch (err) { showError(err); }
  });
  $("upload-frames").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { const job = await getJSON("/jobs/upload", { method: "POST", body: new FormData(e.target) }); watchJob(job.id); }
    catch (err) { showError(err); }
  });
  // file pickers in the page's language (the browser's own button speaks the browser's)
  for (const input of document.querySelectorAll("input[type=file]")) {
    const name = input.parentNode.querySelector(".file-name");
    input.addEventListener("change", () => {
      const n = input.files.length;
      name.textContent = n === 0 ? t("upload.nofile") : n === 1 ? input.files[0].name : t("upload.files", { count: n });
    });
  }
}

/** Fill the survey list (again after a job finished, so its survey appears); keeps the choice. */
async function refreshSurveys() {
  const surveys = await getJSON("/surveys");
  const sel = $("survey");
  const keep = sel.value;
  sel.replaceChildren();
  if (!surveys.length) { sel.replaceChildren(el("option", {}, t("survey.none"))); return surveys; }
  for (const s of surveys) {
    const o = document.createElement("option");
    o.value = s.name; o.textContent = `${s.name}${s.date ? " · " + s.date : ""}`;
    sel.append(o);
  }
  sel.value = surveys.some((s) => s.name === keep) ? keep : surveys[surveys.length - 1].name;
  return surveys;
}

async function main() {
  state.drawer = wireDrawer();
  wireForms();
  state.map = makeMap();
  window.belcheerMap = state.map; // for the browser tests and for debugging in the console
  const sel = $("survey");
  const surveys = await refreshSurveys();
  if (!surveys.length) { document.body.dataset.ready = "yes"; return; }
  sel.addEventListener("change", () => loadSurvey(sel.value));
  if (state.map) {
    state.map.on("click", "parcels-fill", (e) => { const f = e.features[0]; if (f) showParcel(f.properties.parcel_id, e.lngLat); });
    state.map.on("mouseenter", "parcels-fill", () => { state.map.getCanvas().style.cursor = "pointer"; });
    state.map.on("mouseleave", "parcels-fill", () => { state.map.getCanvas().style.cursor = ""; });
    if (!state.map.loaded()) await new Promise((r) => state.map.once("load", r));
  }
  await loadSurvey(sel.value);
}

main().catch((err) => { document.body.dataset.error = err.message; console.error(err); });
