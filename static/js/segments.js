// The segment editor counts its members again as the rules change (the "Count and preview"
// button does the same without JavaScript).
(function () {
  "use strict";
  var form = document.querySelector("[data-segment-form]");
  if (!form || !window.fetch || !window.FormData || !window.DOMParser) {
    return;
  }
  var timer = null;
  var latest = 0;

  function refresh() {
    var asked = ++latest;
    var data = new FormData(form);
    data.set("partial", "1");
    var current = document.querySelector("[data-segment-preview]");
    if (current) {
      current.setAttribute("aria-busy", "true");
    }
    fetch(form.getAttribute("data-check-url"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "text/html" }
    })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null || asked !== latest) {
          var stale = document.querySelector("[data-segment-preview]");
          if (stale && asked === latest) {
            stale.removeAttribute("aria-busy");
          }
          return;
        }
        var parsed = new DOMParser().parseFromString(html, "text/html");
        var fresh = parsed.querySelector("[data-segment-preview]");
        var shown = document.querySelector("[data-segment-preview]");
        if (fresh && shown) {
          shown.replaceWith(document.importNode(fresh, true));
        }
      })
      .catch(function () {
        var shown = document.querySelector("[data-segment-preview]");
        if (shown) {
          shown.removeAttribute("aria-busy");
        }
      });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 400);
  }

  form.addEventListener("change", later);
  form.addEventListener("input", function (event) {
    if (event.target.name !== "name") {
      later();
    }
  });
})();
