/*
 * Brand kit palette: a native colour picker beside each hex field, kept in step both ways.
 *
 * Why htmx alone was not enough: picking a colour must rewrite the hex field as the picker moves,
 * and typing a hex must move the picker, with no request in between. Without JavaScript the
 * pickers stay disabled and only show each saved colour; the hex field is what the form saves
 * (campaigns/forms.py, BrandForm.clean), so the server's checks and its marks are unchanged.
 *
 * Rows added by "+ Add colour" (htmx) get the same behaviour through htmx:load.
 */
(function () {
  "use strict";

  var HEX = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i;

  // "#abc", "1A1A2E" -> "#aabbcc", "#1a1a2e" (what <input type=color> holds); "" when not a colour.
  function normalise(value) {
    var match = HEX.exec(value.trim());
    if (!match) return "";
    var digits = match[1];
    if (digits.length === 3) digits = digits.replace(/./g, "$&$&");
    return "#" + digits.toLowerCase();
  }

  function parts(row) {
    return {
      name: row.querySelector("input[name=palette_name]"),
      hex: row.querySelector("input[name=palette_hex]"),
      picker: row.querySelector("input.colour-pick"),
    };
  }

  // A mark the server set (aria-invalid and its message) goes once the field holds a usable value;
  // saving checks everything again.
  function unmarkIfFixed(input, fixed) {
    if (!fixed || input.getAttribute("aria-invalid") !== "true") return;
    input.removeAttribute("aria-invalid");
    var id = input.getAttribute("aria-describedby");
    var message = id && document.getElementById(id);
    if (message) message.remove();
    input.removeAttribute("aria-describedby");
    var row = input.closest(".palette-row");
    if (row && !row.querySelector("[aria-invalid=true]")) row.classList.remove("has-error");
  }

  function showHex(row) {
    var p = parts(row);
    var colour = normalise(p.hex.value);
    p.picker.classList.toggle("unset", !colour);
    if (colour) p.picker.value = colour;
    unmarkIfFixed(p.hex, Boolean(colour));
  }

  function enable(root) {
    var rows = Array.prototype.slice.call(root.querySelectorAll(".palette-row"));
    if (root.matches && root.matches(".palette-row")) rows.push(root);
    rows.forEach(function (row) {
      var p = parts(row);
      if (!p.hex || !p.picker) return;
      p.picker.disabled = false;
      var colour = normalise(p.hex.value);
      p.picker.classList.toggle("unset", !colour);
      if (colour) p.picker.value = colour;
    });
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    var row = target.closest && target.closest(".palette-row");
    if (!row) return;
    var p = parts(row);
    if (target === p.picker) {
      p.hex.value = p.picker.value.toUpperCase();
      p.picker.classList.remove("unset");
      unmarkIfFixed(p.hex, true);
    } else if (target === p.hex && p.picker) {
      showHex(row);
    } else if (target === p.name) {
      unmarkIfFixed(p.name, p.name.value.trim() !== "");
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    enable(document);
  });
  document.addEventListener("htmx:load", function (event) {
    enable(event.target);
  });
})();
