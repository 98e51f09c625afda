// Valise web UI: plain ES module, no framework, no build step, no third-party code.
//
// Rules kept throughout (the portal's CSP forbids the rest anyway):
// * user content (file names, transcripts, user names, audit details) only ever goes into
//   the page through textContent / value / attributes set by the DOM API, never innerHTML;
// * no inline script or style; presentation is done with classes;
// * every request goes to this origin (fetch/XMLHttpRequest with the session cookie).

import { t, getLang, setLang, hasKey } from './i18n.js';

const $ = (id) => document.getElementById(id);

/** Creates an element with optional class, text and attributes. */
function el(tag, opts = {}, ...children) {
  const e = document.createElement(tag);
  if (opts.class) e.className = opts.class;
  if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
  if (opts.attrs) {
    for (const [k, v] of Object.entries(opts.attrs)) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  if (opts.on) {
    for (const [k, v] of Object.entries(opts.on)) e.addEventListener(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

// ---------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code || 'unknown';
  }
}

/** Human text for an API error: the translated code, else the server's message. */
function errorText(err) {
  if (!err) return t('err.unknown');
  const code = err.code || '';
  if (code === 'throttled' && err.retryAfter) return t('err.throttled_for', { secs: err.retryAfter });
  if (code && hasKey('err.' + code)) return t('err.' + code);
  if (err.message) return err.message;
  return t('err.unknown');
}

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', '');
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const e = new ApiError(resp.status, data && data.code, data && data.message);
    e.retryAfter = resp.headers.get('Retry-After');
    if (resp.status === 401 && e.code === 'unauthenticated' && path !== '/api/login') onSignedOut();
    throw e;
  }
  return data;
}

/**
 * Streams a file as the raw request body (not multipart), reporting upload progress.
 * Resolves with the created Job; `handle.abort()` cancels.
 */
function upload(url, file, onProgress, handle) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    if (handle) handle.abort = () => xhr.abort();
    xhr.open('POST', url);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(data);
      } else {
        const e = new ApiError(xhr.status, data && data.code, data && data.message);
        e.retryAfter = xhr.getResponseHeader('Retry-After');
        if (xhr.status === 401) onSignedOut();
        reject(e);
      }
    };
    // A server that refuses a body early (413) may close the connection before the browser
    // has read its answer: say what most likely happened rather than "network error".
    xhr.onerror = () => reject(new ApiError(0, 'upload_failed', ''));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', ''));
    xhr.send(file);
  });
}

// ---------------------------------------------------------------------------------------
// Formatting

function fmtDate(secs) {
  if (!secs) return '';
  return new Intl.DateTimeFormat(getLang(), { dateStyle: 'short', timeStyle: 'short' }).format(new Date(secs * 1000));
}

function fmtDay(secs) {
  if (!secs) return '';
  return new Intl.DateTimeFormat(getLang(), { dateStyle: 'short' }).format(new Date(secs * 1000));
}

/** 75.3 -> "01:15" (or "1:02:03" past an hour). */
function fmtClock(secs) {
  const s = Math.max(0, Math.floor(secs || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** A duration in words: "1 min 35 s". */
function fmtDuration(secs) {
  const s = Math.max(0, Math.round(secs || 0));
  if (s < 60) return t('time.secs', { n: s });
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return t('time.hours_mins', { h, m });
  return r ? t('time.mins_secs', { m, s: r }) : t('time.mins', { m });
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = getLang() === 'fr' ? ['o', 'Ko', 'Mo', 'Go', 'To'] : ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  const num = new Intl.NumberFormat(getLang(), { maximumFractionDigits: i === 0 ? 0 : 1 }).format(v);
  return `${num} ${units[i]}`;
}

function langName(code) {
  if (!code) return '';
  if (hasKey('lang.' + code)) return t('lang.' + code);
  try {
    const dn = new Intl.DisplayNames([getLang()], { type: 'language' });
    const n = dn.of(code);
    if (n) return n.charAt(0).toUpperCase() + n.slice(1);
  } catch {
    /* unknown code: show it as it is */
  }
  return code;
}

function stateLabel(state) {
  return hasKey('state.' + state) ? t('state.' + state) : state;
}

function kindLabel(kind) {
  return hasKey('kind.' + kind) ? t('kind.' + kind) : kind;
}

// ---------------------------------------------------------------------------------------
// Page-wide messages

let alertTimer = null;

function showAlert(message, kind = 'error') {
  const box = $('alert');
  box.replaceChildren();
  if (!message) return;
  const p = el('p', { class: 'alert alert-' + kind, text: message });
  const close = el('button', {
    class: 'alert-close',
    text: '×',
    attrs: { type: 'button', 'aria-label': t('dialog.close') },
    on: { click: () => box.replaceChildren() },
  });
  p.append(close);
  box.append(p);
  clearTimeout(alertTimer);
  if (kind !== 'error') alertTimer = setTimeout(() => box.replaceChildren(), 6000);
}

function announce(message) {
  const a = $('announce');
  a.textContent = '';
  // A new text node, so that screen readers read it even if it did not change.
  setTimeout(() => {
    a.textContent = message;
  }, 30);
}

function setFormError(id, err) {
  const node = $(id);
  if (!node) return;
  node.textContent = err ? (typeof err === 'string' ? err : errorText(err)) : '';
}

/** A modal confirmation (or a one-field prompt). Resolves with false, true, or the value. */
function ask({ title, text, ok, danger = true, input = null }) {
  const dlg = $('dialog');
  $('dialog-title').textContent = title;
  $('dialog-text').textContent = text || '';
  const okBtn = $('dialog-ok');
  okBtn.textContent = ok;
  okBtn.className = 'btn ' + (danger ? 'btn-danger' : 'btn-primary');
  const field = $('dialog-field');
  const inp = $('dialog-input');
  field.hidden = !input;
  inp.value = '';
  if (input) $('dialog-input-label').textContent = input;
  return new Promise((resolve) => {
    const done = () => {
      dlg.removeEventListener('close', done);
      if (dlg.returnValue !== 'ok') return resolve(false);
      resolve(input ? inp.value : true);
    };
    dlg.returnValue = '';
    dlg.addEventListener('close', done);
    dlg.showModal();
    (input ? inp : $('dialog-cancel')).focus();
  });
}

// ---------------------------------------------------------------------------------------
// i18n of the static page

function applyI18n(root = document) {
  document.documentElement.lang = getLang();
  document.title = t('app.title');
  for (const node of root.querySelectorAll('[data-i18n]')) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of node.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) node.setAttribute(attr.trim(), t(key.trim()));
    }
  }
  $('lang-select').value = getLang();
}

