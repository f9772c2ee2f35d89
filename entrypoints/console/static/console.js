// Draws each <canvas class="chart"> from the JSON its data-source answers (the same figures
// as the table beside it, which stays the accessible fallback). Chart.js is served from here.
"use strict";
(function () {
  // Minor units to the currency's units (EUR: 2 decimals, JPY: none), as ISO 4217 says.
  const major = (minor, currency) =>
    minor / 10 ** new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  const palette = ["#23395d", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#16a085"];

  function liability(canvas, data) {
    const labels = data.series.map((p) => p.month);
    const markets = [...new Set(data.series.flatMap((p) => p.markets.map((m) => m.market + " (" + m.currency + ")")))];
    const datasets = markets.map((name, i) => ({
      label: name,
      borderColor: palette[i % palette.length],
      backgroundColor: palette[i % palette.length],
      data: data.series.map((p) => {
        const m = p.markets.find((x) => x.market + " (" + x.currency + ")" === name);
        return m ? major(m.outstanding, m.currency) : 0;
      }),
    }));
    return { type: "line", data: { labels, datasets } };
  }

  function breakage(canvas, data) {
    const labels = [...new Set(data.rows.map((r) => r.month))];
    const sum = (month, field) => data.rows.filter((r) => r.month === month).reduce((a, r) => a + major(r[field], r.currency), 0);
    return {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: canvas.dataset.afterUse, backgroundColor: palette[0], data: labels.map((m) => sum(m, "after_use")) },
          { label: canvas.dataset.expired, backgroundColor: palette[1], data: labels.map((m) => sum(m, "expired")) },
        ],
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true } } },
    };
  }

  const kinds = { liability, breakage };
  document.querySelectorAll("canvas.chart").forEach((canvas) => {
    fetch(canvas.dataset.source, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((data) => {
        const config = kinds[canvas.dataset.kind](canvas, data);
        config.options = Object.assign({ animation: false, responsive: true }, config.options || {});
        new Chart(canvas, config);
        // Marked once the browser has painted it (after Chart.js's own resize).
        requestAnimationFrame(() => requestAnimationFrame(() => { canvas.dataset.drawn = "true"; }));
      })
      .catch(() => { canvas.dataset.drawn = "failed"; });
  });
})();
