// The analytics charts: each <canvas data-chart> is drawn from the description its page carries
// (the same numbers as the table beside it), and each [data-chart-png] button saves its chart as
// a PNG with the title on it. Without JavaScript the tables stay on show instead.
(function () {
  "use strict";
  var Chart = window.Chart;
  if (!Chart) {
    return;
  }
  var BRAND = "#4f46e5";
  var PALETTE = [BRAND, "#0d9488", "#d97706", "#db2777", "#2563eb", "#65a30d", "#7c3aed", "#475569"];
  // NPS and quiz bars say what they are by colour too (the table and tooltips say it in words).
  var TONES = { good: "#047857", neutral: "#d97706", bad: "#b91c1c", brand: BRAND, muted: "#9ca3af" };
  var TEXT = "#374151";
  var GRID = "#e5e7eb";
  var MARKER = "#b45309";
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  Chart.defaults.font.family = FONT;
  Chart.defaults.font.size = 13;
  Chart.defaults.color = TEXT;
  Chart.defaults.borderColor = GRID;
  Chart.defaults.animation = false;

  function readSpec(canvas) {
    try {
      return JSON.parse(canvas.getAttribute("data-chart") || "null");
    } catch (error) {
      return null;
    }
  }

  function formatValue(value) {
    if (value === null || value === undefined) {
      return "—";
    }
    return Number(value).toLocaleString("en");
  }

  function clock(minutes) {
    var whole = Math.round(minutes * 60);
    var hours = Math.floor(whole / 3600);
    var mins = Math.floor((whole % 3600) / 60);
    var secs = whole % 60;
    var tail = (secs < 10 ? "0" : "") + secs;
    if (hours) {
      return hours + ":" + (mins < 10 ? "0" : "") + mins + ":" + tail;
    }
    return mins + ":" + tail;
  }

  // A white page behind the chart, so the saved PNG is readable in any image viewer.
  var background = {
    id: "encoreBackground",
    beforeDraw: function (chart) {
      var ctx = chart.ctx;
      ctx.save();
      ctx.globalCompositeOperation = "destination-over";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, chart.width, chart.height);
      ctx.restore();
    }
  };

  // The number (and share) at the end of each bar, so the chart reads without hovering.
  var valueLabels = {
    id: "encoreValueLabels",
    afterDatasetsDraw: function (chart) {
      var spec = chart.$encore;
      if (!spec || spec.type !== "bar" || !spec.value_labels) {
        return;
      }
      var ctx = chart.ctx;
      var area = chart.chartArea;
      ctx.save();
      ctx.font = "600 12px " + FONT;
      ctx.fillStyle = TEXT;
      chart.getDatasetMeta(0).data.forEach(function (bar, index) {
        var text = spec.value_labels[index];
        if (!text) {
          return;
        }
        if (spec.horizontal) {
          var x = bar.x + 6;
          ctx.textAlign = "left";
          ctx.textBaseline = "middle";
          // On a narrow chart the count alone (the table has the rest), or inside the bar.
          if (x + ctx.measureText(text).width > area.right) {
            text = text.split(" · ")[0];
          }
          var width = ctx.measureText(text).width;
          if (x + width > area.right && bar.x - area.left > width + 12) {
            ctx.fillStyle = "#ffffff";
            x = bar.x - width - 6;
          }
          ctx.fillText(text, x, bar.y);
          ctx.fillStyle = TEXT;
        } else {
          ctx.textAlign = "center";
          ctx.textBaseline = "bottom";
          ctx.fillText(text, bar.x, Math.max(area.top + 12, bar.y - 4));
        }
      });
      ctx.restore();
    }
  };

  // Interactions on the drop-off curve: a dashed line at each moment with its number on top;
  // the list under the chart (and in the PNG) says which interaction each number is.
  var markers = {
    id: "encoreMarkers",
    afterDatasetsDraw: function (chart) {
      var spec = chart.$encore;
      if (!spec || !spec.markers || !spec.markers.length) {
        return;
      }
      var ctx = chart.ctx;
      var area = chart.chartArea;
      var scale = chart.scales.x;
      ctx.save();
      spec.markers.forEach(function (marker) {
        var x = scale.getPixelForValue(marker.x);
        if (x < area.left - 1 || x > area.right + 1) {
          return;
        }
        ctx.strokeStyle = MARKER;
        ctx.lineWidth = 1.5;
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x, area.top + 18);
        ctx.lineTo(x, area.bottom);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = MARKER;
        ctx.beginPath();
        ctx.arc(x, area.top + 9, 9, 0, Math.PI * 2);
        ctx.fill();
        ctx.fillStyle = "#ffffff";
        ctx.font = "700 11px " + FONT;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(String(marker.label), x, area.top + 9.5);
      });
      ctx.restore();
    }
  };

  function datasets(spec) {
    return spec.series.map(function (series, index) {
      var color = PALETTE[index % PALETTE.length];
      var set = { label: series.label, data: series.data, borderColor: color, backgroundColor: color };
      if (spec.type === "line") {
        // Each count is for a whole minute: drawn at its middle, so markers fall in place.
        set.data = series.data.map(function (value, minute) {
          return { x: minute + 0.5, y: value };
        });
        set.backgroundColor = "rgba(79, 70, 229, 0.12)";
        set.fill = true;
        set.borderWidth = 2;
        set.pointRadius = series.data.length > 60 ? 0 : 2;
        set.pointHoverRadius = 4;
      } else {
        set.borderRadius = 4;
        set.maxBarThickness = 48;
        if (series.tones) {
          set.backgroundColor = series.tones.map(function (tone) {
            return TONES[tone] || color;
          });
        }
      }
      return set;
    });
  }

  function axisTitle(text) {
    return { display: !!text, text: text || "", font: { weight: "600" } };
  }

  // x_title and y_title name the horizontal and vertical axes, whichever one holds the values.
  function scales(spec) {
    var value = {
      beginAtZero: true,
      grace: spec.type === "bar" ? "15%" : "5%",
      ticks: { precision: 0, callback: formatValue },
      grid: { color: GRID }
    };
    var category = { grid: { display: false } };
    if (spec.type === "line") {
      category.type = "linear";
      category.min = 0;
      category.max = Math.max(1, spec.series[0].data.length);
      category.grid = { color: GRID };
      category.ticks = {
        maxTicksLimit: 13,
        callback: function (tick) {
          return clock(tick);
        }
      };
    }
    var axes = spec.horizontal ? { x: value, y: category } : { x: category, y: value };
    axes.x.title = axisTitle(spec.x_title);
    axes.y.title = axisTitle(spec.y_title);
    return axes;
  }

  function tooltips(spec) {
    return {
      callbacks: {
        title: function (items) {
          if (!items.length) {
            return "";
          }
          if (spec.type === "line") {
            var minute = Math.floor(items[0].parsed.x);
            return clock(minute) + " – " + clock(minute + 1);
          }
          return spec.labels[items[0].dataIndex];
        },
        label: function (item) {
          var extra = item.datasetIndex === 0 && spec.value_labels ? spec.value_labels[item.dataIndex] : "";
          var raw = spec.type === "line" ? item.parsed.y : item.raw;
          return item.dataset.label + ": " + (extra || formatValue(raw));
        }
      }
    };
  }

  function draw(canvas) {
    var spec = readSpec(canvas);
    if (!spec || !spec.series || !spec.series.length) {
      return null;
    }
    var chart = new Chart(canvas, {
      type: spec.type === "line" ? "line" : "bar",
      data: { labels: spec.type === "line" ? undefined : spec.labels, datasets: datasets(spec) },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: spec.type === "line" ? "index" : "nearest", intersect: false },
        scales: scales(spec),
        layout: { padding: { top: 4, right: 8 } },
        plugins: {
          legend: { display: spec.series.length > 1, position: "bottom" },
          tooltip: tooltips(spec)
        }
      },
      plugins: [background, valueLabels, markers]
    });
    chart.$encore = spec;
    chart.draw();
    return chart;
  }

  // The chart as an image of its own: title on top, the chart, then the marker notes.
  function imageOf(canvas, spec) {
    var ratio = canvas.width / (canvas.clientWidth || canvas.width) || 1;
    var pad = Math.round(16 * ratio);
    var titleSize = Math.round(16 * ratio);
    var noteSize = Math.round(12 * ratio);
    var notes = spec.notes || [];
    var out = document.createElement("canvas");
    out.width = canvas.width + pad * 2;
    out.height = canvas.height + pad * 3 + titleSize + notes.length * Math.round(noteSize * 1.5);
    var ctx = out.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = "#111827";
    ctx.textBaseline = "top";
    ctx.font = "700 " + titleSize + "px " + FONT;
    ctx.fillText(spec.title || "", pad, pad);
    var top = pad * 2 + titleSize;
    ctx.drawImage(canvas, pad, top);
    ctx.font = noteSize + "px " + FONT;
    ctx.fillStyle = TEXT;
    notes.forEach(function (line, index) {
      ctx.fillText(line, pad, top + canvas.height + Math.round(pad / 2) + index * Math.round(noteSize * 1.5));
    });
    return out;
  }

  function savePng(button) {
    var figure = button.closest("[data-chart-figure]");
    var canvas = figure && figure.querySelector("canvas[data-chart]");
    var spec = canvas && readSpec(canvas);
    if (!spec || !Chart.getChart(canvas)) {
      return;
    }
    imageOf(canvas, spec).toBlob(function (blob) {
      if (!blob) {
        return;
      }
      var url = URL.createObjectURL(blob);
      var link = document.createElement("a");
      link.href = url;
      link.download = (spec.file || "chart") + ".png";
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      // The download has its own copy once started; the URL is only kept until then.
      setTimeout(function () {
        URL.revokeObjectURL(url);
      }, 10000);
    }, "image/png");
  }

  document.querySelectorAll("[data-chart-figure]").forEach(function (figure) {
    var canvas = figure.querySelector("canvas[data-chart]");
    var box = figure.querySelector("[data-chart-box]");
    if (!canvas || !box) {
      return;
    }
    box.hidden = false;
    if (!draw(canvas)) {
      box.hidden = true;
      return;
    }
    // The numbers stay for screen readers; on screen the chart shows them.
    figure.querySelectorAll("[data-chart-table]").forEach(function (table) {
      table.classList.add("sr-only");
    });
    figure.querySelectorAll("[data-chart-png]").forEach(function (button) {
      button.hidden = false;
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-chart-png]");
    if (button) {
      savePng(button);
    }
  });
})();
