(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function text(parent, x, y, s, anchor) {
    var t = el("text", {x: x, y: y, "font-size": 11, fill: "#666", "text-anchor": anchor || "start"}, parent);
    t.textContent = s;
    return t;
  }
  function niceMax(v) {
    if (!(v > 0)) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function label(v, range) {
    return range >= 20 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
  }
  var W = 1000, H = 280, L = 48, R = 12, T = 16, B = 28;

  function weekly(metric) {
    var box = document.getElementById("weekly-chart-box");
    box.textContent = "";
    var d = DATA.weekly, n = d.weeks.length;
    var svg = el("svg", {id: "weekly-chart", "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img"}, box);
    var totals = d.weeks.map(function (_, i) {
      return d.sports.reduce(function (s, sp) { return s + sp[metric][i]; }, 0);
    });
    var ymax = niceMax(Math.max.apply(null, totals.concat([0])));
    var y = function (v) { return T + (H - T - B) * (1 - v / ymax); };
    for (var g = 0; g <= 5; g++) {  // niceMax is 1, 2 or 5 x 10^k: fifths are round numbers
      var v = ymax * g / 5;
      el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
      text(svg, L - 6, y(v) + 4, label(v, ymax), "end");
    }
    var bw = (W - L - R) / Math.max(n, 1);
    d.weeks.forEach(function (week, i) {
      var base = 0;
      d.sports.forEach(function (sp) {
        var v = sp[metric][i];
        if (v > 0) {
          var r = el("rect", {"class": "bar", x: L + i * bw + 1, width: Math.max(bw - 2, 1), y: y(base + v),
                              height: y(base) - y(base + v), fill: sp.color}, svg);
          el("title", {}, r).textContent = "week of " + week + ": " + sp.name + " " + v.toFixed(1) + " " + metric;
          base += v;
        }
      });
      if (i % 4 === 0) { text(svg, L + i * bw, H - 8, week.slice(5)); }
      var hit = el("rect", {x: L + i * bw, width: bw, y: T, height: H - T - B, fill: "transparent"}, svg);
      hit.addEventListener("mouseenter", function () {
        var parts = d.sports.filter(function (sp) { return sp[metric][i] > 0; })
          .map(function (sp) { return sp.name + " " + sp[metric][i].toFixed(1); });
        var detail = parts.length ? " (" + parts.join(", ") + ")" : "";
        document.getElementById("weekly-readout").textContent =
          "Week of " + week + ": " + totals[i].toFixed(1) + " " + metric + detail;
      });
    });
    var legend = document.getElementById("weekly-legend");
    legend.textContent = "";
    d.sports.forEach(function (sp) {
      var s = document.createElement("span"), i = document.createElement("i");
      i.style.background = sp.color;
      s.appendChild(i);
      s.appendChild(document.createTextNode(sp.name));
      legend.appendChild(s);
    });
  }

  function fitness() {
    var box = document.getElementById("fitness-chart-box");
    var d = DATA.fitness, n = d.dates.length;
    var svg = el("svg", {id: "fitness-chart", "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img"}, box);
    if (n === 0) { text(svg, W / 2, H / 2, "no training load yet", "middle"); return; }
    var rawHi = Math.max.apply(null, d.ctl.concat(d.atl, d.tsb, [1]));
    var rawLo = Math.min.apply(null, d.tsb.concat([0]));
    var step = niceMax((rawHi - rawLo) / 5);
    var hi = Math.ceil(rawHi / step) * step, lo = Math.floor(rawLo / step) * step;
    var x = function (i) { return L + (W - L - R) * (n === 1 ? 0.5 : i / (n - 1)); };
    var y = function (v) { return T + (H - T - B) * (hi - v) / (hi - lo); };
    // Daily load on its own scale (right axis): one long ride must not flatten the fitness lines.
    var loadMax = niceMax(Math.max.apply(null, d.load.concat([1])));
    var yl = function (v) { return y(0) - (y(0) - T) * v / loadMax; };
    var bw = (W - L - R) / n;
    d.load.forEach(function (v, i) {
      if (v > 0) {
        el("rect", {"class": "load", x: x(i) - bw / 2, width: Math.max(bw, 1), y: yl(v), height: y(0) - yl(v),
                    fill: "#ddd"}, svg);
      }
    });
    text(svg, W - R, T - 2, "load " + Math.round(loadMax), "end");
    for (var v = lo; v <= hi + step / 2; v += step) {
      el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
      text(svg, L - 6, y(v) + 4, label(v, hi - lo), "end");
    }
    el("line", {x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#999"}, svg);
    function line(values, color, id) {
      var path = values.map(function (v, i) { return (i ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1); });
      el("path", {id: id, "class": "series", d: path.join(""), fill: "none", stroke: color, "stroke-width": 2}, svg);
    }
    line(d.ctl, "#1f77b4", "fitness-ctl");
    line(d.atl, "#d62728", "fitness-atl");
    line(d.tsb, "#2ca02c", "fitness-tsb");
    var every = Math.max(1, Math.round(n / 8));
    for (var i = 0; i < n; i += every) {
      text(svg, x(i), H - 8, d.dates[i], x(i) > W - 60 ? "end" : x(i) < L + 30 ? "start" : "middle");
    }
    var cursor = el("line", {y1: T, y2: H - B, stroke: "#333", "stroke-dasharray": "3 3", visibility: "hidden"}, svg);
    var hit = el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent"}, svg);
    hit.addEventListener("mousemove", function (ev) {
      var box = svg.getBoundingClientRect();
      var px = (ev.clientX - box.left) * W / box.width;
      var i = Math.max(0, Math.min(n - 1, Math.round((px - L) / (W - L - R) * (n - 1))));
      cursor.setAttribute("x1", x(i)); cursor.setAttribute("x2", x(i)); cursor.setAttribute("visibility", "visible");
      document.getElementById("fitness-readout").textContent = d.dates[i] + ": fitness " + d.ctl[i] +
        ", fatigue " + d.atl[i] + ", form " + d.tsb[i] + ", load " + d.load[i];
    });
  }

  weekly("hours");
  fitness();
  var buttons = document.querySelectorAll("#weekly-toggle button");
  Array.prototype.forEach.call(buttons, function (b) {
    b.addEventListener("click", function () {
      Array.prototype.forEach.call(buttons, function (o) { o.classList.toggle("on", o === b); });
      weekly(b.getAttribute("data-metric"));
    });
  });
  document.body.setAttribute("data-charts-ready", "true");
})();