// ---------------------------------------------------------------------------------------
// Session and routing

let me = null;
let languages = null;
/** Incremented on each navigation: async work of a page that was left is dropped. */
let generation = 0;
/** Called when leaving the current view (stops timers, players). */
let cleanup = null;

function onSignedOut() {
  if (!me) return;
  me = null;
  renderSession();
  if (!location.hash.startsWith('#/login')) {
    showAlert(t('err.session_ended'));
    location.hash = '#/login';
  }
}

function renderSession() {
  $('main-nav').hidden = !me;
  $('session-user').hidden = !me;
  $('nav-admin').hidden = !(me && me.admin);
  $('whoami').textContent = me ? me.username : '';
  $('whoami').setAttribute('aria-label', me ? t('account.link', { name: me.username }) : '');
}

async function loadLanguages() {
  if (languages) return languages;
  try {
    languages = await api('GET', '/api/languages');
  } catch {
    languages = { transcription: ['auto'], translation: [] };
  }
  return languages;
}

const views = ['login', 'transcribe', 'job', 'translate', 'history', 'account', 'admin', 'notfound'];

function showView(name) {
  for (const v of views) $('view-' + v).hidden = v !== name;
  for (const a of document.querySelectorAll('#main-nav a[data-route]')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route() {
  const hash = location.hash || '';
  if (!hash.startsWith('#/')) {
    if (hash === '' || hash === '#') location.replace('#/transcribe');
    return;
  }
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a view's cleanup must never block navigation */
    }
    cleanup = null;
  }
  const gen = ++generation;
  const parts = hash.slice(2).split('?')[0].split('/').filter(Boolean).map(decodeURIComponent);
  const name = parts[0] || 'transcribe';

  if (!me && name !== 'login') {
    sessionStorage.setItem('valise.after-login', hash);
    location.replace('#/login');
    return;
  }
  if (me && name === 'login') {
    location.replace('#/transcribe');
    return;
  }
  $('alert').replaceChildren();
  const current = () => gen === generation;
  switch (name) {
    case 'login':
      showView('login');
      viewLogin();
      break;
    case 'transcribe':
      showView('transcribe');
      await viewTranscribe(current);
      break;
    case 'jobs':
      showView('job');
      await viewJob(parts[1], current);
      break;
    case 'translate':
      showView('translate');
      await viewTranslate(current);
      break;
    case 'history':
      showView('history');
      await viewHistory(current);
      break;
    case 'account':
      showView('account');
      viewAccount(current);
      break;
    case 'admin':
      if (!me.admin) {
        showView('notfound');
        break;
      }
      showView('admin');
      await viewAdmin(parts[1] || 'state', current);
      break;
    default:
      showView('notfound');
  }
}

function focusMain() {
  const h1 = document.querySelector('.view:not([hidden]) h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: false });
  }
}

// ---------------------------------------------------------------------------------------
// Sign in

function viewLogin() {
  $('login-error').textContent = '';
  $('login-pass').value = '';
  $('login-user').focus();
}

