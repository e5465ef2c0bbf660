/*
 * Gallery review from the keyboard: j/k and the arrows move between cards, a/r/c/s/x act on the
 * focused card, m compares the selection, Enter/o opens an image, ? shows the shortcuts.
 *
 * Why htmx alone was not enough: htmx sends requests for events on the element that carries the
 * attributes; it has no idea of "the focused card" for document-wide keys, cannot move focus
 * through a grid (nor put it back on a card after that card's outerHTML swap), and keeps no
 * selection across swaps. So this file only moves focus and presses the card's own buttons:
 * every action is still the card's hx-post form (the same request a mouse click sends, answered
 * with the card partial), and the server decides who may do what. Without JavaScript the forms
 * post and redirect.
 */
(function () {
  "use strict";

  var selected = new Set(); // asset codes ticked with x or the checkboxes
  var pending = null; // {id, advance}: the card whose swap we wait for, to refocus it (or the next)
  var focusFirstNew = false; // "next" ran off the end: focus the first card of the next page

  function grid() { return document.getElementById("asset-grid"); }
  function cards() {
    var g = grid();
    return g ? Array.prototype.slice.call(g.querySelectorAll(".asset-card")) : [];
  }
  function currentCard() {
    var el = document.activeElement;
    return el && el.closest ? el.closest(".asset-card") : null;
  }
  function announce(text) {
    var live = document.getElementById("review-live");
    if (live) live.textContent = text;
  }
  function focusCard(card) {
    if (!card) return;
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function step(delta) {
    var all = cards();
    if (!all.length) return;
    var card = currentCard();
    var index = card ? all.indexOf(card) : -1;
    if (index === -1) { focusCard(delta > 0 ? all[0] : all[all.length - 1]); return; }
    var next = all[index + delta];
    if (next) { focusCard(next); return; }
    if (delta > 0) loadMore();
  }

  function stepRow(direction) {
    var card = currentCard();
    var all = cards();
    if (!card) { focusCard(all[0]); return; }
    var here = card.getBoundingClientRect();
    var best = null;
    var bestScore = Infinity;
    all.forEach(function (other) {
      var box = other.getBoundingClientRect();
      var below = direction > 0 ? box.top > here.top + 4 : box.top < here.top - 4;
      if (!below) return;
      var score = Math.abs(box.top - here.top) * 10 + Math.abs(box.left - here.left);
      if (score < bestScore) { bestScore = score; best = other; }
    });
    if (best) focusCard(best);
    else if (direction > 0) loadMore();
  }

  function loadMore() {
    var more = document.getElementById("gallery-more");
    if (!more) { announce("That was the last image."); return; }
    focusFirstNew = true;
    announce("Loading more images…");
    more.scrollIntoView({ block: "end" });
  }

  function press(card, key, advance) {
    var button = card.querySelector('[data-key="' + key + '"]');
    if (!button) {
      announce(key === "a" || key === "r"
        ? "Only approvers and admins approve or reject."
        : "Viewers can look but not change images.");
      return;
    }
    pending = { id: card.id, advance: advance };
    button.click();
  }

  function openChanges(card) {
    var details = card.querySelector(".asset-changes");
    if (!details) { announce("Viewers can look but not change images."); return; }
    details.open = true;
    var input = details.querySelector("input[name=comment]");
    if (input) input.focus();
    pending = { id: card.id, advance: true };
  }

  function toggleSelect(card) {
    var box = card.querySelector(".asset-check");
    if (!box) return;
    box.checked = !box.checked;
    syncSelection(box);
  }

  function syncSelection(box) {
    var card = box.closest(".asset-card");
    if (box.checked) selected.add(box.value); else selected.delete(box.value);
    if (card) card.classList.toggle("is-selected", box.checked);
    showCount();
  }

  function clearSelection() {
    selected.clear();
    document.querySelectorAll(".asset-check:checked").forEach(function (box) {
      box.checked = false;
      var card = box.closest(".asset-card");
      if (card) card.classList.remove("is-selected");
    });
    showCount();
  }

  function showCount() {
    var count = document.getElementById("selection-count");
    if (count) {
      count.textContent = selected.size
        ? selected.size + " selected"
        : "Select with x or the boxes.";
    }
  }

  function compare() {
    var n = selected.size;
    if (n < 2 || n > 4) {
      announce("Select 2 to 4 images with x, then press m (" + n + " selected).");
      return;
    }
    var button = document.getElementById("compare-button");
    if (button) button.click();
  }

  function help() {
    var dialog = document.getElementById("review-help");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  var NOT_TYPING = ["checkbox", "radio", "button", "submit", "reset"];
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    if (tag === "INPUT") return NOT_TYPING.indexOf(el.type) === -1;
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (!grid() || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var dialog = document.getElementById("review-help");
    if (dialog && dialog.open) {
      if (event.key === "?") { event.preventDefault(); dialog.close(); }
      return; // Esc closes it natively
    }
    if (typing(target)) {
      if (event.key === "Escape") {
        var details = target.closest(".asset-changes");
        if (details) {
          details.open = false;
          pending = null;
          focusCard(details.closest(".asset-card"));
        }
      }
      return;
    }
    var card = currentCard();
    var onCard = card && target === card;
    switch (event.key) {
      case "j": case "ArrowRight": step(1); break;
      case "k": case "ArrowLeft": step(-1); break;
      case "ArrowDown": stepRow(1); break;
      case "ArrowUp": stepRow(-1); break;
      case "?": help(); break;
      case "m": compare(); break;
      case "Enter": case "o":
        // Enter on a button or a link inside the card keeps its own meaning.
        if (!onCard && event.key === "Enter") return;
        if (card) window.location.assign(card.dataset.open);
        break;
      case "a": if (card) press(card, "a", true); break;
      case "r": if (card) press(card, "r", true); break;
      case "s": if (card) press(card, "s", false); break;
      case "c": if (card) openChanges(card); break;
      case "x": if (card) toggleSelect(card); break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    if (event.target.classList && event.target.classList.contains("asset-check")) {
      syncSelection(event.target);
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#review-help-open")) help();
  });

  // A card (or a page of cards) arrived: restore its selection and, when we were waiting for
  // it, put the focus back on it or move on to the next one.
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.classList) return;
    if (elt.classList.contains("asset-card")) {
      var box = elt.querySelector(".asset-check");
      if (box && selected.has(box.value)) {
        box.checked = true;
        elt.classList.add("is-selected");
      }
      if (pending && pending.id === elt.id) {
        var advance = pending.advance;
        pending = null;
        var all = cards();
        var next = advance ? all[all.indexOf(elt) + 1] : null;
        focusCard(next || elt);
      } else if (focusFirstNew) {
        focusFirstNew = false;
        focusCard(elt);
      }
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail.elt;
    if (source && source.id === "gallery-more") {
      var g = grid();
      if (g) g.setAttribute("aria-busy", "true");
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var source = event.detail.elt;
    var g = grid();
    if (g) g.setAttribute("aria-busy", "false");
    // A bulk action succeeded: its cards came back unselected, start a new selection.
    if (source && source.closest && source.closest("#bulk-form") && event.detail.successful) {
      clearSelection();
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    pending = null;
    announce(status === 403
      ? "Refused: your role does not allow this."
      : "That did not work (" + status + "). Reload the page and try again.");
  });

  // Filters replaced the results: the old selection no longer shows.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "gallery-results") clearSelection();
  });
})();
