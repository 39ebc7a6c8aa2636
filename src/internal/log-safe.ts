/**
 * Log lines carry values a peer chose (a command, a parameter, an error naming part of a line);
 * a peer must not be able to make one line as long as what it sent. `truncateForLog` cuts a
 * value to `max` characters and says how much was left out.
 */

/**
 * `s` when it has at most `max` characters; otherwise its first `max` characters (one fewer
 * rather than half a surrogate pair) followed by `…(+N chars)`.
 */
export function truncateForLog(s: string, max = 200): string {
  const text = typeof s === "string" ? s : String(s);
  if (text.length <= max) return text;
  let cut = Math.max(0, max);
  const last = text.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--;
  return `${text.slice(0, cut)}…(+${text.length - cut} chars)`;
}
