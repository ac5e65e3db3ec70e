// Herders' phone page: no map library, a few WebP tiles and an SVG outline — light on slow links.
import { t, LANG, classLabel, CLASS_COLORS, fmtQ, fmtShare } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const VIEW = 288; // minimap size, CSS pixels
let parcels = [];
let product = null;

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) throw new Error(r.statusText);
  return r.json();
}

const px = (lon, lat, z) => {
  const n = 256 * 2 ** z, s = Math.sin((lat * Math.PI) / 180);
  return [((lon + 180) / 360) * n, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n];
};

function rings(geom) {
  return geom.type === "Polygon" ? geom.coordinates : geom.coordinates.flat();
}

function drawMinimap(f) {
  const box = $("minimap");
  box.replaceChildren();
  const pts = rings(f.geometry).flat();
  const lons = pts.map((p) => p[0]), lats = pts.map((p) => p[1]);
  const [w, s, e, n] = [Math.min(...lons), Math.min(...lats), Math.max(...lons), Math.max(...lats)];
  let z = 20;
  while (z > 1) {
    const a = px(w, n, z), b = px(e, s, z);
    if (b[0] - a[0] <= VIEW * 0.8 && b[1] - a[1] <= VIEW * 0.8) break;
    z--;
  }
  const a = px(w, n, z), b = px(e, s, z);
  const ox = (a[0] + b[0]) / 2 - VIEW / 2, oy = (a[1] + b[1]) / 2 - VIEW / 2;
  if (product) {
    const max = 2 ** z;
    for (let ty = Math.floor(oy / 256); ty <= Math.floor((oy + VIEW) / 256); ty++) {
      for (let tx = Math.floor(ox / 256); tx <= Math.floor((ox + VIEW) / 256); tx++) {
        if (tx < 0 || ty < 0 || tx >= max || ty >= max) continue;
        const img = new Image(256, 256);
        img.alt = "";
        img.style.left = `${tx * 256 - ox}px`;
        img.style.top = `${ty * 256 - oy}px`;
        img.onerror = () => img.remove();
        img.src = `/tiles/${product.id}/${z}/${tx}/${ty}.webp`;
        box.append(img);
      }
    }
  }
  const d = rings(f.geometry).map((r) => r.map((p, i) => {
    const q = px(p[0], p[1], z);
    return `${i ? "L" : "M"}${(q[0] - ox).toFixed(1)},${(q[1] - oy).toFixed(1)}`;
  }).join(" ") + "Z").join(" ");
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg"), path = document.createElementNS(NS, "path");
  for (const [k, v] of Object.entries({ viewBox: `0 0 ${VIEW} ${VIEW}`, width: VIEW, height: VIEW })) svg.setAttribute(k, v);
  for (const [k, v] of Object.entries({ d, fill: "none", stroke: "#111", "stroke-width": 2.5 })) path.setAttribute(k, v);
  svg.append(path);
  box.append(svg);
}

/** The herd typed as heads per species, in sheep units (coefficients shown beside each field). */
function herdSU() {
  let su = 0;
  for (const el of document.querySelectorAll("#herd input[data-species]")) su += Number(el.value || 0) * Number(el.dataset.coef);
  return su;
}

function showStocking(p) {
  const cap = p.capacity_su;
  const herd = herdSU();
  $("herd-total").textContent = t("herder.total", { su: fmtQ(herd) });
  if (cap === null || cap === undefined) { $("stocking").textContent = p[`capacity_note_${LANG}`] || t("herder.nodata"); $("stocking").className = ""; return; }
  const excess = herd - cap;
  $("stocking").textContent = excess > 0 ? t("herder.over", { excess: fmtQ(excess) }) : t("herder.ok");
  $("stocking").className = excess > 0 ? "over" : "ok";
}

function show(id) {
  const f = parcels.find((x) => String(x.id) === String(id));
  if (!f) return;
  const p = f.properties;
  const cls = p.condition_class;
  const verdict = $("verdict");
  verdict.style.background = CLASS_COLORS[cls] || "#ccc";
  $("class-word").textContent = cls >= 1 ? classLabel(cls) : t("herder.nodata");
  const has = p.capacity_su !== null && p.capacity_su !== undefined;
  $("capacity").textContent = has ? t("herder.capacity_word", { capacity: fmtQ(p.capacity_su) }) : "";
  $("capacity-detail").textContent = has
    ? `${t("herder.ha_per_su", { ha: fmtQ(p.ha_per_su) })}. ${p.surveyed_share < 1 ? t("herder.surveyed", { share: fmtShare(p.surveyed_share) }) : ""}`
    : "";
  for (const el of document.querySelectorAll("#herd input[data-species]")) {
    el.value = Math.round(p[el.dataset.species] || 0);
    el.oninput = () => showStocking(p);
  }
  showStocking(p);
  $("share").href = `/herder/share.png?parcel=${encodeURIComponent(p.parcel_id)}&lang=${LANG}`;
  drawMinimap(f);
  document.body.dataset.ready = "yes";
}

async function main() {
  const [fc, surveys] = await Promise.all([getJSON("/collections/parcels/items?limit=1000"), getJSON("/surveys")]);
  parcels = fc.features.filter((f) => f.geometry);
  const last = surveys[surveys.length - 1];
  if (last) {
    const rank = (p) => (p.kind === "condition" ? 0 : p.kind === "index" ? (p.name === "ndvi" ? 1 : 2) : p.kind === "orthomosaic" ? 3 : 9);
    product = [...last.products].sort((a, b) => rank(a) - rank(b))[0] || null;
  }
  const sel = $("pasture");
  for (const f of parcels) {
    const o = document.createElement("option");
    o.value = f.id;
    o.textContent = f.properties.name ? `${f.properties.name} (${f.id})` : f.id;
    sel.append(o);
  }
  sel.addEventListener("change", () => show(sel.value));
  const want = sel.dataset.selected || (parcels[0] && parcels[0].id);
  if (want) { sel.value = want; show(want); } else { $("class-word").textContent = t("herder.nodata"); document.body.dataset.ready = "yes"; }
}

main().catch((err) => { document.body.dataset.error = err.message; console.error(err); });
