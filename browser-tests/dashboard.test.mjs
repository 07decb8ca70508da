// The dashboard in headless chromium: it connects with the token from the URL, its
// writes/s and reads/s numbers and charts move while a load runs, a maintenance action shows
// its result, the explain box answers, and it is screenshotted at desktop and phone width.
// Its Devices panel shows sync devices pushing and pulling through the real server with
// device tokens from `litehouse token create --device`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { startServer, launchBrowser, api, OUTPUT } from "./lib/harness.mjs";

/** Writes (POST) and reads (GET by id) from `workers` concurrent loops until `until()`. */
async function load(server, until, workers = 8) {
  const ids = [];
  const counts = { writes: 0, reads: 0 };
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    let n = 0;
    while (!until()) {
      const doc = await api(server, "POST", "/api/collections/notes/docs", { worker, n: n++, text: "load" });
      ids.push(doc.id);
      counts.writes += 1;
      for (let i = 0; i < 3; i += 1) {
        await api(server, "GET", `/api/collections/notes/docs/${ids[Math.floor(Math.random() * ids.length)]}`);
        counts.reads += 1;
      }
    }
  }));
  return counts;
}

/** The number a card shows (`–`/`n/a` → NaN); the page formats with the browser locale. */
async function cardValue(page, key) {
  const text = await page.locator(`#v-${key}`).textContent();
  return Number(text.replace(/[^\d.]/g, "") || NaN);
}

/** A canvas's pixels as a data URL, and whether anything is drawn on it. */
async function chart(page, key) {
  return page.locator(`#c-${key}`).evaluate((canvas) => {
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let drawn = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) drawn += 1;
    return { url: canvas.toDataURL(), drawn };
  });
}

test("the dashboard shows live numbers, runs maintenance and fits desktop and phone", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    await api(server, "POST", "/api/collections", {
      name: "notes",
      indexes: [{ name: "by_n", fields: [{ path: "n", type: "number" }] }],
    });
    const page = await browser.context.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => { if (message.type() === "error") problems.push(`console: ${message.text()}`); });

    await page.goto(`${server.base}/#token=${server.token}`);
    await page.locator("#main").waitFor({ state: "visible" });
    // The token left the address bar once read.
    assert.ok(!page.url().includes(server.token), page.url());
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected"));
    const idle = await chart(page, "writes");

    // Load for long enough that at least two 2-second polls see it.
    let stop = false;
    let writes = NaN;
    let reads = NaN;
    const running = load(server, () => stop);
    try {
      await page.waitForFunction(
        () => ["writes", "reads"].every((key) => Number(document.getElementById(`v-${key}`).textContent.replace(/[^\d.]/g, "")) > 0),
        null,
        { timeout: 20_000 },
      );
      // The tiles show the last poll's rate: read them while the load still runs.
      writes = await cardValue(page, "writes");
      reads = await cardValue(page, "reads");
      // One more poll, so the charts have two non-zero points.
      await page.waitForTimeout(2_500);
      await page.screenshot({ path: join(OUTPUT, "dashboard-1280x800-under-load.png") });
    } finally {
      stop = true;
    }
    const counts = await running;
    assert.ok(writes > 0 && reads > 0, `writes/s ${writes}, reads/s ${reads}`);
    assert.ok(counts.writes > 0 && counts.reads > 0);
    const busy = await chart(page, "writes");
    assert.notEqual(busy.url, idle.url, "the writes/s chart changed under load");
    assert.ok(busy.drawn > 0, "the writes/s chart has a line");
    assert.ok((await chart(page, "reads")).drawn > 0, "the reads/s chart has a line");
    assert.ok((await cardValue(page, "p99w")) > 0, "p99 write latency is shown");
    console.log(`load: ${counts.writes} writes, ${counts.reads} reads; dashboard showed ${writes} writes/s, ${reads} reads/s`);

    // The collections table counts the documents (it refreshes every fifth tick).
    await page.waitForFunction(
      (count) => {
        const cell = document.querySelector("#collections tbody tr td.num");
        return cell && Number(cell.textContent.replace(/[^\d]/g, "")) === count;
      },
      counts.writes,
      { timeout: 15_000 },
    );

    // The live view follows /api/realtime: the load's creates appear as they commit, newest
    // first, and one written now shows up without waiting for a poll.
    const marker = await api(server, "POST", "/api/collections/notes/docs", { text: "live marker" });
    await page.waitForFunction(
      (id) => {
        const first = document.querySelector("#changes tbody tr");
        return first && first.cells[3].textContent === id && first.cells[2].textContent === "create";
      },
      marker.id,
      { timeout: 5_000 },
    );
    const liveRows = await page.locator("#changes tbody tr").count();
    assert.ok(liveRows > 1 && liveRows <= 20, `live rows: ${liveRows}`);
    assert.match(await page.locator("#live-status").textContent(), /following notes/);

    // A maintenance action and its result.
    await page.getByRole("button", { name: "check" }).click();
    await page.waitForFunction(() => document.getElementById("maintenance-result").textContent.includes('"action": "check"'));
    const result = JSON.parse(await page.locator("#maintenance-result").textContent());
    assert.equal(result.ok, true);
    assert.equal(result.result.ok, true, JSON.stringify(result));

    // The explain box.
    await page.locator("#explain-collection").fill("notes");
    await page.locator("#explain-query").fill("n=gte.10&order=n.desc");
    await page.getByRole("button", { name: "Explain" }).click();
    await page.waitForFunction(() => document.getElementById("explain-result").textContent.includes("uses index: true"));

    // Logs: the server logged its start at info level.
    await page.waitForFunction(() => document.querySelectorAll("#logs tbody tr").length > 0);

    await page.screenshot({ path: join(OUTPUT, "dashboard-1280x800.png") });
    await page.screenshot({ path: join(OUTPUT, "dashboard-1280x800-full.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
    await page.screenshot({ path: join(OUTPUT, "dashboard-390x844.png") });
    await page.screenshot({ path: join(OUTPUT, "dashboard-390x844-full.png"), fullPage: true });

    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    const code = await server.stop();
    assert.equal(code, 0, server.output());
  }
});

