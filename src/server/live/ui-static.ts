import { readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { isLoopbackAddress } from "../../internal/host-port.js";
import { fail } from "../admin-http.js";

/**
 * The dashboard's Content-Security-Policy: scripts, styles and connections from the server
 * itself only; no inline script, no frames, no forms posted elsewhere.
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** Libraries the dashboard imports, served from the package's own dependencies (no CDN). */
const VENDOR: Record<string, string> = {
  "vendor/preact-htm.js": "htm/preact/standalone",
  "vendor/uplot.js": "uplot/dist/uPlot.esm.js",
  "vendor/uplot.css": "uplot/dist/uPlot.min.css",
};

interface UiFile {
  type: string;
  body: Buffer;
}

/**
 * The dashboard's static files, under `/ui/`: the files of the package's `ui` folder and the
 * vendored libraries, read once, answered from memory. Only files that exist there are served
 * (a request names an entry of a fixed table, never a path on disk). A standalone server
 * serves them to loopback addresses only.
 */
export class UiFiles {
  readonly #root: string;
  #files: Map<string, UiFile> | undefined;

  constructor(root = fileURLToPath(new URL("../../../../ui/", import.meta.url))) {
    this.#root = root;
  }

  /** Answers a request whose path is `/ui` or under it. */
  serve(req: IncomingMessage, res: ServerResponse, path: string, standalone: boolean): void {
    if (req.method !== "GET" && req.method !== "HEAD") {
      fail(res, 405, "method_not_allowed", "/ui/ takes GET, HEAD", { allow: "GET, HEAD" });
      return;
    }
    if (standalone && !isLoopbackAddress(req.socket.remoteAddress ?? "")) {
      fail(
        res,
        403,
        "permission_denied",
        "this server runs --standalone and serves its dashboard to loopback addresses only",
      );
      return;
    }
    const raw = (req.url ?? "").split("?")[0]!;
    if (path === "/ui" && !raw.endsWith("/")) {
      res.writeHead(301, { location: "/ui/", "cache-control": "no-store" });
      res.end();
      return;
    }
    const name = path === "/ui" ? "index.html" : path.slice("/ui/".length);
    const file = this.#table().get(name);
    if (file === undefined) {
      fail(res, 404, "not_found", `no file ${JSON.stringify(name.slice(0, 200))} in the dashboard`);
      return;
    }
    res.writeHead(200, {
      "content-type": file.type,
      "content-length": String(file.body.length),
      "cache-control": "no-cache",
      "content-security-policy": UI_CSP,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cross-origin-opener-policy": "same-origin",
    });
    res.end(req.method === "HEAD" ? undefined : file.body);
  }

  /** The names served (tests). */
  names(): string[] {
    return [...this.#table().keys()].sort();
  }

  #table(): Map<string, UiFile> {
    if (this.#files !== undefined) return this.#files;
    const files = new Map<string, UiFile>();
    for (const path of walk(this.#root)) {
      const type = TYPES[extname(path)];
      if (type === undefined) continue;
      files.set(relative(this.#root, path).split(sep).join("/"), { type, body: readFileSync(path) });
    }
    for (const [name, spec] of Object.entries(VENDOR)) {
      const path = fileURLToPath(import.meta.resolve(spec));
      files.set(name, { type: TYPES[extname(name)]!, body: readFileSync(path) });
    }
    this.#files = files;
    return files;
  }
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
