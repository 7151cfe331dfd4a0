// Browser tests of the web UI (issue 6): Debian's chromium, headless, driven by playwright-core,
// against a real `scisearch serve` that tests/web/run.sh starts on a catalog it builds.
//   SCISEARCH_URL=http://127.0.0.1:PORT SCISEARCH_DATA_DIR=T/data node --test tests/web/ui.test.mjs
// Optional: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default docs/screenshots).
// The tests run in order and share one browser page: search -> facet -> detail -> tagging.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const baseUrl = process.env.SCISEARCH_URL;
const dataDir = process.env.SCISEARCH_DATA_DIR;
const screenshotDir = process.env.SCREENSHOT_DIR || path.join(root, 'docs/screenshots');
const user = 'web-test.user';
assert.ok(baseUrl, 'SCISEARCH_URL must name the server under test (tests/web/run.sh sets it)');

let browser;
let context;
let page;
const pageErrors = [];
const dialogs = [];

async function apiGet(p) {
  const response = await fetch(new URL(p, baseUrl));
  assert.equal(response.status, 200, `GET ${p} answered ${response.status}`);
  return response.json();
}

async function apiPost(p, body) {
  const response = await fetch(new URL(p, baseUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `POST ${p} answered ${response.status}: ${await response.clone().text()}`);
  return response.json();
}

// Rows of the catalog itself (sqlite3 -json), when the sqlite3 shell is installed; else null.
function catalogRows(sql) {
  if (!dataDir) return null;
  try {
    const out = execFileSync('sqlite3', ['-json', path.join(dataDir, 'catalog.sqlite'), sql]).toString();
    return out.trim() ? JSON.parse(out) : [];
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
}

async function screenshot(name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: false });
}

const datasetIdFromUrl = (url) => new URL(url).searchParams.get('id');

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
  context = await browser.newContext({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.setDefaultTimeout(10000);
});

after(async () => {
  await browser?.close();
});

test('search from the box: results with title, path, snippet; the query is in the URL', async () => {
  await page.goto(baseUrl);
  const box = page.getByLabel('Search datasets, proposals and publications');
  await box.fill('haadf');
  await box.press('Enter');
  await page.waitForURL(/[?&]q=haadf/);
  const results = page.locator('#results > li.result');
  await results.first().waitFor();
  const api = await apiGet('/api/v1/search?q=haadf&limit=10');
  assert.ok(api.total > 0, 'the catalog has HAADF datasets');
  assert.equal(await results.count(), Math.min(10, api.hits.length));
  assert.match(await page.locator('#results-meta').textContent(), new RegExp(`${api.total.toLocaleString('en')} results? \\(`));
  const first = results.first();
  assert.equal((await first.locator('.result-path').textContent()).trim(), api.hits[0].path);
  assert.ok((await first.locator('.result-title').textContent()).includes(api.hits[0].title));
  // The snippet's matches are marked, and rebuilt as elements rather than parsed HTML.
  assert.ok(await page.locator('#results .snippet mark').count() > 0, 'matches are highlighted in snippets');
  const thumb = first.locator('img.thumb');
  await thumb.evaluate((img) => img.decode().catch(() => {}));
  assert.ok(await thumb.evaluate((img) => img.naturalWidth > 0), 'the thumbnail loads');
  // Reloading the URL gives the same search (a search can be shared).
  await page.reload();
  await results.first().waitFor();
  assert.equal(await page.locator('#q').inputValue(), 'haadf');
});

test('a facet narrows the results (f=field:value in the URL) and Back undoes it', async () => {
  const countOf = (text) => text.split(' (')[0];  // "41 results (0.8 ms)" -> "41 results"
  const before = countOf(await page.locator('#results-meta').textContent());
  const toggle = page.locator('#facets button.facet-toggle[data-filter^="mode:"]').first();
  const filter = await toggle.getAttribute('data-filter');
  const value = filter.slice('mode:'.length);
  await toggle.click();
  await page.waitForURL((url) => new URL(url).searchParams.getAll('f').includes(filter));
  const pressed = page.locator(`#facets button.facet-toggle[data-filter="${filter}"]`);
  await page.waitForFunction((f) => document.querySelector(`button.facet-toggle[data-filter="${CSS.escape(f)}"]`)?.getAttribute('aria-pressed') === 'true', filter);
  const api = await apiGet(`/api/v1/search?q=haadf&limit=10&f=${encodeURIComponent(filter)}`);
  await page.waitForFunction((total) => document.querySelector('#results-meta').textContent.startsWith(`${total.toLocaleString('en')} result`), api.total);
  assert.ok(api.total > 0);
  for (const hit of api.hits.filter((h) => h.kind === 'dataset')) {
    assert.ok(hit.summary.includes(value), `"${hit.summary}" is in mode ${value}`);
  }
  assert.ok(await page.getByRole('button', { name: new RegExp(`Remove filter Mode: ${value}`) }).isVisible());
  await screenshot('search');
  await page.goBack();
  await page.waitForURL((url) => new URL(url).searchParams.getAll('f').length === 0);
  await page.waitForFunction((text) => document.querySelector('#results-meta').textContent.split(' (')[0] === text, before);
  assert.equal(await pressed.getAttribute('aria-pressed'), 'false');
});

