// The key browser: folders (keys grouped by the next path segment under a
// prefix, loaded a page at a time) and the view of one key, with create,
// edit (optionally compare-and-swap) and delete. Secret values (README
// "Secret values") are recognised by their envelope, shown hidden and
// revealed only on request; create and edit can write a value as a secret.

import * as api from './api.js';
import { h, formatBytes, formatCount, plural, base64ToBytes, asText, hexDump } from './util.js';

const PAGE_SIZE = 200;
// A page that makes only a few rows (most keys in one folder) is followed
// by the next one, up to AUTO_PAGES pages, so the top of the tree shows its
// folders without clicks; a big folder still loads a page per click.
const AUTO_ROWS = 30;
const AUTO_PAGES = 5;
const HEX_MAX = 4096; // bytes shown in a hex dump
const TEXT_MAX = 256 * 1024; // characters shown before "show all"

// keyHash is the route of a key; folderHash the route of a prefix ending in "/".
export const keyHash = (key) => '#/keys/' + api.encodeKey(key);
export const folderHash = (prefix) => (prefix ? '#/keys/' + api.encodeKey(prefix.replace(/\/$/, '')) + '/' : '#/keys/');

// breadcrumb links every folder above path; the last segment is plain
// text when path is a key.
function breadcrumb(path, isKey) {
  const segs = path.split('/').filter((s, i, all) => s !== '' || i < all.length - 1);
  const parts = [h('a', { href: '#/keys/', class: 'crumb root' }, 'keys')];
  let acc = '';
  segs.forEach((seg, i) => {
    acc += seg;
    const last = i === segs.length - 1;
    parts.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'));
    if (last && isKey) {
      parts.push(h('span', { class: 'crumb current', 'aria-current': 'page' }, seg));
    } else if (last) {
      parts.push(h('a', { href: folderHash(acc + '/'), class: 'crumb current', 'aria-current': 'page' }, seg));
    } else {
      parts.push(h('a', { href: folderHash(acc + '/'), class: 'crumb' }, seg));
    }
    acc += '/';
  });
  return h('nav', { class: 'breadcrumb', 'aria-label': 'Key path', id: 'breadcrumb' }, parts);
}

// group turns listed items under prefix into folders and keys, in order.
// The group of the last item may continue on the next page.
function group(prefix, items) {
  const rows = [];
  const folders = new Map();
  for (const it of items) {
    const rest = it.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) {
      rows.push({ kind: 'key', name: rest, key: it.key, size: it.size, rev: it.mod_revision });
      continue;
    }
    const name = rest.slice(0, slash);
    let f = folders.get(name);
    if (!f) {
      f = { kind: 'folder', name, prefix: prefix + name + '/', count: 0, bytes: 0 };
      folders.set(name, f);
      rows.push(f);
    }
    f.count++;
    f.bytes += Number(it.size || 0);
  }
  return rows;
}

const icon = (kind) => h('span', { class: `icon icon-${kind}`, 'aria-hidden': 'true' });

