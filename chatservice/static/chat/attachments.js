// Attachments for the donor page and the widget: uploading with progress, and showing a FILE message's file.
//
// Invariants:
// * File names and captions reach the DOM through textContent only.
// * Downloads use short-lived signed links (GET /api/attachments/:id/link), fetched when a file is shown and
//   fetched again when one is about to be used after it went stale; the token never appears in a URL.
"use strict";

(() => {
  const IMAGE_TYPES = new Set(["image/jpeg", "image/png", "image/webp", "image/gif"]);
  // Signed links last 5 minutes on the server; one older than this is refreshed before it is followed.
  const LINK_FRESH_MS = 4 * 60 * 1000;
  const THUMBNAIL_MAX_PX = 240; // shown at most this wide or tall; the server makes 320 px thumbnails

  const t = (text) => (window.gettext ? window.gettext(text) : text);
  const interpolate = (format, values) =>
    window.interpolate ? window.interpolate(format, values, true) : format.replace(/%\((\w+)\)s/g, (_, k) => values[k]);

  // A size in the page's language, units included ("2.5 MB", "২.৫ মেগাবাইট").
  function formatSize(bytes, locale) {
    const units = [
      [1024 * 1024, "megabyte"],
      [1024, "kilobyte"],
      [1, "byte"],
    ];
    const [size, unit] = units.find(([scale]) => bytes >= scale) || units[2];
    // Bytes spelled out ("48 bytes": CLDR's short form is "48 byte"), larger units short ("2.5 MB").
    const unitDisplay = unit === "byte" ? "long" : "short";
    return new Intl.NumberFormat(locale, { style: "unit", unit, unitDisplay, maximumFractionDigits: 1 }).format(bytes / size);
  }

  // A link that fetches a fresh signed URL when it is about to be followed with a stale one.
  function freshLink(anchor, attachmentId, getLink, pick) {
    let fetchedAt = 0;
    const refresh = async () => {
      if (Date.now() - fetchedAt < LINK_FRESH_MS) return;
      fetchedAt = Date.now();
      try {
        const link = await getLink(attachmentId);
        anchor.href = pick(link);
        return link;
      } catch {
        fetchedAt = 0;
        return null;
      }
    };
    anchor.addEventListener("pointerenter", refresh);
    anchor.addEventListener("focus", refresh);
    return refresh;
  }

  // Shows the file a FILE message describes inside `container`: an uploaded image as a thumbnail that opens
  // the full image, any other upload as a chip with its name and size that downloads it, a file hosted
  // elsewhere as a chip that opens its URL.
  function renderFile(container, metadata, { getLink, locale }) {
    const name = String(metadata.name || t("file"));
    const attachmentId = typeof metadata.attachmentId === "string" ? metadata.attachmentId : null;
    const anchor = document.createElement("a");
    anchor.className = "file";
    if (!attachmentId) {
      anchor.href = String(metadata.url || "#");
      anchor.target = "_blank";
      anchor.rel = "noopener noreferrer";
      anchor.classList.add("file-chip");
      anchor.append(chipIcon(), chipText(name, null, locale));
      container.append(anchor);
      return anchor;
    }
    const image = IMAGE_TYPES.has(metadata.contentType) && metadata.thumbnailUrl;
    if (image) {
      anchor.classList.add("file-image");
      anchor.target = "_blank";
      anchor.rel = "noopener";
      const img = document.createElement("img");
      img.alt = name;
      img.decoding = "async";
      const [w, h] = fit(metadata.width, metadata.height);
      if (w && h) {
        img.width = w;
        img.height = h;
      }
      anchor.append(img);
      anchor.setAttribute("aria-label", interpolate(t("Open image %(name)s"), { name }));
      const refresh = freshLink(anchor, attachmentId, getLink, (link) => link.url);
      refresh().then((link) => {
        if (link && link.thumbnailUrl) img.src = link.thumbnailUrl;
      });
    } else {
      anchor.classList.add("file-chip");
      anchor.download = name;
      anchor.append(chipIcon(), chipText(name, metadata.size, locale));
      anchor.setAttribute("aria-label", interpolate(t("Download %(name)s"), { name }));
      freshLink(anchor, attachmentId, getLink, (link) => link.url)();
    }
    container.append(anchor);
    return anchor;
  }

  function fit(width, height) {
    if (!width || !height) return [0, 0];
    const scale = Math.min(1, THUMBNAIL_MAX_PX / Math.max(width, height));
    return [Math.round(width * scale), Math.round(height * scale)];
  }

  // A document outline (Feather's "file"), drawn rather than an emoji: not every system has an emoji font.
  function chipIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "file-icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    for (const d of ["M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z", "M14 2v6h6", "M8 13h8", "M8 17h6"]) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  function chipText(name, size, locale) {
    const box = document.createElement("span");
    box.className = "file-text";
    const label = document.createElement("span");
    label.className = "file-name";
    label.textContent = name;
    box.append(label);
    if (typeof size === "number") {
      const weight = document.createElement("span");
      weight.className = "file-size";
      weight.textContent = formatSize(size, locale);
      box.append(weight);
    }
    return box;
  }

  // POSTs one file as multipart (field `file`) with upload progress; resolves with the attachment, rejects
  // with {status, code, detail}. XMLHttpRequest because fetch reports no upload progress.
  function upload(path, file, { token, onProgress }) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.withCredentials = false;
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        if (xhr.status === 201) resolve(body);
        else reject({ status: xhr.status, code: body && body.code, detail: (body && body.detail) || `HTTP ${xhr.status}` });
      });
      xhr.addEventListener("error", () => reject({ status: 0, code: "network", detail: t("The connection failed.") }));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  window.ChatAttachments = { renderFile, upload, formatSize, IMAGE_TYPES };
})();
