// The sales funnel: ECharts (vendored) draws the opportunities created in the period by the furthest stage they
// reached — the figures of the table below it.
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("funnel-chart");
    var src = document.getElementById("funnel-data");
    if (!el || !src || typeof window.echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      color: ["#9ec5de", "#6fa8cc", "#3f8bba", "#0f5e8c", "#2e7d32"],
      tooltip: { trigger: "item", formatter: "{b}: {c}" },
      series: [{
        name: data.title, type: "funnel", sort: "none", left: "10%", width: "80%", minSize: "8%",
        label: { show: true, position: "inside", formatter: "{b}: {c}" },
        data: data.steps
      }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
