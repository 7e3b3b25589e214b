// The admin preview player: HLS through hls.js (Media Source Extensions), or natively on Safari.
(function () {
  "use strict";
  var video = document.querySelector("video[data-hls]");
  if (!video) {
    return;
  }
  var source = video.getAttribute("data-hls");
  var note = document.querySelector("[data-player-note]");
  function problem(text) {
    video.setAttribute("data-player-error", text);
    if (note) {
      note.textContent = text;
      note.hidden = false;
    }
  }
  var Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    // No worker: the CSP allows no blob: scripts, and parsing on the page is fast enough here.
    var hls = new Hls({ enableWorker: false });
    hls.on(Hls.Events.ERROR, function (event, data) {
      if (data.fatal) {
        problem("The video could not be played (" + data.details + "). Reload to try again.");
      }
    });
    hls.loadSource(source);
    hls.attachMedia(video);
    video.setAttribute("data-player", "hls.js");
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = source;
    video.setAttribute("data-player", "native");
  } else {
    problem("This browser cannot play HLS video.");
  }
})();
