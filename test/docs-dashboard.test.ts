// docs/dashboard.md shows a screenshot of every page of the dashboard: each one exists, is a
// PNG as scripts/dashboard-screenshots.mjs takes them (1280 × 720), and is shown in the guide.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const REPO = new URL("../..", import.meta.url).pathname;
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe("the dashboard's screenshots", () => {
  const guide = readFileSync(join(REPO, "docs/dashboard.md"), "utf8");
  const app = readFileSync(join(REPO, "ui/js/app.js"), "utf8");
  const pages = [...app.matchAll(/\{ id: "([a-z]+)", title: "[^"]+", view: /g)].map((m) => m[1]!);

  it("the dashboard has its five pages", () => {
    assert.deepEqual(pages, ["fleet", "console", "events", "runs", "servers"]);
  });

  for (const page of pages) {
    it(`docs/images/dashboard-${page}.png exists, is a 1280 × 720 PNG and is in the guide`, () => {
      const file = `images/dashboard-${page}.png`;
      const png = readFileSync(join(REPO, "docs", file));
      assert.ok(png.subarray(0, 8).equals(PNG), "a PNG");
      assert.equal(png.readUInt32BE(16), 1280, "width");
      assert.equal(png.readUInt32BE(20), 720, "height");
      assert.ok(png.length > 20_000, `more than an empty page (${png.length} bytes)`);
      assert.ok(guide.includes(`](${file})`), `docs/dashboard.md shows ${file}`);
    });
  }
});
