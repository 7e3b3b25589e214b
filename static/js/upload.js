// Resumable uploads on the media page.
// Local storage: tus to this server (tus-js-client). S3: presigned multipart, the browser PUTs each
// part straight to the bucket. Either way an upload survives a dropped connection (it retries and
// continues) and a page reload (choose the same file again: it continues from what arrived).
(function () {
  "use strict";
  var root = document.querySelector("[data-upload]");
  if (!root) {
    return;
  }
  var MB = 1000 * 1000;
  var TUS_CHUNK = 64 * 1024 * 1024; // bounded PATCH bodies: proxies and retries stay cheap
  var S3_PARALLEL = 3;
  var S3_SIGN_BATCH = 20;
  var URL_LIFE_MS = 50 * 60 * 1000; // part URLs are signed for an hour: renew before that
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  var DONE_KEY = "encore-upload-done";
  var S3_PREFIX = "encore-s3::";
  var TUS_PREFIX = "tus::encore/";

  var backend = root.getAttribute("data-backend");
  var csrf = root.getAttribute("data-csrf");
  var maxBytes = Number(root.getAttribute("data-max-bytes"));
  var maxLabel = root.getAttribute("data-max-label");
  var tusEndpoint = root.getAttribute("data-tus-endpoint");
  var s3Endpoint = root.getAttribute("data-s3-endpoint");
  var finishUrl = root.getAttribute("data-finish-url");

  function $(name) {
    return root.querySelector("[data-upload-" + name + "]");
  }
  var input = $("input");
  var panel = $("panel");
  var bar = $("bar");
  var percent = $("percent");
  var stats = $("stats");
  var phase = $("phase");
  var errorBox = $("error");
  var doneBox = $("done");
  var pauseButton = $("pause");
  var resumeButton = $("resume");
  var cancelButton = $("cancel");

  var current = null; // the running upload: {file, pause(), resume(), cancel()}
  var samples = [];

  // --- what the person sees --------------------------------------------------------------------

  function show(node, visible) {
    node.hidden = !visible;
  }

  function size(bytes) {
    if (bytes >= 1000 * MB) {
      return (bytes / (1000 * MB)).toFixed(2) + " GB";
    }
    return (bytes / MB).toFixed(1) + " MB";
  }

  function duration(seconds) {
    if (!isFinite(seconds)) {
      return "";
    }
    seconds = Math.ceil(seconds);
    if (seconds < 60) {
      return seconds + " s";
    }
    var minutes = Math.round(seconds / 60);
    return minutes < 90 ? minutes + " min" : (minutes / 60).toFixed(1) + " h";
  }

  function setPhase(text) {
    phase.textContent = text;
  }

  function fail(message) {
    errorBox.textContent = message;
    show(errorBox, true);
  }

  function clearMessages() {
    show(errorBox, false);
    show(doneBox, false);
  }

  function progress(sent, total) {
    var now = Date.now();
    samples.push([now, sent]);
    while (samples.length > 2 && now - samples[0][0] > 5000) {
      samples.shift();
    }
    var pct = total ? Math.floor((sent / total) * 100) : 0;
    bar.value = pct;
    percent.textContent = pct + "%";
    var text = size(sent) + " of " + size(total);
    var first = samples[0];
    var elapsed = (now - first[0]) / 1000;
    if (elapsed >= 0.5 && sent > first[1]) {
      var speed = (sent - first[1]) / elapsed;
      text += " · " + (speed / MB).toFixed(1) + " MB/s";
      if (sent < total) {
        text += " · about " + duration((total - sent) / speed) + " left";
      }
    }
    stats.textContent = text;
  }

  function running(isRunning) {
    show(pauseButton, isRunning);
    show(resumeButton, !isRunning);
    input.disabled = isRunning;
  }

  function begin(file) {
    clearMessages();
    samples = [];
    $("name").textContent = file.name;
    show(panel, true);
    show(cancelButton, true);
    progress(0, file.size);
    running(true);
    setPhase("Uploading…");
  }

  function finished(video) {
    current = null;
    bar.value = 100;
    percent.textContent = "100%";
    setPhase("Uploaded");
    // Reload so the list (and its live processing state) includes the new recording.
    try {
      sessionStorage.setItem(DONE_KEY, JSON.stringify({ title: video.title, url: video.url }));
      window.location.reload();
    } catch (e) {
      announceDone(video);
    }
  }

  function announceDone(video) {
    doneBox.textContent = "“" + video.title + "” is uploaded and will be processed now. ";
    var link = document.createElement("a");
    link.href = video.url;
    link.textContent = "Open it";
    doneBox.appendChild(link);
    show(doneBox, true);
  }

  function stopped(message) {
    running(false);
    setPhase("");
    if (message) {
      fail(message);
    }
  }

  function reset() {
    current = null;
    show(panel, false);
    input.disabled = false;
    input.value = "";
  }

  // --- answers from the server -----------------------------------------------------------------

  function serverMessage(status, body) {
    try {
      var parsed = JSON.parse(body);
      if (parsed && parsed.message) {
        return parsed.message;
      }
    } catch (e) {
      // not JSON: fall through to the status
    }
    if (status === 401) {
      return "You were signed out. Sign in again in another tab, then press Resume.";
    }
    if (status === 403) {
      return "Your role does not allow uploading recordings.";
    }
    if (status === 413) {
      return "The file is larger than the limit of " + maxLabel + ".";
    }
    if (status >= 500) {
      return "The server had a problem (" + status + "). Press Resume to try again.";
    }
    return "The upload failed (" + status + ").";
  }

  function permanent(status) {
    // Answers that another attempt would not change.
    return status === 400 || status === 401 || status === 403 || status === 404 ||
      status === 413 || status === 415 || status === 422;
  }

  function request(method, url, body) {
    var headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch (e) {
          data = null;
        }
        return { status: response.status, ok: response.ok, data: data, text: text };
      });
    });
  }

  function fingerprint(file) {
    return ["encore", file.name, file.type, file.size, file.lastModified].join("/");
  }

  function check(file) {
    if (file.size === 0) {
      return "The file is empty.";
    }
    if (file.size > maxBytes) {
      return "The file is " + size(file.size) + "; the limit is " + maxLabel + ".";
    }
    return "";
  }

  // --- tus (local storage) ---------------------------------------------------------------------

  function finishTus(url, attempt) {
    setPhase("Checking the file…");
    var id = url.split("/").pop();
    request("POST", finishUrl.replace("{id}", id)).then(function (answer) {
      if (answer.ok) {
        forgetTus(current && current.file);
        finished(answer.data);
      } else if (answer.status === 409 && answer.data && answer.data.error === "conflict" &&
        attempt < 5) {
        setTimeout(function () { finishTus(url, attempt + 1); }, 2000);
      } else if (answer.status === 409 && current) {
        current.resume(); // not every byte arrived: continue the upload
      } else {
        forgetTus(current && current.file);
        stopped(serverMessage(answer.status, answer.text));
        show(resumeButton, false);
        input.disabled = false;
      }
    }, function () {
      stopped("The connection was lost while the file was checked. Press Resume to try again.");
      current.resume = function () { running(true); finishTus(url, 0); };
    });
  }

  function forgetTus(file) {
    if (!file) {
      return;
    }
    var prefix = "tus::" + fingerprint(file) + "::";
    Object.keys(localStorage).forEach(function (key) {
      if (key.indexOf(prefix) === 0) {
        localStorage.removeItem(key);
      }
    });
  }

  function startTus(file) {
    var upload = new window.tus.Upload(file, {
      endpoint: tusEndpoint,
      chunkSize: TUS_CHUNK,
      retryDelays: RETRY_DELAYS,
      headers: { "X-CSRF-Token": csrf },
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      fingerprint: function () { return Promise.resolve(fingerprint(file)); },
      removeFingerprintOnSuccess: false, // removed once the server has accepted the file
      onProgress: function (sent, total) {
        setPhase("Uploading…");
        progress(sent, total);
      },
      onShouldRetry: function (err) {
        var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        if (permanent(status)) {
          return false;
        }
        setPhase("Connection lost, retrying…");
        return true;
      },
      onError: function (err) {
        var response = err.originalResponse;
        if (response) {
          stopped(serverMessage(response.getStatus(), response.getBody()));
        } else {
          stopped("The connection was lost. Press Resume to continue where it stopped.");
        }
      },
      onSuccess: function () {
        progress(file.size, file.size);
        finishTus(upload.url, 0);
      }
    });
    current = {
      file: file,
      pause: function () { upload.abort(); },
      resume: function () { upload.start(); },
      cancel: function () {
        return upload.abort(true).then(function () { forgetTus(file); }, function () {
          forgetTus(file);
        });
      }
    };
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        setPhase("Continuing where it stopped…");
      }
      upload.start();
    });
  }

  // --- S3 multipart (the bytes go straight to the bucket) ---------------------------------------

  function startS3(file) {
    var storeKey = S3_PREFIX + fingerprint(file);
    var info = null; // {upload_id, key, part_size, part_count}
    var etags = {}; // part number -> ETag, once S3 has the part
    var urls = {}; // part number -> [url, signed at]
    var loaded = {}; // part number -> bytes sent of a part in flight
    var inflight = {}; // part number -> XMLHttpRequest
    var queue = [];
    var paused = false;
    var failures = 0;
    var completing = false;

    function sent() {
      var total = 0;
      Object.keys(etags).forEach(function (n) { total += partSize(Number(n)); });
      Object.keys(loaded).forEach(function (n) { total += loaded[n]; });
      return Math.min(total, file.size);
    }

    function partSize(number) {
      var start = (number - 1) * info.part_size;
      return Math.min(info.part_size, file.size - start);
    }

    function remember() {
      localStorage.setItem(storeKey, JSON.stringify({
        uploadId: info.upload_id, key: info.key, name: file.name, size: file.size
      }));
    }

    function open() {
      var saved = null;
      try {
        saved = JSON.parse(localStorage.getItem(storeKey) || "null");
      } catch (e) {
        saved = null;
      }
      if (saved && saved.uploadId) {
        return request("GET", s3Endpoint + "/" + saved.uploadId).then(function (answer) {
          if (answer.ok) {
            info = answer.data;
            answer.data.parts.forEach(function (part) {
              if (part.size === partSize(part.number)) {
                etags[part.number] = part.etag;
              }
            });
            setPhase("Continuing where it stopped…");
            return;
          }
          localStorage.removeItem(storeKey);
          return create();
        });
      }
      return create();
    }

    function create() {
      return request("POST", s3Endpoint, {
        filename: file.name, size: file.size, type: file.type
      }).then(function (answer) {
        if (!answer.ok) {
          throw { status: answer.status, text: answer.text };
        }
        info = answer.data;
        remember();
      });
    }

    function sign(number) {
      var cached = urls[number];
      if (cached && Date.now() - cached[1] < URL_LIFE_MS) {
        return Promise.resolve(cached[0]);
      }
      var batch = [number].concat(queue.filter(function (n) {
        return !urls[n] || Date.now() - urls[n][1] >= URL_LIFE_MS;
      }).slice(0, S3_SIGN_BATCH - 1));
      return request("POST", s3Endpoint + "/" + info.upload_id + "/sign", { parts: batch })
        .then(function (answer) {
          if (!answer.ok) {
            throw { status: answer.status, text: answer.text };
          }
          Object.keys(answer.data.urls).forEach(function (n) {
            urls[n] = [answer.data.urls[n], Date.now()];
          });
          return urls[number][0];
        });
    }

    function put(number, url) {
      return new Promise(function (resolve, reject) {
        var start = (number - 1) * info.part_size;
        var xhr = new XMLHttpRequest();
        inflight[number] = xhr;
        xhr.open("PUT", url);
        xhr.upload.onprogress = function (event) {
          loaded[number] = event.loaded;
          progress(sent(), file.size);
        };
        xhr.onload = function () {
          delete inflight[number];
          delete loaded[number];
          var etag = xhr.getResponseHeader("ETag");
          if (xhr.status >= 200 && xhr.status < 300 && etag) {
            resolve(etag);
          } else if (xhr.status >= 200 && xhr.status < 300) {
            reject({ status: 0, text: JSON.stringify({ message:
              "The bucket does not show uploads their ETag: its CORS rules must expose it." }) });
          } else {
            if (xhr.status === 403) {
              delete urls[number]; // expired or refused signature: sign again
            }
            reject({ status: xhr.status, text: "", part: true });
          }
        };
        xhr.onerror = function () {
          delete inflight[number];
          delete loaded[number];
          reject({ status: 0, text: "", part: true });
        };
        xhr.onabort = function () {
          delete inflight[number];
          delete loaded[number];
          reject({ aborted: true });
        };
        xhr.send(file.slice(start, start + partSize(number)));
      });
    }

    function worker() {
      if (paused || !queue.length) {
        return Promise.resolve();
      }
      var number = queue.shift();
      return sign(number).then(function (url) { return put(number, url); }).then(function (etag) {
        etags[number] = etag;
        failures = 0;
        setPhase("Uploading…");
        progress(sent(), file.size);
        return worker();
      }, function (problem) {
        queue.unshift(number);
        if (problem.aborted || paused) {
          return undefined;
        }
        if (problem.part && failures < RETRY_DELAYS.length) {
          setPhase("Connection lost, retrying…");
          var delay = RETRY_DELAYS[failures++];
          return new Promise(function (resolve) { setTimeout(resolve, delay); }).then(worker);
        }
        throw problem;
      });
    }

    function run() {
      paused = false;
      queue = [];
      for (var n = 1; n <= info.part_count; n++) {
        if (!etags[n]) {
          queue.push(n);
        }
      }
      progress(sent(), file.size);
      var workers = [];
      for (var i = 0; i < S3_PARALLEL; i++) {
        workers.push(worker());
      }
      return Promise.all(workers).then(function () {
        if (!paused && !queue.length && !completing) {
          return complete();
        }
        return undefined;
      });
    }

    function complete() {
      completing = true;
      setPhase("Checking the file…");
      var parts = [];
      for (var n = 1; n <= info.part_count; n++) {
        parts.push({ number: n, etag: etags[n] });
      }
      return request("POST", s3Endpoint + "/" + info.upload_id + "/complete", { parts: parts })
        .then(function (answer) {
          completing = false;
          if (answer.ok) {
            localStorage.removeItem(storeKey);
            finished(answer.data);
            return;
          }
          if (answer.status === 422 || answer.status === 404) {
            localStorage.removeItem(storeKey);
          }
          throw { status: answer.status, text: answer.text };
        });
    }

    function onFailure(problem) {
      if (paused) {
        return;
      }
      if (problem && problem.status !== undefined) {
        stopped(problem.status === 0 && !problem.text
          ? "The connection was lost. Press Resume to continue where it stopped."
          : serverMessage(problem.status, problem.text));
        if (permanent(problem.status) && problem.status !== 401) {
          show(resumeButton, false);
          input.disabled = false;
        }
      } else {
        stopped("The upload stopped unexpectedly. Press Resume to try again.");
      }
    }

    function abortAll() {
      Object.keys(inflight).forEach(function (n) { inflight[n].abort(); });
    }

    current = {
      file: file,
      pause: function () {
        paused = true;
        abortAll();
      },
      resume: function () {
        failures = 0;
        (info ? Promise.resolve() : open()).then(run).catch(onFailure);
      },
      cancel: function () {
        paused = true;
        abortAll();
        localStorage.removeItem(storeKey);
        return info ? request("DELETE", s3Endpoint + "/" + info.upload_id) : Promise.resolve();
      }
    };
    open().then(run).catch(onFailure);
  }

  // --- unfinished uploads from an earlier visit -------------------------------------------------

  function listPending() {
    var list = $("pending-list");
    list.textContent = "";
    var found = [];
    Object.keys(localStorage).forEach(function (key) {
      var entry = null;
      try {
        entry = JSON.parse(localStorage.getItem(key));
      } catch (e) {
        return;
      }
      if (!entry) {
        return;
      }
      if (backend === "s3" && key.indexOf(S3_PREFIX) === 0) {
        found.push({ key: key, name: entry.name, size: entry.size,
          url: s3Endpoint + "/" + entry.uploadId });
      } else if (backend !== "s3" && key.indexOf(TUS_PREFIX) === 0 && entry.uploadUrl) {
        found.push({ key: key, name: (entry.metadata || {}).filename, size: entry.size,
          url: entry.uploadUrl, tus: true });
      }
    });
    found.forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = (item.name || "A file") + " (" + size(item.size || 0) + ") ";
      var discard = document.createElement("button");
      discard.type = "button";
      discard.className = "link-button";
      discard.textContent = "Discard";
      discard.addEventListener("click", function () {
        var headers = { "X-CSRF-Token": csrf };
        if (item.tus) {
          headers["Tus-Resumable"] = "1.0.0";
        }
        fetch(item.url, { method: "DELETE", headers: headers, credentials: "same-origin" })
          .finally(function () {
            localStorage.removeItem(item.key);
            listPending();
          });
      });
      li.appendChild(discard);
      list.appendChild(li);
    });
    show($("pending"), found.length > 0 && !current);
  }

  // --- wiring ---------------------------------------------------------------------------------

  input.addEventListener("change", function () {
    var file = input.files && input.files[0];
    if (!file || current) {
      return;
    }
    var problem = check(file);
    if (problem) {
      clearMessages();
      fail(problem);
      input.value = "";
      return;
    }
    show($("pending"), false);
    begin(file);
    if (backend === "s3") {
      startS3(file);
    } else {
      startTus(file);
    }
  });

  pauseButton.addEventListener("click", function () {
    if (current) {
      current.pause();
      running(false);
      setPhase("Paused");
    }
  });

  resumeButton.addEventListener("click", function () {
    if (current) {
      clearMessages();
      running(true);
      setPhase("Uploading…");
      current.resume();
    }
  });

  cancelButton.addEventListener("click", function () {
    if (current && window.confirm("Cancel this upload? What was sent so far is discarded.")) {
      var upload = current;
      reset();
      upload.cancel();
      listPending();
    }
  });

  window.addEventListener("online", function () {
    if (current && !resumeButton.hidden && !errorBox.hidden) {
      clearMessages();
      running(true);
      current.resume();
    }
  });

  window.addEventListener("beforeunload", function (event) {
    if (current && !pauseButton.hidden) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  try {
    var done = JSON.parse(sessionStorage.getItem(DONE_KEY) || "null");
    sessionStorage.removeItem(DONE_KEY);
    if (done) {
      announceDone(done);
    }
  } catch (e) {
    // storage unavailable: nothing to announce
  }
  listPending();
})();
