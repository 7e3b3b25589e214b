// Live countdowns to a session start ([data-countdown] with data-starts-at in ISO 8601), and the
// copy button of the personal join link. The server renders a text fallback for both.
(function () {
  "use strict";
  var timers = Array.prototype.slice.call(document.querySelectorAll("[data-countdown]"));

  function unit(lang, name, value) {
    try {
      return new Intl.NumberFormat(lang, { style: "unit", unit: name, unitDisplay: "long" }).format(value);
    } catch (error) {
      return value + " " + name + (value === 1 ? "" : "s");
    }
  }

  function render(element) {
    var start = Date.parse(element.getAttribute("data-starts-at"));
    var lang = element.getAttribute("data-lang") || document.documentElement.lang || "en";
    if (isNaN(start)) {
      return false;
    }
    var left = Math.floor((start - Date.now()) / 1000);
    if (left <= 0) {
      element.textContent = element.getAttribute("data-started-text") || "";
      if (element.hasAttribute("data-reload-at-start")) {
        window.setTimeout(function () { window.location.reload(); }, 1500);
      }
      return false;
    }
    var days = Math.floor(left / 86400);
    var hours = Math.floor((left % 86400) / 3600);
    var minutes = Math.floor((left % 3600) / 60);
    var seconds = left % 60;
    var parts = [];
    if (days) {
      parts.push(unit(lang, "day", days));
    }
    if (days || hours) {
      parts.push(unit(lang, "hour", hours));
    }
    parts.push(unit(lang, "minute", minutes));
    if (!days) {
      parts.push(unit(lang, "second", seconds));
    }
    var template = element.getAttribute("data-template") || "{time}";
    element.textContent = template.replace("{time}", parts.join(" "));
    element.classList.add("countdown-live");
    return true;
  }

  function tick() {
    timers = timers.filter(render);
    if (timers.length) {
      window.setTimeout(tick, 1000 - (Date.now() % 1000));
    }
  }
  tick();

  var copy = document.querySelector("[data-copy-from]");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      var input = document.getElementById(copy.getAttribute("data-copy-from"));
      var status = document.querySelector("[data-copy-status]");
      navigator.clipboard.writeText(input.value).then(function () {
        if (status) {
          status.textContent = copy.getAttribute("data-copied-text");
        }
        copy.textContent = copy.getAttribute("data-copied-text");
      });
    });
  }
})();
