// The chat page in headless Chromium: it loads, and a message gets a streamed reply.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser } from "./browser.mjs";

test("the chat page streams a reply", async () => {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(process.env.OWL_URL + "/");
    assert.equal(await page.title(), "owl chat");
    await page.waitForFunction(() => document.getElementById("status").textContent === "ready");
    await page.fill("#max_tokens", "24");
    await page.fill("#input", "Tell me a story");
    await page.click("#send");
    await page.waitForSelector(".msg.assistant[data-state=done]", { timeout: 30000 });
    const reply = await page.textContent(".msg.assistant .text");
    assert.ok(reply.length > 0, "the reply has text");
    assert.ok(!reply.startsWith("error"), reply);
    assert.match(await page.textContent("#speed"), /tokens\/s/);
    assert.equal(await page.locator(".msg.user").count(), 1);
    // The stop button ends a long reply.
    await page.fill("#max_tokens", "2000");
    await page.fill("#input", "Another one");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelectorAll(".msg.assistant .text")[1]?.textContent.length > 0);
    await page.click("#stop");
    await page.waitForSelector(".msg.assistant:nth-of-type(4)[data-state=done]", { timeout: 30000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
