// The supervisor board's intake chart: ECharts (vendored) draws the figures the table next to it shows.
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("intake-chart");
    var src = document.getElementById("intake-data");
    if (!el || !src || typeof window.echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: data.labels, inverse: true },
      series: [{ name: data.series, type: "bar", data: data.values, itemStyle: { color: "#0f5e8c" } }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
