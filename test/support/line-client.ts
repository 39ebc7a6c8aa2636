import { connect, type Socket } from "node:net";
import { until } from "./fleet.js";

/** A socket that collects the text lines it reads and notes when the peer closes. */
export class LineClient {
  lines: string[] = [];
  closed = false;
  #rest = "";

  constructor(readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      const parts = (this.#rest + d).split("\n");
      this.#rest = parts.pop()!;
      this.lines.push(...parts);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
    });
  }

  /** Connects to 127.0.0.1:port; rejects with the socket's error. */
  static async tcp(port: number): Promise<LineClient> {
    const s = connect(port, "127.0.0.1");
    await new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("error", reject);
    });
    return new LineClient(s);
  }

  /** Sends lines, ends the input, and resolves with every reply once the peer closes. */
  static async exchange(port: number, ...lines: string[]): Promise<string[]> {
    const c = await LineClient.tcp(port);
    c.socket.end(lines.map((l) => `${l}\n`).join(""));
    await until(() => c.closed, 5000, "the peer to close the text connection");
    return c.lines;
  }

  /** Resolves with the lines once there are at least `n`. */
  async lineCount(n: number): Promise<string[]> {
    await until(() => this.lines.length >= n, 3000, `${n} lines (have ${JSON.stringify(this.lines)})`);
    return this.lines;
  }
}