async function submitLogin(ev) {
  ev.preventDefault();
  const username = $('login-user').value.trim();
  const password = $('login-pass').value;
  if (!username || !password) {
    setFormError('login-error', t('login.missing'));
    return;
  }
  const btn = $('login-submit');
  btn.disabled = true;
  setFormError('login-error', null);
  try {
    me = await api('POST', '/api/login', { username, password });
    renderSession();
    $('login-pass').value = '';
    const next = sessionStorage.getItem('valise.after-login');
    sessionStorage.removeItem('valise.after-login');
    location.hash = next && !next.startsWith('#/login') ? next : '#/transcribe';
  } catch (e) {
    setFormError('login-error', e);
    $('login-pass').value = '';
    $('login-pass').focus();
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try {
    await api('POST', '/api/logout');
  } catch {
    /* signed out locally either way */
  }
  me = null;
  renderSession();
  location.hash = '#/login';
}

// ---------------------------------------------------------------------------------------
// Drop zones (a real file input underneath: keyboard and screen readers use it as is)

function setupDropzone(zoneId, inputId, nameId, onFile) {
  const zone = $(zoneId);
  const input = $(inputId);
  const show = () => {
    const f = input.files && input.files[0];
    $(nameId).textContent = f ? t('upload.chosen', { name: f.name, size: fmtBytes(f.size) }) : '';
    zone.classList.toggle('has-file', !!f);
    if (onFile) onFile(f);
  };
  input.addEventListener('change', show);
  for (const evName of ['dragenter', 'dragover']) {
    zone.addEventListener(evName, (e) => {
      e.preventDefault();
      zone.classList.add('dragging');
    });
  }
  for (const evName of ['dragleave', 'dragend']) {
    zone.addEventListener(evName, () => zone.classList.remove('dragging'));
  }
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    if (e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
  return { reset: () => { input.value = ''; show(); } };
}

function showUploadProgress(prefix, loaded, total) {
  const pct = total ? Math.floor((loaded / total) * 100) : 0;
  $(prefix + '-upload-bar').value = pct;
  $(prefix + '-upload-text').textContent = t('upload.progress', {
    pct,
    done: fmtBytes(loaded),
    total: fmtBytes(total),
  });
}

// ---------------------------------------------------------------------------------------
// Transcribe

let trDrop = null;
let trUpload = null;

async function viewTranscribe(current) {
  const langs = await loadLanguages();
  if (!current()) return;
  const sel = $('tr-language');
  const previous = sel.value || 'auto';
  sel.replaceChildren();
  const codes = (langs.transcription && langs.transcription.length ? langs.transcription : ['auto']).slice();
  if (!codes.includes('auto')) codes.unshift('auto');
  for (const code of codes) {
    sel.append(el('option', { text: code === 'auto' ? t('lang.auto') : langName(code), attrs: { value: code } }));
  }
  sel.value = codes.includes(previous) ? previous : 'auto';
  focusMain();
}

async function submitTranscribe(ev) {
  ev.preventDefault();
  const file = $('tr-file').files[0];
  setFormError('tr-error', null);
  if (!file) {
    setFormError('tr-error', t('transcribe.no_file'));
    $('tr-file').focus();
    return;
  }
  const q = new URLSearchParams({
    language: $('tr-language').value || 'auto',
    translate: $('tr-translate').checked ? 'true' : 'false',
    filename: file.name,
  });
  const btn = $('tr-submit');
  btn.disabled = true;
  $('tr-upload').hidden = false;
  showUploadProgress('tr', 0, file.size);
  trUpload = {};
  try {
    const job = await upload('/api/jobs/transcribe?' + q.toString(), file, (l, tot) => showUploadProgress('tr', l, tot), trUpload);
    trDrop.reset();
    announce(t('upload.done'));
    location.hash = '#/jobs/' + encodeURIComponent(job.id);
  } catch (e) {
    if (e.code !== 'aborted') setFormError('tr-error', e);
    else announce(t('upload.cancelled'));
  } finally {
    trUpload = null;
    btn.disabled = false;
    $('tr-upload').hidden = true;
  }
}

// ---------------------------------------------------------------------------------------
// One job

const DOUBT_KEYS = { no_speech: 'doubt.no_speech', low_confidence: 'doubt.low_confidence', repetition: 'doubt.repetition' };

function doubtsOf(seg) {
  const d = seg.doubts || seg.doubt || [];
  return Array.isArray(d) ? d : [d];
}

function doubtText(d) {
  const code = typeof d === 'string' ? d : (d && (d.code || d.kind)) || '';
  return DOUBT_KEYS[code] ? t(DOUBT_KEYS[code]) : code;
}

async function viewJob(id, current) {
  if (!id) {
    showView('notfound');
    return;
  }
  const enc = encodeURIComponent(id);
  const status = $('job-status');
  const transcriptBox = $('job-transcript');
  const docBox = $('job-document');
  $('job-title').textContent = '';
  $('job-meta').textContent = '';
  $('segments').replaceChildren();
  status.hidden = true;
  transcriptBox.hidden = true;
  docBox.hidden = true;
  $('job-error').hidden = true;
  const audio = $('job-audio');
  audio.removeAttribute('src');
  audio.load();

  let timer = null;
  let stopped = false;
  cleanup = () => {
    stopped = true;
    clearTimeout(timer);
    audio.pause();
    audio.ontimeupdate = null;
  };

  let job;
  try {
    job = await api('GET', '/api/jobs/' + enc);
  } catch (e) {
    if (!current()) return;
    $('job-title').textContent = t('job.not_found');
    showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  renderJobHeader(job);
  focusMain();

  $('job-delete').onclick = () => deleteJob(job, true);
  $('job-cancel').onclick = () => deleteJob(job, true, true);

  let lastState = null;
  const poll = async () => {
    if (stopped) return;
    try {
      job = await api('GET', '/api/jobs/' + enc);
    } catch (e) {
      if (stopped || !current()) return;
      if (e.status === 404) {
        $('job-state').textContent = t('job.gone');
        return;
      }
      $('job-detail').textContent = errorText(e);
      timer = setTimeout(poll, 3000);
      return;
    }
    if (stopped || !current()) return;
    renderJobHeader(job);
    renderJobStatus(job, lastState);
    lastState = job.state;
    if (job.state === 'queued' || job.state === 'running') {
      timer = setTimeout(poll, 1000);
    } else if (job.state === 'done') {
      await renderJobResult(job, current);
    }
  };
  renderJobStatus(job, null);
  lastState = job.state;
  if (job.state === 'done') {
    await renderJobResult(job, current);
  } else if (job.state === 'queued' || job.state === 'running') {
    timer = setTimeout(poll, 700);
  }
}

function renderJobHeader(job) {
  $('job-title').textContent = job.title || kindLabel(job.kind);
  const bits = [kindLabel(job.kind), fmtDate(job.created_at)];
  if (job.kind === 'transcription') {
    const lang = job.detected_language || (job.language && job.language !== 'auto' ? job.language : null);
    if (lang) bits.push(t('job.language', { lang: langName(lang) }));
    if (job.translate) bits.push(t('job.to_english'));
  } else if (job.source || job.target) {
    bits.push(t('job.pair', { source: job.source === 'auto' || !job.source ? t('lang.auto') : langName(job.source), target: langName(job.target) }));
  }
  if (job.duration_secs) bits.push(t('job.duration', { d: fmtDuration(job.duration_secs) }));
  $('job-meta').textContent = bits.filter(Boolean).join(' · ');
}

function renderJobStatus(job, lastState) {
  const status = $('job-status');
  const done = job.state === 'done';
  status.hidden = done;
  status.classList.toggle('is-failed', job.state === 'failed');
  const running = job.state === 'queued' || job.state === 'running';
  $('job-cancel').hidden = !running;
  const bar = $('job-progress');
  bar.hidden = !running;
  const pct = Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100);
  bar.value = pct;
  let state = stateLabel(job.state);
  if (job.state === 'running') state = t('job.running_pct', { pct });
  $('job-state').textContent = state;
  const detail = [];
  if (job.state === 'queued' && job.queue_position) detail.push(t('job.queue_position', { n: job.queue_position }));
  if (running && job.eta_secs !== undefined && job.eta_secs !== null) detail.push(t('job.eta', { d: fmtDuration(job.eta_secs) }));
  if (running && job.attempts && job.attempts > 1) detail.push(t('job.attempt', { n: job.attempts }));
  if (running && job.notice) detail.push(hasKey('notice.' + job.notice) ? t('notice.' + job.notice) : job.notice);
  $('job-detail').textContent = detail.join(' · ');
  const errBox = $('job-error');
  if (job.state === 'failed' || job.state === 'cancelled') {
    errBox.hidden = false;
    const reason = job.error ? errorText(job.error) : job.state === 'cancelled' ? t('state.cancelled') : t('err.unknown');
    errBox.textContent = t('job.failed_reason', { reason });
    if (lastState && lastState !== job.state) announce(errBox.textContent);
  } else {
    errBox.hidden = true;
  }
  if (lastState && lastState !== 'done' && done) announce(t('job.finished'));
}

async function renderJobResult(job, current) {
  if (job.kind === 'document') {
    const docBox = $('job-document');
    docBox.hidden = false;
    $('doc-download').href = '/api/jobs/' + encodeURIComponent(job.id) + '/result';
    renderReport($('doc-report'), job.report);
    return;
  }
  let transcript;
  try {
    transcript = await api('GET', '/api/jobs/' + encodeURIComponent(job.id) + '/transcript');
  } catch (e) {
    if (current()) showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  await renderTranscript(job, transcript, current);
}

const REPORT_KEYS = [
  'format', 'source', 'target', 'pivot', 'paragraphs', 'blocks', 'sentences', 'characters',
  'chars', 'translated', 'untranslated', 'errors_total', 'errors', 'merged_runs', 'skipped',
  'warnings', 'duration_secs',
];

function renderReport(dl, report) {
  dl.replaceChildren();
  if (!report || typeof report !== 'object') {
    dl.append(el('dt', { text: t('report.none') }));
    return;
  }
  const keys = Object.keys(report).sort((a, b) => {
    const ia = REPORT_KEYS.indexOf(a);
    const ib = REPORT_KEYS.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  for (const k of keys) {
    const v = report[k];
    dl.append(el('dt', { text: hasKey('report.' + k) ? t('report.' + k) : k }));
    const dd = el('dd');
    if (Array.isArray(v)) {
      if (v.length === 0) dd.textContent = t('report.none_items');
      else {
        const ul = el('ul', { class: 'report-list' });
        for (const item of v.slice(0, 50)) {
          ul.append(el('li', { text: typeof item === 'object' ? reportItem(item) : String(item) }));
        }
        if (v.length > 50) ul.append(el('li', { text: t('report.more', { n: v.length - 50 }) }));
        dd.append(ul);
      }
    } else if (v && typeof v === 'object') {
      dd.textContent = reportItem(v);
    } else if (typeof v === 'boolean') {
      dd.textContent = v ? t('common.yes') : t('common.no');
    } else if ((k === 'source' || k === 'target') && typeof v === 'string') {
      dd.textContent = langName(v);
    } else {
      dd.textContent = String(v);
    }
    dl.append(dd);
  }
}

function reportItem(obj) {
  // Something left as it was: "2 × code blocks — not text to translate".
  if (obj.what !== undefined) return `${obj.count} × ${obj.what} — ${obj.why}`;
  if (obj.message) return (obj.code && hasKey('err.' + obj.code) ? t('err.' + obj.code) + ' — ' : '') + obj.message;
  return Object.entries(obj)
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(', ');
}

async function renderTranscript(job, transcript, current) {
  const box = $('job-transcript');
  box.hidden = false;
  const enc = encodeURIComponent(job.id);
  for (const a of box.querySelectorAll('a[data-format]')) {
    a.href = `/api/jobs/${enc}/export?format=${a.dataset.format}`;
  }

  // The recording: a translated transcript plays its parent's recording.
  const audio = $('job-audio');
  const mediaId = job.kind === 'transcript_translation' && job.parent ? job.parent : job.id;
  const mediaSrc = '/api/jobs/' + encodeURIComponent(mediaId) + '/media';
  if (audio.getAttribute('src') !== mediaSrc) audio.src = mediaSrc;

  const parentP = $('job-parent');
  parentP.replaceChildren();
  parentP.hidden = !job.parent;
  if (job.parent) {
    parentP.append(
      document.createTextNode(t('job.parent') + ' '),
      el('a', { text: t('job.parent_link'), attrs: { href: '#/jobs/' + encodeURIComponent(job.parent) } }),
    );
  }

  // "Translate this transcript": targets that a model can reach from the transcript's language.
  const langs = await loadLanguages();
  if (!current()) return;
  const srcLang = transcript.language || job.detected_language;
  const targets = [];
  for (const p of langs.translation || []) {
    if (p.source === srcLang && !targets.includes(p.target)) targets.push(p.target);
  }
  const ttSel = $('tt-target');
  ttSel.replaceChildren(...targets.map((c) => el('option', { text: langName(c), attrs: { value: c } })));
  const canTranslate = targets.length > 0 && job.kind === 'transcription';
  $('tt-box').hidden = !canTranslate;
  $('tt-none').hidden = canTranslate || job.kind !== 'transcription';
  $('tt-submit').onclick = async () => {
    $('tt-submit').disabled = true;
    try {
      const child = await api('POST', `/api/jobs/${enc}/translate`, { target: ttSel.value, source: srcLang || 'auto' });
      location.hash = '#/jobs/' + encodeURIComponent(child.id);
    } catch (e) {
      showAlert(errorText(e));
    } finally {
      $('tt-submit').disabled = false;
    }
  };

  renderSegments(job, transcript);
}

function renderSegments(job, transcript) {
  const list = $('segments');
  const audio = $('job-audio');
  const segs = transcript.segments || [];
  list.replaceChildren();
  let doubtful = 0;
  segs.forEach((seg, index) => {
    const doubts = doubtsOf(seg);
    const isDoubt = doubts.length > 0;
    if (isDoubt) doubtful++;
    const li = el('li', { class: 'segment' + (isDoubt ? ' is-doubt' : '') + (seg.edited ? ' is-edited' : ''), attrs: { 'data-index': index } });
    li.dataset.start = seg.start;
    li.dataset.end = seg.end;
    const time = el('button', {
      class: 'seg-time',
      text: fmtClock(seg.start),
      attrs: { type: 'button', 'aria-label': t('job.play_from', { time: fmtClock(seg.start) }) },
      on: {
        click: () => {
          audio.currentTime = Number(seg.start) || 0;
          const p = audio.play();
          if (p && p.catch) p.catch(() => {});
        },
      },
    });
    const body = el('div', { class: 'seg-body' });
    const text = el('p', { class: 'seg-text', text: (seg.text || '').trim() });
    body.append(text);
    const notes = el('p', { class: 'seg-notes' });
    if (isDoubt) {
      notes.append(el('span', { class: 'badge badge-doubt', text: t('job.doubt', { reasons: doubts.map(doubtText).join(', ') }) }));
    }
    if (seg.edited) notes.append(el('span', { class: 'badge badge-edited', text: t('job.edited') }));
    if (notes.childNodes.length) body.append(notes);
    const edit = el('button', {
      class: 'btn btn-small seg-edit',
      text: t('job.correct'),
      attrs: { type: 'button', 'aria-label': t('job.correct_at', { time: fmtClock(seg.start) }) },
      on: { click: () => editSegment(job, li, index, seg) },
    });
    li.append(time, body, edit);
    list.append(li);
  });
  if (segs.length === 0) list.append(el('li', { class: 'segment empty', text: t('job.no_speech') }));
  $('doubt-legend').hidden = doubtful === 0;
  $('doubt-legend-text').textContent = t('job.doubt_legend', { n: doubtful });

  // The player follows the text.
  const items = Array.from(list.querySelectorAll('li.segment[data-index]'));
  let currentLi = null;
  audio.ontimeupdate = () => {
    const now = audio.currentTime;
    let found = null;
    for (const li of items) {
      if (now >= Number(li.dataset.start) && now < Number(li.dataset.end)) {
        found = li;
        break;
      }
    }
    if (found === currentLi) return;
    if (currentLi) {
      currentLi.classList.remove('is-current');
      currentLi.removeAttribute('aria-current');
    }
    currentLi = found;
    if (found) {
      found.classList.add('is-current');
      found.setAttribute('aria-current', 'true');
      if (!audio.paused && !list.querySelector('.is-editing')) found.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    }
  };
}

function editSegment(job, li, index, seg) {
  if (li.classList.contains('is-editing')) return;
  li.classList.add('is-editing');
  const body = li.querySelector('.seg-body');
  const editBtn = li.querySelector('.seg-edit');
  editBtn.hidden = true;
  const textP = body.querySelector('.seg-text');
  textP.hidden = true;
  const id = `seg-edit-${index}`;
  const form = el('form', { class: 'seg-form' });
  const label = el('label', { class: 'sr-only', text: t('job.correct_at', { time: fmtClock(seg.start) }), attrs: { for: id } });
  const area = el('textarea', { attrs: { id, rows: 2 } });
  area.value = textP.textContent;
  const err = el('p', { class: 'form-error', attrs: { role: 'alert' } });
  const save = el('button', { class: 'btn btn-primary btn-small', text: t('job.save'), attrs: { type: 'submit' } });
  const cancel = el('button', { class: 'btn btn-small', text: t('dialog.cancel'), attrs: { type: 'button' } });
  const close = () => {
    form.remove();
    textP.hidden = false;
    editBtn.hidden = false;
    li.classList.remove('is-editing');
    editBtn.focus();
  };
  cancel.addEventListener('click', close);
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close();
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const newText = area.value.trim();
    save.disabled = true;
    try {
      const transcript = await api('PUT', '/api/jobs/' + encodeURIComponent(job.id) + '/transcript', {
        segments: [{ index, text: newText }],
      });
      announce(t('job.saved'));
      const again = transcript && Array.isArray(transcript.segments) ? transcript : { segments: [] };
      renderSegments(job, again);
      const btn = $('segments').querySelector(`li[data-index="${index}"] .seg-edit`);
      if (btn) btn.focus();
    } catch (ex) {
      err.textContent = errorText(ex);
      save.disabled = false;
    }
  });
  form.append(label, area, err, el('div', { class: 'actions actions-tight' }, save, cancel));
  body.append(form);
  area.focus();
}

async function deleteJob(job, thenLeave, isCancel = false) {
  const ok = await ask({
    title: isCancel ? t('job.cancel_title') : t('job.delete_title'),
    text: t('job.delete_text', { title: job.title || kindLabel(job.kind) }),
    ok: isCancel ? t('job.cancel_ok') : t('job.delete_ok'),
  });
  if (!ok) return false;
  try {
    await api('DELETE', '/api/jobs/' + encodeURIComponent(job.id));
    showAlert(t('job.deleted'), 'ok');
    if (thenLeave) location.hash = '#/history';
    return true;
  } catch (e) {
    showAlert(errorText(e));
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Translate

function fillPairSelects(srcSel, dstSel, langs, withAuto) {
  const pairs = langs.translation || [];
  const sources = [];
  for (const p of pairs) if (!sources.includes(p.source)) sources.push(p.source);
  const prevSrc = srcSel.value;
  srcSel.replaceChildren();
  if (withAuto) srcSel.append(el('option', { text: t('lang.auto'), attrs: { value: 'auto' } }));
  for (const s of sources) srcSel.append(el('option', { text: langName(s), attrs: { value: s } }));
  if ([...srcSel.options].some((o) => o.value === prevSrc)) srcSel.value = prevSrc;
  const fillTargets = () => {
    const src = srcSel.value;
    const targets = [];
    for (const p of pairs) if ((src === 'auto' || p.source === src) && !targets.includes(p.target)) targets.push(p.target);
    const prev = dstSel.value;
    dstSel.replaceChildren(...targets.map((c) => el('option', { text: langName(c), attrs: { value: c } })));
    if (targets.includes(prev)) dstSel.value = prev;
  };
  srcSel.onchange = fillTargets;
  fillTargets();
}

let docDrop = null;

async function viewTranslate(current) {
  const langs = await loadLanguages();
  if (!current()) return;
  fillPairSelects($('tx-source'), $('tx-target'), langs, true);
  fillPairSelects($('doc-source'), $('doc-target'), langs, true);
  focusMain();
}

async function submitTranslate(ev) {
  ev.preventDefault();
  const text = $('tx-text').value;
  setFormError('tx-error', null);
  if (!text.trim()) {
    setFormError('tx-error', t('translate.empty'));
    $('tx-text').focus();
    return;
  }
  const btn = $('tx-submit');
  btn.disabled = true;
  $('tx-info').textContent = t('translate.working');
  try {
    const r = await api('POST', '/api/translate', { text, source: $('tx-source').value, target: $('tx-target').value });
    $('tx-result').value = r.translation || '';
    $('tx-copy').disabled = !r.translation;
    const info = [];
    if ($('tx-source').value === 'auto' && r.source) info.push(t('translate.detected', { lang: langName(r.source) }));
    if (r.pivot) info.push(t('translate.pivot'));
    if (r.errors && r.errors.length) info.push(t('translate.sentence_errors', { n: r.errors.length }));
    $('tx-info').textContent = info.join(' · ');
    announce(t('translate.done'));
  } catch (e) {
    $('tx-info').textContent = '';
    setFormError('tx-error', e);
  } finally {
    btn.disabled = false;
  }
}

async function copyTranslation() {
  const value = $('tx-result').value;
  let ok = false;
  try {
    await navigator.clipboard.writeText(value);
    ok = true;
  } catch {
    // Plain HTTP or an old browser: select the text and use the legacy command.
    const area = $('tx-result');
    area.focus();
    area.select();
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
  }
  $('tx-info').textContent = ok ? t('translate.copied') : t('translate.copy_failed');
}

async function submitDocument(ev) {
  ev.preventDefault();
  const file = $('doc-file').files[0];
  setFormError('doc-error', null);
  if (!file) {
    setFormError('doc-error', t('translate.no_doc'));
    $('doc-file').focus();
    return;
  }
  const q = new URLSearchParams({ source: $('doc-source').value || 'auto', target: $('doc-target').value, filename: file.name });
  const btn = $('doc-submit');
  btn.disabled = true;
  $('doc-upload').hidden = false;
  showUploadProgress('doc', 0, file.size);
  try {
    const job = await upload('/api/jobs/document?' + q.toString(), file, (l, tot) => showUploadProgress('doc', l, tot));
    docDrop.reset();
    location.hash = '#/jobs/' + encodeURIComponent(job.id);
  } catch (e) {
    setFormError('doc-error', e);
  } finally {
    btn.disabled = false;
    $('doc-upload').hidden = true;
  }
}

// ---------------------------------------------------------------------------------------
// History

const PAGE = 50;
let histQuery = '';
let histLast = null;

async function viewHistory(current) {
  histQuery = $('hist-q').value.trim();
  histLast = null;
  $('hist-body').replaceChildren();
  await loadHistory(current, false);
  focusMain();
}

async function loadHistory(current, more) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (histQuery) q.set('q', histQuery);
  if (more && histLast) q.set('before', histLast);
  let jobs;
  try {
    jobs = await api('GET', '/api/jobs?' + q.toString());
  } catch (e) {
    if (current()) showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  const body = $('hist-body');
  if (!more) body.replaceChildren();
  for (const job of jobs) body.append(historyRow(job));
  histLast = jobs.length ? jobs[jobs.length - 1].id : histLast;
  $('hist-more').hidden = jobs.length < PAGE;
  const count = body.children.length;
  $('hist-empty').hidden = count > 0;
  $('hist-table').hidden = count === 0;
  if (histQuery && count === 0) $('hist-empty').textContent = t('history.no_match', { q: histQuery });
  else $('hist-empty').textContent = t('history.empty');
  $('hist-count').textContent = histQuery ? t('history.results', { n: count, q: histQuery }) : '';
}

function historyRow(job) {
  const tr = el('tr', { attrs: { 'data-job': job.id } });
  const href = '#/jobs/' + encodeURIComponent(job.id);
  const title = job.title || kindLabel(job.kind);
  tr.append(
    el('td', { class: 'cell-title' }, el('a', { text: title, attrs: { href } })),
    el('td', { text: kindLabel(job.kind) }),
    el('td', {}, el('span', { class: 'state state-' + job.state, text: stateLabel(job.state) })),
    el('td', { class: 'cell-date', text: fmtDate(job.created_at) }),
  );
  const actions = el('td', { class: 'cell-actions' });
  actions.append(
    el('a', { class: 'btn btn-small', text: t('history.open'), attrs: { href, 'aria-label': t('history.open_named', { title }) } }),
    el('button', {
      class: 'btn btn-small btn-danger',
      text: t('history.delete'),
      attrs: { type: 'button', 'aria-label': t('history.delete_named', { title }) },
      on: {
        click: async () => {
          if (await deleteJob(job, false)) {
            tr.remove();
            const count = $('hist-body').children.length;
            $('hist-empty').hidden = count > 0;
            $('hist-table').hidden = count === 0;
          }
        },
      },
    }),
  );
  tr.append(actions);
  return tr;
}

// ---------------------------------------------------------------------------------------
// Account

function viewAccount(current) {
  $('pw-current').value = '';
  $('pw-new').value = '';
  setFormError('pw-error', null);
  $('pw-ok').textContent = '';
  setFormError('tk-error', null);
  $('tk-new').hidden = true;
  $('tk-value').value = '';
  $('tk-admin-field').hidden = !(me && me.admin);
  $('tk-admin').checked = false;
  focusMain();
  loadTokens(current);
}

// API tokens: listed without their value (only its hash is stored); a new one is shown once.
async function loadTokens(current) {
  let tokens;
  try {
    tokens = await api('GET', '/api/me/tokens');
  } catch (e) {
    if (current()) showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  const body = $('tokens-body');
  body.replaceChildren();
  $('tokens-empty').hidden = tokens.length > 0;
  for (const tk of tokens) {
    const label = tk.label || t('tokens.no_label');
    const expired = tk.expires_at && tk.expires_at * 1000 < Date.now();
    const tr = el('tr', { attrs: { 'data-token': tk.id } });
    tr.append(
      el('th', { attrs: { scope: 'row' } }, el('span', { text: label }), tk.admin ? el('span', { class: 'muted', text: ' (' + t('tokens.admin_short') + ')' }) : null),
      el('td', { class: 'cell-date', text: tk.expires_at ? fmtDay(tk.expires_at) + (expired ? ' (' + t('tokens.expired') + ')' : '') : t('tokens.never_expires') }),
      el('td', { class: 'cell-date', text: tk.last_used ? fmtDay(tk.last_used) : t('admin.never') }),
      el('td', { class: 'cell-actions' }, el('button', {
        class: 'btn btn-small',
        text: t('tokens.revoke'),
        attrs: { type: 'button', 'aria-label': t('tokens.revoke_named', { name: label }) },
        on: {
          click: async () => {
            try {
              await api('DELETE', '/api/me/tokens/' + encodeURIComponent(tk.id));
              showAlert(t('tokens.revoked', { name: label }), 'ok');
              await loadTokens(current);
            } catch (e) {
              showAlert(errorText(e));
            }
          },
        },
      })),
    );
    body.append(tr);
  }
}

async function submitToken(ev) {
  ev.preventDefault();
  setFormError('tk-error', null);
  const days = $('tk-days').value.trim();
  const req = { label: $('tk-label').value.trim() };
  if (days) req.expires_days = Number(days);
  if (me && me.admin && $('tk-admin').checked) req.admin = true;
  try {
    const created = await api('POST', '/api/me/tokens', req);
    $('tk-label').value = '';
    $('tk-admin').checked = false;
    $('tk-new').hidden = false;
    $('tk-value').value = created.token;
    $('tk-value').select();
    await loadTokens(() => true);
  } catch (e) {
    setFormError('tk-error', e);
  }
}

async function submitPassword(ev) {
  ev.preventDefault();
  setFormError('pw-error', null);
  $('pw-ok').textContent = '';
  try {
    await api('PUT', '/api/me/password', { current: $('pw-current').value, new: $('pw-new').value });
    $('pw-current').value = '';
    $('pw-new').value = '';
    $('pw-ok').textContent = t('account.saved');
  } catch (e) {
    setFormError('pw-error', e);
  }
}

// ---------------------------------------------------------------------------------------
// Administration

async function viewAdmin(tab, current) {
  const tabs = ['state', 'users', 'retention', 'audit'];
  if (!tabs.includes(tab)) tab = 'state';
  for (const name of tabs) $('admin-' + name).hidden = name !== tab;
  for (const a of document.querySelectorAll('.tabs a[data-tab]')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (tab === 'state') await loadState(current);
  else if (tab === 'users') await loadUsers(current);
  else if (tab === 'retention') await loadRetention(current);
  else if (tab === 'audit') await loadAudit(current, false);
  focusMain();
}

function kv(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v, cls] of pairs) {
    dl.append(el('dt', { text: k }), el('dd', { text: v, class: cls }));
  }
}

function upDown(up) {
  return up ? [t('admin.up'), 'ok'] : [t('admin.down'), 'bad'];
}

async function loadState(current) {
  let s;
  try {
    s = await api('GET', '/api/admin/state');
  } catch (e) {
    if (current()) showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  const eng = s.engines || {};
  const tr = eng.transcribe || {};
  const tl = eng.translate || {};
  const [trUp, trCls] = upDown(tr.up);
  const [tlUp, tlCls] = upDown(tl.up);
  kv($('state-engines'), [
    [t('admin.engine_transcribe'), tr.version ? `${trUp} (${tr.version})` : trUp, trCls],
    [t('admin.engine_transcribe_jobs'), t('admin.running_queued', { r: tr.jobs_running ?? 0, q: tr.jobs_queued ?? 0 })],
    [t('admin.engine_translate'), tl.version ? `${tlUp} (${tl.version})` : tlUp, tlCls],
  ]);
  const disk = s.disk || {};
  kv($('state-disk'), [
    [t('admin.disk_total'), fmtBytes(disk.total_bytes)],
    [t('admin.disk_free'), fmtBytes(disk.free_bytes)],
    [t('admin.disk_data'), fmtBytes(disk.data_bytes)],
  ]);
  const meter = $('state-disk-meter');
  meter.value = disk.total_bytes ? 1 - disk.free_bytes / disk.total_bytes : 0;
  const jobs = s.jobs || {};
  kv($('state-misc'), [
    [t('admin.jobs_queued'), String(jobs.queued ?? 0)],
    [t('admin.jobs_running'), String(jobs.running ?? 0)],
    [t('admin.last_update'), s.last_update ? (typeof s.last_update === 'number' ? fmtDate(s.last_update) : JSON.stringify(s.last_update)) : t('admin.never')],
    [t('admin.version'), s.version || '—'],
  ]);
  $('foot-version').textContent = s.version ? 'v' + s.version : '';
  const body = $('state-models');
  body.replaceChildren();
  for (const m of s.models || []) {
    const status = [m.loaded ? t('admin.loaded') : t('admin.not_loaded')];
    if (m.default) status.push(t('admin.default'));
    body.append(
      el('tr', {},
        el('td', { class: 'mono', text: m.id }),
        el('td', { text: hasKey('model.' + m.kind) ? t('model.' + m.kind) : m.kind }),
        el('td', { text: (m.languages || []).map(langName).join(', ') }),
        el('td', { text: m.precision || '' }),
        el('td', { text: fmtBytes(m.size_bytes) }),
        el('td', { text: status.join(', ') })),
    );
  }
  if (!(s.models || []).length) body.append(el('tr', {}, el('td', { text: t('admin.no_models'), attrs: { colspan: 6 } })));
}

async function loadUsers(current) {
  let users;
  try {
    users = await api('GET', '/api/admin/users');
  } catch (e) {
    if (current()) showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  const body = $('users-body');
  body.replaceChildren();
  for (const u of users) body.append(userRow(u, current));
}

function userRow(u, current) {
  const self = me && u.id === me.id;
  const tr = el('tr', { attrs: { 'data-user': u.username } });
  tr.append(
    el('th', { text: u.username, attrs: { scope: 'row' } }),
    el('td', { text: u.admin ? t('admin.role_admin') : t('admin.role_user') }),
    el('td', {}, el('span', { class: 'state ' + (u.disabled ? 'state-failed' : 'state-done'), text: u.disabled ? t('admin.disabled') : t('admin.active') })),
    el('td', { class: 'cell-date', text: fmtDate(u.created_at) }),
    el('td', { class: 'cell-date', text: u.last_login ? fmtDate(u.last_login) : t('admin.never') }),
  );
  const actions = el('td', { class: 'cell-actions' });
  const patch = async (body, okMsg) => {
    try {
      await api('PATCH', '/api/admin/users/' + encodeURIComponent(u.id), body);
      showAlert(okMsg, 'ok');
      await loadUsers(current);
    } catch (e) {
      showAlert(errorText(e));
    }
  };
  const named = (key) => t(key, { name: u.username });
  if (!self) {
    actions.append(
      el('button', {
        class: 'btn btn-small',
        text: u.disabled ? t('admin.enable') : t('admin.disable'),
        attrs: { type: 'button', 'aria-label': named(u.disabled ? 'admin.enable_named' : 'admin.disable_named') },
        on: { click: () => patch({ disabled: !u.disabled }, named(u.disabled ? 'admin.enabled_ok' : 'admin.disabled_ok')) },
      }),
      el('button', {
        class: 'btn btn-small',
        text: u.admin ? t('admin.revoke_admin') : t('admin.make_admin'),
        attrs: { type: 'button', 'aria-label': named(u.admin ? 'admin.revoke_admin_named' : 'admin.make_admin_named') },
        on: { click: () => patch({ admin: !u.admin }, named('admin.role_changed')) },
      }),
    );
  }
  actions.append(
    el('button', {
      class: 'btn btn-small',
      text: t('admin.reset_password'),
      attrs: { type: 'button', 'aria-label': named('admin.reset_password_named') },
      on: {
        click: async () => {
          const pw = await ask({ title: named('admin.reset_password_named'), text: t('admin.reset_help'), ok: t('account.save'), danger: false, input: t('account.new') });
          if (pw) await patch({ password: pw }, named('admin.password_reset_ok'));
        },
      },
    }),
  );
  if (!self) {
    actions.append(
      el('button', {
        class: 'btn btn-small btn-danger',
        text: t('history.delete'),
        attrs: { type: 'button', 'aria-label': named('admin.delete_named') },
        on: {
          click: async () => {
            const ok = await ask({ title: named('admin.delete_named'), text: t('admin.delete_text'), ok: t('job.delete_ok') });
            if (!ok) return;
            try {
              await api('DELETE', '/api/admin/users/' + encodeURIComponent(u.id));
              showAlert(named('admin.deleted_ok'), 'ok');
              await loadUsers(current);
            } catch (e) {
              showAlert(errorText(e));
            }
          },
        },
      }),
    );
  }
  tr.append(actions);
  return tr;
}

async function submitNewUser(ev) {
  ev.preventDefault();
  setFormError('nu-error', null);
  const username = $('nu-name').value.trim();
  const password = $('nu-pass').value;
  if (!username || !password) {
    setFormError('nu-error', t('admin.user_missing'));
    return;
  }
  try {
    await api('POST', '/api/admin/users', { username, password, admin: $('nu-admin').checked });
    $('nu-name').value = '';
    $('nu-pass').value = '';
    $('nu-admin').checked = false;
    showAlert(t('admin.created_ok', { name: username }), 'ok');
    await loadUsers(() => true);
  } catch (e) {
    setFormError('nu-error', e);
  }
}

async function loadRetention(current) {
  setFormError('ret-error', null);
  $('ret-ok').textContent = '';
  try {
    const r = await api('GET', '/api/admin/retention');
    if (current()) $('ret-days').value = r.days;
  } catch (e) {
    if (current()) showAlert(errorText(e));
  }
}

async function submitRetention(ev) {
  ev.preventDefault();
  setFormError('ret-error', null);
  $('ret-ok').textContent = '';
  const days = Number($('ret-days').value);
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    setFormError('ret-error', t('admin.retention_invalid'));
    return;
  }
  try {
    await api('PUT', '/api/admin/retention', { days });
    $('ret-ok').textContent = t('admin.retention_saved', { n: days });
  } catch (e) {
    setFormError('ret-error', e);
  }
}

let auditLast = null;

async function loadAudit(current, more) {
  const q = new URLSearchParams({ limit: '100' });
  if (more && auditLast !== null) q.set('before', auditLast);
  let rows;
  try {
    rows = await api('GET', '/api/admin/audit?' + q.toString());
  } catch (e) {
    if (current()) showAlert(errorText(e));
    return;
  }
  if (!current()) return;
  const body = $('audit-body');
  if (!more) body.replaceChildren();
  for (const r of rows) {
    const detail = r.detail === null || r.detail === undefined ? '' : typeof r.detail === 'object' ? JSON.stringify(r.detail) : String(r.detail);
    body.append(
      el('tr', {},
        el('td', { class: 'cell-date', text: fmtDate(r.at) }),
        el('td', { text: r.actor ?? '' }),
        el('td', { text: hasKey('audit.' + r.action) ? t('audit.' + r.action) : r.action, attrs: { title: r.action } }),
        el('td', { class: 'cell-detail', text: detail }),
        el('td', { class: 'mono', text: r.ip ?? '' })),
    );
  }
  if (rows.length) auditLast = rows[rows.length - 1].id;
  $('audit-more').hidden = rows.length < 100;
  if (!body.children.length) body.append(el('tr', {}, el('td', { text: t('admin.audit_empty'), attrs: { colspan: 5 } })));
}

// ---------------------------------------------------------------------------------------
// Start

function wire() {
  $('login-form').addEventListener('submit', submitLogin);
  $('logout').addEventListener('click', logout);
  $('transcribe-form').addEventListener('submit', submitTranscribe);
  $('tr-upload-cancel').addEventListener('click', () => trUpload && trUpload.abort && trUpload.abort());
  $('tx-form').addEventListener('submit', submitTranslate);
  $('tx-copy').addEventListener('click', copyTranslation);
  $('doc-form').addEventListener('submit', submitDocument);
  $('hist-form').addEventListener('submit', (e) => {
    e.preventDefault();
    histQuery = $('hist-q').value.trim();
    histLast = null;
    const gen = generation;
    loadHistory(() => gen === generation, false);
  });
  $('hist-more').addEventListener('click', () => {
    const gen = generation;
    loadHistory(() => gen === generation, true);
  });
  $('pw-form').addEventListener('submit', submitPassword);
  $('token-form').addEventListener('submit', submitToken);
  $('user-form').addEventListener('submit', submitNewUser);
  $('ret-form').addEventListener('submit', submitRetention);
  $('state-refresh').addEventListener('click', () => {
    const gen = generation;
    loadState(() => gen === generation);
  });
  $('audit-more').addEventListener('click', () => {
    const gen = generation;
    loadAudit(() => gen === generation, true);
  });
  $('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    $('main').focus();
  });
  $('lang-select').addEventListener('change', () => {
    setLang($('lang-select').value);
    applyI18n();
    renderSession();
    route();
  });
  trDrop = setupDropzone('tr-drop', 'tr-file', 'tr-filename');
  docDrop = setupDropzone('doc-drop', 'doc-file', 'doc-filename');
  // A file dropped outside a drop zone must not make the browser navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  window.addEventListener('hashchange', route);
}

async function start() {
  applyI18n();
  wire();
  try {
    me = await api('GET', '/api/me');
  } catch {
    me = null;
  }
  renderSession();
  document.body.classList.add('ready');
  await route();
}

start();
