// The service performance trend: ECharts (vendored) draws the totals the table under it shows — tickets received
// (bars), resolution rate and accuracy (lines on one percentage scale), CSAT and NPS (lines, each on its own
// scale), with their service goals as dashed lines.
(function () {
  "use strict";
  var percent = window.PharmaCRM.percent; // app.js: as the pages write a percentage
  function draw() {
    var el = document.getElementById("performance-chart");
    var src = document.getElementById("performance-data");
    if (!el || !src || typeof window.echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var colors = ["#0f5e8c", "#2e7d32", "#b26a00", "#7b1fa2", "#c2185b"];
    // the scales: counts, percentages, CSAT, NPS; each series names its own (s.axis)
    var ranges = [{ min: 0 }, { min: 0, max: 100 }, { min: 1, max: 5 }, { min: -100, max: 100 }];
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      color: colors,
      grid: { left: 8, right: 8, top: 40, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      xAxis: { type: "category", data: data.periods },
      yAxis: ranges.map(function (r, i) {
        return { type: "value", min: r.min, max: r.max, show: i < 2, position: i === 0 ? "left" : "right",
                 splitLine: { show: i === 0 }, axisLabel: i === 1 ? { formatter: "{value}%" } : {} };
      }),
      series: data.series.map(function (s, i) {
        var out = { name: s.name, type: i === 0 ? "bar" : "line", yAxisIndex: s.axis, data: s.data, connectNulls: false };
        if (s.axis === 1) out.tooltip = { valueFormatter: percent };  // the rates, on the percentage scale
        if (s.goal !== null && s.goal !== undefined) {  // the service goal, a dashed line on the figure's own scale
          out.markLine = { symbol: "none", silent: true, lineStyle: { type: "dashed" },
                           label: { formatter: s.goal_label, position: "insideEndTop" }, data: [{ yAxis: s.goal }] };
        }
        return out;
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
