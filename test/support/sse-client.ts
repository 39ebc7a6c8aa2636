// Reads a server-sent-events response, as the dashboard does: each message's data parsed as
// JSON, with its id; `next(pred)` waits for the first message that satisfies `pred`.

export interface SseMessage {
  id: string | undefined;
  data: Record<string, unknown> & { type: string };
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** Every message so far. */
  messages: SseMessage[];
  /** The id of the last message that had one. */
  lastId(): string | undefined;
  next(pred: (m: SseMessage) => boolean, ms?: number, what?: string): Promise<SseMessage>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { accept: "text/event-stream", ...headers },
    signal: controller.signal,
  });
  const messages: SseMessage[] = [];
  let seen = 0;
  const waiters = new Set<() => void>();
  let ended = false;
  const pump = async (): Promise<void> => {
    if (res.body === null) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let data = "";
          let id: string | undefined;
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) id = line.slice(4);
          }
          if (data !== "") messages.push({ id, data: JSON.parse(data) });
          end = buffer.indexOf("\n\n");
        }
        for (const w of waiters) w();
      }
    } catch {
      // aborted
    } finally {
      ended = true;
      for (const w of waiters) w();
    }
  };
  if (res.ok) void pump();
  return {
    status: res.status,
    headers: res.headers,
    messages,
    lastId: () => [...messages].reverse().find((m) => m.id !== undefined)?.id,
    async next(pred, ms = 10_000, what = "a message") {
      const deadline = Date.now() + ms;
      for (;;) {
        for (; seen < messages.length; seen++) {
          const m = messages[seen]!;
          if (pred(m)) {
            seen++;
            return m;
          }
        }
        if (ended) throw new Error(`the stream ended before ${what}`);
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(messages.slice(-5))}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, left);
          function done(): void {
            clearTimeout(t);
            waiters.delete(done);
            resolve();
          }
          waiters.add(done);
        });
      }
    },
    close: () => controller.abort(),
  };
}
