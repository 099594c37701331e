/* needleguide trainer — the page (plain ES2020, no framework, no build step).
 *
 * Protocol: docs/app.md "Web protocol". Every fetch and the WebSocket carry ?token=T
 * (T from <meta name="ng-token">, else from the page URL). The session id lives in
 * location.hash (#sid=...) so a reload reconnects to the same session.
 *
 * Stable element ids (tests and the benchmark use them):
 *  set-up:     sel-procedure sel-level sel-side sel-modality sel-pixels in-seed
 *              in-bmi in-age in-egfr sel-allergy chk-pregnant chk-anticoag chk-diabetes
 *              btn-advise btn-start advice start-status proc-target
 *  page:       err-banner err-text btn-err-close hdr-conn hdr-modality hdr-procedure
 *              hdr-phase btn-leave
 *  image:      canvas viewport no-image alarm-banner tool-hint img-info
 *  US:         us-panel probe-pad btn-probe-left btn-probe-right btn-probe-tilt-up
 *              btn-probe-tilt-down btn-probe-rot-ccw btn-probe-rot-cw btn-probe-elev-up
 *              btn-probe-elev-down btn-probe-reset btn-tool-probe in-depth in-gain in-freq
 *              ro-slide ro-tilt ro-elev ro-rotate
 *  fluoro:     fl-panel in-orbit in-tilt btn-carm fl-views btn-view-<name> (one per named
 *              view) btn-pedal btn-spot rad-indicator ro-fluoro-time ro-dap ro-kref
 *              ro-spots ro-dsa ro-pulse
 *  needle:     btn-entry btn-insert btn-advance btn-advance5 btn-withdraw btn-withdraw5
 *              btn-out btn-steer-in-minus btn-steer-in-plus btn-steer-out-minus
 *              btn-steer-out-plus ro-inserted ro-passes ro-inbody ro-entry
 *  inject:     btn-inject chk-dsa
 *  overlays:   chk-tip chk-shaft chk-levels chk-alarm
 *  log/finish: events-log btn-finish btn-show-result kbd-help
 *  advice:     btn-use-<modality> (one per trainable ranked modality: sets sel-modality)
 *  result:     result-panel res-error res-success res-passes res-time res-fluoro res-dap
 *              res-kref res-contrast res-missed lnk-report btn-result-close btn-new
 *  status bar: sb-conn sb-sid sb-clock sb-phase sb-seq sb-fps sb-lat sb-needle sb-fluoro sb-rad
 *
 * Keyboard (procedure screen; ignored while typing in a number field or a slider):
 *  US probe   ←/→ slide ∓1 mm · ↑/↓ tilt ±2° · Q/E rotate ∓5° · PgUp/PgDn elevational ±1 mm
 *             (Shift ×5) · R probe reset · mouse: right-drag (or left-drag with the probe
 *             tool) horizontal = slide, vertical = tilt; wheel = rotate
 *  fluoro     F or Space (hold) pedal · S spot · V next named view
 *  needle     P pick entry (next click) · N insert · W advance 1 mm (Shift 5 mm) ·
 *             X withdraw 1 mm (Shift 5 mm) · O needle out · I/K in-plane ∓1° ·
 *             J/L out-of-plane ∓1° (Shift ×3)
 *  inject     T test dose (FL: as a DSA run when "as DSA run" is ticked)
 *  overlays   1 tip · 2 shaft · 3 levels · 4 alarm
 *  general    H keyboard help · Esc cancel tool / dismiss the error
 *
 * Instrumentation (contract): window.__ng = {sid, frames, lastSeq, lastId, lastAck, state, result, errors,
 * latencies, paintTimes}: the send time (performance.now()) of every command is kept by
 * its id; when a frame whose header.ack >= id has been drawn, (paint - send) ms is pushed
 * to latencies once per id; paintTimes gets performance.now() per painted frame (last
 * 2000). errors gets {field, message, id, t} for every error shown. Optional input:
 * window.__ng.pixels (number) overrides the image size of the next session started.
 */
'use strict';

