// owl serve --auth as the official clients and the chat page meet it: keys from `owl keys`,
// OpenAI's AuthenticationError, PermissionDeniedError and RateLimitError (with Retry-After), the
// Ollama client's errors, and the page asking for the key.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { Ollama } from "ollama";
import { launchBrowser } from "./browser.mjs";

const owl = process.env.OWL_BIN;
const model = join(process.env.OWL_SOURCE, "models/stories260K.gguf");
const dir = mkdtempSync(join(tmpdir(), "owl-auth-"));
const state = join(dir, "state.db");
let server, url;
const keys = {};

function createKey(name, ...limits) {
  const out = execFileSync(owl, ["keys", "create", "--state", state, "--name", name, ...limits], { stdio: ["ignore", "pipe", "pipe"] });
  return out.toString().trim();
}

before(async () => {
  keys.alice = createKey("alice", "--models", "stories260K");
  keys.slow = createKey("slow", "--rpm", "2");
  keys.other = createKey("other", "--models", "some-other-model");
  server = spawn(owl, ["serve", "-m", model, "--port", "0", "-t", "1", "--parallel", "2", "--auth", "--state", state],
                 { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  url = await new Promise((resolve, reject) => {
    server.stderr.on("data", (d) => {
      log += d.toString();
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(log);
      if (port && log.includes("ready")) resolve(`http://127.0.0.1:${port[1]}`);
    });
    server.on("exit", (code) => reject(new Error(`owl serve exited ${code}:\n${log}`)));
  });
});

after(() => {
  server?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const client = (apiKey) => new OpenAI({ apiKey, baseURL: url + "/v1", maxRetries: 0 });
const ask = (c) => c.chat.completions.create({ model: "stories260K", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });

test("the openai client gets each auth error as its own class", async () => {
  const reply = await ask(client(keys.alice));
  assert.equal(reply.choices.length, 1);
  await assert.rejects(ask(client("owl-000000000000-" + "0".repeat(40))), (e) => e instanceof OpenAI.AuthenticationError && e.code === "invalid_api_key");
  await assert.rejects(ask(client(keys.other)), (e) => e instanceof OpenAI.PermissionDeniedError && e.code === "model_not_allowed");
  const slow = client(keys.slow);
  await ask(slow);
  await ask(slow);
  await assert.rejects(ask(slow), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError);
    assert.equal(e.code, "rate_limit_exceeded");
    const retryAfter = typeof e.headers?.get === "function" ? e.headers.get("retry-after") : e.headers?.["retry-after"];
    assert.ok(Number(retryAfter) >= 1, `Retry-After ${retryAfter}`);
    return true;
  });
  const models = await client(keys.alice).models.list();
  assert.equal(models.data[0].id, "stories260K");
});

test("the ollama client sends the key as a header", async () => {
  const good = new Ollama({ host: url, headers: { Authorization: `Bearer ${keys.alice}` } });
  const r = await good.chat({ model: "stories260K", messages: [{ role: "user", content: "hi" }], options: { num_predict: 3 } });
  assert.equal(r.done, true);
  const none = new Ollama({ host: url });
  await assert.rejects(none.list(), (e) => e.status_code === 401 && /API key/.test(e.message));
});

test("the chat page asks for the key and then streams a reply", async () => {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url + "/");
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("API key needed"));
    await page.fill("#api_key", keys.alice);
    await page.dispatchEvent("#api_key", "change");
    await page.waitForFunction(() => document.getElementById("status").textContent === "ready");
    await page.fill("#max_tokens", "8");
    await page.fill("#input", "Tell me a story");
    await page.click("#send");
    await page.waitForSelector(".msg.assistant[data-state=done]", { timeout: 30000 });
    assert.ok(!(await page.locator(".msg.assistant.error").count()), await page.textContent(".msg.assistant .text"));
    assert.ok((await page.textContent(".msg.assistant .text")).length > 0);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
