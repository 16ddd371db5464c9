// How the page talks to the playground: JSON requests with the token, and EventSource URLs
// (which cannot carry headers, so the token goes in ?access_token=).
const params = new URLSearchParams(location.search);
export const token = params.get("token");

export function banner(text) {
  const el = document.getElementById("banner");
  if (!text) { el.hidden = true; el.textContent = ""; return; }
  el.hidden = false;
  el.textContent = text;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    const text = `The playground server does not answer (${err}). Is \`penguiflow dev\` still running?`;
    banner(text);
    throw new Error(text);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const text = data.error ? `${data.error.message} (${data.error.code}, HTTP ${response.status})` : `HTTP ${response.status} on ${path}`;
    banner(text);
    throw new Error(text);
  }
  return data;
}

export function streamUrl(path, extra = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(extra)) {
    for (const item of [].concat(value)) if (item) url.searchParams.append(key, item);
  }
  if (token) url.searchParams.set("access_token", token);
  return url.toString();
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function short(value, limit = 240) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}