(() => {
  // ------------------------------------------------------------------ basics
  const $ = (id) => document.getElementById(id);
  const PLACEHOLDER = '__NG_' + 'TOKEN__';
  const TOKEN = (() => {
    const m = document.querySelector('meta[name="ng-token"]');
    const t = m ? (m.getAttribute('content') || '') : '';
    if (t && t !== PLACEHOLDER) return t;
    return new URLSearchParams(location.search).get('token') || '';
  })();
  const withToken = (path) => path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(TOKEN);

  const NG = window.__ng = {
    sid: null, frames: 0, lastSeq: null, state: null, result: null,
    errors: [], latencies: [], paintTimes: [], lastId: 0, lastAck: 0,
  };
  const MAX_PAINT_TIMES = 2000;
  const MAX_LATENCIES = 20000;

  const fmt = (v, d = 1) => (typeof v === 'number' && isFinite(v) ? v.toFixed(d) : '—');
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const round2 = (v) => Math.round(v * 100) / 100;
  const mmss = (s) => {
    if (typeof s !== 'number' || !isFinite(s)) return '—';
    const m = Math.floor(s / 60);
    return `${m}:${(s - 60 * m).toFixed(1).padStart(4, '0')}`;
  };
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const MOD_NAMES = { us: 'Ultrasound', fluoro: 'Fluoroscopy', 'fluoro-dsa': 'Fluoroscopy + DSA', ct: 'CT', landmark: 'Landmark (blind)' };
  const viewLabel = (name) => String(name).split('-').map((w) => (w === 'ap' ? 'AP' : w.charAt(0).toUpperCase() + w.slice(1))).join(' ');

  // ------------------------------------------------------------------ errors
  // field name (as the server names it) -> element id, per screen
  const FIELD_SETUP = {
    procedure: 'sel-procedure', level: 'sel-level', side: 'sel-side', modality: 'sel-modality',
    pixels: 'sel-pixels', seed: 'in-seed', bmi: 'in-bmi', age: 'in-age', egfr: 'in-egfr',
    contrast_allergy: 'sel-allergy', pregnant: 'chk-pregnant', anticoagulated: 'chk-anticoag',
    diabetes: 'chk-diabetes',
  };
  const FIELD_PROC = {
    depth_mm: 'in-depth', gain_db: 'in-gain', frequency_mhz: 'in-freq', orbit_deg: 'in-orbit',
    slide_mm: 'probe-pad', elev_mm: 'probe-pad', rotate_deg: 'probe-pad', name: 'fl-views',
    view: 'fl-views', down: 'btn-pedal', pedal: 'btn-pedal', px: 'btn-entry', entry: 'btn-entry',
    mm: 'needle-moves', inplane_deg: 'steer-pad', outplane_deg: 'steer-pad', dsa: 'btn-inject',
    // the core may name the command (op) instead of one of its fields
    inject: 'btn-inject', insert: 'btn-entry', advance: 'needle-moves', withdraw: 'needle-moves',
    steer: 'steer-pad', probe: 'probe-pad', probe_reset: 'probe-pad', carm: 'in-orbit',
    spot: 'btn-pedal',
  };
  const normField = (f) => {
    if (f == null) return '';
    let s = String(f).trim().replace(/^-+/, '').replace(/-/g, '_').toLowerCase();
    if (s.includes('.')) s = s.split('.').pop();
    return s;
  };
  let errTimer = null;
  let errCount = 0;
  const fieldErrTimers = new Map();

  function fieldTarget(field) {
    const f = normField(field);
    if (!f) return null;
    if (!$('screen-setup').hidden) return FIELD_SETUP[f] || null;
    if (f === 'tilt_deg') return modality() === 'fluoro' ? 'in-tilt' : 'probe-pad';
    return FIELD_PROC[f] || null;
  }

  function clearFieldErrors(scope) {
    const root = scope || document;
    root.querySelectorAll('.invalid').forEach((e) => e.classList.remove('invalid'));
    root.querySelectorAll('.field-err').forEach((e) => { e.textContent = ''; });
  }

  function markField(id, message, autoHide) {
    const target = $(id);
    if (!target) return;
    target.classList.add('invalid');
    const box = document.querySelector(`.field-err[data-for="${id}"]`);
    if (box) box.textContent = message;
    if (autoHide) {
      clearTimeout(fieldErrTimers.get(id));
      fieldErrTimers.set(id, setTimeout(() => {
        target.classList.remove('invalid');
        if (box) box.textContent = '';
      }, 6000));
    }
  }

  /** Show an error: banner (auto-hides), next to the field it names, and in __ng.errors. */
  function showError(field, message, id) {
    const msg = String(message || 'error');
    NG.errors.push({ field: field == null ? null : String(field), message: msg, id: id == null ? null : id, t: performance.now() });
    const f = normField(field);
    $('err-text').textContent = f && !msg.includes(':') ? `${f}: ${msg}` : msg;
    errCount += 1;
    $('err-more').textContent = errCount > 1 ? `(${errCount})` : '';
    $('err-banner').hidden = false;
    clearTimeout(errTimer);
    errTimer = setTimeout(hideError, 6000);
    const target = fieldTarget(field);
    if (target) markField(target, msg, $('screen-setup').hidden);
  }
  function hideError() {
    $('err-banner').hidden = true;
    errCount = 0;
    clearTimeout(errTimer);
  }

  // ------------------------------------------------------------------ HTTP
  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(withToken(path), {
        method,
        headers: body !== undefined ? { 'Content-Type': 'application/json' } : {},
        body: body !== undefined ? JSON.stringify(body) : undefined,
        cache: 'no-store',
      });
    } catch (e) {
      const err = new Error(`network: the app server did not answer (${e.message})`);
      err.field = null; err.status = 0;
      throw err;
    }
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      let field = null;
      let message = `HTTP ${res.status}`;
      if (data && data.error) {
        field = data.error.field || null;
        message = data.error.message || message;
      } else if (data && Array.isArray(data.detail) && data.detail.length) { // FastAPI default
        const d = data.detail[0];
        field = Array.isArray(d.loc) ? String(d.loc[d.loc.length - 1]) : null;
        message = `${field}: ${d.msg}`;
      }
      const err = new Error(message);
      err.field = field; err.status = res.status;
      throw err;
    }
    return data;
  }

  // ------------------------------------------------------------------ set-up screen
  let PROCS = [];
  const procById = (id) => PROCS.find((p) => p.id === id);

  function fillSelect(sel, items, value, emptyLabel) {
    sel.textContent = '';
    if (!items.length) {
      const o = el('option', null, emptyLabel || '—');
      o.value = '';
      sel.appendChild(o);
      sel.disabled = true;
      return;
    }
    sel.disabled = false;
    for (const it of items) {
      const o = el('option', null, it.label);
      o.value = it.value;
      sel.appendChild(o);
    }
    if (value != null && items.some((i) => i.value === value)) sel.value = value;
  }

  function onProcedureChange() {
    const p = procById($('sel-procedure').value);
    if (!p) return;
    fillSelect($('sel-level'), (p.levels || []).map((l) => ({ value: l, label: l })), p.default_level, 'n/a');
    fillSelect($('sel-side'), (p.sides || []).map((s) => ({ value: s, label: s })), p.default_side, 'n/a (midline)');
    const mods = (p.modalities && p.modalities.length ? p.modalities : ['us', 'fluoro']);
    const cur = $('sel-modality').value;
    fillSelect($('sel-modality'), mods.map((m) => ({ value: m, label: MOD_NAMES[m] || m })), mods.includes(cur) ? cur : mods[0]);
    const bits = [];
    if (p.target) bits.push(`Target: ${p.target}`);
    if (typeof p.tolerance_mm === 'number') bits.push(`tolerance ${p.tolerance_mm} mm`);
    $('proc-target').textContent = bits.join(' · ');
  }

  async function loadProcedures() {
    try {
      PROCS = await api('GET', '/api/procedures');
    } catch (e) {
      showError(e.field, e.message);
      $('sel-procedure').textContent = '';
      return;
    }
    const sel = $('sel-procedure');
    const prev = sel.value;
    fillSelect(sel, PROCS.map((p) => ({ value: p.id, label: p.name })), null);
    sel.value = procById(prev) ? prev : (procById('sacroiliac') ? 'sacroiliac' : (PROCS[0] || {}).id || '');
    onProcedureChange();
  }

  const numOrNull = (id) => {
    const v = $(id).value.trim();
    if (v === '') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : v; // a non-number goes as typed: the server names the field
  };

  function patientBody() {
    return {
      procedure: $('sel-procedure').value,
      level: $('sel-level').disabled ? null : ($('sel-level').value || null),
      bmi: numOrNull('in-bmi'),
      age: numOrNull('in-age'),
      pregnant: $('chk-pregnant').checked,
      contrast_allergy: $('sel-allergy').value,
      egfr: numOrNull('in-egfr'),
      diabetes: $('chk-diabetes').checked,
      anticoagulated: $('chk-anticoag').checked,
    };
  }

  function sessionBody() {
    const seed = numOrNull('in-seed');
    let pixels = Number($('sel-pixels').value);
    if (typeof NG.pixels === 'number' && Number.isFinite(NG.pixels)) pixels = NG.pixels;
    return Object.assign(patientBody(), {
      modality: $('sel-modality').value,
      side: $('sel-side').disabled ? null : ($('sel-side').value || null),
      seed: seed == null ? 1 : seed,
      pixels,
    });
  }

  async function onAdvise() {
    clearFieldErrors($('screen-setup'));
    const btn = $('btn-advise');
    btn.disabled = true; btn.classList.add('busy');
    try {
      const adv = await api('POST', '/api/advise', patientBody());
      hideError();
      renderAdvice(adv);
    } catch (e) {
      showError(e.field, e.message);
    } finally {
      btn.disabled = false; btn.classList.remove('busy');
    }
  }

  function citeTag(key, evidence) {
    const t = el('span', 'cite', key);
    const ev = evidence && evidence[key];
    let title = key;
    if (typeof ev === 'string') title = ev;
    else if (ev && typeof ev === 'object') title = [ev.value, ev.citation].filter(Boolean).join(' — ') || key;
    t.title = title;
    return t;
  }

  function renderAdvice(adv) {
    const box = $('advice');
    box.textContent = '';
    const evidence = adv.evidence || {};
    (adv.ranking || []).forEach((r, i) => {
      const card = el('div', 'rank');
      card.dataset.modality = r.modality;
      const top = el('div', 'rank-top');
      top.appendChild(el('span', 'rank-no', `${i + 1}.`));
      const name = el('span', 'rank-name', MOD_NAMES[r.modality] || r.modality);
      const s = Number(r.score);
      const cls = s >= 7 ? 'hi' : s >= 4 ? 'mid' : 'lo';
      name.appendChild(el('span', 'rank-band', s >= 7 ? 'usually appropriate' : s >= 4 ? 'may be appropriate' : 'usually not appropriate'));
      top.appendChild(name);
      const trainable = r.modality === 'us' || r.modality === 'fluoro' || r.modality === 'fluoro-dsa';
      if (trainable) {
        const use = el('button', 'btn btn-sm', 'Use');
        use.type = 'button';
        use.id = `btn-use-${r.modality}`;
        use.title = 'Train this procedure under this modality';
        use.addEventListener('click', () => {
          $('sel-modality').value = r.modality === 'us' ? 'us' : 'fluoro';
        });
        top.appendChild(use);
      } else {
        top.appendChild(el('span'));
      }
      top.appendChild(el('span', `rank-score score-${cls}`, `${s}/9`));
      const bar = el('div', 'score-bar');
      const fill = el('span', `bar-${cls}`);
      fill.style.width = `${clamp((s / 9) * 100, 0, 100)}%`;
      bar.appendChild(fill);
      top.appendChild(bar);
      card.appendChild(top);
      const ul = el('ul');
      for (const reason of r.reasons || []) {
        const li = el('li', null, reason.text);
        for (const k of reason.evidence || []) li.appendChild(citeTag(k, evidence));
        ul.appendChild(li);
      }
      card.appendChild(ul);
      box.appendChild(card);
    });
    const warnings = adv.warnings || [];
    if (warnings.length) {
      box.appendChild(el('div', 'warn-title', 'Warnings'));
      const ul = el('ul', 'warn-list');
      for (const w of warnings) {
        const li = el('li', `sev-${w.severity || 'info'}`);
        li.appendChild(el('span', 'sev', w.severity || 'info'));
        li.appendChild(document.createTextNode(w.text));
        for (const k of w.evidence || []) li.appendChild(citeTag(k, evidence));
        ul.appendChild(li);
      }
      box.appendChild(ul);
    }
    if (!(adv.ranking || []).length && !warnings.length) box.appendChild(el('p', 'placeholder', 'No advice returned.'));
  }

  async function onStart() {
    clearFieldErrors($('screen-setup'));
    const btn = $('btn-start');
    btn.disabled = true; btn.classList.add('busy');
    $('start-status').textContent = 'Building the phantom and the plan…';
    try {
      const r = await api('POST', '/api/sessions', sessionBody());
      $('start-status').textContent = '';
      openSession(r.sid, r.state);
    } catch (e) {
      $('start-status').textContent = '';
      showError(e.field, e.message);
    } finally {
      btn.disabled = false; btn.classList.remove('busy');
    }
  }

  // ------------------------------------------------------------------ session lifecycle
  let sid = null;
  let nextId = 1;
  const sentAt = new Map(); // command id -> performance.now() at send / keydown

  function loadNextId() {
    try {
      const v = Number(sessionStorage.getItem(`ng-id-${sid}`));
      if (Number.isFinite(v) && v >= nextId) nextId = v + 1;
    } catch (_) { /* storage off: ids restart, the first frame's ack moves them on */ }
  }
  function saveId(id) {
    try { sessionStorage.setItem(`ng-id-${sid}`, String(id)); } catch (_) { /* ignore */ }
  }

  function openSession(newSid, state) {
    sid = newSid;
    NG.sid = sid;
    NG.result = null;
    NG.frames = 0;
    NG.lastSeq = null;
    nextId = 1;
    loadNextId();
    sentAt.clear();
    evKeys.clear();
    $('events-log').textContent = '';
    lastHdr = null;
    if (lastBmp) { lastBmp.close(); lastBmp = null; }
    entryMarker = null;
    setTool(null);
    $('no-image').hidden = false;
    $('result-panel').hidden = true;
    $('btn-show-result').hidden = true;
    if (location.hash !== `#sid=${sid}`) history.replaceState(null, '', `${location.pathname}${location.search}#sid=${encodeURIComponent(sid)}`);
    hideError();
    $('screen-setup').hidden = true;
    $('screen-proc').hidden = false;
    $('hdr-session').hidden = false;
    $('btn-leave').hidden = false;
    clearFieldErrors();
    builtFor = null;
    applyState(state);
    resizeCanvas();
    connect(true);
    try { $('canvas').focus({ preventScroll: true }); } catch (_) { /* ignore */ }
  }

  function leaveSession() {
    pedalReleaseAll('leave');
    disconnect();
    sid = null;
    NG.sid = null;
    NG.state = null;
    history.replaceState(null, '', `${location.pathname}${location.search}`);
    $('screen-proc').hidden = true;
    $('screen-setup').hidden = false;
    $('hdr-session').hidden = true;
    $('btn-leave').hidden = true;
    $('alarm-banner').hidden = true;
    document.body.classList.remove('alarm-on');
    $('sb-sid').textContent = 'sid —';
    setConn('off', 'no session');
  }

  async function resumeFromHash() {
    const m = /(?:^#|&)sid=([^&]+)/.exec(location.hash);
    if (!m) return false;
    const want = decodeURIComponent(m[1]);
    try {
      const r = await api('GET', `/api/sessions/${encodeURIComponent(want)}`);
      openSession(r.sid || want, r.state);
      if (r.state && r.state.finished) fetchResult();
      return true;
    } catch (e) {
      history.replaceState(null, '', `${location.pathname}${location.search}`);
      showError(e.field, e.message);
      return false;
    }
  }

  async function fetchResult() {
    if (!sid || NG.result) return;
    try {
      const r = await api('GET', `/api/sessions/${encodeURIComponent(sid)}/result`);
      showResult(r);
    } catch (e) {
      if (e.status !== 409) showError(e.field, e.message);
    }
  }

  // ------------------------------------------------------------------ WebSocket
  let ws = null;
  let wsWanted = false;
  let backoff = 500;
  let reconnectTimer = null;

  function setConn(kind, text) {
    const h = $('hdr-conn');
    h.className = `conn conn-${kind}`;
    h.textContent = `● ${text}`;
    const s = $('sb-conn');
    s.className = `conn-${kind}`;
    s.textContent = text;
  }

  function connect(fresh) {
    if (!sid) return;
    wsWanted = true;
    if (fresh) backoff = 500;
    clearTimeout(reconnectTimer);
    if (ws) { ws.onclose = null; try { ws.close(); } catch (_) { /* ignore */ } }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/ws/${encodeURIComponent(sid)}?token=${encodeURIComponent(TOKEN)}`;
    setConn('wait', 'connecting');
    const sock = new WebSocket(url);
    sock.binaryType = 'arraybuffer';
    let opened = false;
    ws = sock;
    sock.onopen = () => {
      opened = true;
      backoff = 500;
      setConn('live', 'live');
    };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      if (typeof ev.data === 'string') onText(ev.data);
      else onFrame(ev.data);
    };
    sock.onerror = () => { /* onclose follows */ };
    sock.onclose = (ev) => {
      if (sock !== ws) return;
      ws = null;
      pedalSources.clear();
      updatePedalUI();
      if (!wsWanted) { setConn('off', 'offline'); return; }
      if (ev.code === 4404 || ev.code === 1008 || ev.code === 4401 || ev.code === 4403) {
        setConn('off', 'closed');
        const last = NG.errors[NG.errors.length - 1];
        if (!(last && performance.now() - last.t < 2000 && normField(last.field) === (ev.code === 4404 ? 'sid' : 'token'))) showError(ev.code === 4404 ? 'sid' : 'token', ev.code === 4404
          ? 'sid: the session no longer exists on the server' : 'token: the server refused the connection');
        wsWanted = false;
        return;
      }
      if (!opened) {
        // the handshake failed: is the session still there?
        api('GET', `/api/sessions/${encodeURIComponent(sid)}`).then(() => scheduleReconnect(), (e) => {
          if (e.status === 404 || e.status === 401) {
            wsWanted = false;
            setConn('off', 'closed');
            showError(e.field, e.message);
          } else scheduleReconnect();
        });
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (!wsWanted) return;
    const wait = backoff;
    backoff = Math.min(backoff * 2, 10000);
    setConn('wait', `reconnecting in ${(wait / 1000).toFixed(1)} s`);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(() => connect(false), wait);
  }

  function disconnect() {
    wsWanted = false;
    clearTimeout(reconnectTimer);
    if (ws) {
      const s = ws;
      ws = null;
      s.onclose = null;
      try { s.close(1000); } catch (_) { /* ignore */ }
    }
  }

  /** Send one command; returns its id (null if not connected). t0: the key/pointer event time. */
  function send(cmd, t0) {
    const t = t0 == null ? performance.now() : t0;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      if (cmd.op !== 'pedal' || cmd.down) showError('connection', 'not connected to the session: command not sent (reconnecting…)');
      return null;
    }
    const id = nextId++;
    const msg = Object.assign({ id }, cmd);
    sentAt.set(id, t);
    NG.lastId = id;
    ws.send(JSON.stringify(msg));
    saveId(id);
    return id;
  }

  function onText(txt) {
    let m;
    try { m = JSON.parse(txt); } catch (_) { return; }
    switch (m.type) {
      case 'state':
        if (m.state) applyState(m.state);
        break;
      case 'events':
        addEvents(m.events || []);
        break;
      case 'error':
        if (m.id != null) sentAt.delete(m.id);
        if (entryMarker && m.id != null && m.id === entryMarker.id) { entryMarker = null; draw(); }
        showError(m.field, m.message, m.id);
        break;
      case 'result':
        if (m.result) showResult(m.result);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ frames
  const canvas = $('canvas');
  const ctx = canvas.getContext('2d', { alpha: false });
  let lastBmp = null;
  let lastHdr = null;
  let drawRect = null; // {x, y, w, h, scale} in canvas pixels
  let decoding = false;
  let queued = null;
  let entryMarker = null; // {px:[col,row], id}
  const decoder = new TextDecoder();

  function onFrame(buf) {
    if (decoding) { queued = buf; return; } // keep the newest only; its ack covers the dropped one
    decodeFrame(buf);
  }

  async function decodeFrame(buf) {
    decoding = true;
    try {
      if (buf.byteLength < 4) return;
      const n = new DataView(buf).getUint32(0, true);
      if (4 + n > buf.byteLength) return;
      const hdr = JSON.parse(decoder.decode(new Uint8Array(buf, 4, n)));
      const bmp = await createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: 'image/jpeg' }));
      paint(bmp, hdr);
    } catch (e) {
      console.warn('frame dropped:', e);
    } finally {
      decoding = false;
      if (queued) { const q = queued; queued = null; decodeFrame(q); }
    }
  }

  function paint(bmp, hdr) {
    if (!sid) { bmp.close(); return; }
    if (lastBmp) lastBmp.close();
    lastBmp = bmp;
    lastHdr = hdr;
    draw();
    const t = performance.now();
    NG.frames += 1;
    NG.lastSeq = hdr.seq;
    const pt = NG.paintTimes;
    pt.push(t);
    if (pt.length > MAX_PAINT_TIMES) pt.splice(0, pt.length - MAX_PAINT_TIMES);
    const ack = Number(hdr.ack);
    if (Number.isFinite(ack)) {
      NG.lastAck = Math.max(NG.lastAck, ack);
      if (ack >= nextId) nextId = ack + 1; // after a reload, keep ids above what the server saw
      const lat = NG.latencies;
      for (const [id, t0] of sentAt) {
        if (id <= ack) {
          lat.push(t - t0);
          sentAt.delete(id);
        } else if (t - t0 > 30000) {
          sentAt.delete(id); // no frame acknowledged it in 30 s: stop waiting
        }
      }
      if (lat.length > MAX_LATENCIES) lat.splice(0, lat.length - MAX_LATENCIES);
    }
    if (typeof hdr.t_s === 'number') lastClock = hdr.t_s;
    $('no-image').hidden = true;
    frameStatus();
  }

  function draw() {
    const cw = canvas.width;
    const ch = canvas.height;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, cw, ch);
    if (!lastBmp) { drawRect = null; return; }
    const w = Number(lastHdr && lastHdr.w) || lastBmp.width;
    const h = Number(lastHdr && lastHdr.h) || lastBmp.height;
    const scale = Math.min(cw / w, ch / h);
    const dw = w * scale;
    const dh = h * scale;
    const x = Math.round((cw - dw) / 2);
    const y = Math.round((ch - dh) / 2);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(lastBmp, x, y, dw, dh);
    drawRect = { x, y, w: dw, h: dh, scale, iw: w, ih: h };
    if (entryMarker) {
      const cx = x + (entryMarker.px[0] + 0.5) * scale;
      const cy = y + (entryMarker.px[1] + 0.5) * scale;
      const r = 9 * (window.devicePixelRatio || 1);
      ctx.strokeStyle = '#3bb9e8';
      ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
      ctx.beginPath();
      ctx.moveTo(cx - r, cy); ctx.lineTo(cx - r / 3, cy);
      ctx.moveTo(cx + r / 3, cy); ctx.lineTo(cx + r, cy);
      ctx.moveTo(cx, cy - r); ctx.lineTo(cx, cy - r / 3);
      ctx.moveTo(cx, cy + r / 3); ctx.lineTo(cx, cy + r);
      ctx.stroke();
    }
  }

  function resizeCanvas() {
    const vp = $('viewport');
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(vp.clientWidth * dpr));
    const h = Math.max(1, Math.round(vp.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    draw();
  }

  /** Image pixel [col, row] -> its centre in client (CSS) coordinates, relative to the
   *  canvas' centre (what a test clicks at); null before the first frame. */
  NG.clientOffsetOf = (col, row) => {
    if (!drawRect) return null;
    const r = canvas.getBoundingClientRect();
    const cx = (drawRect.x + (col + 0.5) * drawRect.scale) * (r.width / canvas.width);
    const cy = (drawRect.y + (row + 0.5) * drawRect.scale) * (r.height / canvas.height);
    return [cx - r.width / 2, cy - r.height / 2];
  };

  /** Canvas event position -> image pixel [col, row] (null outside the image). */
  function imagePx(ev) {
    if (!drawRect) return null;
    const r = canvas.getBoundingClientRect();
    const sx = canvas.width / r.width;
    const sy = canvas.height / r.height;
    const cx = (ev.clientX - r.left) * sx;
    const cy = (ev.clientY - r.top) * sy;
    const col = (cx - drawRect.x) / drawRect.scale;
    const row = (cy - drawRect.y) / drawRect.scale;
    if (col < 0 || row < 0 || col >= drawRect.iw || row >= drawRect.ih) return null;
    return [clamp(Math.floor(col), 0, drawRect.iw - 1), clamp(Math.floor(row), 0, drawRect.ih - 1)];
  }

  // ------------------------------------------------------------------ state -> UI
  let builtFor = null; // "modality|views" the panels were built for
  let lastClock = null;
  const touched = new Map(); // control id -> time of the user's last change (don't overwrite)
  const touch = (id) => touched.set(id, performance.now());
  const recentlyTouched = (id) => document.activeElement === $(id) || (performance.now() - (touched.get(id) || -1e9) < 1500);
  const modality = () => (NG.state && NG.state.modality) || $('sel-modality').value;

  function buildPanels(st) {
    const mod = st.modality;
    const views = (st.fluoro && st.fluoro.views) || [];
    const key = `${mod}|${views.join(',')}`;
    if (key === builtFor) return;
    builtFor = key;
    $('us-panel').hidden = mod !== 'us';
    $('fl-panel').hidden = mod !== 'fluoro';
    $('lbl-dsa').hidden = mod !== 'fluoro';
    $('sb-fluoro').hidden = mod !== 'fluoro';
    $('hdr-modality').textContent = mod === 'us' ? 'US' : mod === 'fluoro' ? 'FLUORO' : String(mod);
    const box = $('fl-views');
    box.textContent = '';
    for (const v of views) {
      const b = el('button', 'btn', viewLabel(v));
      b.type = 'button';
      b.id = `btn-view-${v}`;
      b.dataset.view = v;
      b.title = `C-arm to the ${viewLabel(v)} view`;
      b.addEventListener('click', () => { entryMarker = null; send({ op: 'view', name: v }); });
      box.appendChild(b);
    }
    if (mod === 'us' && st.us) {
      const [dlo, dhi] = st.us.depth_range_mm || [20, 160];
      const [flo, fhi] = st.us.frequency_range_mhz || [2, 15];
      Object.assign($('in-depth'), { min: dlo, max: dhi, step: 1 });
      Object.assign($('in-freq'), { min: flo, max: fhi, step: 0.1 });
      Object.assign($('in-gain'), { min: -40, max: 40, step: 1 });
    }
    $('no-image').textContent = mod === 'fluoro'
      ? 'No image yet — hold the PEDAL (F / Space) or take a SPOT (S)'
      : 'Waiting for the first image…';
    buildKeyHelp(mod);
  }

  function setVal(id, v, digits) {
    const e = $(id);
    if (!e || v == null || recentlyTouched(id)) return;
    const s = digits == null ? String(v) : Number(v).toFixed(digits);
    if (e.value !== s) e.value = s;
  }

  function applyState(st) {
    if (!st || typeof st !== 'object') return;
    NG.state = st;
    buildPanels(st);
    const proc = [st.procedure_name || st.procedure, st.level, st.side].filter(Boolean).join(' · ');
    $('hdr-procedure').textContent = proc;
    $('hdr-procedure').title = st.target ? `Target: ${st.target}` : proc;
    $('hdr-phase').textContent = st.phase || '—';
    if (typeof st.clock_s === 'number') lastClock = st.clock_s;

    if (st.us) {
      const u = st.us;
      setVal('in-depth', u.depth_mm);
      setVal('in-gain', u.gain_db);
      setVal('in-freq', u.frequency_mhz);
      $('out-depth').textContent = `${fmt(u.depth_mm, 0)} mm`;
      $('out-gain').textContent = `${fmt(u.gain_db, 0)} dB`;
      $('out-freq').textContent = `${fmt(u.frequency_mhz, 1)} MHz`;
      $('us-probe-name').textContent = u.probe || '';
      const p = u.pose || {};
      $('ro-slide').textContent = `${fmt(p.slide_mm)} mm`;
      $('ro-tilt').textContent = `${fmt(p.tilt_deg)}°`;
      $('ro-elev').textContent = `${fmt(p.elev_mm)} mm`;
      $('ro-rotate').textContent = `${fmt(p.rotate_deg)}°`;
      $('img-info').textContent = `US ${u.probe || ''}  ${fmt(u.frequency_mhz, 1)} MHz\nD ${fmt(u.depth_mm, 0)} mm  G ${fmt(u.gain_db, 0)} dB`;
    }
    if (st.fluoro) {
      const f = st.fluoro;
      setVal('in-orbit', f.orbit_deg, 0);
      setVal('in-tilt', f.tilt_deg, 0);
      $('fl-view-now').textContent = f.view ? `(${viewLabel(f.view)})` : '';
      document.querySelectorAll('#fl-views .btn').forEach((b) => b.classList.toggle('active', b.dataset.view === f.view));
      $('ro-fluoro-time').textContent = fmt(f.fluoro_time_s, 1);
      $('ro-dap').textContent = fmt(f.dap_gy_cm2, 3);
      $('ro-kref').textContent = fmt(f.k_ref_mgy, 2);
      $('ro-spots').textContent = f.spots == null ? '—' : String(f.spots);
      $('ro-dsa').textContent = f.dsa_runs == null ? '—' : String(f.dsa_runs);
      $('ro-pulse').textContent = fmt(f.pulse_rate_hz, 1);
      $('sb-fluoro').textContent = `FT ${fmt(f.fluoro_time_s, 1)} s  DAP ${fmt(f.dap_gy_cm2, 3)} Gy·cm²  Kar ${fmt(f.k_ref_mgy, 2)} mGy  spots ${f.spots ?? '—'}  DSA ${f.dsa_runs ?? '—'}`;
      const o = `${f.orbit_deg >= 0 ? 'LAO' : 'RAO'} ${fmt(Math.abs(f.orbit_deg), 0)}°  ${f.tilt_deg >= 0 ? 'CRA' : 'CAU'} ${fmt(Math.abs(f.tilt_deg), 0)}°`;
      $('img-info').textContent = `FLUORO ${f.view ? viewLabel(f.view) : ''}\n${o}  ${fmt(f.pulse_rate_hz, 1)} p/s`;
      // a pedal the server holds that no key or button here holds (e.g. from before a
      // reload): release it — the beam must never stay on without a foot on the pedal
      if (f.pedal && pedalSources.size === 0 && performance.now() - lastPedalFix > 500) {
        lastPedalFix = performance.now();
        send({ op: 'pedal', down: false });
      }
    }
    updatePedalUI();

    const nd = st.needle || {};
    $('ro-inserted').textContent = fmt(nd.inserted_mm, 1);
    $('ro-passes').textContent = nd.passes == null ? '—' : String(nd.passes);
    $('ro-inbody').textContent = nd.in_body ? 'IN BODY' : 'out';
    $('ro-inbody').classList.toggle('in-body', !!nd.in_body);
    $('ro-entry').textContent = nd.entry_set ? 'set' : '—';
    $('ro-needle-spec').textContent = nd.gauge ? `${nd.gauge} G · ${fmt(nd.length_mm, 0)} mm` : '';
    $('sb-needle').textContent = `needle ${nd.in_body ? 'in' : 'out'} ${fmt(nd.inserted_mm, 1)} mm  pass ${nd.passes ?? '—'}`;
    if (nd.in_body && entryMarker) { entryMarker = null; draw(); }

    const ov = st.overlays || {};
    for (const k of ['tip', 'shaft', 'levels', 'alarm']) {
      const id = `chk-${k}`;
      if (k in ov && !recentlyTouched(id)) $(id).checked = !!ov[k];
    }
    // the level labeller reads radiographs: no level overlay on ultrasound
    const lv = $('chk-levels');
    lv.disabled = st.modality === 'us';
    lv.title = lv.disabled ? 'vertebral levels: fluoroscopy only' : '';

    $('alarm-banner').hidden = !st.alarm;
    document.body.classList.toggle('alarm-on', !!st.alarm);
    if (Array.isArray(st.events)) addEvents(st.events);

    const done = !!st.finished;
    document.querySelectorAll('#panel-left .btn, #panel-left input, #panel-right .btn:not(#btn-show-result), #panel-right input')
      .forEach((c) => { c.disabled = done; });
    if (done) {
      pedalSources.clear();
      if (!NG.result) fetchResult();
    }
    $('sb-sid').textContent = `sid ${sid ? sid.slice(0, 8) : '—'}`;
    $('sb-phase').textContent = `phase ${st.phase || '—'}`;
    $('sb-clock').textContent = `t ${mmss(lastClock)}`;
  }

  // ------------------------------------------------------------------ events log
  const evKeys = new Set();
  const MAX_EVENTS = 300;
  const BAD_KINDS = new Set(['alarm', 'bone_contact', 'nerve_contact', 'paraesthesia', 'paresthesia',
    'intravascular_injection', 'intrathecal', 'intrathecal_injection', 'wrong_level']);

  function addEvents(events) {
    const log = $('events-log');
    const fresh = [];
    for (const e of events) {
      if (!e || typeof e !== 'object') continue;
      const key = `${e.t_s}|${e.kind}|${e.text}`;
      if (evKeys.has(key)) continue;
      evKeys.add(key);
      fresh.push(e);
    }
    if (!fresh.length) return;
    fresh.sort((a, b) => (a.t_s || 0) - (b.t_s || 0));
    for (const e of fresh) {
      const kind = String(e.kind || 'info');
      const li = el('li', `ev-${kind}${BAD_KINDS.has(kind) ? ' ev-bad' : ''}`);
      li.dataset.kind = kind;
      li.dataset.t = String(e.t_s);
      li.appendChild(el('span', 'ev-t', mmss(e.t_s)));
      const body = el('span');
      body.appendChild(el('span', 'ev-kind', kind.replace(/_/g, ' ')));
      body.appendChild(document.createTextNode(e.text || ''));
      li.appendChild(body);
      // newest on top, in clock order even when an older one arrives late
      let before = log.firstChild;
      while (before && Number(before.dataset.t) > Number(e.t_s || 0)) before = before.nextSibling;
      log.insertBefore(li, before);
    }
    while (log.childNodes.length > MAX_EVENTS) log.removeChild(log.lastChild);
    $('ev-count').textContent = `(${log.childNodes.length})`;
  }

  // ------------------------------------------------------------------ result
  function showResult(r) {
    NG.result = r;
    const good = (c, ok) => { c.classList.toggle('good', !!ok); c.classList.toggle('bad', !ok); };
    const err = r.final_tip_error_mm;
    const tol = r.tolerance_mm;
    const c1 = $('res-error');
    c1.textContent = `${fmt(err, 2)} mm (tolerance ${fmt(tol, 1)} mm)`;
    good(c1, typeof err === 'number' && typeof tol === 'number' && err <= tol);
    const c2 = $('res-success');
    c2.textContent = r.success ? 'YES' : 'NO';
    good(c2, r.success);
    $('res-verdict').textContent = r.success ? 'on target' : 'missed';
    $('res-verdict').className = `badge ${r.success ? 'badge-ok' : 'badge-bad'}`;
    $('res-passes').textContent = r.passes == null ? '—' : String(r.passes);
    $('res-time').textContent = `${fmt(r.procedure_time_s, 1)} s (${mmss(r.procedure_time_s)})`;
    $('res-fluoro').textContent = `${fmt(r.fluoro_time_s, 1)} s`;
    $('res-dap').textContent = `${fmt(r.dap_gy_cm2, 3)} Gy·cm²`;
    $('res-kref').textContent = `${fmt(r.reference_air_kerma_mgy ?? r.k_ref_mgy, 2)} mGy`;
    $('res-contrast').textContent = `${fmt(r.contrast_ml, 1)} mL`;
    let missed = r.missed_vascular_uptake;
    if (typeof missed !== 'number') {
      missed = (r.events || []).filter((e) => e.kind === 'intravascular_injection' && !e.detected).length;
    }
    const c3 = $('res-missed');
    c3.textContent = missed ? `${missed} (intravascular injection not detected)` : 'none';
    good(c3, !missed);
    const a = $('lnk-report');
    a.href = withToken(`/api/sessions/${encodeURIComponent(sid)}/report`);
    a.setAttribute('download', `needleguide-report-${String(sid).slice(0, 8)}.html`);
    $('result-panel').hidden = false;
    $('btn-show-result').hidden = false;
    $('btn-finish').disabled = true;
    pedalReleaseAll('finish');
  }

  // ------------------------------------------------------------------ tools & canvas mouse
  let tool = null; // null | 'entry' | 'probe'
  function setTool(t) {
    tool = t;
    $('btn-entry').setAttribute('aria-pressed', String(t === 'entry'));
    $('btn-tool-probe').setAttribute('aria-pressed', String(t === 'probe'));
    canvas.classList.toggle('tool-entry', t === 'entry');
    canvas.classList.toggle('tool-probe', t === 'probe');
    const hint = $('tool-hint');
    if (t === 'entry') { hint.textContent = 'Click the skin entry point on the image · Esc cancels'; hint.hidden = false; }
    else if (t === 'probe') { hint.textContent = 'Drag: ↔ slide · ↕ tilt · wheel: rotate · Esc ends'; hint.hidden = false; }
    else hint.hidden = true;
  }

  // accumulated probe motion from the mouse: sent at most every PROBE_EVERY_MS (leading
  // edge, then the remainder), so a drag does not make the server render at the mouse rate
  const probeAcc = { slide_mm: 0, tilt_deg: 0, rotate_deg: 0 };
  const PROBE_LIMITS = { slide_mm: 20, tilt_deg: 15, rotate_deg: 45 };
  const PROBE_EVERY_MS = 40;
  let probeTimer = null;
  let probeLastSend = -1e9;
  let probeT0 = null;
  function flushProbe() {
    probeTimer = null;
    const cmd = { op: 'probe' };
    let any = false;
    for (const k of Object.keys(probeAcc)) {
      const v = round2(clamp(probeAcc[k], -PROBE_LIMITS[k], PROBE_LIMITS[k]));
      if (Math.abs(v) >= (k === 'slide_mm' ? 0.1 : 0.2)) {
        cmd[k] = v;
        probeAcc[k] -= v;
        any = true;
      }
    }
    if (any) {
      entryMarker = null;
      send(cmd, probeT0);
      probeLastSend = performance.now();
    }
    probeT0 = null;
  }
  function queueProbeFlush() {
    const now = performance.now();
    if (probeT0 == null) probeT0 = now;
    if (probeTimer != null) return;
    const wait = PROBE_EVERY_MS - (now - probeLastSend);
    if (wait <= 0) flushProbe();
    else probeTimer = setTimeout(flushProbe, wait);
  }
  let drag = null;
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('pointerdown', (e) => {
    if (document.activeElement && document.activeElement !== canvas &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)) document.activeElement.blur();
    canvas.focus({ preventScroll: true });
    if (!NG.state || NG.state.finished) return;
    const isUs = modality() === 'us';
    if (e.button === 0 && tool === 'entry') {
      const px = imagePx(e);
      if (!px) { showError('px', 'px: click inside the image'); return; }
      const id = send({ op: 'entry', px }, performance.now());
      if (id != null) { entryMarker = { px, id }; draw(); }
      setTool(null);
      return;
    }
    if (isUs && (e.button === 2 || (e.button === 0 && tool === 'probe'))) {
      e.preventDefault();
      drag = { x: e.clientX, y: e.clientY, id: e.pointerId };
      canvas.setPointerCapture(e.pointerId);
      canvas.classList.add('dragging');
    }
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    drag.x = e.clientX;
    drag.y = e.clientY;
    const st = NG.state;
    // horizontal: the image's mm under the pointer (US rows span the depth)
    let mmPerCss = 0.2;
    if (drawRect && st && st.us && st.us.depth_mm) {
      const r = canvas.getBoundingClientRect();
      const imgPxPerCss = (canvas.width / r.width) / drawRect.scale;
      mmPerCss = imgPxPerCss * (st.us.depth_mm / drawRect.ih);
    }
    probeAcc.slide_mm += dx * mmPerCss;
    probeAcc.tilt_deg += -dy * 0.2; // drag up = tilt + (as ArrowUp)
    queueProbeFlush();
  });
  const endDrag = (e) => {
    if (!drag || (e && e.pointerId !== drag.id)) return;
    drag = null;
    canvas.classList.remove('dragging');
  };
  canvas.addEventListener('pointerup', endDrag);
  canvas.addEventListener('pointercancel', endDrag);
  canvas.addEventListener('lostpointercapture', endDrag);
  canvas.addEventListener('wheel', (e) => {
    if (modality() !== 'us' || !NG.state || NG.state.finished) return;
    e.preventDefault();
    let d = e.deltaY || e.deltaX; // Shift+wheel scrolls sideways in some browsers
    if (e.deltaMode === 1) d *= 33; else if (e.deltaMode === 2) d *= 100;
    probeAcc.rotate_deg += (d / 100) * 5 * (e.shiftKey ? 5 : 1);
    queueProbeFlush();
  }, { passive: false });

  // ------------------------------------------------------------------ commands from controls
  const probe = (k, v, t0) => { entryMarker = null; send({ op: 'probe', [k]: v }, t0); };
  const needle = {
    advance: (mm, t0) => send({ op: 'advance', mm }, t0),
    withdraw: (mm, t0) => send({ op: 'withdraw', mm }, t0),
    out: (t0) => send({ op: 'withdraw', mm: 250 }, t0),
    steer: (inp, outp, t0) => send({ op: 'steer', inplane_deg: inp, outplane_deg: outp }, t0),
    insert: (t0) => { entryMarker = null; draw(); send({ op: 'insert' }, t0); },
  };
  const inject = (t0) => {
    const cmd = { op: 'inject' };
    cmd.dsa = modality() === 'fluoro' ? $('chk-dsa').checked : false;
    send(cmd, t0);
  };
  const spot = (t0) => send({ op: 'spot' }, t0);
  function carm() {
    const o = Number($('in-orbit').value);
    const t = Number($('in-tilt').value);
    const cmd = { op: 'carm' };
    cmd.orbit_deg = $('in-orbit').value.trim() === '' ? null : o;
    cmd.tilt_deg = $('in-tilt').value.trim() === '' ? null : t;
    if (cmd.orbit_deg == null) delete cmd.orbit_deg;
    if (cmd.tilt_deg == null) delete cmd.tilt_deg;
    touch('in-orbit'); touch('in-tilt');
    entryMarker = null;
    send(cmd);
  }
  function nextView() {
    const f = NG.state && NG.state.fluoro;
    if (!f || !(f.views || []).length) return;
    const i = f.views.indexOf(f.view);
    entryMarker = null;
    send({ op: 'view', name: f.views[(i + 1) % f.views.length] });
  }
  function toggleOverlay(k) {
    const c = $(`chk-${k}`);
    if (c.disabled) return;
    c.checked = !c.checked;
    touch(c.id);
    send({ op: 'overlays', [k]: c.checked });
  }

  // US sliders: throttled while dragging, always on release
  const usSent = {};
  const usTimers = {};
  function usSlider(id, key) {
    const inp = $(id);
    const push = () => {
      const v = Number(inp.value);
      if (usSent[key] === v) return;
      usSent[key] = v;
      send({ op: 'us', [key]: v });
    };
    inp.addEventListener('input', () => {
      touch(id);
      const out = { 'in-depth': ['out-depth', 0, 'mm'], 'in-gain': ['out-gain', 0, 'dB'], 'in-freq': ['out-freq', 1, 'MHz'] }[id];
      $(out[0]).textContent = `${Number(inp.value).toFixed(out[1])} ${out[2]}`;
      if (!usTimers[key]) usTimers[key] = setTimeout(() => { usTimers[key] = null; push(); }, 120);
    });
    inp.addEventListener('change', () => {
      touch(id);
      clearTimeout(usTimers[key]); usTimers[key] = null;
      delete usSent[key];
      push();
    });
  }

  // ------------------------------------------------------------------ pedal (dead-man)
  const pedalSources = new Set(); // 'mouse', 'key'
  let lastPedalFix = -1e9;
  function updatePedalUI() {
    const f = NG.state && NG.state.fluoro;
    const on = pedalSources.size > 0 || !!(f && f.pedal);
    $('btn-pedal').classList.toggle('down', pedalSources.size > 0);
    $('rad-indicator').className = on ? 'rad-on' : 'rad-off';
    $('rad-indicator').title = on ? 'Radiation ON' : 'Radiation off';
    $('sb-rad').hidden = !on;
  }
  function pedalPress(src, t0) {
    if (modality() !== 'fluoro' || (NG.state && NG.state.finished)) return;
    if (pedalSources.has(src)) return;
    const first = pedalSources.size === 0;
    pedalSources.add(src);
    if (first) send({ op: 'pedal', down: true }, t0);
    updatePedalUI();
  }
  function pedalRelease(src, t0) {
    if (!pedalSources.has(src)) return;
    pedalSources.delete(src);
    if (pedalSources.size === 0) send({ op: 'pedal', down: false }, t0);
    updatePedalUI();
  }
  function pedalReleaseAll() {
    const f = NG.state && NG.state.fluoro;
    const had = pedalSources.size > 0 || !!(f && f.pedal);
    pedalSources.clear();
    if (had && ws && ws.readyState === WebSocket.OPEN) send({ op: 'pedal', down: false });
    updatePedalUI();
  }

  // ------------------------------------------------------------------ keyboard
  const KEYS = [
    ['US probe', [
      ['← →', 'slide −/+ 1 mm'], ['↑ ↓', 'tilt +/− 2°'], ['Q E', 'rotate −/+ 5°'],
      ['PgUp PgDn', 'elevational +/− 1 mm'], ['Shift', '×5 (probe keys)'], ['R', 'probe reset'],
      ['R-drag', '↔ slide · ↕ tilt'], ['Wheel', 'rotate'],
    ], 'us'],
    ['Fluoroscopy', [
      ['F / Space', 'hold: pedal (pulsed fluoro)'], ['S', 'spot image'], ['V', 'next named view'],
    ], 'fluoro'],
    ['Needle', [
      ['P', 'pick entry (then click)'], ['N', 'insert (new pass)'], ['W', 'advance 1 mm (Shift 5)'],
      ['X', 'withdraw 1 mm (Shift 5)'], ['O', 'needle out'], ['I K', 'steer in-plane −/+ 1°'],
      ['J L', 'steer out-of-plane −/+ 1°'], ['Shift', '×3 (steer keys)'],
    ], null],
    ['Other', [
      ['T', 'test dose 1 mL'], ['1 2 3 4', 'overlay tip / shaft / levels / alarm'],
      ['H', 'this help'], ['Esc', 'cancel tool / dismiss error'],
    ], null],
  ];
  function buildKeyHelp(mod) {
    const t = $('kbd-table');
    t.textContent = '';
    for (const [title, rows, only] of KEYS) {
      if (only && only !== mod) continue;
      const sec = el('tr', 'kbd-sec');
      const td = el('td', null, title);
      td.colSpan = 2;
      sec.appendChild(td);
      t.appendChild(sec);
      for (const [k, what] of rows) {
        const tr = el('tr');
        const a = el('td');
        for (const part of k.split(' ')) a.appendChild(el('kbd', null, part));
        tr.appendChild(a);
        tr.appendChild(el('td', null, what));
        t.appendChild(tr);
      }
    }
  }

  function keyName(e) {
    if (e.key === ' ' || e.code === 'Space') return 'space';
    if (e.key && e.key.length === 1) {
      const k = e.key.toLowerCase();
      if (/^[a-z0-9]$/.test(k)) return k;
    }
    const m = /^(?:Key([A-Z])|Digit([0-9]))$/.exec(e.code || '');
    if (m) return (m[1] || m[2]).toLowerCase();
    return e.key || '';
  }

  function typingTarget(t) {
    if (!t || !t.tagName) return false;
    if (t.tagName === 'SELECT' || t.tagName === 'TEXTAREA' || t.isContentEditable) return true;
    if (t.tagName === 'INPUT') return !/^(checkbox|radio|button|submit)$/.test(t.type);
    return false;
  }

  function onKeyDown(e) {
    if ($('screen-proc').hidden || !sid) return;
    const k = keyName(e);
    if (k === 'Escape') {
      if (tool) setTool(null); else hideError();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typingTarget(e.target)) return;
    const st = NG.state;
    if (!st || st.finished) return;
    const t0 = performance.now();
    const isUs = st.modality === 'us';
    const isFl = st.modality === 'fluoro';
    const m5 = e.shiftKey ? 5 : 1;
    const m3 = e.shiftKey ? 3 : 1;
    let handled = true;
    switch (k) {
      case 'ArrowLeft': if (isUs) probe('slide_mm', -1 * m5, t0); else handled = false; break;
      case 'ArrowRight': if (isUs) probe('slide_mm', 1 * m5, t0); else handled = false; break;
      case 'ArrowUp': if (isUs) probe('tilt_deg', 2 * m5, t0); else handled = false; break;
      case 'ArrowDown': if (isUs) probe('tilt_deg', -2 * m5, t0); else handled = false; break;
      case 'PageUp': if (isUs) probe('elev_mm', 1 * m5, t0); else handled = false; break;
      case 'PageDown': if (isUs) probe('elev_mm', -1 * m5, t0); else handled = false; break;
      case 'q': if (isUs) probe('rotate_deg', -5 * m5, t0); else handled = false; break;
      case 'e': if (isUs) probe('rotate_deg', 5 * m5, t0); else handled = false; break;
      case 'r': if (isUs) { entryMarker = null; send({ op: 'probe_reset' }, t0); } else handled = false; break;
      case 'f': case 'space':
        if (isFl) { if (!e.repeat) pedalPress('key', t0); } else handled = k === 'space';
        break;
      case 's': if (isFl && !e.repeat) spot(t0); else handled = isFl; break;
      case 'v': if (isFl && !e.repeat) nextView(); else handled = isFl; break;
      case 'p': if (!e.repeat) setTool(tool === 'entry' ? null : 'entry'); break;
      case 'n': if (!e.repeat) needle.insert(t0); break;
      case 'w': needle.advance(1 * m5, t0); break;
      case 'x': needle.withdraw(1 * m5, t0); break;
      case 'o': if (!e.repeat) needle.out(t0); break;
      case 'i': needle.steer(-1 * m3, 0, t0); break;
      case 'k': needle.steer(1 * m3, 0, t0); break;
      case 'j': needle.steer(0, -1 * m3, t0); break;
      case 'l': needle.steer(0, 1 * m3, t0); break;
      case 't': if (!e.repeat) inject(t0); break;
      case '1': if (!e.repeat) toggleOverlay('tip'); break;
      case '2': if (!e.repeat) toggleOverlay('shaft'); break;
      case '3': if (!e.repeat) toggleOverlay('levels'); break;
      case '4': if (!e.repeat) toggleOverlay('alarm'); break;
      case 'h': if (!e.repeat) $('kbd-help').open = !$('kbd-help').open; break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }

  function onKeyUp(e) {
    const k = keyName(e);
    if (k === 'f' || k === 'space') {
      if (pedalSources.has('key')) { pedalRelease('key', performance.now()); e.preventDefault(); }
      else if (!$('screen-proc').hidden && !typingTarget(e.target) && k === 'space') e.preventDefault();
    }
  }

  // ------------------------------------------------------------------ status bar
  function frameStatus() {
    $('sb-seq').textContent = `seq ${NG.lastSeq ?? '—'}`;
  }
  function median(xs) {
    if (!xs.length) return null;
    const s = xs.slice().sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
  }
  setInterval(() => {
    const now = performance.now();
    const pt = NG.paintTimes;
    let n = 0;
    for (let i = pt.length - 1; i >= 0 && now - pt[i] <= 1000; i--) n++;
    $('sb-fps').textContent = `${n} fps`;
    const lat = NG.latencies.slice(-50);
    const md = median(lat);
    $('sb-lat').textContent = md == null ? 'lat —' : `lat ${md.toFixed(0)} ms`;
    if (lastClock != null) $('sb-clock').textContent = `t ${mmss(lastClock)}`;
  }, 500);

  // ------------------------------------------------------------------ wiring
  function on(id, ev, fn) { const e = $(id); if (e) e.addEventListener(ev, fn); }
  function click(id, fn) { on(id, 'click', (e) => fn(performance.now(), e)); }

  function wire() {
    // set-up
    on('sel-procedure', 'change', onProcedureChange);
    click('btn-advise', onAdvise);
    click('btn-start', onStart);
    document.querySelectorAll('#screen-setup [data-field]').forEach((c) => {
      c.addEventListener('input', () => {
        c.classList.remove('invalid');
        const box = document.querySelector(`.field-err[data-for="${c.id}"]`);
        if (box) box.textContent = '';
      });
    });
    // page
    click('btn-err-close', hideError);
    click('btn-leave', leaveSession);
    click('btn-new', leaveSession);
    click('btn-result-close', () => { $('result-panel').hidden = true; });
    click('btn-show-result', () => { if (NG.result) $('result-panel').hidden = false; });
    // US
    click('btn-probe-left', (t) => probe('slide_mm', -1, t));
    click('btn-probe-right', (t) => probe('slide_mm', 1, t));
    click('btn-probe-tilt-up', (t) => probe('tilt_deg', 2, t));
    click('btn-probe-tilt-down', (t) => probe('tilt_deg', -2, t));
    click('btn-probe-rot-ccw', (t) => probe('rotate_deg', -5, t));
    click('btn-probe-rot-cw', (t) => probe('rotate_deg', 5, t));
    click('btn-probe-elev-up', (t) => probe('elev_mm', 1, t));
    click('btn-probe-elev-down', (t) => probe('elev_mm', -1, t));
    click('btn-probe-reset', (t) => { entryMarker = null; send({ op: 'probe_reset' }, t); });
    click('btn-tool-probe', () => setTool(tool === 'probe' ? null : 'probe'));
    usSlider('in-depth', 'depth_mm');
    usSlider('in-gain', 'gain_db');
    usSlider('in-freq', 'frequency_mhz');
    // fluoro
    click('btn-carm', carm);
    ['in-orbit', 'in-tilt'].forEach((id) => {
      on(id, 'input', () => { touch(id); $(id).classList.remove('invalid'); });
      on(id, 'keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); carm(); } });
    });
    click('btn-spot', spot);
    const pedal = $('btn-pedal');
    pedal.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      try { pedal.setPointerCapture(e.pointerId); } catch (_) { /* ignore */ }
      pedalPress('mouse', performance.now());
    });
    const up = () => pedalRelease('mouse', performance.now());
    pedal.addEventListener('pointerup', up);
    pedal.addEventListener('pointercancel', up);
    pedal.addEventListener('lostpointercapture', up);
    pedal.addEventListener('contextmenu', (e) => e.preventDefault());
    pedal.addEventListener('keydown', (e) => { if (e.key === 'Enter') e.preventDefault(); });
    // needle
    click('btn-entry', () => setTool(tool === 'entry' ? null : 'entry'));
    click('btn-insert', (t) => needle.insert(t));
    click('btn-advance', (t) => needle.advance(1, t));
    click('btn-advance5', (t) => needle.advance(5, t));
    click('btn-withdraw', (t) => needle.withdraw(1, t));
    click('btn-withdraw5', (t) => needle.withdraw(5, t));
    click('btn-out', (t) => needle.out(t));
    click('btn-steer-in-minus', (t) => needle.steer(-1, 0, t));
    click('btn-steer-in-plus', (t) => needle.steer(1, 0, t));
    click('btn-steer-out-minus', (t) => needle.steer(0, -1, t));
    click('btn-steer-out-plus', (t) => needle.steer(0, 1, t));
    // inject, overlays, finish
    click('btn-inject', inject);
    for (const k of ['tip', 'shaft', 'levels', 'alarm']) {
      on(`chk-${k}`, 'change', () => { touch(`chk-${k}`); send({ op: 'overlays', [k]: $(`chk-${k}`).checked }); });
    }
    click('btn-finish', (t) => { pedalReleaseAll(); send({ op: 'finish' }, t); });
    // buttons do not keep the keyboard focus (keys drive the session, Space is the pedal)
    // (a slider or checkbox used with the mouse gives the focus back too: arrows move the probe)
    document.querySelectorAll('#screen-proc button, #screen-proc input[type="range"], #screen-proc input[type="checkbox"]')
      .forEach((b) => { b.addEventListener('pointerup', () => setTimeout(() => b.blur(), 0)); });

    document.addEventListener('keydown', onKeyDown);
    document.addEventListener('keyup', onKeyUp);
    // the pedal is released whenever the page may lose the key-up
    window.addEventListener('blur', () => pedalReleaseAll());
    document.addEventListener('visibilitychange', () => { if (document.hidden) pedalReleaseAll(); });
    window.addEventListener('pagehide', () => pedalReleaseAll());
    window.addEventListener('beforeunload', () => pedalReleaseAll());

    if (window.ResizeObserver) new ResizeObserver(() => resizeCanvas()).observe($('viewport'));
    else window.addEventListener('resize', resizeCanvas);
    window.addEventListener('hashchange', () => {
      const m = /(?:^#|&)sid=([^&]+)/.exec(location.hash);
      if (m && decodeURIComponent(m[1]) !== sid) { disconnect(); resumeFromHash(); }
    });
  }

  async function init() {
    wire();
    buildKeyHelp('us');
    setConn('off', 'no session');
    if (!TOKEN) showError('token', 'token: none in the page or its URL — open the URL the app printed');
    const procs = loadProcedures();
    await resumeFromHash();
    await procs;
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
