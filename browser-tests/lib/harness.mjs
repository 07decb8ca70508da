// Shared by every browser test: start the real `litehouse serve` (LITEHOUSE_BIN) on
// 127.0.0.1 with a fresh database and an admin token, and launch Debian's chromium headless
// through playwright-core with a new, empty profile.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/** Where screenshots and other artefacts go (gitignored). */
export const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "..", "output");

/** Chromium flags for this machine's closed network (see the machine notes). */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Starts `litehouse serve --bind 127.0.0.1:0` over a new SQLite file (or `db`) and resolves
 * once it prints its API line and answers /api/ready.
 * @returns {Promise<{base: string, token: string, dir: string, output: () => string, stop: () => Promise<number|null>}>}
 */
export async function startServer({ db, args = [] } = {}) {
  const bin = process.env.LITEHOUSE_BIN;
  if (!bin) throw new Error("set LITEHOUSE_BIN to the litehouse binary");
  const dir = mkdtempSync(join(tmpdir(), "litehouse-browser-"));
  const token = `browser-${randomBytes(12).toString("hex")}`;
  const child = spawn(
    bin,
    ["serve", "--db", db ?? `sqlite:${join(dir, "app.db")}`, "--bind", "127.0.0.1:0", "--admin-token", token, ...args],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LITEHOUSE_ADMIN_TOKEN: "" } },
  );
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no address: ${stdout} ${stderr}`)), 30_000);
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const match = stdout.match(/^API:\s+(http:\/\/\S+)\/api\/collections$/m);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
    exited.then((code) => { clearTimeout(timer); reject(new Error(`serve exited with ${code}: ${stderr}`)); });
  });
  for (let attempt = 0; ; attempt += 1) {
    const ready = await fetch(`${base}/api/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (attempt > 100) throw new Error("the server never became ready");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    token,
    dir,
    output: () => stdout + stderr,
    /** SIGTERM, then the exit code; the temp directory is removed. */
    async stop() {
      child.kill("SIGTERM");
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Launches headless chromium with a new empty profile; `close()` removes the profile. */
export async function launchBrowser({ viewport = { width: 1280, height: 800 } } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "litehouse-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  mkdirSync(OUTPUT, { recursive: true });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** `fetch` against the server with the admin token and JSON bodies; throws on non-2xx. */
export async function api(server, method, path, body) {
  const response = await fetch(`${server.base}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
