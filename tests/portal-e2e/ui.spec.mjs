// The portal's web UI in a real browser (Debian's chromium, driven by playwright-core), as a
// member of staff would use it, against the real stack that tests/e2e/tests/portal_ui.rs
// starts (portal, transcription and translation daemons, real models).
//
// Run by that Rust test with plain node; everything comes in environment variables:
//   VALISE_URL                https://127.0.0.1:PORT (self-signed certificate)
//   VALISE_USER, VALISE_PASSWORD   the first administrator
//   VALISE_RECORDING          a French recording (an Asterisk prompt)
//   VALISE_ENGLISH            an English recording (JFK's "ask not")
//   VALISE_DOCX               a small English .docx to translate
//   VALISE_CORRUPT            random bytes named .mp3
//   VALISE_CORRUPT_MP3        an ID3 tag followed by random bytes, named .mp3
//   VALISE_OVERSIZED          a file above the portal's --max-upload-bytes
//   VALISE_SCREENSHOTS        where the screenshots go
//   VALISE_DOWNLOADS          where downloads are saved
//   VALISE_CHROMIUM           the browser (default /usr/bin/chromium)
//   VALISE_PLAYWRIGHT_CORE    the unpacked playwright-core package
// Control lines: the script prints `@@kill-transcribe` / `@@start-transcribe` and waits for
// `@@ok` on stdin (the Rust side owns the daemons). Exit status 0 = every check passed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};

const BASE = env('VALISE_URL').replace(/\/$/, '');
const USER = env('VALISE_USER');
const PASSWORD = env('VALISE_PASSWORD');
const RECORDING = env('VALISE_RECORDING');
const DOCX = env('VALISE_DOCX');
const CORRUPT = env('VALISE_CORRUPT');
const CORRUPT_MP3 = env('VALISE_CORRUPT_MP3');
const ENGLISH = env('VALISE_ENGLISH');
const OVERSIZED = env('VALISE_OVERSIZED');
const SHOTS = env('VALISE_SCREENSHOTS');
const DOWNLOADS = env('VALISE_DOWNLOADS');
const CHROMIUM = env('VALISE_CHROMIUM', '/usr/bin/chromium');
const PW = env('VALISE_PLAYWRIGHT_CORE');
const AGENT_PASSWORD = 'another long passphrase 7';

const { chromium } = await import(pathToFileURL(path.join(PW, 'index.mjs')).href);

// ---- control channel to the Rust side ---------------------------------------------------

const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', (l) => {
  const w = waiting.shift();
  if (w) w(l.trim());
});
function control(cmd) {
  return new Promise((resolve, reject) => {
    waiting.push((answer) => (answer === '@@ok' ? resolve() : reject(new Error(`${cmd}: ${answer}`))));
    process.stdout.write(`@@${cmd}\n`);
  });
}

// ---- helpers -----------------------------------------------------------------------------

const started = Date.now();
const timings = [];
let page;
let context;
let browser;
const problems = [];

async function step(name, fn) {
  const t0 = Date.now();
  process.stdout.write(`-- ${name}\n`);
  await fn();
  const ms = Date.now() - t0;
  timings.push([name, ms]);
  process.stdout.write(`   ok (${(ms / 1000).toFixed(1)} s)\n`);
}

async function shot(name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** Lower case, accents and punctuation removed: robust comparison of recognised French. */
function norm(s) {
  return s
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

const visible = (sel) => page.locator(sel).first().waitFor({ state: 'visible', timeout: 15000 });

/** Waits until the job page shows a final state; returns 'done' or 'failed'/'cancelled'. */
async function waitJobEnd(timeoutMs) {
  const handle = await page.waitForFunction(
    () => {
      const seg = document.querySelector('#segments li.segment');
      const doc = document.getElementById('job-document');
      const err = document.getElementById('job-error');
      if (seg || (doc && !doc.hidden)) return 'done';
      if (err && !err.hidden && err.textContent) return 'failed';
      return false;
    },
    null,
    { timeout: timeoutMs, polling: 250 },
  );
  return handle.jsonValue();
}

async function apiJson(method, url, data) {
  // page.request shares the browser context's cookies; same-origin headers for the CSRF check.
  const r = await page.request.fetch(BASE + url, {
    method,
    data,
    headers: { Origin: BASE, 'Sec-Fetch-Site': 'same-origin' },
    failOnStatusCode: false,
  });
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  return { status: r.status(), body };
}

async function download(selector) {
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30000 }), page.click(selector)]);
  const failure = await dl.failure();
  assert.equal(failure, null, `download from ${selector} failed: ${failure}`);
  const file = path.join(DOWNLOADS, dl.suggestedFilename());
  await dl.saveAs(file);
  return file;
}

