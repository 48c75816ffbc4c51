// The fetch client on Node's real fetch, real timers and a real HTTP server
// on 127.0.0.1: sessions that expire, 401s, a slow refresh endpoint. The
// recorded history (wall-clock ns) is judged like the simulated runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';

import { createFetchClient } from '../src/fetch.js';
import { assertJudged } from './support/judge.js';

function server() {
  let current = null;
  let refreshes = 0;
  const srv = createServer((req, res) => {
    if (req.url === '/token') {
      refreshes += 1;
      current = `tok${refreshes}`;
      // A slow endpoint, so that requests pile up behind the refresh.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: current, expires_in: 3600 }));
      }, 50);
      return;
    }
    const ok = req.headers.authorization === `Bearer ${current}`;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok }));
  });
  return {
    srv,
    listen: () => new Promise((r) => srv.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${srv.address().port}`))),
    revoke: () => { current = 'revoked'; },
    refreshes: () => refreshes,
  };
}

test('fetch on a real HTTP server: one refresh per expiry for 20 concurrent requests, twice', async () => {
  const s = server();
  const base = await s.listen();
  try {
    const client = createFetchClient({
      fetch,
      refresh: async ({ signal }) => {
        const r = await fetch(`${base}/token`, { method: 'POST', signal });
        const j = await r.json();
        return { token: j.access_token, expiresIn: j.expires_in };
      },
      history: true,
    });
    for (let round = 1; round <= 2; round++) {
      const all = await Promise.all(Array.from({ length: 20 }, () => client.fetch(`${base}/api`)));
      assert.ok(all.every((r) => r.status === 200));
      await Promise.all(all.map((r) => r.text()));
      assert.equal(s.refreshes(), round, 'one refresh for the whole burst');
      s.revoke();
    }
    assertJudged(client.history());
  } finally {
    s.srv.close();
  }
});