// folderView lists the keys under prefix ("" or ending in "/").
export function folderView(root, prefix, ctx) {
  let items = [];
  let token = '';
  let loaded = false;
  let busy = false;
  let gone = false;

  const list = h('ul', { class: 'rows', id: 'key-list' });
  const summary = h('p', { class: 'muted summary', id: 'list-summary' }, 'Loading…');
  const more = h('button', { type: 'button', class: 'btn', id: 'load-more', hidden: true, onclick: () => load(false) },
    `Load more`);
  const createCard = createForm(prefix, ctx);
  createCard.hidden = true;

  root.append(
    h('div', { class: 'page-head' },
      breadcrumb(prefix, false),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn primary', id: 'new-key', onclick: () => {
          createCard.hidden = !createCard.hidden;
          if (!createCard.hidden) createCard.querySelector('input').focus();
        } }, '+ New key'),
        h('button', { type: 'button', class: 'btn', id: 'refresh', onclick: () => load(true) }, 'Refresh'))),
    createCard,
    h('section', { class: 'card list-card' }, summary, list, h('div', { class: 'more' }, more)));

  function draw() {
    const rows = group(prefix, items);
    const nodes = rows.map((r, i) => {
      const partial = token && i === rows.length - 1;
      if (r.kind === 'folder') {
        return h('li', {},
          h('a', { href: folderHash(r.prefix), class: 'row folder', dataset: { name: r.name } },
            icon('folder'),
            h('span', { class: 'name' }, r.name, h('span', { class: 'slash' }, '/')),
            h('span', { class: 'meta' }, `${formatCount(r.count)}${partial ? '+' : ''} ${r.count === 1 && !partial ? 'key' : 'keys'}`),
            h('span', { class: 'meta size' }, formatBytes(r.bytes) + (partial ? '+' : ''))));
      }
      return h('li', {},
        h('a', { href: keyHash(r.key), class: 'row key', dataset: { name: r.name } },
          icon('key'),
          h('span', { class: 'name' }, r.name),
          h('span', { class: 'meta' }, `rev ${r.rev}`),
          h('span', { class: 'meta size' }, formatBytes(r.size))));
    });
    list.replaceChildren(...nodes);
    const folders = rows.filter((r) => r.kind === 'folder').length;
    const keys = rows.length - folders;
    if (!items.length) {
      summary.textContent = prefix ? `No keys under ${prefix}.` : 'The database has no keys yet. Create one with “New key”.';
    } else {
      let text = [folders && plural(folders, 'folder'), keys && plural(keys, 'key')].filter(Boolean).join(' and ');
      if (token && !folders) text = `First ${formatCount(items.length)} keys · “Load more” at the bottom for the rest`;
      else if (token) text += ` · first ${formatCount(items.length)} keys under ${prefix || 'the root'} loaded`;
      else if (folders) text += ` · ${plural(items.length, 'key')} under ${prefix || 'the root'} in all`;
      summary.textContent = text;
    }
    more.hidden = !token;
    more.textContent = `Load more (next ${PAGE_SIZE} keys)`;
    root.querySelector('.list-card').classList.toggle('empty-list', !items.length);
    return rows.length;
  }

  // load fetches the first page (reset) or the next one, and goes on by
  // itself while the pages make only a few rows.
  async function load(reset) {
    if (busy) return;
    busy = true;
    more.disabled = true;
    if (reset) {
      items = [];
      token = '';
    }
    try {
      for (let pages = 1; ; pages++) {
        const page = await api.listKeys(prefix, PAGE_SIZE, token);
        if (gone) return;
        items = items.concat(page.items || []);
        token = page.next_page_token || '';
        loaded = true;
        ctx.clearError();
        const rows = draw();
        if (!token || rows >= AUTO_ROWS || pages >= AUTO_PAGES) break;
      }
    } catch (err) {
      if (gone) return;
      if (!loaded) summary.textContent = 'Could not list the keys.';
      ctx.error(err, `Listing keys under "${prefix}"`);
    } finally {
      busy = false;
      more.disabled = false;
    }
  }

  load(true);
  return () => { gone = true; };
}

// keyProblem says why key is not a valid key, or returns "".
function keyProblem(key) {
  if (!key) return 'Enter a key.';
  if (new TextEncoder().encode(key).length > 1024) return 'Keys are at most 1024 bytes.';
  for (const seg of key.split('/')) {
    if (seg === '') return 'A key has no empty segment: no leading, trailing or double slash.';
    if (seg === '.' || seg === '..') return 'A key has no "." or ".." segment.';
  }
  return '';
}

