// DEVELOPMENT ONLY: a small stand-in for `scisearch serve` (docs/api.md, API v1) so the pages can be
// written before the server lands. Never used by the tests (tests/web/run.sh starts the real server).
// It answers from a data directory through the CLI (`scisearch search/show --json`) and sqlite3.
//   node tests/web/mock_api.mjs BINARY DATA_DIR PORT
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const [bin, dataDir, port] = process.argv.slice(2);
const webRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../web');
const db = path.join(dataDir, 'catalog.sqlite');
const sql = (q) => JSON.parse(execFileSync('sqlite3', ['-json', db, q]).toString() || '[]');
const lit = (s) => "'" + String(s).replace(/'/g, "''") + "'";
const cli = (args) => JSON.parse(execFileSync(bin, [...args, '--data-dir', dataDir]).toString());
let queryCounter = 0;

function fixHits(hits) {
  for (const h of hits) if (h.thumbnail) h.thumbnail = h.thumbnail.replace('/api/', '/api/v1/');
  return hits;
}
function dataset(id) {
  const [d] = sql(`select * from datasets where id=${Number(id)}`);
  if (!d) return null;
  const show = cli(['show', '--json', `dataset:${id}`]);
  const tags = sql(`select id,value,source,confidence,state,evidence,validated_by,validated_at from tags where dataset_id=${d.id} order by state, confidence desc`);
  const signals = sql(`select s.idx as "index",name,dtype,shape,axes,(select count(*) from thumbnails t where t.dataset_id=s.dataset_id and t.signal_idx=s.idx) as th from signals s where dataset_id=${d.id} order by idx`)
    .map((s) => ({ index: s.index, name: s.name, dtype: s.dtype, shape: JSON.parse(s.shape), axes: JSON.parse(s.axes),
      thumbnail: s.th ? `/api/v1/datasets/${d.id}/thumbnail?signal=${s.index}` : null }));
  const similar = fixHits(cli(['search', '--json', '--like', `dataset:${id}`, '-n', '6']).hits);
  return { id: `dataset:${d.id}`, path: d.path, name: path.basename(d.path), folder: path.dirname(d.path), format: d.format,
    state: d.state, size_bytes: d.size_bytes, acquired: d.acquired, instrument: d.instrument, mode: d.mode,
    beam_energy_kev: d.beam_energy_kev, magnification: d.magnification, pixel_size: d.pixel_size,
    pixel_size_units: d.pixel_size_units, detector: d.detector, embargo_until: d.embargo_until,
    files: sql(`select path,size from dataset_files where dataset_id=${d.id}`), signals, tags,
    links: (show.links || []).map((l) => ({ ...l, title: l.id })), similar,
    download: `/api/v1/datasets/${d.id}/download` };
}
function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'Content-Type': type });
  res.end(type === 'application/json' && body !== undefined ? JSON.stringify(body) : body);
}
const fail = (res, status, message) => send(res, status, { error: { status, message } });
const tagRow = (id) => sql(`select id,value,source,confidence,state,evidence,validated_by,validated_at from tags where id=${Number(id)}`)[0];

