// Loupe's search page. Every value from the server is put in the page with textContent or attributes,
// never as HTML. The search lives in the URL: ?collection=…&q=…, ?collection=…&item=…
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_UPLOAD = 20 * 1024 * 1024;
const PAGE = 24;
let key = sessionStorage.getItem("loupe-key") || "";
let imageQuery = null; // the dropped image of the current search, kept for back/forward within the page

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (key) headers["Ocp-Apim-Subscription-Key"] = key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

/// Asks for the key once; keys are kept for this browser tab only.
function askForKey() {
  return new Promise((resolve) => {
    const dialog = $("key-dialog");
    $("key-form").onsubmit = () => {
      key = $("key").value.trim();
      sessionStorage.setItem("loupe-key", key);
      resolve();
    };
    dialog.showModal();
    $("key").focus();
  });
}

async function withKey(work) {
  for (;;) {
    try { return await work(); } catch (error) {
      if (!(error instanceof Unauthorized)) throw error;
      await askForKey();
    }
  }
}

function status(text, command) {
  const element = $("status");
  element.textContent = text;
  if (command) {
    const pre = document.createElement("pre");
    pre.textContent = command;
    element.appendChild(pre);
  }
}

/// Images need the key when one is set, and <img> cannot send headers: fetch them then.
/// `kind` is "thumbnail" (grids) or "image" (the item view, which falls back to the thumbnail for
/// formats browsers cannot show, such as TIFF).
function setImage(img, collection, id, kind = "thumbnail") {
  const path = `/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}/${kind}`;
  if (kind === "image") img.onerror = () => { img.onerror = null; setImage(img, collection, id, "thumbnail"); };
  setSource(img, path);
}

/// Points an <img> or <video> at `path` (`plain` when no key is needed: it may add a media fragment);
/// with a key, the file is fetched with it and shown from a blob: URL.
function setSource(element, path, plain = path) {
  if (!key) { element.src = plain; return; }
  fetch(path, { headers: { "Ocp-Apim-Subscription-Key": key } })
    .then((response) => (response.ok ? response.blob() : null))
    .then((blob) => { if (blob) element.src = URL.createObjectURL(blob); });
}

/// Seconds as m:ss.s (h:mm:ss.s from an hour).
function clock(seconds) {
  const tenths = Math.round(seconds * 10);
  const hours = Math.floor(tenths / 36000), minutes = Math.floor(tenths / 600) % 60;
  const rest = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

/// A video frame's video, played from `time`. Like images, a keyed server's video is fetched with the
/// key (whole, as a blob: <video> cannot send headers); otherwise the player asks for byte ranges.
function setVideo(video, collection, id, time) {
  const path = `/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}/video`;
  video.onloadedmetadata = () => {
    video.currentTime = time;
    video.play().catch(() => {});
  };
  setSource(video, path, `${path}#t=${time}`);
}

function title(result) {
  const m = result.metadata || {};
  return m.TITLE || m.title || m.Title || result.id.split("/").pop();
}

function author(result) {
  const m = result.metadata || {};
  return m.AUTHOR || m.author || m.Author || "";
}

/// A result: an image, or a video's moment (shown by its best frame, which opens the video there).
function card(collection, result) {
  const li = document.createElement("li");
  const link = document.createElement("a");
  const target = result.kind === "video" ? result.frame : result.id;
  link.href = `/?collection=${encodeURIComponent(collection)}&item=${encodeURIComponent(target)}`;
  link.dataset.id = result.id;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    navigate({ collection, item: target });
  });
  const img = document.createElement("img");
  img.alt = title(result);
  img.loading = "lazy";
  setImage(img, collection, target);
  const caption = document.createElement("div");
  caption.className = "caption";
  const second = result.kind === "video"
    ? ["moment", `▶ ${clock(result.best)} (${clock(result.start)}–${clock(result.end)})`]
    : ["author", author(result)];
  for (const [name, text] of [["title", title(result)], second,
    ["relevance", `relevance ${(result.relevance * 100).toFixed(1)}%`]]) {
    const div = document.createElement("div");
    div.className = name;
    div.textContent = text;
    caption.appendChild(div);
  }
  link.append(img, caption);
  li.appendChild(link);
  return li;
}

function show(list, collection, results) {
  list.replaceChildren(...results.map((result) => card(collection, result)));
  const fields = new Set();
  for (const result of results) for (const field of Object.keys(result.metadata || {})) fields.add(field);
  $("fields").replaceChildren(...[...fields].sort().map((field) => {
    const option = document.createElement("option");
    option.value = `${field}=`;
    return option;
  }));
}

