// Runs tus-js-client (the tus project's JavaScript client, npm `tus-js-client`, pinned in
// package-lock.json) unchanged under Node against sfx, for tests/tus_clients.rs. One JSON
// argument says what to do:
//
//   {"endpoint": "http://127.0.0.1:P/+tus/", "secret": "...", "file": "PATH",
//    "chunkSize": N, "metadata": {...}, "storage": "PATH" | null, "deferred": bool,
//    "withUpload": bool, "abortAfter": N | null, "terminate": bool, "protocol": "tus-v1" |
//    "ietf-draft-05"}
//
// "storage" keeps the upload URL in tus-js-client's FileUrlStorage (keyed by its fingerprint of
// path, size and mtime), so a second run finds and resumes it. "deferred" streams the file
// without telling its length up front (uploadLengthDeferred). "withUpload" sends the first
// chunk with the creation (uploadDataDuringCreation). "abortAfter" stops (abort()) once that
// many bytes are accepted; with "terminate", abort(true) also deletes the upload.
// Prints one JSON object: what happened, the last response's headers and every request made.
'use strict'

const fs = require('fs')
const stream = require('stream')
const tus = require('tus-js-client')

const spec = JSON.parse(process.argv[2])
const trace = []
const out = { trace }

let reported = false
function done(extra) {
  if (reported) return
  reported = true
  Object.assign(out, extra)
  process.stdout.write(`${JSON.stringify(out)}\n`)
  // Let the client finish what it does after its callbacks (forgetting a finished upload in
  // its URL storage), then end even if a kept-alive socket lingers.
  setTimeout(() => process.exit(0), 3000).unref()
}

const size = fs.statSync(spec.file).size
let input
if (spec.deferred) {
  // A plain stream, not a file: the client cannot know the length before the end.
  input = fs.createReadStream(spec.file).pipe(new stream.PassThrough())
} else {
  input = fs.createReadStream(spec.file)
}

const options = {
  endpoint: spec.endpoint,
  // "ietf-draft-05": the IETF resumable upload draft (interop version 6) instead of tus.
  protocol: spec.protocol || 'tus-v1',
  chunkSize: spec.chunkSize || 1 << 20,
  metadata: spec.metadata || {},
  headers: { Authorization: `Basic ${Buffer.from(`user:${spec.secret}`).toString('base64')}` },
  retryDelays: spec.retryDelays || [0, 200, 500],
  uploadLengthDeferred: Boolean(spec.deferred),
  uploadDataDuringCreation: Boolean(spec.withUpload),
  removeFingerprintOnSuccess: true,
  onBeforeRequest(req) {
    const h = {}
    for (const k of ['Upload-Offset', 'Upload-Length', 'Upload-Defer-Length', 'Upload-Metadata', 'Content-Type', 'Tus-Resumable', 'Upload-Complete', 'Upload-Draft-Interop-Version']) {
      const v = req.getHeader(k)
      if (v != null) h[k.toLowerCase()] = String(v)
    }
    trace.push({ method: req.getMethod(), url: req.getURL(), headers: h })
  },
  onAfterResponse(req, res) {
    const last = trace[trace.length - 1]
    last.status = res.getStatus()
    last.response_headers = { ...res.getUnderlyingObject().headers }
  },
  onChunkComplete(_chunk, accepted) {
    if (spec.abortAfter != null && accepted >= spec.abortAfter) {
      upload.abort(Boolean(spec.terminate)).then(
        () => done({ aborted: true, url: upload.url, offset: accepted }),
        (e) => done({ aborted: true, url: upload.url, offset: accepted, error: { message: String(e) } }),
      )
    }
  },
  onSuccess({ lastResponse }) {
    done({
      url: upload.url,
      offset: size,
      status: lastResponse.getStatus(),
      headers: { ...lastResponse.getUnderlyingObject().headers },
    })
  },
  onError(e) {
    const res = e.originalResponse
    done({
      url: upload.url,
      error: {
        message: String(e.message || e),
        status: res ? res.getStatus() : null,
        body: res ? res.getBody() : null,
      },
    })
  },
}
if (spec.storage) {
  options.urlStorage = new tus.FileUrlStorage(spec.storage)
}

const upload = new tus.Upload(input, options)

async function start() {
  if (spec.storage && !spec.deferred) {
    const previous = await upload.findPreviousUploads()
    out.previous = previous.length
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0])
      out.resumed_url = previous[0].uploadUrl
    }
  }
  upload.start()
}

start().catch((e) => done({ error: { message: String(e) } }))
