// SHA-256 of picked files, off the page's main thread, with hash-wasm's streaming hasher.
// Messages in: {id, file} to hash a File, {id, cancel: true} to stop. Out: {id, done} (bytes
// hashed so far), then {id, sha256} or {id, error}.
'use strict';
importScripts('/+static/sha256.umd.min.js');

// Reads of 8 MiB keep memory flat for files of any size and give frequent progress.
const STEP = 8 * 1024 * 1024;
const cancelled = new Set();

async function hash(id, file) {
  const hasher = await self.hashwasm.createSHA256();
  hasher.init();
  for (let offset = 0; offset < file.size; offset += STEP) {
    if (cancelled.has(id)) return;
    const end = Math.min(offset + STEP, file.size);
    const chunk = await file.slice(offset, end).arrayBuffer();
    hasher.update(new Uint8Array(chunk));
    self.postMessage({ id, done: end });
  }
  self.postMessage({ id, sha256: hasher.digest('hex') });
}

self.onmessage = (event) => {
  const { id, file, cancel } = event.data;
  if (cancel) {
    cancelled.add(id);
    return;
  }
  hash(id, file).catch((err) => {
    self.postMessage({ id, error: String((err && err.message) || err) });
  });
};
