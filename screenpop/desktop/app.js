// Sticky agent desktop: signs the agent in to NATS over websocket, reads
// their pops (live and the ones kept in the stream), sends wrap-ups and
// says who the caller is when Sticky asks. A pop below the disclosure
// level holds no context: the agent verifies the caller, says who it is,
// and only then is the context fetched (for this agent only).
// Everything shown comes from the pop JSON and is written with
// textContent, never as HTML.
"use strict";
(() => {
  const N = window.StickyNATS;
  const $ = (sel, root = document) => root.querySelector(sel);
  const state = { nc: null, cfg: null, profile: null, cards: new Map(), consumers: [] };

  const loginForm = $("#login");
  const pops = $("#pops");
  const statusEl = $("#status");

  function setStatus(text, on) {
    statusEl.textContent = text;
    statusEl.className = "status " + (on ? "on" : "off");
  }

  loginForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const agent = $("#agent").value.trim();
    const pass = $("#password").value;
    $("#login-error").textContent = "";
    try {
      await signIn(agent, pass);
    } catch (err) {
      $("#login-error").textContent = "Sign-in failed: " + (err && err.message ? err.message : err);
      setStatus("signed out", false);
      if (state.nc) { state.nc.close().catch(() => {}); state.nc = null; }
    }
  });

  $("#logout").addEventListener("click", async () => {
    for (const c of state.consumers) { try { c.stop(); } catch (_) {} }
    state.consumers = [];
    if (state.nc) { await state.nc.close().catch(() => {}); state.nc = null; }
    location.reload();
  });

  async function signIn(agent, pass) {
    const res = await fetch("config.json?agent=" + encodeURIComponent(agent), { cache: "no-store" });
    if (!res.ok) throw new Error("cannot load config.json (" + res.status + ")");
    const cfg = await res.json();
    if (!cfg.ws_url) throw new Error("this bridge has no websocket URL for desktops configured");
    state.cfg = cfg;
    setStatus("connecting…", false);
    const nc = await N.wsconnect({
      servers: cfg.ws_url,
      user: agent,
      pass: pass,
      name: "sticky-desktop",
      inboxPrefix: cfg.inbox_prefix,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      waitOnFirstConnect: false,
    });
    state.nc = nc;
    watchStatus(nc);
    const reply = await nc.request(cfg.profile_subject, "", { timeout: 5000 });
    state.profile = reply.json();
    loginForm.hidden = true;
    pops.hidden = false;
    $("#logout").hidden = false;
    $("#who").textContent = state.profile.agent +
      (state.profile.queues.length ? " · queues " + state.profile.queues.join(", ") : "");
    setStatus("connected", true);
    const js = N.jetstream(nc);
    for (const subject of state.profile.subjects) {
      follow(js, subject);
    }
  }

  async function watchStatus(nc) {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") setStatus("reconnecting…", false);
      if (s.type === "reconnect") setStatus("connected", true);
    }
  }

  // follow reads one subject through an ordered consumer: every pop still
  // in the stream first (a desktop that connects late gets the call that
  // is ringing), then live ones; it resumes where it was after reconnects.
  async function follow(js, subject) {
    for (;;) {
      try {
        const c = await js.consumers.get(state.cfg.stream, {
          filter_subjects: subject,
          deliver_policy: N.DeliverPolicy.All,
        });
        const msgs = await c.consume({ max_messages: 50 });
        state.consumers.push(msgs);
        for await (const m of msgs) {
          try { show(m.json()); } catch (err) { console.warn("bad pop", err); }
        }
        return;
      } catch (err) {
        if (!state.nc || state.nc.isClosed()) return;
        console.warn("consumer for " + subject + " failed; retrying", err);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  function show(pop) {
    if (!pop || pop.version !== 1 || !pop.call) return;
    const key = pop.call.call_id + "|" + (pop.call.pbx_call_id || "");
    let card = state.cards.get(key);
    if (!card) {
      card = $("#card-tpl").content.firstElementChild.cloneNode(true);
      state.cards.set(key, card);
      card.dataset.callId = pop.call.call_id;
      wireWrapUp(card, pop);
      $("#empty").hidden = true;
      pops.insertBefore(card, pops.firstChild);
    }
    render(card, pop);
  }

  function render(card, pop) {
    // A context fetched after verification outlives later copies of the
    // (withheld) pop, such as the queue's.
    const ctx = card.disclosed || pop.context || {};
    const id = ctx.identity || {};
    const withheld = !!ctx.withheld;
    const name = withheld ? "Unverified caller" : (card.disclosed ? card.disclosed.name : pop.customer && pop.customer.name) || ctx.customer_ref || "Unknown caller";
    card.className = "card level-" + (id.level || "low") + (withheld ? " withheld" : "") + (card.classList.contains("done") ? " done" : "");
    card.dataset.withheld = withheld ? "1" : "";
    $(".card-name", card).textContent = name;
    $(".card-level", card).textContent = id.level || "low";
    $(".card-confidence", card).textContent = Number(id.confidence || 0).toFixed(2);
    $(".card-recommendation", card).textContent = id.recommendation || "ignore";
    if (pop.call.agent) card.dataset.mine = "1"; // the agent's copy wins over the queue's
    const via = card.dataset.mine ? "for you" : "queue " + pop.call.queue;
    $(".card-call", card).textContent = [
      pop.call.ani ? "From " + pop.call.ani : "Number withheld",
      pop.call.dnis ? "to " + pop.call.dnis : "",
      "· rang " + when(pop.call.rang_at),
      "· " + via,
    ].filter(Boolean).join(" ");
    $(".card-headline", card).textContent = ctx.headline || "";

    const intents = $(".intents", card);
    intents.replaceChildren();
    for (const it of ctx.open_intents || []) {
      const li = document.createElement("li");
      li.className = "intent";
      li.textContent = it.intent + " (" + ordinal(it.attempt_count) + " contact" +
        (it.status !== "open" ? ", " + it.status : "") + ")";
      intents.appendChild(li);
    }
    if (!intents.children.length) {
      const li = document.createElement("li");
      li.textContent = "nothing open";
      intents.appendChild(li);
    }

    const hist = $(".history tbody", card);
    hist.replaceChildren();
    const items = (ctx.history || []).slice().reverse(); // oldest first, like a timeline
    for (const h of items) {
      hist.appendChild(row("history-row", [when(h.started_at), h.channel,
        (h.summary || "(no summary)") + (h.intent ? " — " + h.intent + (h.intent_status ? " (" + h.intent_status + ")" : "") : "")]));
    }
    hist.appendChild(row("history-row now", [when(pop.call.rang_at), "phone", "(now)"]));

    const vars = $(".variables tbody", card);
    vars.replaceChildren();
    const names = Object.keys(ctx.variables || {}).sort();
    for (const n of names) {
      const v = ctx.variables[n];
      vars.appendChild(row("variable", [n, v.value, v.source ? "from " + v.source : ""], ["var-name", "var-value", "var-source"]));
    }
    $(".card-variables summary", card).textContent = "Variables (" + names.length + ")";

    for (const sel of [".card-intents", ".card-history", ".card-variables", ".card-headline"]) $(sel, card).hidden = withheld;
    renderWhy(card, id);
    renderVerify(card, pop, ctx);
    if (withheld) $(".card-who", card).hidden = true; else renderWho(card, pop, ctx, id);

    const form = $("form.wrapup", card);
    if (!form.dataset.touched) {
      const first = (ctx.open_intents || [])[0];
      form.intent.value = first ? first.intent : "";
    }
  }

  // renderWho lets the agent say who the caller is: one of the candidates
  // Sticky offers (while the call is unassigned), or "not this person"
  // for the customer it popped. Only the agent the call rang may.
  function renderWho(card, pop, ctx, id) {
    const box = $(".card-who", card);
    const subject = state.profile && state.profile.identify_subject;
    const list = $(".who", box);
    list.replaceChildren();
    const choices = [];
    if (ctx.customer_ref) choices.push({ ref: ctx.customer_ref, not: true, label: "Not " + ((pop.customer && pop.customer.name) || ctx.customer_ref) });
    for (const c of id.candidates || []) {
      if (!ctx.customer_ref) choices.push({ ref: c.customer_ref, label: c.customer_ref + " (" + Number(c.score || 0).toFixed(2) + ")" });
    }
    if (!ctx.customer_ref && (id.candidates || []).length) choices.push({ fresh: true, label: "Someone new" });
    box.hidden = !subject || !pop.call.agent || !choices.length;
    for (const ch of choices) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = ch.label;
      b.addEventListener("click", () => identify(card, pop, ch));
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  // renderWhy draws the identity's explanation as a waterfall: each
  // signal's bar starts where the running total of the ones before ends,
  // to the right when it adds odds, to the left when it takes them.
  function renderWhy(card, id) {
    const list = $(".why", card);
    list.replaceChildren();
    const signals = id.explanation || [];
    $(".card-why", card).hidden = !signals.length;
    let run = 0, lo = 0, hi = 0;
    const spans = signals.map((s) => {
      const w = Number(s.weight) || 0;
      const from = run;
      run += w;
      lo = Math.min(lo, run); hi = Math.max(hi, run);
      return { s, w, from, to: run };
    });
    const range = hi - lo || 1;
    for (const { s, w, from, to } of spans) {
      const li = document.createElement("li");
      li.className = "signal " + (w > 0 ? "up" : w < 0 ? "down" : "flat");
      const label = document.createElement("span");
      label.className = "signal-source";
      label.textContent = s.source;
      const track = document.createElement("span");
      track.className = "signal-track";
      const bar = document.createElement("span");
      bar.className = "signal-bar";
      bar.style.left = ((Math.min(from, to) - lo) / range * 100) + "%";
      bar.style.width = (Math.abs(w) / range * 100) + "%";
      track.appendChild(bar);
      const weight = document.createElement("span");
      weight.className = "signal-weight";
      weight.textContent = (w > 0 ? "+" : "") + w.toFixed(1) + " bits";
      const detail = document.createElement("span");
      detail.className = "signal-detail";
      detail.textContent = s.detail || "";
      li.append(label, track, weight, detail);
      list.appendChild(li);
    }
  }

  // renderVerify shows what to ask a caller whose context is withheld,
  // Verified for the best candidate and, on a shared line, a picker of
  // the candidates. Only the agent the call rang may answer.
  function renderVerify(card, pop, ctx) {
    const box = $(".card-verify", card);
    box.hidden = !ctx.withheld;
    if (!ctx.withheld) return;
    const v = ctx.verify || {};
    const prompts = $(".verify-prompts", box);
    prompts.replaceChildren();
    for (const p of v.prompts || []) {
      const li = document.createElement("li");
      li.textContent = p;
      prompts.appendChild(li);
    }
    const cands = ctx.candidates || [];
    const mine = !!card.dataset.mine && !!(state.profile && state.profile.context_subject);
    // A caller nobody matched gets a new customer, who has no name yet.
    const fresh = (ctx.identity || {}).recommendation === "ignore";
    const who = (c, i) => c.name || (fresh && i === 0 ? "a new caller" : c.customer_ref);
    const label = (c, i) => who(c, i) + " (" + Number(c.score || 0).toFixed(2) + ")";
    $(".verify-best", box).textContent = cands.length
      ? "Sticky thinks this is " + label(cands[0], 0) + (cands.length > 1 ? ", or one of " + (cands.length - 1) + " more" : "")
      : "Sticky does not know this caller";
    const btn = $("button.verified", box);
    btn.hidden = !mine || !cands.length;
    btn.textContent = cands.length ? "Verified: " + who(cands[0], 0) : "Verified";
    btn.onclick = () => verify(card, pop, { ref: cands[0].customer_ref });
    const picker = $(".picker", box);
    const list = $(".candidates", picker);
    list.replaceChildren();
    picker.hidden = !mine || cands.length < 2;
    cands.forEach((c, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "candidate";
      b.dataset.ref = c.customer_ref;
      b.textContent = label(c, i);
      b.addEventListener("click", () => verify(card, pop, { ref: c.customer_ref }));
      li.appendChild(b);
      list.appendChild(li);
    });
    if (!mine) $(".verify-result", box).textContent = "Only the agent this call rings can verify the caller.";
  }

  // ask sends a request and returns the answer, or throws the error the
  // service answered with.
  async function ask(subject, body) {
    const m = await state.nc.request(subject, JSON.stringify(body), { timeout: 10000 });
    const res = m.json();
    const code = m.headers && m.headers.get("Nats-Service-Error-Code");
    if (code) { const err = new Error(res.message || res.error); err.code = code; throw err; }
    return res;
  }

  // fetchContext asks for a call's context. In a cluster it may reach a
  // node that has not applied the identify just sent yet (409): it asks
  // again a few times before giving up.
  async function fetchContext(callID) {
    for (let i = 0; ; i++) {
      try {
        return await ask(state.profile.context_subject, { call_id: callID });
      } catch (err) {
        if (err.code !== "409" || i >= 4) throw err;
        await new Promise((r) => setTimeout(r, 200 * (i + 1)));
      }
    }
  }

  // verify says who the caller is (the engine records it), then fetches
  // their context: the engine gives it only now, and only to this agent.
  async function verify(card, pop, ch) {
    const out = $(".verify-result", card);
    out.className = "verify-result";
    out.textContent = "Checking…";
    try {
      await ask(state.profile.identify_subject, { call_id: pop.call.call_id, customer_ref: ch.ref });
      card.disclosed = await fetchContext(pop.call.call_id);
      out.textContent = "";
      render(card, pop);
    } catch (err) {
      out.className = "verify-result bad";
      out.textContent = "Not verified: " + (err && err.message ? err.message : err);
    }
  }

  async function identify(card, pop, ch) {
    const out = $(".who-result", card);
    const body = { call_id: pop.call.call_id };
    if (ch.fresh) body.new_customer = true; else body.customer_ref = ch.ref;
    if (ch.not) body.not = true;
    try {
      const m = await state.nc.request(state.profile.identify_subject, JSON.stringify(body), { timeout: 10000 });
      const res = m.json();
      if (m.headers && m.headers.get("Nats-Service-Error-Code")) {
        out.className = "who-result bad";
        out.textContent = "Not saved: " + (res.message || res.error);
        return;
      }
      out.className = "who-result ok";
      out.textContent = res.customer_ref ? "This call is " + res.customer_ref + "'s" : "Noted: not " + ch.ref;
    } catch (err) {
      out.className = "who-result bad";
      out.textContent = "Not saved: " + (err && err.message ? err.message : err);
    }
  }

  function wireWrapUp(card, pop) {
    const form = $("form.wrapup", card);
    form.addEventListener("input", () => { form.dataset.touched = "1"; });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = $(".wrapup-result", card);
      out.className = "wrapup-result";
      out.textContent = "Saving…";
      const body = { call_id: pop.call.call_id };
      const intent = form.intent.value.trim();
      if (intent) { body.intent = intent; body.intent_status = form.intent_status.value; }
      const summary = form.summary.value.trim();
      if (summary) body.summary = summary;
      const vars = {};
      for (const line of form.variables.value.split("\n")) {
        const i = line.indexOf("=");
        if (i > 0) vars[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      if (Object.keys(vars).length) body.variables = vars;
      try {
        const m = await state.nc.request(state.cfg.wrapup_subject, JSON.stringify(body), { timeout: 10000 });
        const res = m.json();
        if (m.headers && m.headers.get("Nats-Service-Error-Code")) {
          out.className = "wrapup-result bad";
          out.textContent = "Not saved: " + (res.message || res.error);
          return;
        }
        out.className = "wrapup-result ok";
        out.textContent = res.unassigned
          ? "Kept with the call until you say who the caller is"
          : "Saved to " + res.customer_ref + " (" + res.variables_updated + " variables, " + res.intents_updated + " intents)";
        card.classList.add("done");
      } catch (err) {
        out.className = "wrapup-result bad";
        out.textContent = "Not saved: " + (err && err.message ? err.message : err) + " — try again";
      }
    });
  }

  function row(cls, cells, kinds = ["when", "channel", "text"]) {
    const tr = document.createElement("tr");
    tr.className = cls;
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.className = kinds[i] || "";
      td.textContent = c == null ? "" : String(c);
      tr.appendChild(td);
    });
    return tr;
  }

  function ordinal(n) {
    n = Number(n) || 1;
    const s = ["th", "st", "nd", "rd"], v = n % 100;
    return n + (s[(v - 20) % 10] || s[v] || s[0]);
  }

  function when(ts) {
    const d = new Date(ts);
    if (isNaN(d)) return "";
    const day = d.toLocaleDateString(undefined, { weekday: "short" });
    const date = (d.getMonth() + 1) + "/" + d.getDate();
    const time = d.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
    return day + " " + date + " " + time;
  }
})();
