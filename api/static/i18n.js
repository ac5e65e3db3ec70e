// The one message catalogue, embedded by the server in <script id="messages"> for this page's language.
const MESSAGES = JSON.parse(document.getElementById("messages").textContent);
export const LANG = document.documentElement.lang || "mn";

/** The message `key`, with {name} fields filled from `values`. */
export function t(key, values = {}) {
  const text = MESSAGES[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));
}

/** Words for a recovery class 1–5 (I–V); 0 or missing = not assessed. */
export function classLabel(c) {
  return c >= 1 && c <= 5 ? t(`class.${c}`) : t("class.none");
}

export const CLASS_COLORS = { 1: "#1a9850", 2: "#91cf60", 3: "#fee08b", 4: "#fc8d59", 5: "#d73027" };

export function fmt(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits);
}

/** A decision number with sensible precision (the rule of belcheer.zoning.numbers.quantity):
 *  1,234 · 296 · 29.6 · 2.96 · 0.30 · 0.012 — never "0" for 0.1. */
export function fmtQ(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return "–";
  const x = Number(v), a = Math.abs(x);
  if (a === 0) return "0";
  if (a >= 100 || (a >= 1 && x === Math.round(x))) return Math.round(x).toLocaleString("en-US");
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(1 - Math.floor(Math.log10(a)));
}

/** A 0…1 share as a percentage (45 %, 4.5 %, 0.45 %). */
export function fmtShare(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return "–";
  const x = Number(v);
  return Math.abs(x) >= 0.1 ? `${Math.round(100 * x)} %` : `${fmtQ(100 * x)} %`;
}
