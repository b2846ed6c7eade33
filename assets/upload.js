// The upload page with JavaScript: files picked or dropped go over tus (/+tus/, tus-js-client)
// in chunks of `upload_chunk_size`, survive network loss and page reloads, and are proven by
// comparing the SHA-256 computed here (in a Web Worker, hash-wasm) with the server's.
// Without this script (or without tus/Worker support) the form posts to /+upload as before.
'use strict';
(function () {
  const form = document.querySelector('form.upload[data-tus-endpoint]');
  if (!form || !window.tus || !tus.isSupported || !window.Worker) return;

  const $ = (sel, root) => (root || document).querySelector(sel);
  const endpoint = new URL(form.dataset.tusEndpoint, location.href).href;
  const chunkSize = Number(form.dataset.chunkSize) || 50 * 1024 * 1024;
  const maxSize = Number(form.dataset.maxSize) || Infinity;
  // An upload link's page (/u/<token>) sends its token; elsewhere the session cookie does.
  const auth = form.dataset.bearer ? { Authorization: 'Bearer ' + form.dataset.bearer } : {};
  const tusHeaders = Object.assign({ 'Tus-Resumable': '1.0.0' }, auth);
  const input = $('input[type=file]', form);
  const queueList = $('ul.queue', form);
  const transfersSection = $('section.transfers');
  const transfersList = $('ul.transfers', transfersSection);
  const overallBar = $('#overall-progress');
  const overallText = $('.overall-text');
  const resumable = $('section.resumable');
  const previousList = $('ul.previous', resumable);
  const receipt = $('section.tus-receipt');
  const receiptBody = $('tbody', receipt);
  const statusRegion = $('#upload-status');
  const alertRegion = $('#upload-alert');
  const overlay = $('.drop-overlay');
  const storage = tus.defaultOptions.urlStorage;

  // Quick retries first, then every 10 s for about 10 minutes: long enough to ride out an
  // outage of minutes. tus-js-client restarts the count whenever bytes got through.
  const RETRY_DELAYS = [0, 1000, 2000, 4000, 8000].concat(new Array(60).fill(10000));
  const RECEIPT_KEY = 'sfx-tus-receipt';

  // ---- formatting ----
  function size(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
  }
  function duration(s) {
    if (!isFinite(s)) return '';
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function button(cls, text, label, onClick) {
    const b = el('button', cls, text);
    b.type = 'button';
    b.setAttribute('aria-label', label);
    b.addEventListener('click', onClick);
    return b;
  }
  // Announcements for screen readers; the same text is visible in the file's row.
  function announce(text) {
    statusRegion.textContent = text;
  }
  function alarm(text) {
    alertRegion.textContent = text;
  }
  function sameFile(a, b) {
    return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  }

  // ---- the hashing worker ----
  const worker = new Worker('/+static/sha256-worker.js');
  const hashing = new Map();
  worker.onmessage = (event) => {
    const m = event.data;
    const t = hashing.get(m.id);
    if (!t) return;
    if (m.done != null) t.hashed = m.done;
    if (m.sha256) t.localSha = m.sha256;
    if (m.error) t.hashError = m.error;
    if (m.sha256 || m.error) hashing.delete(m.id);
    t.check();
    t.render();
  };
  worker.onerror = (event) => {
    for (const t of hashing.values()) {
      t.hashError = 'the hashing worker failed: ' + (event.message || 'unknown error');
      t.check();
      t.render();
    }
    hashing.clear();
  };

  // ---- one file ----
  let nextId = 1;
  const transfers = [];

  class Transfer {
    constructor(file, previous) {
      this.id = nextId++;
      this.file = file;
      this.previous = previous || null;
      this.state = 'queued';
      this.message = '';
      this.sent = 0;
      this.offsetAtStart = null;
      this.hashed = 0;
      this.localSha = null;
      this.serverSha = null;
      this.hashError = null;
      this.item = null;
      this.itemUrl = null;
      this.samples = [];
      this.lastRender = 0;
      this.announced = 0;
      this.upload = null;
      this.buildRow();
    }

    buildRow() {
      const f = this.file;
      const li = el('li', 'transfer');
      li.dataset.name = f.name;
      const head = el('div', 'head');
      head.append(el('span', 'filename', f.name), el('span', 'filesize', size(f.size)));
      this.bar = el('progress', 'file-progress');
      this.bar.max = Math.max(f.size, 1);
      this.bar.value = 0;
      this.bar.setAttribute('aria-label', 'Upload of ' + f.name);
      this.stats = el('div', 'stats');
      this.stateLine = el('div', 'state');
      this.hashLine = el('div', 'hash');
      const actions = el('div', 'file-actions');
      this.pauseButton = button('pause', 'Pause', 'Pause ' + f.name, () => this.pause());
      this.resumeButton = button('resume', 'Resume', 'Resume ' + f.name, () => this.resume());
      this.cancelButton = button('cancel danger', 'Cancel', 'Cancel ' + f.name, () => this.cancel());
      this.removeButton = button('remove', 'Remove', 'Remove ' + f.name, () => this.remove());
      actions.append(this.pauseButton, this.resumeButton, this.cancelButton, this.removeButton);
      li.append(head, this.bar, this.stats, this.stateLine, this.hashLine, actions);
      this.row = li;
      this.render(true);
    }

    start(metadata) {
      this.state = 'connecting';
      this.startedAt = Date.now();
      transfersList.append(this.row);
      hashing.set(this.id, this);
      worker.postMessage({ id: this.id, file: this.file });
      this.upload = new tus.Upload(this.file, {
        endpoint,
        chunkSize,
        headers: auth,
        retryDelays: RETRY_DELAYS,
        metadata,
        removeFingerprintOnSuccess: true,
        onShouldRetry: (err, attempt) => this.shouldRetry(err, attempt),
        onUploadUrlAvailable: () => {
          if (this.state === 'connecting' || this.state === 'reconnecting') this.setState('uploading');
        },
        onProgress: (sent) => this.progress(sent),
        onSuccess: (payload) => this.uploaded(payload && payload.lastResponse),
        onError: (err) => this.failed(err),
      });
      if (this.previous) this.upload.resumeFromPreviousUpload(this.previous);
      this.upload.start();
      this.render(true);
    }

    shouldRetry(err, attempt) {
      const res = err.originalResponse;
      const status = res ? res.getStatus() : 0;
      // Network errors (status 0), server trouble, busy slots and offset races are worth
      // another try; anything else (403 logged out, 413 too large...) is not.
      const retry = status === 0 || status >= 500 || [409, 423, 429].includes(status);
      if (retry && this.state !== 'paused') {
        this.state = 'reconnecting';
        this.message = status === 0
          ? 'Connection lost: reconnecting… (attempt ' + (attempt + 1) + ')'
          : 'Server busy (' + status + '): retrying… (attempt ' + (attempt + 1) + ')';
        if (attempt === 0) announce(this.file.name + ': connection lost, reconnecting.');
        this.render(true);
      }
      return retry;
    }

    progress(sent) {
      if (this.state === 'reconnecting' || this.state === 'connecting') {
        if (this.state === 'reconnecting') announce(this.file.name + ': reconnected, uploading.');
        this.state = 'uploading';
        this.message = '';
      }
      if (this.offsetAtStart == null) {
        this.offsetAtStart = sent;
      }
      this.sent = sent;
      const now = Date.now();
      this.samples.push([now, sent]);
      // Speed over the last 5 seconds: steady enough to read, quick to follow changes.
      while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
      const quarter = Math.floor((4 * sent) / Math.max(this.file.size, 1));
      if (quarter > this.announced && quarter < 4) {
        this.announced = quarter;
        announce(this.file.name + ': ' + quarter * 25 + '% uploaded.');
      }
      if (now - this.lastRender > 200) this.render();
      updateOverall();
    }

    speed() {
      const s = this.samples;
      if (s.length < 2) return 0;
      const [t0, b0] = s[0];
      const [t1, b1] = s[s.length - 1];
      return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
    }

    async uploaded(res) {
      this.sent = this.file.size;
      this.setState('checking');
      let sha = res && res.getHeader('Sfx-Sha256');
      let item = res && res.getHeader('Sfx-Item');
      let url = res && res.getHeader('Sfx-Item-Url');
      if (!sha && this.upload && this.upload.url) {
        // The final response did not carry it (e.g. a proxy dropped it): ask the upload itself.
        try {
          const head = await fetch(this.upload.url, {
            method: 'HEAD',
            headers: tusHeaders,
            credentials: 'same-origin',
            cache: 'no-store',
          });
          sha = head.headers.get('Sfx-Sha256');
          item = item || head.headers.get('Sfx-Item');
          url = url || head.headers.get('Sfx-Item-Url');
        } catch (e) {
          // Left to check() below: no server hash is an error shown in the row.
        }
      }
      this.serverSha = sha ? sha.trim().toLowerCase() : '';
      this.item = item || '';
      this.itemUrl = url || '';
      this.check();
      this.render(true);
      updateOverall();
    }

    check() {
      if (this.serverSha == null) return;
      if (this.serverSha === '') {
        this.state = 'mismatch';
        this.message = 'The server did not report a SHA-256: the upload cannot be verified.';
        alarm(this.file.name + ': ' + this.message);
      } else if (this.hashError) {
        this.state = 'error';
        this.message = 'Uploaded, but this browser could not hash the file: ' + this.hashError;
        alarm(this.file.name + ': ' + this.message);
      } else if (this.localSha == null) {
        this.state = 'checking';
        this.message = 'Uploaded; computing the SHA-256 here to compare…';
        return;
      } else if (this.localSha === this.serverSha) {
        if (this.state === 'verified') return;
        this.state = 'verified';
        this.message = 'the server has the same SHA-256.';
        announce(this.file.name + ': uploaded and verified.');
        addReceipt(this);
      } else {
        this.state = 'mismatch';
        this.message = 'SHA-256 MISMATCH: the server stored different bytes than this file (server '
          + this.serverSha + '). Do not rely on this upload: upload the file again.';
        alarm(this.file.name + ': ' + this.message);
      }
      updateDone();
    }

    failed(err) {
      const res = err && err.originalResponse;
      const status = res ? res.getStatus() : 0;
      let reason = (res && res.getBody && res.getBody()) || (err && err.message) || String(err);
      if (status === 403) reason = 'not allowed (logged out?): log in again, then pick the file to continue.';
      if (status === 413) reason = 'the file is larger than this server accepts.';
      this.state = 'error';
      this.message = 'Upload failed' + (status ? ' (' + status + ')' : '') + ': ' + String(reason).trim();
      alarm(this.file.name + ': ' + this.message);
      this.render(true);
      updateDone();
    }

    pause() {
      if (!this.upload) return;
      this.upload.abort(false);
      this.setState('paused');
      this.samples = [];
      announce(this.file.name + ': paused.');
      this.resumeButton.focus();
    }

    resume() {
      if (!this.upload) return;
      this.state = 'connecting';
      this.message = '';
      this.upload.start();
      this.render(true);
      announce(this.file.name + ': resumed.');
      this.pauseButton.focus();
    }

    cancel() {
      if (this.upload) {
        // Terminates the upload on the server and forgets it here.
        this.upload.abort(true).catch(() => {});
      }
      worker.postMessage({ id: this.id, cancel: true });
      hashing.delete(this.id);
      this.setState('cancelled');
      announce(this.file.name + ': cancelled.');
      this.removeButton.focus();
      updateOverall();
      updateDone();
    }

    remove() {
      for (const list of [transfers, queued]) {
        const i = list.indexOf(this);
        if (i >= 0) list.splice(i, 1);
      }
      const next = this.row.nextElementSibling || this.row.previousElementSibling;
      this.row.remove();
      if (next) $('button:not([hidden])', next).focus();
      else input.focus();
      if (!transfersList.children.length) transfersSection.hidden = true;
      queueList.hidden = !queueList.children.length;
      updateOverall();
    }

    setState(state) {
      this.state = state;
      this.message = '';
      this.render(true);
    }

    render() {
      this.lastRender = Date.now();
      const f = this.file;
      const s = this.state;
      const row = this.row;
      row.dataset.state = s;
      this.bar.value = Math.min(this.sent, f.size);
      const active = ['connecting', 'uploading', 'reconnecting'].includes(s);
      const parts = [size(this.sent) + ' of ' + size(f.size)];
      if (active) {
        const speed = this.speed();
        if (speed > 0) {
          parts.push(size(speed) + '/s');
          parts.push(duration((f.size - this.sent) / speed) + ' left');
        }
      }
      if (this.offsetAtStart) parts.push('continued from ' + size(this.offsetAtStart));
      this.stats.textContent = parts.join(' · ');
      const labels = {
        queued: this.previous ? 'Ready: continues an earlier upload' : 'Ready to upload',
        connecting: 'Connecting…',
        uploading: 'Uploading…',
        reconnecting: 'Reconnecting…',
        paused: 'Paused',
        checking: 'Uploaded; checking…',
        verified: '✓ Verified',
        mismatch: '✗ Not verified',
        error: 'Failed',
        cancelled: 'Cancelled',
      };
      this.stateLine.textContent = labels[s] + (this.message ? ' — ' + this.message : '');
      this.stateLine.setAttribute('role', s === 'mismatch' || s === 'error' ? 'alert' : 'none');
      if (this.localSha) {
        this.hashLine.textContent = 'SHA-256 (this browser): ' + this.localSha;
      } else if (s !== 'queued' && s !== 'cancelled') {
        this.hashLine.textContent = 'SHA-256: computing… ' + Math.floor((100 * this.hashed) / Math.max(f.size, 1)) + '%';
      } else {
        this.hashLine.textContent = '';
      }
      this.row.dataset.sha256 = this.localSha || '';
      this.row.dataset.serverSha256 = this.serverSha || '';
      const finished = ['verified', 'mismatch', 'cancelled', 'error', 'checking'].includes(s);
      this.pauseButton.hidden = !active;
      this.resumeButton.hidden = !(s === 'paused' || (s === 'error' && this.upload && !this.serverSha));
      this.cancelButton.hidden = finished || s === 'queued';
      this.removeButton.hidden = !(s === 'queued' || s === 'cancelled' || s === 'error' || s === 'mismatch');
    }
  }

  // ---- all files ----
  function updateOverall() {
    const counted = transfers.filter((t) => t.state !== 'queued' && t.state !== 'cancelled');
    const total = counted.reduce((a, t) => a + t.file.size, 0);
    const sent = counted.reduce((a, t) => a + Math.min(t.sent, t.file.size), 0);
    overallBar.max = Math.max(total, 1);
    overallBar.value = sent;
    const speed = counted.reduce((a, t) => a + (['uploading', 'reconnecting'].includes(t.state) ? t.speed() : 0), 0);
    let text = size(sent) + ' of ' + size(total) + ' (' + counted.length + (counted.length === 1 ? ' file)' : ' files)');
    if (speed > 0 && sent < total) text += ' · ' + size(speed) + '/s · ' + duration((total - sent) / speed) + ' left';
    overallText.textContent = text;
  }

  function updateDone() {
    const started = transfers.filter((t) => t.state !== 'queued');
    if (started.length && started.every((t) => ['verified', 'mismatch', 'cancelled', 'error'].includes(t.state))) {
      const ok = started.filter((t) => t.state === 'verified').length;
      announce('All uploads finished: ' + ok + ' of ' + started.length + ' verified.');
      if (!receipt.hidden && ok) $('h2', receipt).focus();
    }
  }

  // ---- the receipt (kept for this browser session: it survives a reload) ----
  function loadReceipt() {
    try {
      return JSON.parse(sessionStorage.getItem(RECEIPT_KEY) || '[]');
    } catch (e) {
      return [];
    }
  }
  function renderReceiptRow(r) {
    const tr = el('tr');
    const itemCell = el('td');
    if (r.itemUrl) {
      const a = el('a', null, r.item || r.itemUrl);
      a.href = r.itemUrl;
      itemCell.append(a);
    } else {
      itemCell.textContent = r.item;
    }
    const sha = el('td');
    sha.append(el('code', 'hash', r.sha256));
    tr.append(itemCell, el('td', null, r.name), el('td', 'num', String(r.size)), sha, el('td', 'verified', '✓ verified'));
    receiptBody.append(tr);
    receipt.hidden = false;
  }
  function addReceipt(t) {
    const r = { item: t.item, itemUrl: t.itemUrl, name: t.file.name, size: t.file.size, sha256: t.localSha };
    const rows = loadReceipt();
    rows.push(r);
    try {
      sessionStorage.setItem(RECEIPT_KEY, JSON.stringify(rows));
    } catch (e) {
      // Storage full or disabled: the receipt is still on the page.
    }
    renderReceiptRow(r);
  }

  // ---- unfinished uploads from before a reload or a browser restart ----
  let previousUploads = [];
  async function listPrevious() {
    let all = [];
    try {
      all = await storage.findAllUploads();
    } catch (e) {
      return;
    }
    // Only this server's uploads (the fingerprint ends with the endpoint).
    previousUploads = all.filter((p) => p.urlStorageKey.indexOf(endpoint + '::') !== -1 && p.uploadUrl);
    previousList.textContent = '';
    for (const p of previousUploads) {
      const name = (p.metadata && p.metadata.filename) || 'unnamed file';
      const li = el('li', 'previous-upload');
      li.dataset.name = name;
      const label = el('span', 'filename', name);
      const info = el('span', 'offset', size(p.size || 0));
      const forget = button('forget', 'Forget', 'Forget the unfinished upload of ' + name, async () => {
        try {
          await tus.Upload.terminate(p.uploadUrl, {});
        } catch (e) {
          // Already gone on the server: forgetting it here is all that is left.
        }
        await storage.removeUpload(p.urlStorageKey);
        li.remove();
        resumable.hidden = !previousList.children.length;
        input.focus();
      });
      li.append(label, ' ', info, ' ', forget);
      previousList.append(li);
      p.row = li;
      headOf(p, info, li);
    }
    resumable.hidden = !previousList.children.length;
  }
  async function headOf(p, info, li) {
    try {
      const res = await fetch(p.uploadUrl, {
        method: 'HEAD',
        headers: tusHeaders,
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (res.status === 404 || res.status === 410) {
        // Expired or removed on the server: nothing left to continue.
        await storage.removeUpload(p.urlStorageKey);
        li.remove();
        resumable.hidden = !previousList.children.length;
        return;
      }
      const offset = Number(res.headers.get('Upload-Offset'));
      if (res.ok && isFinite(offset)) {
        p.offset = offset;
        info.textContent = size(offset) + ' of ' + size(p.size || 0) + ' uploaded';
        li.dataset.offset = String(offset);
      }
    } catch (e) {
      info.textContent = size(p.size || 0) + ' (server not reachable now)';
    }
  }

  // ---- picking and dropping ----
  const queued = [];
  async function addFiles(files) {
    for (const file of files) {
      if (transfers.some((t) => sameFile(t.file, file) && !['cancelled', 'error', 'mismatch'].includes(t.state))) continue;
      let previous = null;
      try {
        const probe = new tus.Upload(file, { endpoint });
        const found = await probe.findPreviousUploads();
        previous = found.length ? found[0] : null;
      } catch (e) {
        previous = null;
      }
      const t = new Transfer(file, previous);
      transfers.push(t);
      if (previous) {
        const shown = previousUploads.find((p) => p.urlStorageKey === previous.urlStorageKey);
        if (shown && shown.row) {
          shown.row.remove();
          resumable.hidden = !previousList.children.length;
        }
        t.message = shown && shown.offset != null ? size(shown.offset) + ' already on the server' : '';
      }
      if (file.size > maxSize) {
        t.state = 'error';
        t.message = 'larger than the ' + size(maxSize) + ' this server accepts.';
      }
      t.render(true);
      queued.push(t);
      queueList.append(t.row);
    }
    queueList.hidden = !queueList.children.length;
    announce(queueList.children.length + ' file(s) ready to upload.');
  }

  input.addEventListener('change', () => {
    const files = Array.from(input.files || []);
    // The picked files now live in the queue; the input is emptied so that picking the same
    // file again (to continue it) fires another change.
    input.value = '';
    addFiles(files);
  });

  let dragDepth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    dragDepth++;
    overlay.hidden = false;
  });
  document.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) overlay.hidden = true;
  });
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    overlay.hidden = true;
    addFiles(Array.from(e.dataTransfer.files));
  });

  form.addEventListener('submit', (e) => {
    const text = form.elements.text && form.elements.text.value;
    const ready = queued.filter((t) => t.state === 'queued');
    if (!ready.length && !text) {
      e.preventDefault();
      alarm('Choose or drop files first.');
      input.focus();
      return;
    }
    if (!ready.length) return; // Only pasted text: the plain form handles it as before.
    e.preventDefault();
    if (text) {
      const name = (form.elements.filename.value || 'paste.txt').trim();
      const type = (form.elements.contenttype.value || 'text/plain').trim();
      const t = new Transfer(new File([text], name, { type, lastModified: Date.now() }), null);
      transfers.push(t);
      ready.push(t);
      form.elements.text.value = '';
    }
    const metadata = {};
    // An upload link's page has no reference field: its case is the link's.
    const reference = form.elements.reference ? form.elements.reference.value.trim() : '';
    const comment = form.elements.comment.value.trim();
    if (reference) metadata.reference = reference;
    if (comment) metadata.comment = comment;
    // The form's lifetime fields under their form names; the tus endpoint does not read them
    // yet (its uploads get default_lifetime), and ignores unknown keys as tus allows.
    const life = form.elements['maxlife-value'];
    const unit = form.elements['maxlife-unit'];
    if (life && life.value) metadata['maxlife-value'] = life.value;
    if (unit && unit.value) metadata['maxlife-unit'] = unit.value;
    transfersSection.hidden = false;
    for (const t of ready) {
      const i = queued.indexOf(t);
      if (i >= 0) queued.splice(i, 1);
      const meta = Object.assign({ filename: t.file.name, filetype: t.file.type || 'application/octet-stream' }, metadata);
      t.start(meta);
    }
    queueList.hidden = !queueList.children.length;
    updateOverall();
    announce('Uploading ' + ready.length + ' file(s).');
    $('h2', transfersSection).focus();
  });

  $('.drop-hint', form).hidden = false;
  form.classList.add('tus');
  for (const r of loadReceipt()) renderReceiptRow(r);
  listPrevious();
})();
