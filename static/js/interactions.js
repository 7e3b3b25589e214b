// The interactions tab: the thumbnail of the moment being typed, placing an interaction by
// clicking the timeline, and refusing a too large file before it is sent. The page works
// without it (the server shows the thumbnail after a preview and checks every file).
(function () {
  "use strict";
  var bar = document.querySelector("[data-ix-timeline]");
  var opens = document.querySelector("[data-ix-opens]");
  var SVG_NS = "http://www.w3.org/2000/svg";

  function parseTime(text) {
    var value = (text || "").trim().replace(",", ".");
    if (!/^\d+(:\d{1,2}){0,2}(\.\d+)?$/.test(value)) {
      return null;
    }
    var parts = value.split(":");
    var seconds = parseFloat(parts.pop());
    var minutes = parts.length ? parseInt(parts.pop(), 10) : 0;
    var hours = parts.length ? parseInt(parts.pop(), 10) : 0;
    if (value.indexOf(":") >= 0 && seconds >= 60) {
      return null;
    }
    return hours * 3600 + minutes * 60 + seconds;
  }

  function clock(seconds) {
    var whole = Math.round(seconds);
    var hours = Math.floor(whole / 3600);
    var minutes = Math.floor((whole % 3600) / 60);
    var secs = whole % 60;
    var tail = (secs < 10 ? "0" : "") + secs;
    if (hours) {
      return hours + ":" + (minutes < 10 ? "0" : "") + minutes + ":" + tail;
    }
    return minutes + ":" + tail;
  }

  function tiles() {
    try {
      return JSON.parse(bar.getAttribute("data-tiles") || "[]");
    } catch (error) {
      return [];
    }
  }

  function tileAt(list, seconds) {
    var found = null;
    for (var i = 0; i < list.length; i += 1) {
      if (list[i][0] <= seconds) {
        found = list[i];
      } else {
        break;
      }
    }
    return found || list[0] || null;
  }

  function showMoment() {
    var seconds = parseTime(opens.value);
    var extent = parseFloat(bar.getAttribute("data-extent")) || 0;
    var draft = bar.querySelector("[data-ix-draft]");
    if (draft) {
      var x = seconds === null || !extent ? -20 : Math.min(seconds / extent, 1) * 1000;
      draft.setAttribute("x1", String(x));
      draft.setAttribute("x2", String(x));
    }
    var at = document.querySelector("[data-ix-at]");
    if (!at) {
      return;
    }
    var thumb = at.querySelector("[data-ix-thumb]");
    var label = at.querySelector("[data-ix-at-label]");
    var beyond = seconds !== null && extent && seconds >= extent;
    var tile = seconds === null || beyond ? null : tileAt(tiles(), seconds);
    if (!tile || !thumb) {
      if (thumb) {
        thumb.setAttribute("hidden", "");
      }
      label.textContent = beyond
        ? "This is after the end of the video."
        : "Enter a time to see what is on screen then.";
      return;
    }
    // [start, href, x, y, w, h, sheet width, sheet height]
    thumb.setAttribute("viewBox", [tile[2], tile[3], tile[4], tile[5]].join(" "));
    var image = thumb.getElementsByTagNameNS(SVG_NS, "image")[0];
    image.setAttribute("href", tile[1]);
    image.setAttribute("width", String(tile[6]));
    image.setAttribute("height", String(tile[7]));
    thumb.removeAttribute("hidden");
    label.textContent = "On screen at " + clock(seconds);
  }

  if (bar && opens && !opens.disabled) {
    opens.addEventListener("input", showMoment);
    var svg = bar.querySelector("svg");
    svg.addEventListener("click", function (event) {
      if (event.target.closest("a")) {
        return; // a marker opens that interaction
      }
      var box = svg.getBoundingClientRect();
      var extent = parseFloat(bar.getAttribute("data-extent")) || 0;
      if (!box.width || !extent) {
        return;
      }
      var share = Math.max(0, Math.min(1, (event.clientX - box.left) / box.width));
      opens.value = clock(Math.min(Math.floor(share * extent), Math.max(extent - 1, 0)));
      showMoment();
      opens.focus();
    });
    svg.classList.add("is-pickable");
  }

  var file = document.querySelector("input[type=file][data-max-bytes]");
  if (file) {
    var problem = document.querySelector("[data-ix-file-error]");
    file.addEventListener("change", function () {
      var limit = parseInt(file.getAttribute("data-max-bytes"), 10);
      var chosen = file.files && file.files[0];
      if (chosen && chosen.size > limit) {
        problem.textContent =
          "This file is larger than " + file.getAttribute("data-max-label") +
          ", the most a download may be. Choose a smaller one.";
        problem.hidden = false;
        file.value = "";
      } else {
        problem.hidden = true;
      }
    });
  }
})();
