// The documents panel of the call: upload (picker, drag-and-drop, phone camera) with progress, the shared
// list (kept live by the "document-added"/"document-removed" signaling events), download, delete, links.
// Everything other people sent goes in with textContent only — never as HTML.

import { $, el } from "./lib/dom.js";
import { ApiError, fetchJson } from "./lib/fetch.js";
import { tr } from "./strings.js";

function formatSize(bytes, lang) {
  if (bytes >= 1024 * 1024) {
    const size = (bytes / (1024 * 1024)).toLocaleString(lang, { maximumFractionDigits: 1 });
    return tr("call.documents.size.mb", { size });
  }
  const size = Math.max(1, Math.round(bytes / 1024)).toLocaleString(lang);
  return tr("call.documents.size.kb", { size });
}

export class DocumentsPanel {
  /** root: the #documents section; token: the join token (sent as X-Join-Token); roomId; lang. */
  constructor({ root, token, roomId, lang }) {
    this.root = root;
    this.token = token;
    this.lang = lang;
    this.base = `/api/rooms/${encodeURIComponent(roomId)}`;
    this.items = new Map();
    this.you = null;
    this.maxFile = 25 * 1024 * 1024;
    this.queue = Promise.resolve();
    this.list = $("documents-list");
    this.empty = $("documents-empty");
    this.error = $("documents-error");
    this.statusNode = $("documents-status");
    this.progress = $("documents-progress");
    this.progressBar = $("documents-progress-bar");
    this.progressLabel = $("documents-progress-label");
    this.fileInput = $("documents-file");
    this.cameraInput = $("documents-camera");
    this.drop = $("documents-drop");
    this.allowed = $("documents-allowed");
    this.linkForm = $("link-form");
    this.linkUrl = $("link-url");
    this.linkTitle = $("link-title");
    this.wire();
    this.showAllowed();
  }

  wire() {
    $("documents-choose").addEventListener("click", () => this.fileInput.click());
    const camera = $("documents-camera-button");
    // The camera button is for phones and tablets; on a desktop it would just open the file picker.
    if (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) camera.hidden = false;
    camera.addEventListener("click", () => this.cameraInput.click());
    for (const input of [this.fileInput, this.cameraInput]) {
      input.addEventListener("change", () => {
        this.uploadAll(input.files);
        input.value = "";
      });
    }
    // Drag-and-drop anywhere on the panel.
    let depth = 0;
    this.root.addEventListener("dragenter", (event) => {
      if (!this.hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      this.root.classList.add("is-dragging");
    });
    this.root.addEventListener("dragover", (event) => {
      if (!this.hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    this.root.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) this.root.classList.remove("is-dragging");
    });
    this.root.addEventListener("drop", (event) => {
      if (!this.hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      this.root.classList.remove("is-dragging");
      this.uploadAll(event.dataTransfer.files);
    });
    this.linkForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.shareLink();
    });
  }

  hasFiles(event) {
    return !!event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  }

  showAllowed() {
    this.allowed.textContent = tr("call.documents.allowed", { max: formatSize(this.maxFile, this.lang) });
  }

  headers(extra = {}) {
    return { "X-Join-Token": this.token, ...extra };
  }