// createForm is the "New key" card: it creates a key only if it does not
// exist yet (prev_revision=0), as a secret when its box is ticked.
function createForm(prefix, ctx) {
  const keyInput = h('input', { type: 'text', id: 'new-key-name', value: prefix, required: true, autocomplete: 'off',
    spellcheck: 'false', placeholder: 'path/to/key', 'aria-label': 'Key' });
  const valueInput = h('textarea', { id: 'new-key-value', rows: 6, spellcheck: 'false', placeholder: 'Value (text)',
    'aria-label': 'Value' });
  const secretBox = h('input', { type: 'checkbox', id: 'new-key-secret' });
  const note = h('p', { class: 'form-note', id: 'new-key-note', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'create' }, 'Create');
  const form = h('form', { class: 'card form', id: 'create-form', onsubmit: async (e) => {
    e.preventDefault();
    const key = keyInput.value.trim();
    const problem = keyProblem(key);
    note.hidden = !problem;
    note.textContent = problem;
    if (problem) return;
    submit.disabled = true;
    try {
      const secret = secretBox.checked;
      const res = await api.putKey(key, valueInput.value, '0', secret);
      ctx.toast(`Created ${secret ? 'secret ' : ''}${key} at revision ${res.revision}`);
      ctx.go(keyHash(key));
    } catch (err) {
      if (err.status === 412) {
        note.replaceChildren('A key named ', h('a', { href: keyHash(key) }, key),
          ' already exists. Open it to edit its value.');
        note.hidden = false;
      } else {
        ctx.error(err, `Creating ${key}`);
      }
    } finally {
      submit.disabled = false;
    }
  } },
  h('h2', {}, 'New key'),
  h('label', { for: 'new-key-name' }, 'Key'), keyInput,
  h('label', { for: 'new-key-value' }, 'Value'), valueInput,
  secretCheck(secretBox),
  note,
  h('div', { class: 'actions' }, submit,
    h('button', { type: 'button', class: 'btn', onclick: () => { form.hidden = true; } }, 'Cancel')));
  return form;
}

// secretCheck is the labelled "Secret" checkbox of the create and edit
// forms.
function secretCheck(box) {
  return h('label', { class: 'check', for: box.id }, box,
    h('span', {}, h('strong', {}, 'Secret'), ': encrypt the value at rest; it is shown only on request'));
}

// valueDisplay shows bytes as text or a hex dump, with a note when only
// part of them is shown or they are empty.
function valueDisplay(bytes) {
  const text = asText(bytes);
  const box = text !== null
    ? h('pre', { class: 'value text', id: 'value' }, text.length > TEXT_MAX ? text.slice(0, TEXT_MAX) : text)
    : h('pre', { class: 'value hex', id: 'value' }, hexDump(bytes, HEX_MAX));
  let note = null;
  if (text !== null && text.length > TEXT_MAX) {
    note = `Showing the first ${formatCount(TEXT_MAX)} of ${formatCount(text.length)} characters. Download the value to see all of it.`;
  } else if (text === null && bytes.length > HEX_MAX) {
    note = `Showing the first ${formatBytes(HEX_MAX)} of ${formatBytes(bytes.length)}. Download the value to see all of it.`;
  } else if (bytes.length === 0) {
    note = 'The value is empty.';
  }
  return note ? [box, h('p', { class: 'muted' }, note)] : [box];
}

