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