/** A device token made the way an operator makes one: `litehouse token create --device`. */
function deviceToken(server, device) {
  const made = spawnSync(
    process.env.LITEHOUSE_BIN,
    ["token", "create", "--device", device, "--name", device, "--db", `sqlite:${join(server.dir, "app.db")}`],
    { encoding: "utf8" },
  );
  assert.equal(made.status, 0, made.stderr);
  return made.stdout.trim();
}

/** One sync push as a device sends it: producer id, epoch, gapless seqs, an HLC each. */
async function syncPush(server, token, device, entries, { first = 1, epoch = 1 } = {}) {
  const base = BigInt(Math.floor(Date.now() / 1000)) << 32n;
  const body = {
    device,
    epoch,
    first_seq: first,
    last_seq: first + entries.length - 1,
    entries: entries.map((entry, i) => ({
      seq: first + i,
      op_id: `${device}-${epoch}-${first + i}`,
      hlc: `${base + BigInt(first + i)}/a1`,
      collection: entry.collection ?? "notes",
      doc_id: entry.id,
      op: "put",
      body: entry.body,
    })),
  };
  const headers = { "content-type": "application/json", "user-agent": `${device}-agent/1.0` };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${server.base}/api/sync/push`, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return JSON.parse(text);
}

const uuid = (n) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;

/** The cells of a device's row in the Devices panel, or null while it is not listed. */
async function deviceRow(page, device) {
  return page.evaluate((id) => {
    const row = document.querySelector(`#devices tbody tr[data-device="${id}"]`);
    return row && { online: row.classList.contains("online"), cells: [...row.cells].map((c) => c.textContent) };
  }, device);
}

