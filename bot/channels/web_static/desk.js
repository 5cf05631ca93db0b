// MIA staff desk: the office's queue (polled every 2 s), claim / close / reply / end. Text only, never HTML.
(function () {
  "use strict";
  var KIND = { request: "Lapor Rakit", handoff: "Percakapan", complaint: "Keluhan" };
  var STATUS = { open: "menunggu", claimed: "diambil", done: "selesai", active: "sedang ditangani", ended: "berakhir" };
  var CHANNEL = { web: "web chat", telegram: "Telegram", whatsapp: "WhatsApp", console: "konsol" };
  var list = document.getElementById("threads");
  var notice = document.getElementById("notice");
  var csrf = "";
  var drafts = {};  // thread key -> reply being typed (kept across refreshes)
  var focused = null;
  var lastReview = 0;  // the review is grouped by meaning on the server: read every 15 s, not every 2

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function ago(seconds) {
    if (seconds < 60) { return Math.max(0, Math.round(seconds)) + " dtk"; }
    if (seconds < 3600) { return Math.round(seconds / 60) + " mnt"; }
    return Math.round(seconds / 3600) + " jam";
  }

  function when(ts) {
    return new Date(ts * 1000).toLocaleString("id-ID", { dateStyle: "short", timeStyle: "short" });
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function act(body) {
    return fetch("/staff/api/act", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (data) {
        say(data.message || data.error || "");
        return r.ok;
      });
    }).catch(function () { say("Gagal terhubung ke MIA. Coba lagi."); return false; })
      .then(function (ok) { refresh(); return ok; });
  }

  function button(label, cls, handler) {
    var b = el("button", cls, label);
    b.type = "button";
    b.addEventListener("click", handler);
    return b;
  }

  function renderThread(t) {
    var key = t.kind + ":" + t.target;
    var li = el("li", "thread");
    li.dataset.key = key;
    var h = el("h2");
    var complaint = t.items.length && /keluhan/i.test(t.items[0].text);
    h.appendChild(el("span", "", (complaint ? KIND.complaint : KIND[t.kind] || t.kind) +
                                 (t.kind === "request" ? " " + t.target : "")));
    h.appendChild(el("span", "badge " + t.status, STATUS[t.status] || t.status));
    h.appendChild(el("span", "badge", CHANNEL[t.channel] || t.channel));
    if (t.claimed_by) { h.appendChild(el("span", "badge", "oleh " + t.claimed_by.replace(/ \([^)]*\)$/, ""))); }
    li.appendChild(h);
    var items = el("ol", "items");
    t.items.forEach(function (item) {
      var row = el("li", item.staff ? "staff" : "", item.text);
      var time = el("time", "", when(item.at));
      row.insertBefore(time, row.firstChild);
      items.appendChild(row);
    });
    li.appendChild(items);
    var actions = el("div", "actions");
    var live = t.status !== "done" && t.status !== "ended";
    if (live) {
      var area = el("textarea");
      area.id = "reply-" + key;
      area.setAttribute("aria-label", "Balasan untuk warga");
      area.placeholder = "Tulis balasan untuk warga…";
      area.maxLength = 3000;
      area.value = drafts[key] || "";
      area.addEventListener("input", function () { drafts[key] = area.value; });
      area.addEventListener("focus", function () { focused = key; });
      area.addEventListener("blur", function () { if (focused === key) { focused = null; } });
      actions.appendChild(area);
      actions.appendChild(button("Kirim balasan", "", function () {
        var text = (drafts[key] || "").trim();
        if (!text) { say("Tulis balasannya dulu."); return; }
        act({ action: "reply", reply_to: t.reply_to, text: text }).then(function (ok) {
          if (ok) { drafts[key] = ""; }
        });
      }));
    }
    if (t.kind === "request" && t.status === "open") {
      actions.appendChild(button("Ambil", "secondary", function () { act({ action: "claim", ref: t.target }); }));
    }
    if (t.kind === "request" && (t.status === "open" || t.status === "claimed")) {
      actions.appendChild(button("Selesai", "secondary", function () { act({ action: "done", ref: t.target }); }));
    }
    if (t.kind === "handoff" && t.status === "active") {
      actions.appendChild(button("Akhiri percakapan", "secondary", function () {
        act({ action: "end", reply_to: t.reply_to });
      }));
    }
    li.appendChild(actions);
    return li;
  }

  function reviewAct(body) {
    return fetch("/staff/api/review", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body)
    }).then(function (r) { return r.json(); }).then(function (data) { say(data.message || data.error || ""); })
      .catch(function () { say("Gagal terhubung ke MIA. Coba lagi."); })
      .then(function () { lastReview = 0; refresh(); });
  }

  // Operators: the groups of what citizens asked that MIA did not understand, chose in a menu or
  // said did not help; one click adds the example to MIA's suggestion (or another intent), or drops it.
  function showReview(data) {
    document.getElementById("who").textContent = data.staff + " · Operator MIA";
    document.getElementById("waiting").textContent = String(data.groups.length);
    document.getElementById("oldest").textContent = "-";
    if (focused) { return; }
    list.textContent = "";
    if (!data.groups.length) {
      list.appendChild(el("li", "empty", "Tidak ada pertanyaan warga yang perlu ditinjau (30 hari terakhir)."));
    }
    data.groups.forEach(function (g) {
      var li = el("li", "thread");
      var h = el("h2");
      h.appendChild(el("span", "", "“" + g.example + "”"));
      h.appendChild(el("span", "badge", g.count + "x"));
      li.appendChild(h);
      li.appendChild(el("p", "", g.why));
      var items = el("ol", "items");
      g.texts.forEach(function (text) { items.appendChild(el("li", "", text)); });
      li.appendChild(items);
      var actions = el("div", "actions");
      if (g.suggestion) {
        actions.appendChild(button("Tambah ke " + g.suggestion_title, "", function () {
          reviewAct({ action: "add", key: g.key, intent: g.suggestion });
        }));
      }
      var pick = el("select");
      pick.setAttribute("aria-label", "Intent lain");
      pick.appendChild(el("option", "", "Intent lain…"));
      data.intents.forEach(function (pair) {
        var o = el("option", "", pair[1]);
        o.value = pair[0];
        pick.appendChild(o);
      });
      pick.addEventListener("focus", function () { focused = "review"; });
      pick.addEventListener("blur", function () { focused = null; });
      pick.addEventListener("change", function () {
        if (pick.value) { reviewAct({ action: "add", key: g.key, intent: pick.value }); }
      });
      actions.appendChild(pick);
      actions.appendChild(button("Abaikan", "secondary", function () { reviewAct({ action: "drop", key: g.key }); }));
      li.appendChild(actions);
      list.appendChild(li);
    });
  }

  function show(data) {
    csrf = data.csrf;
    if (data.operators) {
      document.getElementById("signin").hidden = true;
      document.getElementById("stats").hidden = false;
      if (Date.now() - lastReview < 15000) { return; }
      lastReview = Date.now();
      return fetch("/staff/api/review", { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.json(); }).then(showReview);
    }
    document.getElementById("signin").hidden = true;
    document.getElementById("stats").hidden = false;
    document.getElementById("who").textContent = data.staff + " · " + data.office_name;
    document.getElementById("waiting").textContent = String(data.waiting);
    document.getElementById("oldest").textContent = data.waiting ? ago(data.oldest_wait_seconds) : "-";
    document.title = (data.waiting ? "(" + data.waiting + ") " : "") + "Meja Petugas MIA";
    if (focused) { return; }  // never redraw under a staff member who is typing
    list.textContent = "";
    if (!data.threads.length) {
      list.appendChild(el("li", "empty", "Belum ada permintaan atau percakapan untuk kantor ini."));
    }
    data.threads.forEach(function (t) { list.appendChild(renderThread(t)); });
  }

  function signedOut(reason) {
    csrf = "";
    list.textContent = "";
    document.getElementById("stats").hidden = true;
    document.getElementById("signin").hidden = false;
    if (reason) { say(reason); }
  }

  function refresh() {
    return fetch("/staff/api/queue", { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { signedOut(); return; }
      return r.json().then(show);
    }).catch(function () { say("Gagal terhubung ke MIA. Mencoba lagi…"); });
  }

  document.getElementById("signout").addEventListener("click", function () {
    fetch("/staff/api/keluar", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: "{}"
    }).then(function () { signedOut("Anda sudah keluar."); });
  });

  if (location.pathname === "/staff/masuk") {  // the sign-in link: its "Masuk" button signs in
    document.getElementById("signin").hidden = false;
    document.getElementById("signin-text").hidden = true;
    document.getElementById("masuk").hidden = false;
    return;
  }
  if (/[?&]link=invalid/.test(location.search)) {
    say("Tautan masuk tidak berlaku (sudah dipakai atau kedaluwarsa). Minta tautan baru ke administrator.");
  }
  refresh();
  setInterval(refresh, 2000);
})();