// keyView shows one key: its value as text or a hex dump, its revisions,
// and the edit and delete actions. A secret (its stored bytes are an
// envelope, api.isEnvelope) is shown hidden with a lock badge; Reveal and
// Edit read its plaintext with secret=true, and the plaintext is dropped
// again by Hide, Cancel or any reload.
export function keyView(root, key, ctx) {
  let gone = false;
  const parent = key.includes('/') ? key.slice(0, key.lastIndexOf('/') + 1) : '';
  const body = h('div', { id: 'key-body' }, h('section', { class: 'card' }, h('p', { class: 'muted' }, 'Loading…')));
  root.append(h('div', { class: 'page-head' }, breadcrumb(key, true)), body);

  async function load() {
    let kv;
    try {
      kv = await api.getKey(key);
    } catch (err) {
      if (gone) return;
      if (err.status === 404) {
        body.replaceChildren(h('section', { class: 'card empty', id: 'not-found' },
          h('h1', {}, 'Key not found'),
          h('p', {}, 'There is no key ', h('code', {}, key), '. It may have been deleted. ',
            h('a', { href: folderHash(parent) }, `Back to ${parent || 'the root'}`))));
        return;
      }
      body.replaceChildren(h('section', { class: 'card empty' }, h('p', {}, 'Could not read this key. '),
        h('button', { type: 'button', class: 'btn', onclick: load }, 'Try again')));
      ctx.error(err, `Reading ${key}`);
      return;
    }
    if (!gone) show(kv);
  }

  function show(kv) {
    const stored = base64ToBytes(kv.value);
    const secret = api.isEnvelope(stored);
    const rev = kv.mod_revision;
    // The plaintext of a secret once revealed; null while hidden.
    let plain = null;

    // A secret's size is its plaintext's: the envelope adds a fixed overhead.
    const size = secret ? stored.length - api.ENVELOPE_OVERHEAD : stored.length;
    const text = secret ? null : asText(stored);
    const meta = h('dl', { class: 'meta-grid', id: 'key-meta' },
      h('div', {}, h('dt', {}, 'Size'), h('dd', { id: 'meta-size' }, `${formatBytes(size)}` +
        (size >= 1024 ? ` (${formatCount(size)} B)` : ''))),
      h('div', {}, h('dt', {}, 'Content'), h('dd', { id: 'meta-content' },
        secret ? 'Secret (AES-256-GCM)' : text !== null ? 'Text (UTF-8)' : 'Binary')),
      h('div', {}, h('dt', {}, 'Version'), h('dd', { id: 'meta-version' }, kv.version)),
      h('div', {}, h('dt', {}, 'Modified at revision'), h('dd', { id: 'meta-mod-revision' }, rev)),
      h('div', {}, h('dt', {}, 'Created at revision'), h('dd', {}, kv.create_revision)));

    const hiddenBox = () => h('div', { class: 'value secret-hidden', id: 'secret-hidden' },
      icon('lock'), h('span', {}, 'secret value — encrypted at rest'));
    const valueArea = h('div', { id: 'value-area' }, secret ? hiddenBox() : valueDisplay(stored));
    const reveal = h('button', { type: 'button', class: 'btn', id: 'reveal', onclick: async () => {
      reveal.disabled = true;
      try {
        if (await readPlain()) {
          valueArea.replaceChildren(...valueDisplay(plain));
          reveal.hidden = true;
          hide.hidden = false;
        }
      } finally {
        reveal.disabled = false;
      }
    } }, 'Reveal');
    const hide = h('button', { type: 'button', class: 'btn', id: 'hide', hidden: true, onclick: () => {
      plain = null;
      valueArea.replaceChildren(hiddenBox());
      hide.hidden = true;
      reveal.hidden = false;
    } }, 'Hide');

    const viewCard = h('section', { class: 'card', id: 'view-card' },
      h('div', { class: 'card-head' },
        h('div', { class: 'title-line' },
          h('h1', { class: 'key-name', id: 'key-name' }, key.slice(parent.length)),
          secret && h('span', { class: 'badge secret-badge', id: 'secret-badge', title: 'Encrypted at rest' },
            icon('lock'), 'Secret')),
        h('div', { class: 'actions' },
          secret && reveal, secret && hide,
          h('button', { type: 'button', class: 'btn primary', id: 'edit', onclick: () => startEdit() },
            secret || text !== null ? 'Edit' : 'Replace'),
          h('a', { class: 'btn', href: api.rawURL(key), download: key.slice(parent.length), id: 'download',
            title: secret ? 'The stored bytes: the encrypted envelope' : null }, 'Download'),
          h('button', { type: 'button', class: 'btn', id: 'reload', onclick: load }, 'Reload'),
          h('button', { type: 'button', class: 'btn danger', id: 'delete', onclick: () => remove() }, 'Delete'))),
      meta,
      valueArea);
    body.replaceChildren(viewCard);

    // readPlain reads the plaintext of the secret into plain and says
    // whether it did. A failure goes to the banner; a key that changed
    // since this view loaded is loaded again instead, so that what is
    // shown and edited stays the value at revision rev.
    async function readPlain() {
      let res;
      try {
        res = await api.getKey(key, true);
      } catch (err) {
        if (!gone) ctx.error(err, `Revealing ${key}`);
        return false;
      }
      if (gone) return false;
      if (res.mod_revision !== rev) {
        ctx.toast(`${key} changed after revision ${rev}: showing its current state`);
        load();
        return false;
      }
      ctx.clearError();
      plain = base64ToBytes(res.value);
      return true;
    }

    async function startEdit() {
      if (!secret) {
        edit(stored);
        return;
      }
      if (plain === null && !(await readPlain())) return;
      edit(plain);
    }

    // edit replaces the view with the editor of current, the value at
    // revision rev (a secret's plaintext).
    function edit(current) {
      const currentText = asText(current);
      const editor = h('textarea', { id: 'editor', rows: 12, spellcheck: 'false', 'aria-label': 'New value' });
      editor.value = currentText !== null ? currentText : '';
      const cas = h('input', { type: 'checkbox', id: 'cas', checked: true });
      const secretBox = h('input', { type: 'checkbox', id: 'edit-secret', checked: secret });
      const plainNote = h('p', { class: 'form-note', id: 'plain-note', hidden: true },
        'Saving without “Secret” stores the value unencrypted: every reader of the key sees it.');
      secretBox.addEventListener('change', () => { plainNote.hidden = !secret || secretBox.checked; });
      const conflict = h('div', { class: 'conflict', id: 'conflict', role: 'alert', hidden: true });
      const save = h('button', { type: 'submit', class: 'btn primary', id: 'save' }, 'Save');
      const form = h('form', { class: 'card form', id: 'edit-form', onsubmit: async (e) => {
        e.preventDefault();
        save.disabled = true;
        conflict.hidden = true;
        try {
          const res = await api.putKey(key, editor.value, cas.checked ? rev : undefined, secretBox.checked);
          ctx.toast(`Saved ${key} at revision ${res.revision}`);
          load();
        } catch (err) {
          if (err.status === 412) {
            conflict.replaceChildren(
              h('strong', {}, 'Not saved: the key changed. '),
              `Someone else wrote or deleted ${key} after revision ${rev}, the one you were editing. ` +
              'Your text is kept in the editor above: reload to see the current value, or untick the revision check to overwrite it.',
              h('span', { class: 'server-msg' }, `Server: ${err.message}`),
              h('button', { type: 'button', class: 'btn', id: 'conflict-reload', onclick: load }, 'Reload current value'));
            conflict.hidden = false;
          } else {
            ctx.error(err, `Saving ${key}`);
          }
        } finally {
          save.disabled = false;
        }
      } },
      h('div', { class: 'card-head' }, h('h2', {}, `Edit ${key.slice(parent.length)}`)),
      currentText === null && h('p', { class: 'form-note' }, 'The current value is binary. Saving replaces it with the text below.'),
      editor,
      secretCheck(secretBox),
      plainNote,
      h('label', { class: 'check', for: 'cas' }, cas,
        h('span', {}, `Only save if nobody has changed the key since revision ${rev} (compare-and-swap)`)),
      conflict,
      h('div', { class: 'actions' }, save,
        h('button', { type: 'button', class: 'btn', id: 'cancel', onclick: () => show(kv) }, 'Cancel')));
      body.replaceChildren(form);
      ctx.hideToast();
      editor.focus();
    }

    async function remove() {
      if (!window.confirm(`Delete the key "${key}"?\n\nThis cannot be undone.`)) return;
      try {
        await api.deleteKey(key, rev);
        ctx.toast(`Deleted ${key}`);
        ctx.go(folderHash(parent));
      } catch (err) {
        if (err.status === 412) {
          ctx.error(new Error(`Not deleted: ${key} changed after revision ${rev}. Reload to see the current value, then delete again. (${err.message})`));
        } else if (err.status === 404) {
          ctx.toast(`${key} was already deleted`);
          ctx.go(folderHash(parent));
        } else {
          ctx.error(err, `Deleting ${key}`);
        }
      }
    }
  }

  load();
  return () => { gone = true; };
}
