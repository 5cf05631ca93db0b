// MIA web chat: the conversation, chips for buttons, a typing indicator, Indonesian/English.
(function () {
  "use strict";
  var UI = {
    id: { subtitle: "Asisten paspor Kanim Palembang dan Kanim Muaraenim", typing: "MIA sedang mengetik…",
          office: "Kantor Imigrasi Sumatera Selatan", official: "Situs resmi imigrasi.go.id", new: "Percakapan baru",
          label: "Tulis pesan", placeholder: "Tulis pertanyaan Anda…", send: "Kirim", you: "Anda",
          log: "Percakapan dengan MIA", other: "Switch to English", error: "Pesan belum terkirim. Periksa koneksi lalu coba lagi." },
    en: { subtitle: "Passport assistant of the Palembang and Muaraenim offices", typing: "MIA is typing…",
          office: "Immigration offices of South Sumatra", official: "Official site imigrasi.go.id", new: "New conversation",
          label: "Write a message", placeholder: "Type your question…", send: "Send", you: "You",
          log: "Conversation with MIA", other: "Ganti ke Bahasa Indonesia", error: "The message was not sent. Check the connection and try again." }
  };
  var lang = localStorage.getItem("mia-lang") === "en" ? "en" : "id";
  var log = document.getElementById("log");
  var form = document.getElementById("form");
  var input = document.getElementById("text");
  var send = document.getElementById("send");
  var typing = document.getElementById("typing");
  var errorBox = document.getElementById("error");
  var langButton = document.getElementById("lang");
  var newButton = document.getElementById("new");
  // On a phone the keyboard opens only when the citizen taps the box, never by itself.
  var touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
  var lastId = 0;
  var busy = false;

  function t(key) { return UI[lang][key]; }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach(function (el) { el.textContent = t(el.dataset.i18n); });
    input.placeholder = t("placeholder");
    log.setAttribute("aria-label", t("log"));
    langButton.textContent = lang === "id" ? "EN" : "ID";
    langButton.setAttribute("aria-label", t("other"));
  }

  // *bold* in MIA's text becomes <strong>; everything else stays text (never HTML).
  function renderText(el, text) {
    text.split(/(\*[^*\n]+\*)/).forEach(function (part) {
      if (/^\*[^*\n]+\*$/.test(part)) {
        var b = document.createElement("strong");
        b.textContent = part.slice(1, -1);
        el.appendChild(b);
      } else {
        el.appendChild(document.createTextNode(part));
      }
    });
  }

  function clearChips() {
    log.querySelectorAll(".chips").forEach(function (c) { c.remove(); });
  }

  // Buttons belong to the latest message only: an older message's buttons go when anything follows it.
  function add(m) {
    if (m.id && m.id <= lastId) { return; }
    if (m.id) { lastId = m.id; }
    clearChips();
    var li = document.createElement("li");
    li.className = "msg " + (m.role === "user" ? "user" : "bot");
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = m.role === "user" ? t("you") : "MIA";
    li.appendChild(who);
    var body = document.createElement("span");
    renderText(body, m.text);
    li.appendChild(body);
    if (m.buttons && m.buttons.length) {
      var chips = document.createElement("div");
      chips.className = "chips";
      m.buttons.forEach(function (b) {
        var chip = document.createElement("button");
        chip.type = "button";
        chip.className = b.kind === "feedback" ? "chip feedback" : "chip";
        chip.textContent = b.title;
        chip.addEventListener("click", function () { say(b.payload); });
        chips.appendChild(chip);
      });
      li.appendChild(chips);
    }
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
  }

  function request(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      if (!r.ok) {
        // A refusal (too many requests, no new sessions) carries a notice for the citizen.
        return r.json().catch(function () { return {}; }).then(function (data) {
          var error = new Error("HTTP " + r.status);
          error.notice = data.notice;
          throw error;
        });
      }
      return r.json();
    });
  }

  function setBusy(on) {
    busy = on;
    typing.hidden = !on;
    send.disabled = on;
  }

  function say(text, typed) {
    if (busy || !text.trim()) { return; }
    errorBox.hidden = true;
    setBusy(true);
    var id = (window.crypto && crypto.randomUUID) ? crypto.randomUUID().replace(/-/g, "") : String(Date.now()) + Math.random();
    // The answer brings everything after the page's last message: a staff reply that came meanwhile too.
    request("POST", "/api/messages", { text: text, message_id: id, after: lastId })
      // The buttons go only once the message is in: after a failed send they are still there to press.
      .then(function (data) { clearChips(); data.messages.forEach(add); if (typed) { input.value = ""; } return data.more; })
      .catch(function (e) { errorBox.textContent = (e && e.notice) || t("error"); errorBox.hidden = false; })
      .then(function (more) { setBusy(false); if (more) { poll(); } if (typed && !touch) { input.focus(); } });
  }

  function poll() {
    if (busy) { return; }
    request("GET", "/api/messages?after=" + lastId)
      .then(function (data) { data.messages.forEach(add); if (data.more) { poll(); } })
      .catch(function () { /* try again at the next tick */ });
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); say(input.value, true); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); say(input.value, true); }
  });
  newButton.addEventListener("click", function () {
    request("POST", "/api/new", {}).then(function () { location.reload(); })
      .catch(function () { errorBox.textContent = t("error"); errorBox.hidden = false; });
  });
  langButton.addEventListener("click", function () {
    lang = lang === "id" ? "en" : "id";
    localStorage.setItem("mia-lang", lang);
    applyLanguage();
    request("POST", "/api/lang", { lang: lang }).catch(function () {});
  });

  applyLanguage();
  request("GET", "/api/messages").then(function (data) {
    data.messages.forEach(add);
    if (data.more) { poll(); }  // a long transcript comes in pages
    if (!data.messages.length) {
      request("POST", "/api/lang", { lang: lang }).catch(function () {}).then(function () { say("/start"); });
    }
  });
  setInterval(poll, 2500);
  if (!touch) { input.focus(); }
})();
