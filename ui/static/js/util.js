// Small helpers shared by the views. Everything that shows data from the
// API goes through h(), which sets text, never HTML, so a key or value can
// never inject markup.

// h builds an element: h('a', {href: '#', class: 'x', onclick: fn}, 'text', child).
// Attributes that are null, undefined or false are left out.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value') {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// formatBytes writes a byte count for people: 0 B, 512 B, 1.5 KiB, 3.2 MiB.
export function formatBytes(n) {
  n = Number(n || 0);
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let u = -1;
  do {
    n /= 1024;
    u++;
  } while (n >= 1024 && u < units.length - 1);
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[u]}`;
}

// formatCount writes 1234567 as 1,234,567.
export function formatCount(n) {
  return Number(n || 0).toLocaleString('en-US');
}

// plural: plural(1, 'key') = '1 key', plural(3, 'key') = '3 keys'.
export function plural(n, word, words) {
  return `${formatCount(n)} ${Number(n) === 1 ? word : (words || word + 's')}`;
}

// base64ToBytes decodes the API's base64 (standard alphabet, padded).
export function base64ToBytes(b64) {
  const bin = atob(b64 || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// asText returns bytes as a string when they are valid UTF-8 without
// control characters other than tab, newline and carriage return, else null.
export function asText(bytes) {
  let s;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/.test(s)) return null;
  return s;
}

// hexDump formats bytes like `xxd`: offset, 16 bytes in hex, printable ASCII.
export function hexDump(bytes, max) {
  const n = Math.min(bytes.length, max);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, n));
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i].toString(16).padStart(2, '0');
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
      } else {
        hex += '  ';
      }
      hex += i === 7 ? '  ' : ' ';
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} ${ascii}`);
  }
  return lines.join('\n');
}

// clock writes a Date as HH:MM:SS in the viewer's time zone.
export function clock(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
