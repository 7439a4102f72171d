// The competitor analysis chart: ECharts (vendored) draws the observations of each competitor product per quarter
// — the products of the table above it.
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("market-chart");
    var src = document.getElementById("market-data");
    if (!el || !src || typeof window.echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      grid: { left: 8, right: 8, top: 40, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      legend: { top: 0, type: "scroll" },
      xAxis: { type: "category", data: data.labels },
      yAxis: { type: "value", min: 0, minInterval: 1 },
      series: data.series.map(function (s) { return { name: s.name, type: "bar", stack: "all", data: s.data }; })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
