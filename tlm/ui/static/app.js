/* TLM console: keyboard shortcuts for reviews, charts for the analysis page, small navigation
   helpers. Served from the console itself (the CSP allows no inline script). */
(function () {
  "use strict";

  function typing(event) {
    var t = event.target;
    return t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT" || t.isContentEditable);
  }

  /* --- reviews: j/k to move, a/r/e to decide, ctrl+enter to save an edit --- */
  function reviewKeys() {
    if (document.body.dataset.page !== "reviews") return;
    document.addEventListener("keydown", function (event) {
      var editor = document.getElementById("review-editor");
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && editor && event.target === editor) {
        event.preventDefault();
        document.getElementById("save-edit").click();
        return;
      }
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
      var links = Array.prototype.slice.call(document.querySelectorAll(".queue-list a[data-review]"));
      var current = document.getElementById("review-id");
      var index = -1;
      links.forEach(function (a, i) { if (current && a.dataset.review === current.textContent) index = i; });
      if (event.key === "j" || event.key === "k") {
        var next = links[event.key === "j" ? index + 1 : index - 1];
        if (next) window.location.href = next.getAttribute("href");
        return;
      }
      if (event.key === "a") { var approve = document.getElementById("approve"); if (approve) approve.click(); }
      if (event.key === "r") {
        var note = document.getElementById("review-note");
        if (note && !note.value.trim()) { note.focus(); event.preventDefault(); return; }
        var reject = document.getElementById("reject"); if (reject) reject.click();
      }
      if (event.key === "e") {
        var panel = document.getElementById("edit-panel");
        if (panel) { panel.open = true; event.preventDefault(); document.getElementById("review-editor").focus(); }
      }
    });
    /* an empty review panel opens the first review that arrives */
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.target.id !== "review-items" || document.getElementById("review-id")) return;
      var first = document.querySelector(".queue-list a[data-review]");
      if (first) window.location.href = first.getAttribute("href");
    });
  }

  /* --- analysis: task and period pickers navigate; charts from the page's JSON --- */
  function analysisNav() {
    var task = document.getElementById("analysis-task");
    var period = document.getElementById("analysis-period");
    if (!task || !period) return;
    function go() {
      window.location.href = "/analysis/" + encodeURIComponent(task.value) + "?period=" + encodeURIComponent(period.value);
    }
    task.addEventListener("change", go);
    period.addEventListener("change", go);
  }

  var PALETTE = ["#2f5bd3", "#1f9d73", "#d4843b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];

  function chartWidth(el) { return Math.max(280, el.clientWidth || 600); }

  function passRateChart(data) {
    var el = document.getElementById("chart-pass-rate");
    if (!el || !data.days.length || typeof uPlot === "undefined") return;
    var series = [{}];
    var columns = [data.days];
    var bands = [];
    Object.keys(data.pass_rate).forEach(function (model, i) {
      var color = PALETTE[i % PALETTE.length];
      var s = data.pass_rate[model];
      var base = columns.length;
      columns.push(s.rate, s.high, s.low);
      series.push({ label: model, stroke: color, width: 2, points: { show: true, size: 6 }, value: pct });
      series.push({ label: model + " 95% high", stroke: color, width: 0, dash: [4, 4], points: { show: false }, value: pct });
      series.push({ label: model + " 95% low", stroke: color, width: 0, dash: [4, 4], points: { show: false }, value: pct });
      bands.push({ series: [base + 1, base + 2], fill: color + "22" });
    });
    var plot = new uPlot({
      width: chartWidth(el), height: 260, series: series, bands: bands,
      scales: { y: { range: [0, 1] } },
      axes: [{}, { values: function (u, ticks) { return ticks.map(function (t) { return Math.round(t * 100) + "%"; }); } }],
      legend: { live: false }
    }, columns, el);
    /* the interval bounds draw the bands; the legend names only the models */
    var rows = plot.root.querySelectorAll(".u-legend .u-series");
    Array.prototype.forEach.call(rows, function (row) { if (row.textContent.indexOf("95%") >= 0) row.style.display = "none"; });
  }

  function pct(u, v) { return v == null ? "-" : (v * 100).toFixed(1) + "%"; }

  function barChart(id, groups, keys, labels, unit) {
    var el = document.getElementById(id);
    if (!el || !groups.length || typeof uPlot === "undefined") return;
    var xs = groups.map(function (g, i) { return i; });
    var columns = [xs];
    var series = [{}];
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6 / keys.length, 60] }) : null;
    keys.forEach(function (key, i) {
      columns.push(groups.map(function (g) { return g[key]; }));
      series.push({ label: labels[i], stroke: PALETTE[i], fill: PALETTE[i] + "cc", width: 1, paths: bars, points: { show: false },
        value: function (u, v) { return v == null ? "-" : unit(v); } });
    });
    new uPlot({
      width: chartWidth(el), height: 240, series: series,
      scales: { x: { time: false, range: [-0.6, groups.length - 0.4] }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return Number.isInteger(t) && groups[t] ? "#" + (t + 1) : ""; }); }, size: 40, incrs: [1] },
        { values: function (u, ticks) { return ticks.map(unit); }, size: 90 }
      ],
      legend: { live: false }
    }, columns, el);
  }

  function charts() {
    var holder = document.getElementById("chart-data");
    if (!holder) return;
    var data = JSON.parse(holder.textContent);
    passRateChart(data);
    barChart("chart-cost", data.groups, ["cost"], ["mean cost"], function (v) { return "$" + Number(v).toPrecision(3); });
    barChart("chart-latency", data.groups, ["p50", "p95"], ["p50", "p95"], function (v) { return v < 1 ? Math.round(v * 1000) + " ms" : v.toFixed(2) + " s"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    reviewKeys();
    analysisNav();
    charts();
  });
})();
