// Landing page and embedded form: the visitor's own time zone, the referrer, and error focus.
// Everything works without JavaScript; this only makes it smoother.
(function () {
  "use strict";
  var form = document.querySelector("[data-register]");
  var detected = "";
  try {
    detected = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    detected = "";
  }

  if (form) {
    var rendered = form.getAttribute("data-zone") || "";
    var explicit = form.hasAttribute("data-zone-explicit");
    var params = new URLSearchParams(window.location.search);
    var referrerInput = form.querySelector("[data-referrer]");
    var storageKey = "encore-referrer:" + window.location.pathname;

    // Keep where the visitor came from across the zone switch below (a reload from our own
    // page would otherwise report this page as the referrer).
    if (referrerInput) {
      try {
        if (referrerInput.value) {
          window.sessionStorage.setItem(storageKey, referrerInput.value);
        } else {
          var kept = window.sessionStorage.getItem(storageKey);
          var outside = document.referrer && document.referrer.indexOf(window.location.origin + "/") !== 0;
          referrerInput.value = kept || (outside ? document.referrer.slice(0, 500) : "");
        }
      } catch (error) {
        // Storage may be blocked (third-party iframe, privacy mode): the server value stands.
      }
    }

    // Times were rendered in the schedule's zone: show them once in the visitor's own zone.
    if (!explicit && !params.has("tz") && detected && detected !== rendered) {
      params.set("tz", detected);
      window.location.replace(window.location.pathname + "?" + params.toString());
      return;
    }
    var zoneInput = form.querySelector("[data-timezone]");
    if (zoneInput && !explicit && !params.has("tz") && detected) {
      zoneInput.value = detected;
    }
  }

  // After a refused submission, take keyboard and screen reader users to the list of problems.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.focus();
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-error-summary] a[href^='#']");
    if (!link) {
      return;
    }
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (target) {
      event.preventDefault();
      target.focus();
      target.scrollIntoView({ block: "center" });
    }
  });
})();
