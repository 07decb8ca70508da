// The dashboard in headless chromium: it connects with the token from the URL, its
// writes/s and reads/s numbers and charts move while a load runs, a maintenance action shows
// its result, the explain box answers, and it is screenshotted at desktop and phone width.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
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
