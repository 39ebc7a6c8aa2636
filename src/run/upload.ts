import { type FileRef, PUT_CHUNK_BYTES, RUN_METHODS } from "./protocol.js";

/** A call to the server (the operator's endpoint). */
export type ServerCall = (method: string, request: unknown) => Promise<unknown>;

/**
 * Sends the server the files of a run it has not got (it keeps them by sha256, so a file
 * crosses once however many runs use it), in order, chunk by chunk.
 */
export async function uploadFiles(
  call: ServerCall,
  run: string,
  files: Array<FileRef & { bytes: Uint8Array }>,
): Promise<{ sent: number; bytes: number }> {
  const { missing } = (await call(RUN_METHODS.FILES, {
    run,
    files: files.map(({ bytes: _b, ...ref }) => ref),
  })) as {
    missing: string[];
  };
  let sent = 0;
  let bytes = 0;
  for (const sha of new Set(missing)) {
    const f = files.find((x) => x.sha256 === sha);
    if (f === undefined) continue;
    for (let offset = 0; offset === 0 || offset < f.bytes.length; offset += PUT_CHUNK_BYTES) {
      const chunk = f.bytes.subarray(offset, offset + PUT_CHUNK_BYTES);
      await call(RUN_METHODS.PUT, {
        run,
        sha256: sha,
        size: f.bytes.length,
        offset,
        data: Buffer.from(chunk).toString("base64"),
      });
      if (f.bytes.length === 0) break;
    }
    sent++;
    bytes += f.bytes.length;
  }
  return { sent, bytes };
}