/** Every visible form control of the current screen has an accessible name. */
async function expectLabelled(what) {
  const unlabelled = await page.evaluate(() =>
    Array.from(document.querySelectorAll('input, select, textarea, button'))
      .filter((c) => c.getClientRects().length > 0 || c.classList.contains('file-input'))
      .filter((c) => {
        if (c.closest('[hidden]')) return false;
        const name = (c.labels && c.labels.length) || c.getAttribute('aria-label') || c.getAttribute('aria-labelledby');
        const text = c.tagName === 'BUTTON' && c.textContent.trim();
        return !name && !text;
      })
      .map((c) => c.outerHTML.slice(0, 120)),
  );
  assert.deepEqual(unlabelled, [], `${what}: controls without a label`);
}

async function expectNoHorizontalScroll(what) {
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(over <= 1, `${what}: the page scrolls sideways by ${over}px at ${JSON.stringify(page.viewportSize())}`);
}

// ---- the run -----------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  fs.mkdirSync(DOWNLOADS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in CI has no user namespaces for the sandbox; the page is our own test server.
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--lang=fr-FR'],
  });
  context = await browser.newContext({
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 720 },
    locale: 'fr-FR',
  });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    // Expected refusals (401 before sign-in, 413, 415...) show up as failed resource loads.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
      problems.push(`console ${m.type()}: ${text}`);
    }
  });

  let firstJobUrl;
  let firstJobId;

  await step('sign-in page, in French by default, with the reassurance line', async () => {
    await page.goto(BASE + '/');
    await visible('#view-login');
    assert.equal(await page.getAttribute('html', 'lang'), 'fr');
    assert.equal((await page.textContent('#login-title')).trim(), 'Connexion');
    assert.match(await page.textContent('#assurance'), /ne quitte ce boîtier/);
    // The strict CSP is really sent.
    const r = await page.request.get(BASE + '/');
    const csp = r.headers()['content-security-policy'] || '';
    assert.match(csp, /script-src 'self'/, `CSP: ${csp}`);
    await shot('01-sign-in');
  });

  await step('a wrong password is refused with a French message', async () => {
    await page.fill('#login-user', USER);
    await page.fill('#login-pass', 'not the password');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
    assert.equal((await page.textContent('#login-error')).trim(), 'Identifiant ou mot de passe incorrect.');
    assert.ok(await page.isVisible('#view-login'));
  });

  await step('sign in', async () => {
    await page.fill('#login-user', USER);
    await page.fill('#login-pass', PASSWORD);
    await page.click('#login-submit');
    await visible('#view-transcribe');
    assert.equal((await page.textContent('#whoami')).trim(), USER);
    assert.ok(await page.isVisible('#nav-admin'), 'an administrator sees the Administration link');
    // Once the view has loaded (languages fetched), focus moves to its heading so a screen
    // reader announces the new page. Wait for that: focusing the drop zone before it would
    // race with the app's own focus move.
    await page.waitForFunction(() => document.activeElement && document.activeElement.matches('#view-transcribe h1'), null, { timeout: 10000 });
    // The drop zone is a real file input, named by its label, reachable with the keyboard,
    // and its focus is visible.
    const input = page.getByLabel('Déposez un fichier ici ou cliquez pour le choisir');
    assert.equal(await input.evaluate((e) => `${e.tagName} ${e.type}`), 'INPUT file');
    await input.focus();
    const outline = await page.evaluate(() => getComputedStyle(document.getElementById('tr-drop')).outlineStyle);
    assert.equal(outline, 'solid', 'focus on the drop zone is visible');
    await expectLabelled('transcribe');
    await shot('02-transcribe');
  });

  await step('an oversized upload is refused with a clear message', async () => {
    await page.setInputFiles('#tr-file', OVERSIZED);
    await page.click('#tr-submit');
    await page.waitForFunction(() => document.getElementById('tr-error').textContent.length > 0, null, { timeout: 30000 });
    const msg = (await page.textContent('#tr-error')).trim();
    // The portal's 413 answer reaches the page (not a reset connection).
    assert.equal(msg, 'Le fichier est trop volumineux pour ce boîtier.');
    assert.ok(await page.isVisible('#view-transcribe'), 'stays on the upload page');
  });

  const clearMedia = [
    "Ce type de fichier n'est pas pris en charge.",
    "Ce fichier n'est pas un enregistrement audio ou vidéo lisible.",
    'Le fichier est endommagé ou illisible.',
    "Le format audio de ce fichier n'est pas pris en charge.",
    'Le fichier est incomplet (tronqué).',
  ];

  await step('a corrupt file (random bytes named .mp3) gets a clear error', async () => {
    await page.setInputFiles('#tr-file', CORRUPT);
    await page.click('#tr-submit');
    // Either refused at upload (its first bytes are not media) or failed by the engine.
    const where = await page.waitForFunction(
      () => {
        const e = document.getElementById('tr-error');
        if (e && e.textContent && !document.getElementById('view-transcribe').hidden) return 'upload';
        const j = document.getElementById('job-error');
        if (j && !j.hidden && j.textContent) return 'job';
        return false;
      },
      null,
      { timeout: 60000, polling: 200 },
    );
    const kind = await where.jsonValue();
    const msg = (await page.textContent(kind === 'upload' ? '#tr-error' : '#job-error')).trim();
    assert.ok(clearMedia.some((c) => msg.includes(c)), `corrupt file, ${kind}: "${msg}" is not one of the clear messages`);
  });

  await step('random bytes behind an MP3 tag reach the engine: the job fails with a clear reason', async () => {
    await page.goto(BASE + '/#/transcribe');
    await visible('#view-transcribe');
    await page.setInputFiles('#tr-file', CORRUPT_MP3);
    await page.click('#tr-submit');
    await page.waitForURL(/#\/jobs\//, { timeout: 30000 });
    const end = await waitJobEnd(60000);
    assert.equal(end, 'failed');
    const msg = (await page.textContent('#job-error')).trim();
    assert.ok(msg.startsWith('Le travail a échoué : '), msg);
    assert.ok(clearMedia.some((c) => msg.includes(c)), `"${msg}" is not one of the clear messages`);
    assert.ok(await page.isHidden('#job-transcript'));
    await shot('03-corrupt-file');
  });

  const statesSeen = new Set();
  await step('upload a French recording: upload progress, then job progress', async () => {
    await page.goto(BASE + '/#/transcribe');
    await visible('#view-transcribe');
    await page.setInputFiles('#tr-file', RECORDING);
    assert.match(await page.textContent('#tr-filename'), new RegExp(path.basename(RECORDING).replace('.', '\\.')));
    await page.selectOption('#tr-language', 'auto');
    // A slow link (about 2 s for the 431 kB), so that the upload progress can be seen.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 20,
      downloadThroughput: -1,
      uploadThroughput: 200 * 1024,
    });
    await page.click('#tr-submit');
    await visible('#tr-upload');
    await page.waitForFunction(() => {
      const bar = document.getElementById('tr-upload-bar');
      return bar.value > 0 && bar.value < 100 && /%/.test(document.getElementById('tr-upload-text').textContent);
    }, null, { timeout: 20000, polling: 50 });
    await shot('04-upload-progress');
    await page.waitForURL(/#\/jobs\/[^/]+$/, { timeout: 30000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await cdp.detach();
    firstJobUrl = page.url();
    firstJobId = decodeURIComponent(firstJobUrl.split('#/jobs/')[1]);
    await page.waitForFunction(() => document.getElementById('job-title').textContent.length > 0);
    assert.equal((await page.textContent('#job-title')).trim(), path.basename(RECORDING));
    // Live progress while it runs (the page polls the job).
    await page.waitForFunction(() => {
      const st = document.getElementById('job-status');
      return (!st.hidden && document.getElementById('job-state').textContent) || document.querySelector('#segments li.segment');
    });
    if (await page.isVisible('#job-status')) {
      statesSeen.add((await page.textContent('#job-state')).trim());
      await shot('05-job-progress');
    }
  });

  await step('the transcript arrives, in French', async () => {
    const watch = setInterval(() => {
      page.textContent('#job-state').then((t) => t && statesSeen.add(t.trim()), () => {});
    }, 300);
    const end = await waitJobEnd(150000).finally(() => clearInterval(watch));
    const live = [...statesSeen].filter((t) => /^En cours : \d+ %$|^En file d'attente$/.test(t));
    assert.ok(live.length > 0, `no live progress was shown: ${[...statesSeen].join(' | ')}`);
    assert.equal(end, 'done', `the job failed: ${await page.textContent('#job-error')}`);
    const text = norm(await page.locator('#segments .seg-text').allTextContents().then((a) => a.join(' ')));
    // conf-adminmenu-162: "Pour activer ou désactiver le mode sourdine, veuillez appuyer sur 1.
    // Pour verrouiller ou déverrouiller la conférence, appuyez sur 2. ..."
    for (const w of ['appuyez', 'conference', 'participant', 'volume']) {
      assert.ok(text.includes(w), `"${w}" not in the transcript: ${text}`);
    }
    assert.match(await page.textContent('#job-meta'), /Français/);
    await expectLabelled('transcript');
    // Doubtful segments (as the API says) are exactly the highlighted ones, with a reason.
    const api = (await apiJson('GET', `/api/jobs/${encodeURIComponent(firstJobId)}/transcript`)).body;
    const doubtful = api.segments.map((sg, i) => ((sg.doubts || sg.doubt || []).length ? i : -1)).filter((i) => i >= 0);
    const shown = await page.$$eval('#segments li.is-doubt', (lis) => lis.map((li) => Number(li.dataset.index)));
    assert.deepEqual(shown, doubtful, 'highlighted segments');
    for (const i of shown) {
      assert.match(await page.textContent(`#segments li[data-index="${i}"] .badge-doubt`), /^À vérifier : .+/);
    }
    const n = await page.locator('#segments li.segment[data-index]').count();
    assert.ok(n >= 3, `only ${n} segments`);
    await shot('06-transcript');
  });

  await step('the player plays the recording and follows the text', async () => {
    const seg = page.locator('#segments li.segment[data-index]').nth(2);
    const start = Number(await seg.getAttribute('data-start'));
    await seg.locator('.seg-time').click();
    await page.waitForFunction(
      (s) => {
        const a = document.getElementById('job-audio');
        return a.readyState >= 1 && !a.paused && a.currentTime >= s;
      },
      start,
      { timeout: 15000 },
    );
    await page.waitForSelector('#segments li.is-current', { timeout: 10000 });
    const idx = await page.getAttribute('#segments li.is-current', 'data-index');
    assert.ok(Number(idx) >= 2, `highlighted segment ${idx}, expected the clicked one (2) or a later one`);
    const duration = await page.evaluate(() => document.getElementById('job-audio').duration);
    assert.ok(duration > 20 && duration < 35, `media duration ${duration}`);
    await page.evaluate(() => document.getElementById('job-audio').pause());
  });

  let corrected;
  await step('correct a word; the correction persists after a reload', async () => {
    const first = page.locator('#segments li.segment[data-index="0"]');
    const before = (await first.locator('.seg-text').textContent()).trim();
    // One word changed (or, if the recogniser missed it, one added): a marker no recogniser
    // would produce, so that finding it later proves the correction was used.
    corrected = /sourdine/i.test(before) ? before.replace(/sourdine/i, 'Valisecorrigé') : `${before} Valisecorrigé`;
    await first.locator('.seg-edit').click();
    await page.fill('#seg-edit-0', corrected);
    await first.locator('button[type=submit]').click();
    await page.waitForSelector('#segments li.segment[data-index="0"].is-edited');
    await page.reload();
    await page.waitForSelector('#segments li.segment[data-index="0"]', { timeout: 30000 });
    const after = (await page.textContent('#segments li.segment[data-index="0"] .seg-text')).trim();
    assert.equal(after, corrected);
    assert.ok(await page.isVisible('#segments li.segment[data-index="0"] .badge-edited'));
  });

  await step('export: SRT has the correction, DOCX is a document', async () => {
    const srt = fs.readFileSync(await download('#export-srt'), 'utf8');
    assert.match(srt, /^1\r?\n\d\d:\d\d:\d\d,\d\d\d --> /, srt.slice(0, 200));
    assert.ok(srt.includes('Valisecorrigé'), `the correction is not in the SRT:\n${srt}`);
    const vtt = fs.readFileSync(await download('#export-vtt'), 'utf8');
    assert.ok(vtt.startsWith('WEBVTT'), vtt.slice(0, 50));
    const docx = await download('#export-docx');
    const xml = execFileSync('unzip', ['-p', docx, 'word/document.xml']).toString('utf8');
    assert.ok(xml.includes('Valisecorrigé'), 'the correction is not in the DOCX');
  });

  await step('at 1024x600 the transcript page fits the width', async () => {
    await page.setViewportSize({ width: 1024, height: 600 });
    await expectNoHorizontalScroll('transcript');
    await shot('07-transcript-1024x600');
    await page.setViewportSize({ width: 1280, height: 720 });
  });

  await step('English can be chosen, and is remembered', async () => {
    await page.selectOption('#lang-select', 'en');
    assert.equal((await page.textContent('#nav-admin a')).trim(), 'Administration');
    assert.equal((await page.textContent('a[data-route="history"]')).trim(), 'History');
    await page.reload();
    await page.waitForSelector('#segments li.segment', { timeout: 30000 });
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal((await page.textContent('#export-srt')).trim(), 'SRT');
    assert.match(await page.textContent('#assurance'), /Nothing you upload leaves this box/);
    await page.selectOption('#lang-select', 'fr');
    assert.equal((await page.textContent('a[data-route="history"]')).trim(), 'Historique');
  });

  await step('translate a text (en -> pt) and copy it', async () => {
    await page.click('a[data-route="translate"]');
    await visible('#view-translate');
    await expectLabelled('translate');
    await page.selectOption('#tx-source', 'en');
    await page.selectOption('#tx-target', 'pt');
    const english = 'The embassy is closed on Monday. Please come back tomorrow morning.';
    await page.fill('#tx-text', english);
    await page.click('#tx-submit');
    await page.waitForFunction(() => document.getElementById('tx-result').value.length > 0, null, { timeout: 60000 });
    const pt = await page.inputValue('#tx-result');
    assert.notEqual(pt.trim(), english);
    assert.match(norm(pt), /embaixada|segunda|amanha/, `not Portuguese? ${pt}`);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
    await page.click('#tx-copy');
    await page.waitForFunction(() => document.getElementById('tx-info').textContent.includes('copiée'));
    await shot('08-translate');
  });

  await step('translate a .docx document and download it, with its report', async () => {
    await page.setInputFiles('#doc-file', DOCX);
    await page.selectOption('#doc-source', 'en');
    await page.selectOption('#doc-target', 'pt');
    await page.click('#doc-submit');
    await page.waitForURL(/#\/jobs\//, { timeout: 30000 });
    const end = await waitJobEnd(90000);
    assert.equal(end, 'done', `document job failed: ${await page.textContent('#job-error')}`);
    assert.ok((await page.locator('#doc-report dt').count()) > 0, 'no report shown');
    const file = await download('#doc-download');
    assert.ok(file.endsWith('.docx'), `downloaded ${file}`);
    const xml = execFileSync('unzip', ['-p', file, 'word/document.xml']).toString('utf8');
    const text = norm(xml.replace(/<[^>]+>/g, ' '));
    assert.ok(!text.includes('the embassy is closed'), 'the document was not translated');
    assert.match(text, /embaixada/, `not Portuguese? ${text.slice(0, 300)}`);
    await shot('09-document-result');
  });

  await step('an English recording, then "Translate this transcript" into Portuguese', async () => {
    await page.goto(BASE + '/#/transcribe');
    await visible('#view-transcribe');
    await page.setInputFiles('#tr-file', ENGLISH);
    await page.selectOption('#tr-language', 'en');
    await page.click('#tr-submit');
    await page.waitForURL(/#\/jobs\//, { timeout: 30000 });
    const parentUrl = page.url();
    assert.equal(await waitJobEnd(120000), 'done');
    const en = norm(await page.locator('#segments .seg-text').allTextContents().then((a) => a.join(' ')));
    assert.match(en, /ask not what your country can do for you/, en);
    await visible('#tt-submit');
    await page.selectOption('#tt-target', 'pt');
    await page.click('#tt-submit');
    await page.waitForURL((u) => u.href !== parentUrl && /#\/jobs\//.test(u.href), { timeout: 30000 });
    assert.equal(await waitJobEnd(120000), 'done');
    const pt = norm(await page.locator('#segments .seg-text').allTextContents().then((a) => a.join(' ')));
    assert.ok(!pt.includes('ask not what your country'), `not translated: ${pt}`);
    assert.match(pt, /pais/, `not Portuguese? ${pt}`);
    // Still a transcript: timestamps, the original's recording, a link back to it.
    assert.ok(await page.isVisible('#job-parent a'));
    assert.match(await page.getAttribute('#job-audio', 'src'), /\/media$/);
    await shot('10-transcript-translation');
  });

  await step('the engine stops mid-job: the job is retried or fails with a reason, never lost', async () => {
    await page.goto(BASE + '/#/transcribe');
    await visible('#view-transcribe');
    await page.setInputFiles('#tr-file', RECORDING);
    await page.selectOption('#tr-language', 'fr');
    await page.click('#tr-submit');
    await page.waitForURL(/#\/jobs\//, { timeout: 30000 });
    const jobId = decodeURIComponent(page.url().split('#/jobs/')[1]);
    // Wait until the engine has it, then kill the engine (SIGKILL) and bring it back.
    const deadline = Date.now() + 60000;
    for (;;) {
      const j = (await apiJson('GET', `/api/jobs/${encodeURIComponent(jobId)}`)).body;
      if (j && j.state !== 'queued') break;
      assert.ok(Date.now() < deadline, `the job never started: ${JSON.stringify(j)}`);
      await page.waitForTimeout(150);
    }
    await control('kill-transcribe');
    await page.waitForTimeout(1500);
    const mid = await apiJson('GET', `/api/jobs/${encodeURIComponent(jobId)}`);
    assert.equal(mid.status, 200, 'the job must still exist while the engine is down');
    await control('start-transcribe');
    const end = await waitJobEnd(150000);
    const job = (await apiJson('GET', `/api/jobs/${encodeURIComponent(jobId)}`)).body;
    if (end === 'done') {
      assert.ok((job.attempts || 1) >= 2 || job.state === 'done', `done: ${JSON.stringify(job)}`);
    } else {
      assert.equal(job.state, 'failed', JSON.stringify(job));
      assert.ok(job.error && job.error.code, `failed without a reason: ${JSON.stringify(job)}`);
      const msg = (await page.textContent('#job-error')).trim();
      assert.ok(msg.startsWith('Le travail a échoué : ') && msg.length > 24, msg);
    }
    process.stdout.write(`   engine restart: job ${end}, attempts ${job.attempts}, error ${JSON.stringify(job.error || null)}\n`);
    await shot('11-engine-restart');
  });

  await step('history: search in transcripts, open, delete with confirmation', async () => {
    await page.click('a[data-route="history"]');
    await visible('#view-history');
    await page.waitForSelector('#hist-body tr');
    await shot('12-history');
    await page.fill('#hist-q', 'Valisecorrigé');
    await page.press('#hist-q', 'Enter');
    await page.waitForFunction(() => document.getElementById('hist-count').textContent.length > 0);
    const rows = page.locator('#hist-body tr');
    assert.equal(await rows.count(), 1, 'the corrected transcript is found by its text');
    assert.equal(await rows.first().getAttribute('data-job'), firstJobId);
    await page.fill('#hist-q', 'zzzxqwnothing');
    await page.press('#hist-q', 'Enter');
    await page.waitForSelector('#hist-empty:not([hidden])');
    await page.fill('#hist-q', '');
    await page.press('#hist-q', 'Enter');
    await page.waitForSelector(`#hist-body tr[data-job="${firstJobId}"]`);
    // Delete: a confirmation dialog first; cancelling keeps the job.
    const row = page.locator(`#hist-body tr[data-job="${firstJobId}"]`);
    await row.locator('button.btn-danger').click();
    await visible('#dialog');
    await page.click('#dialog-cancel');
    assert.equal(await page.locator(`#hist-body tr[data-job="${firstJobId}"]`).count(), 1);
    await row.locator('button.btn-danger').click();
    await visible('#dialog');
    await page.click('#dialog-ok');
    await page.waitForSelector(`#hist-body tr[data-job="${firstJobId}"]`, { state: 'detached' });
    const gone = await apiJson('GET', `/api/jobs/${encodeURIComponent(firstJobId)}`);
    assert.equal(gone.status, 404, 'the deleted job is gone from the API');
    await page.goto(firstJobUrl);
    await page.waitForFunction(() => document.getElementById('alert').textContent.length > 0);
  });

  await step('administration: box state, accounts, retention, audit', async () => {
    await page.click('#nav-admin a');
    await visible('#admin-state');
    await page.waitForSelector('#state-models tr');
    const engines = await page.textContent('#state-engines');
    assert.match(engines, /En service/, `engines: ${engines}`);
    const models = await page.textContent('#state-models');
    assert.match(models, /whisper/, models);
    await shot('13-admin-state');
    await page.click('.tabs a[data-tab="users"]');
    await visible('#admin-users');
    await page.fill('#nu-name', 'agent.consulaire');
    await page.fill('#nu-pass', 'a long enough passphrase 42');
    await page.click('#user-form button[type=submit]');
    await page.waitForSelector('#users-body tr[data-user="agent.consulaire"]');
    await expectLabelled('accounts');
    // A new password for the agent, through the dialog.
    await page.click('#users-body tr[data-user="agent.consulaire"] button[aria-label="Nouveau mot de passe pour agent.consulaire"]');
    await visible('#dialog');
    await page.fill('#dialog-input', AGENT_PASSWORD);
    await page.click('#dialog-ok');
    await page.waitForFunction(() => document.getElementById('alert').textContent.includes('agent.consulaire'));
    await shot('14-admin-users');
    await page.click('.tabs a[data-tab="retention"]');
    await visible('#admin-retention');
    await page.waitForFunction(() => document.getElementById('ret-days').value !== '');
    await page.fill('#ret-days', '30');
    await page.click('#ret-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('ret-ok').textContent.length > 0);
    assert.equal((await apiJson('GET', '/api/admin/retention')).body.days, 30);
    await page.click('.tabs a[data-tab="audit"]');
    await visible('#admin-audit');
    await page.waitForSelector('#audit-body tr');
    const audit = await page.textContent('#audit-body');
    assert.ok(!audit.includes(path.basename(RECORDING)), 'the audit log never shows file names');
    await shot('15-admin-audit');
  });

  await step('sign out', async () => {
    await page.click('#logout');
    await visible('#view-login');
    const me = await apiJson('GET', '/api/me');
    assert.equal(me.status, 401);
    await page.goto(BASE + '/#/history');
    await visible('#view-login');
  });

  await step('a staff member (not an administrator) sees only their own, and no admin pages', async () => {
    await page.fill('#login-user', 'agent.consulaire');
    await page.fill('#login-pass', AGENT_PASSWORD);
    await page.click('#login-submit');
    // Back where the signed-out visit wanted to go.
    await visible('#view-history');
    assert.ok(await page.isHidden('#nav-admin'));
    await page.waitForSelector('#hist-empty:not([hidden])');
    assert.equal(await page.locator('#hist-body tr').count(), 0, "another user's jobs are not listed");
    await page.goto(BASE + '/#/admin/users');
    await visible('#view-notfound');
    assert.equal((await apiJson('GET', '/api/admin/users')).status, 403);
    await page.click('#logout');
    await visible('#view-login');
  });

  assert.deepEqual(problems, [], 'errors in the page');
}

let code = 0;
try {
  await main();
  const total = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`browser test: ${timings.length} steps passed in ${total} s; screenshots in ${SHOTS}\n`);
} catch (e) {
  code = 1;
  process.stdout.write(`FAILED: ${e && e.stack ? e.stack : e}\n`);
  if (problems.length) process.stdout.write(`page problems: ${problems.join('\n')}\n`);
  if (page) {
    try {
      const alert = await page.textContent('#alert');
      process.stdout.write(`url: ${page.url()}\nalert: ${alert}\n`);
      process.stdout.write(`failure screenshot: ${await shot('failure')}\n`);
    } catch {
      /* the page may be gone */
    }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  lines.close();
}
process.exit(code);