function filters() {
  const text = $("filter").value.trim();
  return text ? text.split(/\s*;\s*/).filter(Boolean) : [];
}

async function search(collection, body, isImage) {
  const path = `/collections/${encodeURIComponent(collection)}/search` + (isImage ? `?k=${PAGE}` : "");
  const options = isImage
    ? { method: "POST", body, headers: { "Content-Type": body.type || "application/octet-stream" } }
    : { method: "POST", body: JSON.stringify(Object.assign({ k: PAGE, filters: filters() }, body)), headers: { "Content-Type": "application/json" } };
  return (await withKey(() => api(path, options))).results;
}

async function loadCollections(selected) {
  const { collections } = await withKey(() => api("/collections"));
  const select = $("collection");
  select.replaceChildren(...collections.map((c) => {
    const option = document.createElement("option");
    option.value = c.name;
    option.textContent = `${c.name} (${c.items})`;
    return option;
  }));
  if (selected && collections.some((c) => c.name === selected)) select.value = selected;
  return collections;
}

/// Renders the state the URL describes.
async function render() {
  const params = new URLSearchParams(location.search);
  const collections = await loadCollections(params.get("collection"));
  if (collections.length === 0) {
    $("results").replaceChildren();
    status("No collections yet. Add one with:", "loupe ingest /path/to/images --collection paintings");
    return;
  }
  const collection = $("collection").value;
  const itemId = params.get("item");
  $("query").value = params.get("q") || "";
  $("filter").value = params.get("filter") || "";
  $("item").hidden = !itemId;
  $("results").hidden = !!itemId;
  if (!itemId) $("item-video").pause();
  if (itemId) return renderItem(collection, itemId);
  if (params.get("q")) {
    status("Searching…");
    const results = await search(collection, { text: params.get("q") });
    show($("results"), collection, results);
    status(results.length ? `${results.length} results for “${params.get("q")}”` : "Nothing found.");
  } else if (params.get("image") && imageQuery) {
    status("Searching by image…");
    const results = await search(collection, imageQuery, true);
    show($("results"), collection, results);
    status(`${results.length} results like ${imageQuery.name || "your image"}`);
  } else {
    $("results").replaceChildren();
    status("Describe what you are looking for, or drop an image.");
  }
}

async function renderItem(collection, id) {
  const path = `/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}`;
  const item = await withKey(() => api(path));
  const metadata = item.metadata || {};
  const isFrame = metadata.video !== undefined;
  const time = parseFloat(metadata.video_time) || 0;
  const result = { id: isFrame ? metadata.video : item.id, metadata };
  $("item-title").textContent = isFrame ? `${title(result)} at ${clock(time)}` : title(result);
  const image = $("item-image"), video = $("item-video");
  image.hidden = isFrame;
  video.hidden = !isFrame;
  if (isFrame) {
    video.setAttribute("aria-label", $("item-title").textContent);
    setVideo(video, collection, id, time);
  } else {
    video.pause();
    image.alt = title(result);
    setImage(image, collection, id, "image");
  }
  $("item-metadata").replaceChildren(...Object.entries(item.metadata || {}).flatMap(([name, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
  status("");
  const similar = (await search(collection, { like: id })).filter((r) => r.id !== id);
  show($("similar"), collection, similar.slice(0, 12));
  $("close").focus();
}

function navigate(state) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(state)) if (value) params.set(name, value);
  history.pushState(null, "", `/?${params}`);
  render().catch((error) => status(error.message));
}

function searchByImage(file) {
  if (!file) return;
  // Browsers name no type for some formats the server reads (HEIC on most systems): the name tells.
  if (!file.type.startsWith("image/") && !/\.(heic|heif|avif|ico)$/i.test(file.name)) return status("That is not an image.");
  if (file.size > MAX_UPLOAD) return status("Images can be at most 20 MB.");
  imageQuery = file;
  navigate({ collection: $("collection").value, image: "upload" });
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  navigate({ collection: $("collection").value, q: $("query").value.trim(), filter: $("filter").value.trim() });
});
$("collection").addEventListener("change", () => navigate({ collection: $("collection").value, q: $("query").value.trim() }));
$("file").addEventListener("change", () => searchByImage($("file").files[0]));
$("close").addEventListener("click", () => history.back());
document.addEventListener("keydown", (event) => { if (event.key === "Escape" && !$("item").hidden) history.back(); });
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  searchByImage(event.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file").click(); } });
window.addEventListener("popstate", () => render().catch((error) => status(error.message)));
render().catch((error) => status(error.message));
