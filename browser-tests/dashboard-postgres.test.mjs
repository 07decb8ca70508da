// The dashboard over a PostgreSQL database (skipped without LITEHOUSE_TEST_PG): there is no
// SQLite engine, so writes/s and reads/s come from the server's document-operation counters,
// the engine-only tiles say n/a, and SQLite maintenance answers that there is no database.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startServer, launchBrowser, api, OUTPUT } from "./lib/harness.mjs";

const url = process.env.LITEHOUSE_TEST_PG;

test("the dashboard over PostgreSQL shows document rates", { skip: !url && "LITEHOUSE_TEST_PG is not set" }, async () => {
  const schema = `lh_browser_${process.pid}`;
  const db = `${url}${url.includes("?") ? "&" : "?"}schema=${schema}`;
  const server = await startServer({ db });
  const browser = await launchBrowser();
  try {
    await api(server, "POST", "/api/collections", { name: "notes" });
    const page = await browser.context.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${server.base}/#token=${server.token}`);
    await page.locator("#main").waitFor({ state: "visible" });
    let stop = false;
    const running = (async () => {
      while (!stop) {
        const doc = await api(server, "POST", "/api/collections/notes/docs", { text: "load" });
        await api(server, "GET", `/api/collections/notes/docs/${doc.id}`);
      }
    })();
    try {
      await page.waitForFunction(
        () => ["writes", "reads"].every((key) => Number(document.getElementById(`v-${key}`).textContent.replace(/[^\d.]/g, "")) > 0),
        null,
        { timeout: 20_000 },
      );
      await page.waitForTimeout(2_500);
      await page.screenshot({ path: join(OUTPUT, "dashboard-postgres-1280x800.png") });
    } finally {
      stop = true;
      await running;
    }
    assert.equal(await page.locator("#v-p99w").textContent(), "n/a");
    await page.getByRole("button", { name: "check" }).click();
    await page.waitForFunction(() => document.getElementById("maintenance-result").textContent.includes("no_database"));
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(OUTPUT, "dashboard-postgres-390x844.png") });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    const code = await server.stop();
    spawnSync("psql", ["-q", url, "-c", "SET client_min_messages = warning", "-c", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { stdio: "inherit" });
    assert.equal(code, 0, server.output());
  }
});
