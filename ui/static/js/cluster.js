// The cluster views: Nodes (members with their state, placement state,
// addresses and the shards each leads) and Shards (each shard's leader,
// replicas, size and the move in flight). Both refresh themselves every
// few seconds while they are open. The placement state and the moves come
// from the admin status, which needs admin: without it they show as
// unknown.

import * as api from './api.js';
import { h, formatBytes, formatCount } from './util.js';

function pageHead(title, subtitle) {
  const status = h('span', { class: 'live', id: 'last-updated', role: 'status' }, 'Loading…');
  const head = h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), h('p', { class: 'muted' }, subtitle)),
    status);
  return { head, status };
}

function stateBadge(state) {
  const s = state || 'unknown';
  return h('span', { class: `badge state-${s}` }, s);
}

const shardName = (id) => (String(id) === '0' ? 'meta' : `shard ${id}`);

// cell is a table cell that shows its column name as a label when the
// table is stacked into cards on a narrow screen.
const cell = (label, ...children) => h('td', { 'data-label': label }, h('div', { class: 'cell' }, ...children));

export function nodesView(root, ctx) {
  const { head, status } = pageHead('Nodes', 'The members of the cluster as this node sees them.');
  const summary = h('div', { class: 'stats', id: 'nodes-summary' });
  const tbody = h('tbody', {});
  const table = h('table', { class: 'grid', id: 'nodes-table' },
    h('thead', {}, h('tr', {}, ['Node', 'State', 'Placement', 'Shards led', 'Replicas', 'HTTP', 'gRPC', 'Raft', 'Gossip']
      .map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  root.append(head, summary, h('section', { class: 'card table-card' }, table));

  async function refresh() {
    const [m, s, p] = await Promise.allSettled([api.members(), api.shards(), api.placementStatus()]);
    if (m.status === 'rejected') throw m.reason;
    const placed = new Map();
    for (const n of p.status === 'fulfilled' ? (p.value.nodes || []) : []) placed.set(n.name, n.state);
    const members = (m.value.members || []).slice().sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    const shards = s.status === 'fulfilled' ? (s.value.shards || []) : null;
    const led = new Map();
    const held = new Map();
    for (const sh of shards || []) {
      if (sh.leader) led.set(sh.leader, (led.get(sh.leader) || []).concat(shardName(sh.id)));
      for (const r of sh.replicas || []) held.set(r.node, (held.get(r.node) || 0) + 1);
    }
    const byState = {};
    for (const mem of members) byState[mem.state] = (byState[mem.state] || 0) + 1;
    summary.replaceChildren(
      stat(formatCount(members.length), members.length === 1 ? 'node' : 'nodes'),
      ...Object.keys(byState).sort().map((st) => stat(formatCount(byState[st]), st, `state-${st}`)),
      shards && stat(formatCount(shards.length), 'shards incl. meta'));
    tbody.replaceChildren(...members.map((mem) => {
      const leads = led.get(mem.name) || [];
      const self = mem.http_addr === location.host;
      return h('tr', { dataset: { node: mem.name } },
        cell('Node', h('strong', { class: 'node-name' }, mem.name), self && h('span', { class: 'tag' }, 'this node')),
        cell('State', stateBadge(mem.state)),
        cell('Placement', placed.has(mem.name) ? stateBadge(placed.get(mem.name)) : h('span', { class: 'muted' }, 'unknown')),
        cell('Shards led', shards
          ? h('span', { class: 'led', title: leads.join(', ') }, h('strong', {}, String(leads.length)),
            leads.length ? h('span', { class: 'muted' }, ` · ${leads.join(', ')}`) : null)
          : h('span', { class: 'muted' }, 'unknown')),
        cell('Replicas', shards ? String(held.get(mem.name) || 0) : '–'),
        cell('HTTP', addr(mem.http_addr, true)),
        cell('gRPC', addr(mem.grpc_addr)),
        cell('Raft', addr(mem.raft_addr)),
        cell('Gossip', addr(mem.gossip_addr)));
    }));
    if (!members.length) tbody.append(h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No members known yet.')));
    if (!shards) throw new Error(`Shards led are unknown: ${s.reason.message}`);
  }

  return ctx.live(status, refresh);
}

// moveCell shows a shard's move in flight: "add n4 (catch-up)".
function moveCell(mv, known) {
  if (!known) return h('span', { class: 'muted' }, 'unknown');
  if (!mv) return h('span', { class: 'muted' }, '–');
  return h('span', { class: 'move', title: mv.reason || '' }, `${mv.kind} ${mv.node}`, h('span', { class: 'muted' }, ` (${mv.step})`));
}

function addr(a, link) {
  if (!a) return h('span', { class: 'muted' }, '–');
  if (link) return h('a', { class: 'mono', href: `${location.protocol}//${a}/ui/`, title: `Open the UI of ${a}` }, a);
  return h('span', { class: 'mono' }, a);
}

function stat(value, label, cls) {
  return h('div', { class: `stat ${cls || ''}` }, h('span', { class: 'stat-value' }, value), h('span', { class: 'stat-label' }, label));
}

export function shardsView(root, ctx) {
  const { head, status } = pageHead('Shards', 'Every shard is a Raft group; the leader serves its writes and linearizable reads.');
  const summary = h('div', { class: 'stats', id: 'shards-summary' });
  const tbody = h('tbody', {});
  const table = h('table', { class: 'grid', id: 'shards-table' },
    h('thead', {}, h('tr', {}, ['Shard', 'Leader', 'Replicas', 'Keys', 'Size', 'Move'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  root.append(head, summary, h('section', { class: 'card table-card' }, table));

  async function refresh() {
    const [res, p] = await Promise.all([api.shards(), api.placementStatus().catch(() => null)]);
    const shards = (res.shards || []).slice().sort((a, b) => Number(a.id) - Number(b.id));
    const moves = new Map();
    for (const mv of p ? (p.moves || []) : []) moves.set(String(mv.shard_id), mv);
    let keys = 0;
    let bytes = 0;
    let leaderless = 0;
    for (const sh of shards) {
      if (String(sh.id) !== '0') {
        keys += Number(sh.keys || 0);
        bytes += Number(sh.bytes || 0);
      }
      if (!sh.leader) leaderless++;
    }
    summary.replaceChildren(
      stat(formatCount(shards.filter((sh) => String(sh.id) !== '0').length), 'data shards'),
      stat(formatCount(keys), 'keys'),
      stat(formatBytes(bytes), 'stored'),
      leaderless
        ? stat(formatCount(leaderless), leaderless === 1 ? 'shard without leader' : 'shards without leader', 'warn')
        : stat('✓', 'every shard has a leader', 'ok'));
    tbody.replaceChildren(...shards.map((sh) => {
      const replicas = (sh.replicas || []).slice().sort((a, b) => a.node.localeCompare(b.node, 'en', { numeric: true }));
      return h('tr', { dataset: { shard: String(sh.id) } },
        cell('Shard', h('strong', {}, String(sh.id)), String(sh.id) === '0' && h('span', { class: 'tag' }, 'meta')),
        cell('Leader', sh.leader ? h('span', { class: 'leader' }, sh.leader) : h('span', { class: 'badge state-failed' }, 'no leader')),
        cell('Replicas', h('span', { class: 'chips' }, replicas.map((r) => h('span', {
          class: `chip role-${r.role}${r.node === sh.leader ? ' is-leader' : ''}`,
          title: `replica ${r.replica_id} on ${r.node}: ${r.role}${r.node === sh.leader ? ', leader' : ''}`,
        }, r.node, h('span', { class: 'role' }, r.node === sh.leader ? 'leader' : r.role))))),
        cell('Keys', formatCount(sh.keys)),
        cell('Size', formatBytes(sh.bytes)),
        cell('Move', moveCell(moves.get(String(sh.id)), p !== null)));
    }));
    if (!shards.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No shards yet.')));
    if (p && p.paused) summary.append(stat('paused', 'rebalancing', 'warn'));
  }

  return ctx.live(status, refresh);
}
