// The compose page's live SMS estimate: encoding, characters, segments and cost as the
// operator types, from POST /api/v1/sms/estimate (the same rules the send uses).
// The page works without this file: the server shows the estimate whenever it renders.
(function () {
  "use strict";

  var form = document.getElementById("compose");
  if (!form) return;
  var text = document.getElementById("text");
  var send = document.getElementById("send");
  var panel = document.getElementById("estimate");
  var out = {
    encoding: document.getElementById("est-encoding"),
    characters: document.getElementById("est-characters"),
    segments: document.getElementById("est-segments"),
    cost: document.getElementById("est-cost"),
    tooLong: document.getElementById("est-too-long"),
    preview: document.getElementById("preview"),
  };
  var d = form.dataset;
  var exponent = parseInt(d.exponent, 10) || 0;
  var numbers, money;
  try {
    // Latin digits, as the server's formats (Babel) use them.
    numbers = new Intl.NumberFormat(d.locale, { numberingSystem: "latn" });
    money = new Intl.NumberFormat(d.locale, {
      style: "currency",
      currency: d.currency,
      numberingSystem: "latn",
      minimumFractionDigits: exponent,
      maximumFractionDigits: exponent,
    });
  } catch (e) {
    numbers = money = null;
  }

  function number(n) {
    return numbers ? numbers.format(n) : String(n);
  }

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_m, name) {
      return name in values ? values[name] : "";
    });
  }

  function body() {
    // What will be sent: the template's text around what the operator typed.
    return (d.before || "") + text.value + (d.after || "");
  }

  function show(est) {
    out.encoding.textContent = est.encoding;
    out.characters.textContent = number(est.characters);
    out.segments.textContent = number(est.segments);
    out.cost.textContent = money
      ? money.format(est.cost_minor / Math.pow(10, exponent))
      : est.cost;
    panel.classList.toggle("is-too-long", !!est.too_long);
    out.tooLong.hidden = !est.too_long;
    if (est.too_long) {
      out.tooLong.textContent = fill(d.tooLong, {
        segments: number(est.segments),
        max: number(est.max_parts),
      });
    }
    send.disabled = !!est.too_long;
  }

  var timer = null;
  var asked = 0; // the newest request: an older answer arriving late is dropped

  function estimate() {
    var n = ++asked;
    fetch(d.estimateUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ text: body() }),
    })
      .then(function (r) {
        if (!r.ok) throw new Error("estimate: HTTP " + r.status);
        return r.json();
      })
      .then(function (est) {
        if (n === asked) show(est);
      })
      .catch(function () {
        // Keep the last figures; the server checks again when the form is sent.
        if (n === asked) send.disabled = false;
      });
  }

  text.addEventListener("input", function () {
    out.preview.textContent = body();
    clearTimeout(timer);
    timer = setTimeout(estimate, 250);
  });

  // A text refused as too long comes back in the form: keep the button off until it fits.
  send.disabled = panel.classList.contains("is-too-long");
  window.addEventListener("pageshow", function () {
    // Back to a page the browser kept: the button must work again.
    send.disabled = panel.classList.contains("is-too-long");
  });
  form.addEventListener("submit", function () {
    // One click, one message (the form's key makes a second click harmless anyway).
    setTimeout(function () {
      send.disabled = true;
    }, 0);
  });
})();
