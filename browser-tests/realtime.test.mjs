// /api/realtime in a real browser: an EventSource receives changes as they are made, and
// after the server restarts (same SQLite file, new port) resumes from the last event id it
// saw, so the page ends up with every change exactly once, in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchBrowser, api } from "./lib/harness.mjs";

/** Opens an EventSource in the page and collects its events in window.seen. */
async function follow(page, query) {
  await page.evaluate((query) => {
    window.seen = window.seen ?? [];
    window.upToDate = 0;
    const source = new EventSource(`/api/realtime?${query}`);
    window.source = source;
    source.addEventListener("change", (event) => {
      const change = JSON.parse(event.data);
      window.seen.push({ id: change.id, n: change.document.n, cursor: event.lastEventId });
    });
    source.addEventListener("upToDate", () => { window.upToDate += 1; });
  }, query);
  await page.waitForFunction(() => window.upToDate > 0, null, { timeout: 10_000 });
}

test("an EventSource follows changes and resumes after a restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "litehouse-realtime-"));
  const db = `sqlite:${join(dir, "app.db")}`;
  const browser = await launchBrowser();
  let server = await startServer({ db });
  try {
    await api(server, "POST", "/api/collections", { name: "notes" });
    const page = await browser.context.newPage();
    await page.goto(`${server.base}/api/ready`);
    await follow(page, "collections=notes");
    const made = [];
    for (let n = 0; n < 5; n += 1) {
      made.push((await api(server, "POST", "/api/collections/notes/docs", { n })).id);
    }
    await page.waitForFunction(() => window.seen.length === 5, null, { timeout: 10_000 });
    const last = await page.evaluate(() => { window.source.close(); return window.seen.at(-1).cursor; });
    assert.equal(await server.stop(), 0, server.output());

    // Written while no browser was connected to the new server yet.
    server = await startServer({ db });
    for (let n = 5; n < 8; n += 1) {
      made.push((await api(server, "POST", "/api/collections/notes/docs", { n })).id);
    }
    await page.goto(`${server.base}/api/ready`);
    // A new document: window.seen starts empty and holds only the resumed events.
    await follow(page, `collections=notes&cursor=${last}`);
    for (let n = 8; n < 10; n += 1) {
      made.push((await api(server, "POST", "/api/collections/notes/docs", { n })).id);
    }
    await page.waitForFunction(() => window.seen.length === 5, null, { timeout: 10_000 });
    const resumed = await page.evaluate(() => window.seen);
    assert.deepEqual(resumed.map((change) => change.id), made.slice(5));
    assert.deepEqual(resumed.map((change) => change.n), [5, 6, 7, 8, 9]);
    const cursors = resumed.map((change) => BigInt(change.cursor));
    assert.ok(cursors.every((cursor, i) => i === 0 || cursor > cursors[i - 1]));
    assert.ok(cursors[0] > BigInt(last));
    await page.evaluate(() => window.source.close());
  } finally {
    await browser.close();
    assert.equal(await server.stop(), 0, server.output());
    rmSync(dir, { recursive: true, force: true });
  }
});
