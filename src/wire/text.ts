/**
 * Escapes control characters (C0, DEL, C1) and the line separators U+2028 and U+2029 as
 * `\uXXXX`, so that text from a peer stays on one line in traces, logs and error messages
 * and cannot carry terminal escape sequences.
 */
export function oneLine(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A peer's string quoted for an error message: cut at `max` characters, on one line. */
export function quote(text: string, max: number): string {
  return oneLine(JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text));
}