test("the Devices panel shows each sync device live: last seen, sequence, rejections", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    await api(server, "POST", "/api/collections", { name: "notes" });
    const till = deviceToken(server, "till-1");
    const kiosk = deviceToken(server, "kiosk-2");
    // till-1 pushes three entries; the second targets a collection that does not exist and
    // is rejected (acknowledged, not applied).
    const pushed = await syncPush(server, till, "till-1", [
      { id: uuid(1), body: { text: "coffee", amount: 3.5 } },
      { id: uuid(2), body: { text: "lost" }, collection: "nope" },
      { id: uuid(3), body: { text: "bagel", amount: 2.25 } },
    ]);
    assert.equal(pushed.acked_seq, 3);
    assert.equal(pushed.rejected.length, 1);
    // kiosk-2 only pulls; pos-3 pushed once with no device token, so it is known by its
    // push state but never seen.
    const pulled = await fetch(`${server.base}/api/sync/pull`, { headers: { authorization: `Bearer ${kiosk}` } });
    assert.equal(pulled.status, 200, await pulled.text());
    await syncPush(server, null, "pos-3", [{ id: uuid(4), body: { text: "tea" } }], { epoch: 7 });

    const page = await browser.context.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => { if (message.type() === "error") problems.push(`console: ${message.text()}`); });
    await page.goto(`${server.base}/#token=${server.token}`);
    await page.locator("#main").waitFor({ state: "visible" });

    // Heartbeats reach the table within a buffer flush (1 s) and a poll (2 s).
    await page.waitForFunction(
      () => document.querySelectorAll("#devices tbody tr.online").length === 2,
      null,
      { timeout: 15_000 },
    );
    // Columns: device, last seen, last push, last pull, epoch, last seq, rejections, client.
    const tillRow = await deviceRow(page, "till-1");
    assert.ok(tillRow.online, JSON.stringify(tillRow));
    assert.match(tillRow.cells[1], /^\d+ s ago$/);
    assert.match(tillRow.cells[2], /^\d+ s ago$/);
    assert.equal(tillRow.cells[3], "never");
    assert.deepEqual(tillRow.cells.slice(4, 7), ["1", "3", "1"]);
    assert.match(tillRow.cells[7], /127\.0\.0\.1:\d+ · till-1-agent\/1\.0/);
    const kioskRow = await deviceRow(page, "kiosk-2");
    assert.ok(kioskRow.online);
    assert.equal(kioskRow.cells[2], "never");
    assert.match(kioskRow.cells[3], /^\d+ s ago$/);
    assert.deepEqual(kioskRow.cells.slice(4, 7), ["–", "–", "0"]);
    const posRow = await deviceRow(page, "pos-3");
    assert.equal(posRow.online, false);
    assert.equal(posRow.cells[1], "never");
    assert.deepEqual(posRow.cells.slice(4, 6), ["7", "1"]);
    assert.match(await page.locator("#devices-summary").textContent(), /^3 devices · 2 online/);
    // The rejection's reason is on the badge.
    const reason = await page.locator('#devices tr[data-device="till-1"] .pill').getAttribute("title");
    assert.match(reason, /seq 2: .*nope/);

    // The panel refreshes on its own: two more pushes show up as the new last sequence.
    await syncPush(server, till, "till-1", [
      { id: uuid(5), body: { text: "muffin", amount: 3 } },
      { id: uuid(6), body: { text: "juice", amount: 4 } },
    ], { first: 4 });
    await page.waitForFunction(
      () => document.querySelector('#devices tr[data-device="till-1"]')?.cells[5].textContent === "5",
      null,
      { timeout: 10_000 },
    );
    await page.locator("#devices-panel").screenshot({ path: join(OUTPUT, "dashboard-devices.png") });
    await page.screenshot({ path: join(OUTPUT, "dashboard-devices-1280x800.png") });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
    await page.locator("#devices-panel").screenshot({ path: join(OUTPUT, "dashboard-devices-390.png") });
    assert.deepEqual(problems, []);

    // A refresh that fails keeps the rows, greyed out, under a line saying why and how old
    // they are; the next good refresh takes the line away.
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.route("**/api/debug/sync/devices", (route) => route.fulfill({
      status: 503,
      contentType: "application/json",
      body: JSON.stringify({ status: 503, code: "overloaded", message: "the server is busy", details: {} }),
    }));
    const stale = page.locator("#devices-stale");
    const greyed = () => page.locator("#devices").evaluate((table) => table.classList.contains("stale"));
    await stale.waitFor({ state: "visible", timeout: 10_000 });
    assert.match(
      await stale.textContent(),
      /^could not refresh: overloaded: the server is busy, showing data from \d\d:\d\d:\d\d$/,
    );
    assert.ok(await greyed());
    assert.equal((await deviceRow(page, "till-1")).cells[5], "5", "the last rows stay");
    await page.locator("#devices-panel").screenshot({ path: join(OUTPUT, "dashboard-devices-stale.png") });
    await page.unroute("**/api/debug/sync/devices");
    await stale.waitFor({ state: "hidden", timeout: 10_000 });
    assert.equal(await greyed(), false);
  } finally {
    await browser.close();
    const code = await server.stop();
    assert.equal(code, 0, server.output());
  }
});
