/*
 * Reference library uploads: drop or choose several images, one progress bar and one result each.
 *
 * Why htmx alone was not enough: htmx sends a form as a single request and reports progress for
 * that request as a whole, so it cannot give each file its own progress bar, its own success or
 * error message, or a limit of two uploads at a time; and dropping files on a zone needs drag
 * and drop handlers anyway. Without JavaScript the same form posts every file at once and the
 * server answers with a redirect and messages.
 *
 * Protocol (campaigns/views/references.py, reference_upload): one file per request, marked with
 * X-Requested-With: XMLHttpRequest. 201: the body is the new card (<li>); 409: already in the
 * library, 400: refused, the body is a short message fragment; anything else is unexpected.
 */
(function () {
  "use strict";

  var PARALLEL = 2;

  function csrfToken(form) {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["x-csrftoken"]) return headers["x-csrftoken"];
    } catch (error) {
      // fall back to the form's own token below
    }
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function parse(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function hasFiles(event) {
    var types = event.dataTransfer ? event.dataTransfer.types : null;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  function setup(form) {
    var zone = form.querySelector("[data-dropzone]");
    var input = form.querySelector("input[type=file]");
    var rows = form.querySelector("[data-uploads]");
    var maxBytes = Number(form.dataset.maxBytes) || 0;
    var queue = [];
    var running = 0;
    var added = 0;

    form.classList.add("js-uploader"); // hides the Upload button: choosing or dropping starts it
    input.required = false;

    function addRow(file) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      var status = document.createElement("span");
      status.className = "status";
      status.textContent = "Waiting…";
      li.append(name, bar, status);
      rows.append(li);
      return { li: li, bar: bar, status: status };
    }

    function finish(row, result, content) {
      // result: "done", "duplicate" or "failed" (also the row's class)
      row.bar.value = result === "done" ? 1 : 0;
      row.li.classList.add(result);
      row.status.replaceChildren(content);
    }

    function insertCard(html) {
      var cards = document.getElementById(form.dataset.cards);
      var card = parse(html).firstElementChild;
      if (!cards || !card) return;
      var old = document.getElementById(card.id);
      if (old) old.remove();
      cards.prepend(card);
      var empty = document.querySelector("[data-empty]");
      if (empty) empty.remove();
      if (window.htmx) window.htmx.process(card); // the card's delete button uses hx-post
    }

    function handle(xhr, row) {
      var type = xhr.getResponseHeader("Content-Type") || "";
      if (xhr.status === 201) {
        insertCard(xhr.responseText);
        added += 1;
        finish(row, "done", document.createTextNode("Added."));
      } else if ((xhr.status === 400 || xhr.status === 409 || xhr.status === 413) && type.indexOf("text/html") === 0) {
        finish(row, xhr.status === 409 ? "duplicate" : "failed", parse(xhr.responseText));
      } else if (xhr.status === 403) {
        finish(row, "failed", document.createTextNode("You are not allowed to add images to this library."));
      } else if (xhr.status === 200 && xhr.responseURL && xhr.responseURL !== form.action) {
        // Redirected (to the login page): the session has ended.
        finish(row, "failed", document.createTextNode("Your session has ended: reload the page, sign in and try again."));
      } else {
        finish(row, "failed", document.createTextNode(
          "Upload failed (HTTP " + xhr.status + "). Try again; if it keeps failing, tell an admin."));
      }
    }

    function send(job) {
      return new Promise(function (resolve) {
        var data = new FormData();
        job.fields.forEach(function (pair) { data.append(pair[0], pair[1]); });
        data.append("file", job.file, job.file.name);
        var xhr = new XMLHttpRequest();
        xhr.open("POST", form.action);
        xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
        xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
        xhr.upload.addEventListener("progress", function (event) {
          if (event.lengthComputable) job.row.bar.value = event.loaded / event.total;
        });
        xhr.upload.addEventListener("load", function () {
          job.row.bar.removeAttribute("value"); // indeterminate while the server checks the image
          job.row.status.textContent = "Checking…";
        });
        xhr.addEventListener("load", function () { handle(xhr, job.row); resolve(); });
        xhr.addEventListener("error", function () {
          finish(job.row, "failed", document.createTextNode("Network error: check the connection and try again."));
          resolve();
        });
        xhr.addEventListener("abort", function () {
          finish(job.row, "failed", document.createTextNode("Cancelled."));
          resolve();
        });
        job.row.status.textContent = "Uploading…";
        xhr.send(data);
      });
    }

    function refreshLibrary() {
      // Once a round is over, re-render the library (counts, tag filter, order) from the server.
      var library = document.getElementById(form.dataset.library);
      if (added && library && window.htmx) {
        window.htmx.ajax("GET", window.location.href, { target: "#" + library.id, swap: "outerHTML" });
      }
      added = 0;
    }

    function pump() {
      while (running < PARALLEL && queue.length) {
        running += 1;
        send(queue.shift()).then(function () {
          running -= 1;
          pump();
          if (!running && !queue.length) refreshLibrary();
        });
      }
    }

    function enqueue(files) {
      // Role and tags as they are now: changing them later applies to the next files only.
      var fields = [];
      new FormData(form).forEach(function (value, key) {
        if (key !== "file") fields.push([key, value]);
      });
      Array.prototype.forEach.call(files, function (file) {
        var row = addRow(file);
        if (file.size === 0) {
          finish(row, "failed", document.createTextNode("This file is empty (0 bytes)."));
        } else if (maxBytes && file.size > maxBytes) {
          finish(row, "failed", document.createTextNode(
            "Too large: " + megabytes(file.size) + ", the limit is " + megabytes(maxBytes) + "."));
        } else {
          queue.push({ file: file, row: row, fields: fields });
        }
      });
      pump();
    }

    input.addEventListener("change", function () {
      if (input.files.length) enqueue(input.files);
      input.value = "";
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault(); // Enter in the tags field; files go as soon as they are chosen
      if (input.files.length) enqueue(input.files);
      input.value = "";
    });

    zone.addEventListener("dragover", function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragover");
    });
    zone.addEventListener("dragleave", function (event) {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragover");
    });
    zone.addEventListener("drop", function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      zone.classList.remove("dragover");
      enqueue(event.dataTransfer.files);
    });
    // A drop that misses the zone must not make the browser navigate away to the file.
    window.addEventListener("dragover", function (event) {
      if (hasFiles(event) && !zone.contains(event.target)) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "none";
      }
    });
    window.addEventListener("drop", function (event) {
      if (hasFiles(event) && !zone.contains(event.target)) event.preventDefault();
    });
    window.addEventListener("beforeunload", function (event) {
      if (running || queue.length) event.preventDefault(); // asks before dropping unfinished uploads
    });
  }

  document.querySelectorAll("form[data-uploader]").forEach(setup);
})();
