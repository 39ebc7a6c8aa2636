// Records the git commit and the build time next to the compiled code (dist/build-info.json),
// for the server's /version. Outside a git checkout the commit is "unknown".
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";

let commit = "unknown";
try {
  commit = execFileSync("git", ["rev-parse", "HEAD"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  }).trim();
  const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  if (dirty.trim() !== "") commit += "-dirty";
} catch {
  // not a git checkout, or git is missing
}
mkdirSync(new URL("../dist/", import.meta.url), { recursive: true });
writeFileSync(
  new URL("../dist/build-info.json", import.meta.url),
  `${JSON.stringify({ commit, buildTime: new Date().toISOString() })}\n`,
);