test('opening a result logs the click and shows the detail: image with zoom, metadata, tags, links', async () => {
  const firstLink = page.locator('#results > li.result a.result-link').first();
  const title = (await firstLink.textContent()).trim();
  const click = page.waitForRequest((req) => req.url().endsWith('/api/v1/clicks') && req.method() === 'POST');
  await firstLink.click();
  const clickBody = (await click).postDataJSON();
  assert.ok(clickBody.query_id, 'the click names its query');
  assert.equal(clickBody.rank, 1);
  await page.waitForURL(/dataset\.html\?id=\d+/);
  const id = datasetIdFromUrl(page.url());
  await page.locator('#dataset').waitFor();
  assert.ok(title.startsWith((await page.locator('#dataset-name').textContent()).trim()));
  const detail = await apiGet(`/api/v1/datasets/${id}`);
  assert.equal(await page.locator('#dataset-path').textContent(), detail.path);

  const image = page.locator('.viewer-image');
  await page.waitForFunction(() => document.querySelector('.viewer-image')?.naturalWidth > 0);
  const zoom = page.locator('.viewer-zoom');
  const fitted = await zoom.textContent();
  await page.getByRole('button', { name: 'Zoom in (+)' }).click();
  assert.notEqual(await zoom.textContent(), fitted, 'zoom in changes the scale');
  await page.locator('.viewer-stage').focus();
  await page.keyboard.press('0');
  assert.equal(await zoom.textContent(), fitted, '0 fits again');
  await image.hover();
  await page.mouse.wheel(0, -300);
  assert.notEqual(await zoom.textContent(), fitted, 'the wheel zooms');

  const rows = page.locator('#metadata tbody tr');
  await rows.first().waitFor();
  const all = await rows.count();
  assert.ok(all > 3, 'the metadata table is filled');
  const firstKey = (await rows.first().locator('th').textContent()).trim();
  await page.getByLabel('Filter metadata').fill(firstKey);
  const visible = await page.locator('#metadata tbody tr:not([hidden])').count();
  assert.ok(visible >= 1 && visible <= all, 'the filter keeps matching rows');
  await page.getByLabel('Filter metadata').fill('');

  assert.equal(await page.locator('#tags tbody tr').count(), detail.tags.length);
  assert.equal(await page.locator('#links > li[data-kind]').count(), detail.links.length);
  if (detail.similar.length) assert.equal(await page.locator('#similar > li a').count(), detail.similar.length);
  if (detail.download) assert.equal(await page.getByRole('link', { name: 'Download the original file' }).getAttribute('href'), detail.download);
  await page.getByRole('button', { name: 'Fit to the frame (0)' }).click();
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot('detail');
});

