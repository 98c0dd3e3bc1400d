// mailtrail console: keyboard navigation of search results and copying the
// query. Served from /static/app.js (the content policy allows this file and
// nothing inline); every page works without it.
(function () {
  "use strict";

  var copy = document.getElementById("copy-query");
  var box = document.getElementById("q");
  if (copy && box && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(box.value).then(function () {
        var label = copy.textContent;
        copy.textContent = copy.getAttribute("data-done") || label;
        setTimeout(function () {
          copy.textContent = label;
        }, 1500);
      });
    });
  }

  var table = document.querySelector("table[data-nav]");
  if (!table) {
    return;
  }
  var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr"));
  var current = -1;

  function select(i) {
    if (!rows.length) {
      return;
    }
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (current >= 0) {
      rows[current].classList.remove("selected");
      rows[current].removeAttribute("aria-selected");
    }
    current = i;
    rows[i].classList.add("selected");
    rows[i].setAttribute("aria-selected", "true");
    rows[i].scrollIntoView({ block: "nearest" });
  }

  function typing(target) {
    if (!target || !target.tagName) {
      return false;
    }
    return target.isContentEditable ||
      /^(INPUT|TEXTAREA|SELECT|BUTTON|SUMMARY)$/.test(target.tagName);
  }

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && e.target === box) {
      box.blur();
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) {
      return;
    }
    if (e.key === "j" || e.key === "ArrowDown") {
      select(current + 1);
      e.preventDefault();
    } else if (e.key === "k" || e.key === "ArrowUp") {
      select(current < 0 ? 0 : current - 1);
      e.preventDefault();
    } else if (e.key === "Enter" && current >= 0 && e.target.tagName !== "A") {
      var link = rows[current].querySelector("a[href]");
      if (link) {
        window.location.href = link.href;
        e.preventDefault();
      }
    } else if (e.key === "/" && box) {
      box.focus();
      e.preventDefault();
    }
  });
})();
