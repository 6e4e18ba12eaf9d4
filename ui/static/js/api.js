// The REST API of cave (DESIGN §3), as the UI uses it. Every call goes to
// the node that served this page, under /api/v1. int64 fields (revisions,
// sizes, counts) arrive as JSON strings and are left as strings.

const TIMEOUT_MS = 15000;

// ApiError is a failed call: the HTTP status (0 when no answer came) and
// the message of the API's JSON error body.
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

// encodeKey escapes each path segment of a key for use in a URL, keeping
// the slashes between segments.
export function encodeKey(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}

async function call(method, path, { query, body } = {}) {
  let url = '/api/v1/' + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += '?' + s;
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(url, {
      method,
      body,
      signal: ctl.signal,
      cache: 'no-store',
      headers: body !== undefined ? { 'Content-Type': 'application/octet-stream' } : {},
    });
  } catch (e) {
    const why = e.name === 'AbortError' ? `no answer within ${TIMEOUT_MS / 1000}s` : e.message;
    throw new ApiError(0, `${method} ${url}: cannot reach the node (${why})`);
  } finally {
    clearTimeout(timer);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const msg = data && data.message ? data.message : (text.trim() || resp.statusText);
    throw new ApiError(resp.status, msg, data ? data.code : undefined);
  }
  return data;
}

// listKeys returns one page of keys under prefix:
// {items: [{key, mod_revision, size}], next_page_token}.
export function listKeys(prefix, limit, pageToken) {
  return call('GET', 'keys', { query: { prefix, limit, page_token: pageToken } });
}

// getKey returns {key, value (base64), create_revision, mod_revision, version}.
// Without secret the value is the stored bytes, which for a secret are its
// encrypted envelope (see isEnvelope); with secret it is the plaintext of a
// secret, and a value not written as a secret fails with 412.
export function getKey(key, secret) {
  return call('GET', 'kv/' + encodeKey(key), { query: { format: 'json', secret: secret ? 'true' : undefined } });
}

// putKey writes value (a string or bytes), encrypted at rest when secret
// is true. prevRevision, when given, makes the write conditional: "0" means
// create only, N means only if the key's mod_revision is still N. Returns
// {key, revision}.
export function putKey(key, value, prevRevision, secret) {
  return call('PUT', 'kv/' + encodeKey(key), {
    query: { prev_revision: prevRevision, secret: secret ? 'true' : undefined },
    body: value,
  });
}

// ENVELOPE_MAGIC and ENVELOPE_OVERHEAD mirror the envelope layout of the
// Go package secrets (secrets/keyring.go): "\x89CVS", a version byte, a
// 4-byte key id, a 12-byte nonce and a 16-byte GCM tag.
const ENVELOPE_MAGIC = [0x89, 0x43, 0x56, 0x53];
const ENVELOPE_VERSION = 1;
export const ENVELOPE_OVERHEAD = 37;

// isEnvelope reports whether bytes, a value read without secret=true, have
// the shape of a secret's encrypted envelope. The rule is the one of
// secrets.IsEnvelope (secrets/keyring.go): at least 37 bytes, starting
// with the magic "\x89CVS" and the version 1. It authenticates nothing: a
// plain value may start the same way, and then reading it with secret=true
// fails with 412.
export function isEnvelope(bytes) {
  return bytes.length >= ENVELOPE_OVERHEAD &&
    ENVELOPE_MAGIC.every((b, i) => bytes[i] === b) && bytes[ENVELOPE_MAGIC.length] === ENVELOPE_VERSION;
}

// deleteKey removes key, only if it is still at prevRevision when given.
export function deleteKey(key, prevRevision) {
  return call('DELETE', 'kv/' + encodeKey(key), { query: { prev_revision: prevRevision } });
}

// rawURL is the address of a key's raw bytes, for downloading.
export function rawURL(key) {
  return '/api/v1/kv/' + encodeKey(key);
}

export function members() {
  return call('GET', 'cluster/members');
}

export function shards() {
  return call('GET', 'cluster/shards');
}

// placementStatus is the admin view of placement: node states (alive,
// down, dead, draining, removed), moves in flight and whether rebalancing
// is paused. It needs admin; callers treat a refusal as "unknown".
export function placementStatus() {
  return call('GET', 'admin/status');
}
