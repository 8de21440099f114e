// owl eval's HTML report in headless Chromium: the page renders with no errors and no network,
// its table has a row per candidate and each plot a point per candidate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchBrowser } from "./browser.mjs";

test("the eval report renders its table and plots", async () => {
  const dir = mkdtempSync(join(tmpdir(), "owl-eval-html-"));
  const html = join(dir, "report.html");
  try {
    execFileSync(process.env.OWL_BIN, ["eval", join(process.env.OWL_SOURCE, "examples/eval/stories/suite.yaml"), "-q", "-t", "2",
                                       "--cache-dir", join(dir, "cache"), "--html", html], { stdio: ["ignore", "pipe", "inherit"] });
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      const errors = [];
      const requests = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("request", (r) => { if (!r.url().startsWith("file:")) requests.push(r.url()); });
      await page.goto("file://" + html);
      assert.equal(await page.title(), "owl eval: story-continuation");
      assert.equal(await page.locator("#candidates tr").count(), 1 + 5);
      for (const plot of ["#plot-size", "#plot-cost"]) {
        assert.equal(await page.locator(`${plot} circle.point`).count(), 5, plot);
        const box = await page.locator(plot).boundingBox();
        assert.ok(box && box.width > 100 && box.height > 100, `${plot} is drawn`);
      }
      assert.ok((await page.locator(`#plot-size polyline.pareto`).getAttribute("points")).trim().length > 0, "the Pareto front");
      assert.match(await page.textContent("#verdict"), /passes with pass rate/);
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, []);
    } finally {
      await browser.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
