// The channel effect: ECharts (vendored) draws the customers reached per channel (bars) and the conversion of the
// customers judged (line, right axis) — the figures of the table below it.
(function () {
  "use strict";
  var percent = window.PharmaCRM.percent; // app.js: as the pages write a percentage
  function draw() {
    var el = document.getElementById("channels-chart");
    var src = document.getElementById("channels-data");
    if (!el || !src || typeof window.echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      color: ["#6fa8cc", "#2e7d32"],
      tooltip: { trigger: "axis" },
      legend: { data: data.names },
      xAxis: { type: "category", data: data.channels, axisLabel: { interval: 0, width: 90, overflow: "break" } },
      yAxis: [{ type: "value", minInterval: 1 }, { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } }],
      series: [
        { name: data.names[0], type: "bar", data: data.customers },
        { name: data.names[1], type: "line", yAxisIndex: 1, connectNulls: false, data: data.conversion,
          tooltip: { valueFormatter: percent } }
      ]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
