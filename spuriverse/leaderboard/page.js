"use strict";
// spuriverse leaderboard page: sortable ranking table (rows rendered server-side) and the
// per-group heatmap (built here from the embedded board data). Data only ever reaches the DOM
// through textContent / setAttribute, never as markup.
(function () {
  var INVISIBLE = /[\p{C}\p{Zl}\p{Zp}]/gu;

  function clean(s) {
    return String(s).replace(/[\t\n\r]/g, " ").replace(INVISIBLE, function (c) {
      var cp = c.codePointAt(0);
      return cp > 0xffff ? "\\U" + cp.toString(16).padStart(8, "0") : "\\u" + cp.toString(16).padStart(4, "0");
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- sortable table ------------------------------------------------------------------------
  var table = document.getElementById("board");
  var heads = table.tHead.rows[0].cells;
  var body = table.tBodies[0];
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var state = { col: 0, dir: "asc" };

  function sortKey(row, i, numeric) {
    var cell = row.cells[i];
    var v = cell ? cell.getAttribute("data-v") : null;
    if (v === null || v === "") return null;
    if (!numeric) return v;
    var n = Number(v);
    return isFinite(n) ? n : null;
  }

  function sortBy(i) {
    var th = heads[i];
    var numeric = th.getAttribute("data-type") === "num";
    var dir = state.col === i ? (state.dir === "asc" ? "desc" : "asc") : th.getAttribute("data-dir") || "asc";
    var sign = dir === "asc" ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.hasAttribute("data-rank"); });
    var keyed = rows.map(function (r) {
      return { row: r, key: sortKey(r, i, numeric), rank: Number(r.getAttribute("data-rank")) };
    });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key !== b.key) return a.key === null ? 1 : -1; // missing values last, either direction
        return a.rank - b.rank;
      }
      var c = numeric ? a.key - b.key : collator.compare(a.key, b.key);
      return c !== 0 ? sign * c : a.rank - b.rank;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k.row); });
    body.appendChild(frag);
    for (var j = 0; j < heads.length; j++) {
      heads[j].setAttribute("aria-sort", j === i ? (dir === "asc" ? "ascending" : "descending") : "none");
    }
    state = { col: i, dir: dir };
  }

  Array.prototype.forEach.call(heads, function (th, i) {
    var button = th.querySelector("button");
    if (button) button.addEventListener("click", function () { sortBy(i); });
  });

  // ---- heatmap -------------------------------------------------------------------------------
  var STOPS = [[0, 215, 48, 39], [0.25, 252, 141, 89], [0.5, 254, 224, 144], [0.75, 145, 191, 219], [1, 69, 117, 180]];

  function colour(v) {
    v = Math.min(1, Math.max(0, v));
    for (var k = 1; k < STOPS.length; k++) {
      if (v <= STOPS[k][0]) {
        var a = STOPS[k - 1], b = STOPS[k], t = (v - a[0]) / (b[0] - a[0]);
        return "rgb(" + [1, 2, 3].map(function (c) { return Math.round(a[c] + t * (b[c] - a[c])); }).join(",") + ")";
      }
    }
    return "rgb(69,117,180)";
  }

  var own = Object.prototype.hasOwnProperty;
  var data = JSON.parse(document.getElementById("board-data").textContent);
  var groups = data.groups || [], entries = data.entries || [];
  var host = document.getElementById("heatmap");
  if (!entries.length || !groups.length) {
    host.appendChild(el("p", "hint", "No per-group results yet."));
    return;
  }
  var hm = el("table", "hm");
  hm.appendChild(el("caption", "sub", "accuracy per group (rows: models in rank order, columns: groups)"));
  var headRow = el("tr");
  headRow.appendChild(el("th", "hm-m", ""));
  var labels = groups.map(clean);
  labels.forEach(function (g) {
    var th = el("th", "hm-g");
    th.setAttribute("scope", "col");
    th.setAttribute("title", g);
    th.appendChild(el("span", null, g));
    headRow.appendChild(th);
  });
  var thead = el("thead");
  thead.appendChild(headRow);
  hm.appendChild(thead);
  var tbody = el("tbody");
  entries.forEach(function (e, r) {
    var name = clean(e.display_name) + (e.baseline ? " (baseline)" : "");
    var tr = el("tr");
    var th = el("th", "hm-m", (r + 1) + ". " + name);
    th.setAttribute("scope", "row");
    th.setAttribute("title", name);
    tr.appendChild(th);
    var pg = e.per_group || {};
    groups.forEach(function (g, c) {
      var td = el("td", "hm-cell");
      var v = own.call(pg, g) ? pg[g] : null;
      var label;
      if (typeof v === "number" && isFinite(v)) {
        td.style.backgroundColor = colour(v);
        label = name + " · " + labels[c] + ": " + (100 * v).toFixed(1) + " %";
      } else {
        td.classList.add("missing");
        label = name + " · " + labels[c] + ": no data";
      }
      td.setAttribute("title", label);
      td.setAttribute("aria-label", label);
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  });
  hm.appendChild(tbody);
  host.appendChild(hm);
})();
