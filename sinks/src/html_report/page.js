// Sorts the anomalies table by the clicked column (numbers by value, text by locale);
// a second click reverses. Rows keep their command-line details with them.
(function () {
  "use strict";
  var table = document.getElementById("anomalies");
  if (!table) { return; }
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, column) {
    if (!th.dataset.type) { return; }
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) {
        var value = row.cells[column].dataset.v;
        return th.dataset.type === "number" ? parseFloat(value) : value;
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = th.dataset.type === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
}());
