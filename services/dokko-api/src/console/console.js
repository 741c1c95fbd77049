// The Dokko console's script: copy buttons, uploads (with progress and the per-file outcome of
// the API's answer), file operations, and the job counters. Every request that changes
// something sends the page's CSRF token in X-CSRF-Token.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  // ---- copy buttons ----
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent;
      const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, () => selectText(source));
      } else {
        selectText(source);
        try { document.execCommand("copy"); done(); } catch (e) { /* selected: the person copies */ }
      }
    });
  });

  function selectText(node) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // ---- requests ----

  // Sends a request with the CSRF header; resolves with {status, body} (body parsed as JSON).
  function send(method, url, body, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      if (body && !(body instanceof FormData)) xhr.setRequestHeader("Content-Type", "application/json");
      if (onProgress) xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
      xhr.addEventListener("load", () => {
        let parsed = null;
        try { parsed = JSON.parse(xhr.responseText); } catch (e) { parsed = null; }
        resolve({ status: xhr.status, body: parsed });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, body: { error: "the connection failed; try again" } }));
      xhr.send(body instanceof FormData ? body : body ? JSON.stringify(body) : null);
    });
  }

  // Shows a batch answer (200/207/500 with succeeded and failed) or an error, in `target`.
  function showOutcome(target, answer) {
    target.replaceChildren();
    const b = answer.body || {};
    if (!Array.isArray(b.succeeded)) {
      const p = document.createElement("p");
      p.className = "error";
      p.setAttribute("role", "alert");
      p.textContent = (b.error || "the request failed") + " (HTTP " + answer.status + ")";
      target.append(p);
      return false;
    }
    const summary = document.createElement("p");
    summary.className = "outcome-summary";
    summary.dataset.status = b.status;
    summary.textContent = b.total_succeeded + " succeeded, " + b.total_failed + " failed (HTTP " + answer.status + ", " + b.status + ")";
    const list = document.createElement("ul");
    list.className = "outcome";
    b.succeeded.forEach((item) => {
      const li = document.createElement("li");
      li.className = "ok";
      li.dataset.path = item.identifier;
      li.textContent = item.identifier;
      list.append(li);
    });
    b.failed.forEach((item) => {
      const li = document.createElement("li");
      li.className = "failed";
      li.dataset.path = item.identifier;
      li.textContent = item.identifier + ": " + item.code + ": " + item.message;
      list.append(li);
    });
    target.append(summary, list);
    return b.total_failed === 0;
  }

  // ---- uploads ----
  const upload = document.getElementById("upload");
  if (upload) {
    const url = upload.dataset.items;
    const zone = document.getElementById("drop-zone");
    const prefixInput = document.getElementById("upload-prefix");
    const progress = document.getElementById("upload-progress");
    const bar = document.getElementById("upload-bar");
    const percent = document.getElementById("upload-percent");
    const outcome = document.getElementById("upload-outcome");

    const prefix = () => {
      const p = (prefixInput.value || "").trim().replace(/^\/+|\/+$/g, "");
      return p ? p + "/" : "";
    };

    // entries: [{file, path}]
    async function start(entries) {
      if (!entries.length) return;
      const form = new FormData();
      entries.forEach(({ file, path }) => form.append("files", file, prefix() + path));
      progress.hidden = false;
      bar.value = 0;
      percent.textContent = "0%";
      outcome.replaceChildren();
      const answer = await send("POST", url, form, (loaded, total) => {
        const p = Math.round((loaded / total) * 100);
        bar.value = p;
        percent.textContent = p + "%";
      });
      bar.value = 100;
      percent.textContent = "done";
      showOutcome(outcome, answer);
      const refresh = document.createElement("p");
      const link = document.createElement("a");
      link.href = window.location.pathname;
      link.id = "refresh-tree";
      link.textContent = "Show the updated files";
      refresh.append(link);
      outcome.append(refresh);
    }

    const fromInput = (input) => Array.from(input.files).map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    document.getElementById("file-input").addEventListener("change", (e) => { start(fromInput(e.target)); e.target.value = ""; });
    document.getElementById("folder-input").addEventListener("change", (e) => { start(fromInput(e.target)); e.target.value = ""; });

    // Drag and drop, folders included (walked through the entries API).
    function walk(entry, path) {
      return new Promise((resolve) => {
        if (entry.isFile) {
          entry.file((file) => resolve([{ file, path: path + file.name }]), () => resolve([]));
        } else if (entry.isDirectory) {
          const reader = entry.createReader();
          const all = [];
          const more = () => reader.readEntries(async (batch) => {
            if (!batch.length) {
              const nested = await Promise.all(all.map((e) => walk(e, path + entry.name + "/")));
              resolve(nested.flat());
            } else { all.push(...batch); more(); }
          }, () => resolve([]));
          more();
        } else resolve([]);
      });
    }
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
    zone.addEventListener("drop", async (e) => {
      e.preventDefault();
      const items = Array.from(e.dataTransfer.items || []);
      const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
      if (entries.length && entries.every((x) => x)) {
        const found = await Promise.all(entries.map((entry) => walk(entry, "")));
        start(found.flat());
      } else {
        start(Array.from(e.dataTransfer.files).map((file) => ({ file, path: file.name })));
      }
    });
  }

  // ---- file operations (new folder, move, replace, delete) ----
  document.querySelectorAll("form.js-op").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const url = form.dataset.items;
      const target = document.getElementById("op-outcome");
      const path = form.dataset.path;
      const type = form.dataset.type || "file";
      let answer;
      if (form.dataset.op === "folder") {
        const body = new FormData();
        body.append("folders", JSON.stringify([form.elements.path.value.trim()]));
        answer = await send("POST", url, body);
      } else if (form.dataset.op === "move") {
        const body = new FormData();
        body.append("operations", JSON.stringify({ items: [{ path, type, new_path: form.elements.new_path.value.trim() }] }));
        answer = await send("PATCH", url, body);
      } else if (form.dataset.op === "replace") {
        const file = form.elements.file.files[0];
        if (!file) return;
        const body = new FormData();
        body.append("operations", JSON.stringify({ items: [{ path, type: "file" }] }));
        body.append("files", file, path);
        answer = await send("PATCH", url, body);
      } else if (form.dataset.op === "delete") {
        answer = await send("DELETE", url, { items: [{ path, type }] });
      }
      const ok = showOutcome(target, answer);
      target.scrollIntoView({ block: "nearest" });
      if (ok) window.location.reload();
    });
  });

  // ---- job counters ----
  const job = document.getElementById("job");
  if (job && job.dataset.running === "true") {
    const url = job.dataset.statusUrl;
    const poll = async () => {
      const answer = await send("GET", url, null);
      const b = answer.body;
      if (answer.status === 200 && b) {
        Object.entries(b.statistics || {}).forEach(([key, value]) => {
          const cell = document.getElementById("counter-" + key);
          if (cell && typeof value === "number" && key !== "chunksEmbedded") cell.textContent = value;
        });
        const updated = document.getElementById("job-updated");
        if (updated && b.updatedAt) updated.textContent = b.updatedAt.slice(0, 10) + " " + b.updatedAt.slice(11, 16) + " UTC";
        const status = document.getElementById("job-status");
        if (status) { status.textContent = b.status; status.dataset.status = b.status; }
        if (b.status !== "RUNNING") { window.location.reload(); return; }
      }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 500);
  }
})();
