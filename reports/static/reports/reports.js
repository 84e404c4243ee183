// The reports page (plain JavaScript, no build step, no chart library). It reads GET /api/reports with the
// filters of the page's own query string, and draws every chart as SVG with the small chart module below
// (one function per kind of chart). Each chart is also a table (its "Show data"), a CSV download with the
// same query, and a keyboard-reachable tooltip. Everything from the data (subjects, names, labels) is put
// in the page with textContent only.
//
// The page's query string is the state: range=7|30|90 (a period ending on the server's UTC today), or
// from/to (UTC dates); granularity, label, agent. Every change pushes a history entry, so a view can be
// shared and the back button returns to the previous one.
(function () {
  "use strict";

  var root = document.querySelector("[data-reports]");
  var configNode = document.getElementById("reports-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);

  function $(selector, scope) { return (scope || root).querySelector(selector); }
  function $all(selector, scope) { return Array.prototype.slice.call((scope || root).querySelectorAll(selector)); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // Translations (Django's JavaScript catalog, loaded first); English without it.
  var t = function (text) { return window.gettext ? window.gettext(text) : text; };
  var fmt = function (text, values) {
    return window.interpolate ? window.interpolate(t(text), values, true) : text.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  };
  var plural = function (one, many, n, values) {
    var text = window.ngettext ? window.ngettext(one, many, n) : (n === 1 ? one : many);
    return window.interpolate ? window.interpolate(text, values, true) : text.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  };

  // ---- formatting (the page's language; English with day-first dates, as the workspace) ------------------
  var LOCALE = !document.documentElement.lang || document.documentElement.lang.indexOf("en") === 0 ? "en-GB" : document.documentElement.lang;
  var integerFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
  var ratingFormat = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 1, maximumFractionDigits: 2 });
  var percentFormat = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 0 });
  var units = {};
  function unitFormat(unit) {
    units[unit] = units[unit] || new Intl.NumberFormat(LOCALE, { style: "unit", unit: unit, unitDisplay: "short", maximumFractionDigits: 1 });
    return units[unit];
  }
  // Buckets and periods are UTC (the API's): they are shown in UTC, whatever the browser's zone.
  var dayShort = new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", timeZone: "UTC" });
  var dayLong = new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  var dayFull = new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  var hourShort = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC" });
  var stamp = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short", hourCycle: "h23", timeZone: "UTC" });

  function number(value) { return value === null || value === undefined ? "—" : integerFormat.format(value); }
  // One unit, at most one decimal: "45 sec", "12 min", "1.5 hr", "2 days" (Intl's words in the page's language).
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return unitFormat("second").format(Math.round(seconds));
    if (seconds < 3600) return unitFormat("minute").format(seconds / 60);
    if (seconds < 86400) return unitFormat("hour").format(seconds / 3600);
    return unitFormat("day").format(seconds / 86400);
  }
  function bucketDate(bucket) { return new Date(bucket.length === 10 ? bucket + "T00:00:00Z" : bucket); }
  function bucketTick(bucket, granularity) {
    var date = bucketDate(bucket);
    if (granularity !== "hour" || date.getUTCHours() === 0) return dayShort.format(date);
    return hourShort.format(date);
  }
  function bucketTitle(bucket, granularity) {
    var date = bucketDate(bucket);
    if (granularity !== "hour") return dayLong.format(date);
    return dayLong.format(date) + " " + hourShort.format(date) + " UTC";
  }

  // ---- dates of the period (UTC calendar dates as "YYYY-MM-DD") ------------------------------------------
  var ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
  function addDays(iso, days) {
    var date = new Date(iso + "T00:00:00Z");
    date.setUTCDate(date.getUTCDate() + days);
    return date.toISOString().slice(0, 10);
  }
  function spanDays(from, to) { return Math.round((Date.parse(to) - Date.parse(from)) / 86400000) + 1; }

  // =========================================================================================================
  // Charts: SVG drawn by hand. A frame (axes, grid, thinned tick labels) and a tooltip that follows the
  // pointer and the arrow keys, shared by three kinds of chart: columns (bars, optionally with a line on a
  // second axis), lines (with an optional dashed target) and a distribution (horizontal bars).
  // =========================================================================================================
  var SVG_NS = "http://www.w3.org/2000/svg";
  var CHART_HEIGHT = 250;
  var CHAR_PX = 6.6; // an 11 px tick label's average character width, to place and thin the labels

  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  var COUNT_STEPS = [1, 2, 5];
  var DURATION_STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600,
    43200, 86400, 172800, 259200, 432000, 604800, 1209600, 2592000];
  // Four or five gridlines at round values: counts 1/2/5 x 10^n, durations whole minutes, hours or days.
  function scale(max, kind) {
    var step;
    if (kind === "duration") {
      max = Math.max(max, 60);
      step = DURATION_STEPS.filter(function (s) { return max / s <= 5; })[0] || Math.ceil(max / 5 / 86400) * 86400;
    } else {
      max = Math.max(max, 4);
      var magnitude = Math.pow(10, Math.floor(Math.log10(max / 4)));
      step = magnitude * (COUNT_STEPS.filter(function (s) { return max / (s * magnitude) <= 5; })[0] || 10);
      step = Math.max(1, step);
    }
    var top = Math.ceil(max / step) * step;
    var ticks = [];
    for (var v = 0; v <= top + step / 2; v += step) ticks.push(v);
    return { max: top, ticks: ticks };
  }
  function widest(labels) {
    return labels.reduce(function (w, label) { return Math.max(w, String(label).length * CHAR_PX); }, 0);
  }
  // Labels every k buckets, k a round number (a week of days, hours of a day) so that none overlap.
  var DAY_EVERY = [1, 2, 3, 7, 14, 28, 56, 91, 182];
  var HOUR_EVERY = [1, 2, 3, 4, 6, 12, 24, 48, 72, 168];
  function thinning(band, labelWidth, granularity) {
    var need = Math.ceil((labelWidth + 10) / band);
    var choices = granularity === "hour" ? HOUR_EVERY : DAY_EVERY;
    return choices.filter(function (k) { return k >= need; })[0] || need;
  }

  // The plot area and its axes. o: {buckets, granularity, minBand, y: {max, ticks, format, title},
  // y2 (optional, same shape, on the right), label (the SVG's accessible name)}.
  function frame(host, o) {
    var count = o.buckets.length;
    var yLabels = o.y.ticks.map(o.y.format);
    var left = Math.round(widest(yLabels)) + 14;
    var right = o.y2 ? Math.round(widest(o.y2.ticks.map(o.y2.format))) + 14 : 14;
    var top = 16;
    var bottom = 28;
    var available = Math.max(host.clientWidth || 0, 240);
    var plotW = Math.max(available - left - right, count * o.minBand);
    var width = Math.round(plotW + left + right);
    var plotH = CHART_HEIGHT - top - bottom;
    var band = plotW / count;
    var node = svg("svg", { width: width, height: CHART_HEIGHT, viewBox: "0 0 " + width + " " + CHART_HEIGHT, "class": "rp-svg", role: "img", "aria-label": o.label });
    var f = {
      svg: node, left: left, top: top, plotW: plotW, plotH: plotH, band: band, width: width, count: count,
      x: function (i) { return left + band * (i + 0.5); },
      y: function (v) { return top + plotH - (v / o.y.max) * plotH; },
      y2: o.y2 ? function (v) { return top + plotH - (v / o.y2.max) * plotH; } : null,
    };
    var grid = svg("g", { "class": "rp-grid-lines", "aria-hidden": "true" }, node);
    o.y.ticks.forEach(function (v, i) {
      var y = Math.round(f.y(v)) + 0.5;
      svg("line", { x1: left, x2: left + plotW, y1: y, y2: y, "class": v === 0 ? "rp-axis" : "rp-gridline" }, grid);
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "class": "rp-tick" }, grid).textContent = yLabels[i];
    });
    if (o.y2) {
      o.y2.ticks.forEach(function (v) {
        svg("text", { x: left + plotW + 6, y: f.y2(v) + 4, "text-anchor": "start", "class": "rp-tick rp-tick-y2" }, grid).textContent = o.y2.format(v);
      });
    }
    var ticks = o.buckets.map(function (b) { return bucketTick(b, o.granularity); });
    var every = thinning(band, widest(ticks), o.granularity);
    // Hours: labels on round hours (midnight shows the date); days: counted back from the last day.
    ticks.forEach(function (label, i) {
      var show = o.granularity === "hour"
        ? Math.round(bucketDate(o.buckets[i]).getTime() / 3600000) % every === 0
        : (count - 1 - i) % every === 0;
      if (!show) return;
      var x = f.x(i);
      svg("line", { x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4, "class": "rp-axis" }, grid);
      var anchor = x - widest([label]) / 2 < 0 ? "start" : (x + widest([label]) / 2 > width ? "end" : "middle");
      svg("text", { x: x, y: top + plotH + 17, "text-anchor": anchor, "class": "rp-tick" }, grid).textContent = label;
    });
    return f;
  }

  // The tooltip: over the band under the pointer, or moved with the arrow keys once the chart has focus.
  // describe(i) -> {title, rows: [{label, value, cls}]}; place(i) -> {x, y} in the SVG's coordinates.
  function tooltip(chart, f, count, describe, place, hitIndex, start) {
    var scroller = chart.scroller;
    var tip = chart.tip;
    var highlight = svg("rect", { "class": "rp-hover", "aria-hidden": "true" });
    f.svg.insertBefore(highlight, f.svg.firstChild);
    var active = -1;
    function show(i, fromKeyboard) {
      active = Math.max(0, Math.min(count - 1, i));
      var content = describe(active);
      tip.textContent = "";
      tip.appendChild(el("strong", "rp-tip-title", content.title));
      content.rows.forEach(function (row) {
        var line = el("span", "rp-tip-row");
        if (row.cls) line.appendChild(el("i", "rp-swatch " + row.cls));
        line.appendChild(el("span", "rp-tip-label", row.label));
        line.appendChild(el("b", null, row.value));
        tip.appendChild(line);
      });
      var at = place(active);
      highlight.setAttribute("x", at.band.x);
      highlight.setAttribute("y", at.band.y);
      highlight.setAttribute("width", at.band.w);
      highlight.setAttribute("height", at.band.h);
      if (fromKeyboard) {
        // Keep the active bucket in view inside a chart that scrolls sideways.
        if (at.x < scroller.scrollLeft + 40) scroller.scrollLeft = at.x - 40;
        else if (at.x > scroller.scrollLeft + scroller.clientWidth - 40) scroller.scrollLeft = at.x - scroller.clientWidth + 40;
      }
      tip.hidden = false;
      var x = at.x - scroller.scrollLeft;
      var tipWidth = tip.offsetWidth;
      var room = chart.node.clientWidth;
      var leftPx = x + 14 + tipWidth > room ? x - 14 - tipWidth : x + 14;
      tip.style.left = Math.max(0, Math.min(room - tipWidth, leftPx)) + "px";
      tip.style.top = Math.max(0, at.y - tip.offsetHeight / 2) + "px";
      f.svg.classList.add("rp-active");
    }
    function hide() {
      active = -1;
      tip.hidden = true;
      f.svg.classList.remove("rp-active");
    }
    f.svg.addEventListener("mousemove", function (event) {
      var box = f.svg.getBoundingClientRect();
      var i = hitIndex(event.clientX - box.left, event.clientY - box.top);
      if (i === null) hide(); else if (i !== active) show(i, false);
    });
    f.svg.addEventListener("mouseleave", function () { if (document.activeElement !== scroller) hide(); });
    scroller.onfocus = function () { show(active >= 0 ? active : start, true); };
    scroller.onblur = hide;
    scroller.onkeydown = function (event) {
      var moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
      if (event.key in moves) show((active < 0 ? start : active) + moves[event.key], true);
      else if (event.key === "Home") show(0, true);
      else if (event.key === "End") show(count - 1, true);
      else if (event.key === "Escape") hide();
      else return;
      event.preventDefault();
    };
  }

  // A chart's place in a panel: legend, a focusable scroller holding the SVG, the tooltip.
  function chartBox(host, name, legend, hint) {
    var node = el("div", "rp-chart");
    if (legend.length) {
      var list = el("ul", "rp-legend");
      legend.forEach(function (item) {
        var li = el("li");
        li.appendChild(el("i", "rp-swatch " + item.cls));
        li.appendChild(document.createTextNode(item.label));
        list.appendChild(li);
      });
      node.appendChild(list);
    }
    var scroller = el("div", "rp-scroll");
    scroller.tabIndex = 0;
    scroller.setAttribute("role", "group");
    scroller.setAttribute("aria-label", name);
    scroller.setAttribute("aria-describedby", "rp-chart-hint");
    node.appendChild(scroller);
    var tip = el("div", "rp-tip");
    tip.hidden = true;
    tip.setAttribute("role", "status");
    node.appendChild(tip);
    if (hint) node.appendChild(el("p", "rp-axis-note", hint));
    host.appendChild(node);
    return { node: node, scroller: scroller, tip: tip };
  }

  // A chart wider than its card (a long period on a phone) opens on its latest buckets: the days a
  // support lead looks at first, rather than the start of the period.
  // The charts are drawn before their panel joins the page, where scrolling has no effect: next frame.
  function showLatest(scroller) {
    requestAnimationFrame(function () { scroller.scrollLeft = scroller.scrollWidth; });
  }

  function lastIndex(values) {
    for (var i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return i;
    return values.length - 1;
  }

  function bandPlace(f) {
    return function (i) {
      return { x: f.x(i), y: f.top + f.plotH / 3, band: { x: f.left + f.band * i, y: f.top, w: f.band, h: f.plotH } };
    };
  }
  function bandHit(f) {
    return function (x) {
      var i = Math.floor((x - f.left) / f.band);
      return i >= 0 && i < f.count ? i : null;
    };
  }

  // A path through the values, broken where a value is null (nothing to measure there).
  function linePath(f, values, yOf) {
    var d = "";
    var pen = false;
    values.forEach(function (v, i) {
      if (v === null || v === undefined) { pen = false; return; }
      d += (pen ? "L" : "M") + f.x(i).toFixed(1) + " " + yOf(v).toFixed(1);
      pen = true;
    });
    return d;
  }
  function drawLine(f, group, series, yOf) {
    if (series.area) {
      // The area under each unbroken run of values.
      var run = [];
      var flush = function () {
        if (!run.length) return;
        var d = "M" + f.x(run[0]).toFixed(1) + " " + (f.top + f.plotH);
        run.forEach(function (i) { d += "L" + f.x(i).toFixed(1) + " " + yOf(series.values[i]).toFixed(1); });
        d += "L" + f.x(run[run.length - 1]).toFixed(1) + " " + (f.top + f.plotH) + "Z";
        svg("path", { d: d, "class": "rp-area " + series.cls }, group);
        run = [];
      };
      series.values.forEach(function (v, i) { if (v === null || v === undefined) flush(); else run.push(i); });
      flush();
    }
    svg("path", { d: linePath(f, series.values, yOf), "class": "rp-line " + series.cls }, group);
    // Dense periods (hours): the line alone; the points stay (the tooltip's and the tests' anchors) unseen.
    var radius = f.band < 8 ? 1.5 : 3;
    if (f.band < 8) group.classList.add("rp-dense");
    series.values.forEach(function (v, i) {
      if (v === null || v === undefined) return;
      svg("circle", { cx: f.x(i).toFixed(1), cy: yOf(v).toFixed(1), r: radius, "class": "rp-point " + series.cls, "data-series": series.key }, group);
    });
  }

  var Charts = {
    // Bars per bucket (stacked), and lines on a second axis. o: {buckets, granularity, name, bars: [{key,
    // label, cls, values}], lines: [same], yTitle, y2Title, describe}.
    columns: function (host, o) {
      var totals = o.buckets.map(function (_, i) { return o.bars.reduce(function (s, b) { return s + (b.values[i] || 0); }, 0); });
      var lineMax = Math.max.apply(null, [0].concat(o.lines.map(function (l) { return Math.max.apply(null, l.values.map(function (v) { return v || 0; })); })));
      var y = scale(Math.max.apply(null, totals), "count");
      var y2 = scale(lineMax, "count");
      var chart = chartBox(host, o.name, o.bars.concat(o.lines), o.axisNote);
      var f = frame(chart.scroller, {
        buckets: o.buckets, granularity: o.granularity, minBand: 7, label: o.label,
        y: { max: y.max, ticks: y.ticks, format: number },
        y2: o.lines.length ? { max: y2.max, ticks: y2.ticks, format: number } : null,
      });
      var bars = svg("g", { "class": "rp-bars" }, f.svg);
      var gap = Math.min(Math.max(f.band * 0.22, 1), 8);
      o.buckets.forEach(function (_, i) {
        var base = 0;
        o.bars.forEach(function (series) {
          var v = series.values[i] || 0;
          var y0 = f.y(base);
          var y1 = f.y(base + v);
          svg("rect", { x: (f.left + f.band * i + gap / 2).toFixed(1), y: y1.toFixed(1), width: Math.max(f.band - gap, 1).toFixed(1), height: Math.max(y0 - y1, 0).toFixed(1), "class": "rp-bar " + series.cls, "data-series": series.key }, bars);
          base += v;
        });
      });
      var lines = svg("g", { "class": "rp-lines" }, f.svg);
      o.lines.forEach(function (series) { drawLine(f, lines, series, f.y2); });
      chart.scroller.appendChild(f.svg);
      showLatest(chart.scroller);
      tooltip(chart, f, o.buckets.length, o.describe, bandPlace(f), bandHit(f), o.buckets.length - 1);
      return f;
    },

    // Lines per bucket with a dashed target. o: {buckets, granularity, name, series: [{key, label, cls,
    // values, area}], kind: "duration"|"count", target: {value, label} | null, describe}.
    lines: function (host, o) {
      var format = o.kind === "duration" ? duration : number;
      var max = 0;
      o.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
      if (o.target) max = Math.max(max, o.target.value * 1.1);
      var y = scale(max, o.kind);
      var legend = o.series.slice();
      if (o.target) legend.push({ label: o.target.label, cls: "rp-c-target" });
      var chart = chartBox(host, o.name, legend, null);
      var f = frame(chart.scroller, {
        buckets: o.buckets, granularity: o.granularity, minBand: 4, label: o.label,
        y: { max: y.max, ticks: y.ticks, format: function (v) { return v ? format(v) : number(0); } },
      });
      if (o.target) {
        var ty = Math.round(f.y(o.target.value)) + 0.5;
        var target = svg("g", { "class": "rp-target" }, f.svg);
        svg("line", { x1: f.left, x2: f.left + f.plotW, y1: ty, y2: ty, "class": "rp-target-line" }, target);
        svg("text", { x: f.left + f.plotW - 4, y: ty - 5, "text-anchor": "end", "class": "rp-target-label" }, target).textContent = o.target.label;
      }
      var group = svg("g", { "class": "rp-lines" }, f.svg);
      o.series.forEach(function (series) { drawLine(f, group, series, f.y); });
      chart.scroller.appendChild(f.svg);
      showLatest(chart.scroller);
      tooltip(chart, f, o.buckets.length, o.describe, bandPlace(f), bandHit(f), lastIndex(o.series[0].values));
      return f;
    },

    // Horizontal bars, one per item, with the count at the end. o: {name, label, items: [{label, value,
    // cls}], describe}.
    distribution: function (host, o) {
      var chart = chartBox(host, o.name, [], null);
      var rowH = 30;
      var labelW = Math.round(widest(o.items.map(function (item) { return item.label; }))) + 12;
      var width = Math.max(chart.scroller.clientWidth || 0, 240);
      var valueW = 70;
      var height = o.items.length * rowH + 8;
      var node = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, "class": "rp-svg", role: "img", "aria-label": o.label });
      var max = Math.max.apply(null, o.items.map(function (item) { return item.value; }).concat([1]));
      var plotW = width - labelW - valueW;
      var f = { svg: node, left: labelW, top: 4, plotW: plotW, plotH: height - 8, count: o.items.length, band: rowH };
      o.items.forEach(function (item, i) {
        var y = 4 + i * rowH;
        svg("text", { x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end", "class": "rp-tick rp-tick-strong" }, node).textContent = item.label;
        svg("rect", { x: labelW, y: y + 6, width: plotW, height: rowH - 12, rx: 3, "class": "rp-track" }, node);
        svg("rect", { x: labelW, y: y + 6, width: Math.max((item.value / max) * plotW, item.value ? 2 : 0).toFixed(1), height: rowH - 12, rx: 3, "class": "rp-bar " + item.cls, "data-series": "rating" }, node);
        svg("text", { x: labelW + plotW + 8, y: y + rowH / 2 + 4, "class": "rp-tick" }, node).textContent = item.note;
      });
      chart.scroller.appendChild(node);
      var place = function (i) {
        return { x: labelW + plotW * 0.6, y: 4 + i * rowH + rowH / 2, band: { x: 0, y: 4 + i * rowH, w: width, h: rowH } };
      };
      var hit = function (x, y) {
        var i = Math.floor((y - 4) / rowH);
        return i >= 0 && i < o.items.length ? i : null;
      };
      tooltip(chart, f, o.items.length, o.describe, place, hit, 0);
      return f;
    },
  };

  // A table with the chart's numbers, folded under "Show data" (the chart's text alternative).
  function dataTable(host, caption, headers, rows) {
    var details = el("details", "rp-data");
    details.appendChild(el("summary", null, t("Show data")));
    var wrap = scrollingWrap(caption);
    var table = el("table", "rp-table");
    table.appendChild(el("caption", "visually-hidden", caption));
    var head = el("tr");
    headers.forEach(function (h, i) {
      var th = el("th", i ? "rp-num" : null, h);
      th.scope = "col";
      head.appendChild(th);
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (cell, i) {
        var td = el(i ? "td" : "th", i ? "rp-num" : null, cell);
        if (!i) td.scope = "row";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    wrap.appendChild(table);
    details.appendChild(wrap);
    host.appendChild(details);
  }

  // A table that may scroll (long periods, narrow screens) is reachable with the keyboard.
  function scrollingWrap(name) {
    var wrap = el("div", "rp-table-wrap");
    wrap.tabIndex = 0;
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-label", fmt("%(title)s, table", { title: name }));
    return wrap;
  }

  function empty(host, text) {
    host.appendChild(el("p", "rp-empty", text));
  }

  // =========================================================================================================
  // The page: filters in the query string, one request, one render.
  // =========================================================================================================
  var filters = $("[data-rp-filters]");
  var controls = {
    from: $("[data-rp-from]"), to: $("[data-rp-to]"), granularity: $("[data-rp-granularity]"),
    label: $("[data-rp-label]"), agent: $("[data-rp-agent]"),
  };
  var presets = config.presets;
  var state = null;
  var lastData = null;
  var inFlight = null;
  var agentSort = { key: null, descending: true };

  function readState() {
    var query = new URLSearchParams(location.search);
    var range = parseInt(query.get("range"), 10);
    var from = query.get("from");
    var to = query.get("to");
    var custom = ISO_DATE.test(from || "") && ISO_DATE.test(to || "");
    if (presets.indexOf(range) < 0) range = custom ? null : config.defaultDays;
    return {
      range: range,
      from: range ? addDays(config.today, 1 - range) : from,
      to: range ? config.today : to,
      granularity: query.get("granularity") === "hour" ? "hour" : "day",
      label: query.get("label") || "",
      agent: query.get("agent") || "",
    };
  }
  // The API's query (also the CSV links'): the period as dates, whatever way it was chosen.
  function apiQuery(s) {
    var query = new URLSearchParams({ from: s.from, to: s.to, granularity: s.granularity });
    if (s.label) query.set("label", s.label);
    if (s.agent) query.set("agent", s.agent);
    return query.toString();
  }
  // The page's query: a preset stays a preset ("the last 7 days" of whenever it is opened).
  function pageQuery(s) {
    var query = new URLSearchParams();
    if (s.range) query.set("range", s.range); else { query.set("from", s.from); query.set("to", s.to); }
    if (s.granularity !== "day") query.set("granularity", s.granularity);
    if (s.label) query.set("label", s.label);
    if (s.agent) query.set("agent", s.agent);
    return query.toString();
  }
  function hourly(s) { return spanDays(s.from, s.to) <= config.maxHourlyDays && spanDays(s.from, s.to) >= 1; }

  function ensureOption(select, value, text) {
    if (!value) return;
    var exists = Array.prototype.some.call(select.options, function (option) { return option.value === value; });
    if (!exists) select.appendChild(new Option(text || value, value));
  }
  function syncControls() {
    $all("[data-rp-preset]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(Number(button.getAttribute("data-rp-preset")) === state.range));
    });
    controls.from.value = state.from || "";
    controls.to.value = state.to || "";
    controls.from.max = config.today;
    controls.to.max = config.today;
    var hourOption = controls.granularity.querySelector("option[value=hour]");
    hourOption.disabled = !hourly(state);
    hourOption.textContent = hourOption.disabled ? fmt("Hour (up to %(days)s days)", { days: number(config.maxHourlyDays) }) : t("Hour");
    controls.granularity.value = state.granularity;
    ensureOption(controls.label, state.label);
    controls.label.value = state.label;
    ensureOption(controls.agent, state.agent);
    controls.agent.value = state.agent;
    $all("[data-rp-csv]").forEach(function (link) {
      link.href = config.csv + link.getAttribute("data-rp-csv") + ".csv?" + apiQuery(state);
    });
  }

  function navigate(changes) {
    var next = Object.assign({}, state, changes);
    if (next.granularity === "hour" && !hourly(next)) next.granularity = "day";
    state = next;
    history.pushState(null, "", "?" + pageQuery(state));
    syncControls();
    load();
  }

  $all("[data-rp-preset]").forEach(function (button) {
    button.addEventListener("click", function () {
      var days = Number(button.getAttribute("data-rp-preset"));
      navigate({ range: days, from: addDays(config.today, 1 - days), to: config.today });
    });
  });
  [controls.from, controls.to].forEach(function (input) {
    input.addEventListener("change", function () {
      if (!ISO_DATE.test(controls.from.value) || !ISO_DATE.test(controls.to.value)) return;
      navigate({ range: null, from: controls.from.value, to: controls.to.value });
    });
  });
  controls.granularity.addEventListener("change", function () { navigate({ granularity: controls.granularity.value }); });
  controls.label.addEventListener("change", function () { navigate({ label: controls.label.value }); });
  controls.agent.addEventListener("change", function () { navigate({ agent: controls.agent.value }); });
  filters.addEventListener("submit", function (event) { event.preventDefault(); });
  window.addEventListener("popstate", function () {
    state = readState();
    syncControls();
    load();
  });

  // ---- loading ---------------------------------------------------------------------------------------
  var statusNode = $("[data-rp-status]");
  var errorNode = $("[data-rp-error]");
  function panels() { return $all("[data-rp-panel]"); }
  function body(name) { return $("[data-rp-panel=" + name + "] [data-rp-body]"); }

  function load() {
    if (inFlight) inFlight.abort();
    var controller = window.AbortController ? new AbortController() : null;
    inFlight = controller;
    root.setAttribute("aria-busy", "true");
    statusNode.textContent = t("Loading…");
    if (!lastData) panels().forEach(function (panel) { setBody(panel, "loading", t("Loading…")); });
    else root.classList.add("rp-stale");
    fetch(config.api + "?" + apiQuery(state), {
      credentials: "same-origin", headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined,
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) throw { status: response.status, body: data };
        return data;
      });
    }).then(function (data) {
      if (inFlight !== controller) return;
      inFlight = null;
      errorNode.hidden = true;
      lastData = data;
      render(data);
      finish(t("Up to date."));
    }).catch(function (error) {
      if (error && error.name === "AbortError") return;
      if (inFlight !== controller) return;
      inFlight = null;
      if (!(error && error.status)) console.error(error); // a bug of this page or the network, not an answer
      lastData = null;
      showError(error || {});
      finish("");
    });
  }
  function finish(text) {
    root.removeAttribute("aria-busy");
    root.classList.remove("rp-stale");
    statusNode.textContent = text;
  }

  function setBody(panel, kind, text) {
    var host = $("[data-rp-body]", panel);
    host.textContent = "";
    host.appendChild(el("p", "rp-" + kind, text));
  }

  // Staff never see an API's JSON: each answer becomes a sentence, with the way out.
  function showError(error) {
    errorNode.textContent = "";
    var message;
    var action = null;
    var code = error.body && error.body.code;
    if (error.status === 400 && code === "invalid_period") {
      message = fmt("This period cannot be shown. Choose a start on or before the end, at most %(max)s days, and at most %(hours)s days by hour.", { max: number(366), hours: number(config.maxHourlyDays) });
    } else if (error.status === 400) {
      message = t("These filters cannot be used.");
    } else if (error.status === 401 || error.status === 403) {
      message = t("Your session has expired, or your account may not see reports. Log in again.");
      action = el("a", null, t("Log in"));
      action.href = "/admin/login/?next=" + encodeURIComponent(location.pathname + location.search);
    } else {
      message = t("The reports could not be loaded.");
      action = el("button", "button", t("Try again"));
      action.type = "button";
      action.addEventListener("click", load);
    }
    errorNode.appendChild(el("span", null, message + " "));
    if (error.status === 400) {
      action = el("a", null, t("Back to the last 30 days"));
      action.href = "?";
    }
    if (action) errorNode.appendChild(action);
    errorNode.hidden = false;
    panels().forEach(function (panel) { setBody(panel, "empty", t("Nothing to show for these filters.")); });
    $all("[data-rp-stat]").forEach(function (node) { node.textContent = "–"; });
    $("[data-rp-period]").textContent = "";
    $("[data-rp-generated]").textContent = "";
  }

  // ---- rendering ---------------------------------------------------------------------------------------
  function column(rows, key) { return rows.map(function (row) { return row[key]; }); }
  function sum(values) { return values.reduce(function (s, v) { return s + (v || 0); }, 0); }

  function render(data) {
    var granularity = data.period.granularity;
    var buckets = column(data.volume.rows, "bucket");
    var unit = granularity === "hour" ? t("hour") : t("day");

    // Choices for the filters, from what is in use (a chosen one stays, even if no longer in use).
    fillChoices(controls.label, data.labels.map(function (label) { return [label, label]; }), t("All labels"), state.label);
    fillChoices(controls.agent, data.agentChoices.map(function (a) { return [a.agentId, a.name]; }), t("All agents"), state.agent);

    var periodText = dayFull.format(bucketDate(data.period.from)) + " – " + dayFull.format(bucketDate(data.period.to)) +
      " · " + (granularity === "hour" ? t("by hour") : t("by day")) + " · UTC";
    var active = [];
    if (data.filters.label) active.push(fmt("label %(label)s", { label: data.filters.label }));
    if (data.filters.agent) {
      var agent = data.agentChoices.filter(function (a) { return a.agentId === data.filters.agent; })[0];
      active.push(fmt("agent %(name)s", { name: agent ? agent.name : data.filters.agent }));
    }
    $("[data-rp-period]").textContent = periodText + (active.length ? " · " + active.join(" · ") : "");
    $("[data-rp-generated]").textContent = fmt("Generated %(when)s UTC.", { when: stamp.format(new Date(data.generatedAt)) });

    renderCards(data);
    renderVolume(data, buckets, granularity);
    renderFirstResponse(data, buckets, granularity, unit);
    renderResolution(data, buckets, granularity);
    renderBacklog(data, buckets, granularity);
    renderCsat(data);
    renderAgents(data);
  }

  function fillChoices(select, choices, allText, selected) {
    select.textContent = "";
    select.appendChild(new Option(allText, ""));
    choices.forEach(function (choice) { select.appendChild(new Option(choice[1], choice[0])); });
    ensureOption(select, selected);
    select.value = selected;
  }

  function stat(name, text) { $("[data-rp-stat=" + name + "]").textContent = text; }

  function renderCards(data) {
    var donor = sum(column(data.volume.rows, "donorMessages"));
    var staff = sum(column(data.volume.rows, "staffMessages"));
    stat("conversations", number(sum(column(data.volume.rows, "conversations"))));
    stat("messages", number(donor + staff));
    stat("messagesSplit", fmt("%(donor)s from donors · %(staff)s from staff", { donor: number(donor), staff: number(staff) }));
    var now = data.backlog.now;
    stat("waiting", number(now.waiting));
    stat("unassigned", number(now.unassigned));
    var oldest = now.oldestWaiting;
    var note = $("[data-rp-stat=oldest]");
    note.textContent = "";
    if (!oldest) {
      stat("oldestAge", "—");
      note.textContent = t("Nobody is waiting.");
      return;
    }
    stat("oldestAge", duration(oldest.ageSeconds));
    var link = el("a", "rp-oldest-link", oldest.subject || t("(no subject)"));
    link.href = config.deskUrl + "?c=" + encodeURIComponent(oldest.conversationId);
    link.title = t("Open in the workspace");
    note.appendChild(link);
  }

  function clear(name) {
    var host = body(name);
    host.textContent = "";
    return host;
  }
  function chartName(title) { return fmt("%(title)s chart", { title: title }); }

  function renderVolume(data, buckets, granularity) {
    var host = clear("volume");
    var rows = data.volume.rows;
    if (!sum(column(rows, "conversations")) && !sum(column(rows, "donorMessages")) && !sum(column(rows, "staffMessages"))) {
      empty(host, t("No conversations or messages in this period."));
      return;
    }
    var names = { conversations: t("Conversations opened"), donor: t("Donor messages"), staff: t("Staff messages") };
    Charts.columns(host, {
      buckets: buckets, granularity: granularity, name: chartName(t("Volume")),
      label: fmt("Volume per %(unit)s: messages as bars, conversations opened as a line. The numbers are in the table below.", { unit: granularity === "hour" ? t("hour") : t("day") }),
      bars: [
        { key: "donorMessages", label: names.donor, cls: "rp-c-donor", values: column(rows, "donorMessages") },
        { key: "staffMessages", label: names.staff, cls: "rp-c-staff", values: column(rows, "staffMessages") },
      ],
      lines: [{ key: "conversations", label: names.conversations + " " + t("(right axis)"), cls: "rp-c-conv", values: column(rows, "conversations") }],
      axisNote: t("Left axis: messages. Right axis: conversations opened."),
      describe: function (i) {
        var row = rows[i];
        return { title: bucketTitle(row.bucket, granularity), rows: [
          { label: names.conversations, value: number(row.conversations), cls: "rp-c-conv" },
          { label: names.donor, value: number(row.donorMessages), cls: "rp-c-donor" },
          { label: names.staff, value: number(row.staffMessages), cls: "rp-c-staff" },
        ] };
      },
    });
    dataTable(host, t("Volume"), [granularity === "hour" ? t("Hour") : t("Day"), names.conversations, names.donor, names.staff],
      rows.map(function (row) { return [bucketTitle(row.bucket, granularity), number(row.conversations), number(row.donorMessages), number(row.staffMessages)]; }));
  }

  function durationChart(name, title, data, buckets, granularity, keys, target, emptyText, countLabel) {
    var host = clear(name);
    var rows = data.responsiveness.rows;
    if (!rows.some(function (row) { return row[keys.median] !== null; })) {
      empty(host, emptyText);
      return;
    }
    var labels = { median: t("Median"), p90: t("90th percentile") };
    Charts.lines(host, {
      buckets: buckets, granularity: granularity, name: chartName(title), kind: "duration",
      label: fmt("%(title)s per %(unit)s, median and 90th percentile. The numbers are in the table below.", { title: title, unit: granularity === "hour" ? t("hour") : t("day") }),
      series: [
        { key: keys.median, label: labels.median, cls: "rp-c-median", values: column(rows, keys.median) },
        { key: keys.p90, label: labels.p90, cls: "rp-c-p90", values: column(rows, keys.p90) },
      ],
      target: target,
      describe: function (i) {
        var row = rows[i];
        var lines = [
          { label: labels.median, value: duration(row[keys.median]), cls: "rp-c-median" },
          { label: labels.p90, value: duration(row[keys.p90]), cls: "rp-c-p90" },
          { label: countLabel, value: number(row[keys.count]) },
        ];
        if (target && row[keys.median] !== null) {
          lines.push({ label: target.label, value: row[keys.median] > target.value ? t("median over target") : t("median within target"), cls: "rp-c-target" });
        }
        return { title: bucketTitle(row.bucket, granularity), rows: lines };
      },
    });
    dataTable(host, title, [granularity === "hour" ? t("Hour") : t("Day"), countLabel, labels.median, labels.p90],
      rows.map(function (row) { return [bucketTitle(row.bucket, granularity), number(row[keys.count]), duration(row[keys.median]), duration(row[keys.p90])]; }));
  }

  function renderFirstResponse(data, buckets, granularity) {
    var target = data.slaSeconds ? { value: data.slaSeconds, label: fmt("Target %(time)s", { time: duration(data.slaSeconds) }) } : null;
    durationChart("firstResponse", t("First response time"), data, buckets, granularity,
      { median: "firstResponseMedian", p90: "firstResponseP90", count: "firstResponseCount" }, target,
      t("No first responses in this period."), t("Conversations answered"));
  }

  function renderResolution(data, buckets, granularity) {
    durationChart("resolution", t("Resolution time"), data, buckets, granularity,
      { median: "resolutionMedian", p90: "resolutionP90", count: "resolutionCount" }, null,
      t("No conversations were closed in this period."), t("Conversations closed"));
  }

  function renderBacklog(data, buckets, granularity) {
    var host = clear("backlog");
    var rows = data.backlog.rows;
    var label = t("Waiting for a first reply");
    Charts.lines(host, {
      buckets: buckets, granularity: granularity, name: chartName(t("Backlog")), kind: "count",
      label: fmt("Conversations waiting for a first reply at the end of each %(unit)s. The numbers are in the table below.", { unit: granularity === "hour" ? t("hour") : t("day") }),
      series: [{ key: "waiting", label: label, cls: "rp-c-waiting", values: column(rows, "waiting"), area: true }],
      target: null,
      describe: function (i) {
        return { title: bucketTitle(rows[i].bucket, granularity), rows: [{ label: label, value: number(rows[i].waiting), cls: "rp-c-waiting" }] };
      },
    });
    dataTable(host, t("Backlog"), [granularity === "hour" ? t("Hour") : t("Day"), label],
      rows.map(function (row) { return [bucketTitle(row.bucket, granularity), number(row.waiting)]; }));
  }

  function stars(rating) { return plural("%(count)s star", "%(count)s stars", rating, { count: number(rating) }); }

  function renderCsat(data) {
    var host = clear("csat");
    var csat = data.csat;
    if (!csat.count) {
      empty(host, t("No ratings in this period."));
      return;
    }
    var summary = el("div", "rp-csat-summary");
    summary.appendChild(el("span", "rp-csat-average", ratingFormat.format(csat.average)));
    summary.appendChild(el("span", "rp-csat-scale", t("out of 5")));
    summary.appendChild(el("span", "rp-csat-count", plural("from %(count)s rating", "from %(count)s ratings", csat.count, { count: number(csat.count) })));
    host.appendChild(summary);
    var rows = csat.distribution.slice().sort(function (a, b) { return b.rating - a.rating; });
    var share = function (row) { return percentFormat.format(row.count / csat.count); };
    Charts.distribution(host, {
      name: chartName(t("Satisfaction")),
      label: fmt("Ratings from 5 stars to 1 star; average %(average)s out of 5. The numbers are in the table below.", { average: ratingFormat.format(csat.average) }),
      items: rows.map(function (row) {
        return { label: stars(row.rating), value: row.count, cls: "rp-c-rating" + row.rating, note: number(row.count) + " · " + share(row) };
      }),
      describe: function (i) {
        var row = rows[i];
        return { title: stars(row.rating), rows: [
          { label: t("Ratings"), value: number(row.count), cls: "rp-c-rating" + row.rating },
          { label: t("Share"), value: share(row) },
        ] };
      },
    });
    dataTable(host, t("Satisfaction"), [t("Rating"), t("Ratings"), t("Share")],
      rows.map(function (row) { return [stars(row.rating), number(row.count), share(row)]; }));
  }

  // ---- per agent: a sortable table -------------------------------------------------------------------
  var AGENT_COLUMNS = [
    { key: "name", label: t("Agent"), text: true },
    { key: "assigned", label: t("Assigned") },
    { key: "replied", label: t("Replied") },
    { key: "firstResponseMedian", label: t("Median first response") },
    { key: "csatAverage", label: t("Satisfaction") },
  ];
  function renderAgents(data) {
    var host = clear("agents");
    var rows = data.agents.rows.slice();
    if (!rows.length) {
      empty(host, t("No agent activity in this period."));
      return;
    }
    if (agentSort.key) {
      var column = AGENT_COLUMNS.filter(function (c) { return c.key === agentSort.key; })[0];
      rows.sort(function (a, b) {
        var x = a[agentSort.key];
        var y = b[agentSort.key];
        if (x === null || x === undefined) return 1; // nothing measured sorts last, either way
        if (y === null || y === undefined) return -1;
        var order = column.text ? String(x).localeCompare(String(y), LOCALE) : x - y;
        return agentSort.descending ? -order : order;
      });
    }
    var maxAssigned = Math.max.apply(null, rows.map(function (row) { return row.assigned; }).concat([1]));
    var wrap = scrollingWrap(t("Per agent"));
    var table = el("table", "rp-table rp-agents");
    table.appendChild(el("caption", "visually-hidden", t("Per agent")));
    var head = el("tr");
    AGENT_COLUMNS.forEach(function (c, i) {
      var th = el("th", i ? "rp-num" : null);
      th.scope = "col";
      var button = el("button", "rp-sort", c.label);
      button.type = "button";
      if (agentSort.key === c.key) th.setAttribute("aria-sort", agentSort.descending ? "descending" : "ascending");
      button.addEventListener("click", function () {
        agentSort = { key: c.key, descending: agentSort.key === c.key ? !agentSort.descending : !c.text };
        renderAgents(data);
        var again = $("[data-rp-panel=agents] th:nth-child(" + (i + 1) + ") button");
        if (again) again.focus();
      });
      th.appendChild(button);
      head.appendChild(th);
    });
    table.appendChild(el("thead")).appendChild(head);
    var tbody = el("tbody");
    rows.forEach(function (row) {
      var tr = el("tr");
      var name = el("th", null, row.name);
      name.scope = "row";
      tr.appendChild(name);
      var assigned = el("td", "rp-num");
      var meter = el("span", "rp-meter");
      meter.setAttribute("aria-hidden", "true");
      var fill = el("span", "rp-meter-fill");
      fill.style.width = Math.round((row.assigned / maxAssigned) * 100) + "%";
      meter.appendChild(fill);
      assigned.appendChild(meter);
      assigned.appendChild(el("span", null, number(row.assigned)));
      tr.appendChild(assigned);
      tr.appendChild(el("td", "rp-num", number(row.replied)));
      var response = el("td", "rp-num", duration(row.firstResponseMedian));
      if (lastData && row.firstResponseMedian !== null && row.firstResponseMedian > lastData.slaSeconds) response.classList.add("rp-over");
      tr.appendChild(response);
      tr.appendChild(el("td", "rp-num", row.csatCount
        ? plural("%(average)s (%(count)s rating)", "%(average)s (%(count)s ratings)", row.csatCount, { average: ratingFormat.format(row.csatAverage), count: number(row.csatCount) })
        : "—"));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    wrap.appendChild(table);
    host.appendChild(wrap);
    host.appendChild(el("p", "rp-axis-note", t("Satisfaction: average rating out of 5 (number of ratings). Choose a column heading to sort.")));
  }

  // Charts are drawn to the width they have: again when it changes.
  var resizeTimer = null;
  var lastWidth = root.clientWidth;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (!lastData || root.clientWidth === lastWidth) return;
      lastWidth = root.clientWidth;
      render(lastData);
    }, 150);
  });

  state = readState();
  if (state.granularity === "hour" && !hourly(state)) state.granularity = "day";
  syncControls();
  load();
})();
