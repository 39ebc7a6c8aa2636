/**
 * A string a peer supplied (a method name, a name, a message), cut to at most `max` characters
 * for a log line, saying how long it was: a remote peer cannot make one line large.
 */
export function truncateForLog(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}
