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

/** Where and when this copy was built: written next to the compiled code by `npm run build`. */
export interface BuildInfo {
  version: string;
  commit: string;
  buildTime: string;
  node: string;
}

let buildInfo: BuildInfo | undefined;

/** The build's version, git commit and time (`unknown` when not recorded), and this Node's version. */
export function getBuildInfo(): BuildInfo {
  if (buildInfo === undefined) {
    let recorded: { commit?: unknown; buildTime?: unknown } = {};
    try {
      // dist/src/internal/version.js → dist/build-info.json
      recorded = JSON.parse(
        readFileSync(new URL("../../build-info.json", import.meta.url), "utf8"),
      ) as typeof recorded;
    } catch {
      // not built by `npm run build`
    }
    buildInfo = {
      version: VERSION,
      commit: typeof recorded.commit === "string" ? recorded.commit : "unknown",
      buildTime: typeof recorded.buildTime === "string" ? recorded.buildTime : "unknown",
      node: process.versions.node,
    };
  }
  return buildInfo;
}
