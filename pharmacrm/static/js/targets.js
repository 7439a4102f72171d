// The attainment chart: ECharts (vendored) draws each row's target, actual and last year's actual — the figures of
// the table above it, in yuan.
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("targets-chart");
    var src = document.getElementById("targets-data");
    if (!el || !src || typeof window.echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      color: ["#9e9e9e", "#0f5e8c", "#b26a00"],
      grid: { left: 8, right: 8, top: 40, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      xAxis: { type: "category", data: data.labels },
      yAxis: { type: "value", min: 0 },
      series: [
        { name: data.names.target, type: "bar", data: data.target },
        { name: data.names.actual, type: "bar", data: data.actual },
        { name: data.names.last_year, type: "bar", data: data.last_year }
      ]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