async function api(req, res, url) {
  const p = url.pathname.replace('/api/v1', '');
  const qp = url.searchParams;
  let body = {};
  if (req.method === 'POST') {
    let raw = ''; for await (const c of req) raw += c;
    try { body = raw ? JSON.parse(raw) : {}; } catch { return fail(res, 400, 'body is not JSON'); }
  }
  let m;
  if (p === '/health') return send(res, 200, { status: 'ok', datasets: 150, documents: 0, version: 'mock' });
  if (p === '/search') {
    const t0 = Date.now();
    let q = qp.get('q') || '';
    for (const f of qp.getAll('f')) { const i = f.indexOf(':'); q += ` ${f.slice(0, i)}:"${f.slice(i + 1)}"`; }
    const args = ['search', '--json', '-n', qp.get('limit') || '10', '--offset', qp.get('offset') || '0', '--sort', qp.get('sort') || 'relevance'];
    if (qp.get('kind')) args.push('--kind', qp.get('kind'));
    let r; try { r = cli([...args, q.trim() || '*']); } catch (e) { return fail(res, 400, 'bad query'); }
    fixHits(r.hits); r.suggestion = r.corrected; r.query = qp.get('q') || ''; r.query_id = `q${++queryCounter}`; r.took_ms = Date.now() - t0;
    return send(res, 200, r);
  }
  if ((m = p.match(/^\/datasets\/(\d+)$/))) { const d = dataset(m[1]); return d ? send(res, 200, d) : fail(res, 404, 'no such dataset'); }
  if ((m = p.match(/^\/datasets\/(\d+)\/metadata$/))) {
    const sig = Number(qp.get('signal') || 0);
    return send(res, 200, { signal: sig, entries: sql(`select key_path as key, value_type as type, value from metadata_entries e join signals s on s.id=e.signal_id where e.dataset_id=${Number(m[1])} and s.idx=${sig}`) });
  }
  if ((m = p.match(/^\/datasets\/(\d+)\/thumbnail$/))) {
    const [r] = sql(`select hex(png) as h from thumbnails where dataset_id=${Number(m[1])} and signal_idx=${Number(qp.get('signal') || 0)}`);
    return r ? send(res, 200, Buffer.from(r.h, 'hex'), 'image/png') : fail(res, 404, 'no thumbnail');
  }
  if ((m = p.match(/^\/datasets\/(\d+)\/tags$/)) && req.method === 'POST') {
    sql(`insert into tags(dataset_id,value,source,confidence,created_at,created_by,state) values(${Number(m[1])},${lit(body.value)},'expert',1,datetime('now'),${lit(body.user)},'accepted') on conflict do update set state='accepted'`);
    const [t] = sql(`select id from tags where dataset_id=${Number(m[1])} and value=${lit(body.value)} and source='expert'`);
    return send(res, 201, tagRow(t.id));
  }
  if ((m = p.match(/^\/tags\/(\d+)\/(accept|reject)$/))) {
    sql(`update tags set state=${lit(m[2] === 'accept' ? 'accepted' : 'rejected')}, validated_by=${lit(body.user)}, validated_at=datetime('now') where id=${m[1]}`);
    return send(res, 200, tagRow(m[1]));
  }
  if ((m = p.match(/^\/tags\/(\d+)$/)) && req.method === 'DELETE') {
    sql(`delete from tags where id=${m[1]} and source='expert'; update tags set state='rejected', validated_by=${lit(qp.get('user'))} where id=${m[1]}`);
    res.writeHead(204); return res.end();
  }
  if (p === '/tagging/next') {
    const all = sql(`select id,path from datasets where state='ok' order by path`);
    let i = 0;
    if (qp.get('order') === 'random') i = Math.floor(Math.random() * all.length);
    else if (qp.get('after')) { const a = all.findIndex((d) => `${d.id}` === qp.get('after').replace('dataset:', '')); i = (a + 1) % all.length; }
    const [c] = sql(`select count(distinct dataset_id) as n from tags where created_by=${lit(qp.get('user') || '')} or validated_by=${lit(qp.get('user') || '')}`);
    return send(res, 200, { dataset: dataset(all[i].id), position: i + 1, total: all.length, tagged_by_user: c.n });
  }
  if (p === '/vocabulary') {
    const rows = sql(`select distinct value as label, 'tag' as kind from tags where value like ${lit((qp.get('prefix') || '') + '%')} order by value limit ${Number(qp.get('limit') || 10)}`);
    return send(res, 200, { suggestions: rows });
  }
  if (p === '/clicks' && req.method === 'POST') { console.log('click', body); res.writeHead(204); return res.end(); }
  return fail(res, 404, 'no such endpoint');
}

const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  try {
    if (url.pathname.startsWith('/api/v1/')) return await api(req, res, url);
    const file = path.join(webRoot, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
    if (!file.startsWith(webRoot) || !fs.existsSync(file)) return fail(res, 404, 'not found');
    send(res, 200, fs.readFileSync(file), types[path.extname(file)] || 'application/octet-stream');
  } catch (e) { console.error(e); fail(res, 500, String(e.message).slice(0, 200)); }
}).listen(Number(port), '127.0.0.1', () => console.log(`mock on http://127.0.0.1:${port}`));