  /** The room's documents API: the join token, never the cookies; errors as ApiError (code "network"
   * without an answer; the bare HTTP status as code when the answer had no error code). */
  async api(method, path, body) {
    try {
      return await fetchJson(`${this.base}${path}`, {
        method,
        body: body || undefined,
        headers: this.headers(),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (failure) {
      if (failure instanceof ApiError && failure.status > 0 && !(failure.error && failure.error.code)) {
        failure.code = String(failure.status);
      }
      throw failure;
    }
  }

  showError(failure) {
    const code = failure && failure.code ? failure.code : "other";
    const key = `call.documents.error.${code}`;
    const text = tr(key) !== key
      ? tr(key, { max: formatSize(this.maxFile, this.lang) })
      : tr("call.documents.error.other", { code });
    this.error.textContent = text;
    this.error.hidden = false;
  }

  clearError() {
    this.error.hidden = true;
    this.error.textContent = "";
  }

  announce(text) {
    this.statusNode.textContent = text;
  }

  /** Load (or reload after a reconnect) the whole list. */
  async refresh() {
    try {
      const data = await this.api("GET", "/documents");
      this.you = data.you;
      if (data.limits && Number.isFinite(data.limits.max_file_bytes)) this.maxFile = data.limits.max_file_bytes;
      if (data.limits && typeof data.limits.accept === "string") this.fileInput.accept = data.limits.accept;
      this.showAllowed();
      const keep = new Set(data.items.map((item) => item.id));
      for (const id of [...this.items.keys()]) if (!keep.has(id)) this.removeItem(id);
      for (const item of data.items) this.upsert(item);
    } catch (failure) {
      this.showError(failure);
    }
  }

  /** A signaling message; returns true when it was a documents event. */
  handleEvent(msg) {
    if (msg.type === "document-added" && msg.document && msg.document.id) {
      const fresh = !this.items.has(msg.document.id);
      this.upsert(msg.document);
      if (fresh && msg.document.owner_tag !== this.you) {
        this.announce(tr("call.documents.added", { name: this.label(msg.document) }));
      }
      return true;
    }
    if (msg.type === "document-removed" && msg.document_id) {
      this.removeItem(msg.document_id);
      return true;
    }
    return false;
  }

  label(item) {
    return item.type === "link" ? item.title || item.host || item.url : item.name;
  }

  upsert(item) {
    const existing = this.items.get(item.id);
    const node = this.render(item);
    if (existing) existing.node.replaceWith(node);
    else this.list.append(node);
    this.items.set(item.id, { item, node });
    this.empty.hidden = this.items.size > 0;
  }

  removeItem(id) {
    const entry = this.items.get(id);
    if (!entry) return;
    entry.node.remove();
    this.items.delete(id);
    this.empty.hidden = this.items.size > 0;
  }

  render(item) {
    const own = this.you !== null && item.owner_tag === this.you;
    const li = el("li", { className: `document-item ${item.type === "link" ? "is-link" : "is-file"}` });
    li.dataset.documentId = item.id;
    if (own) li.classList.add("own");
    const body = el("div", { className: "document-body" });
    const from = own ? tr("call.documents.own") : tr(`call.documents.from.${item.uploader_role}`);
    if (item.type === "link") {
      if (item.title) body.append(el("p", { className: "document-name" }, item.title));
      body.append(this.renderLink(item));
      body.append(el("p", { className: "document-meta" }, from));
    } else {
      body.append(el("p", { className: "document-name" }, item.name));
      body.append(el("p", { className: "document-meta" }, `${formatSize(item.size, this.lang)} · ${from}`));
    }
    li.append(body);
    const actions = el("div", { className: "document-actions" });
    if (item.type === "file") {
      const download = el("button", { className: "button small document-download" }, tr("call.documents.download"));
      download.type = "button";
      download.setAttribute("aria-label", tr("call.documents.download_label", { name: item.name }));
      download.addEventListener("click", () => this.download(item, download));
      actions.append(download);
    }
    if (own) {
      const remove = el("button", { className: "button small danger document-delete" }, tr("call.documents.delete"));
      remove.type = "button";
      remove.setAttribute("aria-label", tr("call.documents.delete_label", { name: this.label(item) }));
      remove.addEventListener("click", () => this.remove(item));
      actions.append(remove);
    }
    li.append(actions);
    return li;
  }

  /** The URL as text, its domain highlighted; opened in a new tab without opener or referrer. */
  renderLink(item) {
    let url;
    try {
      url = new URL(item.url);
    } catch {
      return el("p", { className: "document-url" }, item.url);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return el("p", { className: "document-url" }, item.url);
    const a = el("a", { className: "document-url" });
    a.href = url.href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.referrerPolicy = "no-referrer";
    a.setAttribute("aria-label", tr("call.documents.link.open_label", { name: `${url.host}` }));
    const rest = `${url.pathname === "/" ? "" : url.pathname}${url.search}${url.hash}`;
    a.append(`${url.protocol}//`, el("strong", { className: "link-host" }, url.host), rest);
    return a;
  }

  uploadAll(files) {
    for (const file of Array.from(files || [])) {
      this.queue = this.queue.then(() => this.upload(file));
    }
  }

  /** XMLHttpRequest rather than fetch: it reports upload progress. The body is the file itself. */
  upload(file) {
    this.clearError();
    if (file.size > this.maxFile) {
      this.showError({ code: "file_too_large" });
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${this.base}/documents`);
      for (const [name, value] of Object.entries(this.headers({
        "Content-Type": "application/octet-stream",
        "X-File-Name": encodeURIComponent(file.name || ""),
      }))) {
        xhr.setRequestHeader(name, value);
      }
      const setProgress = (percent) => {
        this.progressBar.value = percent;
        this.progressLabel.textContent = tr("call.documents.uploading", { name: file.name, percent });
      };
      this.progress.hidden = false;
      this.root.setAttribute("aria-busy", "true");
      setProgress(0);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) setProgress(Math.floor((event.loaded / event.total) * 100));
      };
      const done = () => {
        this.progress.hidden = true;
        this.root.removeAttribute("aria-busy");
        resolve();
      };
      xhr.onload = () => {
        let data = null;
        try {
          data = JSON.parse(xhr.responseText);
        } catch {
          data = null;
        }
        if (xhr.status === 201 && data && data.id) {
          this.upsert(data);
          this.announce(tr("call.documents.uploaded", { name: data.name }));
        } else {
          const error = (data && data.error) || {};
          this.showError({ code: error.code || String(xhr.status) });
        }
        done();
      };
      xhr.onerror = () => {
        this.showError({ code: "network" });
        done();
      };
      xhr.send(file);
    });
  }

  async download(item, button) {
    this.clearError();
    button.disabled = true;
    try {
      const { url } = await this.api("POST", `/documents/${encodeURIComponent(item.id)}/download`);
      // The signed URL lives for a minute; the server answers it as an attachment.
      const a = el("a");
      a.href = url;
      a.download = item.name;
      a.rel = "noopener noreferrer";
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
    } catch (failure) {
      this.showError(failure);
    } finally {
      button.disabled = false;
    }
  }

  async remove(item) {
    this.clearError();
    try {
      await this.api("DELETE", `/documents/${encodeURIComponent(item.id)}`);
      this.removeItem(item.id);
      this.announce(tr("call.documents.deleted", { name: this.label(item) }));
    } catch (failure) {
      this.showError(failure);
    }
  }

  async shareLink() {
    this.clearError();
    const url = this.linkUrl.value.trim();
    const title = this.linkTitle.value.trim();
    try {
      const item = await this.api("POST", "/links", { url, title });
      this.upsert(item);
      this.linkUrl.value = "";
      this.linkTitle.value = "";
      this.linkUrl.removeAttribute("aria-invalid");
    } catch (failure) {
      if (failure.code === "invalid_url") {
        this.linkUrl.setAttribute("aria-invalid", "true");
        this.linkUrl.focus();
      }
      this.showError(failure);
    }
  }
}
