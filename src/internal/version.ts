import { readFileSync } from "node:fs";

function readVersion(): string {
  // dist/src/internal/version.js → package.json three levels up.
  for (const rel of ["../../../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "muster" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // try the next location
    }
  }
  return "0.0.0";
}

/** Version of this muster package. */
export const VERSION = readVersion();
