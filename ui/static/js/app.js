// The shell of the web UI: hash routing between the views, the error
// banner, the toast and live refresh. Routes:
//
//   #/keys/                 the root of the key tree
//   #/keys/a/b/             the "folder" a/b/ (keys with prefix a/b/)
//   #/keys/a/b/c            the key a/b/c (no trailing slash)
//   #/nodes                 cluster members
//   #/shards                shard map
//
// Each path segment in a route is encoded with encodeURIComponent.

import { ApiError } from './api.js';
import { h, clock } from './util.js';
import { folderView, keyView } from './keys.js';
import { nodesView, shardsView } from './cluster.js';

const REFRESH_MS = 3000;

const view = document.getElementById('view');
const banner = document.getElementById('banner');
const bannerText = document.getElementById('banner-text');
const toastEl = document.getElementById('toast');
let cleanup = null;
let toastTimer = null;
let keepToast = false;

// ctx is what the views use of the shell.
const ctx = {
  // error shows err (an ApiError or any Error) in the banner.
  error(err, what) {
    let msg = err && err.message ? err.message : String(err);
    if (err instanceof ApiError && err.status) msg = `${msg} (HTTP ${err.status})`;
    bannerText.textContent = what ? `${what}: ${msg}` : msg;
    banner.hidden = false;
  },
  clearError() {
    banner.hidden = true;
    bannerText.textContent = '';
  },
  toast(msg) {
    toastEl.textContent = msg;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => ctx.hideToast(), 3500);
  },
  hideToast() {
    clearTimeout(toastTimer);
    toastEl.hidden = true;
  },
  // go opens another route, keeping the toast (it tells what led there).
  go(hash) {
    keepToast = true;
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  // live calls refresh now and then every REFRESH_MS after the previous
  // call ends, and keeps statusEl saying when the data was last updated.
  // It returns a function that stops it. refresh throws to report failure.
  live(statusEl, refresh) {
    let stopped = false;
    let timer = null;
    let last = null;
    const tick = async () => {
      if (stopped) return;
      if (!document.hidden) {
        statusEl.classList.add('busy');
        try {
          await refresh();
          if (stopped) return;
          last = new Date();
          statusEl.classList.remove('failed');
          statusEl.textContent = `Live · updated ${clock(last)}`;
          ctx.clearError();
        } catch (err) {
          if (stopped) return;
          statusEl.classList.add('failed');
          statusEl.textContent = `Update failed at ${clock(new Date())}` +
            (last ? ` · showing data from ${clock(last)}` : '') + ' · retrying';
          ctx.error(err);
        } finally {
          statusEl.classList.remove('busy');
        }
      }
      if (!stopped) timer = setTimeout(tick, REFRESH_MS);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  },
};

document.getElementById('banner-close').addEventListener('click', () => ctx.clearError());
document.getElementById('host').textContent = location.host;

// parse splits a hash into its route name and decoded argument.
function parse(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const slash = raw.indexOf('/');
  const name = slash < 0 ? raw : raw.slice(0, slash);
  const rest = slash < 0 ? '' : raw.slice(slash + 1);
  let arg;
  try {
    arg = rest.split('/').map(decodeURIComponent).join('/');
  } catch {
    arg = rest;
  }
  return { name, arg };
}

function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  ctx.clearError();
  if (!keepToast) ctx.hideToast();
  keepToast = false;
  const { name, arg } = parse(location.hash);
  if (name === '') {
    location.replace('#/keys/');
    return;
  }
  for (const a of document.querySelectorAll('.tabs a')) {
    a.classList.toggle('active', a.dataset.tab === name);
    if (a.classList.contains('active')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  view.replaceChildren();
  let title = 'cave';
  switch (name) {
    case 'keys':
      if (arg === '' || arg.endsWith('/')) {
        cleanup = folderView(view, arg, ctx);
        title = `${arg || 'Keys'} · cave`;
      } else {
        cleanup = keyView(view, arg, ctx);
        title = `${arg} · cave`;
      }
      break;
    case 'nodes':
      cleanup = nodesView(view, ctx);
      title = 'Nodes · cave';
      break;
    case 'shards':
      cleanup = shardsView(view, ctx);
      title = 'Shards · cave';
      break;
    default:
      view.append(h('section', { class: 'card empty' },
        h('h1', {}, 'Page not found'),
        h('p', {}, 'There is nothing at ', h('code', {}, location.hash), '. Go to ',
          h('a', { href: '#/keys/' }, 'Keys'), ', ', h('a', { href: '#/nodes' }, 'Nodes'), ' or ',
          h('a', { href: '#/shards' }, 'Shards'), '.')));
  }
  document.title = title;
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);
route();
