// The webinar editor: live preview, colour pickers and rows that can be added and moved.
// Everything here is an enhancement: without JavaScript the form saves the same way, rows are
// ordered by their position numbers and the preview opens in a new tab.
(function () {
  "use strict";
  var form = document.querySelector("[data-editor]");
  if (!form) {
    return;
  }
  var frame = document.querySelector("[data-preview-frame]");
  var state = document.querySelector("[data-preview-state]");
  var contrast = document.querySelector("[data-contrast]");
  var DELAY_MS = 400;
  var timer = null;
  var sent = 0; // number of the latest preview request; older answers are dropped

  function setState(text) {
    if (state) {
      state.textContent = text;
    }
  }

  function showWarnings(header) {
    if (!contrast || header === null) {
      return;
    }
    var warnings = [];
    try {
      warnings = JSON.parse(header);
    } catch (error) {
      return;
    }
    contrast.textContent = "";
    warnings.forEach(function (text) {
      var line = document.createElement("p");
      line.className = "contrast-warning";
      line.textContent = text;
      contrast.appendChild(line);
    });
  }

  function refresh() {
    if (!frame) {
      return;
    }
    var body = new FormData(form);
    // Chosen images are only stored on Save; the preview shows the stored ones.
    Array.from(body.keys()).forEach(function (name) {
      if (body.getAll(name).some(function (value) { return value instanceof File; })) {
        body.delete(name);
      }
    });
    var token = body.get("csrf_token") || "";
    var number = ++sent;
    setState("Updating the preview…");
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token, "Accept": "text/html" },
    })
      .then(function (response) {
        return response.text().then(function (html) {
          return { response: response, html: html };
        });
      })
      .then(function (result) {
        if (number !== sent) {
          return;
        }
        if (!result.response.ok) {
          setState("The preview could not be updated (" + result.response.status + ").");
          return;
        }
        frame.srcdoc = result.html;
        showWarnings(result.response.headers.get("X-Contrast-Warnings"));
        setState("Preview up to date.");
      })
      .catch(function () {
        if (number === sent) {
          setState("The preview could not be updated: no connection.");
        }
      });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  // Colour pickers beside the hex fields (the hex field is what is submitted).
  form.querySelectorAll("[data-colour-for]").forEach(function (picker) {
    var text = document.getElementById(picker.getAttribute("data-colour-for"));
    if (!text) {
      return;
    }
    function fromText() {
      var value = text.value.trim();
      if (/^#?[0-9a-fA-F]{6}$/.test(value)) {
        picker.value = (value.charAt(0) === "#" ? value : "#" + value).toLowerCase();
      }
    }
    fromText();
    picker.hidden = false;
    picker.addEventListener("input", function () {
      text.value = picker.value;
      schedule();
    });
    text.addEventListener("input", fromText);
  });

  // Registration field options only where the type uses them.
  function syncFieldType(select) {
    var row = select.closest("[data-row]");
    row.querySelectorAll("[data-field-when]").forEach(function (part) {
      part.hidden = part.getAttribute("data-field-when") !== select.value;
    });
  }
  form.querySelectorAll("[data-field-type]").forEach(syncFieldType);

  // Rows: positions follow the order on screen.
  function renumber(container) {
    var position = 1;
    container.querySelectorAll(":scope > [data-row]").forEach(function (row) {
      var order = row.querySelector("[data-row-order]");
      if (order) {
        order.value = String(position);
      }
      position += 1;
    });
  }

  function enhanceRow(row) {
    row.querySelectorAll("[data-row-move]").forEach(function (button) {
      button.hidden = false;
    });
    var remove = row.querySelector("[data-row-delete]");
    if (remove) {
      row.classList.toggle("is-removed", remove.checked);
    }
  }

  form.querySelectorAll("[data-rows]").forEach(function (container) {
    container.querySelectorAll(":scope > [data-row]").forEach(enhanceRow);
  });
  form.querySelectorAll("[data-row-add]").forEach(function (button) {
    button.hidden = false;
  });

  form.addEventListener("click", function (event) {
    var move = event.target.closest("[data-row-move]");
    if (move) {
      var row = move.closest("[data-row]");
      var container = row.parentElement;
      if (move.getAttribute("data-row-move") === "up" && row.previousElementSibling) {
        container.insertBefore(row, row.previousElementSibling);
      } else if (move.getAttribute("data-row-move") === "down" && row.nextElementSibling) {
        container.insertBefore(row.nextElementSibling, row);
      }
      renumber(container);
      move.focus();
      schedule();
      return;
    }
    var add = event.target.closest("[data-row-add]");
    if (add) {
      var group = add.getAttribute("data-row-add");
      var rows = form.querySelector('[data-rows="' + group + '"]');
      var template = form.querySelector('[data-row-template="' + group + '"]');
      var index = parseInt(rows.getAttribute("data-next-index"), 10);
      rows.setAttribute("data-next-index", String(index + 1));
      var html = template.innerHTML.replace(/__i__/g, String(index));
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var added = holder.querySelector("[data-row]");
      rows.appendChild(added);
      enhanceRow(added);
      added.querySelectorAll("[data-field-type]").forEach(syncFieldType);
      renumber(rows);
      var first = added.querySelector("input:not([type=hidden]), textarea");
      if (first) {
        first.focus();
      }
    }
  });

  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-row-delete]")) {
      target.closest("[data-row]").classList.toggle("is-removed", target.checked);
    }
    if (target.matches("[data-field-type]")) {
      syncFieldType(target);
    }
    if (target.type !== "file") {
      schedule();
    }
  });
  form.addEventListener("input", function (event) {
    if (event.target.type !== "file") {
      schedule();
    }
  });

  refresh();
})();