test('tagging: accept a suggestion, reject one, add a tag with completion, Save & next; the catalog changed', async () => {
  await page.goto(new URL('/tag.html', baseUrl).href);
  await page.getByLabel('Who are you?').fill(user);
  await page.getByLabel('Who are you?').press('Enter');
  await page.waitForURL(/tag\.html\?id=\d+/);
  await page.locator('#tagging').waitFor();
  // Find a 2-D image (the better screenshot) with at least two suggestions: Skip to random (r).
  const wanted = async () => (await page.locator('#suggestions li[data-tag-id]').count()) >= 2
    && (await apiGet(`/api/v1/datasets/${datasetIdFromUrl(page.url())}`)).signals?.[0]?.shape?.length === 2;
  for (let i = 0; i < 60 && !(await wanted()); i += 1) {
    const id = datasetIdFromUrl(page.url());
    await page.keyboard.press('r');
    await page.waitForURL((url) => datasetIdFromUrl(url) !== id);
    await page.locator('#suggestions li').first().waitFor();
  }
  const id = datasetIdFromUrl(page.url());
  assert.match(await page.locator('#tagging-title').textContent(), /Currently tagging \d+ of \d+/);
  const suggestion = page.locator('#suggestions li[data-tag-id]');
  assert.ok(await suggestion.count() >= 2, 'a dataset with suggestions was found');

  // 1 accepts the first suggestion; it moves to Assigned.
  const acceptedId = await suggestion.nth(0).getAttribute('data-tag-id');
  await page.keyboard.press('1');
  await page.locator(`#assigned li[data-tag-id="${acceptedId}"]`).waitFor();
  await page.waitForFunction(() => Number(document.querySelector('#tagged-number')?.textContent) >= 1);
  // Shift+1 now rejects the (new) first suggestion.
  const rejectedId = await suggestion.nth(0).getAttribute('data-tag-id');
  await page.keyboard.press('Shift+Digit1');
  await page.locator(`#rejected li[data-tag-id="${rejectedId}"]`).waitFor();

  // "/" focuses the Add tag box; the vocabulary completes; Enter adds the chosen label.
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'add-tag-input');
  await page.keyboard.type('nanop');
  const option = page.locator('#completion [role="option"]').first();
  await option.waitFor();
  const label = await option.getAttribute('data-label');
  assert.match(label, /^nanop/i);
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.locator('#add-tag-input').getAttribute('aria-activedescendant'), await option.getAttribute('id'));
  await page.keyboard.press('Enter');
  await page.locator('#assigned li .tag-value', { hasText: label }).waitFor();
  // A free tag typed in full, added with the button.
  await page.getByRole('combobox', { name: 'Add tag' }).fill('beam damage');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('#assigned li .tag-value', { hasText: 'beam damage' }).waitFor();
  await page.locator('#tagged-number').waitFor();
  await screenshot('tagging');

  // The server has it all, recorded with the user's name.
  const detail = await apiGet(`/api/v1/datasets/${id}`);
  const byId = new Map(detail.tags.map((t) => [String(t.id), t]));
  assert.equal(byId.get(acceptedId).state, 'accepted');
  assert.equal(byId.get(acceptedId).validated_by, user);
  assert.equal(byId.get(rejectedId).state, 'rejected');
  for (const value of [label, 'beam damage']) {
    assert.ok(detail.tags.some((t) => t.value === value && t.source === 'expert' && t.state === 'accepted'), `expert tag ${value}`);
  }
  const rows = catalogRows(`select id, value, source, state, validated_by, created_by from tags where dataset_id = ${Number(id)}`);
  if (rows) {
    const row = (tagId) => rows.find((r) => String(r.id) === tagId);
    assert.equal(row(acceptedId).state, 'accepted');
    assert.equal(row(acceptedId).validated_by, user);
    assert.equal(row(rejectedId).state, 'rejected');
    assert.ok(rows.some((r) => r.value === 'beam damage' && r.source === 'expert'));
  }

  // Save & next: the next file in path order, counted for this user.
  const [position, total] = (await page.locator('#position').textContent()).split(' of ')
    .map((n) => Number(n.replace(/,/g, '')));
  const path = await page.locator('#dataset-path').textContent();
  await page.getByRole('button', { name: /Save & next/ }).click();
  await page.waitForURL((url) => datasetIdFromUrl(url) !== id);
  await page.waitForFunction((p) => document.querySelector('#dataset-path').textContent !== p, path);
  const nextPosition = Number((await page.locator('#position').textContent()).split(' of ')[0].replace(/,/g, ''));
  // After the last file in path order the queue wraps to the first.
  const last = position === total;
  assert.equal(nextPosition, last ? 1 : position + 1);
  const nextPath = await page.locator('#dataset-path').textContent();
  assert.ok(last ? nextPath < path : nextPath > path, 'the next file in path order');
  const queue = await apiGet(`/api/v1/tagging/next?user=${user}&order=path`);
  assert.ok(queue.tagged_by_user >= 1, 'the user is credited');
  assert.equal(await page.locator('#tagged-number').textContent(), String(queue.tagged_by_user));

  // r skips to a random file (any file; the position is shown).
  await page.keyboard.press('r');
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('random'));
  assert.match(await page.locator('#tagging-title').textContent(), /Currently tagging \d+ of \d+/);
});

test('HTML in a file name and in a tag is shown as text; no script runs', async () => {
  const evil = '<img src=x onerror="window.__pwned=1">';
  // run.sh catalogs a file whose folder and name hold markup.
  const found = await apiGet('/api/v1/search?q=onerror&limit=5');
  const hostile = found.hits.find((h) => h.path.includes('<img'));
  assert.ok(hostile, 'the file with markup in its name is in the catalog (tests/web/run.sh adds it)');
  const number = hostile.id.replace('dataset:', '');
  await apiPost(`/api/v1/datasets/${number}/tags`, { user, value: evil });

  await page.goto(`${baseUrl}/?q=onerror`);
  await page.locator('#results > li.result').first().waitFor();
  const hit = page.locator(`#results > li.result[data-id="${hostile.id}"]`);
  assert.ok((await hit.locator('.result-path').textContent()).includes('<img'), 'the path shows its markup as text');
  assert.equal(await page.locator('#results img:not(.thumb)').count(), 0, 'no element was made from a name');

  await page.goto(`${baseUrl}/dataset.html?id=${number}`);
  await page.locator('#dataset').waitFor();
  assert.ok((await page.locator('#dataset-path').textContent()).includes('<img'));
  assert.ok((await page.locator('#tags').textContent()).includes(evil), 'the tag shows as text');
  assert.equal(await page.locator('main img:not(.viewer-image):not(.thumb)').count(), 0);

  await page.goto(`${baseUrl}/tag.html?id=${number}`);
  await page.locator('#assigned li .tag-value', { hasText: 'onerror' }).waitFor();
  assert.equal(await page.locator('#assigned li .tag-value', { hasText: 'onerror' }).textContent(), evil);
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no injected script ran');
  assert.deepEqual(dialogs, []);
});

test('no page raised a script error', () => {
  assert.deepEqual(pageErrors, []);
});
