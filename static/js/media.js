// Live processing state on the media pages: polls the JSON status and updates badges and bars.
(function () {
  "use strict";
  var FINAL = { ready: true, failed: true };
  var POLL_MS = 2000;
  var RETRY_MS = 10000;
  // On a recording's own page a change of state (or a first playable version) reloads the page,
  // which brings the player and the right buttons.
  var reloadOnChange = document.querySelector("[data-reload-on-change]") !== null;

  // Looked up at every poll: the upload widget may add rows for new recordings.
  function statusNodes() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-video-status]"));
  }

  function etaText(seconds) {
    if (seconds === null || seconds === undefined) {
      return "";
    }
    if (seconds < 60) {
      return "less than a minute left";
    }
    var minutes = Math.round(seconds / 60);
    if (minutes < 90) {
      return "about " + minutes + " min left";
    }
    return "about " + (minutes / 60).toFixed(1) + " h left";
  }

  function field(node, name) {
    return node.querySelector('[data-field="' + name + '"]');
  }

  function update(node, video) {
    var before = node.getAttribute("data-state");
    var wasPlayable = node.getAttribute("data-playable");
    var playable = video.playable ? "true" : "false";
    node.setAttribute("data-state", video.state);
    node.setAttribute("data-playable", playable);
    var badge = field(node, "state").querySelector(".badge");
    badge.textContent = video.state;
    badge.className = "badge badge-" + video.state;
    field(node, "playable").hidden = !(video.playable && video.state === "transcoding");
    field(node, "progress-wrap").hidden = video.state !== "transcoding";
    field(node, "waiting").hidden = video.state !== "uploaded";
    field(node, "progress").value = video.progress;
    field(node, "progress").textContent = Math.round(video.progress) + "%";
    var parts = [video.stage_label, Math.round(video.progress) + "%"];
    var eta = etaText(video.eta_seconds);
    if (eta) {
      parts.push(eta);
    }
    if (video.cancel_requested) {
      parts.push("stopping…");
    }
    field(node, "detail").textContent = parts.join(" · ");
    var error = field(node, "error");
    error.textContent = video.error || "";
    error.hidden = !video.error;
    if (reloadOnChange && (before !== video.state || wasPlayable !== playable)) {
      window.location.reload();
    }
  }

  function pending(nodes) {
    return nodes.filter(function (node) {
      return !FINAL[node.getAttribute("data-state")];
    });
  }

  function schedule(delay) {
    window.setTimeout(poll, delay);
  }

  function poll() {
    var nodes = statusNodes();
    var waiting = pending(nodes);
    if (!waiting.length) {
      schedule(POLL_MS);
      return;
    }
    var ids = waiting.map(function (node) {
      return node.getAttribute("data-video-id");
    });
    fetch("/admin/media/status?ids=" + ids.join(","), {
      headers: { accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    })
      .then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (!response.ok || type.indexOf("application/json") !== 0) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        data.videos.forEach(function (video) {
          nodes.forEach(function (node) {
            if (node.getAttribute("data-video-id") === String(video.id)) {
              update(node, video);
            }
          });
        });
        schedule(POLL_MS);
      })
      .catch(function () {
        // Signed out or offline: keep the page as it is and look again later.
        schedule(RETRY_MS);
      });
  }

  schedule(POLL_MS);
})();
